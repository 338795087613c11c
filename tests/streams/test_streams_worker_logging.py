"""Consumes streams.worker.build_worker's logging set-up: at the default loglevel (warning), no
library's debug call builds a log record nobody prints (Faust's terminal spinner otherwise puts
the root logger at DEBUG, and aiokafka, httpcore and psycopg log per message and per request)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from streams.worker import build_worker


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_library_debug_calls_build_no_records_at_the_default_loglevel() -> None:
    app = faust.App("imgdup-test-logging", broker="kafka://127.0.0.1:1")
    worker = build_worker(app, loglevel="warning")
    worker._setup_logging()  # what execute_from_commandline does first
    assert logging.getLogger().getEffectiveLevel() == logging.WARNING
    for name in ("aiokafka.conn", "httpcore.http11", "psycopg"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    # Still printed: warnings and errors, as before.
    assert logging.getLogger("aiokafka").isEnabledFor(logging.WARNING)


@pytest.mark.usefixtures("restore_logging")
def test_an_explicit_debug_loglevel_still_logs_debug() -> None:
    app = faust.App("imgdup-test-logging-debug", broker="kafka://127.0.0.1:1")
    build_worker(app, loglevel="debug")._setup_logging()
    assert logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
