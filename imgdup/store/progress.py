"""`ingest_events` and `duplicates` states -> counts of work done and in flight: exact (`imgdup wait`,
the API's progress route), or cheap for every Prometheus scrape (`backlog`)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, computed_field

from imgdup.store.truth import UNSETTLED_PAIRS


class Progress(BaseModel):
    """A read model: what `imgdup wait` polls and `GET /api/v1/progress` serves."""

    events_accepted: int
    events_processing: int
    events_indexed: int
    events_dead: int
    pairs_candidate: int
    pairs_verified: int
    pairs_rejected: int
    pairs_clustered: int
    # Decided pairs whose edge the clusterer has still to add or retract (a pair review in flight),
    # and cluster changes not yet published: `imgdup wait` waits for both.
    pairs_unsettled: int = 0
    changes_unpublished: int = 0

    @computed_field(description="Events and pairs still in flight")  # type: ignore[prop-decorator]
    @property
    def unfinished(self) -> int:
        """Work still in flight: events not indexed or dead, pairs without a final state."""
        return (
            self.events_accepted
            + self.events_processing
            + self.pairs_candidate
            + self.pairs_verified
            + self.pairs_unsettled
            + self.changes_unpublished
        )


# Pairs whose edge the clusterer has still to add or retract, and changes not yet published.
_UNSETTLED = (
    f"SELECT (SELECT count(*) FROM ({UNSETTLED_PAIRS}) AS u),"
    " (SELECT count(*) FROM cluster_changes WHERE published_at IS NULL)"
)


async def progress(pool: AsyncConnectionPool) -> Progress:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) FROM ingest_events GROUP BY status")
        events: dict[str, int] = dict(await cur.fetchall())
        cur = await conn.execute("SELECT status, count(*) FROM duplicates GROUP BY status")
        pairs: dict[str, int] = dict(await cur.fetchall())
        cur = await conn.execute(_UNSETTLED)
        unsettled = await cur.fetchone()
    assert unsettled is not None
    return Progress(
        events_accepted=events.get("accepted", 0),
        events_processing=events.get("processing", 0),
        events_indexed=events.get("indexed", 0),
        events_dead=events.get("dead", 0),
        pairs_candidate=pairs.get("candidate", 0),
        pairs_verified=pairs.get("verified", 0),
        pairs_rejected=pairs.get("rejected", 0),
        pairs_clustered=pairs.get("clustered", 0),
        pairs_unsettled=int(unsettled[0]),
        changes_unpublished=int(unsettled[1]),
    )


# Work in flight, exactly: the planner answers each count from a partial index (ingest_events_unfinished,
# duplicates_unfinished, on these states), whose size is the backlog's, not the table's.
_IN_FLIGHT = " UNION ALL ".join(
    f"SELECT '{kind}', '{state}', count(*) FROM {table} WHERE status = '{state}'"
    for kind, table, state in (
        ("event", "ingest_events", "accepted"),
        ("event", "ingest_events", "processing"),
        ("pair", "duplicates", "candidate"),
        ("pair", "duplicates", "verified"),
    )
)
# Finished work, estimated from the planner's statistics (autovacuum's ANALYZE keeps them fresh):
# the table's row estimate times each status's share among the sampled rows. Catalog reads only.
_ESTIMATES = (
    "SELECT CASE s.tablename WHEN 'ingest_events' THEN 'event' ELSE 'pair' END, v.status,"
    " (c.reltuples * v.freq)::bigint"
    " FROM pg_stats s"
    " JOIN pg_class c ON c.oid = format('%I.%I', s.schemaname, s.tablename)::regclass"
    " CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS v(status, freq)"
    " WHERE s.schemaname = current_schema() AND s.attname = 'status'"
    " AND s.tablename IN ('ingest_events', 'duplicates') AND c.reltuples > 0"
)


async def backlog(pool: AsyncConnectionPool) -> Progress:
    """Progress for a Prometheus scrape at a cost that does not grow with the tables: the states of
    work in flight counted exactly, the finished ones (indexed, dead, rejected, clustered) estimated;
    a state absent from the statistics (none yet, or too rare to be sampled) reads 0."""
    async with pool.connection() as conn:
        cur = await conn.execute(_ESTIMATES)
        figures: dict[tuple[str, str], int] = {(k, s): max(0, n) for k, s, n in await cur.fetchall()}
        cur = await conn.execute(_IN_FLIGHT)
        figures.update({(kind, state): n for kind, state, n in await cur.fetchall()})
    return Progress(
        events_accepted=figures.get(("event", "accepted"), 0),
        events_processing=figures.get(("event", "processing"), 0),
        events_indexed=figures.get(("event", "indexed"), 0),
        events_dead=figures.get(("event", "dead"), 0),
        pairs_candidate=figures.get(("pair", "candidate"), 0),
        pairs_verified=figures.get(("pair", "verified"), 0),
        pairs_rejected=figures.get(("pair", "rejected"), 0),
        pairs_clustered=figures.get(("pair", "clustered"), 0),
    )
