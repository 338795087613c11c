"""Two pictures aligned by a homography (imgdup_core.slot.AlignedMaps) -> the share of their textured
overlap that disagrees in place but agrees once displaced locally: two views of one scene, not a copy."""

from __future__ import annotations

import cv2
import numpy as np

from imgdup_core.slot import AlignedMaps
from imgdup_core.ssim import ssim_map

__all__ = ["MIN_SHIFT_PX", "moved_share"]

# A pixel counts as moved when the local displacement that matches it exceeds this (at SSIM size,
# <= 384 px): a copy aligned by its homography is off by about a pixel at most (measured on the broad pool's
# aligned copies: median flow 0.1-1.1 px), two stereo views or two frames of one video by 2-6 px.
MIN_SHIFT_PX = 1.0


def _flow(maps: AlignedMaps) -> np.ndarray:
    """Dense optical flow from a to b-warped-onto-a (DIS, OpenCV's fast preset): where each pixel of a
    is found in the warped b."""
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    a = np.clip(maps.ref_a, 0, 255).astype(np.uint8)
    b = np.clip(maps.warped_b, 0, 255).astype(np.uint8)
    flow = np.zeros((*a.shape, 2), np.float32)  # not read: DIS starts from no initial flow by default
    return np.asarray(dis.calc(a, b, flow), dtype=np.float32)


def moved_share(maps: AlignedMaps) -> float:
    """The share of the overlap textured on both sides whose pixels disagree in place (SSIM under
    maps.mismatch_ssim) and agree (SSIM at least that) once b is displaced by the local optical flow, by
    more than MIN_SHIFT_PX. A plain copy or an edited one disagrees only where an edit added or removed
    something (text, a sticker), which no displacement explains: ~0 (broad pool: 95 % of the measured
    copies under 0.15). Two views of one scene (a stereo pair, frames of one video, a burst of shots of one
    car) align on one plane and disagree wherever depth or motion moves things (stereo views' median 0.34,
    frames of one video 0.21)."""
    region = maps.valid & maps.textured_a & maps.textured_b
    total = int(region.sum())
    if total == 0:
        return 0.0
    flow = _flow(maps)
    height, width = maps.ref_a.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    displaced = cv2.remap(
        maps.warped_b, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    agrees_displaced = ssim_map(maps.ref_a, displaced) >= maps.mismatch_ssim
    shift = np.hypot(flow[..., 0], flow[..., 1]) > MIN_SHIFT_PX
    moved = region & (maps.ssim_map < maps.mismatch_ssim) & agrees_displaced & shift
    return round(float(moved.sum()) / total, 4)
