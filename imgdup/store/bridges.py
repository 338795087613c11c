"""A verified pair about to become an edge (its locked `duplicates` row) -> whether it may
(imgdup_core.bridges: never two established groups joined through one marginal edge), its hold
recorded (`held_at`, migration 012), and the held pairs touching a cluster that changed (to look at
again)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from imgdup.store.clusters import cluster_of
from imgdup_core.bridges import BridgeRule, Decision, Link, decide

Row = dict[str, Any]

# A held pair: a verified duplicate, no edge, held. A pair held and then verified again ('candidate',
# or 'rejected' by a newer verifier) is no link anyone may count on until it is decided again.
HELD = "d.held_at IS NOT NULL AND d.status = 'clustered' AND d.clustered_at IS NULL"

_LINK = (
    "SELECT d.image_a::text, d.image_b::text, d.confidence, coalesce(d.exact, false),"
    " coalesce(v.verdict = 'confirmed', false) FROM duplicates d"
    " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
)


def _link(row: tuple[Any, ...]) -> Link:
    return Link(str(row[0]), str(row[1]), float(row[2]), bool(row[3]), bool(row[4]))


async def decision(conn: AsyncConnection[Any], pair: Row, rule: BridgeRule) -> Decision:
    """What adding the locked pair `pair` as an edge may do (imgdup_core.bridges.decide)."""
    image_a, image_b = str(pair["image_a"]), str(pair["image_b"])
    clusters = await cluster_of(conn, [image_a, image_b])
    in_a, in_b = clusters.get(image_a), clusters.get(image_b)
    if in_a is not None and in_a == in_b:
        return "join"
    touched = sorted({c for c in (in_a, in_b) if c is not None})
    members = {image_a: int(pair["ad_a"]), image_b: int(pair["ad_b"])}
    edges: list[Link] = []
    if touched:
        cur = await conn.execute(
            "SELECT image_id::text, ad_id FROM cluster_members WHERE cluster_id = ANY(%s::uuid[])", (touched,)
        )
        members |= {str(image): int(ad) for image, ad in await cur.fetchall()}
        # Edges by clustered_at (as imgdup.store.clusters.snapshot); an edge lies inside one cluster.
        cur = await conn.execute(
            f"{_LINK} JOIN cluster_members m ON m.image_id = d.image_a"
            " WHERE m.cluster_id = ANY(%s::uuid[]) AND d.clustered_at IS NOT NULL",
            (touched,),
        )
        edges = [_link(row) for row in await cur.fetchall()]
    images = list(members)
    cur = await conn.execute(
        f"{_LINK} WHERE {HELD} AND d.pair_id <> %s"
        " AND d.image_a = ANY(%s::uuid[]) AND d.image_b = ANY(%s::uuid[])",
        (pair["pair_id"], images, images),
    )
    held = [_link(row) for row in await cur.fetchall()]
    this = Link(
        image_a,
        image_b,
        float(pair["confidence"]),
        bool(pair.get("exact")),
        pair.get("verdict") == "confirmed",
    )
    return decide(rule, this, members, edges, held, same_cluster=False)


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
