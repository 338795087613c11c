"""Tests for imgdup_core.hashing: photos and edited copies in, 64-bit pHashes and distances out."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from core_images import EDITS, mirror
from PIL import Image

from imgdup_core.hashing import hamming64, phash64, phash_distance, phash_pair

DISTINCT = ["astronaut", "coffee", "chelsea", "rocket", "camera", "ihc", "hubble", "retina"]


def test_phash64_is_imagehash_phash_as_signed_bigint(photos: dict[str, np.ndarray]) -> None:
    for name in DISTINCT:
        value = phash64(photos[name])
        reference = int(str(imagehash.phash(Image.fromarray(photos[name]), hash_size=8)), 16)
        assert -(2**63) <= value < 2**63
        assert value % 2**64 == reference


def test_phash_pair_is_the_hash_of_the_image_and_of_its_mirror(photos: dict[str, np.ndarray]) -> None:
    for name in DISTINCT:
        rgb = photos[name]
        assert phash_pair(rgb) == (phash64(rgb), phash64(np.ascontiguousarray(rgb[:, ::-1])))


def test_hamming64_handles_signed_values() -> None:
    assert hamming64(-1, 0) == 64
    assert hamming64(-(2**63), 2**63 - 1) == 64
    assert hamming64(0x0F0F, 0x0F0F) == 0
    assert hamming64(-2, -1) == 1


def test_mirror_is_caught_by_the_mirrored_hash(stored: dict[str, np.ndarray]) -> None:
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        original = phash_pair(stored[name])
        flipped = phash_pair(mirror(stored[name]))
        plain = hamming64(original[0], flipped[0])
        distance, mirrored = phash_distance(original, flipped)
        assert mirrored, name
        assert distance <= 4, (name, distance)
        assert plain >= 16, (name, plain)


@pytest.mark.parametrize("edit", ["resize50", "jpeg40", "brightness130", "contrast140", "watermark"])
def test_mild_edits_stay_close(photos: dict[str, np.ndarray], edit: str) -> None:
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        distance, mirrored = phash_distance(phash_pair(photos[name]), phash_pair(EDITS[edit](photos[name])))
        assert distance <= 8, (name, edit, distance)
        assert not mirrored


def test_distinct_photos_are_far_apart(photos: dict[str, np.ndarray]) -> None:
    pairs = {name: phash_pair(photos[name]) for name in DISTINCT}
    distances = [
        phash_distance(pairs[a], pairs[b])[0] for i, a in enumerate(DISTINCT) for b in DISTINCT[i + 1 :]
    ]
    assert min(distances) >= 16, distances


def test_rejects_non_rgb() -> None:
    with pytest.raises(ValueError):
        phash64(np.zeros((8, 8), np.uint8))


def test_phash_pair_resizes_the_picture_once(
    photos: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 32x32 Lanczos reduction of the whole picture is most of a pHash's cost: the mirrored
    hash reuses the plain one's, mirrored (the same pixels: see the test below)."""
    reductions: list[tuple[int, int]] = []
    original = Image.Image.resize

    def counting(self: Image.Image, size: tuple[int, int], *args: object, **kwargs: object) -> Image.Image:
        if tuple(size) != self.size:
            reductions.append(self.size)
        return original(self, size, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", counting)
    phash_pair(photos["astronaut"])
    assert len(reductions) == 1


def test_phash_pair_mirrored_hash_is_bit_identical_at_any_size(photos: dict[str, np.ndarray]) -> None:
    """Reducing the mirror and mirroring the reduction give the same pixels (Pillow's Lanczos
    weights are symmetric; integer accumulation): checked at 240 sizes from 33 to 1024 px."""
    rng = np.random.default_rng(14)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        for _ in range(60):
            w, h = (int(v) for v in rng.integers(33, 1025, size=2))
            rgb = np.asarray(Image.fromarray(photos[name]).resize((w, h)))
            mirrored = np.ascontiguousarray(rgb[:, ::-1])
            assert phash_pair(rgb) == (phash64(rgb), phash64(mirrored)), (name, w, h)
