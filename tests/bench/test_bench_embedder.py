"""The quality benchmark under another embedder (issue 14): bench.quality's --embedder for calibrate
and run -> which model file calibration writes, its evidence cache, the stack's environment, the
ANN cut-off and the SSCD baseline's column."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from bench.quality.__main__ import default_min_score, main, stack_verifier
from bench.quality.analysis import Analysed
from bench.quality.baselines import all_baselines, sscd_baseline
from bench.quality.calibrate import (
    FEATURES,
    FEATURES_V5,
    FUSION_WEIGHTS_PATH,
    evidence_cache_name,
    model_target,
    write_model,
)
from bench.quality.stack_run import stack_env
from imgdup_core.fusion import model_from
from imgdup_core.verifier_config import DEFAULT_VERIFIER, FUSED_V3_DISTILLED, FUSED_V5, FUSED_V26


def test_calibrating_on_the_distilled_embedder_writes_its_own_model() -> None:
    assert model_target("fused-v3", "sscd") == ("fused-v3", FEATURES, FUSION_WEIGHTS_PATH)
    assert model_target("fused-v5", "sscd")[0] == "fused-v5"
    version, features, path = model_target("fused-v3", "sscd_distilled")
    assert version == "fused-v3-distilled" == FUSED_V3_DISTILLED.version
    assert features == FEATURES  # fused-v3's inputs, refitted
    assert path == FUSION_WEIGHTS_PATH.with_name("fusion_weights_v3_distilled.py")
    with pytest.raises(ValueError, match="fused-v5 on sscd_distilled"):
        model_target("fused-v5", "sscd_distilled")
    assert FEATURES_V5 != FEATURES


def test_evidence_is_cached_per_embedder_and_the_full_models_cache_keeps_its_name() -> None:
    plain = evidence_cache_name(DEFAULT_VERIFIER)
    assert plain == evidence_cache_name(DEFAULT_VERIFIER, "sscd")
    assert plain.startswith("evidence-") and plain.endswith(".jsonl") and plain.count("-") == 1
    distilled = evidence_cache_name(DEFAULT_VERIFIER, "sscd_distilled")
    assert distilled != plain and distilled.endswith("-sscd_distilled.jsonl")
    assert evidence_cache_name(FUSED_V5, "sscd_distilled") != distilled


def test_the_written_model_is_bound_to_the_embedder_it_was_fitted_with(tmp_path: Path) -> None:
    path = tmp_path / "weights.py"
    weights = np.arange(len(FEATURES), dtype=np.float64)
    info = {"split": "train", "embedder": "sscd_distilled"}
    write_model(
        FEATURES,
        weights,
        -1.0,
        0.9,
        0.35,
        info,
        path=path,
        embedder="sscd_distilled",
        embedding_model="sscd-distilled-mobilenetv4s-fp16",
    )
    spec = importlib.util.spec_from_file_location("written_weights", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = model_from(module)
    assert model.embedder == "sscd_distilled"
    assert model.embedding_model == "sscd-distilled-mobilenetv4s-fp16"
    assert model.candidate_min_cosine == 0.35 and model.weights == tuple(weights)


def test_the_stack_under_test_runs_the_embedder_without_the_uncalibrated_override() -> None:
    env = stack_env(8123, top_k=10, min_score=0.4, embedder="sscd_distilled")
    assert env["IMGDUP_EMBEDDER"] == "sscd_distilled"
    assert env["IMGDUP_ANN_MIN_SCORE"] == "0.4" and env["IMGDUP_API_PORT"] == "8123"
    assert "IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER" not in env
    assert stack_env(1, top_k=10, min_score=0.3, embedder="sscd")["IMGDUP_EMBEDDER"] == "sscd"


def test_a_run_defaults_to_the_cut_off_fitted_with_the_embedders_model() -> None:
    assert default_min_score("sscd") == DEFAULT_VERIFIER.fusion.candidate_min_cosine == 0.3
    assert default_min_score("sscd_distilled") == FUSED_V3_DISTILLED.fusion.candidate_min_cosine


def _analysed(vectors: np.ndarray) -> Analysed:
    n = len(vectors)
    return Analysed(
        [f"i{k}" for k in range(n)],
        vectors,
        np.zeros(n, np.uint64),
        np.zeros(n, np.uint64),
        np.zeros((n, 8, 32), np.uint8),
        [""] * n,
        np.zeros_like(vectors),
        np.zeros(n, bool),
    )


def test_the_sscd_baseline_says_which_model_it_scores() -> None:
    analysed = _analysed(np.eye(3, dtype=np.float32))
    full = sscd_baseline(analysed)
    assert full.name == "sscd" and full.label.startswith("SSCD cosine")
    distilled = sscd_baseline(analysed, embedder="sscd_distilled")
    assert distilled.name == "sscd_distilled" and "distilled SSCD" in distilled.label
    assert np.array_equal(distilled.scores, full.scores)
    assert [b.name for b in all_baselines(analysed, "sscd_distilled")][-1] == "sscd_distilled"


def test_the_command_line_knows_only_the_embedders_it_can_measure() -> None:
    with pytest.raises(SystemExit):
        main(["calibrate", "--embedder", "clip", "--dry-run"])


def test_the_run_reports_the_verifier_the_stack_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGDUP_VERIFIER_VERSION", raising=False)
    assert stack_verifier("sscd") == FUSED_V26.version  # the full SSCD's default since issue 11
    assert stack_verifier("sscd_distilled") == FUSED_V3_DISTILLED.version
    # The stack inherits the environment: a run with a verifier chosen there is labelled with it.
    monkeypatch.setenv("IMGDUP_VERIFIER_VERSION", FUSED_V5.version)
    assert stack_verifier("sscd") == FUSED_V5.version
