"""imgdup.cluster-changes.v1 messages, in order -> the clusters a consumer holds: the reference consumer
of docs/events.md (drops repeats by event_id, applies each `type` as the contract says)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import (
    ClusterChangeV1,
    ClustersMergedV1,
    ClusterSplitV1,
    PairClusteredV1,
    PairRetractedV1,
)


@dataclass
class ClusterConsumer:
    clusters: dict[str, set[str]] = field(default_factory=dict)  # cluster id -> image ids
    pairs: dict[str, str] = field(default_factory=dict)  # duplicate pair id -> its cluster
    seen: set[str] = field(default_factory=set)

    def apply_json(self, value: bytes) -> None:
        self.apply(ClusterChangeV1.model_validate_json(value))

    def apply(self, message: ClusterChangeV1) -> None:
        change = message.root
        if change.event_id in self.seen:  # at-least-once delivery: a repeat changes nothing
            return
        self.seen.add(change.event_id)
        if isinstance(change, PairClusteredV1):
            members = self.clusters.setdefault(change.cluster_id, set())
            members |= {change.original.image_id, change.duplicate.image_id}
            self.pairs[change.pair_id] = change.cluster_id
        elif isinstance(change, ClustersMergedV1):
            moved = self.clusters.pop(change.absorbed, set())
            self.clusters.setdefault(change.survivor, set()).update(moved, {m.image_id for m in change.moved})
        elif isinstance(change, PairRetractedV1):
            self.pairs.pop(change.pair_id, None)  # a split follows if the cluster fell apart
        elif isinstance(change, ClusterSplitV1):
            self.clusters.pop(change.cluster_id, None)
            for piece in change.pieces:
                self.clusters[piece.cluster_id] = {m.image_id for m in piece.members}
