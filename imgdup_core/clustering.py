"""Verified pair + snapshots of the clusters it touches -> the cluster change to apply; a cluster
that lost an edge -> the pieces it splits into (pure, networkx).

Incremental: only the (at most two) clusters that hold the pair's images are read and changed.
A cluster keeps its id while it grows; when a pair joins two clusters the older one survives
and the younger one is recorded as absorbed. When an edge is retracted only that cluster's own
remaining edges are read: the largest piece keeps the id, the others get new ones, and an image
left without any edge leaves (no cluster has one member).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import networkx as nx


@dataclass(frozen=True)
class ClusterSnapshot:
    cluster_id: str
    created_at: datetime
    members: Mapping[str, int]  # image_id -> ad_id
    edges: Sequence[tuple[str, str, float]]  # (image_a, image_b, confidence)


@dataclass(frozen=True)
class ClusterPair:
    pair_id: str
    image_a: str
    ad_a: int
    image_b: str
    ad_b: int
    confidence: float


@dataclass(frozen=True)
class ClusterPlan:
    cluster_id: str
    created: bool  # a new cluster was started by this pair
    absorbed: tuple[str, ...]  # clusters merged into cluster_id by this pair
    moved_members: Mapping[str, int]  # images whose cluster becomes cluster_id
    size: int
    ad_count: int
    edge_count: int
    confidence: float
    changed: bool  # False when the pair was already inside the cluster (replay)


def _survivor(a: ClusterSnapshot, b: ClusterSnapshot) -> tuple[ClusterSnapshot, ClusterSnapshot]:
    older_first = sorted((a, b), key=lambda c: (c.created_at, c.cluster_id))
    return older_first[0], older_first[1]


def plan_pair(
    pair: ClusterPair,
    cluster_a: ClusterSnapshot | None,
    cluster_b: ClusterSnapshot | None,
    *,
    new_cluster_id: str,
) -> ClusterPlan:
    """Decide what adding `pair` does. `cluster_a`/`cluster_b` hold image_a/image_b (or None)."""
    graph = nx.Graph()
    touched = [c for c in (cluster_a, cluster_b) if c is not None]
    if cluster_a is not None and cluster_b is not None and cluster_a.cluster_id == cluster_b.cluster_id:
        touched = [cluster_a]
    for cluster in touched:
        for image, ad in cluster.members.items():
            graph.add_node(image, ad_id=ad)
        for left, right, confidence in cluster.edges:
            graph.add_edge(left, right, confidence=confidence)
    already_linked = graph.has_edge(pair.image_a, pair.image_b)
    graph.add_node(pair.image_a, ad_id=pair.ad_a)
    graph.add_node(pair.image_b, ad_id=pair.ad_b)
    if not already_linked:
        graph.add_edge(pair.image_a, pair.image_b, confidence=pair.confidence)
    if not nx.is_connected(graph):
        raise ValueError("cluster snapshot is not connected: its edges are incomplete")

    absorbed: tuple[str, ...] = ()
    if not touched:
        cluster_id, created = new_cluster_id, True
        moved = {pair.image_a: pair.ad_a, pair.image_b: pair.ad_b}
    elif len(touched) == 1:
        cluster_id, created = touched[0].cluster_id, False
        moved = {
            image: int(graph.nodes[image]["ad_id"])
            for image in (pair.image_a, pair.image_b)
            if image not in touched[0].members
        }
    else:
        survivor, younger = _survivor(touched[0], touched[1])
        cluster_id, created = survivor.cluster_id, False
        absorbed = (younger.cluster_id,)
        moved = dict(younger.members)

    weights = [float(data["confidence"]) for _, _, data in graph.edges(data=True)]
    ads = {int(data["ad_id"]) for _, data in graph.nodes(data=True)}
    return ClusterPlan(
        cluster_id=cluster_id,
        created=created,
        absorbed=absorbed,
        moved_members=moved,
        size=graph.number_of_nodes(),
        ad_count=len(ads),
        edge_count=graph.number_of_edges(),
        confidence=sum(weights) / len(weights),
        changed=created or bool(absorbed) or bool(moved) or not already_linked,
    )


@dataclass(frozen=True)
class ClusterPiece:
    """One connected piece of a split cluster, with the statistics its row keeps."""

    cluster_id: str
    members: Mapping[str, int]  # image_id -> ad_id
    edge_count: int
    confidence: float

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def ad_count(self) -> int:
        return len(set(self.members.values()))


@dataclass(frozen=True)
class SplitPlan:
    cluster_id: str  # the cluster that lost an edge
    kept: ClusterPiece | None  # the largest piece, under cluster_id; None: the cluster dissolves
    new: tuple[ClusterPiece, ...]  # the other pieces, each under a new id
    left: Mapping[str, int]  # images left without an edge: they leave every cluster

    @property
    def split(self) -> bool:
        """True when the cluster is no longer one piece (the event consumers must hear)."""
        return bool(self.new or self.left) or self.kept is None


def plan_split(snapshot: ClusterSnapshot, *, new_cluster_id: Callable[[frozenset[str]], str]) -> SplitPlan:
    """The pieces of `snapshot` (its members and its remaining edges, the retracted one already
    gone). Pieces are ordered largest first, ties by their smallest image id, so the plan is the
    same on every replay; `new_cluster_id(members)` names each piece but the first."""
    graph = nx.Graph()
    for image in snapshot.members:
        graph.add_node(image)
    for one, other, confidence in snapshot.edges:
        if one in snapshot.members and other in snapshot.members:
            graph.add_edge(one, other, confidence=confidence)
    components = sorted(
        (frozenset(c) for c in nx.connected_components(graph)), key=lambda c: (-len(c), min(c))
    )
    pieces: list[ClusterPiece] = []
    left: dict[str, int] = {}
    for component in components:
        if len(component) == 1:
            (image,) = component
            left[image] = snapshot.members[image]
            continue
        sub = graph.subgraph(component)
        weights = [float(data["confidence"]) for _, _, data in sub.edges(data=True)]
        pieces.append(
            ClusterPiece(
                cluster_id=snapshot.cluster_id if not pieces else new_cluster_id(component),
                members={image: snapshot.members[image] for image in sorted(component)},
                edge_count=sub.number_of_edges(),
                confidence=sum(weights) / len(weights),
            )
        )
    return SplitPlan(
        cluster_id=snapshot.cluster_id,
        kept=pieces[0] if pieces else None,
        new=tuple(pieces[1:]),
        left=dict(sorted(left.items())),
    )
