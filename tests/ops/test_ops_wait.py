"""`imgdup wait` while Postgres is down: it keeps asking until its own timeout, then says so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from imgdup.cli import main
from imgdup.ops.embedded import Postgres

UNREACHABLE = "postgresql://imgdup@/imgdup?host=/nonexistent-imgdup-socket-dir&connect_timeout=1"


def test_wait_on_an_unreachable_database_exits_1_with_one_line(tmp_path: Path) -> None:
    """As an operator runs it: a process, its whole output read (no traceback, no pool log spam)."""
    done = subprocess.run(
        [sys.executable, "-m", "imgdup", "wait", "--data-dir", str(tmp_path), "--timeout", "2"],
        env={**os.environ, "DATABASE_URL": UNREACHABLE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "database" in done.stderr and "unreachable" in done.stderr


def test_wait_outlasts_a_database_restart(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_server: Postgres,
    clean_db: str,
) -> None:
    """Postgres goes down while `wait` polls and comes back before its timeout, when the last
    event is finished: `wait` reports done instead of dying of the connection error."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("INSERT INTO ingest_events (event_id, ad_id, payload) VALUES ('e1', 1, '{}')")

    def outage() -> None:
        time.sleep(1.5)  # `wait` is polling by now
        pg_server.stop()
        time.sleep(3)
        pg_server.start()
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute("UPDATE ingest_events SET status = 'indexed' WHERE event_id = 'e1'")

    monkeypatch.setenv("DATABASE_URL", clean_db)
    disturbance = threading.Thread(target=outage)
    try:
        disturbance.start()
        code = main(["wait", "--data-dir", str(tmp_path), "--timeout", "60"])
    finally:
        disturbance.join()
        pg_server.start()  # a no-op when it runs; the other tests need it
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("done: 1 events processed")
