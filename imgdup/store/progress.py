"""`ingest_events` and `duplicates` states -> counts of work done and in flight (`imgdup wait`, the API)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, computed_field


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

    @computed_field(description="Events and pairs still in flight")  # type: ignore[prop-decorator]
    @property
    def unfinished(self) -> int:
        """Work still in flight: events not indexed or dead, pairs without a final state."""
        return self.events_accepted + self.events_processing + self.pairs_candidate + self.pairs_verified


async def progress(pool: AsyncConnectionPool) -> Progress:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) FROM ingest_events GROUP BY status")
        events: dict[str, int] = dict(await cur.fetchall())
        cur = await conn.execute("SELECT status, count(*) FROM duplicates GROUP BY status")
        pairs: dict[str, int] = dict(await cur.fetchall())
    return Progress(
        events_accepted=events.get("accepted", 0),
        events_processing=events.get("processing", 0),
        events_indexed=events.get("indexed", 0),
        events_dead=events.get("dead", 0),
        pairs_candidate=pairs.get("candidate", 0),
        pairs_verified=pairs.get("verified", 0),
        pairs_rejected=pairs.get("rejected", 0),
        pairs_clustered=pairs.get("clustered", 0),
    )
