"""Two grey working copies and the homography aligning them -> aligned SSIM over the textured
overlap and the share of it where the pictures disagree."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import cv2
import numpy as np

from imgdup_core.gray import fit
from imgdup_core.parallax import moved_share
from imgdup_core.slot import (
    AlignedMaps,
    Box,
    PageSlot,
    SlotConfig,
    box_page_slot,
    holds_the_boxes,
    shared_page_slot,
)
from imgdup_core.ssim import ssim_map
from imgdup_core.verifier_config import OverlayRule, VerifierConfig

__all__ = [
    "SLOT_BOX",
    "SLOT_HOLDS_PHOTO",
    "SLOT_INFERRED",
    "Aligned",
    "aligned_ssim",
    "disagreement_evenness",
    "local_std",
    "ssim_map",
]

# What judged an aligned pair as one page around two photos (aligned_ssim's judged_by).
SLOT_INFERRED = "inferred"
SLOT_BOX = "box"
SLOT_HOLDS_PHOTO = "inferred, holding a framed photo"

_SLOTS = SlotConfig()
# fused-v12's: the slot's fill also counted over its textured blocks (SlotConfig.min_textured_fill).
_TEXTURED_FILL_SLOTS = SlotConfig(textured_fill=True)
# fused-v20's for a slot beside both framed photos' boxes (VerifierConfig.slot_beside_boxes): any fill.
_ANY_FILL_SLOTS = SlotConfig(min_fill=0.0)
# ...and fused-v21's: around every disagreeing block (VerifierConfig.slot_beside_whole).
_WHOLE_ANY_FILL_SLOTS = SlotConfig(min_fill=0.0, whole_disagreement=True)
_OVERLAY_RULE = OverlayRule()


class Aligned(NamedTuple):
    """aligned_ssim's measurements of one aligned comparison."""

    ssim: float  # mean SSIM over the textured overlap
    mismatch: float  # share of the textured overlap where the pictures disagree
    slot: float | None  # a shared page's photo slot: its disagreeing share (imgdup_core.slot)
    judged_by: str | None  # what the slot is (SLOT_INFERRED, SLOT_BOX, SLOT_HOLDS_PHOTO)
    evenness: float | None  # disagreement_evenness, with config.overlay_rule only
    # imgdup_core.parallax.moved_share, where config.parallax_rule asks for it (else None)
    moved: float | None = None


def aligned_ssim(
    gray_a: np.ndarray,
    gray_b: np.ndarray,
    homography: np.ndarray,
    config: VerifierConfig,
    boxes: tuple[Box | None, Box | None] = (None, None),
) -> Aligned | None:
    """(mean SSIM, share of pixels with SSIM < mismatch_ssim, slot, judged_by, evenness) over the
    textured overlap of a and b warped onto it; None when the overlap is too small to say. slot is
    the disagreeing share of a shared page's photo slot (imgdup_core.slot) when the two are one page around
    different photos and the config checks for that (fused-v5), else None. `boxes`: the photo box
    the frame finder found in a and in b, as shares of each picture's width and height (x0, y0, x1,
    y1), which config.box_page_check (fused-v8) tries as the slot when none was inferred. judged_by
    says what the slot is: SLOT_INFERRED, SLOT_BOX (such a box), or SLOT_HOLDS_PHOTO (inferred, and
    with config.shared_page_decides, fused-v12: the framed photos lie in it, so the page's disagreement
    may be that photo shown at another size, which the photos' own comparison decides); None
    without a slot. evenness: disagreement_evenness, measured for config.overlay_rule only (None
    without it)."""
    small_a = fit(gray_a, config.ssim_max_side)
    small_b = fit(gray_b, config.ssim_max_side)
    scale_a = np.diag([small_a.shape[1] / gray_a.shape[1], small_a.shape[0] / gray_a.shape[0], 1.0])
    scale_b = np.diag([small_b.shape[1] / gray_b.shape[1], small_b.shape[0] / gray_b.shape[0], 1.0])
    h = scale_a @ homography @ np.linalg.inv(scale_b)
    h = h / h[2, 2]

    # Band-limit whichever side is finer so that resampling alone does not cost SSIM: a crop
    # blown up to full size carries less detail per pixel than the original it came from.
    magnification = math.sqrt(abs(float(np.linalg.det(h[:2, :2]))))
    src_b: np.ndarray = small_b.astype(np.float32)
    ref_a: np.ndarray = small_a.astype(np.float32)
    if magnification < 1.0:
        src_b = cv2.GaussianBlur(src_b, (0, 0), 0.5 * math.sqrt(1.0 / magnification**2 - 1.0))
    elif magnification > 1.0:
        ref_a = cv2.GaussianBlur(ref_a, (0, 0), 0.5 * math.sqrt(magnification**2 - 1.0))

    height, width = small_a.shape
    if min(height, width) < 7:
        return None
    warped = cv2.warpPerspective(
        src_b, h, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    footprint = cv2.warpPerspective(
        np.full(small_b.shape, 255, np.uint8), h, (width, height), flags=cv2.INTER_NEAREST
    )
    # Drop a margin the size of the SSIM window so that border pixels never enter the score.
    valid: np.ndarray = cv2.erode(footprint, np.ones((11, 11), np.uint8)) > 0
    if valid.sum() < 0.02 * valid.size:
        return None
    pixel_ssim = ssim_map(ref_a, warped)
    # Flat areas (white studio backdrops, sky) score ~1 against any other flat photo, and text
    # overlaid on them adds texture to one side only; content that both sides show textured
    # is what says whether the pictures line up.
    textured_a = local_std(ref_a) > config.texture_min_std
    textured_b = local_std(warped) > config.texture_min_std
    region = valid & textured_a & textured_b
    if region.sum() < 0.05 * valid.sum():
        region = valid & (textured_a | textured_b)
    if region.sum() < 0.05 * valid.sum():
        region = valid
    # Where the aligned pictures disagree outright: a shared frame (a screenshot template, an
    # agency banner) lines up while the photos inside it do not, which the mean over the
    # textured intersection hides (a product on white in one picture and a different one in
    # the other share little texture). Measured over each side's own texture and the smaller
    # share kept, so an overlay that adds texture to one side only (text tiled over a flat sky)
    # does not count: the clean side shows no disagreement there.
    shares = []
    for textured in (textured_a, textured_b):
        own = valid & textured
        shares.append(float((pixel_ssim[own] < config.mismatch_ssim).mean()) if own.any() else 0.0)
    mismatch = min(shares)
    maps = AlignedMaps(ref_a, warped, pixel_ssim, valid, textured_a, textured_b, config.mismatch_ssim)
    ssim = float(np.clip(pixel_ssim[region].mean(), -1.0, 1.0))
    in_a = (
        _boxes_in_a(boxes, small_a.shape, small_b.shape, h) if any(box is not None for box in boxes) else []
    )
    inferred = (
        shared_page_slot(maps, _TEXTURED_FILL_SLOTS if config.slot_textured_fill else _SLOTS)
        if config.shared_page_check
        else None
    )
    rule = config.overlay_rule
    evenness = disagreement_evenness(maps, rule) if rule is not None else None
    parallax = config.parallax_rule
    moved = moved_share(maps) if parallax is not None and mismatch >= parallax.min_mismatch else None
    if inferred is None and in_a:
        about_the_boxes = _slot_about_the_boxes(maps, in_a, config)
        if about_the_boxes is not None:
            slot, judged_by = about_the_boxes
            return Aligned(ssim, mismatch, slot.share, judged_by, evenness, moved)
    if inferred is not None:
        holds_photo = config.shared_page_decides and holds_the_boxes(
            inferred.box, in_a, config.slot_holds_min_share
        )
        judged = SLOT_HOLDS_PHOTO if holds_photo else SLOT_INFERRED
        return Aligned(ssim, mismatch, inferred.share, judged, evenness, moved)
    if config.box_page_check and in_a:
        by_box = box_page_slot(maps, in_a + (_bands(in_a, small_a.shape) if config.box_band_check else []))
        if by_box is not None:
            return Aligned(ssim, mismatch, by_box, SLOT_BOX, evenness, moved)
    return Aligned(ssim, mismatch, None, None, evenness, moved)


def _slot_about_the_boxes(
    maps: AlignedMaps, in_a: list[Box], config: VerifierConfig
) -> tuple[PageSlot, str] | None:
    """Where no slot was inferred, fused-v20's two looser slots around the framed photos' boxes (in a's
    pixels), with what judged the page: a small slot holding the boxes (config.small_slot_min_area), or,
    when both pictures frame a photo, a slot at any fill beside both (config.slot_beside_boxes)."""
    area = config.small_slot_min_area
    if area is not None and config.shared_page_decides:
        base = _TEXTURED_FILL_SLOTS if config.slot_textured_fill else _SLOTS
        small = shared_page_slot(maps, dataclasses.replace(base, min_area=area))
        if small is not None and holds_the_boxes(small.box, in_a):
            return small, SLOT_HOLDS_PHOTO
    if config.slot_beside_boxes and len(in_a) == 2:
        beside = shared_page_slot(
            maps, _WHOLE_ANY_FILL_SLOTS if config.slot_beside_whole else _ANY_FILL_SLOTS
        )
        if beside is not None and not any(holds_the_boxes(beside.box, [box]) for box in in_a):
            return beside, SLOT_INFERRED
    return None


def disagreement_evenness(maps: AlignedMaps, rule: OverlayRule = _OVERLAY_RULE) -> float | None:
    """How evenly the aligned pictures' disagreement is spread: the share of the grid's cells (over
    the valid overlap's bounding box; a cell counts when it holds rule.min_cell of the textured overlap)
    whose disagreeing share of their textured pixels reaches half the whole picture's. An overlay
    spread over the photo (a tiled watermark) gives ~1; a page's photo slot, a sticker or a caption a
    few cells. None when nothing textured disagrees."""
    textured = maps.valid & maps.textured
    disagree = maps.disagree
    total_textured, total_disagree = int(textured.sum()), int(disagree.sum())
    if total_textured == 0 or total_disagree == 0:
        return None
    rows, cols = np.nonzero(maps.valid)
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    rate = total_disagree / total_textured
    counted = even = 0
    for i in range(rule.grid):
        ys = slice(y0 + (y1 - y0) * i // rule.grid, y0 + (y1 - y0) * (i + 1) // rule.grid)
        for j in range(rule.grid):
            xs = slice(x0 + (x1 - x0) * j // rule.grid, x0 + (x1 - x0) * (j + 1) // rule.grid)
            cell = int(textured[ys, xs].sum())
            if cell < rule.min_cell * total_textured:
                continue
            counted += 1
            even += int(disagree[ys, xs].sum() >= 0.5 * rate * cell)
    return round(even / counted, 4) if counted else None


def _bands(boxes: list[Box], shape: tuple[int, ...]) -> list[Box]:
    """Each box's rows across the whole picture and its columns down it (a page's photo slot)."""
    height, width = float(shape[0]), float(shape[1])
    return [band for x0, y0, x1, y1 in boxes for band in ((0.0, y0, width, y1), (x0, 0.0, x1, height))]


def _boxes_in_a(
    boxes: tuple[Box | None, Box | None], shape_a: tuple[int, ...], shape_b: tuple[int, ...], h: np.ndarray
) -> list[Box]:
    """The boxes (shares of each picture) in a's pixels at SSIM size: b's through the homography,
    as the rectangle around its corners."""

    def in_pixels(box: Box, shape: tuple[int, ...]) -> Box:
        height, width = shape[0], shape[1]
        return (box[0] * width, box[1] * height, box[2] * width, box[3] * height)

    box_a, box_b = boxes
    found: list[Box] = []
    if box_a is not None:
        found.append(in_pixels(box_a, shape_a))
    if box_b is not None:
        x0, y0, x1, y1 = in_pixels(box_b, shape_b)
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64).reshape(-1, 1, 2)
        projected = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
        lo, hi = projected.min(axis=0), projected.max(axis=0)
        found.append((float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
    return found


def local_std(image: np.ndarray) -> np.ndarray:
    """Standard deviation of the pixels in a Gaussian window (sigma 1.5) around each pixel."""
    mean = cv2.GaussianBlur(image, (0, 0), 1.5)
    mean_sq = cv2.GaussianBlur(image * image, (0, 0), 1.5)
    std: np.ndarray = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return std
