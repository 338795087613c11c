"""imgdup_core.similarity.ssim_map against scikit-image's structural_similarity, on real photos: the
verifier's per-pixel SSIM, computed with OpenCV's window sums, is the reference map within float32
summation noise, and the scores made from it are the same to the four decimals evidence keeps."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from imgdup_core.similarity import ssim_map


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _reference(a: np.ndarray, b: np.ndarray) -> Any:
    return structural_similarity(
        a, b, data_range=255.0, full=True, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )[1]


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    astronaut = _grey(data.astronaut())[::2, ::2].copy()
    coffee = _grey(data.coffee())[::2, ::2].copy()
    shifted = np.roll(astronaut, 3, axis=1)
    brighter = np.clip(coffee * 1.2 + 15, 0, 255).astype(np.float32)
    sky = np.tile(np.linspace(90, 200, 240, dtype=np.float32)[:, None], (1, 320))  # smooth, nearly flat
    noisy_sky = np.clip(sky + np.random.default_rng(7).normal(0, 2, sky.shape), 0, 255).astype(np.float32)
    return [
        ("same photo", astronaut, astronaut),
        ("copy three pixels off", astronaut, shifted),
        ("brighter copy", coffee, brighter),
        ("different photos", astronaut[:200, :256], coffee[:200, :256]),
        ("flat sky and its noisy copy", sky, noisy_sky),
        ("odd size", astronaut[:37, :61], shifted[:37, :61]),
    ]


@pytest.mark.parametrize(("a", "b"), [p[1:] for p in _pairs()], ids=[p[0] for p in _pairs()])
def test_ssim_map_is_scikit_images_within_float32_noise(a: np.ndarray, b: np.ndarray) -> None:
    ours, reference = ssim_map(a, b), _reference(a, b)

    assert ours.dtype == np.float32 and ours.shape == reference.shape
    assert float(np.abs(ours - reference).max()) < 1e-3
    assert round(float(ours.mean()), 4) == round(float(reference.mean()), 4)
    assert float(np.mean((ours < 0.5) != (reference < 0.5))) < 1e-4  # the mismatch share's threshold


def test_ssim_map_tells_a_copy_from_a_different_photo() -> None:
    astronaut = _grey(data.astronaut())[::2, ::2].copy()
    coffee = _grey(data.coffee())[:256, :256].copy()

    assert float(ssim_map(astronaut, astronaut).min()) > 0.999
    assert float(ssim_map(astronaut, coffee).mean()) < 0.3


def test_a_picture_narrower_than_the_window_still_has_a_map() -> None:
    """scikit-image refuses pictures under its 11-px window; the verifier compares any overlap of 7 px
    or more (aligned_ssim), so a thin banner's pair is measured instead of failing."""
    strip = _grey(data.astronaut())[100:108, 50:250].copy()
    with pytest.raises(ValueError):
        _reference(strip, strip)

    same = ssim_map(strip, strip)

    assert same.shape == strip.shape and bool(np.isfinite(same).all()) and float(same.min()) > 0.999
