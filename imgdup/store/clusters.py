"""A pair that must be an edge, or a retracted one -> `duplicate_clusters`, `cluster_members`,
`cluster_merges` and `cluster_splits` (the plans of imgdup_core.clustering applied inside the caller's
transaction), with the cluster changes they make recorded in the outbox, and the public duplicate
event of a clustered pair. A cluster's edges are its pairs with `clustered_at` set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row

from imgdup import ids
from imgdup.store import changes
from imgdup.store.pairs import verified_pair_from_row
from imgdup.store.touched import Touched
from imgdup_core.clustering import ClusterPair, ClusterPlan, ClusterSnapshot, SplitPlan, plan_pair, plan_split
from schemas import (
    AdRef,
    ClusterPieceV1,
    ClusterRef,
    ClustersMergedV1,
    ClusterSplitV1,
    DuplicateEventV1,
    ImageRef,
)

Row = dict[str, Any]


async def snapshot(conn: AsyncConnection[Any], cluster_id: str) -> ClusterSnapshot:
    """The cluster's row locked, its members and its edges (its own, never the whole graph)."""
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
    # Edges by clustered_at, not status: a pair being verified again stays an edge until the
    # clusterer retracts it, so a snapshot is always connected.
    cur = await named.execute(
        "SELECT d.image_a::text AS image_a, d.image_b::text AS image_b, d.confidence"
        " FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
        " WHERE m.cluster_id = %s AND d.clustered_at IS NOT NULL",
        (cluster_id,),
    )
    edges = [(row["image_a"], row["image_b"], float(row["confidence"])) for row in await cur.fetchall()]
    return ClusterSnapshot(cluster_id, cluster["created_at"], members, edges)


async def cluster_of(conn: AsyncConnection[Any], image_ids: list[str]) -> dict[str, str]:
    cur = await conn.execute(
        "SELECT image_id::text, cluster_id::text FROM cluster_members WHERE image_id = ANY(%s::uuid[])",
        (image_ids,),
    )
    return {str(image): str(cluster) for image, cluster in await cur.fetchall()}


@dataclass(frozen=True)
class Sides:
    """A pair's two images, the one seen first (`original`) and the later one (`duplicate`)."""

    original: ImageRef
    duplicate: ImageRef


def sides(images: dict[str, Row]) -> Sides:
    """The pair's two images (rows by image id: image_id, ad_id, first_seen_at) in the order imgdup
    first saw them."""
    first, second = sorted(images.values(), key=lambda r: (r["first_seen_at"], r["ad_id"], r["image_id"]))
    return Sides(
        ImageRef(image_id=first["image_id"], ad_id=first["ad_id"]),
        ImageRef(image_id=second["image_id"], ad_id=second["ad_id"]),
    )


def _refs(members: dict[str, int] | Any) -> list[ImageRef]:
    return [ImageRef(image_id=image, ad_id=ad) for image, ad in sorted(members.items())]


async def add_edge(
    conn: AsyncConnection[Any], pair: Row, touched: Touched, *, retractions: int
) -> ClusterPlan:
    """Make the locked `duplicates` row an edge: create, grow or merge the clusters it touches (read and
    locked by imgdup.store.touched); return the plan applied."""
    image_a, image_b = str(pair["image_a"]), str(pair["image_b"])
    pair_id = str(pair["pair_id"])
    in_a, in_b = touched.cluster_of.get(image_a), touched.cluster_of.get(image_b)
    plan = plan_pair(
        ClusterPair(pair_id, image_a, pair["ad_a"], image_b, pair["ad_b"], float(pair["confidence"])),
        touched.snapshots[in_a] if in_a else None,
        touched.snapshots[in_b] if in_b else None,
        new_cluster_id=ids.cluster_id_for_pair(pair_id, retractions),
    )
    await _apply_plan(conn, pair_id, plan)
    return plan


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
        moved = _refs(plan.moved_members)
        merged = ClustersMergedV1(
            # A cluster is absorbed at most once: its id names the merge.
            event_id=ids.change_event_id("clusters_merged", absorbed, 0),
            occurred_at=datetime.now(UTC),
            absorbed=absorbed,
            survivor=plan.cluster_id,
            pair_id=pair_id,
            moved=moved,
        )
        await changes.record(conn, merged, key=min(ref.ad_id for ref in moved), cluster_id=absorbed)


async def split_after_retraction(conn: AsyncConnection[Any], cluster_id: str, pair_id: str) -> SplitPlan:
    """The cluster that just lost `pair_id`'s edge -> its pieces recomputed from its own remaining
    edges and applied; a split recorded in `cluster_splits` and the outbox."""
    snap = await snapshot(conn, cluster_id)
    splits = await changes.count(conn, "cluster_split", cluster_id=cluster_id)
    plan = plan_split(snap, new_cluster_id=lambda members: ids.split_cluster_id(cluster_id, splits, members))
    if plan.kept is not None:
        kept = plan.kept
        await conn.execute(
            "UPDATE duplicate_clusters SET size = %s, ad_count = %s, edge_count = %s,"
            " confidence = %s, updated_at = now() WHERE cluster_id = %s",
            (kept.size, kept.ad_count, kept.edge_count, kept.confidence, cluster_id),
        )
    else:
        await conn.execute(
            "UPDATE duplicate_clusters SET dissolved_at = now(), updated_at = now() WHERE cluster_id = %s",
            (cluster_id,),
        )
    for piece in plan.new:
        await conn.execute(
            "INSERT INTO duplicate_clusters (cluster_id, size, ad_count, edge_count, confidence)"
            " VALUES (%s, %s, %s, %s, %s)",
            (piece.cluster_id, piece.size, piece.ad_count, piece.edge_count, piece.confidence),
        )
        await conn.execute(
            "UPDATE cluster_members SET cluster_id = %s WHERE image_id = ANY(%s::uuid[])",
            (piece.cluster_id, list(piece.members)),
        )
    if plan.left:
        await conn.execute("DELETE FROM cluster_members WHERE image_id = ANY(%s::uuid[])", (list(plan.left),))
    if not plan.split:
        return plan
    event_id = ids.change_event_id("cluster_split", cluster_id, splits)
    pieces = [p for p in (plan.kept, *plan.new) if p is not None]
    await conn.execute(
        "INSERT INTO cluster_splits (split_id, cluster_id, pair_id, pieces, left_images)"
        " VALUES (%s, %s, %s, %s::uuid[], %s::uuid[]) ON CONFLICT (split_id) DO NOTHING",
        (event_id, cluster_id, pair_id, [p.cluster_id for p in plan.new], list(plan.left)),
    )
    split = ClusterSplitV1(
        event_id=event_id,
        occurred_at=datetime.now(UTC),
        cluster_id=cluster_id,
        pair_id=pair_id,
        pieces=[ClusterPieceV1(cluster_id=p.cluster_id, members=_refs(dict(p.members))) for p in pieces],
        left=_refs(dict(plan.left)),
        dissolved=plan.kept is None,
    )
    await changes.record(conn, split, key=min(snap.members.values()), cluster_id=cluster_id)
    return plan


async def duplicate_event(
    conn: AsyncConnection[Any],
    pair: Row,
    images: dict[str, Row],
    *,
    retractions: int,
    cluster: ClusterRef | None = None,
) -> DuplicateEventV1:
    """The public duplicate event of a clustered pair (the locked `duplicates` row, its two images'
    rows by image id with their ads' columns, and its cluster as it is now when the caller just
    planned it, else read): the
    same event (same event_id) on every redelivery, a new one for a new verifier version or after a
    retraction."""
    verified = verified_pair_from_row(pair)
    rows = images
    if cluster is None:
        refs = await conn.cursor(row_factory=class_row(ClusterRef)).execute(
            "SELECT c.cluster_id::text AS cluster_id, c.size, c.ad_count FROM cluster_members m"
            " JOIN duplicate_clusters c USING (cluster_id) WHERE m.image_id = %s",
            (verified.a.image_id,),
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
        (rows[verified.a.image_id], rows[verified.b.image_id]),
        key=lambda r: (r["created_at"] or r["first_seen_at"], r["first_seen_at"], r["ad_id"], r["image_id"]),
    )
    # A pair a moderator confirmed against the verifier is a duplicate for certain.
    confidence = 1.0 if pair.get("verdict") == "confirmed" else verified.confidence
    return DuplicateEventV1(
        event_id=ids.duplicate_event_id(verified.pair_id, verified.versions.verifier, retractions),
        pair_id=verified.pair_id,
        confidence=min(1.0, max(0.0, confidence)),
        original=ref(first),
        duplicate=ref(second),
        evidence=verified.evidence,
        cluster=cluster,
        versions=verified.versions,
        replay=verified.replay,
        detected_at=verified.verified_at,
    )
