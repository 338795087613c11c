"""A verified pair + the clusters its images sit in + the other verified pairs between those clusters
-> whether the pair may join them (pure): one marginal edge never merges two established groups.

One false verified pair between two real clusters makes every cross pair of their images count as a
duplicate (issue 11: fused-v5, pair precision 99.53 % but cluster precision 93.81 %). So a pair whose
images sit in two different *established* clusters (each of at least `established_min_ads` ads: a
group several ads already agree on) is a *bridge*, and a bridge merges them only on evidence that a
single marginal edge lacks: it is strong (fused probability at or above `min_probability`), exact
(identical pixels), confirmed by a moderator, or a second verified pair already links the same two
clusters (two independent edges). Otherwise it is *held*: still a verified duplicate pair, but not an
edge of any cluster until a later edge or verdict between the same clusters arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# The bridge bar, measured on the TRAINING split only (`python -m bench.quality.bridge_bar` over the
# evidence fused-v5 was calibrated on, bench/results/bridge-bar-fused-v5.txt): its 4 false verified
# pairs have fused probabilities 0.928-0.954 (shared screenshot pages), none at or above 0.96; 0.97
# keeps a margin and still lets 83.8 % of the true verified pairs bridge on their own.
DEFAULT_BRIDGE_MIN_PROBABILITY = 0.97
DEFAULT_ESTABLISHED_MIN_ADS = 2

Decision = Literal["join", "strong", "exact", "confirmed", "second_edge", "held"]


@dataclass(frozen=True)
class BridgeRule:
    min_probability: float = DEFAULT_BRIDGE_MIN_PROBABILITY
    established_min_ads: int = DEFAULT_ESTABLISHED_MIN_ADS

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_probability <= 1.0:
            raise ValueError(f"bridge min_probability {self.min_probability} is not a probability")
        if self.established_min_ads < 1:
            raise ValueError("established_min_ads must be at least 1")

    def established(self, members: Mapping[str, int] | None) -> bool:
        """A cluster (its image -> ad members) several ads already agree on; None: no cluster."""
        return members is not None and len(set(members.values())) >= self.established_min_ads


@dataclass(frozen=True)
class BridgeEvidence:
    """What the pair itself brings."""

    probability: float  # the verifier's fused probability that it is a duplicate
    exact: bool  # identical stored pixels
    confirmed: bool  # a moderator confirmed it


def decide(
    rule: BridgeRule,
    pair: BridgeEvidence,
    members_a: Mapping[str, int] | None,
    members_b: Mapping[str, int] | None,
    *,
    same_cluster: bool,
    other_edges: int,
) -> Decision:
    """`members_a`/`members_b`: the clusters of the pair's two images (None: in none); `same_cluster`:
    both images already share one; `other_edges`: the other verified pairs that link the same two
    clusters (held ones). `join` when the pair is no bridge; the reason it may merge; or `held`."""
    if same_cluster or not (rule.established(members_a) and rule.established(members_b)):
        return "join"
    if pair.confirmed:
        return "confirmed"
    if pair.exact:
        return "exact"
    if pair.probability >= rule.min_probability:
        return "strong"
    if other_edges > 0:
        return "second_edge"
    return "held"
