"""The verifier's measurements of a pair (Evidence) and its decision on them (Verdict)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Evidence", "Verdict"]


@dataclass(frozen=True)
class Evidence:
    """What the verifier measured; ``ssim`` is None when no plausible homography was found.
    Field names are those of the public schemas.EvidenceV1, so one is built from the other by name."""

    phash_distance: int
    phash_mirrored: bool
    embedding_cosine: float
    sift_inliers: int
    sift_mirrored: bool
    ssim: float | None
    # Added in fused-v2 (defaults keep older constructors valid).
    exact: bool = False  # identical stored pixels: decided without the heavy methods
    sift_matches: int = 0  # ratio-test matches of the orientation that won (inliers are a part)
    overlap: float = 0.0  # share of the smaller picture that the other covers once aligned
    mismatch: float | None = None  # share of the aligned textured overlap that disagrees
    # Added in fused-v3: which pictures were compared, a's then b's: "full" (the stored copy)
    # or "photo" (the photo cut out of a screenshot or border, imgdup_core.framing).
    compared: str = "full/full"
    # Added in fused-v14: the share of the aligned picture's cells whose disagreement reaches half
    # the picture's (imgdup_core.similarity.disagreement_evenness): ~1 for an overlay spread over
    # the whole photo, low for a page's photo slot or a sticker; None where not measured.
    mismatch_evenness: float | None = None
    # Added in fused-v15: the share of the larger picture that the other covers once aligned (overlap
    # is the smaller's): a copy-edit keeps most of its photo, a close-up of one object seen in another
    # photo of it covers a part of that photo. None where nothing aligned or not measured.
    coverage: float | None = None
    # Added in fused-v24: the share of the aligned textured overlap that disagrees in place but agrees once
    # displaced locally by more than a pixel (imgdup_core.parallax.moved_share): ~0 for a copy, however
    # edited; up to 0.44 for two views of one scene (stereo, frames of one video). None where not measured
    # (nothing aligned, the mismatch under the ParallaxRule's min_mismatch, or an earlier verifier).
    moved: float | None = None


@dataclass(frozen=True)
class Verdict:
    """``confidence`` (0.5..1) is how sure the verifier is of ``is_duplicate`` as stated;
    ``score`` is the fused probability of a duplicate (0..1) the decision thresholds."""

    is_duplicate: bool
    confidence: float
    evidence: Evidence
    verifier_version: str
    score: float = 0.0
