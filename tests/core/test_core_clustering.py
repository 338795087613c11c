"""Consumes imgdup_core.clustering.plan_pair: what one verified pair does to the clusters it touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imgdup_core.clustering import ClusterPair, ClusterSnapshot, plan_pair

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def pair(image_a: str, ad_a: int, image_b: str, ad_b: int, confidence: float = 0.9) -> ClusterPair:
    return ClusterPair(
        pair_id=f"p:{image_a}:{image_b}",
        image_a=image_a,
        ad_a=ad_a,
        image_b=image_b,
        ad_b=ad_b,
        confidence=confidence,
    )


def snapshot(
    cluster_id: str,
    members: dict[str, int],
    edges: list[tuple[str, str, float]],
    created_at: datetime = T0,
) -> ClusterSnapshot:
    return ClusterSnapshot(cluster_id=cluster_id, created_at=created_at, members=members, edges=edges)


def test_new_cluster_from_two_loose_images() -> None:
    plan = plan_pair(pair("a", 1, "b", 2, 0.8), None, None, new_cluster_id="new")
    assert plan.cluster_id == "new"
    assert plan.created is True
    assert plan.absorbed == ()
    assert dict(plan.moved_members) == {"a": 1, "b": 2}
    assert (plan.size, plan.ad_count, plan.edge_count) == (2, 2, 1)
    assert plan.confidence == pytest.approx(0.8)
    assert plan.changed is True


def test_new_cluster_within_one_ad_counts_one_ad() -> None:
    plan = plan_pair(pair("a", 7, "b", 7), None, None, new_cluster_id="new")
    assert (plan.size, plan.ad_count) == (2, 1)


@pytest.mark.parametrize("side", ["a", "b"])
def test_growth_keeps_cluster_id(side: str) -> None:
    c1 = snapshot("c1", {"x": 1, "y": 2}, [("x", "y", 0.9)])
    if side == "a":  # the clustered image is image_a
        plan = plan_pair(pair("y", 2, "z", 3, 0.7), c1, None, new_cluster_id="unused")
    else:
        plan = plan_pair(pair("z", 3, "y", 2, 0.7), None, c1, new_cluster_id="unused")
    assert plan.cluster_id == "c1"
    assert plan.created is False
    assert plan.absorbed == ()
    assert dict(plan.moved_members) == {"z": 3}
    assert (plan.size, plan.ad_count, plan.edge_count) == (3, 3, 2)
    assert plan.confidence == pytest.approx((0.9 + 0.7) / 2)
    assert plan.changed is True


def test_growth_by_image_of_an_ad_already_in_the_cluster() -> None:
    c1 = snapshot("c1", {"x": 1, "y": 2}, [("x", "y", 0.9)])
    plan = plan_pair(pair("y", 2, "z", 1), c1, None, new_cluster_id="unused")
    assert (plan.size, plan.ad_count, plan.edge_count) == (3, 2, 2)


@pytest.mark.parametrize("older_first", [True, False], ids=["older-as-a", "older-as-b"])
def test_merge_keeps_older_cluster_id(older_first: bool) -> None:
    old = snapshot("zzz-old", {"a": 1, "b": 2}, [("a", "b", 0.9)], created_at=T0)
    young = snapshot(
        "aaa-young",
        {"c": 3, "d": 4, "e": 4},
        [("c", "d", 0.6), ("d", "e", 0.5)],
        created_at=T0 + timedelta(minutes=5),
    )
    if older_first:
        plan = plan_pair(pair("b", 2, "c", 3, 0.8), old, young, new_cluster_id="unused")
    else:
        plan = plan_pair(pair("c", 3, "b", 2, 0.8), young, old, new_cluster_id="unused")
    # The id sorts after the younger one's: age decides, not the id or the argument order.
    assert plan.cluster_id == "zzz-old"
    assert plan.created is False
    assert plan.absorbed == ("aaa-young",)
    assert dict(plan.moved_members) == {"c": 3, "d": 4, "e": 4}
    assert (plan.size, plan.ad_count, plan.edge_count) == (5, 4, 4)
    assert plan.confidence == pytest.approx((0.9 + 0.6 + 0.5 + 0.8) / 4)
    assert plan.changed is True


def test_merge_of_clusters_created_at_the_same_time_is_deterministic() -> None:
    one = snapshot("c-1", {"a": 1, "b": 2}, [("a", "b", 0.9)])
    two = snapshot("c-2", {"c": 3, "d": 4}, [("c", "d", 0.9)])
    forward = plan_pair(pair("a", 1, "c", 3), one, two, new_cluster_id="unused")
    backward = plan_pair(pair("c", 3, "a", 1), two, one, new_cluster_id="unused")
    assert forward.cluster_id == backward.cluster_id == "c-1"
    assert forward.absorbed == backward.absorbed == ("c-2",)


def test_replayed_pair_inside_cluster_changes_nothing() -> None:
    c1 = snapshot("c1", {"a": 1, "b": 2, "c": 3}, [("a", "b", 0.9), ("b", "c", 0.7)])
    # Replay with another confidence: the stored edge is kept, not replaced.
    plan = plan_pair(pair("b", 2, "a", 1, 0.1), c1, c1, new_cluster_id="unused")
    assert plan.changed is False
    assert plan.cluster_id == "c1"
    assert plan.created is False
    assert plan.absorbed == ()
    assert dict(plan.moved_members) == {}
    assert (plan.size, plan.ad_count, plan.edge_count) == (3, 3, 2)
    assert plan.confidence == pytest.approx((0.9 + 0.7) / 2)


def test_new_edge_inside_cluster_is_a_change() -> None:
    c1 = snapshot("c1", {"a": 1, "b": 2, "c": 3}, [("a", "b", 0.9), ("b", "c", 0.7)])
    plan = plan_pair(pair("a", 1, "c", 3, 0.5), c1, c1, new_cluster_id="unused")
    assert plan.changed is True
    assert plan.cluster_id == "c1"
    assert plan.absorbed == ()
    assert dict(plan.moved_members) == {}
    assert (plan.size, plan.ad_count, plan.edge_count) == (3, 3, 3)
    assert plan.confidence == pytest.approx((0.9 + 0.7 + 0.5) / 3)


def test_disconnected_snapshot_raises() -> None:
    broken = snapshot("c1", {"a": 1, "b": 2, "c": 3, "d": 4}, [("a", "b", 0.9), ("c", "d", 0.9)])
    with pytest.raises(ValueError, match="not connected"):
        plan_pair(pair("b", 2, "e", 5), broken, None, new_cluster_id="unused")


def test_member_without_edges_raises() -> None:
    broken = snapshot("c1", {"a": 1, "b": 2, "lonely": 3}, [("a", "b", 0.9)])
    with pytest.raises(ValueError, match="not connected"):
        plan_pair(pair("a", 1, "b", 2), broken, broken, new_cluster_id="unused")
