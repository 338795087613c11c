"""Consumes imgdup.analysis (decode_all, analyse_images, analyse_with_batcher) and Settings: the decode
caps reach the decoder, and an image over the memory budget comes back as a rejection in place."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pytest
from PIL import Image

from imgdup.analysis.analyse import FramedImage, analyse_images, decode_all
from imgdup.analysis.batching import EmbeddingBatcher, analyse_with_batcher
from imgdup.settings import Settings
from imgdup_core.decode import DEFAULT_MAX_BYTES, ImageRejected

T = TypeVar("T")


def _png(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "#7a5").save(buffer, "PNG")
    return buffer.getvalue()


class _Embedder:
    name = "fake"
    version = "1"
    dim = 2

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([[1.0, 0.0] for _ in images], dtype=np.float32).reshape(-1, 2)


BLOBS = [_png("RGB", (640, 480)), _png("RGBA", (640, 480))]
# Fits the RGB image (no conversion), not the RGBA one (decoded + RGB copy + strips).
BUDGET = 4 * 1024 * 1024


def test_decode_all_applies_the_memory_budget_per_image() -> None:
    plain, transparent = decode_all(BLOBS, max_pixels=40_000_000, max_bytes=BUDGET)
    assert isinstance(plain, FramedImage)
    assert isinstance(transparent, ImageRejected) and transparent.reason == "too_much_memory"
    assert all(isinstance(o, FramedImage) for o in decode_all(BLOBS, max_pixels=40_000_000))


def test_analyse_images_applies_the_memory_budget() -> None:
    rows = analyse_images(BLOBS, _Embedder(), max_pixels=40_000_000, max_bytes=BUDGET)
    assert not isinstance(rows[0], ImageRejected)
    assert isinstance(rows[1], ImageRejected) and rows[1].reason == "too_much_memory"


async def test_analyse_with_batcher_applies_the_memory_budget() -> None:
    with ThreadPoolExecutor(1) as pool:
        batcher = EmbeddingBatcher(_Embedder().embed, executor=pool)
        loop = asyncio.get_running_loop()

        async def run_cpu(fn: Callable[[], T]) -> T:
            return await loop.run_in_executor(pool, fn)

        rows = await analyse_with_batcher(BLOBS, batcher, run_cpu, max_pixels=40_000_000, max_bytes=BUDGET)
    assert not isinstance(rows[0], ImageRejected)
    assert isinstance(rows[1], ImageRejected) and rows[1].reason == "too_much_memory"


def test_the_budget_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGDUP_DECODE_MAX_BYTES", raising=False)
    assert Settings().decode_max_bytes == DEFAULT_MAX_BYTES
    monkeypatch.setenv("IMGDUP_DECODE_MAX_BYTES", str(BUDGET))
    assert Settings().decode_max_bytes == BUDGET
    monkeypatch.setenv("IMGDUP_DECODE_MAX_BYTES", "0")
    with pytest.raises(ValueError, match="decode_max_bytes"):
        Settings()
