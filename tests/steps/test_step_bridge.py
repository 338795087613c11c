"""imgdup.steps.cluster on a real Postgres, without Kafka: a marginal verified pair between two
established clusters (a bridge) is held out of clusters, settled, and merges them only when a second
edge, a moderator's confirm or a merge by another route arrives; `not_duplicate` rejects it quietly."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from helpers.cluster_consumer import ClusterConsumer
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.steps.cluster import (
    ClusterContext,
    changes_published,
    cluster_verified,
    pending_changes,
    review_pair,
)
from imgdup.store import moderation, pairs, reads, truth
from imgdup.store.progress import progress
from imgdup_core.bridges import BridgeRule
from schemas import EvidenceV1, PairClusteredV1, PairReviewV1, VerifiedPairV1, VersionsV1
from tests.helpers.ads import Side, begun_image

VERSIONS = VersionsV1(embedding_model="model-v1", verifier="fused-v5")
RULE = BridgeRule(min_probability=0.97, established_min_ads=2)
STRONG, MARGINAL = 0.99, 0.93


async def _image(pool: AsyncConnectionPool, ad_id: int) -> Side:
    return await begun_image(pool, ad_id)


async def _verified(pool: AsyncConnectionPool, x: Side, y: Side, probability: float) -> VerifiedPairV1:
    """A pair stored as a candidate, then decided a duplicate at `probability` (as the verifier does)."""
    (a, ad_a), (b, ad_b) = sorted((x, y))
    pair = ids.pair_id(a, b)
    await pairs.add_candidates(
        pool, [pairs.CandidateRow(pair, a, ad_a, b, ad_b, 0.9, False)], verifier_version=VERSIONS.verifier
    )
    evidence = EvidenceV1(
        phash_distance=12,
        phash_mirrored=False,
        embedding_cosine=0.9,
        sift_inliers=40,
        sift_mirrored=False,
        ssim=0.5,
        score=probability,
        compared="full/full",
    )
    verified = await pairs.save_verdict(pool, pairs.VerdictRow(pair, True, probability, evidence, VERSIONS))
    assert verified is not None
    return verified


def _review(pair_id: str) -> PairReviewV1:
    return PairReviewV1.model_validate(
        {"pair_id": pair_id, "cause": "moderator", "requested_at": datetime.now(UTC)}
    )


async def _changes(ctx: ClusterContext, consumer: ClusterConsumer) -> list[str]:
    pending = await pending_changes(ctx)
    for item in pending:
        consumer.apply(item.change)
    await changes_published(ctx, [item.seq for item in pending])
    return [item.change.root.type for item in pending]


def _live(dsn: str) -> list[set[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT m.cluster_id::text, m.image_id::text FROM cluster_members m JOIN duplicate_clusters c"
            " USING (cluster_id) WHERE c.merged_into IS NULL AND c.dissolved_at IS NULL"
        ).fetchall()
    clusters: dict[str, set[str]] = {}
    for cluster, image in rows:
        clusters.setdefault(cluster, set()).add(image)
    return sorted(clusters.values(), key=min)


def _pair_state(dsn: str, pair_id: str) -> tuple[str, bool, bool, bool]:
    """status, is_duplicate, an edge (clustered_at), held (held_at)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status, is_duplicate, clustered_at IS NOT NULL, held_at IS NOT NULL FROM duplicates"
            " WHERE pair_id = %s",
            (pair_id,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


async def _two_groups(
    pool: AsyncConnectionPool, ctx: ClusterContext, consumer: ClusterConsumer
) -> list[Side]:
    """Images of ads 1..4: clusters {1, 2} and {3, 4}, each of two ads (established)."""
    sides = [await _image(pool, ad) for ad in (1, 2, 3, 4)]
    for x, y in ((sides[0], sides[1]), (sides[2], sides[3])):
        assert len(await cluster_verified(ctx, await _verified(pool, x, y, STRONG))) == 1
    assert await _changes(ctx, consumer) == ["pair_clustered", "pair_clustered"]
    return sides


async def test_a_marginal_bridge_is_held_and_settled_then_merges_on_a_second_edge(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool, bridge=RULE), ClusterConsumer()
    one, two, three, four = await _two_groups(pool, ctx, consumer)
    groups = [{one[0], two[0]}, {three[0], four[0]}]

    first = await _verified(pool, two, three, MARGINAL)
    assert await cluster_verified(ctx, first) == []  # no duplicate event while held
    assert await _changes(ctx, consumer) == []  # and no cluster change
    assert _live(clean_db) == groups
    assert _pair_state(clean_db, first.pair_id) == ("clustered", True, False, True)
    # Settled: no re-drive spins on it, `imgdup wait` is done.
    assert await truth.pairs_to_review(pool) == []
    done = await progress(pool)
    assert (done.pairs_unsettled, done.pairs_verified, done.pairs_candidate) == (0, 0, 0)
    # Still a verified duplicate pair for the API (pair precision is the pair-level contract).
    listed = {ad["ad_id"]: ad["pairs"] for ad in await reads.duplicates_of_ad(pool, two[1])}
    assert [(p["pair_id"], p["held"], p["cluster_id"]) for p in listed[three[1]]] == [
        (first.pair_id, True, None)
    ]
    assert [p["held"] for p in listed[one[1]]] == [False]
    detail = await moderation.pair_detail(pool, first.pair_id)
    assert detail is not None and detail["cluster_id"] is None  # the admin page: in no cluster
    # A redelivery changes nothing.
    assert await cluster_verified(ctx, first) == []
    assert await _changes(ctx, consumer) == []

    second = await _verified(pool, one, four, MARGINAL)
    events = await cluster_verified(ctx, second)
    assert [e.pair_id for e in events] == [second.pair_id, first.pair_id]
    assert await _changes(ctx, consumer) == ["clusters_merged", "pair_clustered", "pair_clustered"]
    assert _live(clean_db) == [groups[0] | groups[1]]
    assert sorted(consumer.clusters.values(), key=min) == _live(clean_db)
    assert _pair_state(clean_db, first.pair_id) == ("clustered", True, True, False)
    assert _pair_state(clean_db, second.pair_id) == ("clustered", True, True, False)
    assert await truth.pairs_to_review(pool) == []


async def test_a_strong_bridge_merges_and_releases_a_held_pair_between_the_same_clusters(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool, bridge=RULE), ClusterConsumer()
    one, two, three, four = await _two_groups(pool, ctx, consumer)
    held = await _verified(pool, two, three, MARGINAL)
    assert await cluster_verified(ctx, held) == []

    strong = await _verified(pool, one, four, STRONG)
    assert [e.pair_id for e in await cluster_verified(ctx, strong)] == [strong.pair_id, held.pair_id]
    assert await _changes(ctx, consumer) == ["clusters_merged", "pair_clustered", "pair_clustered"]
    assert len(_live(clean_db)) == 1
    assert sorted(consumer.clusters.values(), key=min) == _live(clean_db)


async def test_a_moderator_confirm_merges_a_held_bridge(pool: AsyncConnectionPool, clean_db: str) -> None:
    ctx, consumer = ClusterContext(pool, bridge=RULE), ClusterConsumer()
    _, two, three, _ = await _two_groups(pool, ctx, consumer)
    held = await _verified(pool, two, three, MARGINAL)
    assert await cluster_verified(ctx, held) == []

    await moderation.record_verdict(pool, held.pair_id, verdict="confirmed", moderator="ana", note=None)
    # The re-drive would find it too (a confirmed pair that is no edge).
    assert await truth.pairs_to_review(pool) == [held.pair_id]
    (event,) = await review_pair(ctx, _review(held.pair_id))
    assert event.pair_id == held.pair_id and event.confidence == 1.0
    pending = [item.change.root for item in await pending_changes(ctx)]
    assert [c.type for c in pending] == ["clusters_merged", "pair_clustered"]
    assert isinstance(pending[1], PairClusteredV1) and pending[1].by == "moderator"
    await _changes(ctx, consumer)
    assert len(_live(clean_db)) == 1
    assert sorted(consumer.clusters.values(), key=min) == _live(clean_db)
    assert await truth.pairs_to_review(pool) == []


async def test_not_duplicate_on_a_held_pair_rejects_it_without_a_split(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool, bridge=RULE), ClusterConsumer()
    one, two, three, four = await _two_groups(pool, ctx, consumer)
    groups = _live(clean_db)
    held = await _verified(pool, two, three, MARGINAL)
    assert await cluster_verified(ctx, held) == []

    await moderation.record_verdict(
        pool, held.pair_id, verdict="not_duplicate", moderator="ana", note="twins"
    )
    assert await review_pair(ctx, _review(held.pair_id)) == []
    # It was never announced: nothing to retract, no cluster lost an edge.
    assert await _changes(ctx, consumer) == []
    assert _live(clean_db) == groups
    assert _pair_state(clean_db, held.pair_id) == ("rejected", True, False, False)
    assert await truth.pairs_to_review(pool) == []

    # A rejected pair is no second edge: a later marginal bridge is held in its turn.
    later = await _verified(pool, one, four, MARGINAL)
    assert await cluster_verified(ctx, later) == []
    assert _live(clean_db) == groups
    assert _pair_state(clean_db, later.pair_id) == ("clustered", True, False, True)


async def test_a_marginal_pair_that_grows_a_cluster_is_no_bridge(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool, bridge=RULE), ClusterConsumer()
    *_, three, _ = await _two_groups(pool, ctx, consumer)
    five = await _image(pool, 5)
    grown = await _verified(pool, three, five, MARGINAL)
    assert [e.pair_id for e in await cluster_verified(ctx, grown)] == [grown.pair_id]
    assert await _changes(ctx, consumer) == ["pair_clustered"]
    assert _pair_state(clean_db, grown.pair_id) == ("clustered", True, True, False)


async def test_a_loose_image_on_a_marginal_edge_never_pulls_its_own_group_in(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    """Measured on the quality bench (bench/results/quality-fused-v5-bridge-first.md): a screenshot
    copy, still loose, joins another photo's cluster on one false marginal pair; its own true strong
    pairs then merged its photo's cluster in. The two groups are joined through one marginal edge."""
    ctx, consumer = ClusterContext(pool, bridge=RULE), ClusterConsumer()
    one, two, three, four = await _two_groups(pool, ctx, consumer)
    copy = await _image(pool, 5)  # a copy of {3, 4}'s photo, falsely matched to 2 first
    false = await _verified(pool, two, copy, MARGINAL)
    assert len(await cluster_verified(ctx, false)) == 1  # a loose image joins: no bridge yet
    assert await _changes(ctx, consumer) == ["pair_clustered"]

    true = await _verified(pool, copy, three, STRONG)
    assert await cluster_verified(ctx, true) == []  # held: it would join {1, 2} and {3, 4} through 2~5
    assert await _changes(ctx, consumer) == []
    assert _live(clean_db) == [{one[0], two[0], copy[0]}, {three[0], four[0]}]
    assert _pair_state(clean_db, true.pair_id) == ("clustered", True, False, True)
    # Another true pair of the copy with its group: the same single marginal edge still joins them.
    again = await _verified(pool, copy, four, STRONG)
    assert await cluster_verified(ctx, again) == []

    # An independent second link between the groups (1~3) makes the join two edges deep: all merge.
    link = await _verified(pool, one, three, MARGINAL)
    events = await cluster_verified(ctx, link)
    assert sorted(e.pair_id for e in events) == sorted([link.pair_id, true.pair_id, again.pair_id])
    assert len(_live(clean_db)) == 1
    await _changes(ctx, consumer)
    assert sorted(consumer.clusters.values(), key=min) == _live(clean_db)
