"""The benchmark's evidence export (bench/quality/export.py): its candidates are made as calibration
makes them for the exported verifier, the pHash channel's included when that verifier uses it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.quality import export
from bench.quality.calibrate import Candidate
from imgdup_core.verifier_config import DEFAULT_VERIFIER, FUSED_V5, FUSED_V6, VerifierConfig


@pytest.mark.parametrize("config", [DEFAULT_VERIFIER, FUSED_V5, FUSED_V6], ids=lambda c: c.version)
def test_export_proposes_the_phash_channel_as_the_verifier_does(
    monkeypatch: Any, tmp_path: Path, config: VerifierConfig
) -> None:
    seen: list[bool] = []

    def candidates(*args: Any, **kwargs: Any) -> list[Candidate]:
        seen.append(kwargs.get("phash_channel", False))
        return []

    bench = SimpleNamespace(root=tmp_path / "set-x", seed=1, split=lambda split: [])
    embedder = SimpleNamespace(name="sscd", version="sscd-disc-mixup-int8@1")
    monkeypatch.setattr(export, "analyse", lambda *args: None)
    monkeypatch.setattr(export, "training_candidates", candidates)
    monkeypatch.setattr(export, "measure_candidates", lambda *args, **kwargs: [])
    export.export_evidence(
        bench,  # type: ignore[arg-type]
        embedder,  # type: ignore[arg-type]
        config=config,
        top_k=10,
        min_score=0.2,
        negatives=10,
        path=tmp_path / "out.jsonl",
    )
    # Both splits, each with the channel exactly when the verifier is calibrated on it (fused-v5 on).
    assert seen == [config.phash_candidates] * 2
