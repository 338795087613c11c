"""A pair about to become an edge (its two images) -> the clusters it touches, their rows locked, their
members and edges (with the bridge rule's flags) and the held pairs among their images, read once for
both the bridge decision (imgdup.store.bridges) and the cluster plan (imgdup.store.clusters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from imgdup_core.bridges import Link
from imgdup_core.clustering import ClusterSnapshot

# A held pair: a verified duplicate, no edge, held. A pair held and then verified again ('candidate',
# or 'rejected' by a newer verifier) is no link anyone may count on until it is decided again.
HELD = "d.held_at IS NOT NULL AND d.status = 'clustered' AND d.clustered_at IS NULL"

_LINK = (
    "d.image_a::text, d.image_b::text, d.confidence, coalesce(d.exact, false),"
    " coalesce(v.verdict = 'confirmed', false) FROM duplicates d"
    " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
)


def link(row: tuple[Any, ...]) -> Link:
    """A `_LINK` row (image_a, image_b, confidence, exact, confirmed) as the bridge rule's Link."""
    return Link(str(row[0]), str(row[1]), float(row[2]), bool(row[3]), bool(row[4]))


@dataclass(frozen=True)
class Touched:
    """The clusters holding a pair's images, each row locked until the transaction ends."""

    cluster_of: dict[str, str]  # the pair's images that are in a cluster -> that cluster
    snapshots: dict[str, ClusterSnapshot]  # what imgdup_core.clustering plans on
    edges: tuple[Link, ...]  # the clusters' edges, with the flags the bridge rule weighs
    held: tuple[Link, ...]  # the held pairs among the clusters' images (not the pair itself)

    @property
    def same_cluster(self) -> bool:
        """Both images are in one cluster already: one more edge inside it joins nothing."""
        clusters = list(self.cluster_of.values())
        return len(clusters) == 2 and clusters[0] == clusters[1]

    def members(self) -> dict[str, int]:
        """Every image of the touched clusters -> its ad."""
        return {image: ad for snap in self.snapshots.values() for image, ad in snap.members.items()}


async def read(
    conn: AsyncConnection[Any], pair_id: str, image_a: str, image_b: str, cluster_of: dict[str, str]
) -> Touched:
    """The clusters that hold the pair's images (`cluster_of`, read after the pair's row was locked,
    as before): their rows locked in cluster_id order (the order every clusterer transaction locks
    them in), their members, their edges and the held pairs among their images. Every statement is
    sent before any answer is read: in the clusterer's pipeline (imgdup.store.truth) one round trip;
    each statement still runs after the one before, on its own snapshot, so every read sees the
    locked clusters as they are."""
    touched = sorted(set(cluster_of.values()))
    if not touched:
        # Two loose images: no cluster, and no held pair among them but this pair's own.
        return Touched(cluster_of, {}, (), ())
    images = [image_a, image_b]
    locked = await conn.execute(
        "SELECT cluster_id::text, created_at FROM duplicate_clusters WHERE cluster_id = ANY(%s::uuid[])"
        " ORDER BY cluster_id FOR UPDATE",
        (touched,),
    )
    members = await conn.execute(
        "SELECT cluster_id::text, image_id::text, ad_id FROM cluster_members"
        " WHERE cluster_id = ANY(%s::uuid[])",
        (touched,),
    )
    # Edges by clustered_at, not status: a pair being verified again stays an edge until the
    # clusterer retracts it, so a snapshot is always connected. An edge lies inside one cluster.
    edges = await conn.execute(
        f"SELECT m.cluster_id::text, {_LINK} JOIN cluster_members m ON m.image_id = d.image_a"
        " WHERE m.cluster_id = ANY(%s::uuid[]) AND d.clustered_at IS NOT NULL",
        (touched,),
    )
    held = None
    if len(touched) == 2 or len(cluster_of) == 1:  # the pair joins two pieces: the bridge rule asks
        held = await conn.execute(
            f"WITH i AS (SELECT image_id FROM cluster_members WHERE cluster_id = ANY(%s::uuid[])"
            " UNION SELECT unnest(%s::uuid[]))"
            f" SELECT {_LINK} WHERE {HELD} AND d.pair_id <> %s"
            " AND d.image_a IN (SELECT image_id FROM i) AND d.image_b IN (SELECT image_id FROM i)",
            (touched, images, pair_id),
        )
    created: dict[str, datetime] = {str(c): at for c, at in await locked.fetchall()}
    by_cluster: dict[str, dict[str, int]] = {cluster: {} for cluster in touched}
    for cluster, image, ad in await members.fetchall():
        by_cluster[str(cluster)][str(image)] = int(ad)
    edge_rows = await edges.fetchall()
    held_links = tuple(link(row) for row in await held.fetchall()) if held is not None else ()
    edges_of: dict[str, list[tuple[str, str, float]]] = {cluster: [] for cluster in touched}
    for row in edge_rows:
        edges_of[str(row[0])].append((str(row[1]), str(row[2]), float(row[3])))
    snapshots = {
        cluster: ClusterSnapshot(cluster, created[cluster], by_cluster[cluster], edges_of[cluster])
        for cluster in touched
    }
    return Touched(cluster_of, snapshots, tuple(link(row[1:]) for row in edge_rows), held_links)
