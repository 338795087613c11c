"""Fixtures for every test: an embedded Postgres server (session), migrated once, emptied on demand; an
S3-protocol server (moto's, standing in for S3 and MinIO) for the tests that ask for one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = _free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
