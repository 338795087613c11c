"""A Postgres DSN in; a pool whose connections libpq traces (PQtrace) out, and what they sent counted:
statements, round trips (each waits for the server) and transactions. Counts, never timings."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from psycopg import AsyncConnection, pq
from psycopg_pool import AsyncConnectionPool

_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)(?:\t (.*))?$")
_TX = {"BEGIN", "COMMIT", "ROLLBACK"}


def _trace(conn: AsyncConnection[Any], fileno: int) -> None:
    conn.pgconn.trace(fileno)
    conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)


@dataclass
class Wire:
    """What a traced pool's connections sent since `mark` (or since they opened)."""

    folder: Path
    files: list[IO[str]] = field(default_factory=list)
    traced: list[tuple[AsyncConnection[Any], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    seen: dict[str, int] = field(default_factory=dict)  # trace file -> lines already counted

    async def configure(self, conn: AsyncConnection[Any]) -> None:
        trace = (self.folder / f"conn-{len(self.files)}.trace").open("w")
        self.files.append(trace)
        self.traced.append((conn, trace.fileno()))
        _trace(conn, trace.fileno())

    def _new_lines(self) -> list[str]:
        # libpq writes the trace through a buffered stream: PQuntrace flushes it, then tracing goes on.
        for conn, fileno in self.traced:
            if not conn.closed:
                conn.pgconn.untrace()
                _trace(conn, fileno)
        lines: list[str] = []
        for path in sorted(self.folder.glob("conn-*.trace")):
            # Split on newlines only: a traced value may hold other line breaks (\x85, \x1c, ...).
            text = path.read_bytes().decode("utf-8", "replace").split("\n")[:-1]
            lines += text[self.seen.get(path.name, 0) :]
            self.seen[path.name] = len(text)
        return lines

    def mark(self) -> None:
        self._new_lines()

    def since_mark(self) -> Sent:
        sent = Sent()
        pending: str | None = None  # the statement text of a Parse, for its Execute
        sending = False
        for line in self._new_lines():
            match = _MESSAGE.match(line)
            if match is None:
                continue
            side, kind, rest = match.group(1), match.group(2), match.group(3) or ""
            # A round trip: the client sent something, then waited for the server's answer (what a
            # pipeline sends before it reads counts once).
            if side == "B":
                sent.round_trips += sending
                sending = False
                continue
            sending = sending or kind != "Terminate"
            if kind == "Query":  # simple protocol: one statement
                sent.add(rest.strip('"'))
            elif kind == "Parse":
                pending = rest.split('" "', 1)[1].rsplit('"', 1)[0] if '" "' in rest else rest
            elif kind == "Bind":
                sent.prepared_binds += rest.startswith('"" "_pg')
            elif kind == "Execute":  # extended protocol (a pipeline's BEGIN and COMMIT too)
                sent.add(pending or "<prepared>")
        return sent


@dataclass
class Sent:
    statements: list[str] = field(default_factory=list)  # not BEGIN/COMMIT/ROLLBACK
    round_trips: int = 0  # the client sent, then waited: BEGIN, COMMIT, each statement outside a pipeline
    transactions: int = 0  # BEGINs
    tx_control: int = 0  # BEGIN, COMMIT and ROLLBACK
    prepared_binds: int = 0

    def add(self, statement: str) -> None:
        if statement in _TX:
            self.transactions += statement == "BEGIN"
            self.tx_control += 1
        else:
            self.statements.append(statement)

    def matching(self, *words: str) -> int:
        """How many statements hold every one of `words`."""
        return sum(all(w in s for w in words) for s in self.statements)

    def reading(self, *words: str) -> int:
        """How many reads (SELECT, WITH ... SELECT) hold every one of `words`."""
        return sum(
            s.split()[0].upper() in ("SELECT", "WITH") and all(w in s for w in words) for s in self.statements
        )

    def summary(self) -> Counter[str]:
        return Counter(s.split()[0].upper() for s in self.statements)


@asynccontextmanager
async def traced_pool(
    dsn: str, folder: Path, *, max_size: int = 2
) -> AsyncIterator[tuple[AsyncConnectionPool, Wire]]:
    wire = Wire(folder)
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_size, open=False, configure=wire.configure)
    await pool.open(wait=True, timeout=30)
    try:
        yield pool, wire
    finally:
        await pool.close()
        for trace in wire.files:
            trace.close()
