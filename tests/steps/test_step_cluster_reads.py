"""imgdup.steps.cluster's reads on a real Postgres, counted on the wire (tests/helpers/wire.py): a verified
pair that becomes an edge reads the clusters it touches once (which clusters, their members, their edges
with the bridge rule's flags), for the bridge decision and the cluster plan both."""

from __future__ import annotations

from pathlib import Path

from helpers.wire import traced_pool
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.steps.cluster import ClusterContext, cluster_verified
from imgdup.store import pairs
from schemas import EvidenceV1, VerifiedPairV1, VersionsV1
from tests.helpers.ads import Side, begun_image

VERSIONS = VersionsV1(embedding_model="model-v1", verifier="fused-v5")


async def _verified(pool: AsyncConnectionPool, x: Side, y: Side, probability: float = 0.99) -> VerifiedPairV1:
    (a, ad_a), (b, ad_b) = sorted((x, y))
    pair = ids.pair_id(a, b)
    await pairs.add_candidates(
        pool, [pairs.CandidateRow(pair, a, ad_a, b, ad_b, 0.9, False)], verifier_version=VERSIONS.verifier
    )
    evidence = EvidenceV1(
        phash_distance=2,
        phash_mirrored=False,
        embedding_cosine=0.9,
        sift_inliers=90,
        sift_mirrored=False,
        ssim=0.8,
        score=probability,
        compared="full/full",
    )
    verified = await pairs.save_verdict(pool, pairs.VerdictRow(pair, True, probability, evidence, VERSIONS))
    assert verified is not None
    return verified


async def test_a_pair_merging_two_clusters_reads_each_cluster_once(clean_db: str, tmp_path: Path) -> None:
    async with traced_pool(clean_db, tmp_path / "wire") as (pool, wire):
        ctx = ClusterContext(pool)
        one, two, three, four = [await begun_image(pool, ad) for ad in (1, 2, 3, 4)]
        await cluster_verified(ctx, await _verified(pool, one, two))
        await cluster_verified(ctx, await _verified(pool, three, four))
        bridge = await _verified(pool, two, three)

        wire.mark()
        [event] = await cluster_verified(ctx, bridge)
        sent = wire.since_mark()

    assert (event.cluster.size, event.cluster.ad_count) == (4, 4)
    # Cluster membership read by four statements: which clusters hold the pair's images (with the
    # pair's images), the clusters' members, their edges, the held pairs among their images. Before:
    # ten (the bridge rule's reads, the plan's again per cluster, the event's, the release's).
    assert sent.reading("cluster_members") == 4
    # The touched clusters' members and edges: once for both clusters (the bridge rule read them,
    # then the plan read them again, one cluster at a time).
    assert sent.matching("ad_id FROM cluster_members") == 1
    assert sent.matching("clustered_at IS NOT NULL", "JOIN cluster_members") == 1
    # Each touched cluster's row locked once.
    assert sent.matching("FROM duplicate_clusters", "FOR UPDATE") == 1


async def test_a_pair_starting_a_cluster_asks_once_which_clusters_it_touches(
    clean_db: str, tmp_path: Path
) -> None:
    async with traced_pool(clean_db, tmp_path / "wire") as (pool, wire):
        one, two = [await begun_image(pool, ad) for ad in (1, 2)]
        pair = await _verified(pool, one, two)

        wire.mark()
        [event] = await cluster_verified(ClusterContext(pool), pair)
        sent = wire.since_mark()

    assert event.cluster.cluster_id == ids.cluster_id_for_pair(pair.pair_id)
    # Which clusters hold the pair's images (none), read with the pair's images; nothing else reads
    # cluster membership. Before: asked twice, then the event's and the release's reads.
    assert sent.reading("cluster_members") == 1
