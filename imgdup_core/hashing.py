"""HxWx3 uint8 RGB arrays in, 64-bit perceptual hashes (signed, Postgres-bigint-safe) out."""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

__all__ = ["PHASH_CANDIDATE_DISTANCE", "hamming64", "phash64", "phash_distance", "phash_gray", "phash_pair"]

# The pHash candidate channel (fused-v5, issue 11) proposes pairs this close whatever their
# embedding cosine: a heavy tiled watermark drops SSCD's cosine to the original to 0.01-0.34
# while pHash stays within 8 for 52 of 58 such copies (different photos under the same
# watermark are 22-36 apart).
PHASH_CANDIDATE_DISTANCE = 8

_MASK64 = (1 << 64) - 1
# imagehash.phash's working picture: hash_size 8 x highfreq_factor 4.
_PHASH_SIDE = 32
_SIGN_BIT = 1 << 63


def phash64(rgb: np.ndarray) -> int:
    """imagehash.phash (hash_size 8) packed MSB-first, as a signed 64-bit integer."""
    return _phash_of_gray(_gray(rgb))


def phash_pair(rgb: np.ndarray) -> tuple[int, int]:
    """(phash of the image, phash of its horizontal mirror).

    imagehash converts to grey first, and grey of the mirror is the mirror of grey pixel for
    pixel, so one conversion serves both (the same hashes: checked on 2,408 photos). It then
    reduces the grey picture to 32x32 (Lanczos), most of a hash's cost; the reduction of the
    mirror is the mirror of the reduction (symmetric weights, integer sums: the same pixels at
    240 sizes, tests/core/test_core_hashing.py), so the picture is reduced once. imagehash
    given a 32x32 picture reduces nothing (Pillow copies an image resized to its own size)."""
    small = _gray(rgb).resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.LANCZOS)
    return _phash_of_gray(small), _phash_of_gray(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def phash_gray(gray: np.ndarray) -> int:
    """phash64 of a grey picture (any real dtype, 0..255), e.g. a part of a working copy."""
    pixels = np.clip(np.asarray(gray, dtype=np.float64), 0.0, 255.0).round().astype(np.uint8)
    return _phash_of_gray(Image.fromarray(np.ascontiguousarray(pixels), "L"))


def _gray(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(_as_rgb(rgb), "RGB").convert("L")


def _phash_of_gray(gray: Image.Image) -> int:
    bits = imagehash.phash(gray, hash_size=8).hash
    value = 0
    for bit in np.asarray(bits, dtype=bool).ravel():
        value = (value << 1) | int(bit)
    # Two's complement so the value fits a signed bigint column unchanged.
    return value - (1 << 64) if value & _SIGN_BIT else value


def hamming64(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & _MASK64).bit_count()


def phash_distance(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, bool]:
    """Smallest distance of a's plain hash to b's plain or mirrored hash; True if mirrored won."""
    plain = hamming64(a[0], b[0])
    mirrored = hamming64(a[0], b[1])
    if mirrored < plain:
        return mirrored, True
    return plain, False


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)
