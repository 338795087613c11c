"""Consumes imgdup.verifiers: settings -> the verifier model the worker runs, refused with one line when
it was not calibrated for the configured embedder (IMGDUP_EMBEDDER) or is unknown."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from imgdup import cli
from imgdup.settings import Settings
from imgdup.verifiers import VerifierUnavailable, resolve_verifier
from imgdup_core import (
    fusion_weights,
    fusion_weights_v3_distilled,
    fusion_weights_v6,
    fusion_weights_v7,
    fusion_weights_v10,
)
from imgdup_core.sift import SiftFeatures, flat_to_bytes, sift_from_bytes, sift_to_bytes
from imgdup_core.verifier_config import (
    DEFAULT_VERIFIER,
    DEFAULT_VERIFIER_FOR_EMBEDDER,
    FUSED_V3_DISTILLED,
    FUSED_V4,
    FUSED_V5,
    FUSED_V6,
    FUSED_V7,
    FUSED_V8,
    FUSED_V9,
    FUSED_V10,
    FUSED_V12,
    FUSED_V14,
    FUSED_V15,
    FUSED_V16,
    FUSED_V17,
    FUSED_V18,
    FUSED_V19,
    FUSED_V20,
    FUSED_V21,
    FUSED_V22,
    FUSED_V23,
    FUSED_V24,
    FUSED_V25,
    FUSED_V26,
    VERIFIERS,
    CopyRule,
    OverlayRule,
    ParallaxRule,
    UnalignedRule,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("IMGDUP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMGDUP_DATA_DIR", str(tmp_path))


def test_the_committed_models_know_the_embedder_they_were_calibrated_with() -> None:
    for config in (DEFAULT_VERIFIER, FUSED_V4, FUSED_V5, FUSED_V6):
        assert config.fusion.embedder == "sscd"
        assert config.fusion.embedding_model == "sscd-disc-mixup-int8"
    assert DEFAULT_VERIFIER.fusion.candidate_min_cosine == fusion_weights.CANDIDATE_MIN_COSINE


def test_the_default_embedder_runs_the_default_model_and_its_cut_off() -> None:
    chosen = resolve_verifier(Settings())
    # fused-v26 (issue 11: fused-v12's frame rules, the overlay, aligned-copy and unaligned rules, the page
    # slots beside and holding the boxes, the flat pictures' second alignment, the box's band, the parallax
    # rule, the stricter slot holding, the wider aligned-copy rule), on fused-v3's model and ANN cut-off.
    assert chosen.config == FUSED_V26 and chosen.config.version == "fused-v26"
    assert chosen.ann_min_score == fusion_weights.CANDIDATE_MIN_COSINE
    # The settings field's default names the same model as the mapping, and the pHash channel
    # follows it (off: fused-v3's model, which fused-v26 runs, was calibrated on ANN candidates only).
    assert Settings().verifier_version == DEFAULT_VERIFIER_FOR_EMBEDDER["sscd"]
    assert Settings().phash_candidate_distance == -1 and not FUSED_V26.phash_candidates
    v4 = resolve_verifier(Settings(verifier_version="fused-v4"))
    assert v4.config == FUSED_V4
    # An operator's explicit cut-off wins over the model's.
    assert resolve_verifier(Settings(ann_min_score=0.5)).ann_min_score == 0.5


def test_fused_v6_is_chosen_by_version_with_its_own_model_and_the_phash_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGDUP_VERIFIER_VERSION", "fused-v6")
    chosen = resolve_verifier(Settings())
    assert chosen.config == FUSED_V6 and chosen.config.version == "fused-v6"
    assert chosen.ann_min_score == fusion_weights_v6.CANDIDATE_MIN_COSINE
    assert fusion_weights_v6.CALIBRATION["verifier"] == "fused-v6"
    # The pHash candidate channel follows the chosen verifier (streams.runtime.phash_max_distance).
    assert chosen.config.phash_candidates
    # fused-v5's rules, plus the near-identical rule for a whole comparison of two framing pictures.
    assert FUSED_V5.framed_whole_max_mismatch is None and FUSED_V6.framed_whole_max_mismatch is not None


def test_fused_v7_is_fused_v6_measuring_with_its_own_cost_rule_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_VERIFIER_VERSION", "fused-v7")
    chosen = resolve_verifier(Settings())
    assert chosen.config == FUSED_V7 and chosen.ann_min_score == fusion_weights_v7.CANDIDATE_MIN_COSINE
    assert fusion_weights_v7.CALIBRATION["verifier"] == "fused-v7"
    assert fusion_weights_v7.CALIBRATION["threshold_rule"] == "cost"
    assert dataclasses.replace(FUSED_V7, version="x", fusion=FUSED_V6.fusion) == dataclasses.replace(
        FUSED_V6, version="x"
    )
    assert FUSED_V7.fusion != FUSED_V6.fusion
    monkeypatch.delenv("IMGDUP_VERIFIER_VERSION")
    assert resolve_verifier(Settings()).config.version != "fused-v7"  # not the default


def test_fused_v9_is_fused_v3_with_the_frame_rules_and_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_VERIFIER_VERSION", "fused-v9")
    chosen = resolve_verifier(Settings())
    assert chosen.config == FUSED_V9 and chosen.config.fusion == DEFAULT_VERIFIER.fusion
    assert chosen.ann_min_score == DEFAULT_VERIFIER.fusion.candidate_min_cosine
    # fused-v3's extraction and candidates (no low-texture pass, no pHash channel); the frame rules on.
    assert not chosen.config.phash_candidates and chosen.config.sift_low_texture_keypoints == 0
    assert chosen.config.shared_page_check and chosen.config.box_page_check
    assert chosen.config.framed_whole_max_mismatch == FUSED_V6.framed_whole_max_mismatch


def test_fused_v12_is_fused_v9_with_the_textured_fill_and_the_deciding_slot() -> None:
    assert (
        VERIFIERS["fused-v12"] is FUSED_V12 and FUSED_V12.fusion == FUSED_V9.fusion == DEFAULT_VERIFIER.fusion
    )
    assert FUSED_V12.slot_textured_fill and FUSED_V12.shared_page_decides
    assert not (FUSED_V9.slot_textured_fill or FUSED_V9.shared_page_decides)
    # Nothing else differs: fused-v9's stored features and candidates stay valid under fused-v12.
    assert dataclasses.replace(
        FUSED_V12, version="fused-v9", slot_textured_fill=False, shared_page_decides=False
    ) == (FUSED_V9)


def test_fused_v14_is_fused_v12_with_the_overlay_rule() -> None:
    assert VERIFIERS["fused-v14"] is FUSED_V14 and FUSED_V14.fusion == FUSED_V12.fusion
    assert FUSED_V14.overlay_rule == OverlayRule() and FUSED_V12.overlay_rule is None
    # Nothing else differs: fused-v12's stored features, candidates and model stay valid under fused-v14.
    assert dataclasses.replace(FUSED_V14, version="fused-v12", overlay_rule=None) == FUSED_V12


def test_fused_v15_is_fused_v14_with_the_copy_rule() -> None:
    assert VERIFIERS["fused-v15"] is FUSED_V15 and FUSED_V15.fusion == FUSED_V14.fusion
    assert FUSED_V15.copy_rule == CopyRule() and FUSED_V14.copy_rule is None
    # Nothing else differs: fused-v14's stored features, candidates and model stay valid under fused-v15.
    assert dataclasses.replace(FUSED_V15, version="fused-v14", copy_rule=None) == FUSED_V14


def test_fused_v16_is_fused_v15_with_the_unaligned_rule() -> None:
    assert VERIFIERS["fused-v16"] is FUSED_V16 and FUSED_V16.fusion == FUSED_V15.fusion
    assert FUSED_V16.unaligned_rule == UnalignedRule() and FUSED_V15.unaligned_rule is None
    # Nothing else differs: fused-v15's stored features, candidates and model stay valid under fused-v16.
    assert dataclasses.replace(FUSED_V16, version="fused-v15", unaligned_rule=None) == FUSED_V15


def test_fused_v17_is_fused_v16_with_a_second_alignment_for_flat_pictures() -> None:
    assert VERIFIERS["fused-v17"] is FUSED_V17 and FUSED_V17.fusion == FUSED_V16.fusion
    assert FUSED_V17.flat_retry_keypoints == 50 and FUSED_V16.flat_retry_keypoints == 0
    # Nothing else differs, and the stored features are fused-v16's (format 1): either version reads the
    # other's, so switching needs no migration and no extraction again.
    assert dataclasses.replace(FUSED_V17, version="fused-v16", flat_retry_keypoints=0) == FUSED_V16
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    blob = sift_to_bytes(features, FUSED_V17)
    assert blob == sift_to_bytes(features, FUSED_V16) and sift_from_bytes(blob, FUSED_V16) is not None


def test_fused_v19_is_fused_v18_aligning_again_above_a_higher_cosine() -> None:
    assert VERIFIERS["fused-v19"] is FUSED_V19 and FUSED_V19.flat_retry_min_cosine == 0.6
    assert dataclasses.replace(FUSED_V19, version="fused-v18", flat_retry_min_cosine=0.5) == FUSED_V18


def test_fused_v20_is_fused_v16_with_the_slot_beside_the_boxes() -> None:
    assert VERIFIERS["fused-v20"] is FUSED_V20 and FUSED_V20.slot_beside_boxes
    assert not FUSED_V16.slot_beside_boxes
    assert (FUSED_V20.small_slot_min_area, FUSED_V16.small_slot_min_area) == (0.05, None)
    assert (
        dataclasses.replace(FUSED_V20, version="fused-v16", slot_beside_boxes=False, small_slot_min_area=None)
        == FUSED_V16
    )
    # The same stored features: switching needs no migration and no extraction again.
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    assert sift_to_bytes(features, FUSED_V20) == sift_to_bytes(features, FUSED_V16)


def test_fused_v21_is_fused_v20_with_its_slot_around_all_the_disagreement() -> None:
    assert (
        VERIFIERS["fused-v21"] is FUSED_V21
        and FUSED_V21.slot_beside_whole
        and not FUSED_V20.slot_beside_whole
    )
    assert dataclasses.replace(FUSED_V21, version="fused-v20", slot_beside_whole=False) == FUSED_V20


def test_fused_v22_is_fused_v21_with_fused_v18s_second_alignment() -> None:
    assert VERIFIERS["fused-v22"] is FUSED_V22
    retry = ("flat_retry_keypoints", "flat_retry_min_cosine", "flat_retry_scale")
    assert dataclasses.replace(
        FUSED_V22, version="fused-v21", **dict.fromkeys(retry, 0)
    ) == dataclasses.replace(FUSED_V21, **dict.fromkeys(retry, 0))
    assert [getattr(FUSED_V22, name) for name in retry] == [getattr(FUSED_V18, name) for name in retry]
    assert FUSED_V21.flat_retry_keypoints == 0
    # The same first features: stored ones of fused-v21 read as fused-v22's (no re-extraction on upgrade).
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    assert sift_to_bytes(features, FUSED_V22) == sift_to_bytes(features, FUSED_V21)


def test_fused_v24_is_fused_v23_with_the_parallax_rule() -> None:
    assert VERIFIERS["fused-v24"] is FUSED_V24
    assert FUSED_V24.parallax_rule == ParallaxRule() and FUSED_V23.parallax_rule is None
    assert dataclasses.replace(FUSED_V24, version="fused-v23", parallax_rule=None) == FUSED_V23
    # The same stored features and model: an upgrade re-extracts nothing, and the cut-off stays.
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    assert sift_to_bytes(features, FUSED_V24) == sift_to_bytes(features, FUSED_V23)
    assert FUSED_V24.fusion == FUSED_V23.fusion


def test_fused_v25_is_fused_v24_with_a_stricter_slot_holding_the_boxes() -> None:
    assert VERIFIERS["fused-v25"] is FUSED_V25
    assert FUSED_V25.slot_holds_min_share == 0.75 and FUSED_V24.slot_holds_min_share == 0.5
    assert dataclasses.replace(FUSED_V25, version="fused-v24", slot_holds_min_share=0.5) == FUSED_V24
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    assert sift_to_bytes(features, FUSED_V25) == sift_to_bytes(features, FUSED_V24)
    assert FUSED_V25.fusion == FUSED_V24.fusion


def test_fused_v26_is_fused_v25_with_a_wider_aligned_copy_rule() -> None:
    assert VERIFIERS["fused-v26"] is FUSED_V26
    assert FUSED_V26.copy_rule == CopyRule(min_inliers=30, min_overlap=0.9)
    assert FUSED_V25.copy_rule == CopyRule() and CopyRule().min_inliers == 50
    assert dataclasses.replace(FUSED_V26, version="fused-v25", copy_rule=CopyRule()) == FUSED_V25
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    assert sift_to_bytes(features, FUSED_V26) == sift_to_bytes(features, FUSED_V25)
    assert FUSED_V26.fusion == FUSED_V25.fusion


def test_fused_v23_is_fused_v22_with_the_boxs_band_as_a_slot() -> None:
    assert VERIFIERS["fused-v23"] is FUSED_V23
    assert FUSED_V23.box_band_check and not FUSED_V22.box_band_check
    assert dataclasses.replace(FUSED_V23, version="fused-v22", box_band_check=False) == FUSED_V22
    # The same stored features (first and flat): an upgrade re-extracts nothing.
    features = SiftFeatures(np.zeros((1, 2), np.float32), np.ones((1, 128), np.float32), 384, 288)
    assert sift_to_bytes(features, FUSED_V23) == sift_to_bytes(features, FUSED_V22)
    assert flat_to_bytes(features, FUSED_V23) == flat_to_bytes(features, FUSED_V22)


def test_fused_v18_is_fused_v17_aligning_again_above_a_cosine_on_a_half_size_copy() -> None:
    assert VERIFIERS["fused-v18"] is FUSED_V18
    assert (FUSED_V18.flat_retry_min_cosine, FUSED_V18.flat_retry_scale) == (0.5, 0.5)
    assert dataclasses.replace(
        FUSED_V18, version="fused-v17", flat_retry_min_cosine=0.0, flat_retry_scale=1.0
    ) == (FUSED_V17)


def test_fused_v10_is_fused_v8_measuring_with_a_model_fitted_on_both_pools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGDUP_VERIFIER_VERSION", "fused-v10")
    chosen = resolve_verifier(Settings())
    assert chosen.config == FUSED_V10 and VERIFIERS["fused-v10"] is FUSED_V10
    assert chosen.ann_min_score == fusion_weights_v10.CANDIDATE_MIN_COSINE
    # fused-v8's measurement settings, its own model (fused-v6's inputs).
    assert dataclasses.replace(FUSED_V10, version="x", fusion=FUSED_V8.fusion) == dataclasses.replace(
        FUSED_V8, version="x"
    )
    assert FUSED_V10.fusion.features == FUSED_V6.fusion.features and FUSED_V10.fusion != FUSED_V6.fusion
    assert FUSED_V10.fusion.embedder == "sscd" and chosen.config.phash_candidates
    # Fitted on the train splits of both pools, by the precision rule.
    calibration = fusion_weights_v10.CALIBRATION
    assert calibration["verifier"] == "fused-v10" and calibration["split"] == "train"
    assert calibration["pool"] == "broad" and calibration["extra_training"].startswith("default pool train")
    assert calibration["pool_pairs"] > 0 and calibration["extra_training_pairs"] > 0
    assert calibration["threshold_rule"] == "precision" and calibration["train_precision"] >= 0.995
    monkeypatch.delenv("IMGDUP_VERIFIER_VERSION")
    assert resolve_verifier(Settings()).config.version != "fused-v10"  # not the default


def test_an_embedder_without_a_model_of_its_own_is_refused() -> None:
    with pytest.raises(VerifierUnavailable) as refused:
        resolve_verifier(Settings(embedder="clip"))
    message = str(refused.value)
    assert "\n" not in message
    assert "IMGDUP_EMBEDDER=clip" in message and "fused-v26" in message and "sscd" in message


def test_the_distilled_embedder_runs_its_own_model_and_cut_off_without_the_override() -> None:
    chosen = resolve_verifier(Settings(embedder="sscd_distilled"))
    assert chosen.config == FUSED_V3_DISTILLED
    assert chosen.warning is None
    fusion = FUSED_V3_DISTILLED.fusion
    assert fusion.embedder == "sscd_distilled"
    assert fusion.embedding_model == "sscd-distilled-mobilenetv4s-fp16"
    assert (
        chosen.ann_min_score
        == fusion.candidate_min_cosine
        == fusion_weights_v3_distilled.CANDIDATE_MIN_COSINE
    )
    # fused-v3's features and measurement settings; only the fitted numbers differ.
    assert fusion.features == DEFAULT_VERIFIER.fusion.features
    assert dataclasses.replace(FUSED_V3_DISTILLED, version="fused-v3", fusion=DEFAULT_VERIFIER.fusion) == (
        DEFAULT_VERIFIER
    )
    assert fusion_weights_v3_distilled.CALIBRATION["split"] == "train"


def test_each_embedder_has_its_default_verifier_and_an_explicit_version_still_wins() -> None:
    assert DEFAULT_VERIFIER_FOR_EMBEDDER == {"sscd": "fused-v26", "sscd_distilled": "fused-v3-distilled"}
    for embedder, version in DEFAULT_VERIFIER_FOR_EMBEDDER.items():
        assert VERIFIERS[version].fusion.embedder == embedder
    # IMGDUP_VERIFIER_VERSION names the model, whatever the embedder's default.
    explicit = resolve_verifier(Settings(embedder="sscd_distilled", verifier_version="fused-v3-distilled"))
    assert explicit.config == FUSED_V3_DISTILLED
    with pytest.raises(VerifierUnavailable, match="IMGDUP_EMBEDDER=sscd_distilled"):
        resolve_verifier(Settings(embedder="sscd_distilled", verifier_version="fused-v3"))
    with pytest.raises(VerifierUnavailable, match="IMGDUP_EMBEDDER=sscd "):
        resolve_verifier(Settings(verifier_version="fused-v3-distilled"))


def test_the_verifier_version_from_the_environment_wins_over_the_embedders_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGDUP_EMBEDDER", "sscd_distilled")
    assert resolve_verifier(Settings()).config.version == "fused-v3-distilled"
    monkeypatch.setenv("IMGDUP_VERIFIER_VERSION", "fused-v3")
    monkeypatch.setenv("IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER", "true")
    assert resolve_verifier(Settings()).config == DEFAULT_VERIFIER


def test_an_uncalibrated_embedder_runs_only_when_allowed_and_says_so() -> None:
    for settings, config in (
        # clip has no default of its own: the full SSCD's runs, uncalibrated.
        (Settings(embedder="clip", allow_uncalibrated_embedder=True), FUSED_V26),
        (
            Settings(
                embedder="sscd_distilled", verifier_version="fused-v3", allow_uncalibrated_embedder=True
            ),
            DEFAULT_VERIFIER,
        ),
    ):
        chosen = resolve_verifier(settings)
        assert chosen.config == config
        assert chosen.warning is not None and f"IMGDUP_EMBEDDER={settings.embedder}" in chosen.warning
    assert resolve_verifier(Settings()).warning is None
    # A model of its own needs no override and gets no warning with it.
    allowed = resolve_verifier(Settings(embedder="sscd_distilled", allow_uncalibrated_embedder=True))
    assert allowed.config == FUSED_V3_DISTILLED and allowed.warning is None


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(VerifierUnavailable, match="IMGDUP_VERIFIER_VERSION=fused-v99"):
        resolve_verifier(Settings(verifier_version="fused-v99"))


def _model_file(directory: Path, version: str, embedder: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model = {
        "version": version,
        "base": "fused-v3",
        "embedder": embedder,
        "embedding_model": "sscd-disc-mixup-int8",
        "features": ["cosine_strong", "ssim"],
        "weights": [4.0, 2.0],
        "bias": -3.0,
        "threshold": 0.9,
        "candidate_min_cosine": 0.35,
        "training": {},
    }
    (directory / f"{version}.json").write_text(json.dumps(model))


def test_a_retrained_model_is_picked_by_version_from_the_models_folder(tmp_path: Path) -> None:
    _model_file(tmp_path / "models", "fused-v3-r1", "sscd")
    chosen = resolve_verifier(Settings(verifier_version="fused-v3-r1"))
    assert chosen.config.version == "fused-v3-r1"
    assert chosen.config.fusion.weights == (4.0, 2.0)
    # Measured exactly as its base: only the fusion was refitted.
    assert chosen.config.sift_features == DEFAULT_VERIFIER.sift_features
    assert chosen.ann_min_score == 0.35


def test_a_retrained_model_of_another_embedder_is_refused(tmp_path: Path) -> None:
    _model_file(tmp_path / "models", "fused-v3-clip", "clip")
    with pytest.raises(VerifierUnavailable, match="IMGDUP_EMBEDDER=sscd"):
        resolve_verifier(Settings(verifier_version="fused-v3-clip"))


def test_the_worker_refuses_to_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMGDUP_EMBEDDER", "clip")
    # Refused before any broker is asked: nothing listens here.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "IMGDUP_EMBEDDER=clip" in err[0]
