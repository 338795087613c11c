"""The one place that names topics: name, key, partition count and role of every topic imgdup uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int | None  # None -> settings.topic_partitions
    doc: str


# Input, fixed by the portal. Key: ad_id. Payload: schemas AdImagesCreatedV1.
AD_IMAGES_CREATED = TopicSpec(
    "ad.images.created", "ad_id", None, "Portal event: an ad's images were created (input)."
)
# Same payload as AD_IMAGES_CREATED, produced by `imgdup replay` to backfill or re-process.
AD_IMAGES_REPLAY = TopicSpec(
    "imgdup.ad-images.replay.v1", "ad_id", None, "Replayed ad events (backfill, re-processing)."
)
# Internal. Key: ad_id of the image whose search found the candidate.
IMAGE_CANDIDATES = TopicSpec(
    "imgdup.image-candidates.v1", "ad_id", None, "ANN candidate pairs awaiting verification."
)
# Internal. One partition: the clusterer is a single writer so cluster merges never race.
# Payload: VerifiedPairV1, or PairReviewV1 (a moderator's verdict, a clustered pair rejected).
PAIRS_VERIFIED = TopicSpec(
    "imgdup.pairs-verified.v1",
    "pair_id",
    1,
    "Verified duplicate pairs and pair reviews, input of the clusterer.",
)
# Public contract for fraud systems. Key: ad_id of the later-seen ad. Payload: DuplicateEventV1.
DUPLICATES = TopicSpec(
    "imgdup.duplicates.v1", "ad_id", None, "Public duplicate events for downstream consumers."
)
# Public. Every change of cluster truth (pair clustered or retracted, clusters merged or split) in
# the clusterer's one order: one partition, so a consumer applying them in order holds the clusters.
# Key: an ad id the change concerns. Payload: ClusterChangeV1 (`type` tells the kinds apart).
CLUSTER_CHANGES = TopicSpec(
    "imgdup.cluster-changes.v1", "ad_id", 1, "Public cluster changes: clustered, retracted, merged, split."
)
# Failed messages with the reason in headers and payload. Payload: DeadLetterV1.
DEAD_LETTERS = TopicSpec(
    "imgdup.dead-letters.v1", "original key", None, "Messages that could not be processed."
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    AD_IMAGES_CREATED,
    AD_IMAGES_REPLAY,
    IMAGE_CANDIDATES,
    PAIRS_VERIFIED,
    DUPLICATES,
    CLUSTER_CHANGES,
    DEAD_LETTERS,
)


def partitions_of(spec: TopicSpec, default_partitions: int) -> int:
    return spec.partitions if spec.partitions is not None else default_partitions
