"""Two stored images (ImageView) and their embedding cosine -> the evidence of their most telling
comparison and the calibrated Verdict: the verifier's one public API."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from functools import partial

import numpy as np

from imgdup_core.evidence import Evidence, Verdict
from imgdup_core.fusion import duplicate_probability
from imgdup_core.geometry import align_flat_again, best_geometry
from imgdup_core.gray import working_gray
from imgdup_core.hashing import phash_distance, phash_pair
from imgdup_core.rule_config import ParallaxRule
from imgdup_core.sift import (
    FeatureCache,
    SiftFeatures,
    extract_features,
    extract_flat_features,
    extract_sift,
    sift_from_bytes,
    sift_to_bytes,
)
from imgdup_core.similarity import SLOT_BOX, SLOT_INFERRED, aligned_ssim
from imgdup_core.slot import Box
from imgdup_core.verifier_config import DEFAULT_VERIFIER, CopyRule, OverlayRule, UnalignedRule, VerifierConfig
from imgdup_core.views import COMPUTE_BOX, BoxUnknown, ImageView, box_or_compute

# Also re-exported: what a caller needs from the cascade's modules (gray -> sift -> geometry ->
# similarity -> fusion), so that a caller of the verifier imports this module only.
__all__ = [
    "COMPUTE_BOX",
    "DEFAULT_VERIFIER",
    "PAGE_BOX",
    "BoxUnknown",
    "Evidence",
    "FeatureCache",
    "ImageView",
    "SiftFeatures",
    "Verdict",
    "VerifierConfig",
    "box_or_compute",
    "content_order_swaps",
    "decide",
    "extract_sift",
    "is_spread_overlay",
    "is_two_views",
    "measure_images",
    "reversed_compared",
    "sift_from_bytes",
    "sift_to_bytes",
    "verify_images",
]


_MASK64 = (1 << 64) - 1

# Evidence.compared of the two whole pictures compared with each other (no box, no page slot).
WHOLE = "full/full"
# Evidence.compared of a comparison decided by a shared page's photo slot (imgdup_core.slot):
# the two whole pictures aligned as one page and were judged by the slot inside it.
SHARED_PAGE = "slot/slot"
# ...and by the photo box the frame finder found in either picture (fused-v8): the pages disagree
# in that box. It does not decide alone: where the other comparison finds the photo of one picture
# inside the other (a copy shown smaller in the same page), that comparison can still win.
PAGE_BOX = "box/box"
# ...and by an inferred slot that holds the photo the frame finder found (fused-v12): the page's
# disagreement may be that photo shown at another size or place, so the whole comparison is left
# out and the photos' own comparison decides. Never reported (measure_images skips it).
_PAGE_AROUND_PHOTO = "slot/photo"


def verify_images(
    a: ImageView,
    b: ImageView,
    *,
    cosine: float,
    config: VerifierConfig = DEFAULT_VERIFIER,
    cache: FeatureCache | None = None,
) -> Verdict:
    """Decide whether either image is a (possibly edited or mirrored) copy of the other,
    comparing the framed photos where there are any; the verdict does not depend on which is
    passed first (measure_images). cosine is the embedding cosine of the pair; features neither
    view carries are extracted (through `cache` when given). Raises ValueError for a
    non-finite cosine."""
    return decide(measure_images(a, b, cosine=cosine, config=config, cache=cache), config)


def measure_images(
    a: ImageView,
    b: ImageView,
    *,
    cosine: float,
    config: VerifierConfig = DEFAULT_VERIFIER,
    cache: FeatureCache | None = None,
) -> Evidence:
    """The evidence of the most telling comparison of the two images, without a decision.

    With config.shared_page_check (fused-v5), two whole pictures that align as one page whose
    photo slot disagrees are different photos whatever else matched: that comparison decides.
    A framed photo is compared by the photo inside its frame: two screenshots of one site share
    the whole page layout, which aligns perfectly and proves nothing. When only one side frames
    a photo, the whole pictures are compared as well (the frame finder may have taken a window
    or a horizon for a frame) and the comparison with the higher fused probability is kept.
    With config.framed_whole_max_mismatch (fused-v6), when both sides frame a photo the whole
    pictures count only when they are near-identical (a false box on both), never as a page.
    With config.shared_page_decides (fused-v12), a page's slot that holds the framed photos does not
    decide: the same photo shown at another size in one page disagrees there too.

    The measurements are directional (the pHash distance takes a's plain hash against b's plain
    or mirrored one, the ratio test matches a's features in b's, SSIM warps b onto a), so the
    two images are measured in their content order (_content_order), not in the order given:
    the product's order is its image ids', which differ for every upload of the same picture.
    Evidence.compared still names the sides in the order given ("photo/full": a's photo).
    """
    first, second = _content_order(a, b)
    evidence = _measure_in_order(first, second, cosine=cosine, config=config, cache=cache)
    if first is a:
        return evidence
    return dataclasses.replace(evidence, compared=reversed_compared(evidence.compared))


def reversed_compared(compared: str) -> str:
    """Evidence.compared of the pair taken the other way round ("photo/full" -> "full/photo")."""
    return "/".join(reversed(compared.split("/")))


def _measure_in_order(
    a: ImageView, b: ImageView, *, cosine: float, config: VerifierConfig, cache: FeatureCache | None
) -> Evidence:
    comparisons = [(a.frames_photo, b.frames_photo)]
    if comparisons[0][0] != comparisons[0][1] or (config.shared_page_check and comparisons[0][0]):
        comparisons.append((False, False))
    best: tuple[float, Evidence] | None = None
    skipped: Evidence | None = None
    for photo_a, photo_b in comparisons:
        evidence = _measure(
            partial(a.pixels, photo_a),
            partial(b.pixels, photo_b),
            same_pixels=partial(_same_pixels, a, photo_a, b, photo_b),
            phash_a=phash_pair(a.pixels(True)) if photo_a else a.phash,
            phash_b=phash_pair(b.pixels(True)) if photo_b else b.phash,
            cosine=cosine,
            config=config,
            sift_a=a.photo_sift if photo_a else a.sift,
            sift_b=b.photo_sift if photo_b else b.sift,
            flat_a=a.photo_flat_sift if photo_a else a.flat_sift,
            flat_b=b.photo_flat_sift if photo_b else b.flat_sift,
            cache=cache,
            # Whole pictures of which one frames a photo: its box may be the page's disagreeing slot.
            boxes=None if photo_a or photo_b else lambda: (a.photo_box(), b.photo_box()),
        )
        if evidence.compared == SHARED_PAGE:
            # One page around two different photos: whatever a box cut out of it matched (a
            # panel of the page, taken for the photo) proves nothing about the photos.
            return evidence
        if evidence.compared == _PAGE_AROUND_PHOTO:
            # One page whose disagreeing slot holds the framed photos (fused-v12): their comparison
            # (tried first) says whether they are one photo, whatever the page around them.
            skipped = dataclasses.replace(evidence, compared=WHOLE)
            continue
        framed_whole = not (photo_a or photo_b) and a.frames_photo and b.frames_photo
        if framed_whole and not _near_identical(evidence, config):
            # Both boxes were found and the whole pictures differ: a shared page that aligned
            # around two photos, which the photos' own comparison (tried first) decides.
            continue
        if evidence.compared != PAGE_BOX:
            evidence = dataclasses.replace(
                evidence, compared=f"{'photo' if photo_a else 'full'}/{'photo' if photo_b else 'full'}"
            )
        # Unrounded (decide's score keeps 6 decimals): two near-certain comparisons must not
        # tie, or the reported one would depend on the order they were tried in.
        score = duplicate_probability(evidence, config.fusion)
        if best is None or score > best[0]:
            best = (score, evidence)
    if best is None:
        # Only when the first comparison was skipped too: a view given a box but no framed photo
        # (the product never builds one; the photo comparison comes first). The whole comparison's
        # evidence then stands rather than an assertion in the worker.
        assert skipped is not None
        return skipped
    return best[1]


def content_order_swaps(a: ImageView, b: ImageView) -> bool:
    """Whether measure_images measures the pair as (b, a): what a caller that recomputes part of
    a measurement (imgdup_core.explain) needs to recompute it as it was measured."""
    return _content_order(a, b)[0] is not a


def _content_order(a: ImageView, b: ImageView) -> tuple[ImageView, ImageView]:
    """The pair in an order that depends on the two pictures only: by their pHashes (unsigned:
    callers hold them signed or unsigned), and two pictures under the same ones by their stored
    pixels (decoded only then; identical stored copies, a re-upload, need no order)."""
    key_a: tuple[int, ...] = (a.phash[0] & _MASK64, a.phash[1] & _MASK64)
    key_b: tuple[int, ...] = (b.phash[0] & _MASK64, b.phash[1] & _MASK64)
    if key_a == key_b:
        if _same_pixels(a, False, b, False):
            return a, b
        key_a, key_b = _pixels_key(a), _pixels_key(b)
    return (a, b) if key_a <= key_b else (b, a)


def _pixels_key(view: ImageView) -> tuple[int, int, int]:
    pixels = view.pixels()
    h, w = pixels.shape[:2]
    return h, w, int.from_bytes(hashlib.blake2b(pixels.tobytes(), digest_size=16).digest())


def _near_identical(evidence: Evidence, config: VerifierConfig) -> bool:
    """Whether a whole-picture comparison of two framing pictures may count (fused-v6): always
    before it, else only when identical or aligned with at most the configured disagreement."""
    limit = config.framed_whole_max_mismatch
    if limit is None or evidence.exact:
        return True
    return evidence.mismatch is not None and evidence.mismatch <= limit


def is_spread_overlay(evidence: Evidence, rule: OverlayRule) -> bool:
    """Whether an aligned comparison is one photo under an overlay spread over all of it
    (imgdup_core.verifier_config.OverlayRule): close pHash, full overlap, a bounded mismatch spread
    evenly. Never for a comparison judged by a page's slot or box."""
    return (
        evidence.ssim is not None
        and evidence.sift_inliers > 0
        and evidence.compared not in (SHARED_PAGE, PAGE_BOX)
        and evidence.phash_distance <= rule.max_phash
        and evidence.overlap >= rule.min_overlap
        and evidence.mismatch is not None
        and evidence.mismatch <= rule.max_mismatch
        and evidence.mismatch_evenness is not None
        and evidence.mismatch_evenness >= rule.min_evenness
    )


def is_aligned_copy(evidence: Evidence, rule: CopyRule) -> bool:
    """Whether an aligned comparison is one photo seen twice (imgdup_core.verifier_config.CopyRule):
    many inliers, most of both pictures covered, little disagreement. Never for a comparison judged by
    a page's slot or box."""
    return (
        evidence.ssim is not None
        and not {"slot", "box"} & set(evidence.compared.split("/"))
        and evidence.sift_inliers >= rule.min_inliers
        and evidence.overlap >= rule.min_overlap
        and evidence.coverage is not None
        and evidence.coverage >= rule.min_coverage
        and evidence.mismatch is not None
        and evidence.mismatch <= rule.max_mismatch
    )


def is_unaligned_copy(evidence: Evidence, rule: UnalignedRule) -> bool:
    """Whether a whole-picture comparison in which nothing aligned is one photo all the same
    (imgdup_core.verifier_config.UnalignedRule): a close embedding and a close pHash."""
    return (
        evidence.ssim is None
        and evidence.compared == WHOLE
        and evidence.embedding_cosine >= rule.min_cosine
        and evidence.phash_distance <= rule.max_phash
    )


def is_two_views(evidence: Evidence, rule: ParallaxRule) -> bool:
    """Whether an aligned comparison is two views of one scene (imgdup_core.verifier_config.ParallaxRule):
    at least max_moved of its textured overlap agrees only once displaced locally."""
    return evidence.ssim is not None and evidence.moved is not None and evidence.moved >= rule.max_moved


def _a_rule_accepts(evidence: Evidence, config: VerifierConfig) -> bool:
    overlay, copy, unaligned = config.overlay_rule, config.copy_rule, config.unaligned_rule
    return (
        (overlay is not None and is_spread_overlay(evidence, overlay))
        or (copy is not None and is_aligned_copy(evidence, copy))
        or (unaligned is not None and is_unaligned_copy(evidence, unaligned))
    )


def decide(evidence: Evidence, config: VerifierConfig = DEFAULT_VERIFIER) -> Verdict:
    """The verdict on measured evidence: the calibrated fusion's, except where a rule of the version
    decides (identical pixels; a page's slot, fused-v12; an overlay spread over the photo, fused-v14; an
    aligned copy over most of both pictures, fused-v15; a close embedding and pHash where nothing aligned,
    fused-v16; two views of one scene, fused-v24)."""
    if evidence.exact:
        return Verdict(True, 1.0, evidence, config.version, 1.0)
    if config.shared_page_decides and evidence.compared == SHARED_PAGE:
        # One page around two different photos (fused-v12): the slot decides, not the fusion.
        return Verdict(False, 1.0, evidence, config.version, 0.0)
    if config.parallax_rule is not None and is_two_views(evidence, config.parallax_rule):
        # Two views of one scene (fused-v24): what disagrees is displaced, not added; nothing accepts it.
        return Verdict(False, 1.0, evidence, config.version, 0.0)
    p = duplicate_probability(evidence, config.fusion)
    t = config.fusion.threshold
    if p < t and _a_rule_accepts(evidence, config):
        # One photo under an overlay spread over all of it (fused-v14), seen twice and aligned over most of
        # both pictures (fused-v15), or too flat to align but close in embedding and pHash (fused-v16): a
        # duplicate, whatever the fusion scored; the verdict's score is the threshold (the rule put it there).
        return Verdict(True, 0.5, evidence, config.version, round(t, 6))
    is_duplicate = p >= t
    # How far p sits from the threshold, towards 0 or 1: 0.5 at the threshold, 1 at certainty.
    margin = (p - t) / (1.0 - t) if is_duplicate else (t - p) / t
    return Verdict(is_duplicate, round(0.5 + 0.5 * margin, 4), evidence, config.version, round(p, 6))


def _same_pixels(a: ImageView, photo_a: bool, b: ImageView, photo_b: bool) -> bool:
    """Whether the two stored copies hold identical pixels. Stored JPEGs are compared as bytes:
    the encoder is deterministic, so equal pixels were encoded to equal bytes, and equal bytes
    decode to equal pixels."""
    bytes_a, bytes_b = a.stored_bytes(photo_a), b.stored_bytes(photo_b)
    if bytes_a is not None and bytes_b is not None:
        return bytes_a == bytes_b
    pixels_a, pixels_b = a.pixels(photo_a), b.pixels(photo_b)
    return pixels_a.shape == pixels_b.shape and bool(np.array_equal(pixels_a, pixels_b))


def _measure(
    load_a: Callable[[], np.ndarray],
    load_b: Callable[[], np.ndarray],
    *,
    same_pixels: Callable[[], bool],
    phash_a: tuple[int, int],
    phash_b: tuple[int, int],
    cosine: float,
    config: VerifierConfig,
    sift_a: SiftFeatures | None,
    sift_b: SiftFeatures | None,
    cache: FeatureCache | None,
    boxes: Callable[[], tuple[Box | None, Box | None]] | None = None,
    flat_a: SiftFeatures | None = None,
    flat_b: SiftFeatures | None = None,
) -> Evidence:
    """Every method's measurement of one comparison, on pictures loaded only when needed:
    features not given are extracted (a flat picture's second ones too, flat_a / flat_b), and the
    aligned SSIM needs both pictures; a pair without a plausible alignment needs neither."""
    if not math.isfinite(cosine):
        raise ValueError(f"cosine must be finite, got {cosine!r}")
    distance, phash_mirrored = phash_distance(phash_a, phash_b)
    if same_pixels():
        # The same stored pixels (a re-upload): nothing to align.
        return Evidence(
            distance, phash_mirrored, float(cosine), 0, False, 1.0, exact=True, overlap=1.0, mismatch=0.0
        )
    grays: dict[str, np.ndarray] = {}

    def gray(side: str) -> np.ndarray:
        if side not in grays:
            grays[side] = working_gray((load_a if side == "a" else load_b)(), config)
        return grays[side]

    def features(side: str, flat: bool = False) -> SiftFeatures:
        stored = (flat_a if side == "a" else flat_b) if flat else None
        if stored is not None:
            return stored
        if cache is not None:
            return cache.features(gray(side), config, flat=flat)
        return (extract_flat_features if flat else extract_features)(gray(side), config)

    feats_a = sift_a if sift_a is not None else features("a")
    feats_b = sift_b if sift_b is not None else features("b")
    geometry = best_geometry(
        feats_a, feats_b, (feats_a.height, feats_a.width), prefer_mirrored=phash_mirrored, config=config
    )
    geometry = align_flat_again(
        geometry,
        feats_a,
        feats_b,
        flat_a=partial(features, "a", True),
        flat_b=partial(features, "b", True),
        prefer_mirrored=phash_mirrored,
        cosine=cosine,
        config=config,
    )
    if geometry is None or not geometry.plausible:
        return Evidence(
            phash_distance=distance,
            phash_mirrored=phash_mirrored,
            embedding_cosine=float(cosine),
            sift_inliers=0,
            sift_mirrored=False,
            ssim=None,
            sift_matches=geometry.matches if geometry is not None else 0,
        )
    gray_b = gray("b")
    b_aligned = np.ascontiguousarray(gray_b[:, ::-1]) if geometry.mirrored else gray_b
    found = boxes() if boxes is not None and config.box_page_check else (None, None)
    if geometry.mirrored and found[1] is not None:
        x0, y0, x1, y1 = found[1]
        found = (found[0], (1.0 - x1, y0, 1.0 - x0, y1))  # b's box in the mirrored b
    aligned = aligned_ssim(gray("a"), b_aligned, geometry.homography, config, found)
    mismatch = None
    compared = WHOLE
    if aligned is not None:
        # A shared page's slot that disagrees is the mismatch that counts (imgdup_core.slot).
        mismatch = round(aligned.mismatch if aligned.slot is None else max(aligned.mismatch, aligned.slot), 4)
        if aligned.judged_by is not None:
            judged = {SLOT_BOX: PAGE_BOX, SLOT_INFERRED: SHARED_PAGE}
            compared = judged.get(aligned.judged_by, _PAGE_AROUND_PHOTO)
    return Evidence(
        phash_distance=distance,
        phash_mirrored=phash_mirrored,
        embedding_cosine=float(cosine),
        sift_inliers=geometry.inliers,
        sift_mirrored=geometry.mirrored,
        ssim=aligned.ssim if aligned is not None else None,
        sift_matches=geometry.matches,
        overlap=round(geometry.overlap, 4),
        coverage=round(geometry.coverage, 4),
        mismatch=mismatch,
        compared=compared,
        mismatch_evenness=aligned.evenness if aligned is not None else None,
        moved=aligned.moved if aligned is not None else None,
    )
