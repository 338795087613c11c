"""Consumes imgdup_core.bridges.decide: a verified pair that would join two established groups through
one marginal edge is held; strong, exact or confirmed edges, or a second link, let the groups join."""

from __future__ import annotations

import pytest

from imgdup_core.bridges import BridgeRule, Link, decide, marginal_joins

RULE = BridgeRule(min_probability=0.97, established_min_ads=2)
# Group A: images a1, a2 (ads 1, 2); group B: b1, b2, b3 (ads 3, 4, 5); c1, c2: two images of ad 6.
ADS = {"a1": 1, "a2": 2, "b1": 3, "b2": 4, "b3": 5, "c1": 6, "c2": 6, "x": 7, "x2": 7, "y": 8}
A = [Link("a1", "a2", 0.99)]
B = [Link("b1", "b2", 0.99), Link("b2", "b3", 0.99)]


def marginal(a: str, b: str) -> Link:
    return Link(a, b, 0.93)


def members(*images: str) -> dict[str, int]:
    return {image: ADS[image] for image in images}


def test_a_marginal_pair_between_two_established_clusters_is_held() -> None:
    group = members("a1", "a2", "b1", "b2", "b3")
    assert decide(RULE, marginal("a2", "b1"), group, [*A, *B], [], same_cluster=False) == "held"


@pytest.mark.parametrize(
    "pair",
    [
        Link("a2", "b1", 0.97),  # at the bar
        Link("a2", "b1", 0.999),
        Link("a2", "b1", 0.93, exact=True),
        Link("a2", "b1", 0.2, confirmed=True),
    ],
)
def test_a_strong_exact_or_confirmed_pair_joins_two_clusters(pair: Link) -> None:
    group = members("a1", "a2", "b1", "b2", "b3")
    assert decide(RULE, pair, group, [*A, *B], [], same_cluster=False) == "join"


def test_a_second_link_between_the_same_clusters_lets_them_join() -> None:
    group = members("a1", "a2", "b1", "b2", "b3")
    held = [marginal("a1", "b3")]  # held before: now two independent links
    assert decide(RULE, marginal("a2", "b1"), group, [*A, *B], held, same_cluster=False) == "join"


def test_a_strong_pair_that_pulls_a_group_in_through_a_marginal_edge_inside_a_cluster_is_held() -> None:
    """x joined A on a false marginal pair while loose; x's own group B then links to x strongly."""
    group = members("a1", "a2", "x", "b1", "b2", "b3")
    a_with_x = [*A, marginal("a2", "x")]
    assert decide(RULE, Link("x", "b1", 0.999), group, [*a_with_x, *B], [], same_cluster=False) == "held"
    # Another image of x's own ad pulls no group in (one ad on that side); another ad's copy does.
    assert decide(
        RULE, Link("x", "x2", 0.999), members("a1", "a2", "x", "x2"), a_with_x, [], same_cluster=False
    ) == ("join")
    assert decide(
        RULE, Link("x", "y", 0.999), members("a1", "a2", "x", "y"), a_with_x, [], same_cluster=False
    ) == ("held")
    # Once a second way links A and B (a held pair a1~b2), the same pair joins them.
    held = [marginal("a1", "b2")]
    assert decide(RULE, Link("x", "b1", 0.999), group, [*a_with_x, *B], held, same_cluster=False) == "join"


@pytest.mark.parametrize(
    ("pair", "images", "edges"),
    [
        (marginal("x", "y"), ("x", "y"), []),  # two loose images: a new cluster
        (marginal("a2", "x"), ("a1", "a2", "x"), A),  # a loose image joins a group
        (marginal("a2", "c1"), ("a1", "a2", "c1", "c2"), [*A, Link("c1", "c2", 0.99)]),  # one ad: no group
    ],
)
def test_a_pair_that_joins_no_two_groups_joins_whatever_its_strength(
    pair: Link, images: tuple[str, ...], edges: list[Link]
) -> None:
    assert decide(RULE, pair, members(*images), edges, [], same_cluster=False) == "join"


def test_one_more_edge_inside_a_cluster_always_joins() -> None:
    assert decide(RULE, marginal("a1", "a2"), members("a1", "a2"), A, [], same_cluster=True) == "join"


def test_a_join_the_clusters_held_already_is_not_the_new_pair_s_to_answer_for() -> None:
    """A cluster that already joins two groups through a marginal edge (merged before the rule, or
    through a confirm a moderator took back) still grows."""
    joined = [*A, *B, marginal("a2", "b1")]
    group = members("a1", "a2", "b1", "b2", "b3", "x")
    assert marginal_joins(RULE, group, joined) == {frozenset(("a2", "b1"))}
    assert decide(RULE, Link("b3", "x", 0.999), group, joined, [], same_cluster=False) == "join"


def test_established_is_counted_in_ads_and_is_a_setting() -> None:
    strict = BridgeRule(min_probability=0.97, established_min_ads=3)
    group = members("a1", "a2", "b1", "b2", "b3")
    assert decide(strict, marginal("a2", "b1"), group, [*A, *B], [], same_cluster=False) == "join"
    assert RULE.established({1, 2}) and not RULE.established({6})


def test_the_bar_is_a_probability() -> None:
    with pytest.raises(ValueError):
        BridgeRule(min_probability=1.5)
    with pytest.raises(ValueError):
        BridgeRule(established_min_ads=0)
