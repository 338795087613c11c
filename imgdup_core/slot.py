"""An aligned pair's SSIM map and texture masks in -> whether the two pictures are one page (a
listing template, a post layout) around two different photos: the page's inferred photo slot and
how much of it disagrees, or None."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from imgdup_core.hashing import hamming64, phash_gray

__all__ = [
    "AlignedMaps",
    "Box",
    "PageSlot",
    "SlotConfig",
    "box_page_slot",
    "holds_the_boxes",
    "shared_page_slot",
]

# A box: x0, y0, x1, y1 (x1, y1 exclusive), in pixels (box_page_slot: a's at SSIM size) or as shares
# of a picture's width and height (the verifier's ImageView.photo_box), as each signature says.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PageSlot:
    """The inferred photo slot of one page around two different photos: its share that disagrees,
    and where it is (a's pixels at SSIM size)."""

    share: float
    box: Box


@dataclass(frozen=True)
class AlignedMaps:
    """Two pictures aligned at SSIM size (imgdup_core.similarity.aligned_ssim): a, b warped onto a, the
    SSIM map, the valid overlap, each side's texture mask, and the SSIM under which a pixel disagrees."""

    ref_a: np.ndarray
    warped_b: np.ndarray
    ssim_map: np.ndarray
    valid: np.ndarray
    textured_a: np.ndarray
    textured_b: np.ndarray
    mismatch_ssim: float

    @cached_property
    def textured(self) -> np.ndarray:
        either: np.ndarray = self.textured_a | self.textured_b
        return either

    @cached_property
    def disagree(self) -> np.ndarray:
        """Valid pixels textured on either side where the SSIM says the pictures differ."""
        out: np.ndarray = self.valid & self.textured & (self.ssim_map < self.mismatch_ssim)
        return out


@dataclass(frozen=True)
class SlotConfig:
    """Thresholds of the shared-page rule (measured on bench/quality/templates.py's six pages
    around skimage photos, and against the benchmark's sticker, emoji and caption edits)."""

    block: int = 16  # the disagreement is looked at in blocks this large (pixels at SSIM size)
    hot_block: float = 0.2  # a block disagrees when this share of its valid pixels does
    min_area: float = 0.2  # the slot's share of the aligned overlap (a sticker is at most ~0.2)
    min_fill: float = 0.78  # share of the slot's blocks that disagree (a sticker's disc, a caption's
    # letters leave more of their box agreeing)
    min_page: float = 0.15  # share of the overlap outside the slot: the page that aligned
    max_page_texture: float = 0.6  # a page is mostly flat (panels, padding, lines of text)
    max_page_mismatch: float = 0.1  # ...and agrees outside the slot
    min_phash: int = 16  # the slots hold different pictures
    # The frame finder's own box as the slot (box_page_slot, fused-v8): its share of the aligned
    # overlap, and the share of its textured pixels that must disagree. Measured on 134 aligned
    # whole-picture comparisons with a box on one side, from the broad pool's fused-v6 run
    # (bench/results/box-page-rule.md): where the rest agreed as a flat page, different photos
    # disagreed in the box 0.36-0.98 (35 pairs), copies of one photo at most 0.07 (7 pairs).
    min_box_area: float = 0.03
    min_box_disagree: float = 0.25
    # The slot's fill counted over its textured blocks only (fused-v12): a block flat in both pictures
    # (a letterbox bar, the white around a product) says nothing about whether the photos differ, yet
    # it held the fill of letterboxed photos in one page under min_fill. A block is textured when
    # hot_block of its valid pixels are, in either picture. With textured_fill, the slot also counts
    # when that fill reaches min_textured_fill, chosen on the broad pool's TRAIN split (fused-v10's 47
    # aligned whole-picture comparisons that met every condition but min_fill): the highest
    # duplicate's textured fill is 0.806 (a crop25 copy against a sticker copy), so 0.81 keeps all 11
    # duplicates and takes 24 of the 36 different photos (14 of 20 template pages, 9 chessboard views,
    # 1 screenshot page).
    textured_fill: bool = False
    min_textured_fill: float = 0.81
    # The slot as the box around every disagreeing block, not only the largest connected group of them
    # (fused-v21's slot beside both framed boxes): two products on white letterboxed into one page slot
    # disagree at the product and, apart from it, at the letterbox bars' edges (bars of other widths).
    whole_disagreement: bool = False


def shared_page_slot(maps: AlignedMaps, config: SlotConfig = SlotConfig()) -> PageSlot | None:
    """The inferred slot (and its disagreeing share) when the aligned pictures are one page with
    different photos in it, else None.

    Two screenshots of one site share every pixel of the page, which aligns them perfectly; their
    photos differ in one rectangle. A copy under a sticker or a caption also differs in one place,
    but around it is the same photo (textured), not a page (mostly flat), and the two pictures in
    that place are one photo (close pHash) more often than not."""
    valid, textured, disagree = maps.valid, maps.textured, maps.disagree
    size = config.block
    rows, cols = valid.shape[0] // size, valid.shape[1] // size
    if rows < 3 or cols < 3:
        return None

    def blocks(mask: np.ndarray) -> np.ndarray:
        cut = mask[: rows * size, : cols * size].astype(np.float32)
        summed: np.ndarray = cut.reshape(rows, size, cols, size).sum(axis=(1, 3))
        return summed

    valid_blocks = blocks(valid)
    hot = (valid_blocks > 0) & (blocks(disagree) >= config.hot_block * np.maximum(valid_blocks, 1.0))
    if not hot.any():
        return None
    if config.whole_disagreement:
        ys, xs = np.nonzero(hot)
        x, y, w, h = int(xs.min()), int(ys.min()), int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
    else:
        _, _, stats, _ = cv2.connectedComponentsWithStats(hot.astype(np.uint8), connectivity=8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = (int(v) for v in stats[largest, :4])
    slot_blocks = valid_blocks[y : y + h, x : x + w] > 0
    total = float((valid_blocks > 0).sum())
    if slot_blocks.sum() < config.min_area * total:
        return None
    fill = float(hot[y : y + h, x : x + w][slot_blocks].mean())
    if fill < config.min_fill and not _textured_fill_holds(
        hot, blocks(valid & textured), valid_blocks, (x, y, w, h), config
    ):
        return None
    inside = np.zeros_like(valid)
    inside[y * size : (y + h) * size, x * size : (x + w) * size] = True
    page = valid & ~inside
    if page.sum() < config.min_page * valid.sum() or not _flat_agreeing(page, disagree, textured, config):
        return None
    y0, y1, x0, x1 = y * size, (y + h) * size, x * size, (x + w) * size
    if not _unrelated(maps.ref_a[y0:y1, x0:x1], maps.warped_b[y0:y1, x0:x1], config):
        return None
    share = round(float(disagree[inside & valid].sum() / max(1, (inside & valid).sum())), 4)
    return PageSlot(share, (float(x0), float(y0), float(x1), float(y1)))


def holds_the_boxes(slot: Box, boxes: list[Box], min_share: float = 0.5) -> bool:
    """Whether at least min_share of every box lies inside the slot (all in one picture's pixels;
    False without a box): the frame finder's photos are in the part of the page that disagrees, so
    the page's disagreement is about those photos (the same photo shown at another size or place in
    one page disagrees there too), not about photos next to a page panel taken for one of them."""
    if not boxes:
        return False
    sx0, sy0, sx1, sy1 = slot
    for x0, y0, x1, y1 in boxes:
        area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        inside = max(0.0, min(x1, sx1) - max(x0, sx0)) * max(0.0, min(y1, sy1) - max(y0, sy0))
        if area <= 0 or inside < min_share * area:
            return False
    return True


def _textured_fill_holds(
    hot: np.ndarray,
    textured_blocks: np.ndarray,
    valid_blocks: np.ndarray,
    rect: tuple[int, int, int, int],
    config: SlotConfig,
) -> bool:
    """Whether the slot's share of disagreeing blocks among its textured blocks reaches
    config.min_textured_fill (never without config.textured_fill)."""
    if not config.textured_fill:
        return False
    x, y, w, h = rect
    textured = (valid_blocks > 0) & (textured_blocks >= config.hot_block * np.maximum(valid_blocks, 1.0))
    inside = textured[y : y + h, x : x + w]
    return bool(inside.any()) and float(hot[y : y + h, x : x + w][inside].mean()) >= config.min_textured_fill


def _flat_agreeing(page: np.ndarray, disagree: np.ndarray, textured: np.ndarray, config: SlotConfig) -> bool:
    """Whether the pixels outside a slot look like a page: mostly flat, and agreeing where textured."""
    page_textured = page & textured
    if page_textured.sum() > config.max_page_texture * page.sum():
        return False
    return not (page_textured.any() and float(disagree[page_textured].mean()) > config.max_page_mismatch)


def _unrelated(crop_a: np.ndarray, crop_b: np.ndarray, config: SlotConfig) -> bool:
    """Whether a slot's two pictures are different photos by pHash (a copy's stay close)."""
    return hamming64(phash_gray(crop_a), phash_gray(crop_b)) >= config.min_phash


def box_page_slot(maps: AlignedMaps, boxes: list[Box], config: SlotConfig = SlotConfig()) -> float | None:
    """shared_page_slot with the slot given: the photo box the frame finder found in either picture
    (in a's coordinates after alignment). The disagreeing share of the box when the pictures are one
    page around two different photos there (the page outside the box mostly flat and agreeing, the
    box's pictures unrelated by pHash), else None; the most disagreeing box counts.

    Where one screenshot's photo box is found and the other's is not (a product on a white page),
    the two pages are compared whole and align on the page; the inferred slot of shared_page_slot
    misses a small or partly flat photo (its blocks agree in the flat parts), the known box does not."""
    valid, textured, disagree = maps.valid, maps.textured, maps.disagree
    height, width = valid.shape
    total = float(valid.sum())
    best: float | None = None
    for x0f, y0f, x1f, y1f in boxes:
        x0, y0 = max(0, int(x0f)), max(0, int(y0f))
        x1, y1 = min(width, int(np.ceil(x1f))), min(height, int(np.ceil(y1f)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        inside = np.zeros_like(valid)
        inside[y0:y1, x0:x1] = True
        inside &= valid
        page = valid & ~inside
        if total == 0 or inside.sum() < config.min_box_area * total or page.sum() < config.min_page * total:
            continue
        if not _flat_agreeing(page, disagree, textured, config):
            continue
        inside_textured = inside & textured
        if not inside_textured.any():
            continue
        share = float(disagree[inside_textured].mean())
        if share < config.min_box_disagree or not _unrelated(
            maps.ref_a[y0:y1, x0:x1], maps.warped_b[y0:y1, x0:x1], config
        ):
            continue
        best = share if best is None else max(best, share)
    return None if best is None else round(best, 4)
