"""An RGB image in, the box of the photo it frames out (a screenshot of a listing, a letterbox or
a border around the photo), or None for an ordinary photo.

A listing photo re-posted as a screenshot of another site is mostly frame: its embedding and
its local features describe the page, not the photo (SSCD cosine to the original ~0.1-0.4).
The photo inside is an axis-aligned rectangle whose sides are crisp straight edges (or the
image border; the more crisp sides the better, then the larger), around which the picture is
mostly flat (UI panels, padding); letterbox bars inside it are trimmed.

Measured on the quality benchmark's 2,408 images (train and test): found in 89 of 113
screenshots (the misses are mostly products on white shown on a white page: no edge to find)
and in 0.5 % of the other photos and edits (where the verifier also compares the whole
pictures); about 12 ms per image on one core (23 ms before the line pairs were scored in one
array operation; the same boxes on all 2,408 images).

Such a product is letterboxed into the page's slot with black bars when its shape differs from the
slot's (AugLy's screenshot edit does so): two dark rectangles of one length that bound the slot. The
picture between them is taken first where they are found: screenshots with a box 89 -> 107 of 113
(default pool) and 101 -> 149 of 154 (broad pool, 4,092 images), 37 boxes tightened to the picture
between the bars, and no box gained or lost on any other image of either pool.

Where neither dark bars nor edges frame a photo, flat bars of one light grey level are looked for the
same way (a page's grey slot around a product on white: a step of ~10 grey levels, under edge_step),
each bar first trimmed of rows and columns it half fills or less (a product's shadow of the slot's
grey), and none whose level runs on into the picture (a product's own white backdrop cut into "bars").
On both pools' 6,500 images: 28 screenshots in PIL page templates gained their photo's box, 4 other
images a false one (a cross-shaped grave on white and its copies, a combo edit); without the
backdrop check 16 others gained a false box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["DEFAULT_FRAMING", "FramingConfig", "Region", "crop_region", "find_photo_region"]


@dataclass(frozen=True)
class Region:
    """A box in the image's pixel coordinates (x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def shares(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box as shares (x0, y0, x1, y1 in 0..1) of the picture it was found in: the same box in
        any resized copy of that picture (the stored copy), whatever its pixel size."""
        if width <= 0 or height <= 0:
            raise ValueError(f"picture size must be positive, got {width}x{height}")
        return (self.x0 / width, self.y0 / height, self.x1 / width, self.y1 / height)


@dataclass(frozen=True)
class FramingConfig:
    work_side: int = 384  # the detector runs on a grey copy this large (longer side)
    texture_std: float = 6.0  # grey-level std (5x5) above which a pixel is texture
    max_texture: float = 0.75  # a picture more textured than this has no flat frame: skipped
    edge_step: float = 20.0  # grey-level step across a crisp edge (over two pixels)
    edge_coverage: float = 0.75  # share of a side's length that must step
    min_line: float = 0.06  # a candidate line steps over at least this share of the longer side
    max_lines: int = 24  # strongest candidate lines kept per direction
    min_area: float = 0.06  # the photo's share of the image, bounds
    max_area: float = 0.8
    min_side: int = 24  # pixels at work size
    min_inner_sides: int = 2  # sides away from the image border (a horizon has one)
    max_frame_texture: float = 0.35  # textured share of the picture outside the box
    min_photo_texture: float = 0.25  # textured share inside the box
    bar_std: float = 4.0  # a row or column this flat at the box's rim is a letterbox bar
    max_bar: float = 0.45  # at most this share of the box is trimmed per direction
    # A photo letterboxed into a page's slot (a product on white shown on a white page) has no edge
    # where its white meets the page, but its two letterbox bars are there: dark flat rectangles of
    # one length, side by side (pillar bars) or one above the other, that bound the slot.
    bar_dark: float = 50.0  # grey level under which a pixel may belong to a bar
    bar_fill: float = 0.9  # a bar fills this share of its bounding rectangle
    min_bar_length: float = 0.1  # a bar runs along this share of the picture's side at least
    bar_tolerance: int = 2  # pixels (at work size) by which the two bars' ends may differ
    min_slot_texture: float = 0.1  # textured share between the bars (a product, not a blank slot)
    max_bars: int = 4  # more dark rectangles than this are a pattern (a chessboard), not a letterbox
    # Where neither bars nor edges frame a photo: flat bars of one light grey level (a page's grey slot
    # around a product on white, a step of ~10 grey levels that edge_step does not see).
    bar_level_band: int = 3  # grey levels either side of the level that a flat bar's pixels keep to
    max_bar_levels: int = 3  # the flat pixels' most common levels tried (a 4th found no box in 6,718 photos)


DEFAULT_FRAMING = FramingConfig()


def find_photo_region(rgb: np.ndarray, config: FramingConfig = DEFAULT_FRAMING) -> Region | None:
    """The framed photo's box in ``rgb`` coordinates, or None when ``rgb`` is not a framed photo."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
    full_h, full_w = rgb.shape[:2]
    if min(full_h, full_w) < 2 * config.min_side:
        return None
    scale = min(1.0, config.work_side / max(full_h, full_w))
    gray8 = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        size = (max(1, round(full_w * scale)), max(1, round(full_h * scale)))
        gray8 = cv2.resize(gray8, size, interpolation=cv2.INTER_AREA)
    gray = gray8.astype(np.float32)
    _height, _width = gray.shape
    mean = cv2.blur(gray, (5, 5))
    mean_sq = cv2.blur(gray * gray, (5, 5))
    textured = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0)) > config.texture_std
    if textured.mean() > config.max_texture:
        return None  # the usual case: a photo edge to edge

    between_bars = _bar_bounded_box(gray, textured, config)
    if between_bars is not None:
        x0, y0, x1, y1 = between_bars
    else:
        box = _largest_framed_box(gray, textured, config)
        if box is not None:
            x0, y0, x1, y1 = _trim_bars(gray, box, config)
        else:
            between_flat_bars = _flat_bar_bounded_box(gray, textured, config)
            if between_flat_bars is None:
                return None
            x0, y0, x1, y1 = between_flat_bars
    if min(x1 - x0, y1 - y0) < config.min_side // 2:
        return None
    return Region(
        int(x0 / scale),
        int(y0 / scale),
        min(full_w, int(np.ceil(x1 / scale))),
        min(full_h, int(np.ceil(y1 / scale))),
    )


def crop_region(rgb: np.ndarray, region: Region) -> np.ndarray:
    """The region's pixels as a contiguous copy."""
    return np.ascontiguousarray(rgb[region.y0 : region.y1, region.x0 : region.x1])


def _candidate_lines(edges: np.ndarray, config: FramingConfig, longer: int) -> list[int]:
    """Indices of the rows of ``edges`` that step over enough of their length (local maxima)."""
    sums = edges.sum(axis=1)
    keep = []
    for index in np.nonzero(sums >= config.min_line * longer)[0]:
        lo, hi = max(0, index - 2), min(len(sums), index + 3)
        if sums[index] == sums[lo:hi].max():
            keep.append(int(index))
    keep.sort(key=lambda i: -int(sums[i]))
    return keep[: config.max_lines]


def _largest_framed_box(
    gray: np.ndarray, textured: np.ndarray, config: FramingConfig
) -> tuple[int, int, int, int] | None:
    height, width = gray.shape
    # Line y is the top of row y; it steps when rows y-2 and y differ (tolerates resampling
    # blur). The image border is a line too (a letterbox or a border touching the edge).
    rows = np.zeros((height + 1, width), bool)
    rows[2:height] = np.abs(gray[2:] - gray[:-2]) > config.edge_step
    cols = np.zeros((width + 1, height), bool)
    cols[2:width] = (np.abs(gray[:, 2:] - gray[:, :-2]) > config.edge_step).T
    rows[0] = rows[height] = True
    cols[0] = cols[width] = True
    longer = max(height, width)
    ys = sorted({*_candidate_lines(rows, config, longer), 0, height})
    xs = sorted({*_candidate_lines(cols, config, longer), 0, width})

    # Counts as int32 (exact; the ratios below divide them as float64 all the same).
    row_sums = np.zeros((height + 1, width + 1), np.int32)
    np.cumsum(rows, axis=1, dtype=np.int32, out=row_sums[:, 1:])
    col_sums = np.zeros((width + 1, height + 1), np.int32)
    np.cumsum(cols, axis=1, dtype=np.int32, out=col_sums[:, 1:])
    texture_sums = cv2.integral(textured.view(np.uint8))  # [height + 1, width + 1], zero first row, column
    texture_total = float(texture_sums[-1, -1])
    area_total = float(height * width)

    # Every (top, bottom) pair of lines at once, in the order a loop over them would take:
    # [pair, left, right] arrays instead of hundreds of small numpy calls holding the GIL.
    x = np.array(xs)
    left, right = x[:, None], x[None, :]
    span = np.maximum(right - left, 1)
    margin = max(2, round(0.02 * longer))
    inner_x = (left > margin).astype(int) + (right < width - margin).astype(int)
    y = np.array(ys)
    upper, lower = np.triu_indices(len(y), k=1)
    top, bottom = y[upper], y[lower]
    tall_enough = bottom - top >= config.min_side
    top, bottom = top[tall_enough], bottom[tall_enough]
    if top.size == 0:
        return None
    tall = (bottom - top)[:, None, None]
    area = (span * tall) / area_total
    inner = (
        inner_x
        + (top > margin).astype(int)[:, None, None]
        + (bottom < height - margin).astype(int)[:, None, None]
    )
    ok = (right - left >= config.min_side) & (area >= config.min_area) & (area <= config.max_area)
    ok &= inner >= config.min_inner_sides
    # Each half of each side must step: a box may not run on past the photo's corner.
    middle = (left + right) // 2
    cover = config.edge_coverage
    for line in (top, bottom):
        sums = row_sums[line]  # [pair, width + 1]
        first = (sums[:, middle] - sums[:, left]) / np.maximum(middle - left, 1)
        second = (sums[:, right] - sums[:, middle]) / np.maximum(right - middle, 1)
        ok &= (first >= cover) & (second >= cover)
    half = (top + bottom) // 2
    sides = col_sums[x]  # [x, height + 1]
    side_ok = ((sides[:, half] - sides[:, top]).T / np.maximum(half - top, 1)[:, None] >= cover) & (
        (sides[:, bottom] - sides[:, half]).T / np.maximum(bottom - half, 1)[:, None] >= cover
    )
    ok &= side_ok[:, :, None] & side_ok[:, None, :]
    below, above = texture_sums[bottom], texture_sums[top]  # [pair, width + 1]
    inside = below[:, right] - above[:, right] - below[:, left] + above[:, left]
    outside_area = np.maximum(area_total - span * tall, 1.0)
    ok &= (texture_total - inside) / outside_area <= config.max_frame_texture
    ok &= inside / (span * tall) >= config.min_photo_texture
    if not ok.any():
        return None
    # Crisp sides are better evidence than the image border (a box running to the border takes
    # in page around the photo); then the larger box; the first such box in line order.
    scored = np.where(ok, inner + area, -np.inf)
    pair, i, j = np.unravel_index(int(np.argmax(scored)), scored.shape)
    return xs[i], int(top[pair]), xs[j], int(bottom[pair])


def _bar_bounded_box(
    gray: np.ndarray, textured: np.ndarray, config: FramingConfig
) -> tuple[int, int, int, int] | None:
    """The picture between two letterbox bars (x0, y0, x1, y1 at work size, the bars left out), or
    None: two dark filled rectangles of one length facing each other across a textured picture, the
    slot they bound inside a mostly flat page. The largest such slot counts; none among more than
    max_bars dark rectangles (a chessboard's cells, not a page's two bars)."""
    return _between_bars((gray < config.bar_dark).astype(np.uint8), textured, config)


def _flat_bar_bounded_box(
    gray: np.ndarray, textured: np.ndarray, config: FramingConfig
) -> tuple[int, int, int, int] | None:
    """The picture between two flat letterbox bars of one light grey level (a page's grey photo slot
    around a product on white: the slot's grey meets the photo's white with a step under edge_step),
    as _bar_bounded_box; the levels tried are the flat pixels' most common ones above bar_dark."""
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
        picture = _between_bars(mask.astype(np.uint8), textured, config, trim=True)
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
    bar_mask: np.ndarray, textured: np.ndarray, config: FramingConfig, *, trim: bool = False
) -> tuple[int, int, int, int] | None:
    """The picture between the largest-slot pair of bars among bar_mask's filled rectangles. With
    `trim`, each rectangle first loses the rows and columns at its ends that it half fills or less
    (a product's soft shadow of the bar's grey, touching the bar from inside the picture)."""
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
            if (texture_total - inside) / max(1.0, height * width - area) > config.max_frame_texture:
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


def _trim_bars(
    gray: np.ndarray, box: tuple[int, int, int, int], config: FramingConfig
) -> tuple[int, int, int, int]:
    """Letterbox bars (flat rows or columns at the box's rim) cut off."""
    x0, y0, x1, y1 = box
    limit_y = int((y1 - y0) * config.max_bar)
    limit_x = int((x1 - x0) * config.max_bar)
    # Rows and columns are judged without their ends: a box side may sit a pixel off the rim.
    ex, ey = max(1, (x1 - x0) // 20), max(1, (y1 - y0) // 20)
    top, bottom, left, right = y0, y1, x0, x1
    while top < y0 + limit_y and gray[top, x0 + ex : x1 - ex].std() < config.bar_std:
        top += 1
    while bottom > y1 - limit_y and gray[bottom - 1, x0 + ex : x1 - ex].std() < config.bar_std:
        bottom -= 1
    while left < x0 + limit_x and gray[top + ey : bottom - ey, left].std() < config.bar_std:
        left += 1
    while right > x1 - limit_x and gray[top + ey : bottom - ey, right - 1].std() < config.bar_std:
        right -= 1
    # A bar ends in a crisp edge where the photo starts; a flat sky fading into the picture does
    # not, and is kept.
    height, width = gray.shape
    if top > y0 and not _steps(gray[min(top + 1, height - 1), x0:x1], gray[max(top - 2, 0), x0:x1], config):
        top = y0
    if bottom < y1 and not _steps(
        gray[max(bottom - 2, 0), x0:x1], gray[min(bottom + 1, height - 1), x0:x1], config
    ):
        bottom = y1
    if left > x0 and not _steps(
        gray[top:bottom, min(left + 1, width - 1)], gray[top:bottom, max(left - 2, 0)], config
    ):
        left = x0
    if right < x1 and not _steps(
        gray[top:bottom, max(right - 2, 0)], gray[top:bottom, min(right + 1, width - 1)], config
    ):
        right = x1
    return left, top, right, bottom


def _steps(inside: np.ndarray, outside: np.ndarray, config: FramingConfig) -> bool:
    return bool(inside.size) and float((np.abs(inside - outside) > config.edge_step).mean()) >= 0.5
