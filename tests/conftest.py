"""Fixtures: a real Postgres server (session) and a real tansu broker (per module), both embedded."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from imgdup.ops.embedded import Postgres

# Imported modules read settings at import time; tests never reach a broker through these.
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")

TABLES = (
    "cluster_merges",
    "cluster_members",
    "duplicate_clusters",
    "duplicates",
    "image_blobs",
    "images",
    "ads",
    "ingest_events",
)


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


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh tansu broker per test module, so no module sees another's messages."""
    from imgdup.ops.embedded import start_broker

    broker = start_broker(Path(tmp_path_factory.mktemp("tansu")))
    yield broker.bootstrap
    broker.stop()
