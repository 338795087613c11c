"""Evidence -> the fused probability of a duplicate: the logistic model, its inputs and the
calibrated model committed in fusion_weights.py."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from imgdup_core import (
    fusion_weights,
    fusion_weights_v3_distilled,
    fusion_weights_v4,
    fusion_weights_v5,
    fusion_weights_v6,
    fusion_weights_v7,
    fusion_weights_v10,
)
from imgdup_core.evidence import Evidence

__all__ = [
    "CALIBRATED_FUSION",
    "CALIBRATED_FUSION_V3_DISTILLED",
    "CALIBRATED_FUSION_V4",
    "CALIBRATED_FUSION_V5",
    "CALIBRATED_FUSION_V6",
    "CALIBRATED_FUSION_V7",
    "CALIBRATED_FUSION_V10",
    "FUSION_FEATURES",
    "FusionModel",
    "duplicate_probability",
    "fusion_features",
    "model_from",
    "model_from_dict",
    "model_to_dict",
]

# What the fusion may weigh, all derived from Evidence (so stored evidence can be re-scored).
# The names key the committed weights: renaming one invalidates fusion_weights.py.
FUSION_FEATURES: tuple[str, ...] = (
    "cosine",
    "cosine_strong",
    "phash_close",
    "log_inliers",
    "inlier_ratio",
    "ssim",
    "ssim_strong",
    "no_alignment",
    "overlap",
    "mismatch",
    # Added in fused-v4 (issue 11): the blind spots of an unaligned flat photo and of an
    # aligned copy under a heavy overlay, for calibration to weigh.
    "cosine_very_strong",
    "unaligned_global",
    "inliers_many",
    "mismatch_phash",
)


@dataclass(frozen=True)
class FusionModel:
    """Logistic fusion of the evidence: p(duplicate) = sigmoid(bias + sum(weight * feature)),
    a duplicate when p >= threshold. Fitted on the benchmark's training split only
    (`python -m bench.quality calibrate`); see imgdup_core/fusion_weights.py."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    # What the model was fitted with: the embedder kind (imgdup.settings IMGDUP_EMBEDDER) and its
    # model tag; the cosine and the ANN cut-off mean nothing under another embedder. None: bound to
    # no embedder (hand-made models in tests), which no worker runs.
    embedder: str | None = None
    embedding_model: str | None = None
    # The ANN cut-off fitted with it (imgdup.settings ann_min_score, unless set explicitly).
    candidate_min_cosine: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(FUSION_FEATURES)
        if unknown or len(self.features) != len(self.weights):
            raise ValueError(f"bad fusion model: unknown features {sorted(unknown)} or weight count")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"fusion threshold must be in (0, 1), got {self.threshold}")

    def probability(self, evidence: Evidence) -> float:
        values = fusion_features(evidence)
        logit = self.bias + sum(w * values[name] for name, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-min(60.0, max(-60.0, logit))))


def fusion_features(evidence: Evidence) -> dict[str, float]:
    """Evidence -> the fusion's inputs, each roughly in 0..1 (hinges let a linear model say
    "this alone is enough" for a strong cosine or a strong aligned SSIM)."""
    aligned = evidence.ssim is not None and evidence.sift_inliers > 0
    ssim = max(0.0, evidence.ssim) if evidence.ssim is not None and aligned else 0.0
    ratio = evidence.sift_inliers / evidence.sift_matches if evidence.sift_matches else 0.0
    cosine_very_strong = min(1.0, max(0.0, evidence.embedding_cosine - 0.9) / 0.1)
    phash_close = max(0.0, 16 - evidence.phash_distance) / 16
    # pHash within a few bits: heavy overlays keep it (measured: 52 of 58 heavy-watermark
    # copies within 8), while heavy-watermarked copies of different photos are 22-36 apart.
    phash_near = max(0.0, 10 - evidence.phash_distance) / 10
    mismatch = evidence.mismatch if aligned and evidence.mismatch is not None else 0.0
    return {
        "cosine": evidence.embedding_cosine,
        "cosine_strong": max(0.0, evidence.embedding_cosine - 0.8) / 0.2,
        "phash_close": phash_close,
        "log_inliers": math.log1p(evidence.sift_inliers) / math.log1p(500),
        "inlier_ratio": ratio if aligned else 0.0,
        "ssim": ssim,
        "ssim_strong": max(0.0, ssim - 0.6) / 0.4,
        "no_alignment": 0.0 if aligned else 1.0,
        "overlap": evidence.overlap if aligned else 0.0,
        "mismatch": mismatch,
        "cosine_very_strong": cosine_very_strong,
        # Very strong global evidence where nothing aligned (a flat photo SIFT cannot align):
        # without it an unaligned pair's best fused score sat under the threshold (fused-v3).
        "unaligned_global": (0.0 if aligned else 1.0) * cosine_very_strong * phash_close,
        # Geometric agreement in numbers (100 inliers and more count fully), when aligned.
        "inliers_many": min(1.0, evidence.sift_inliers / 100) if aligned else 0.0,
        # A textured mismatch that pHash says is an overlay on the same photo, not another photo.
        "mismatch_phash": mismatch * phash_near,
    }


def duplicate_probability(evidence: Evidence, model: FusionModel) -> float:
    """The model's probability, except that identical stored pixels are a duplicate outright."""
    return 1.0 if evidence.exact else model.probability(evidence)


def model_from(weights: ModuleType) -> FusionModel:
    """The model a weights module holds (FEATURES, WEIGHTS, BIAS, THRESHOLD, EMBEDDER,
    EMBEDDING_MODEL, CANDIDATE_MIN_COSINE), as `python -m bench.quality calibrate` writes
    fusion_weights.py."""
    return FusionModel(
        features=tuple(weights.FEATURES),
        weights=tuple(weights.WEIGHTS),
        bias=weights.BIAS,
        threshold=weights.THRESHOLD,
        embedder=getattr(weights, "EMBEDDER", None),
        embedding_model=getattr(weights, "EMBEDDING_MODEL", None),
        candidate_min_cosine=getattr(weights, "CANDIDATE_MIN_COSINE", None),
    )


def model_from_dict(data: Mapping[str, Any]) -> FusionModel:
    """A model as a retrained model file holds it (imgdup.verifiers reads those); KeyError,
    TypeError or ValueError when it is not one."""
    cut_off = data.get("candidate_min_cosine")
    return FusionModel(
        features=tuple(str(name) for name in data["features"]),
        weights=tuple(float(w) for w in data["weights"]),
        bias=float(data["bias"]),
        threshold=float(data["threshold"]),
        embedder=str(data["embedder"]),
        embedding_model=str(data["embedding_model"]),
        candidate_min_cosine=None if cut_off is None else float(cut_off),
    )


def model_to_dict(model: FusionModel) -> dict[str, Any]:
    return {
        "features": list(model.features),
        "weights": list(model.weights),
        "bias": model.bias,
        "threshold": model.threshold,
        "embedder": model.embedder,
        "embedding_model": model.embedding_model,
        "candidate_min_cosine": model.candidate_min_cosine,
    }


CALIBRATED_FUSION = model_from(fusion_weights)
# fused-v4's (imgdup_core.verifier_config.FUSED_V4), fitted on evidence measured with its settings.
CALIBRATED_FUSION_V4 = model_from(fusion_weights_v4)
# fused-v5's (imgdup_core.verifier_config.FUSED_V5): the shared-page rule on, fitted likewise.
CALIBRATED_FUSION_V5 = model_from(fusion_weights_v5)
# fused-v3-distilled's (imgdup_core.verifier_config.FUSED_V3_DISTILLED): fused-v3's features and
# settings fitted on the distilled SSCD's cosines (issue 14), bound to that embedder.
CALIBRATED_FUSION_V3_DISTILLED = model_from(fusion_weights_v3_distilled)
# fused-v6's (imgdup_core.verifier_config.FUSED_V6): fused-v5's rules with the whole comparison of two
# framing pictures counted only when near-identical, fitted likewise.
CALIBRATED_FUSION_V6 = model_from(fusion_weights_v6)
# fused-v7's (imgdup_core.verifier_config.FUSED_V7): fused-v6's settings and features, its threshold
# chosen by the cost rule (imgdup_core.fitting.choose_threshold_by_cost), fitted likewise.
CALIBRATED_FUSION_V7 = model_from(fusion_weights_v7)
# fused-v10's (imgdup_core.verifier_config.FUSED_V10): fused-v8's settings and fused-v6's features, fitted
# on the train splits of both benchmark pools (default + broad), threshold by the precision rule.
CALIBRATED_FUSION_V10 = model_from(fusion_weights_v10)
