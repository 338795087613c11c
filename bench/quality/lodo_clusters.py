"""A fold's verified pairs in arrival order -> the clusters the product's clusterer would make of them
(imgdup_core.bridges' hold rule replayed, one ad per image as in the benchmark), and what
`GET /api/v1/duplicates/{ad_id}` would then list: a positive counts as found when its two images
share a cluster or were verified as a pair (a held bridge is listed too).

An OFFLINE REPLAY: the product applies the same rule incrementally inside Postgres transactions
(imgdup.store.truth); here every pair is decided once in arrival order, and each change to a cluster
looks at the held pairs touching it again, as the store does."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from bench.quality.metrics import cluster_quality
from imgdup_core.bridges import BridgeRule, Link, decide

PRODUCT_RULE = BridgeRule()  # the clusterer's defaults (IMGDUP_CLUSTER_BRIDGE_MIN_PROBABILITY unset)


def replay(links: Sequence[Link], rule: BridgeRule = PRODUCT_RULE) -> dict[str, int]:
    """Image -> cluster number, for every image in a cluster of two or more."""
    images = sorted({name for link in links for name in (link.image_a, link.image_b)})
    ad = {name: k for k, name in enumerate(images)}  # one ad per image, as the benchmark posts them
    cluster_of: dict[str, int] = {}
    members: dict[int, set[str]] = {}
    edges: dict[int, list[Link]] = {}
    held: list[Link] = []
    numbers = itertools.count()

    def add(link: Link) -> bool:
        """Decide one link (an edge, or held); True when it made or changed a cluster."""
        ca, cb = cluster_of.get(link.image_a), cluster_of.get(link.image_b)
        if ca is not None and ca == cb:
            # Inside one cluster (a held pair whose groups joined another way too): an edge, held no more.
            if link in held:
                held.remove(link)
            edges[ca].append(link)
            return False
        touched = {c for c in (ca, cb) if c is not None}
        pieces = {link.image_a, link.image_b} | {m for c in touched for m in members[c]}
        these = [e for c in touched for e in edges[c]]
        among = [h for h in held if h.image_a in pieces and h.image_b in pieces and h is not link]
        if decide(rule, link, {i: ad[i] for i in pieces}, these, among, same_cluster=False) == "held":
            if link not in held:
                held.append(link)
            return False
        if link in held:
            held.remove(link)
        keep = min(touched) if touched else next(numbers)
        members.setdefault(keep, set())
        edges.setdefault(keep, [])
        for c in touched - {keep}:
            members[keep] |= members.pop(c)
            edges[keep] += edges.pop(c)
        members[keep] |= {link.image_a, link.image_b}
        edges[keep].append(link)
        for image in members[keep]:
            cluster_of[image] = keep
        return True

    for link in links:
        changed = add(link)
        while changed:  # a cluster gained an edge: the held pairs (each touches a cluster) looked at again
            changed = False
            for waiting in list(held):
                changed = add(waiting) or changed
    return dict(cluster_of)


def arrival_order(
    pairs: Sequence[tuple[str, str]],
    position: Mapping[str, int],
    cosine: Mapping[tuple[str, str], float] | None = None,
) -> list[tuple[str, str]]:
    """The order the stream verifies pairs in: each image's pairs with those before it, as it arrives;
    with `cosine` (pair -> the candidate's cosine), an image's pairs most similar first, as the product's
    verifier takes an ad's candidates (imgdup.steps.index), else in the order the other images arrived."""

    def arrival(pair: tuple[str, str]) -> tuple[int, float, int]:
        first, second = sorted((position[pair[0]], position[pair[1]]))
        similar = cosine.get(pair, 0.0) if cosine is not None else 0.0
        return second, -similar, first

    return sorted(pairs, key=arrival)


def listed_summary(
    verified: Mapping[tuple[str, str], float],
    position: Mapping[str, int],
    positives: Mapping[tuple[str, str], str],
    group_of: Mapping[str, str],
    families: Mapping[str, Sequence[str]],
    neutral: Collection[frozenset[str]] = (),
    *,
    cosine: Mapping[tuple[str, str], float] | None = None,
) -> dict[str, Any]:
    """Recall per family group of what the API would list (pairs or clusters) and the clusters'
    precision, for a fold's verified pairs (pair -> the verdict's confidence)."""
    links = [Link(a, b, verified[(a, b)]) for a, b in arrival_order(list(verified), position, cosine)]
    clusters = replay(links)
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter(positives.values())
    for (a, b), family in positives.items():
        together = a in clusters and clusters.get(b) == clusters[a]
        hits[family] += together or (a, b) in verified or (b, a) in verified

    def recall(names: Sequence[str]) -> dict[str, float | int]:
        n = sum(totals[f] for f in names)
        return {"pairs": n, "recall": sum(hits[f] for f in names) / n if n else float("nan")}

    quality = cluster_quality({name: str(c) for name, c in clusters.items()}, group_of, neutral)
    return {
        "families": {f: recall([f]) for f in sorted(totals)},
        **{kind: recall([f for f in names if f in totals]) for kind, names in families.items()},
        "cluster_precision": quality["precision"],
        "clusters_joining_photos": quality["clusters_joining_photos"],
        "pairs_in_clusters": quality["pairs_in_clusters"],
    }
