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

import cv2
import numpy as np

from imgdup_core.framing_config import DEFAULT_FRAMING, FramingConfig, Region
from imgdup_core.letterbox import bar_bounded_box, flat_bar_bounded_box

__all__ = ["DEFAULT_FRAMING", "FramingConfig", "Region", "crop_region", "find_photo_region"]


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

    between_bars = bar_bounded_box(gray, textured, config)
    if between_bars is not None:
        x0, y0, x1, y1 = between_bars
    else:
        box = _largest_framed_box(gray, textured, config)
        if box is not None:
            x0, y0, x1, y1 = _trim_bars(gray, box, config)
        else:
            between_flat_bars = flat_bar_bounded_box(gray, textured, config)
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
    y = np.array(ys)
    upper, lower = np.triu_indices(len(y), k=1)
    top, bottom = y[upper], y[lower]
    tall_enough = bottom - top >= config.min_side
    top, bottom = top[tall_enough], bottom[tall_enough]
    # Each half of each side must step: a box may not run on past the photo's corner. Both sides' columns
    # first: a (top, bottom) pair with fewer than two columns stepping over both halves bounds no box, and
    # is dropped before the [pair, left, right] arrays are built, and so is a column that steps for no
    # pair (the same boxes on both benchmark pools' 6,500 images; 2.5 against 3.5 ms per image).
    cover = config.edge_coverage
    half = (top + bottom) // 2
    sides = col_sums[x]  # [x, height + 1]
    side_ok = ((sides[:, half] - sides[:, top]).T / np.maximum(half - top, 1)[:, None] >= cover) & (
        (sides[:, bottom] - sides[:, half]).T / np.maximum(bottom - half, 1)[:, None] >= cover
    )
    bounded = side_ok.sum(axis=1) >= 2
    top, bottom, side_ok = top[bounded], bottom[bounded], side_ok[bounded]
    if top.size == 0:
        return None
    stepping = side_ok.any(axis=0)
    x, side_ok = x[stepping], side_ok[:, stepping]
    left, right = x[:, None], x[None, :]
    span = np.maximum(right - left, 1)
    margin = max(2, round(0.02 * longer))
    inner_x = (left > margin).astype(int) + (right < width - margin).astype(int)
    tall = (bottom - top)[:, None, None]
    area = (span * tall) / area_total
    inner = (
        inner_x
        + (top > margin).astype(int)[:, None, None]
        + (bottom < height - margin).astype(int)[:, None, None]
    )
    ok = (right - left >= config.min_side) & (area >= config.min_area) & (area <= config.max_area)
    ok &= inner >= config.min_inner_sides
    middle = (left + right) // 2
    for line in (top, bottom):
        sums = row_sums[line]  # [pair, width + 1]
        first = (sums[:, middle] - sums[:, left]) / np.maximum(middle - left, 1)
        second = (sums[:, right] - sums[:, middle]) / np.maximum(right - middle, 1)
        ok &= (first >= cover) & (second >= cover)
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
    return int(x[i]), int(top[pair]), int(x[j]), int(bottom[pair])


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
