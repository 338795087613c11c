"""The verifier's measurement settings and calibrated fusion, under one version name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from imgdup_core.fusion import (
    CALIBRATED_FUSION,
    CALIBRATED_FUSION_V3_DISTILLED,
    CALIBRATED_FUSION_V4,
    CALIBRATED_FUSION_V5,
    CALIBRATED_FUSION_V6,
    CALIBRATED_FUSION_V7,
    CALIBRATED_FUSION_V10,
    FusionModel,
)
from imgdup_core.rule_config import CopyRule, OverlayRule, ParallaxRule, UnalignedRule

__all__ = [
    "DEFAULT_VERIFIER",
    "DEFAULT_VERIFIER_FOR_EMBEDDER",
    "FUSED_V3_DISTILLED",
    "FUSED_V4",
    "FUSED_V5",
    "FUSED_V6",
    "FUSED_V7",
    "FUSED_V8",
    "FUSED_V9",
    "FUSED_V10",
    "FUSED_V12",
    "FUSED_V14",
    "VERIFIERS",
    "CopyRule",
    "OverlayRule",
    "ParallaxRule",
    "UnalignedRule",
    "VerifierConfig",
    "default_verifier_for",
    "with_threshold",
]

_DEFAULT_VERSION = "fused-v3"


@dataclass(frozen=True)
class VerifierConfig:
    """Measurement settings and the calibrated fusion of the verifier. Change ``version``
    whenever anything changes: stored verdicts are only comparable within one version
    (enforced in __post_init__)."""

    version: str = _DEFAULT_VERSION

    # Local features. Inputs are the stored copies (longer side <= 512); SIFT runs on a
    # 384-pixel working copy: about a third cheaper than 512 and no loss on the tested edits.
    sift_features: int = 1000
    sift_max_side: int = 384
    # Smaller pictures (thumbnails, tight crops) are enlarged to this first: SIFT finds too
    # few keypoints on a 150-pixel crop to align it.
    sift_min_side: int = 384
    # SIFT's contrast threshold. Flat, low-texture photos (skies, white rooms, gradients) give
    # too few keypoints at it to align a copy (measured on the broad pool's 223 flat photos:
    # 57 under 150, 11 under 50). With sift_low_texture_keypoints > 0 (fused-v4), a picture with
    # fewer keypoints than that is extracted again at sift_low_texture_contrast (then 11 under
    # 150, 1 under 50); 0 (fused-v3) extracts once.
    sift_contrast: float = 0.04
    sift_low_texture_keypoints: int = 0
    sift_low_texture_contrast: float = 0.01
    # Where nothing aligned and a picture has fewer stored keypoints than this, that picture's features
    # are extracted again at sift_low_texture_contrast for a second alignment (fused-v17; 0 before): the
    # stored features stay the one-pass ones, so only such pairs pay for it (see
    # imgdup_core.geometry.align_flat_again).
    flat_retry_keypoints: int = 0
    # ...and only where the embedding cosine is at least this (fused-v18; 0 before): most flat pairs that
    # align nowhere are different photos.
    flat_retry_min_cosine: float = 0.0
    # ...on a copy of the working copy this much smaller (fused-v18): OpenCV's SIFT doubles its input first,
    # so a half-size pass costs a sixth of a full one, and a flat picture has no fine detail to lose.
    flat_retry_scale: float = 1.0
    ratio_test: float = 0.75
    ransac_reproj_px: float = 3.0
    min_matches: int = 8
    # A first orientation with this many inliers is conclusive; the mirrored try is skipped.
    conclusive_inliers: int = 60

    # Homography plausibility (maps b onto a).
    min_scale: float = 0.2
    max_scale: float = 5.0
    max_anisotropy: float = 2.0
    max_perspective: float = 3.0
    min_overlap: float = 0.05
    min_inlier_spread: float = 0.08

    # Aligned SSIM, over the textured part of the overlap (flat backdrops prove nothing).
    ssim_max_side: int = 384
    texture_min_std: float = 4.0
    mismatch_ssim: float = 0.3
    # Two pictures that align as one page (a listing template) around differing photos are
    # compared by the page's photo slot (imgdup_core.slot); off before fused-v5.
    shared_page_check: bool = False
    # ...and, when no slot was inferred, by the photo box the frame finder found in either picture
    # (imgdup_core.slot.box_page_slot): a screenshot whose box was found against one whose box was
    # not (a product on a white page) aligns whole, on the page; off before fused-v8. With box_band_check
    # (fused-v23) also the box's band across the page (its rows, its columns): the slot of a page whose
    # photo spans it while the other page's photo is a narrow pillar boxed between grey bars.
    box_page_check: bool = False
    box_band_check: bool = False
    # ...and the inferred slot's fill is also counted over its textured blocks only
    # (imgdup_core.slot.SlotConfig.min_textured_fill): letterbox bars and the white around a product,
    # flat in both pictures, no longer hold a page of different photos under the fill; off before fused-v12.
    slot_textured_fill: bool = False
    # An inferred slot holds the framed photos (SLOT_HOLDS_PHOTO: the photos' own comparison decides) when at
    # least this share of each box lies in it (imgdup_core.slot.holds_the_boxes); 0.75 in fused-v25, where a
    # box that takes in much of the page around the slot (a phone page's price panel) is no photo's.
    slot_holds_min_share: float = 0.5
    # A comparison judged by the page's slot (imgdup_core.verify.SHARED_PAGE) is a verdict of different
    # photos outright, whatever the fusion scores (fused-v12). Before, the slot only raised the mismatch,
    # which fused-v3's model (reused by fused-v9) outweighs with a cosine of 1.0 when the stored
    # embeddings are of two identical page panels taken for the photos. On the broad pool's train split
    # 451 of 452 such comparisons were of different photos (the one copy: a combo edit against a logo edit).
    shared_page_decides: bool = False
    # When both pictures frame a photo and no slot was inferred, a page's slot beside both boxes counts at any
    # fill (fused-v20): the frame finder can take one template panel (price, button) for the photo in every
    # screenshot, while the photos differ in a slot elsewhere that a product on white leaves under min_fill.
    # The rest of the inference stands (area, flat agreeing page, pHash). With slot_beside_whole (fused-v21)
    # that slot is the box around all the disagreement (SlotConfig.whole_disagreement).
    slot_beside_boxes: bool = False
    slot_beside_whole: bool = False
    # ...and a slot down to this share of the overlap (fused-v20: 0.05, a social post's photo; under min_area,
    # a sticker's bound) holding the framed boxes counts: it hands the verdict to the photos' comparison.
    small_slot_min_area: float | None = None
    # Candidates also come from a pHash channel (imgdup_core.hashing.PHASH_CANDIDATE_DISTANCE),
    # not only from the ANN search: what calibration emulates; off before fused-v5.
    phash_candidates: bool = False
    # When both pictures frame a photo, the whole pictures are compared beside the photos (a false
    # box must not hide a plain copy), but two screenshots of one page template around different
    # photos align as a page and may win there (issue 11, fused-v5's default-pool false pairs).
    # With a value (fused-v6), that whole comparison counts only when it is near-identical: aligned
    # with at most this share of its textured overlap disagreeing. None (before fused-v6): it
    # always counts. 0.07 measured on skimage photos in AugLy's web template (different photos,
    # both boxed: 0.102-0.165 over 35 pairs) and on 141 both-boxed pairs of one photo's benchmark
    # edits where the whole comparison won (padding, screenshots, combo, emoji: at most 0.053).
    framed_whole_max_mismatch: float | None = None
    # A heavy overlay spread over the whole photo (a tiled watermark, dense text) is a duplicate
    # whatever the fusion scores (fused-v14; None before): see OverlayRule.
    overlay_rule: OverlayRule | None = None
    # An aligned comparison with many inliers over most of both pictures and little disagreement is a
    # duplicate whatever the fusion scores (fused-v15; None before): see CopyRule.
    copy_rule: CopyRule | None = None
    # A whole-picture comparison where nothing aligned, with a close embedding and pHash, is a duplicate
    # whatever the fusion scores (fused-v16; None before): see UnalignedRule.
    unaligned_rule: UnalignedRule | None = None
    # An aligned comparison whose disagreement a local displacement explains is two views of one scene, not a
    # copy, whatever the fusion or the rules above say (fused-v24; None before): see ParallaxRule.
    parallax_rule: ParallaxRule | None = None

    # The decision: a logistic fusion of all the evidence, calibrated on training data.
    fusion: FusionModel = CALIBRATED_FUSION

    def __post_init__(self) -> None:
        if self.version == _DEFAULT_VERSION:
            changed = [
                field.name
                for field in dataclasses.fields(self)
                if field.name != "version" and getattr(self, field.name) != field.default
            ]
            if changed:
                raise ValueError(f"settings {changed} differ from {_DEFAULT_VERSION!r}; give a new version")


# The base VerifierConfig: fused-v3's settings and model, and the default argument of imgdup_core's
# functions. Not necessarily what the worker runs: that is DEFAULT_VERIFIER_FOR_EMBEDDER's (below).
DEFAULT_VERIFIER = VerifierConfig()

# Issue 11's flat-photo pass and its own calibration (imgdup_core/fusion_weights_v4.py). Not the
# default: on the default benchmark (bench/quality/README.md) it raised precision and benign
# recall but lost 0.7 point of hard recall against fused-v3, so it ships as an option.
FUSED_V4 = VerifierConfig(version="fused-v4", sift_low_texture_keypoints=150, fusion=CALIBRATED_FUSION_V4)

# Issue 11's frame rule on top of fused-v4: two pictures that align as one page whose photo slot
# disagrees are different photos (imgdup_core.slot), and a framed pair is compared whole as well,
# so that neither a shared page nor a false box decides; its own calibration
# (imgdup_core/fusion_weights_v5.py, `python -m bench.quality calibrate --verifier fused-v5`).
FUSED_V5 = VerifierConfig(
    version="fused-v5",
    sift_low_texture_keypoints=150,
    shared_page_check=True,
    phash_candidates=True,
    fusion=CALIBRATED_FUSION_V5,
)

# fused-v5 with one defect fixed: two screenshots of different photos in one page template, the
# photo box found on both, were called duplicates because the whole pictures (compared beside the
# boxes) align as one page. With both boxes found, the whole comparison now counts only when it is
# near-identical (a false box on both sides of a plain copy). Its own calibration
# (imgdup_core/fusion_weights_v6.py, `python -m bench.quality calibrate --verifier fused-v6`).
FUSED_V6 = VerifierConfig(
    version="fused-v6",
    sift_low_texture_keypoints=150,
    shared_page_check=True,
    phash_candidates=True,
    framed_whole_max_mismatch=0.07,
    fusion=CALIBRATED_FUSION_V6,
)

# Issue 11, leave-one-domain-out: fused-v6's measurement settings unchanged, a model whose
# threshold is chosen by the cost rule (imgdup_core.fitting.choose_threshold_by_cost) instead of the
# lowest cut with 99.5 % training precision, which fell back to 0.5 in five of the eight held-out
# folds (bench/quality/README.md). Its own calibration (imgdup_core/fusion_weights_v7.py,
# `python -m bench.quality calibrate --verifier fused-v7`). Not the default, and not one to make the
# default: fused-v6's weights at a lower cut (0.882 against 0.952), it trades precision for recall
# in the product (broad pool: precision 99.57 -> 96.36 %, bench/results/quality-broad-fused-v7.md).
FUSED_V7 = dataclasses.replace(FUSED_V6, version="fused-v7", fusion=CALIBRATED_FUSION_V7)

# fused-v6 with its shared-page rule also judging by the frame finder's own box (issue 11): two
# screenshots of different photos in one page, the box found in one and not in the other, were
# compared whole, aligned on the page and called duplicates (the broad pool's screenshot false
# pairs). The rule only adds evidence of a disagreeing photo slot, which fused-v6's model already
# weighs (the mismatch), so fused-v8 runs fused-v6's calibrated model unchanged.
FUSED_V8 = dataclasses.replace(FUSED_V6, version="fused-v8", box_page_check=True)

# fused-v3 with fused-v8's frame rules and nothing else (issue 11): the shared-page rule (inferred
# slot, and the frame finder's own box), and with a box on both sides the whole comparison counts only
# when near-identical. No low-texture SIFT pass and no pHash channel, which are most of fused-v6/v8's
# extra CPU: stored features are fused-v3's. The rules only add a disagreement (or drop a page
# comparison) that fused-v3's calibrated model already weighs, so fused-v3's model is reused unchanged.
# sscd's default before fused-v12: on the broad pool precision 98.47 -> 99.56 %
# against fused-v3 at equal recall, 0.96x a02148a's CPU per image (bench/results/*fused-v9*.md).
FUSED_V9 = dataclasses.replace(
    DEFAULT_VERIFIER,
    version="fused-v9",
    shared_page_check=True,
    framed_whole_max_mismatch=FUSED_V6.framed_whole_max_mismatch,
    box_page_check=True,
)

# fused-v8's measurement settings (low-texture SIFT pass, pHash candidate channel, frame rules and the
# box page check) with a model of its own (issue 11): every earlier model was fitted on the default
# pool's train split alone (small food photos, no screenshot pages, no dense tiled watermarks) and did
# not generalise to the broad pool. fused-v10's is fitted on the train splits of BOTH pools
# (imgdup_core/fusion_weights_v10.py, `python -m bench.quality calibrate --pool broad --extra-train
# default --verifier fused-v10`, fused-v6's features). An option (bench/results/*fused-v10*.md).
FUSED_V10 = dataclasses.replace(FUSED_V8, version="fused-v10", fusion=CALIBRATED_FUSION_V10)

# fused-v9 with the slot's fill also counted over its textured blocks (issue 11): two letterboxed photos
# in one listing page (PIL templates: black bars beside the photo, flat in both pictures) kept the
# slot's fill under its bound, and a box found on a page panel in both (identical crops) then called
# them duplicates; and a page judged by its slot is a verdict of different photos outright (fused-v3's
# model, reused unchanged from fused-v9, outweighed the slot's mismatch with the panels' cosine of 1.0).
# sscd's default before fused-v14: on the broad pool precision 99.56 -> 99.92 %, clusters 98.20 -> 99.81 %.
# (fused-v11 was an unmerged experiment: the number is not reused.)
FUSED_V12 = dataclasses.replace(
    FUSED_V9, version="fused-v12", slot_textured_fill=True, shared_page_decides=True
)

# fused-v12 with the overlay rule (issue 11, OverlayRule): a heavy overlay spread evenly over an aligned
# photo with a close pHash is a duplicate whatever the fusion scores. Same measurement, candidates and
# model as fused-v12; the evidence gains the disagreement's evenness (Evidence.mismatch_evenness).
# sscd's default before fused-v15: on the broad pool hard recall 87.4 -> 91.4 % at precision 99.92 %
# (unchanged) against fused-v12 on the same code (bench/results/*fused-v14*.md).
FUSED_V14 = dataclasses.replace(FUSED_V12, version="fused-v14", overlay_rule=OverlayRule())

# fused-v14 with the aligned-copy rule (issue 11, CopyRule): many inliers over most of both pictures and
# little disagreement is a duplicate whatever the fusion scores (combo edits, two edits of one photo). Same
# measurement, candidates and model as fused-v14; the evidence gains the coverage (Evidence.coverage).
# sscd's default before fused-v16: on the broad pool hard recall 91.6 -> 92.8 %, combo 72.0 -> 82.7 %,
# edit-vs-edit 82.7 -> 86.0 % at precision 99.96 % against fused-v14 (bench/results/*fused-v15*.md).
FUSED_V15 = dataclasses.replace(FUSED_V14, version="fused-v15", copy_rule=CopyRule())

# fused-v15 with the unaligned rule (issue 11, UnalignedRule): a whole-picture comparison in which nothing
# aligned is a duplicate when the embedding and the pHash agree closely (flat and low-texture photos). Same
# measurement, candidates, model and evidence as fused-v15. sscd's default before fused-v20
# (bench/results/*fused-v16*.md).
FUSED_V16 = dataclasses.replace(FUSED_V15, version="fused-v16", unaligned_rule=UnalignedRule())

# fused-v16 with a second alignment for flat pictures (issue 11; geometry.align_flat_again).
FUSED_V17 = dataclasses.replace(FUSED_V16, version="fused-v17", flat_retry_keypoints=50)

# fused-v17's second alignment at a fraction of its cost (issue 11: fused-v17 took 1.37x a02148a's worker CPU
# on the throughput feed, whose tiles are 40 % flat): only where the embedding cosine is at least 0.5, and on
# a half-size copy.
FUSED_V18 = dataclasses.replace(
    FUSED_V17, version="fused-v18", flat_retry_min_cosine=0.5, flat_retry_scale=0.5
)

# fused-v18 aligning again only at a cosine of at least 0.6 (issue 11: fused-v18 measured 1.13x a02148a's
# worker CPU on the throughput feed, where 307 of 906 candidate pairs were aligned again; 143 at 0.6).
FUSED_V19 = dataclasses.replace(FUSED_V18, version="fused-v19", flat_retry_min_cosine=0.6)

# fused-v16 with the page slot beside both boxes and the small slot holding them (issue 11: screenshots of
# one template around different photos). Same stored features, candidates, model, rules and evidence.
FUSED_V20 = dataclasses.replace(
    FUSED_V16, version="fused-v20", slot_beside_boxes=True, small_slot_min_area=0.05
)

# fused-v20 with that slot around all the disagreement (issue 11: products on white in one page). sscd's
# default before fused-v22 (bench/results/*fused-v21*.md).
FUSED_V21 = dataclasses.replace(FUSED_V20, version="fused-v21", slot_beside_whole=True)

# fused-v21 with fused-v18's second alignment of flat pictures (issue 11: the worst held-out domain's recall),
# their features stored at indexing (sift.stored_flat_features). Default before fused-v23 (*fused-v22*.md).
FUSED_V22 = dataclasses.replace(
    FUSED_V21, version="fused-v22", flat_retry_keypoints=50, flat_retry_min_cosine=0.5, flat_retry_scale=0.5
)

# fused-v22 with the box's band as a slot too (issue 11: one template's pages, one boxed). Default before
# fused-v24.
FUSED_V23 = dataclasses.replace(FUSED_V22, version="fused-v23", box_band_check=True)

# fused-v23 with the parallax rule (issue 11, ParallaxRule): two views of one scene (a stereo pair, two
# frames of one video) align on one plane with a close pHash and disagree like a copy under a heavy overlay,
# and models fitted without their domain accepted them. Same stored features, candidates and model; the
# evidence gains the disagreement a local displacement explains (Evidence.moved, imgdup_core.parallax).
# Default before fused-v25 (bench/results/*fused-v24*.md).
FUSED_V24 = dataclasses.replace(FUSED_V23, version="fused-v24", parallax_rule=ParallaxRule())

# fused-v24 with a slot holding the framed photos only when each box lies three-quarters in it (issue 11: two
# phone pages of one template around a Grand Canyon photo and a flamingo, whose boxes take in the price panel
# under the photo, were compared photo to photo, aligned on that panel, and one held-out fold accepted them).
# Default before fused-v26 (bench/results/*fused-v25*.md).
FUSED_V25 = dataclasses.replace(FUSED_V24, version="fused-v25", slot_holds_min_share=0.75)

# fused-v25 with the aligned-copy rule reaching 30 inliers over 0.9 of the smaller picture (issue 11: a combo
# copy of a yak on white, crop and caption, 40 inliers over 0.93, mismatch 0.05, missed held out; CopyRule's
# docstring has the training pairs that place the bounds). Same stored features, evidence and model.
# sscd's default (bench/results/*fused-v26*.md).
FUSED_V26 = dataclasses.replace(
    FUSED_V25, version="fused-v26", copy_rule=CopyRule(min_inliers=30, min_overlap=0.9)
)

# Issue 14: fused-v3's settings and features with a model fitted on the distilled SSCD's cosines
# (imgdup_core/fusion_weights_v3_distilled.py, `python -m bench.quality calibrate --embedder
# sscd_distilled`, train split only): what IMGDUP_EMBEDDER=sscd_distilled runs by default.
FUSED_V3_DISTILLED = VerifierConfig(version="fused-v3-distilled", fusion=CALIBRATED_FUSION_V3_DISTILLED)

VERIFIERS = {
    config.version: config
    for config in (
        DEFAULT_VERIFIER,
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
        FUSED_V3_DISTILLED,
    )
}

# The verifier each embedder runs when IMGDUP_VERIFIER_VERSION is not set (imgdup.verifiers): a
# model is only meaningful on the cosines it was fitted on. An embedder not listed (clip) has none.
DEFAULT_VERIFIER_FOR_EMBEDDER = {
    "sscd": FUSED_V26.version,
    "sscd_distilled": FUSED_V3_DISTILLED.version,
}


def default_verifier_for(embedder: str) -> VerifierConfig:
    """The verifier `embedder` runs when IMGDUP_VERIFIER_VERSION is not set (KeyError for one
    without a model of its own)."""
    return VERIFIERS[DEFAULT_VERIFIER_FOR_EMBEDDER[embedder]]


def with_threshold(config: VerifierConfig, threshold: float | None) -> VerifierConfig:
    """`config` deciding at another fused-probability threshold (stricter above the calibrated one),
    under its own version name, so stored verdicts stay comparable and a replay verifies again. A
    stricter one decides by the fusion alone: the overlay, aligned-copy and unaligned rules' verdicts stand
    at the calibrated threshold (their score), under the stricter cut."""
    if threshold is None or threshold == config.fusion.threshold:
        return config
    if threshold > config.fusion.threshold:
        config = dataclasses.replace(config, overlay_rule=None, copy_rule=None, unaligned_rule=None)
    fusion = dataclasses.replace(config.fusion, threshold=threshold)
    return dataclasses.replace(config, version=f"{config.version}-t{threshold}", fusion=fusion)
