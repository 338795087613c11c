"""The seed's rule as a baseline (bench/quality/baselines.py: all four thresholds on the
verifier's evidence for ANN candidates) and cluster purity (bench/quality/metrics.py)."""

from __future__ import annotations

import math

import numpy as np

from bench.quality.baselines import seed_rule, seed_rules_baseline
from bench.quality.metrics import cluster_quality

PASS = {"cosine": 0.9, "phash_distance": 4, "sift_inliers": 120, "ssim": 0.93, "exact": False}


def test_seed_rule_needs_all_four() -> None:
    assert seed_rule(PASS)
    for field, failing in (("cosine", 0.35), ("phash_distance", 15), ("sift_inliers", 30), ("ssim", 0.8)):
        assert not seed_rule({**PASS, field: failing}), field  # the thresholds are strict
    assert not seed_rule({**PASS, "ssim": None})  # nothing aligned
    assert seed_rule({"cosine": 1.0, "phash_distance": 0, "sift_inliers": 0, "ssim": None, "exact": True})


def test_seed_rules_baseline_never_predicts_unproposed_pairs() -> None:
    index = {"a": 0, "b": 1, "c": 2}
    baseline = seed_rules_baseline({("a", "b"): PASS, ("a", "c"): {**PASS, "ssim": 0.5}}, index, 3)
    predicted = baseline.scores >= baseline.threshold
    assert predicted[0, 1] and predicted[1, 0]
    assert not predicted[0, 2]
    assert baseline.scores[1, 2] == -np.inf  # never a candidate


def test_cluster_quality_counts_pairs_and_mixed_clusters() -> None:
    group_of = {"p1": "p", "p2": "p", "p3": "p", "q1": "q", "r1": "r", "r2": "r"}
    clusters = {"p1": "A", "p2": "A", "p3": "A", "q1": "A", "r1": "B", "r2": "B", "x": "A"}
    quality = cluster_quality(clusters, group_of)
    assert quality["clusters"] == 2
    assert quality["pairs_in_clusters"] == 6 + 1  # four images in A (x is not a test image), two in B
    assert quality["true_pairs"] == 3 + 1
    assert math.isclose(quality["precision"], 4 / 7)
    assert quality["clusters_joining_photos"] == 1
    assert quality["images_in_joining_clusters"] == 4
    assert quality["most_photos_in_one_cluster"] == 2


def test_report_shows_the_seed_row_and_cluster_purity() -> None:
    import json
    from pathlib import Path

    from bench.quality import report
    from bench.quality.dataset import HARD_NEGATIVE_KINDS
    from bench.quality.edits import EDIT_FAMILIES
    from bench.quality.metrics import EDIT_PAIR

    # The committed default-pool result, with the families and kinds added since filled empty.
    result = json.loads((Path(report.RESULTS) / "quality.json").read_text())
    empty = {"pairs": 0, "recall": None, "precision": None, "false_positives": 0, "fpr": None}
    for method in result["methods"]:
        op = method["operating_point"]
        for name in (*[f.name for f in EDIT_FAMILIES], EDIT_PAIR):
            op["families"].setdefault(name, empty)
        for kind in HARD_NEGATIVE_KINDS:
            op["hard_negatives"].setdefault(kind, empty)
    seed = {**result["methods"][-1], "name": "seed rules", "label": "all four"}
    result["methods"].insert(2, seed)
    result["clusters"] = cluster_quality({"a": "A", "b": "A", "c": "A"}, {"a": "p", "b": "p", "c": "q"})
    text = report.markdown(result)
    assert "| seed rules | all four |" in text
    assert "cluster-level precision 33.33 %" in text
    assert "1 clusters join images of two or more different photos" in text
