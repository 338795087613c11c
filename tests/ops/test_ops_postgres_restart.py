"""The embedded Postgres after its postmaster is SIGKILLed: the Stack notices, restarts it, data intact."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from imgdup.ops.embedded import Postgres, start_postgres
from imgdup.ops.supervisor import Stack
from imgdup.settings import Settings


@pytest.fixture
def scratch_pg() -> Iterator[Postgres]:
    """A server of its own: this test kills it (the session's server is shared)."""
    root = Path(tempfile.mkdtemp(prefix="imgdup-test-pgkill-"))
    root.chmod(0o755)  # the server runs as an unprivileged user when we are root
    server = start_postgres(root / "data")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_stack_restarts_a_killed_postmaster(scratch_pg: Postgres, tmp_path: Path) -> None:
    with psycopg.connect(scratch_pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (7)")
    stack = Stack(Settings(data_dir=tmp_path, database_url=SecretStr(scratch_pg.dsn)), say=lambda _: None)
    stack.postgres = scratch_pg  # as `imgdup up` holds the one it started
    assert not stack.check_postgres(), "a running server is left alone"

    pid = scratch_pg.postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert not scratch_pg.running(), "a killed postmaster (even a zombie) is not running"

    assert stack.check_postgres()
    assert scratch_pg.running()
    assert scratch_pg.postmaster_pid() != pid
    with psycopg.connect(scratch_pg.dsn, connect_timeout=5) as conn:  # same DSN, same data
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]
