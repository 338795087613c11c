"""A verified pair + the clusters it touches (members, edges) + the held pairs among them -> whether it
may become an edge (pure, networkx): no cluster ever joins two established groups through one
marginal edge.

One false verified pair between two real groups makes every cross pair of their images count as a
duplicate (issue 11: fused-v5, pair precision 99.53 % but cluster precision 93.81 %). A pair that
connects two pieces (two clusters, or a cluster and a loose image) is looked at on the graph it
would make: the clusters' edges, the held pairs among their images, and the pair. A *marginal* edge
(not strong: fused probability under `min_probability`, not exact, not confirmed by a moderator) that
is a cut edge of that graph with an *established* group on each side (at least `established_min_ads`
ads) is a single marginal edge joining two groups; if the pair creates such a join it is *held*: a
verified duplicate pair, but no edge, until a later pair or verdict links the groups a second way.
That covers the pair itself between two clusters, and a pair that would pull a group in through a
marginal edge already inside a cluster (a loose copy joined a cluster on a false pair, then its own
group's strong pairs arrive). Held pairs count as edges here: a second link makes the join two deep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import networkx as nx

# The bridge bar, measured on the TRAINING split only (`python -m bench.quality.bridge_bar` over the
# evidence fused-v5 was calibrated on, bench/results/bridge-bar-fused-v5.txt): its 4 false verified
# pairs have fused probabilities 0.928-0.954 (shared screenshot pages), none at or above 0.96; 0.97
# keeps a margin and still counts 83.8 % of the true verified pairs as strong.
DEFAULT_BRIDGE_MIN_PROBABILITY = 0.97
DEFAULT_ESTABLISHED_MIN_ADS = 2

Decision = Literal["join", "held"]


@dataclass(frozen=True)
class Link:
    """A verified pair: a cluster edge, a held pair, or the pair being decided."""

    image_a: str
    image_b: str
    probability: float  # the verifier's fused probability that it is a duplicate
    exact: bool = False  # identical stored pixels
    confirmed: bool = False  # a moderator confirmed it


@dataclass(frozen=True)
class BridgeRule:
    min_probability: float = DEFAULT_BRIDGE_MIN_PROBABILITY
    established_min_ads: int = DEFAULT_ESTABLISHED_MIN_ADS

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_probability <= 1.0:
            raise ValueError(f"bridge min_probability {self.min_probability} is not a probability")
        if self.established_min_ads < 1:
            raise ValueError("established_min_ads must be at least 1")

    def strong(self, link: Link) -> bool:
        return link.confirmed or link.exact or link.probability >= self.min_probability

    def established(self, ads: set[int]) -> bool:
        """A group several ads already agree on."""
        return len(ads) >= self.established_min_ads


def _graph(rule: BridgeRule, members: Mapping[str, int], links: Sequence[Link]) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(members)
    for link in links:
        strong = rule.strong(link)
        if graph.has_edge(link.image_a, link.image_b):
            strong = strong or bool(graph.edges[link.image_a, link.image_b]["strong"])
        graph.add_edge(link.image_a, link.image_b, strong=strong)
    return graph


def marginal_joins(
    rule: BridgeRule, members: Mapping[str, int], links: Sequence[Link]
) -> set[frozenset[str]]:
    """The marginal cut edges of the graph of `links` with an established group on each side."""
    graph = _graph(rule, members, links)
    joins: set[frozenset[str]] = set()
    for one, other in nx.bridges(graph):
        if graph.edges[one, other]["strong"]:
            continue
        graph.remove_edge(one, other)
        side = nx.node_connected_component(graph, one)
        far = nx.node_connected_component(graph, other)
        graph.add_edge(one, other, strong=False)
        if rule.established({members[i] for i in side}) and rule.established({members[i] for i in far}):
            joins.add(frozenset((one, other)))
    return joins


def decide(
    rule: BridgeRule,
    pair: Link,
    members: Mapping[str, int],
    edges: Sequence[Link],
    held: Sequence[Link],
    *,
    same_cluster: bool,
) -> Decision:
    """`members`: image -> ad of every image of the clusters the pair touches and of the pair's own;
    `edges`: those clusters' edges; `held`: the held pairs among `members` (not the pair itself);
    `same_cluster`: both images already share one (one more edge inside it never joins anything).
    `held` when the pair would join two established groups through one marginal edge that the
    clusters did not already hold (a join made before, e.g. by a confirmed pair since reversed, is
    not this pair's to answer for)."""
    if same_cluster:
        return "join"
    before = marginal_joins(rule, members, edges)
    after = marginal_joins(rule, members, [*edges, *held, pair])
    return "held" if after - before else "join"
