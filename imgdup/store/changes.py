"""Cluster changes (schemas.ClusterChange) <-> `cluster_changes`, the outbox of imgdup.cluster-changes.v1:
written in the clusterer's transaction, published in `seq` order, marked once the broker acknowledged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from imgdup.store.db import single_statement
from schemas import ClusterChange, ClusterChangeV1

# At most this many pending changes go out with one clusterer step (a backlog drains over several).
BATCH = 500


@dataclass(frozen=True)
class PendingChange:
    seq: int
    key: str
    change: ClusterChangeV1


async def record(
    conn: AsyncConnection[Any],
    change: ClusterChange,
    *,
    key: int,
    pair_id: str | None = None,
    cluster_id: str | None = None,
) -> None:
    """Add a change to the outbox; the same event_id again (a replayed step) adds nothing."""
    await conn.execute(
        "INSERT INTO cluster_changes (event_id, type, pair_id, cluster_id, message_key, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (change.event_id, change.type, pair_id, cluster_id, str(key), Jsonb(change.model_dump(mode="json"))),
    )


async def count(
    conn: AsyncConnection[Any], kind: str, *, pair_id: str | None = None, cluster_id: str | None = None
) -> int:
    """How many changes of `kind` a pair (or a cluster) had: the number in the next one's id."""
    column, value = ("pair_id", pair_id) if pair_id is not None else ("cluster_id", cluster_id)
    cur = await conn.execute(
        f"SELECT count(*) FROM cluster_changes WHERE {column} = %s AND type = %s",
        (value, kind),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def unpublished(pool: AsyncConnectionPool, limit: int = BATCH) -> list[PendingChange]:
    async with single_statement(pool) as conn:  # one read: no BEGIN and COMMIT round trips
        cur = await conn.execute(
            "SELECT seq, message_key, payload FROM cluster_changes WHERE published_at IS NULL"
            " ORDER BY seq LIMIT %s",
            (limit,),
        )
        rows = await cur.fetchall()
    return [
        PendingChange(int(seq), str(key), ClusterChangeV1.model_validate(payload))
        for seq, key, payload in rows
    ]


async def mark_published(pool: AsyncConnectionPool, seqs: Sequence[int]) -> None:
    if not seqs:
        return
    async with single_statement(pool) as conn:  # one statement: no BEGIN and COMMIT round trips
        await conn.execute(
            "UPDATE cluster_changes SET published_at = now() WHERE seq = ANY(%s) AND published_at IS NULL",
            (list(seqs),),
        )
