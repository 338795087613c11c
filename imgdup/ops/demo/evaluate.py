"""Consumes truth and predicted image-name pairs or clusters; produces pair precision/recall."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class PairScore:
    """Pairwise confusion counts and the precision/recall derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float


def score_pairs(truth: set[frozenset[str]], predicted: set[frozenset[str]]) -> PairScore:
    """Compare predicted unordered pairs with the truth.

    Precision is 1.0 when nothing is predicted; recall is 1.0 when the truth is empty.
    """
    tp = len(truth & predicted)
    fp = len(predicted - truth)
    fn = len(truth - predicted)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return PairScore(
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=precision,
        recall=recall,
    )


def pairs_from_clusters(clusters: Iterable[Iterable[str]]) -> set[frozenset[str]]:
    """All unordered pairs of distinct members inside each cluster (singletons give none)."""
    pairs: set[frozenset[str]] = set()
    for cluster in clusters:
        members = sorted(set(cluster))
        pairs.update(frozenset(pair) for pair in combinations(members, 2))
    return pairs
