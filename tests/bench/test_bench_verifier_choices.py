"""Which verifiers `python -m bench.quality calibrate|export-evidence|lodo --verifier` accept (bench/quality
calibrate.MODELS, not a hand list), and what export-evidence measures and writes by default: the evidence
`imgdup retrain` needs to refit the verifier the worker runs (fused-v9 for sscd since issue 11). Nothing
is calibrated or measured: the commands' work is replaced."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bench.quality.__main__ as quality_main
from bench.quality import calibrate, export, lodo
from bench.quality.calibrate import FEATURES, FUSION_WEIGHTS_PATH, MODELS, model_target
from imgdup_core.verifier_config import DEFAULT_VERIFIER, DEFAULT_VERIFIER_FOR_EMBEDDER, FUSED_V9, VERIFIERS


def test_fused_v9_can_be_calibrated_into_its_own_weights_file() -> None:
    assert set(MODELS) <= set(VERIFIERS)
    features, path = MODELS["fused-v9"]
    # It runs fused-v3's model today: a calibration of its own fits the same inputs, into its own file.
    assert tuple(features) == FEATURES == VERIFIERS["fused-v9"].fusion.features
    assert path == FUSION_WEIGHTS_PATH.with_name("fusion_weights_v9.py") and not path.exists()
    assert model_target("fused-v9", "sscd") == ("fused-v9", FEATURES, path)
    assert calibrate.threshold_rule("fused-v9") == "precision"
    # lodo's "shipped" column: the cut-off of the model the version runs, without a file of its own.
    assert lodo.measuring("fused-v9") == (FUSED_V9, FEATURES)
    assert calibrate.shipped_cut_off(FUSED_V9) == DEFAULT_VERIFIER.fusion.candidate_min_cosine


def test_fused_v26_the_default_can_be_calibrated_into_its_own_weights_file() -> None:
    # `imgdup retrain` refits the running version's own lineage: sscd's default must be in MODELS.
    assert DEFAULT_VERIFIER_FOR_EMBEDDER["sscd"] == "fused-v26"
    features, path = MODELS["fused-v26"]
    assert tuple(features) == FEATURES == VERIFIERS["fused-v26"].fusion.features
    assert path == FUSION_WEIGHTS_PATH.with_name("fusion_weights_v26.py") and not path.exists()
    assert model_target("fused-v26", "sscd") == ("fused-v26", FEATURES, path)
    assert calibrate.default_measuring("sscd") == "fused-v26"


def _captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    for name in ("calibrate", "export_evidence"):
        monkeypatch.setattr(quality_main, name, lambda args: seen.append(args) or 0)
    monkeypatch.setattr(lodo, "main", lambda args: seen.append(args) or 0)
    return seen


@pytest.mark.parametrize("command", ["calibrate", "export-evidence", "lodo"])
def test_every_calibrated_version_is_a_choice_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    seen = _captured(monkeypatch)
    for version in MODELS:
        assert quality_main.main([command, "--verifier", version]) == 0
        assert seen.pop().verifier == version
    with pytest.raises(SystemExit):
        quality_main.main([command, "--verifier", "fused-v99"])


def test_calibrate_and_lodo_keep_fused_v3s_settings_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # fusion_weights.py: the model fused-v3 and fused-v9 both run, fitted on fused-v3's measurements.
    seen = _captured(monkeypatch)
    for command in ("calibrate", "lodo"):
        quality_main.main([command])
        assert seen.pop().verifier == DEFAULT_VERIFIER.version


def test_export_evidence_measures_what_each_embedder_runs_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exported: list[dict[str, Any]] = []

    def fake_export(bench: Any, embedder: Any, **kwargs: Any) -> dict[str, Any]:
        exported.append({"embedder": embedder, **kwargs})
        return {"rows": {}}

    monkeypatch.setattr(quality_main, "build_set", lambda **kwargs: SimpleNamespace(root=tmp_path / "set"))
    monkeypatch.setattr(quality_main, "_embedder", lambda kind="sscd": kind)
    monkeypatch.setattr(export, "export_evidence", fake_export)

    quality_main.main(["export-evidence"])
    sscd = exported.pop()
    assert sscd["config"] == VERIFIERS["fused-v26"] and sscd["embedder"] == "sscd"
    # imgdup retrain's default file for the running model (imgdup.ops.retrain.default_benchmark_evidence).
    assert sscd["path"] == tmp_path / f"training-evidence-{DEFAULT_VERIFIER_FOR_EMBEDDER['sscd']}.jsonl"

    # The distilled embedder's default model measures as fused-v3, on its own cosines.
    quality_main.main(["export-evidence", "--embedder", "sscd_distilled"])
    distilled = exported.pop()
    assert distilled["config"] == DEFAULT_VERIFIER and distilled["embedder"] == "sscd_distilled"
    assert distilled["path"].name == "training-evidence-fused-v3-distilled.jsonl"
