"""A stored RGB copy -> the grey working copies the verifier's SIFT and SSIM run on."""

from __future__ import annotations

import cv2
import numpy as np

from imgdup_core.verifier_config import VerifierConfig

__all__ = ["check_rgb", "fit", "working_gray"]


def check_rgb(rgb: np.ndarray) -> None:
    """Raises ValueError unless rgb is an HxWx3 uint8 array with pixels."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")


def working_gray(rgb: np.ndarray, config: VerifierConfig) -> np.ndarray:
    """The grey copy SIFT runs on: small pictures enlarged to sift_min_side, large ones
    reduced to sift_max_side."""
    check_rgb(rgb)
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if 0 < max(h, w) < config.sift_min_side:
        ratio = config.sift_min_side / max(h, w)
        size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC)
    return fit(gray, config.sift_max_side)


def fit(gray: np.ndarray, max_side: int) -> np.ndarray:
    """gray reduced so that its longer side is at most max_side (never enlarged)."""
    h, w = gray.shape
    if max(h, w) <= max_side:
        return gray
    ratio = max_side / max(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
