"""imgdup.steps.cluster on a real Postgres, without Kafka, when the truth about a pair changes: a replay
under a stricter verifier version, and moderators' verdicts -> clusters kept connected, split or merged."""

from __future__ import annotations

import itertools
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
from imgdup.store import moderation, pairs, truth
from imgdup.store.progress import progress
from schemas import (
    ClusterSplitV1,
    EvidenceV1,
    PairRetractedV1,
    PairReviewV1,
    VerifiedPairV1,
    VersionsV1,
)
from schemas.wire import encode
from tests.helpers.ads import Side, begun_image

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
OLD = VersionsV1(embedding_model="model-v1", verifier="fused-v3")
STRICT = VersionsV1(embedding_model="model-v1", verifier="fused-strict")


async def _image(pool: AsyncConnectionPool, ad_id: int) -> Side:
    return await begun_image(pool, ad_id)


async def _decide(
    pool: AsyncConnectionPool,
    x: Side,
    y: Side,
    *,
    duplicate: bool,
    versions: VersionsV1,
    replay: bool = False,
) -> tuple[str, VerifiedPairV1 | None]:
    """A pair proposed (again, on replay) as a candidate and decided as the verifier step does."""
    (a, ad_a), (b, ad_b) = sorted((x, y))
    pair = ids.pair_id(a, b)
    await pairs.add_candidates(
        pool, [pairs.CandidateRow(pair, a, ad_a, b, ad_b, 0.97, replay)], verifier_version=versions.verifier
    )
    verdict = pairs.VerdictRow(pair, duplicate, 0.99 if duplicate else 0.2, EVIDENCE, versions)
    return pair, await pairs.save_verdict(pool, verdict)


def live_clusters(dsn: str) -> dict[str, set[str]]:
    """Live cluster id -> its member image ids, as Postgres holds them."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.cluster_id::text, m.image_id::text FROM duplicate_clusters c"
            " JOIN cluster_members m USING (cluster_id)"
            " WHERE c.merged_into IS NULL AND c.dissolved_at IS NULL"
        ).fetchall()
    clusters: dict[str, set[str]] = {}
    for cluster, image in rows:
        clusters.setdefault(cluster, set()).add(image)
    return clusters


async def _chain(pool: AsyncConnectionPool, ctx: ClusterContext, sides: list[Side]) -> list[str]:
    """Clusters sides[0]-sides[1]-...-sides[n] as one chain under the old verifier; the pair ids."""
    pair_ids = []
    for x, y in itertools.pairwise(sides):
        pair, verified = await _decide(pool, x, y, duplicate=True, versions=OLD)
        assert verified is not None and len(await cluster_verified(ctx, verified)) == 1
        pair_ids.append(pair)
    return pair_ids


async def test_a_stricter_verifier_replay_never_wedges_the_clusterer(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    """Defect: the replay reset clustered pairs to 'candidate', the snapshot lost their edges, and
    every later pair touching the cluster failed "not connected" (dead-lettered, stuck 'verified')."""
    ctx = ClusterContext(pool)
    one, two, three, four = [await _image(pool, ad) for ad in (1, 2, 3, 4)]
    await _chain(pool, ctx, [one, two, three])

    # The replay under a stricter version: 1-2 is rejected now, 2-3 still a duplicate.
    await _decide(pool, one, two, duplicate=False, versions=STRICT, replay=True)
    _, still = await _decide(pool, two, three, duplicate=True, versions=STRICT, replay=True)
    assert still is not None
    assert len(await cluster_verified(ctx, still)) == 1

    # A new pair touching the cluster is clustered too.
    _, new = await _decide(pool, three, four, duplicate=True, versions=STRICT)
    assert new is not None
    assert len(await cluster_verified(ctx, new)) == 1
    with psycopg.connect(clean_db) as conn:
        stuck = conn.execute("SELECT count(*) FROM duplicates WHERE status = 'verified'").fetchone()
    assert stuck == (0,)


async def _changes(ctx: ClusterContext, consumer: ClusterConsumer | None = None) -> list[str]:
    """The pending cluster changes' types, in order, applied to `consumer`, then marked published."""
    pending = await pending_changes(ctx)
    for item in pending:
        if consumer is not None:
            consumer.apply_json(encode(item.change))
    await changes_published(ctx, [item.seq for item in pending])
    return [item.change.root.type for item in pending]


def _review(pair_id: str, cause: str = "moderator") -> PairReviewV1:
    return PairReviewV1.model_validate(
        {"pair_id": pair_id, "cause": cause, "requested_at": datetime.now(UTC)}
    )


async def test_a_replay_rejection_retracts_the_pair_and_the_lone_image_leaves(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool), ClusterConsumer()
    one, two, three = [await _image(pool, ad) for ad in (1, 2, 3)]
    first, _ = await _chain(pool, ctx, [one, two, three])
    assert await _changes(ctx, consumer) == ["pair_clustered", "pair_clustered"]

    _, verified = await _decide(pool, one, two, duplicate=False, versions=STRICT, replay=True)
    assert verified is None
    # The verifier step hands a rejected edge to the clusterer (a plain rejection it does not).
    assert await pairs.rejected_needs_review(pool, first) is True
    plain, _ = await _decide(pool, one, three, duplicate=False, versions=STRICT)
    assert await pairs.rejected_needs_review(pool, plain) is False
    # Until the clusterer has retracted it, `imgdup wait` is not done and a re-drive hands it on.
    assert await truth.pairs_to_review(pool) == [first]
    assert (await progress(pool)).pairs_unsettled == 1
    assert await review_pair(ctx, _review(first, "verifier")) == []
    assert await pairs.rejected_needs_review(pool, first) is False
    assert await truth.pairs_to_review(pool) == [first]  # its changes are not published yet
    assert (await progress(pool)).model_dump(include={"pairs_unsettled", "changes_unpublished"}) == {
        "pairs_unsettled": 0,
        "changes_unpublished": 2,
    }
    assert await _changes(ctx, consumer) == ["pair_retracted", "cluster_split"]
    assert await truth.pairs_to_review(pool) == []
    done = await progress(pool)
    assert (done.pairs_unsettled, done.changes_unpublished, done.pairs_candidate, done.pairs_verified) == (
        0,
        0,
        0,
        0,
    )
    assert list(live_clusters(clean_db).values()) == [{two[0], three[0]}]
    assert consumer.clusters == live_clusters(clean_db)
    # Redelivered, replayed: nothing changes, nothing new to publish.
    assert await review_pair(ctx, _review(first, "verifier")) == []
    assert await _changes(ctx) == []


async def test_a_moderator_not_duplicate_on_a_bridge_splits_and_a_confirm_merges_again(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool), ClusterConsumer()
    sides = [await _image(pool, ad) for ad in (1, 2, 3, 4, 5)]
    chain = await _chain(pool, ctx, sides)
    await _changes(ctx, consumer)
    (old,) = live_clusters(clean_db)

    bridge = chain[2]  # 3-4: pieces {1,2,3} (keeps the id) and {4,5}
    await moderation.record_verdict(pool, bridge, verdict="not_duplicate", moderator="ana", note="twins")
    assert await review_pair(ctx, _review(bridge)) == []
    pending = await pending_changes(ctx)
    retracted, split = (item.change.root for item in pending)
    assert isinstance(retracted, PairRetractedV1) and isinstance(split, ClusterSplitV1)
    assert (retracted.by, retracted.moderator, retracted.note, retracted.cluster_id) == (
        "moderator",
        "ana",
        "twins",
        old,
    )
    assert {retracted.original.ad_id, retracted.duplicate.ad_id} == {3, 4}
    assert [piece.cluster_id == old for piece in split.pieces] == [True, False]
    assert [{m.ad_id for m in piece.members} for piece in split.pieces] == [{1, 2, 3}, {4, 5}]
    assert split.left == [] and split.dissolved is False
    await _changes(ctx, consumer)
    assert consumer.clusters == live_clusters(clean_db)
    assert len(consumer.clusters) == 2

    # A re-verification that calls the pair a duplicate again does not override the moderator.
    _, again = await _decide(pool, sides[2], sides[3], duplicate=True, versions=STRICT, replay=True)
    assert again is not None
    assert await cluster_verified(ctx, again) == []
    assert await _changes(ctx) == []

    # The moderator changes their mind: the pair joins the two pieces again, a merge like any other.
    await moderation.record_verdict(pool, bridge, verdict="confirmed", moderator="ana", note=None)
    (event,) = await review_pair(ctx, _review(bridge))
    assert event.confidence == 1.0
    assert await _changes(ctx, consumer) == ["clusters_merged", "pair_clustered"]
    assert list(live_clusters(clean_db)) == [old]
    assert consumer.clusters == live_clusters(clean_db)


async def test_a_confirmed_pair_is_pinned_against_the_verifier(
    pool: AsyncConnectionPool, clean_db: str
) -> None:
    ctx, consumer = ClusterContext(pool), ClusterConsumer()
    one, two, three, four = [await _image(pool, ad) for ad in (1, 2, 3, 4)]
    (pinned,) = await _chain(pool, ctx, [one, two])
    await moderation.record_verdict(pool, pinned, verdict="confirmed", moderator="ana", note=None)
    # Re-verification rejects it: it stays clustered.
    await _decide(pool, one, two, duplicate=False, versions=STRICT, replay=True)
    assert await review_pair(ctx, _review(pinned, "verifier")) == []
    assert await _changes(ctx, consumer) == ["pair_clustered"]
    assert list(live_clusters(clean_db).values()) == [{one[0], two[0]}]

    # A pair the verifier rejected and a moderator confirmed is clustered.
    never, verified = await _decide(pool, three, four, duplicate=False, versions=OLD)
    assert verified is None
    await moderation.record_verdict(pool, never, verdict="confirmed", moderator="ana", note=None)
    (event,) = await review_pair(ctx, _review(never))
    assert event.pair_id == never
    assert await _changes(ctx, consumer) == ["pair_clustered"]
    assert consumer.clusters == live_clusters(clean_db)
    assert len(consumer.clusters) == 2

    # The last edge of a cluster retracted: it dissolves, both images leave.
    await moderation.record_verdict(pool, never, verdict="not_duplicate", moderator="bo", note=None)
    assert await review_pair(ctx, _review(never)) == []
    assert await _changes(ctx, consumer) == ["pair_retracted", "cluster_split"]
    assert consumer.clusters == live_clusters(clean_db)
    assert list(live_clusters(clean_db).values()) == [{one[0], two[0]}]
