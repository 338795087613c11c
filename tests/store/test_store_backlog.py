"""The API's /metrics backlog figures on a real Postgres with many rows: which SQL it runs (no
sequential scan of ingest_events or duplicates per scrape) and how close the figures are."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from seed import counts, seed

from imgdup.store.db import open_pool
from imgdup.store.progress import backlog

# ANALYZE reads up to 30,000 rows: this many it reads in full, so the estimates are steady.
ROWS = 30_000
BIG_TABLES = {"ingest_events", "duplicates"}


class RecordingPool:
    """A pool whose connections write down every SQL statement they execute."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.statements: list[tuple[str, Any]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        async with self.pool.connection() as conn:
            outer = self

            class Recording:
                async def execute(self, query: str, params: Any = None) -> Any:
                    outer.statements.append((query, params))
                    return await conn.execute(query, params)

            yield Recording()


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(plan["Node Type"], plan.get("Relation Name", ""))]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def test_metrics_backlog_reads_no_table_in_full(clean_db: str) -> None:
    seed(clean_db, ROWS)
    pool = await open_pool(clean_db, max_size=1)
    try:
        recording = RecordingPool(pool)
        figures = await backlog(recording)  # type: ignore[arg-type]
    finally:
        await pool.close()
    assert recording.statements
    with psycopg.connect(clean_db) as conn:
        for query, params in recording.statements:
            (plan,) = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()[0]  # type: ignore[index]
            scans = _scans(plan["Plan"])
            seq = [relation for node, relation in scans if node == "Seq Scan" and relation in BIG_TABLES]
            assert not seq, (query, json.dumps(plan))

    # Work in flight is exact (through the partial indexes); finished work is an estimate.
    events, pairs = counts(clean_db, "ingest_events"), counts(clean_db, "duplicates")
    assert (figures.events_accepted, figures.events_processing) == (events["accepted"], events["processing"])
    assert (figures.pairs_candidate, figures.pairs_verified) == (pairs["candidate"], pairs["verified"])
    estimates = {
        "indexed": (figures.events_indexed, events["indexed"]),
        "dead": (figures.events_dead, events["dead"]),
        "rejected": (figures.pairs_rejected, pairs["rejected"]),
        "clustered": (figures.pairs_clustered, pairs["clustered"]),
    }
    for state, (estimate, exact) in estimates.items():
        assert abs(estimate - exact) <= 0.1 * exact, (state, estimate, exact)


async def test_metrics_backlog_before_any_statistics(clean_db: str) -> None:
    """A new database, never analysed: exact figures for work in flight, zero for the rest."""
    pool = await open_pool(clean_db, max_size=1)
    try:
        figures = await backlog(pool)
    finally:
        await pool.close()
    assert figures.unfinished == 0 and figures.pairs_rejected >= 0 and figures.events_indexed >= 0
