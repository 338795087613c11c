"""imgdup.steps.cluster on a real Postgres, without Kafka: verified pairs in; clusters grown, created and
merged, and the public duplicate event of each pair (the same event again on redelivery) out."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.steps.cluster import ClusterContext, cluster_verified
from imgdup.store import pairs
from imgdup.store.events import begin_event
from schemas import AdImagesCreatedV1, EvidenceV1, ImageRef, VerifiedPairV1, VersionsV1

EVIDENCE = EvidenceV1(
    phash_distance=2,
    phash_mirrored=False,
    embedding_cosine=0.97,
    sift_inliers=120,
    sift_mirrored=False,
    ssim=0.9,
    score=0.99,
    compared="full/full",
)
VERSIONS = VersionsV1(embedding_model="model-v1", verifier="fused-v3")


async def _image(
    pool: AsyncConnectionPool, ad_id: int, created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
) -> str:
    url = f"https://cdn.example/{ad_id}.jpg"
    event = AdImagesCreatedV1(
        schema_version=1,
        event_id=f"evt-{ad_id}",
        ad_id=ad_id,
        source="olx.pt",
        seller_id=f"seller-{ad_id}",
        images=[url],
        created_at=created_at,
    )
    await begin_event(pool, event)
    return ids.image_id(ad_id, url)


async def _verified(pool: AsyncConnectionPool, x: tuple[str, int], y: tuple[str, int]) -> VerifiedPairV1:
    """A pair stored as a candidate, then decided a duplicate (as the verifier step leaves it)."""
    (a, ad_a), (b, ad_b) = sorted((x, y))
    pair = ids.pair_id(a, b)
    await pairs.add_candidates(
        pool, [pairs.CandidateRow(pair, a, ad_a, b, ad_b, 0.97, False)], verifier_version=VERSIONS.verifier
    )
    verdict = pairs.VerdictRow(pair, True, 0.99, EVIDENCE, VERSIONS)
    verified = await pairs.save_verdict(pool, verdict)
    assert verified is not None
    assert verified.a == ImageRef(image_id=a, ad_id=ad_a)
    return verified


def _clusters(dsn: str) -> list[tuple[str, int, str | None]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT cluster_id::text, size, merged_into::text FROM duplicate_clusters ORDER BY created_at"
        ).fetchall()


async def test_pairs_create_grow_and_merge_clusters_with_one_event_each(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx = ClusterContext(pool)
    one, two, three, four = [(await _image(pool, ad), ad) for ad in (1, 2, 3, 4)]

    first = await _verified(pool, one, two)
    (event,) = await cluster_verified(ctx, first)
    assert event.cluster.cluster_id == ids.cluster_id_for_pair(first.pair_id)
    assert (event.cluster.size, event.cluster.ad_count) == (2, 2)
    assert event.event_id == ids.duplicate_event_id(first.pair_id, VERSIONS.verifier)
    assert event.evidence == EVIDENCE
    assert {event.original.ad_id, event.duplicate.ad_id} == {1, 2}
    # A redelivery changes nothing and yields the same event.
    assert await cluster_verified(ctx, first) == [event]

    (other,) = await cluster_verified(ctx, await _verified(pool, three, four))
    assert other.cluster.cluster_id != event.cluster.cluster_id

    # A strong bridge (0.99, above IMGDUP_CLUSTER_BRIDGE_MIN_PROBABILITY) merges the two clusters.
    (bridge,) = await cluster_verified(ctx, await _verified(pool, two, three))
    assert bridge.cluster.cluster_id == event.cluster.cluster_id  # the older cluster survives
    assert bridge.cluster.size == 4
    assert _clusters(clean_db) == [
        (event.cluster.cluster_id, 4, None),
        (other.cluster.cluster_id, 2, event.cluster.cluster_id),
    ]


async def test_a_pair_that_is_not_verified_is_not_clustered(pool: AsyncConnectionPool, clean_db: str) -> None:
    a, b = sorted([(await _image(pool, 1), 1), (await _image(pool, 2), 2)])
    pair = ids.pair_id(a[0], b[0])
    await pairs.add_candidates(
        pool, [pairs.CandidateRow(pair, a[0], 1, b[0], 2, 0.5, False)], verifier_version=VERSIONS.verifier
    )
    assert await pairs.save_verdict(pool, pairs.VerdictRow(pair, False, 0.9, EVIDENCE, VERSIONS)) is None
    stray = VerifiedPairV1(
        pair_id=pair,
        a=ImageRef(image_id=a[0], ad_id=1),
        b=ImageRef(image_id=b[0], ad_id=2),
        confidence=0.9,
        evidence=EVIDENCE,
        versions=VERSIONS,
        verified_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert await cluster_verified(ClusterContext(pool), stray) == []
    assert _clusters(clean_db) == []


async def test_the_original_is_the_ad_the_portal_created_first_not_the_one_imgdup_saw_first(
    pool: AsyncConnectionPool,
) -> None:
    """A backfill into a fresh database sees the newer ad first: the original must not flip."""
    newer = (await _image(pool, 7, datetime(2026, 3, 1, tzinfo=UTC)), 7)
    older = (await _image(pool, 9, datetime(2025, 6, 1, tzinfo=UTC)), 9)
    (event,) = await cluster_verified(ClusterContext(pool), await _verified(pool, newer, older))
    assert (event.original.ad_id, event.duplicate.ad_id) == (9, 7)
    assert event.original.created_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert event.duplicate.created_at == datetime(2026, 3, 1, tzinfo=UTC)


async def test_an_ad_re_created_keeps_its_first_created_at(pool: AsyncConnectionPool) -> None:
    """A replayed or re-sent event with a later created_at does not make an ad younger."""
    first = (await _image(pool, 5, datetime(2025, 1, 1, tzinfo=UTC)), 5)
    other = (await _image(pool, 6, datetime(2025, 2, 1, tzinfo=UTC)), 6)
    await _image(pool, 5, datetime(2026, 1, 1, tzinfo=UTC))
    (event,) = await cluster_verified(ClusterContext(pool), await _verified(pool, other, first))
    assert event.original.ad_id == 5


async def test_a_created_at_in_the_future_is_stored_as_the_time_imgdup_saw_it(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    """A portal event from a skewed clock cannot claim to be created after every later copy."""
    await _image(pool, 11, datetime(2999, 1, 1, tzinfo=UTC))
    with psycopg.connect(clean_db) as conn:
        row = conn.execute("SELECT created_at <= now() FROM ads WHERE ad_id = 11").fetchone()
    assert row == (True,)
