"""The benchmark set's labels (bench/quality/dataset.py, metrics.py, domains.py): leaving one
domain out keeps it out of training and never splits a scene; two edits of one photo are a
positive in the broad pool; two photos in one template are a hard negative; adjacent frames of one
video are neither; the domain table and the flatness measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.quality import templates
from bench.quality.dataset import (
    ADJACENT_FRAMES,
    FRAMES,
    SAME_SCENE,
    SPLIT_FRAMES,
    STEREO,
    BenchSet,
    SetImage,
    assign_splits,
    hard_negative_relations,
    template_pairs,
)
from bench.quality.domains import DOMAINS, domain_table, flat_share
from bench.quality.metrics import EDIT_PAIR, cluster_quality, operating_point, pair_labels

LINKED = (*STEREO, *SAME_SCENE, *SPLIT_FRAMES)


def _pool() -> tuple[list[str], dict[str, str]]:
    """Photo ids with domains; some are linked by scene across two domains on purpose."""
    domains = {f"pool/{k:03d}": DOMAINS[k % 6] for k in range(120)}
    domains.update(
        {
            "opencv/aloeL": "plants",
            "opencv/aloeR": "plants",
            "kphotoalbum/bar55": "interiors",
            "kphotoalbum/bar55_2": "outdoor",  # labelled apart, one scene: must follow bar55
            "kphotoalbum/skagen": "outdoor",
            "kphotoalbum/skagen_2": "outdoor",
            "labelme/00000100": "outdoor",
            "labelme/00000104": "outdoor",
        }
    )
    return sorted(domains), domains


def _linked_pairs(ids: set[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in LINKED if a in ids and b in ids]


@pytest.mark.parametrize("held", ["interiors", "outdoor", "plants"])
def test_leaving_a_domain_out(held: str) -> None:
    ids, domains = _pool()
    split = assign_splits(ids, seed=2024, test_fraction=0.5, domains=domains, holdout_domain=held)
    train = [pid for pid in ids if split[pid] == "train"]
    test = [pid for pid in ids if split[pid] == "test"]
    assert train and test
    assert all(domains[pid] != held for pid in train)  # the held-out domain is absent from training
    assert all(split[pid] == "test" for pid in ids if domains[pid] == held)
    pairs = _linked_pairs(set(ids))
    assert len(pairs) >= 4
    for a, b in pairs:  # no photo of a stereo pair, scene or kept sequence straddles
        assert split[a] == split[b], (a, b)
    # Only the held-out domain and what shares a scene with it is tested.
    extra = {pid for pid in test if domains[pid] != held}
    assert all(any(pid in pair and split[p] == "test" for pair in pairs for p in pair) for pid in extra)


def test_bar55_follows_its_scene_into_the_held_out_split() -> None:
    ids, domains = _pool()
    split = assign_splits(ids, seed=1, test_fraction=0.5, domains=domains, holdout_domain="interiors")
    assert split["kphotoalbum/bar55_2"] == "test"


def test_random_split_keeps_scenes_together_and_unknown_domain_is_refused() -> None:
    ids, domains = _pool()
    split = assign_splits(ids, seed=2024, test_fraction=0.5)
    assert {split[pid] for pid in ids} == {"train", "test"}
    for a, b in _linked_pairs(set(ids)):
        assert split[a] == split[b]
    with pytest.raises(ValueError):
        assign_splits(ids, seed=2024, test_fraction=0.5, domains=domains, holdout_domain="people")


def _image(group: str, family: str) -> SetImage:
    return SetImage(f"{group}__{family}.jpg", group, family, "test", "0" * 64)


def _bench(edit_pairs_positive: bool, relations: dict[frozenset[str], str] | None = None) -> BenchSet:
    images = (
        _image("a", "original"),
        _image("a", "resize"),
        _image("a", "logo"),
        _image("b", "original"),
        _image("b", "screenshot_templates"),
        _image("c", "original"),
        _image("c", "screenshot_templates"),
    )
    pair = frozenset(("b__screenshot_templates.jpg", "c__screenshot_templates.jpg"))
    same_template = {pair: "same_template"}
    return BenchSet(
        Path("."),
        0,
        images,
        relations or {},
        pool="broad",
        image_hard_negatives=same_template,
        edit_pairs_positive=edit_pairs_positive,
    )


def _label(labels, a: str, b: str) -> int:  # type: ignore[no-untyped-def]
    names = labels.names
    i, j = sorted((names.index(a), names.index(b)))
    return int(np.nonzero((labels.i == i) & (labels.j == j))[0][0])


def test_edit_pairs_are_positives_in_the_broad_pool() -> None:
    bench = _bench(edit_pairs_positive=True)
    labels = pair_labels(bench, bench.images)
    k = _label(labels, "a__resize.jpg", "a__logo.jpg")
    assert labels.positive[k] and labels.family[k] == EDIT_PAIR and not labels.negative[k]
    k = _label(labels, "a__original.jpg", "a__logo.jpg")
    assert labels.positive[k] and labels.family[k] == "logo"

    default = _bench(edit_pairs_positive=False)
    labels = pair_labels(default, default.images)
    k = _label(labels, "a__resize.jpg", "a__logo.jpg")
    assert not labels.positive[k] and labels.copy_copy[k] and not labels.negative[k]


def test_two_photos_in_one_template_are_a_hard_negative() -> None:
    bench = _bench(edit_pairs_positive=True)
    labels = pair_labels(bench, bench.images)
    k = _label(labels, "b__screenshot_templates.jpg", "c__screenshot_templates.jpg")
    assert labels.negative[k] and labels.hard_kind[k] == "same_template"
    k = _label(labels, "b__original.jpg", "c__original.jpg")
    assert labels.negative[k] and labels.hard_kind[k] == ""
    assert int((labels.hard_kind == "same_template").sum()) == 1


def test_adjacent_frames_are_neither_positive_nor_negative() -> None:
    # RubberWhale's two frames: the same photo to a portal, not a hard negative any more.
    relations = hard_negative_relations(
        {"opencv/rubberwhale1", "opencv/rubberwhale2", "opencv/left01", "opencv/left02"}, []
    )
    assert relations[frozenset(("opencv/rubberwhale1", "opencv/rubberwhale2"))] == "adjacent_frames"
    assert relations[frozenset(("opencv/left01", "opencv/left02"))] == "frames"
    assert not set(ADJACENT_FRAMES) & set(FRAMES)

    bench = _bench(edit_pairs_positive=True, relations={frozenset(("a", "b")): "adjacent_frames"})
    labels = pair_labels(bench, bench.images)
    k = _label(labels, "a__original.jpg", "b__original.jpg")
    assert not labels.negative[k] and not labels.positive[k] and labels.hard_kind[k] == "adjacent_frames"
    k = _label(labels, "a__original.jpg", "c__original.jpg")
    assert labels.negative[k]
    # Called duplicates: neither a false positive nor a hard negative's, counted apart.
    predicted = np.zeros(len(labels.i), dtype=bool)
    predicted[_label(labels, "a__resize.jpg", "b__original.jpg")] = True
    predicted[_label(labels, "a__original.jpg", "a__logo.jpg")] = True
    point = operating_point(labels, predicted)
    assert point["false_positives"] == 0 and point["precision"] == 1.0
    assert point["hard_negatives"]["all"] == {"pairs": 1, "false_positives": 0, "fpr": 0.0}
    assert point["neutral"] == {"pairs": 6, "called_duplicates": 1}
    assert bench.neutral_pairs() == {frozenset(("a", "b"))}


def test_a_cluster_of_adjacent_frames_is_neither_pure_nor_joining() -> None:
    group_of = {"a1": "a", "a2": "a", "b1": "b", "c1": "c"}
    neutral = {frozenset(("a", "b"))}
    together = cluster_quality({"a1": "X", "a2": "X", "b1": "X"}, group_of, neutral)
    assert together["pairs_in_clusters"] == 1 and together["precision"] == 1.0
    assert together["clusters_joining_photos"] == 0
    # Without the relation the same cluster joins two photos; with a third photo it still does.
    assert cluster_quality({"a1": "X", "a2": "X", "b1": "X"}, group_of)["precision"] == 1 / 3
    mixed = cluster_quality({"a1": "X", "b1": "X", "c1": "X"}, group_of, neutral)
    assert mixed["pairs_in_clusters"] == 2 and mixed["precision"] == 0.0
    assert mixed["clusters_joining_photos"] == 1


def test_template_pairs_put_two_photos_in_each_template() -> None:
    groups = [f"g{k}" for k in range(9)]
    chosen = template_pairs(groups, seed=3)
    assert set(chosen) == set(groups)
    assert set(chosen.values()) <= {t.name for t in templates.TEMPLATES}
    assert chosen == template_pairs(list(reversed(groups)), seed=3)  # order of the input does not matter
    # Every photo shares its template with another one, but for one odd one out.
    alone = [g for g in groups if list(chosen.values()).count(chosen[g]) == 1]
    assert len(alone) <= 1


def test_domain_table_is_valid() -> None:
    table = domain_table()
    assert len(table) > 300
    assert set(table.values()) <= set(DOMAINS)
    text = Path("bench/quality/domains.tsv").read_text()
    lines = [line for line in text.splitlines() if line and line[0] != "#"]
    assert len(lines) == len(table)  # no photo listed twice


def test_flat_share_tells_a_backdrop_from_texture() -> None:
    rng = np.random.default_rng(0)
    backdrop = np.full((300, 400, 3), 235, dtype=np.uint8)
    backdrop[100:200, 150:250] = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)  # an object on it
    noise = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    assert flat_share(backdrop) > 0.8
    assert flat_share(noise) < 0.05
