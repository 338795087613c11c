"""Session fixtures for the imgdup_core tests: bundled scikit-image photos, stored copies, SSCD."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest
from core_images import EDITED_BASES, EDITS, pipeline_copy
from skimage import data

from imgdup_core.embedding import SscdOnnxEmbedder


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    left, right, _ = data.stereo_motorcycle()
    return {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "camera": np.repeat(data.camera()[:, :, None], 3, axis=2),
        "ihc": data.immunohistochemistry(),
        "hubble": data.hubble_deep_field(),
        "retina": data.retina(),
        "moto_left": left,
        "moto_right": right,
        # Flat and low-texture (issue 11): SIFT at the default contrast finds ~90 keypoints.
        "moon": np.repeat(data.moon()[:, :, None], 3, axis=2),
        # Motion-blurred (issue 11): 4 keypoints at the default contrast as a 160-pixel thumbnail.
        "clock": np.repeat(data.clock()[:, :, None], 3, axis=2),
    }


@pytest.fixture(scope="session")
def stored(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every photo as the pipeline stores it."""
    return {name: pipeline_copy(rgb) for name, rgb in photos.items()}


@pytest.fixture(scope="session")
def edited(photos: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """Stored copies of every edit of the four base photos, keyed (photo, edit)."""
    return {
        (name, edit): pipeline_copy(apply(photos[name]))
        for name in EDITED_BASES
        for edit, apply in EDITS.items()
    }


@pytest.fixture(scope="session")
def sscd() -> SscdOnnxEmbedder:
    return SscdOnnxEmbedder("sscd")


@pytest.fixture(scope="session")
def sscd_distilled() -> SscdOnnxEmbedder:
    return SscdOnnxEmbedder("sscd_distilled")


@pytest.fixture(scope="session")
def sscd_vector(
    sscd: SscdOnnxEmbedder,
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
) -> Callable[[np.ndarray], np.ndarray]:
    """SSCD vector of an array; the stored and edited copies are embedded once, in batches."""

    def key(rgb: np.ndarray) -> bytes:
        return hashlib.sha256(rgb.tobytes()).digest() + str(rgb.shape).encode()

    known = [*stored.values(), *edited.values()]
    cache = dict(zip(map(key, known), sscd.embed(known), strict=True))

    def vector(rgb: np.ndarray) -> np.ndarray:
        if key(rgb) not in cache:
            cache[key(rgb)] = sscd.embed([rgb])[0]
        return cache[key(rgb)]

    return vector


@pytest.fixture(scope="session")
def cosine(sscd_vector: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], float]:
    def cosine_of(a: np.ndarray, b: np.ndarray) -> float:
        return float(sscd_vector(a) @ sscd_vector(b))

    return cosine_of
