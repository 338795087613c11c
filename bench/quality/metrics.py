"""Labelled images and a method's pair scores -> pair precision/recall per edit family, recall at
fixed precision, and false-positive rates on hard negatives.

Pair universe: every unordered pair of the evaluated images. A pair of an original and an edited
copy of it is a positive, labelled with the copy's edit family. Two copies of one photo are
neither (reported apart as "copy-copy") in the default pool, and a positive of family
"edit_pair" where the set says so (the broad pool). Photos of different groups are negatives;
those whose groups are related (stereo, frames, same scene, same kind) are hard negatives of that
kind, and so are two images the set relates one by one (two photos in one screenshot template).
Related groups of a neutral kind (adjacent frames of one video) are neither: left out of every
measure and counted apart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.quality.dataset import HARD_NEGATIVE_KINDS, NEUTRAL_KINDS, BenchSet, SetImage
from bench.quality.edits import BENIGN, EDIT_FAMILIES, HARD

NEVER = -np.inf  # the score of a pair a method never considered (e.g. not an ANN candidate)
EDIT_PAIR = "edit_pair"  # the family of a positive made of two different edits of one photo
PRECISION_TARGETS = (0.995, 0.9999)


@dataclass(frozen=True)
class PairLabels:
    """Upper-triangle pair arrays over N images (i < j)."""

    names: list[str]
    i: np.ndarray
    j: np.ndarray
    family: np.ndarray  # object: edit family for positives, "" otherwise
    positive: np.ndarray  # bool
    copy_copy: np.ndarray  # bool: two copies of one photo
    negative: np.ndarray  # bool
    hard_kind: np.ndarray  # object: hard-negative kind (or a neutral kind: not negative) or ""
    copy_family_i: np.ndarray  # object: family of image i ("original" for originals)
    copy_family_j: np.ndarray
    domain_i: np.ndarray  # object: the domain of image i's source photo ("" when unknown)
    domain_j: np.ndarray


def pair_labels(bench: BenchSet, images: Sequence[SetImage]) -> PairLabels:
    n = len(images)
    groups = [image.group for image in images]
    families = np.array([image.family for image in images], dtype=object)
    domains = np.array([image.domain for image in images], dtype=object)
    group_ids = {g: k for k, g in enumerate(sorted(set(groups)))}
    gid = np.array([group_ids[g] for g in groups])
    kinds = np.full((len(group_ids), len(group_ids)), "", dtype=object)
    for pair, kind in bench.hard_negatives.items():
        a, b = tuple(pair)
        if a in group_ids and b in group_ids:
            kinds[group_ids[a], group_ids[b]] = kinds[group_ids[b], group_ids[a]] = kind
    i, j = np.triu_indices(n, k=1)
    same = gid[i] == gid[j]
    orig_i = families[i] == "original"
    orig_j = families[j] == "original"
    copy_copy = same & ~orig_i & ~orig_j
    positive = same & (orig_i ^ orig_j)
    family = np.where(positive, np.where(orig_i, families[j], families[i]), "").astype(object)
    if bench.edit_pairs_positive:
        positive = positive | copy_copy
        family[copy_copy] = EDIT_PAIR
    hard_kind = np.where(~same, kinds[gid[i], gid[j]], "").astype(object)
    negative = ~same & ~np.isin(hard_kind, NEUTRAL_KINDS)
    if bench.image_hard_negatives:
        position = {image.name: k for k, image in enumerate(images)}
        for pair, kind in bench.image_hard_negatives.items():
            found = sorted(position[name] for name in pair if name in position)
            if len(found) != 2:
                continue  # an image of the pair is not evaluated (another split, --quick)
            a, b = found
            index = a * n - a * (a + 1) // 2 + (b - a - 1)  # (a, b) in np.triu_indices order
            if negative[index]:
                hard_kind[index] = kind
    return PairLabels(
        [image.name for image in images],
        i,
        j,
        family,
        positive,
        copy_copy,
        negative,
        hard_kind,
        families[i],
        families[j],
        domains[i],
        domains[j],
    )


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def operating_point(labels: PairLabels, predicted: np.ndarray) -> dict[str, Any]:
    """Precision and recall of a yes/no prediction per pair (same order as labels)."""
    tp = predicted & labels.positive
    fp = predicted & labels.negative
    out: dict[str, Any] = {
        "predicted_pairs": int(predicted.sum()),
        "true_positives": int(tp.sum()),
        "false_positives": int(fp.sum()),
        "positives": int(labels.positive.sum()),
        "precision": _ratio(tp.sum(), tp.sum() + fp.sum()),
        "recall": _ratio(tp.sum(), labels.positive.sum()),
        "copy_copy_recall": _ratio((predicted & labels.copy_copy).sum(), labels.copy_copy.sum()),
    }
    for kind, names in (("benign", BENIGN), ("hard", HARD)):
        mask = labels.positive & np.isin(labels.family, names)
        out[f"{kind}_recall"] = _ratio((predicted & mask).sum(), mask.sum())
        involved = np.isin(labels.copy_family_i, names) | np.isin(labels.copy_family_j, names)
        fp_kind = (fp & involved).sum()
        out[f"{kind}_precision"] = _ratio((tp & mask).sum(), (tp & mask).sum() + fp_kind)
    families: dict[str, dict[str, float | int]] = {}
    for edit in (*[f.name for f in EDIT_FAMILIES], "original", EDIT_PAIR):
        mask = labels.positive & (labels.family == edit)
        # A family's false positives: wrong matches that involve a copy of that family.
        involved = (labels.copy_family_i == edit) | (labels.copy_family_j == edit)
        fp_family = int((fp & involved).sum())
        tp_family = int((tp & mask).sum())
        families[edit] = {
            "pairs": int(mask.sum()),
            "true_positives": tp_family,
            "false_positives": fp_family,
            "recall": _ratio(tp_family, mask.sum()),
            "precision": _ratio(tp_family, tp_family + fp_family),
        }
    out["families"] = families
    hard: dict[str, dict[str, float | int]] = {}
    for kind in (*HARD_NEGATIVE_KINDS, "all"):
        mask = labels.negative & (labels.hard_kind != "" if kind == "all" else labels.hard_kind == kind)
        hard[kind] = {
            "pairs": int(mask.sum()),
            "false_positives": int((predicted & mask).sum()),
            "fpr": _ratio((predicted & mask).sum(), mask.sum()),
        }
    out["hard_negatives"] = hard
    # Neither positive nor negative (adjacent frames of one video): how often called duplicates.
    neutral = np.isin(labels.hard_kind, NEUTRAL_KINDS)
    out["neutral"] = {"pairs": int(neutral.sum()), "called_duplicates": int((predicted & neutral).sum())}
    # Per domain of the source photo: recall of its positives, and the wrong matches that
    # involve one of its images.
    by_domain: dict[str, dict[str, float | int]] = {}
    for domain in sorted({*labels.domain_i, *labels.domain_j} - {""}):
        mask = labels.positive & (labels.domain_i == domain)
        involved = (labels.domain_i == domain) | (labels.domain_j == domain)
        by_domain[domain] = {
            "pairs": int(mask.sum()),
            "recall": _ratio((predicted & mask).sum(), mask.sum()),
            "false_positives": int((fp & involved).sum()),
        }
    out["domains"] = by_domain
    return out


def recall_at_precision(
    scores: np.ndarray, positive: np.ndarray, negative: np.ndarray, target: float
) -> tuple[float, float]:
    """Best recall over thresholds whose precision is >= target; returns (recall, threshold).
    Pairs scored NEVER are never predicted. (0.0, inf) when no threshold reaches the target."""
    keep = (positive | negative) & np.isfinite(scores)
    s = scores[keep]
    pos = positive[keep]
    total = int(positive.sum())
    if total == 0 or s.size == 0:
        return 0.0, float("inf")
    order = np.argsort(-s, kind="stable")
    s, pos = s[order], pos[order]
    tp = np.cumsum(pos)
    fp = np.cumsum(~pos)
    # Only cut between distinct scores: tied pairs are all predicted or none.
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp, fp, cut = tp[last_of_tie], fp[last_of_tie], s[last_of_tie]
    precision = tp / np.maximum(tp + fp, 1)
    ok = precision >= target
    if not ok.any():
        return 0.0, float("inf")
    best = int(np.argmax(np.where(ok, tp, -1)))
    return float(tp[best] / total), float(cut[best])


def curve_summary(labels: PairLabels, scores: np.ndarray) -> dict[str, Any]:
    """Recall at each fixed precision, for all positives and for benign and hard edits alone
    (each against every negative)."""
    out: dict[str, Any] = {}
    for target in PRECISION_TARGETS:
        row: dict[str, Any] = {}
        for kind, names in (("all", None), ("benign", BENIGN), ("hard", HARD)):
            mask = labels.positive if names is None else labels.positive & np.isin(labels.family, names)
            recall, threshold = recall_at_precision(scores, mask, labels.negative, target)
            row[kind] = {"recall": recall, "threshold": threshold}
        out[f"{target:g}"] = row
    return out


def pair_scores(labels: PairLabels, matrix: np.ndarray) -> np.ndarray:
    """A symmetric [N, N] score matrix -> scores in pair order."""
    return np.asarray(matrix[labels.i, labels.j], dtype=np.float64)


def cluster_quality(
    clusters: Mapping[str, str], group_of: Mapping[str, str], neutral: Collection[frozenset[str]] = ()
) -> dict[str, Any]:
    """How pure the clusters are: of the image pairs that share a cluster, the share that are of
    one source photo (true duplicates, two edits of one photo included); and the clusters that
    join images of two or more different photos. Only images in `group_of` count; image pairs of
    two `neutral` groups (BenchSet.neutral_pairs) are neither true nor false: left out."""
    members: dict[str, list[str]] = {}
    for name, cluster in clusters.items():
        if name in group_of:
            members.setdefault(cluster, []).append(name)
    pairs = true_pairs = joining = joining_images = most_groups = 0
    sizes = []
    # Two neutral groups together are one photo here: not a cluster joining photos.
    alias = {group: min(pair) for pair in neutral for group in pair}
    for names in members.values():
        if len(names) < 2:
            continue
        sizes.append(len(names))
        groups = Counter(group_of[name] for name in names)
        left_out = sum(
            groups[a] * groups[b] for a, b in (tuple(p) for p in neutral) if a in groups and b in groups
        )
        pairs += len(names) * (len(names) - 1) // 2 - left_out
        true_pairs += sum(c * (c - 1) // 2 for c in groups.values())
        photos = {alias.get(group, group) for group in groups}
        most_groups = max(most_groups, len(photos))
        if len(photos) > 1:
            joining += 1
            joining_images += len(names)
    return {
        "clusters": len(sizes),
        "largest_cluster": max(sizes, default=0),
        "pairs_in_clusters": pairs,
        "true_pairs": true_pairs,
        "precision": _ratio(true_pairs, pairs),
        "clusters_joining_photos": joining,
        "images_in_joining_clusters": joining_images,
        "most_photos_in_one_cluster": most_groups,
    }
