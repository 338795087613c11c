"""Leave one domain out on measured evidence (bench/quality/lodo.py): the fold fits on the other
domains' pairs only and writes its model where it is told (never imgdup_core/fusion_weights.py);
a positive pair the search never proposed is a miss; precision weighs sampled negatives back."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.quality import calibrate, lodo
from bench.quality.calibrate import Candidate
from bench.quality.dataset import SetImage
from bench.quality.lodo_clusters import listed_summary, replay
from bench.quality.metrics import EDIT_PAIR
from imgdup_core.bridges import Link
from imgdup_core.evidence import Evidence


def _image(name: str, group: str, family: str) -> SetImage:
    return SetImage(name, group, family, "test", "0" * 64)


def _evidence(duplicate: bool, rng: random.Random) -> Evidence:
    if duplicate:
        return Evidence(
            rng.randint(0, 8), False, rng.uniform(0.85, 1.0), rng.randint(40, 300), False,
            rng.uniform(0.8, 0.99), sift_matches=400, overlap=rng.uniform(0.6, 1.0), mismatch=0.02,
        )  # fmt: skip
    return Evidence(rng.randint(20, 40), False, rng.uniform(0.2, 0.6), 0, False, None)


def _measured(n_groups: int, seed: int = 1) -> list[tuple[Candidate, Evidence, float]]:
    rng = random.Random(seed)
    out = []
    for g in range(n_groups):
        out.append((Candidate(f"g{g}-a", f"g{g}-b", 0.9, 1, "resize", 1.0), _evidence(True, rng), 0.0))
        out.append((Candidate(f"g{g}-a", f"g{g + 1}-a", 0.4, 0, "other", 5.0), _evidence(False, rng), 0.0))
    return out


def test_positive_universe_counts_unproposed_pairs_as_misses() -> None:
    images = [
        _image("p-o", "p", "original"),
        _image("p-r", "p", "resize"),
        _image("p-c", "p", "crop25"),
        _image("q-o", "q", "original"),
    ]
    universe = lodo.positive_universe(images, {"p"})
    assert universe == {("p-o", "p-r"): "resize", ("p-c", "p-o"): "crop25", ("p-c", "p-r"): EDIT_PAIR}
    # Only one of the three pairs was proposed (and confirmed): recall 1/2 for the copies.
    scored = lodo.Scored(
        predicted={("p-o", "p-r"): True, ("p-o", "q-o"): True},
        weights={("p-o", "p-r"): 1.0, ("p-o", "q-o"): 3.0},
        labels={("p-o", "p-r"): (1, "resize"), ("p-o", "q-o"): (0, "same_kind")},
        confidence={("p-o", "p-r"): 0.9, ("p-o", "q-o"): 0.6},
    )
    summary = lodo.summarise(scored, universe, Counter({"same_kind": 4}))
    assert summary["edits"]["pairs"] == 2
    assert summary["edits"]["recall"] == 0.5
    assert summary["families"]["crop25"]["proposed"] == 0.0
    assert summary["edit_pair"]["recall"] == 0.0
    assert summary["precision"] == 1.0 / (1.0 + 3.0)  # the sampled negative weighs 3
    assert summary["hard_negatives"]["same_kind"] == {"pairs": 4, "false_positives": 1}
    assert summary["false_pairs"] == [["same_kind", "p-o", "q-o"]]
    assert summary["missed_pairs"] == [["crop25", "p-c", "p-o"], [EDIT_PAIR, "p-c", "p-r"]]


def test_adjacent_frames_called_duplicates_are_reported_not_scored() -> None:
    scored = lodo.Scored(
        predicted={("p-o", "p-r"): True, ("p-o", "q-o"): True, ("p-r", "q-o"): False},
        weights={("p-o", "p-r"): 1.0, ("p-o", "q-o"): 1.0, ("p-r", "q-o"): 1.0},
        labels={
            ("p-o", "p-r"): (1, "resize"),
            ("p-o", "q-o"): (0, "adjacent_frames"),
            ("p-r", "q-o"): (0, "adjacent_frames"),
        },
        confidence={("p-o", "p-r"): 0.9, ("p-o", "q-o"): 0.9, ("p-r", "q-o"): 0.1},
    )
    summary = lodo.summarise(scored, {("p-o", "p-r"): "resize"}, Counter())
    assert summary["precision"] == 1.0 and summary["false_pairs"] == []
    assert summary["neutral_called"] == [["adjacent_frames", "p-o", "q-o"]]


def test_fold_fits_without_the_test_side_and_writes_where_told(tmp_path: Path) -> None:
    shipped = calibrate.FUSION_WEIGHTS_PATH.read_text()
    measured = _measured(40)
    in_test = {f"g{g}-{s}" for g in range(30, 41) for s in "ab"}
    path = tmp_path / "fold.py"
    test, config, cut_off, facts = lodo._fold(measured, in_test.__contains__, 0.2, path, {"fold": "t"})
    assert {(c.a, c.b) for c, _, _ in test} == {
        (c.a, c.b) for c, _, _ in measured if c.a in in_test or c.b in in_test
    }
    assert facts["train_pairs"] == len(measured) - len(test)
    assert path.exists() and "THRESHOLD" in path.read_text()
    assert calibrate.FUSION_WEIGHTS_PATH.read_text() == shipped
    scored = lodo.score(test, config, cut_off)
    assert all(scored.predicted[(c.a, c.b)] == bool(c.label) for c, _, _ in test)


def test_fold_model_depends_on_its_training_pairs(tmp_path: Path) -> None:
    measured = _measured(40)
    first = lodo._fold(measured, lambda name: name.startswith("g1"), 0.2, tmp_path / "a.py", {})[3]
    second = lodo._fold(measured, lambda name: name.startswith("g5-"), 0.2, tmp_path / "b.py", {})[3]
    assert first["train_pairs"] != second["train_pairs"]
    assert first["weights"] != second["weights"]


def test_choose_photos_caps_each_domain_and_is_seeded() -> None:
    images = [
        SetImage(f"{d}{k}-{f}", f"{d}/{k}", f, "train", "0" * 64, domain=d)
        for d, n in (("food", 50), ("interiors", 4))
        for k in range(n)
        for f in ("original", "resize")
    ]
    chosen = lodo.choose_photos(images, 10, seed=7)
    assert sum(g.startswith("food/") for g in chosen) == 10
    assert {f"interiors/{k}" for k in range(4)} <= chosen  # a small domain is kept whole
    assert chosen == lodo.choose_photos(images, 10, seed=7)
    assert chosen != lodo.choose_photos(images, 10, seed=8)


def test_report_names_the_emulation_and_the_worst_domain() -> None:
    from bench.quality.lodo_report import markdown

    def summary(recall: float) -> dict[str, object]:
        part = {"pairs": 10, "recall": recall, "proposed": 1.0}
        return {
            "families": {"resize": part, "crop25": part},
            "benign": part,
            "hard": part,
            "edits": part,
            "edit_pair": {"pairs": 0, "recall": float("nan"), "proposed": float("nan")},
            "precision": 0.99,
            "false_positives_weighted": 0.0,
            "hard_negatives": {"same_kind": {"pairs": 5, "false_positives": 1}},
        }

    fit = {
        "train_pairs": 100,
        "train_duplicates": 40,
        "train_recall": 0.9,
        "threshold": 0.95,
        "candidate_min_cosine": 0.3,
        "weights": {"cosine_strong": 1.0},
    }
    folds = {
        d: {"photos": 20, "test_photos": 20, "fit": fit, "held_out": summary(r), "random_split": summary(0.9),
            "shipped": summary(0.9)}
        for d, r in (("food", 0.8), ("objects", 0.6))
    }  # fmt: skip
    setup = {
        "set": "set-x", "photos": 40, "images": 80, "copies_per_photo": 1, "measured_pairs": 200,
        "photos_per_domain": {"food": 20, "objects": 20}, "ann_top_k": 10, "ann_min_score_measured": 0.2,
        "verifier_measuring": "fused-v3", "min_photos": 15, "features": ["cosine_strong"],
        "sampled_other_negatives": 10,
    }  # fmt: skip
    text = markdown({"setup": setup, "folds": folds, "random_split_fit": fit, "elapsed_s": 1.0})
    assert "offline emulation of the product" in text
    assert "**Worst domain**: objects (60.0 %" in text
    assert "held out 70.0 %" in text  # the average of 80 and 60
    assert "| resize | benign | 80.0 (10) | 60.0 (10) |" in text
    assert "What the API would list" not in text  # no replayed clusters in this result
    assert "Hard negatives called duplicates" not in text  # a result written before they were recorded
    folds["objects"]["held_out"]["false_pairs"] = [["same_kind", "a.jpg", "b.jpg"]]
    text = markdown({"setup": setup, "folds": folds, "random_split_fit": fit, "elapsed_s": 1.0})
    assert "| objects | same_kind | a.jpg | b.jpg |" in text
    assert "Edited copies missed" not in text  # a result written before they were recorded
    missed = [["crop25", "c.jpg", "d.jpg"], [EDIT_PAIR, "c.jpg", "e.jpg"]]
    folds["objects"]["held_out"]["missed_pairs"] = missed
    text = markdown({"setup": setup, "folds": folds, "random_split_fit": fit, "elapsed_s": 1.0})
    assert "| objects | crop25 | c.jpg | d.jpg |" in text and "e.jpg" not in text
    for domain, recall in (("food", 0.9), ("objects", 0.7)):
        listed = {**summary(recall), "cluster_precision": 0.995, "clusters_joining_photos": 1}
        folds[domain]["held_out_listed"] = listed
    text = markdown({"setup": setup, "folds": folds, "random_split_fit": fit, "elapsed_s": 1.0})
    assert "**Worst domain, as listed**: objects (70.0 %); hard edits: objects (70.0 %)" in text
    assert "| objects | 70.0 | 70.0 | 70.0 | n/a | 99.50 | 1 |" in text
    # Each family as the API would list it, beside the verdicts as pairs (80.0 and 60.0 above).
    listed_table = text.split("as the API would list them")[1]
    assert "| crop25 | hard | 90.0 (10) | 70.0 (10) |" in listed_table


def test_hard_negatives_count_only_pairs_among_the_chosen_photos(tmp_path: Path) -> None:
    from bench.quality.dataset import BenchSet

    images = tuple(
        SetImage(f"{g}-{f}", g, f, "test", "0" * 64) for g in ("a", "b", "c") for f in ("original", "resize")
    )
    bench = BenchSet(
        tmp_path, 1, images, {frozenset(("a", "b")): "same_kind", frozenset(("a", "c")): "same_kind"}
    )
    assert lodo.hard_negative_universe(bench, {"a"}, within={"a", "b"}) == Counter({"same_kind": 4})
    # Adjacent frames are no hard negatives.
    frames = BenchSet(tmp_path, 1, images, {frozenset(("a", "b")): "adjacent_frames"})
    assert lodo.hard_negative_universe(frames, {"a"}, within={"a", "b"}) == Counter()


def test_restricting_a_scoring_to_one_domain_keeps_only_its_pairs() -> None:
    scored = lodo.Scored(
        predicted={("a1", "b1"): True, ("c1", "d1"): True, ("a2", "c2"): False},
        weights={("a1", "b1"): 1.0, ("c1", "d1"): 2.0, ("a2", "c2"): 2.0},
        labels={("a1", "b1"): (1, "resize"), ("c1", "d1"): (0, "other"), ("a2", "c2"): (0, "other")},
        confidence={("a1", "b1"): 0.9, ("c1", "d1"): 0.6, ("a2", "c2"): 0.1},
    )
    only_a = lodo.restrict(scored, lambda name: name.startswith("a"))
    assert set(only_a.predicted) == {("a1", "b1"), ("a2", "c2")}
    assert lodo.summarise(only_a, {}, Counter())["precision"] == 1.0  # c1-d1's false positive is not a's


class _Measuring(Exception):
    """Raised by the stubbed measuring step: the test stops there, nothing is measured."""


def _measuring_config(monkeypatch: Any, argv: list[str]) -> dict[str, Any]:
    """Run `python -m bench.quality lodo ARGV` up to the measuring step (set, embedding and search
    stubbed) and return what the candidate search and the measuring step were given."""
    import imgdup_core.embedding
    from bench.quality.__main__ import main

    seen: dict[str, Any] = {}

    def candidates(*args: Any, **kwargs: Any) -> list[Candidate]:
        seen["phash_channel"] = kwargs.get("phash_channel", False)
        return []

    def measure(*args: Any, **kwargs: Any) -> list[Any]:
        seen["config"] = kwargs.get("config")
        raise _Measuring

    bench = SimpleNamespace(images=[])
    monkeypatch.setattr(lodo, "build_set", lambda **kwargs: bench)
    monkeypatch.setattr(lodo, "with_frame_relations", lambda b: b)
    monkeypatch.setattr(lodo, "analyse", lambda *args: None)
    monkeypatch.setattr(lodo, "_subset", lambda analysed, names: analysed)
    monkeypatch.setattr(imgdup_core.embedding, "build_embedder", lambda name: None)
    monkeypatch.setattr(lodo, "training_candidates", candidates)
    monkeypatch.setattr(lodo, "measure_candidates", measure)
    with pytest.raises(_Measuring):
        main(["lodo", "--pool", "broad", *argv])
    return seen


def test_lodo_verifier_option_reaches_the_measuring_config(monkeypatch: Any) -> None:
    from imgdup_core.verifier_config import DEFAULT_VERIFIER, FUSED_V5

    seen = _measuring_config(monkeypatch, ["--verifier", "fused-v5"])
    assert seen["config"] == FUSED_V5
    assert seen["phash_channel"] is True  # fused-v5 proposes pHash-channel candidates too
    seen = _measuring_config(monkeypatch, [])
    assert seen["config"] == DEFAULT_VERIFIER
    assert seen["phash_channel"] is False


def test_fold_fits_the_verifiers_features_on_its_settings(tmp_path: Path) -> None:
    from imgdup_core.verifier_config import FUSED_V5

    base, features = lodo.measuring("fused-v5")
    assert features == tuple(calibrate.MODELS["fused-v5"][0])
    _, config, _, facts = lodo._fold(
        _measured(40), lambda name: name.startswith("g3"), 0.2, tmp_path / "v5.py", {}, base, features
    )
    assert config.fusion.features == features
    assert list(facts["weights"]) == list(features)
    assert config.shared_page_check == FUSED_V5.shared_page_check is True
    assert config.sift_low_texture_keypoints == FUSED_V5.sift_low_texture_keypoints > 0


def test_a_phash_channel_pair_is_verified_whatever_its_cosine() -> None:
    rng = random.Random(3)
    pairs = [
        (Candidate("a", "b", 0.1, 1, "resize", 1.0, "phash"), _evidence(True, rng), 0.0),
        (Candidate("c", "d", 0.1, 1, "resize", 1.0, "ann"), _evidence(True, rng), 0.0),
    ]
    scored = lodo.score(pairs, lodo.measuring("fused-v5")[0], 0.3)
    assert scored.predicted == {("a", "b"): True, ("c", "d"): False}


def test_lodo_writes_under_the_given_name(tmp_path: Path, monkeypatch: Any) -> None:
    result = {"setup": {}, "folds": {}}
    monkeypatch.setattr(lodo, "run", lambda args: result)
    monkeypatch.setattr(lodo, "RESULTS", tmp_path)
    written: list[str] = []
    monkeypatch.setattr(lodo, "write", lambda result, stem: written.append(stem) or (tmp_path, tmp_path))
    monkeypatch.setattr(Path, "read_text", lambda self: "")
    lodo.main(SimpleNamespace(name="quality-broad-lodo-fused-v5"))
    lodo.main(SimpleNamespace(name=None))
    assert written == ["quality-broad-lodo-fused-v5", "quality-broad-lodo"]


def _unseparable(n_groups: int) -> list[tuple[Candidate, Evidence, float]]:
    """Separable copies and easy negatives, plus three negatives measured like copies (two photos in
    one template) and twenty hard negatives between: 99.5 % training precision is reached at no cut."""
    out = _measured(n_groups)
    # Measured exactly as three of the copies (the photo boxes cut from two template pages can
    # be one picture on both sides).
    for k in range(3):
        same = out[2 * k][1]
        out.append(
            (Candidate(f"t{k}-a", f"t{k}-b", same.embedding_cosine, 0, "same_template", 1.0), same, 0.0)
        )
    for k in range(20):
        hard = Evidence(6, False, 0.75, 280, False, 0.82, sift_matches=285, overlap=1.0, mismatch=0.2)
        out.append((Candidate(f"h{k}-a", f"h{k}-b", 0.75, 0, "same_template", 1.0), hard, 0.0))
    return out


def test_fold_threshold_follows_the_rule_it_is_given(tmp_path: Path) -> None:
    measured = _unseparable(40)
    in_test = {f"g{g}-{s}" for g in range(30, 41) for s in "ab"}.__contains__
    facts, found = {}, {}
    for rule in ("precision", "cost"):
        test, config, cut_off, facts[rule] = lodo._fold(
            measured, in_test, 0.2, tmp_path / f"{rule}.py", {}, rule=rule
        )
        scored = lodo.score(test, config, cut_off)
        found[rule] = sum(scored.predicted[k] for k, (label, _) in scored.labels.items() if label == 1)
    # Three negatives that score like copies: 99.5 % training precision is reached only above
    # them, so the precision rule keeps a handful of copies; the cost rule keeps every copy.
    assert facts["precision"]["train_recall"] < 0.2 and found["precision"] <= 2
    assert facts["cost"]["train_recall"] == 1.0 and found["cost"] == 10
    with pytest.raises(ValueError, match="threshold rule"):
        lodo._fold(measured, in_test, 0.2, tmp_path / "x.py", {}, rule="lowest")


def test_fused_v7_is_fitted_with_the_cost_rule_and_older_versions_are_not() -> None:
    assert calibrate.threshold_rule("fused-v7") == "cost"
    assert {calibrate.threshold_rule(v) for v in ("fused-v3", "fused-v4", "fused-v5", "fused-v6")} == {
        "precision"
    }
    assert lodo.measuring("fused-v7")[0].version == "fused-v7"


def test_extra_training_leaves_out_the_held_out_domain_and_the_test_side(tmp_path: Path) -> None:
    from bench.quality.lodo_extra import ExtraTraining

    rng = random.Random(2)
    pairs = [
        (Candidate("f1-o", "f1-r", 0.9, 1, "resize", 1.0), _evidence(True, rng), 0.0),  # food
        (Candidate("a1-o", "a1-r", 0.9, 1, "resize", 1.0), _evidence(True, rng), 0.0),  # animals
        (Candidate("a1-o", "f1-o", 0.4, 0, "other", 3.0), _evidence(False, rng), 0.0),  # both
        (
            Candidate("o1-o", "o2-o", 0.4, 0, "other", 3.0),
            _evidence(False, rng),
            0.0,
        ),  # outdoor, o2 on test side
    ]
    group_of = {"f1-o": "f1", "f1-r": "f1", "a1-o": "a1", "a1-r": "a1", "o1-o": "o1", "o2-o": "o2"}
    domain = {"f1": "food", "a1": "animals", "o1": "outdoor", "o2": "outdoor"}
    extra = ExtraTraining("t", pairs, group_of, {n: domain[g] for n, g in group_of.items()})
    kept = extra.usable("food", {"o2"})
    assert [(c.a, c.b) for c, _, _ in kept] == [("a1-o", "a1-r")]
    assert len(extra.usable(None, set())) == 4
    # A fold trains on them beside its own pairs.
    measured = _measured(20)
    facts = lodo._fold(measured, lambda n: n.startswith("g1"), 0.2, tmp_path / "a.py", {}, extra=kept)[3]
    alone = lodo._fold(measured, lambda n: n.startswith("g1"), 0.2, tmp_path / "b.py", {})[3]
    assert facts["train_pairs"] == alone["train_pairs"] + 1


def _link(a: str, b: str, confidence: float = 0.99) -> Link:
    return Link(a, b, confidence)


def test_the_replayed_clusterer_holds_one_marginal_pair_between_two_groups() -> None:
    groups = [_link("a1", "a2"), _link("a2", "a3"), _link("b1", "b2"), _link("b2", "b3")]
    clusters = replay([*groups, _link("a1", "b1", 0.6)])
    assert clusters["a1"] == clusters["a3"] != clusters["b1"] == clusters["b3"]
    # A second marginal pair between them makes the join two deep: held no more, both join.
    clusters = replay([*groups, _link("a1", "b1", 0.6), _link("a2", "b2", 0.6)])
    assert len(set(clusters.values())) == 1
    # A strong pair joins at once; a marginal one into a lone image is no bridge between groups.
    assert len(set(replay([*groups, _link("a1", "b1", 0.99)]).values())) == 1
    assert replay([_link("o", "e1"), _link("o", "e2", 0.5)]) == {"o": 0, "e1": 0, "e2": 0}


def test_what_the_api_lists_counts_two_edits_of_one_photo_through_their_cluster() -> None:
    position = {name: k for k, name in enumerate(["p-o", "p-r", "p-c", "q-o", "q-r"])}
    group_of = {"p-o": "p", "p-r": "p", "p-c": "p", "q-o": "q", "q-r": "q"}
    positives = {("p-o", "p-r"): "resize", ("p-c", "p-o"): "crop25", ("p-c", "p-r"): EDIT_PAIR}
    kinds = {"benign": ("resize",), "hard": ("crop25",), "edit_pair": (EDIT_PAIR,)}
    # p's two copies were each verified against the original, never with each other.
    verified = {("p-o", "p-r"): 0.9, ("p-c", "p-o"): 0.8, ("q-o", "q-r"): 0.9}
    summary = listed_summary(verified, position, positives, group_of, kinds)
    assert summary["edit_pair"] == {"pairs": 1, "recall": 1.0}
    assert summary["hard"]["recall"] == 1.0 and summary["cluster_precision"] == 1.0
    # Without the crop's pair, it is in no cluster: both its pairs are missed.
    del verified[("p-c", "p-o")]
    summary = listed_summary(verified, position, positives, group_of, kinds)
    assert summary["hard"]["recall"] == 0.0 and summary["edit_pair"]["recall"] == 0.0
    # A false pair joining p's cluster to q's: the clusters' precision counts the cross pairs.
    verified[("p-r", "q-o")] = 0.99
    summary = listed_summary(verified, position, positives, group_of, kinds)
    assert summary["clusters_joining_photos"] == 1 and summary["cluster_precision"] == 2 / 6


def test_an_arriving_images_pairs_are_replayed_most_similar_first() -> None:
    # Two established groups (l, r); r3 arrives with a marginal false pair to l1 and a strong one to r1. The
    # product's verifier takes an ad's candidates most similar first (imgdup.steps.index): r3 joins r's group,
    # and then the marginal pair would join two established groups through one edge, so it is held.
    position = {name: k for k, name in enumerate(["l1", "l2", "r1", "r2", "r3"])}
    group_of = {"l1": "l", "l2": "l", "r1": "r", "r2": "r", "r3": "r"}
    positives = {("l1", "l2"): "resize", ("r1", "r2"): "resize", ("r1", "r3"): "contrast"}
    kinds = {"benign": ("resize", "contrast"), "hard": (), "edit_pair": (EDIT_PAIR,)}
    verified = {("l1", "l2"): 0.99, ("r1", "r2"): 0.99, ("l1", "r3"): 0.6, ("r1", "r3"): 0.99}
    cosine = {("l1", "l2"): 0.9, ("r1", "r2"): 0.9, ("l1", "r3"): 0.37, ("r1", "r3"): 0.9}
    by_similarity = listed_summary(verified, position, positives, group_of, kinds, cosine=cosine)
    assert by_similarity["cluster_precision"] == 1.0 and by_similarity["clusters_joining_photos"] == 0
    # In the other images' arrival order (l1 before r1) the false pair comes first and joins r3 to l's group.
    by_arrival = listed_summary(verified, position, positives, group_of, kinds)
    assert by_arrival["clusters_joining_photos"] == 1
