"""A verified pair about to become an edge (its locked `duplicates` row) -> whether it bridges two
established clusters and may merge them (imgdup_core.bridges), its hold recorded (`held_at`,
migration 012), and the held pairs a merge has put inside one cluster (to release as edges)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from imgdup.store.clusters import cluster_of
from imgdup_core.bridges import BridgeEvidence, BridgeRule, Decision, decide

Row = dict[str, Any]

# A held pair: a verified duplicate, no edge, held. A pair held and then verified again ('candidate',
# or 'rejected' by a newer verifier) is no edge anyone may count on until it is decided again.
HELD = "d.held_at IS NOT NULL AND d.status = 'clustered' AND d.clustered_at IS NULL"

_HELD_BETWEEN = (
    "SELECT count(*) FROM duplicates d"
    " JOIN cluster_members ma ON ma.image_id = d.image_a"
    " JOIN cluster_members mb ON mb.image_id = d.image_b"
    f" WHERE {HELD} AND d.pair_id <> %(pair)s"
    " AND ((ma.cluster_id = %(one)s AND mb.cluster_id = %(other)s)"
    " OR (ma.cluster_id = %(other)s AND mb.cluster_id = %(one)s))"
)


async def decision(conn: AsyncConnection[Any], pair: Row, rule: BridgeRule) -> Decision:
    """What adding the locked pair `pair` as an edge may do (imgdup_core.bridges.decide)."""
    image_a, image_b = str(pair["image_a"]), str(pair["image_b"])
    clusters = await cluster_of(conn, [image_a, image_b])
    in_a, in_b = clusters.get(image_a), clusters.get(image_b)
    members: dict[str, dict[str, int]] = {}
    other_edges = 0
    if in_a is not None and in_b is not None and in_a != in_b:
        cur = await conn.execute(
            "SELECT cluster_id::text, image_id::text, ad_id FROM cluster_members"
            " WHERE cluster_id = ANY(%s::uuid[])",
            ([in_a, in_b],),
        )
        for cluster, image, ad in await cur.fetchall():
            members.setdefault(str(cluster), {})[str(image)] = int(ad)
        cur = await conn.execute(_HELD_BETWEEN, {"pair": pair["pair_id"], "one": in_a, "other": in_b})
        row = await cur.fetchone()
        other_edges = int(row[0]) if row else 0
    evidence = BridgeEvidence(
        probability=float(pair["confidence"]),
        exact=bool(pair.get("exact")),
        confirmed=pair.get("verdict") == "confirmed",
    )
    return decide(
        rule,
        evidence,
        members.get(in_a) if in_a else None,
        members.get(in_b) if in_b else None,
        same_cluster=in_a is not None and in_a == in_b,
        other_edges=other_edges,
    )


async def hold(conn: AsyncConnection[Any], pair_id: str) -> None:
    """The pair stays a verified duplicate, settled ('clustered'), but no edge."""
    await conn.execute(
        "UPDATE duplicates SET status = 'clustered', held_at = coalesce(held_at, now()) WHERE pair_id = %s",
        (pair_id,),
    )


async def held_inside(conn: AsyncConnection[Any], cluster_id: str) -> list[str]:
    """Held pairs whose two images now sit in `cluster_id` (a merge joined their clusters)."""
    cur = await conn.execute(
        "SELECT d.pair_id::text FROM duplicates d"
        " JOIN cluster_members ma ON ma.image_id = d.image_a"
        " JOIN cluster_members mb ON mb.image_id = d.image_b"
        f" WHERE {HELD} AND ma.cluster_id = %s AND mb.cluster_id = %s ORDER BY d.pair_id",
        (cluster_id, cluster_id),
    )
    return [str(row[0]) for row in await cur.fetchall()]
