"""Tests for imgdup_core.fusion and imgdup_core.verifier_config: evidence in, fused probabilities
and decisions out; the calibrated model as bench.quality.calibrate writes it and fusion loads it."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench.quality.calibrate import FEATURES as FITTED_FEATURES
from bench.quality.calibrate import write_model
from imgdup_core import fusion_weights
from imgdup_core.evidence import Evidence
from imgdup_core.fusion import CALIBRATED_FUSION, FUSION_FEATURES, FusionModel, fusion_features, model_from
from imgdup_core.verifier_config import DEFAULT_VERIFIER, VerifierConfig
from imgdup_core.verify import decide


def _evidence(
    *,
    cosine: float,
    phash: int = 30,
    inliers: int = 0,
    matches: int | None = None,
    ssim: float | None = None,
    mismatch: float | None = None,
    overlap: float = 1.0,
) -> Evidence:
    aligned = ssim is not None
    return Evidence(
        phash_distance=phash,
        phash_mirrored=False,
        embedding_cosine=cosine,
        sift_inliers=inliers,
        sift_mirrored=False,
        ssim=ssim,
        sift_matches=inliers if matches is None else matches,
        overlap=overlap if aligned else 0.0,
        mismatch=(0.0 if mismatch is None else mismatch) if aligned else None,
    )


def _p(**kwargs: float | int | None) -> float:
    return DEFAULT_VERIFIER.fusion.probability(_evidence(**kwargs))  # type: ignore[arg-type]


# --- the calibrated decision ------------------------------------------------------------------------


def test_fusion_decides_on_the_evidence_together() -> None:
    # Without an alignment even a near-identical embedding and hash stay below the threshold:
    # on the training set such pairs were other shots of one product or scene as often as copies.
    assert not decide(_evidence(cosine=0.99, phash=2)).is_duplicate
    assert decide(_evidence(cosine=0.99, phash=2, inliers=40, ssim=0.9)).is_duplicate
    # Geometry and aligned pixels carry a copy whose cosine collapsed (heavy watermark, crop).
    assert decide(_evidence(cosine=0.25, phash=30, inliers=80, ssim=0.9)).is_duplicate
    # Nothing lines up and the embedding is lukewarm: two photos of the same kind of thing.
    assert not decide(_evidence(cosine=0.6, phash=26)).is_duplicate
    # A shared frame lines up perfectly while the photos inside it disagree: not a copy.
    assert not decide(_evidence(cosine=0.7, phash=14, inliers=280, ssim=0.92, mismatch=0.35)).is_duplicate


@pytest.mark.parametrize(
    ("feature", "low", "high"),
    [("cosine", 0.3, 0.9), ("ssim", 0.5, 0.9), ("phash", 28, 4)],
)
def test_more_agreement_never_lowers_the_probability(feature: str, low: float, high: float) -> None:
    base: dict[str, float | int | None] = {"cosine": 0.5, "phash": 20, "inliers": 40, "ssim": 0.75}
    assert _p(**{**base, feature: high}) > _p(**{**base, feature: low})


def test_disagreement_lowers_the_probability() -> None:
    base: dict[str, float | int | None] = {"cosine": 0.6, "phash": 20, "inliers": 100, "ssim": 0.85}
    assert _p(**base, mismatch=0.4) < _p(**base, mismatch=0.02)


def test_confidence_is_bounded_and_grows_away_from_the_threshold() -> None:
    weak_yes = decide(_evidence(cosine=0.5, inliers=30, ssim=0.8))
    strong_yes = decide(_evidence(cosine=0.95, phash=2, inliers=300, ssim=0.97))
    near_no = decide(_evidence(cosine=0.7, phash=22))
    far_no = decide(_evidence(cosine=0.05, phash=34))
    assert weak_yes.is_duplicate and strong_yes.is_duplicate
    assert not near_no.is_duplicate and not far_no.is_duplicate
    assert 0.5 <= weak_yes.confidence <= strong_yes.confidence <= 1.0
    assert 0.5 <= near_no.confidence <= far_no.confidence <= 1.0
    threshold = DEFAULT_VERIFIER.fusion.threshold
    assert weak_yes.score >= threshold > near_no.score


def test_exact_copies_are_duplicates_whatever_the_model() -> None:
    never = FusionModel(features=("cosine",), weights=(1.0,), bias=-30.0, threshold=0.999)
    exact = dataclasses.replace(_evidence(cosine=0.0), exact=True)
    verdict = decide(exact, VerifierConfig(version="never", fusion=never))
    assert verdict.is_duplicate and verdict.confidence == 1.0 and verdict.score == 1.0


def test_fusion_features_are_derived_from_evidence_only() -> None:
    features = fusion_features(_evidence(cosine=0.9, phash=4, inliers=120, matches=150, ssim=0.8))
    assert set(features) == set(FUSION_FEATURES)
    assert features["inlier_ratio"] == pytest.approx(0.8)
    assert features["cosine"] == 0.9 and features["cosine_strong"] == pytest.approx(0.5)
    assert features["no_alignment"] == 0.0
    assert fusion_features(_evidence(cosine=0.9))["no_alignment"] == 1.0


def test_fusion_features_for_the_blind_spots() -> None:
    # fused-v4 (issue 11). Very strong global evidence where nothing aligned (a flat photo):
    # counts only without an alignment, only above cosine 0.9, scaled by pHash closeness.
    unaligned = fusion_features(_evidence(cosine=0.97, phash=2))
    assert unaligned["cosine_very_strong"] == pytest.approx(0.7)
    assert unaligned["unaligned_global"] == pytest.approx(0.7 * 14 / 16)
    assert fusion_features(_evidence(cosine=0.89, phash=0))["unaligned_global"] == 0.0
    assert fusion_features(_evidence(cosine=0.99, phash=16))["unaligned_global"] == 0.0
    aligned = fusion_features(_evidence(cosine=0.97, phash=2, inliers=50, ssim=0.8, mismatch=0.2))
    assert aligned["unaligned_global"] == 0.0
    # Geometric agreement in numbers, when aligned: 100 inliers and more count fully.
    assert aligned["inliers_many"] == pytest.approx(0.5)
    assert fusion_features(_evidence(cosine=0.5, inliers=400, ssim=0.8))["inliers_many"] == 1.0
    assert fusion_features(_evidence(cosine=0.5, inliers=40))["inliers_many"] == 0.0  # no alignment
    # A textured mismatch that a near pHash (within 10 bits) attributes to an overlay.
    assert aligned["mismatch_phash"] == pytest.approx(0.2 * 0.8)
    far = fusion_features(_evidence(cosine=0.5, phash=22, inliers=70, ssim=0.7, mismatch=0.3))
    assert far["mismatch"] == pytest.approx(0.3) and far["mismatch_phash"] == 0.0


def test_fusion_model_rejects_unknown_features_weight_counts_and_thresholds() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        FusionModel(features=("cosine", "colour"), weights=(1.0, 1.0), bias=0.0, threshold=0.5)
    with pytest.raises(ValueError, match="weight count"):
        FusionModel(features=("cosine", "ssim"), weights=(1.0,), bias=0.0, threshold=0.5)
    for threshold in (0.0, 1.0):
        with pytest.raises(ValueError, match="threshold"):
            FusionModel(features=("cosine",), weights=(1.0,), bias=0.0, threshold=threshold)


# --- the model as calibrate writes it ---------------------------------------------------------------


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("written_fusion_weights", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grid() -> list[Evidence]:
    """Evidence across what the fusion weighs: unaligned or aligned, weak to strong on each input."""
    grid = []
    for cosine in (0.1, 0.5, 0.8, 0.9, 0.97):
        for phash in (2, 12, 30):
            grid.append(_evidence(cosine=cosine, phash=phash))
            for ssim in (0.4, 0.75, 0.9):
                for mismatch in (0.0, 0.1, 0.4):
                    grid.append(
                        _evidence(
                            cosine=cosine,
                            phash=phash,
                            inliers=60,
                            matches=90,
                            ssim=ssim,
                            mismatch=mismatch,
                            overlap=0.9,
                        )
                    )
    return grid


@pytest.mark.parametrize("which", ["committed", "refitted"])
def test_a_written_model_loads_back_with_the_same_decisions(which: str, tmp_path: Path) -> None:
    if which == "committed":
        features, weights = tuple(fusion_weights.FEATURES), np.array(fusion_weights.WEIGHTS)
        bias, threshold = fusion_weights.BIAS, fusion_weights.THRESHOLD
        cut_off, info = fusion_weights.CANDIDATE_MIN_COSINE, fusion_weights.CALIBRATION
    else:  # numbers as a new fit would give them: numpy floats with every digit
        features = FITTED_FEATURES
        weights = np.array(fusion_weights.WEIGHTS) * np.random.default_rng(7).uniform(0.8, 1.2, len(features))
        bias, threshold, cut_off = float(np.float64(-1) / 3), 0.9 + 1 / 70, 0.35
        info = {"split": "train", "ignored_kinds": ["frames"], "note": None, "quick": False}
    path = tmp_path / "fusion_weights.py"
    write_model(features, weights, bias, threshold, cut_off, info, path=path)

    written = _load(path)
    loaded = model_from(written)
    fitted = FusionModel(
        tuple(features),
        tuple(float(w) for w in weights),
        float(bias),
        float(threshold),
        embedder="sscd",
        embedding_model="sscd-disc-mixup-int8",
        candidate_min_cosine=cut_off,
    )
    assert loaded == fitted
    assert (cut_off, info) == (written.CANDIDATE_MIN_COSINE, written.CALIBRATION)
    if which == "committed":
        assert loaded == CALIBRATED_FUSION == DEFAULT_VERIFIER.fusion

    in_memory = VerifierConfig(version="in-memory", fusion=fitted)
    read_back = VerifierConfig(version="read-back", fusion=loaded)
    expected = [decide(e, in_memory) for e in _grid()]
    got = [decide(e, read_back) for e in _grid()]
    assert [(v.is_duplicate, v.confidence, v.score) for v in got] == [
        (v.is_duplicate, v.confidence, v.score) for v in expected
    ]
    # The grid tells models apart only if it holds both decisions.
    assert {v.is_duplicate for v in expected} == {True, False}


# --- the configuration --------------------------------------------------------------------------------


def test_changing_a_setting_requires_a_new_version() -> None:
    with pytest.raises(ValueError, match="new version"):
        VerifierConfig(ratio_test=0.8)
    lenient = FusionModel(features=("cosine",), weights=(10.0,), bias=-2.0, threshold=0.5)
    with pytest.raises(ValueError, match="new version"):
        VerifierConfig(fusion=lenient)
    custom = VerifierConfig(version="fused-v2-lenient", fusion=lenient)
    assert custom.fusion is lenient
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom.ratio_test = 0.7  # type: ignore[misc]
