"""Fixtures for every test: an embedded Postgres server (session), migrated once, emptied on demand."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.db import truncate

from imgdup.ops.embedded import Postgres

# Imported modules read settings at import time; tests never reach a broker through these.
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Postgres]:
    """A real PostgreSQL server for the whole run; migrated once, truncated between uses."""
    from imgdup.ops.embedded import start_postgres
    from imgdup.store.db import migrate

    # Not under pytest's 0700 tmp dirs: the server runs as an unprivileged user when we are root.
    root = Path(tempfile.mkdtemp(prefix="imgdup-test-pg-"))
    root.chmod(0o755)
    server = start_postgres(root / "data")
    migrate(server.dsn)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_dsn(pg_server: Postgres) -> str:
    return pg_server.dsn


@pytest.fixture
def clean_db(pg_dsn: str) -> str:
    truncate(pg_dsn)
    return pg_dsn


@pytest.fixture(scope="session")
def truncate_db(pg_dsn: str) -> Callable[[], None]:
    """For module-scoped fixtures, which cannot use the function-scoped clean_db."""
    return lambda: truncate(pg_dsn)
