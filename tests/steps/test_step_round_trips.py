"""The three roles' hot paths on a small feed, their Postgres traffic counted on the wire (libpq's
trace, tests/helpers/wire.py): statements, round trips and transactions per image (images role), per
candidate (verifier) and per verified pair (clusterer). Counts are deterministic: pinned, so a change
that adds a round trip to a hot path fails here. The numbers are written down in docs/capacity.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from helpers.fakes import Web
from helpers.photos import brighter, crop, jpeg, photo, watermark
from helpers.wire import Sent, Wire, traced_pool

from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.steps.cluster import ClusterContext, changes_published, cluster_verified, pending_changes
from imgdup.steps.index import IndexContext, finish_event, index_ad
from imgdup.steps.verify import VerifyContext, verify_candidate
from imgdup_core.hashing import PHASH_CANDIDATE_DISTANCE
from schemas import AdImagesCreatedV1, CandidatePairV1, VerifiedPairV1

# Four ads of two images: one photo re-posted in three of them (a cluster that grows), another
# cropped in a second ad, the rest distinct.
FEED = {
    1: {"astronaut": lambda: photo("astronaut"), "coffee": lambda: photo("coffee")},
    2: {"astronaut-wm": lambda: watermark(photo("astronaut")), "chelsea": lambda: photo("chelsea")},
    3: {"astronaut-br": lambda: brighter(photo("astronaut")), "coffee-crop": lambda: crop(photo("coffee"))},
    4: {"rocket": lambda: photo("rocket"), "camera": lambda: photo("camera")},
}
IMAGES = sum(len(images) for images in FEED.values())


@dataclasses.dataclass
class Traffic:
    index: list[Sent] = dataclasses.field(default_factory=list)  # per ad event
    verify: list[Sent] = dataclasses.field(default_factory=list)  # per candidate
    redelivered: list[Sent] = dataclasses.field(default_factory=list)  # per candidate, verified again
    cluster: list[Sent] = dataclasses.field(default_factory=list)  # per verified pair
    verified: int = 0


def _event(ad_id: int, urls: Sequence[str]) -> AdImagesCreatedV1:
    return AdImagesCreatedV1(
        schema_version=1,
        event_id=f"evt-{ad_id}",
        ad_id=ad_id,
        source="olx.pt",
        images=list(urls),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def _feed(index: IndexContext, web: Web, blobs: FilesystemBlobStore, dsn: str, folder: Path) -> Traffic:
    for images in FEED.values():
        for name, make in images.items():
            web.files[f"https://cdn.example/{name}.jpg"] = jpeg(make())
    traffic = Traffic()
    async with traced_pool(dsn, folder) as (pool, wire):
        # A low bar: most candidates are rejected, as in production.
        index = dataclasses.replace(
            index, pool=pool, phash_max_distance=PHASH_CANDIDATE_DISTANCE, min_score=0.0
        )
        verify = VerifyContext(
            pool=pool, run_cpu=index.run_cpu, embedding_model=index.embedding_model, blobs=blobs
        )
        cluster = ClusterContext(pool)
        candidates: list[CandidatePairV1] = []
        for ad_id, images in FEED.items():
            event = _event(ad_id, [f"https://cdn.example/{name}.jpg" for name in images])
            wire.mark()
            result = await index_ad(index, event)
            await finish_event(index, event, published=len(result.candidates))
            traffic.index.append(wire.since_mark())
            for candidate in result.candidates:
                await _verify_and_cluster(verify, cluster, wire, candidate, traffic)
            candidates += result.candidates
        # Every candidate delivered again (a rebalance, a crash before the commit of offsets).
        for candidate in candidates:
            wire.mark()
            await verify_candidate(verify, candidate)
            traffic.redelivered.append(wire.since_mark())
    return traffic


async def _verify_and_cluster(
    verify: VerifyContext, cluster: ClusterContext, wire: Wire, candidate: CandidatePairV1, traffic: Traffic
) -> None:
    wire.mark()
    handed_on = await verify_candidate(verify, candidate)
    traffic.verify.append(wire.since_mark())
    if not isinstance(handed_on, VerifiedPairV1):
        return
    traffic.verified += 1
    wire.mark()
    await cluster_verified(cluster, handed_on)
    pending = await pending_changes(cluster)  # as the clusterer's step: publish the outbox, mark it
    await changes_published(cluster, [item.seq for item in pending])
    traffic.cluster.append(wire.since_mark())


def _total(sent: list[Sent]) -> tuple[int, int, int]:
    """Statements, round trips, explicit transactions (BEGINs)."""
    return (
        sum(len(s.statements) for s in sent),
        sum(s.round_trips for s in sent),
        sum(s.transactions for s in sent),
    )


async def _traffic(
    index_context: IndexContext, web: Web, blobs: FilesystemBlobStore, clean_db: str, tmp_path: Path
) -> Traffic:
    traffic = await _feed(index_context, web, blobs, clean_db, tmp_path / "wire")
    # The feed itself, pinned: the counts below are of this much work.
    assert (IMAGES, len(traffic.index), len(traffic.verify), traffic.verified) == (8, 4, 21, 4)
    return traffic


async def test_the_images_role_sends_one_round_trip_per_statement_and_no_transaction(
    index_context: IndexContext, web: Web, blobs: FilesystemBlobStore, clean_db: str, tmp_path: Path
) -> None:
    traffic = await _traffic(index_context, web, blobs, clean_db, tmp_path)
    # Per ad event: begin_event, save_indexed_images, the pHash channel, add_candidates and
    # finish_event, one statement each, in autocommit (each atomic on its own). Before: 38
    # statements, 76 round trips, 19 transactions (docs/capacity.md).
    assert _total(traffic.index) == (19, 19, 0)
    # The first ad has no neighbour yet: no candidates to add.
    assert [len(s.statements) for s in traffic.index] == [4, 5, 5, 5]


async def test_the_verifier_sends_two_statements_per_candidate(
    index_context: IndexContext, web: Web, blobs: FilesystemBlobStore, clean_db: str, tmp_path: Path
) -> None:
    traffic = await _traffic(index_context, web, blobs, clean_db, tmp_path)
    # load_for_verification and record_verdict, each one statement in autocommit (unchanged: it
    # was already so); a round trip more the first time a connection prepares a statement that
    # psycopg runs often (twice here).
    assert _total(traffic.verify) == (42, 44, 0)
    # Delivered again: the load tells the pair was decided; each of the 17 rejected ones asks
    # whether the clusterer must review it (one statement in autocommit: it was a transaction of
    # its own, (38, 73, 17) before); a clustered one is done. One round trip more: psycopg prepares
    # the load once more on this connection.
    assert _total(traffic.redelivered) == (38, 39, 0)


async def test_the_clusterer_sends_one_transaction_per_verified_pair_in_few_round_trips(
    index_context: IndexContext, web: Web, blobs: FilesystemBlobStore, clean_db: str, tmp_path: Path
) -> None:
    traffic = await _traffic(index_context, web, blobs, clean_db, tmp_path)
    # Per verified pair: its transaction (pipelined: the pair's row locked with what every path
    # needs of it in one round trip, the touched clusters locked and read in one more, the writes
    # and the held pairs' read in one), then the outbox read and marked, one statement each.
    # Before: 74 statements, 99 round trips, 12 transactions (docs/capacity.md).
    assert _total(traffic.cluster) == (42, 30, 4)
    # In order: a pair starts the astronaut's cluster, the next grows it (the bridge rule reads the
    # held pairs), the next is one more edge inside it, the last starts the coffee's cluster.
    assert [(len(s.statements), s.round_trips) for s in traffic.cluster] == [
        (9, 7),
        (13, 8),
        (11, 8),
        (9, 7),
    ]
