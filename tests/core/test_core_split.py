"""Consumes imgdup_core.clustering.plan_split: the pieces a cluster breaks into when it loses an edge; and
verifier_config.with_threshold, the stricter verifier a replay retracts pairs with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imgdup_core.clustering import ClusterSnapshot, plan_split
from imgdup_core.evidence import Evidence
from imgdup_core.verifier_config import DEFAULT_VERIFIER, FUSED_V15, FUSED_V16, with_threshold
from imgdup_core.verify import decide

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _named(members: frozenset[str]) -> str:
    return "new:" + ",".join(sorted(members))


def snapshot(members: dict[str, int], edges: list[tuple[str, str, float]]) -> ClusterSnapshot:
    return ClusterSnapshot(cluster_id="old", created_at=T0, members=members, edges=edges)


def test_still_connected_is_no_split_but_new_statistics() -> None:
    plan = plan_split(
        snapshot({"a": 1, "b": 2, "c": 3}, [("a", "b", 0.8), ("b", "c", 0.6)]),
        new_cluster_id=_named,
    )
    assert plan.split is False
    assert plan.kept is not None
    assert (plan.kept.cluster_id, plan.kept.size, plan.kept.edge_count) == ("old", 3, 2)
    assert plan.kept.confidence == pytest.approx(0.7)
    assert plan.new == () and dict(plan.left) == {}


def test_a_bridge_retracted_splits_the_largest_piece_keeps_the_id() -> None:
    # a-b-c  (bridge c-d retracted)  d-e: pieces {a,b,c} and {d,e}
    members = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 4}
    plan = plan_split(
        snapshot(members, [("a", "b", 0.9), ("b", "c", 0.9), ("d", "e", 0.5)]), new_cluster_id=_named
    )
    assert plan.split is True
    assert plan.kept is not None and plan.kept.cluster_id == "old"
    assert set(plan.kept.members) == {"a", "b", "c"}
    assert [(p.cluster_id, dict(p.members), p.ad_count) for p in plan.new] == [
        ("new:d,e", {"d": 4, "e": 4}, 1)
    ]
    assert dict(plan.left) == {}


def test_an_image_left_alone_leaves_the_cluster() -> None:
    plan = plan_split(snapshot({"a": 1, "b": 2, "c": 3}, [("b", "c", 0.9)]), new_cluster_id=_named)
    assert plan.kept is not None and set(plan.kept.members) == {"b", "c"}
    assert dict(plan.left) == {"a": 1}
    assert plan.split is True


def test_the_last_edge_retracted_dissolves_the_cluster() -> None:
    plan = plan_split(snapshot({"a": 1, "b": 2}, []), new_cluster_id=_named)
    assert plan.kept is None and plan.new == ()
    assert dict(plan.left) == {"a": 1, "b": 2}
    assert plan.split is True


def test_equal_pieces_are_ordered_by_their_smallest_image_on_every_replay() -> None:
    members = {"d": 1, "c": 2, "a": 3, "b": 4}
    edges = [("c", "d", 0.9), ("a", "b", 0.9)]
    first = plan_split(snapshot(members, edges), new_cluster_id=_named)
    again = plan_split(snapshot(dict(reversed(list(members.items()))), edges[::-1]), new_cluster_id=_named)
    assert first == again
    assert first.kept is not None and set(first.kept.members) == {"a", "b"}
    assert [p.cluster_id for p in first.new] == ["new:c,d"]


def test_a_stricter_threshold_is_its_own_verifier_version() -> None:
    assert with_threshold(DEFAULT_VERIFIER, None) is DEFAULT_VERIFIER
    strict = with_threshold(DEFAULT_VERIFIER, 0.99)
    assert strict.version == f"{DEFAULT_VERIFIER.version}-t0.99"
    assert strict.fusion.threshold == 0.99
    assert strict.fusion.weights == DEFAULT_VERIFIER.fusion.weights


def test_a_stricter_threshold_drops_the_rules_that_accept_under_the_fusions_cut() -> None:
    # A rule's verdict stands at the calibrated threshold (its score), so a stricter verifier rejects it:
    # a replay at a stricter cut retracts the pairs only a rule accepted.
    copy = Evidence(30, False, 0.4, 120, False, 0.7, overlap=1.0, mismatch=0.08, coverage=0.8)
    assert decide(copy, FUSED_V15).is_duplicate
    stricter = with_threshold(FUSED_V15, 0.99)
    assert stricter.copy_rule is None and stricter.overlay_rule is None
    assert not decide(copy, stricter).is_duplicate
    # A laxer cut keeps them.
    laxer = with_threshold(FUSED_V15, 0.9)
    assert laxer.copy_rule == FUSED_V15.copy_rule and laxer.overlay_rule == FUSED_V15.overlay_rule
    # fused-v16's unaligned rule likewise: a flat copy nothing aligned, close in embedding and pHash.
    flat = Evidence(2, False, 0.93, 0, False, None, overlap=0.0)
    assert decide(flat, FUSED_V16).is_duplicate and not decide(flat, FUSED_V15).is_duplicate
    assert with_threshold(FUSED_V16, 0.99).unaligned_rule is None
    assert not decide(flat, with_threshold(FUSED_V16, 0.99)).is_duplicate
    assert with_threshold(FUSED_V16, 0.9).unaligned_rule == FUSED_V16.unaligned_rule
