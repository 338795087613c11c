"""A grey picture and its texture mask in -> the picture between a page slot's two letterbox bars (dark
bars, or flat bars of one light grey level), or None: the frame finder's first and last ways to box a
photo (imgdup_core.framing)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from imgdup_core.framing_config import FramingConfig

__all__ = ["bar_bounded_box", "flat_bar_bounded_box"]


def bar_bounded_box(
    gray: np.ndarray, textured: np.ndarray, config: FramingConfig
) -> tuple[int, int, int, int] | None:
    """The picture between two letterbox bars (x0, y0, x1, y1 at work size, the bars left out), or
    None: two dark filled rectangles of one length facing each other across a textured picture, the
    slot they bound inside a mostly flat page. The largest such slot counts; none among more than
    max_bars dark rectangles (a chessboard's cells, not a page's two bars)."""
    return _between_bars((gray < config.bar_dark).astype(np.uint8), textured, config)


def flat_bar_bounded_box(
    gray: np.ndarray, textured: np.ndarray, config: FramingConfig
) -> tuple[int, int, int, int] | None:
    """The picture between two flat letterbox bars of one light grey level (a page's grey photo slot
    around a product on white: the slot's grey meets the photo's white with a step under edge_step),
    as bar_bounded_box, the page around the slot textured up to config.max_flat_slot_page_texture (a
    listing's text beside its grey slot); the levels tried are the flat pixels' most common ones above
    bar_dark."""
    flat = ~textured  # below: gray holds whole grey levels, so bin v counts level v (bincount's count)
    counts = cv2.calcHist([gray], [0], flat.view(np.uint8), [256], [0, 256]).ravel().astype(np.float64)
    counts[: int(config.bar_dark)] = 0.0
    least = 2 * max(config.min_side, config.min_bar_length * max(gray.shape))  # a bar's least area
    band = config.bar_level_band
    levels: list[int] = []
    while len(levels) < config.max_bar_levels:
        level = int(np.argmax(counts))
        if counts[level] < least:
            break
        levels.append(level)
        counts[max(0, level - 2 * band) : level + 2 * band + 1] = 0.0
    for level in levels:
        mask = flat & (np.abs(gray - level) <= band)
        if not _may_hold_a_bar(mask, config):
            continue
        picture = _between_bars(
            mask.astype(np.uint8),
            textured,
            config,
            trim=True,
            max_frame_texture=config.max_flat_slot_page_texture,
        )
        if picture is not None:
            return picture
    return None


def _may_hold_a_bar(mask: np.ndarray, config: FramingConfig) -> bool:
    """False when no component of `mask` can be a bar (_between_bars), even trimmed, so that its
    connected components need not be labelled (most levels of a flat photo that frames nothing). A bar
    fills bar_fill of a box whose width is min_bar_length of the picture's (or whose height is of its
    height): some row of the box then holds bar_fill x that width of the mask's pixels (some column,
    that height)."""
    height, width = mask.shape
    least = config.bar_fill * config.min_bar_length * (1 - 1e-9)
    return bool(
        mask.sum(axis=1, dtype=np.int32).max(initial=0) >= least * width
        or mask.sum(axis=0, dtype=np.int32).max(initial=0) >= least * height
    )


def _between_bars(
    bar_mask: np.ndarray,
    textured: np.ndarray,
    config: FramingConfig,
    *,
    trim: bool = False,
    max_frame_texture: float | None = None,
) -> tuple[int, int, int, int] | None:
    """The picture between the largest-slot pair of bars among bar_mask's filled rectangles. With
    `trim`, each rectangle first loses the rows and columns at its ends that it half fills or less
    (a product's soft shadow of the bar's grey, touching the bar from inside the picture). The page
    around the slot may be textured up to `max_frame_texture` (config.max_frame_texture if None)."""
    page_texture = config.max_frame_texture if max_frame_texture is None else max_frame_texture
    height, width = bar_mask.shape

    def long_enough(w: Any, h: Any) -> Any:
        """Whether a w x h box is long enough for a bar (element-wise over arrays)."""
        return (np.maximum(w / width, h / height) >= config.min_bar_length) & (
            np.maximum(w, h) >= config.min_side
        )

    count, labels, stats, _ = cv2.connectedComponentsWithStats(bar_mask, connectivity=4)
    # Every component at once: a flat page's mask holds thousands of specks.
    long = long_enough(stats[1:count, 2].astype(np.float64), stats[1:count, 3].astype(np.float64))
    bars = []
    for label in (np.flatnonzero(long) + 1).tolist():
        x, y, w, h, area = (int(value) for value in stats[label])
        if trim:  # trimming only shortens a bar: check it again
            x, y, w, h, area = _trimmed(labels[y : y + h, x : x + w] == label, x, y)
            if not long_enough(w, h):
                continue
        if area >= config.bar_fill * w * h:
            bars.append((int(x), int(y), int(x + w), int(y + h)))
    if len(bars) > config.max_bars:
        return None
    tol = config.bar_tolerance
    texture_total = float(textured.sum())
    best: tuple[float, tuple[int, int, int, int]] | None = None
    for index, first in enumerate(bars):
        for second in bars[index + 1 :]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = sorted((first, second))
            side_by_side = abs(ay0 - by0) <= tol and abs(ay1 - by1) <= tol and bx0 - ax1 >= config.min_side
            (cx0, cy0, cx1, cy1), (dx0, dy0, dx1, dy1) = sorted((first, second), key=lambda b: b[1])
            stacked = abs(cx0 - dx0) <= tol and abs(cx1 - dx1) <= tol and dy0 - cy1 >= config.min_side
            if side_by_side:
                slot, picture = (
                    (ax0, min(ay0, by0), bx1, max(ay1, by1)),
                    (ax1, max(ay0, by0), bx0, min(ay1, by1)),
                )
            elif stacked:
                slot, picture = (
                    (min(cx0, dx0), cy0, max(cx1, dx1), dy1),
                    (max(cx0, dx0), cy1, min(cx1, dx1), dy0),
                )
            else:
                continue
            if trim and _runs_into_picture(bar_mask, picture, stacked=not side_by_side):
                continue
            x0, y0, x1, y1 = slot
            between = textured[picture[1] : picture[3], picture[0] : picture[2]]
            area = (x1 - x0) * (y1 - y0)
            if not config.min_area <= area / (height * width) <= config.max_area:
                continue
            if not between.size or float(between.mean()) < config.min_slot_texture:
                continue
            inside = float(textured[y0:y1, x0:x1].sum())
            if (texture_total - inside) / max(1.0, height * width - area) > page_texture:
                continue
            if best is None or area > best[0]:
                best = (float(area), picture)
    return None if best is None else best[1]


def _runs_into_picture(bar_mask: np.ndarray, picture: tuple[int, int, int, int], *, stacked: bool) -> bool:
    """Whether the bars' level runs on into the picture along either side they bound (two pixels in,
    past the resampling blur): more than a third of that line keeps the bars' level, so the "bars" are
    the picture's own backdrop (a product on white), not a slot's grey around it."""
    x0, y0, x1, y1 = picture
    if stacked:
        lines = (bar_mask[min(y0 + 2, y1 - 1), x0:x1], bar_mask[max(y1 - 3, y0), x0:x1])
    else:
        lines = (bar_mask[y0:y1, min(x0 + 2, x1 - 1)], bar_mask[y0:y1, max(x1 - 3, x0)])
    return any(not line.size or float(line.mean()) > 1 / 3 for line in lines)


def _trimmed(component: np.ndarray, x: int, y: int) -> tuple[int, int, int, int, int]:
    """(x, y, w, h, area) of a component's bounding box (`component` its mask there, at x, y) once
    the rows and columns at the box's ends that the component half fills or less are cut off."""
    rows = np.nonzero(component.mean(axis=1) > 0.5)[0]
    cols = np.nonzero(component.mean(axis=0) > 0.5)[0]
    if not rows.size or not cols.size:
        return x, y, 0, 0, 0
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return x + c0, y + r0, c1 - c0, r1 - r0, int(component[r0:r1, c0:c1].sum())
