"""Verified pairs -> `duplicate_clusters`, `cluster_members` and `cluster_merges` (the plan of
imgdup_core.clustering applied in one transaction) and the public duplicate event of each pair."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup_core.clustering import ClusterPair, ClusterPlan, ClusterSnapshot, plan_pair
from schemas import AdRef, ClusterRef, DuplicateEventV1, VerifiedPairV1

Row = dict[str, Any]


async def _snapshot(conn: AsyncConnection[Any], cluster_id: str) -> ClusterSnapshot:
    named = conn.cursor(row_factory=dict_row)
    cur = await named.execute(
        "SELECT created_at FROM duplicate_clusters WHERE cluster_id = %s FOR UPDATE", (cluster_id,)
    )
    cluster = await cur.fetchone()
    assert cluster is not None
    cur = await named.execute(
        "SELECT image_id::text AS image_id, ad_id FROM cluster_members WHERE cluster_id = %s",
        (cluster_id,),
    )
    members = {row["image_id"]: row["ad_id"] for row in await cur.fetchall()}
    cur = await named.execute(
        "SELECT d.image_a::text AS image_a, d.image_b::text AS image_b, d.confidence"
        " FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
        " WHERE m.cluster_id = %s AND d.status = 'clustered'",
        (cluster_id,),
    )
    edges = [(row["image_a"], row["image_b"], float(row["confidence"])) for row in await cur.fetchall()]
    return ClusterSnapshot(cluster_id, cluster["created_at"], members, edges)


async def _apply_plan(conn: AsyncConnection[Any], pair_id: str, plan: ClusterPlan) -> None:
    if plan.created:
        await conn.execute(
            "INSERT INTO duplicate_clusters (cluster_id, size, ad_count, edge_count, confidence)"
            " VALUES (%s, %s, %s, %s, %s)",
            (plan.cluster_id, plan.size, plan.ad_count, plan.edge_count, plan.confidence),
        )
    else:
        await conn.execute(
            "UPDATE duplicate_clusters SET size = %s, ad_count = %s, edge_count = %s,"
            " confidence = %s, updated_at = now() WHERE cluster_id = %s",
            (plan.size, plan.ad_count, plan.edge_count, plan.confidence, plan.cluster_id),
        )
    if plan.moved_members:
        await conn.execute(
            "INSERT INTO cluster_members (image_id, cluster_id, ad_id)"
            " SELECT u.image_id, %s, u.ad_id FROM unnest(%s::uuid[], %s::bigint[])"
            " AS u(image_id, ad_id)"
            " ON CONFLICT (image_id) DO UPDATE SET cluster_id = EXCLUDED.cluster_id",
            (plan.cluster_id, list(plan.moved_members), list(plan.moved_members.values())),
        )
    for absorbed in plan.absorbed:
        await conn.execute(
            "UPDATE duplicate_clusters SET merged_into = %s, updated_at = now() WHERE cluster_id = %s",
            (plan.cluster_id, absorbed),
        )
        await conn.execute(
            "INSERT INTO cluster_merges (absorbed, survivor, pair_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (absorbed) DO NOTHING",
            (absorbed, plan.cluster_id, pair_id),
        )


async def cluster_pair(pool: AsyncConnectionPool, pair: VerifiedPairV1) -> DuplicateEventV1 | None:
    """Add a verified pair to the clusters in one transaction; return the public event for it.

    A pair already clustered (redelivery, replay) changes nothing and yields the same event
    (same event_id), so a crash between commit and publish is repaired by the redelivery.
    """
    async with pool.connection() as conn, conn.transaction():
        named = conn.cursor(row_factory=dict_row)
        cur = await named.execute(
            "SELECT status FROM duplicates WHERE pair_id = %s FOR UPDATE", (pair.pair_id,)
        )
        pair_row = await cur.fetchone()
        if pair_row is None or pair_row["status"] not in ("verified", "clustered"):
            return None
        if pair_row["status"] == "verified":
            cur = await named.execute(
                "SELECT image_id::text AS image_id, cluster_id::text AS cluster_id FROM cluster_members"
                " WHERE image_id = ANY(%s::uuid[])",
                ([pair.a.image_id, pair.b.image_id],),
            )
            cluster_of = {row["image_id"]: row["cluster_id"] for row in await cur.fetchall()}
            snapshots: dict[str, ClusterSnapshot] = {}
            for cluster in sorted(set(cluster_of.values())):  # fixed lock order
                snapshots[cluster] = await _snapshot(conn, cluster)
            in_a = cluster_of.get(pair.a.image_id)
            in_b = cluster_of.get(pair.b.image_id)
            plan = plan_pair(
                ClusterPair(
                    pair.pair_id,
                    pair.a.image_id,
                    pair.a.ad_id,
                    pair.b.image_id,
                    pair.b.ad_id,
                    pair.confidence,
                ),
                snapshots[in_a] if in_a else None,
                snapshots[in_b] if in_b else None,
                new_cluster_id=ids.cluster_id_for_pair(pair.pair_id),
            )
            await _apply_plan(conn, pair.pair_id, plan)
            await conn.execute(
                "UPDATE duplicates SET status = 'clustered', clustered_at = now() WHERE pair_id = %s",
                (pair.pair_id,),
            )
        return await _duplicate_event(conn, pair)


async def _duplicate_event(conn: AsyncConnection[Any], pair: VerifiedPairV1) -> DuplicateEventV1:
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT i.image_id::text AS image_id, i.url, i.first_seen_at, a.ad_id, a.source,"
        " a.category, a.seller_id, a.created_at"
        " FROM images i JOIN ads a USING (ad_id) WHERE i.image_id = ANY(%s::uuid[])",
        ([pair.a.image_id, pair.b.image_id],),
    )
    sides = {row["image_id"]: row for row in await cur.fetchall()}
    refs = await conn.cursor(row_factory=class_row(ClusterRef)).execute(
        "SELECT c.cluster_id::text AS cluster_id, c.size, c.ad_count FROM cluster_members m"
        " JOIN duplicate_clusters c USING (cluster_id) WHERE m.image_id = %s",
        (pair.a.image_id,),
    )
    cluster = await refs.fetchone()
    assert cluster is not None

    def ref(row: Row) -> AdRef:
        return AdRef(
            ad_id=row["ad_id"],
            source=row["source"],
            category=row["category"],
            seller_id=row["seller_id"],
            image_id=row["image_id"],
            image_url=row["url"],
            first_seen_at=row["first_seen_at"],
            created_at=row["created_at"],
        )

    # The original is the side the portal created first (ads.created_at), not the side imgdup
    # inserted first: a backfill into a fresh database sees ads in any order. Ads stored before
    # migration 008 have no created_at and fall back to when imgdup first saw them.
    first, second = sorted(
        (sides[pair.a.image_id], sides[pair.b.image_id]),
        key=lambda r: (r["created_at"] or r["first_seen_at"], r["first_seen_at"], r["ad_id"], r["image_id"]),
    )
    return DuplicateEventV1(
        event_id=ids.duplicate_event_id(pair.pair_id, pair.versions.verifier),
        pair_id=pair.pair_id,
        confidence=min(1.0, max(0.0, pair.confidence)),
        original=ref(first),
        duplicate=ref(second),
        evidence=pair.evidence,
        cluster=cluster,
        versions=pair.versions,
        replay=pair.replay,
        detected_at=pair.verified_at,
    )
