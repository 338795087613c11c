"""Calibration's candidate labels (bench/quality/calibrate.py): two different photos' screenshots
in one template (the manifest's per-image `same_template` relation) are a hard negative, kept
whole at weight 1 and never sampled away with the easy negatives."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import numpy as np

from bench.quality import lodo
from bench.quality.analysis import Analysed
from bench.quality.calibrate import label_pair, training_candidates
from bench.quality.dataset import BenchSet, SetImage, template_pairs

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


def _two_split_bench(groups: dict[str, str], family: str) -> BenchSet:
    images = tuple(
        image
        for group, split in groups.items()
        for image in (
            SetImage(f"{group}__original.jpg", group, "original", split, "0" * 64),
            SetImage(f"{group}__{family}.jpg", group, family, split, "0" * 64),
        )
    )
    return BenchSet(Path("."), 7, images, {}, pool="broad")


def test_lodo_relates_screenshot_templates_across_the_splits() -> None:
    """The manifest relates template copies within a split only (the splits are evaluated
    apart); leave-one-domain-out uses both halves, where two photos of different splits can
    share a template too."""
    groups = {f"t{k}": "train" for k in range(6)} | {f"s{k}": "test" for k in range(6)}
    bench = _two_split_bench(groups, "screenshot_templates")
    template: dict[str, str] = {}
    for split in ("train", "test"):
        template.update(template_pairs(sorted(g for g, s in groups.items() if s == split), bench.seed))
    across = [(a, b) for a in groups if groups[a] == "train" for b in groups if groups[b] == "test"]
    same = [(a, b) for a, b in across if template[a] == template[b]]
    different = [(a, b) for a, b in across if template[a] != template[b]]
    assert same and different  # the seeded choice gives both on this set
    related = lodo.with_frame_relations(bench).image_hard_negatives
    name = {g: f"{g}__screenshot_templates.jpg" for g in groups}
    for a, b in same:
        assert related[frozenset((name[a], name[b]))] == "same_template"
    for a, b in different:
        assert frozenset((name[a], name[b])) not in related
    assert not any(f"{g}__original.jpg" in pair for pair in related for g in groups)


def test_lodo_relates_two_photos_in_one_augly_screenshot_template() -> None:
    groups = {f"p{k}": "train" for k in range(8)}
    bench = _two_split_bench(groups, "screenshot")
    related = lodo.with_frame_relations(bench).image_hard_negatives
    # AugLy's template is the edit's first seeded choice (bench/quality/edits.py screenshot).
    template = {
        g: random.Random(f"imgdup-quality-edit:{bench.seed}:{g}:screenshot").choice(("web.png", "mobile.png"))
        for g in groups
    }
    for a, b in itertools.combinations(sorted(groups), 2):
        pair = frozenset((f"{a}__screenshot.jpg", f"{b}__screenshot.jpg"))
        assert (pair in related) == (template[a] == template[b])
    assert len(set(template.values())) == 2
