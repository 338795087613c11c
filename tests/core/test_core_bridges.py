"""Consumes imgdup_core.bridges.decide: a verified pair between two established clusters (a bridge)
merges them only when strong, exact, confirmed or backed by a second edge; otherwise it is held."""

from __future__ import annotations

import pytest

from imgdup_core.bridges import BridgeEvidence, BridgeRule, decide

RULE = BridgeRule(min_probability=0.97, established_min_ads=2)
GROUP_A = {"a1": 1, "a2": 2}  # two ads agree: established
GROUP_B = {"b1": 3, "b2": 4, "b3": 5}
ONE_AD = {"c1": 6, "c2": 6}  # two images of one ad: not (yet) a group of ads
MARGINAL = BridgeEvidence(probability=0.93, exact=False, confirmed=False)


def test_a_marginal_edge_between_two_established_clusters_is_held() -> None:
    assert decide(RULE, MARGINAL, GROUP_A, GROUP_B, same_cluster=False, other_edges=0) == "held"


@pytest.mark.parametrize(
    ("evidence", "reason"),
    [
        (BridgeEvidence(probability=0.97, exact=False, confirmed=False), "strong"),  # at the bar
        (BridgeEvidence(probability=0.999, exact=False, confirmed=False), "strong"),
        (BridgeEvidence(probability=0.93, exact=True, confirmed=False), "exact"),
        (BridgeEvidence(probability=0.2, exact=False, confirmed=True), "confirmed"),
    ],
)
def test_a_bridge_with_its_own_strong_evidence_merges(evidence: BridgeEvidence, reason: str) -> None:
    assert decide(RULE, evidence, GROUP_A, GROUP_B, same_cluster=False, other_edges=0) == reason


def test_a_second_edge_between_the_same_clusters_merges() -> None:
    assert decide(RULE, MARGINAL, GROUP_A, GROUP_B, same_cluster=False, other_edges=1) == "second_edge"


@pytest.mark.parametrize(
    ("members_a", "members_b", "same"),
    [
        (None, None, False),  # two loose images: a new cluster
        (GROUP_A, None, False),  # one image joins a group
        (None, GROUP_B, False),
        (GROUP_A, ONE_AD, False),  # one side is no group of ads yet
        (GROUP_A, GROUP_A, True),  # already one cluster: one more edge inside it
    ],
)
def test_a_pair_that_is_no_bridge_joins_whatever_its_strength(
    members_a: dict[str, int] | None, members_b: dict[str, int] | None, same: bool
) -> None:
    assert decide(RULE, MARGINAL, members_a, members_b, same_cluster=same, other_edges=0) == "join"


def test_established_is_counted_in_ads_and_is_a_setting() -> None:
    assert not RULE.established(None)
    assert not RULE.established(ONE_AD)
    assert RULE.established(GROUP_A)
    strict = BridgeRule(min_probability=0.97, established_min_ads=3)
    assert decide(strict, MARGINAL, GROUP_A, GROUP_B, same_cluster=False, other_edges=0) == "join"
    assert (
        decide(strict, MARGINAL, GROUP_B, {**GROUP_A, "a3": 9}, same_cluster=False, other_edges=0) == "held"
    )


def test_the_bar_is_a_probability() -> None:
    with pytest.raises(ValueError):
        BridgeRule(min_probability=1.5)
    with pytest.raises(ValueError):
        BridgeRule(established_min_ads=0)
