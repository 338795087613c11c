"""Postgres DSN -> connection pools, single-statement connections and schema migrations (infra/sql)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

# The SQL lives under infra/sql (the repository's layout); images copy it there too. An
# installation elsewhere points IMGDUP_MIGRATIONS_DIR at it.
MIGRATIONS_DIR = Path(
    os.environ.get("IMGDUP_MIGRATIONS_DIR", Path(__file__).resolve().parents[2] / "infra" / "sql")
)
# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x1D6D_0001


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9][0-9]_*.sql"))


def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not applied yet, each in its own transaction; returns those applied.

    Safe to run from several processes at once: an advisory lock serialises them.
    """
    files = migration_files(directory)
    if not files:
        # A packaging mistake must not look like "nothing to do" on an empty database.
        raise RuntimeError(f"no migrations found in {directory}")
    applied: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in files:
                if path.stem in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                log.info("applied migration %s", path.stem)
                applied.append(path.stem)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 8) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(dsn, min_size=min_size, max_size=max_size, open=False)
    await pool.open(wait=True, timeout=30)
    return pool


@asynccontextmanager
async def single_statement(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection in autocommit mode, for work that is one statement (atomic on its
    own): one round trip instead of BEGIN, statement, COMMIT. The verifier runs two such
    statements per pair, three or four per image."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken connection is discarded anyway
                await conn.set_autocommit(False)
