"""Calibration's candidate labels (bench/quality/calibrate.py): two different photos' screenshots
in one template (the manifest's per-image `same_template` relation) are a hard negative, kept
whole at weight 1 and never sampled away with the easy negatives."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from bench.quality import lodo
from bench.quality.analysis import Analysed
from bench.quality.calibrate import label_pair, training_candidates
from bench.quality.dataset import BenchSet, SetImage

TEMPLATE_B = "b__screenshot_templates.jpg"
TEMPLATE_C = "c__screenshot_templates.jpg"


def _image(group: str, family: str) -> SetImage:
    return SetImage(f"{group}__{family}.jpg", group, family, "train", "0" * 64)


def _bench(*, same_template: bool = True) -> BenchSet:
    images = (
        _image("a", "original"),
        _image("a", "resize"),
        _image("b", "original"),
        _image("b", "screenshot_templates"),
        _image("c", "original"),
        _image("c", "screenshot_templates"),
        *(_image(f"x{k}", "original") for k in range(6)),
    )
    relations = {frozenset((TEMPLATE_B, TEMPLATE_C)): "same_template"} if same_template else {}
    return BenchSet(Path("."), 0, images, {}, pool="broad", image_hard_negatives=relations)


def _analysed(bench: BenchSet) -> Analysed:
    """Every image close to every other (cosine 0.9): the exact search proposes every pair."""
    n = len(bench.images)
    rng = np.random.default_rng(0)
    base = np.ones(16, dtype=np.float32)
    vectors = base + 0.05 * rng.standard_normal((n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    zeros = np.zeros(n, dtype=np.uint64)
    return Analysed(
        [i.name for i in bench.images],
        vectors,
        zeros,
        zeros,
        np.zeros((n, 8, 32), dtype=np.uint8),
        ["0" * 64] * n,
        np.zeros_like(vectors),
        np.zeros(n, dtype=bool),
    )


def test_same_template_screenshots_of_different_photos_are_a_hard_negative() -> None:
    bench = _bench()
    by_name = {i.name: i for i in bench.images}
    assert label_pair(bench, by_name[TEMPLATE_B], by_name[TEMPLATE_C]) == (0, "same_template")
    assert label_pair(bench, by_name[TEMPLATE_C], by_name[TEMPLATE_B]) == (0, "same_template")
    # The photos themselves are not related: their originals stay easy negatives.
    assert label_pair(bench, by_name["b__original.jpg"], by_name["c__original.jpg"]) == (0, "other")
    # A photo with its own template copy is still a positive of that family.
    assert label_pair(bench, by_name["b__original.jpg"], by_name[TEMPLATE_B]) == (1, "screenshot_templates")


def test_same_template_pairs_are_all_kept_at_weight_one() -> None:
    bench = _bench()
    analysed = _analysed(bench)
    for seed in range(20):  # whatever the seed, only one easy negative is sampled
        candidates = training_candidates(
            bench, bench.images, analysed, top_k=20, min_score=0.0, negatives=1, seed=seed
        )
        kinds = Counter(c.kind for c in candidates)
        template = [c for c in candidates if {c.a, c.b} == {TEMPLATE_B, TEMPLATE_C}]
        assert len(template) == 1
        assert template[0].kind == "same_template" and template[0].label == 0
        assert template[0].weight == 1.0
        assert kinds["other"] == 1


def test_without_image_relations_the_labels_are_unchanged() -> None:
    """The default pool has no per-image relations: its candidates are labelled by photo only."""
    bench = _bench(same_template=False)
    by_name = {i.name: i for i in bench.images}
    assert label_pair(bench, by_name[TEMPLATE_B], by_name[TEMPLATE_C]) == (0, "other")


def test_lodo_counts_same_template_pairs_among_the_hard_negatives() -> None:
    bench = _bench()
    assert lodo.hard_negative_universe(bench, {"b"}, within={"a", "b", "c"}) == Counter({"same_template": 1})
    assert lodo.hard_negative_universe(bench, {"a"}, within={"a", "b", "c"}) == Counter()
    # A partner photo that was not searched can never be a candidate.
    assert lodo.hard_negative_universe(bench, {"b"}, within={"a", "b"}) == Counter()
