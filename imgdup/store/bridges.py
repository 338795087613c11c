"""A verified pair about to become an edge (its locked `duplicates` row) -> whether it may
(imgdup_core.bridges: never two established groups joined through one marginal edge), its hold
recorded (`held_at`, migration 012), and the held pairs touching a cluster that changed (to look at
again). The clusters it touches are read by imgdup.store.touched."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from imgdup.store.touched import HELD, Touched
from imgdup_core.bridges import BridgeRule, Decision, Link, decide

Row = dict[str, Any]


def decision(pair: Row, rule: BridgeRule, touched: Touched) -> Decision:
    """What adding the locked pair `pair` as an edge may do (imgdup_core.bridges.decide), on the
    clusters it touches as imgdup.store.touched read them (locked, once for this and the plan)."""
    if touched.same_cluster:
        return "join"
    image_a, image_b = str(pair["image_a"]), str(pair["image_b"])
    members = {image_a: int(pair["ad_a"]), image_b: int(pair["ad_b"])} | touched.members()
    this = Link(
        image_a,
        image_b,
        float(pair["confidence"]),
        bool(pair.get("exact")),
        pair.get("verdict") == "confirmed",
    )
    return decide(rule, this, members, touched.edges, touched.held, same_cluster=False)


async def hold(conn: AsyncConnection[Any], pair_id: str) -> None:
    """The pair stays a verified duplicate, settled ('clustered'), but no edge."""
    await conn.execute(
        "UPDATE duplicates SET status = 'clustered', held_at = coalesce(held_at, now())"
        # Held already (a redelivery, a look again that changed nothing): no write.
        " WHERE pair_id = %s AND (held_at IS NULL OR status <> 'clustered')",
        (pair_id,),
    )


async def members_of(conn: AsyncConnection[Any], cluster_id: str) -> list[str]:
    cur = await conn.execute(
        "SELECT image_id::text FROM cluster_members WHERE cluster_id = %s", (cluster_id,)
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def held_touching(conn: AsyncConnection[Any], images: list[str]) -> list[str]:
    """Held pairs with an image among `images` (a cluster that just grew, merged or split)."""
    cur = await conn.execute(
        f"SELECT d.pair_id::text FROM duplicates d WHERE {HELD}"
        " AND (d.image_a = ANY(%s::uuid[]) OR d.image_b = ANY(%s::uuid[])) ORDER BY d.pair_id",
        (images, images),
    )
    return [str(row[0]) for row in await cur.fetchall()]
