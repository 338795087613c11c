"""Common mistakes end in one clear line and exit code 1, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _up(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "imgdup", "up", "--data-dir", str(tmp_path / "state")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_wrong_database_url(tmp_path: Path) -> None:
    line = _error_line(_up(tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:1/nothing"))
    assert "DATABASE_URL" in line


def test_unreachable_broker(tmp_path: Path, pg_dsn: str) -> None:
    line = _error_line(_up(tmp_path, DATABASE_URL=pg_dsn, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    assert "unreachable" in line and "KAFKA_BOOTSTRAP_SERVERS" in line


def test_api_port_in_use(tmp_path: Path, pg_dsn: str, kafka: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _error_line(
            _up(tmp_path, DATABASE_URL=pg_dsn, KAFKA_BOOTSTRAP_SERVERS=kafka, IMGDUP_API_PORT=str(port))
        )
    assert f"port {port} is in use" in line
