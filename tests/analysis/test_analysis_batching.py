"""Consumes imgdup.analysis.batching: concurrent callers share embedder calls and each gets its own rows."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import skimage
from PIL import Image

from imgdup.analysis import analyse as analyse_module
from imgdup.analysis.analyse import AnalysedImage, analyse_images
from imgdup.analysis.batching import EmbeddingBatcher, analyse_with_batcher
from imgdup_core.decode import ImageRejected, load_rgb
from imgdup_core.verify import extract_sift, sift_from_bytes

T = TypeVar("T")


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.uint8)


class FakeModel:
    """Row i = [pixel value of image i, batch number]; can be held to force queueing."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.release.set()

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.entered.set()
        self.release.wait(10)
        if any(int(im[0, 0, 0]) == 255 for im in images):
            raise ValueError("bad image")
        self.calls.append(len(images))
        batch = len(self.calls)
        return np.array([[float(im[0, 0, 0]), float(batch)] for im in images], dtype=np.float32).reshape(
            -1, 2
        )


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


async def test_concurrent_callers_share_calls_and_get_their_own_rows(pool: ThreadPoolExecutor) -> None:
    model = FakeModel(hold_first=True)
    batcher = EmbeddingBatcher(model.embed, executor=pool, max_batch=8, max_wait_ms=0)
    first = asyncio.create_task(batcher.embed([image(1)]))
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    # The model is busy with the first call: these five callers queue up meanwhile.
    others = [asyncio.create_task(batcher.embed([image(10 + i), image(20 + i)])) for i in range(5)]
    await asyncio.sleep(0)
    model.release.set()
    assert (await first)[:, 0].tolist() == [1.0]
    results = await asyncio.gather(*others)
    for i, rows in enumerate(results):
        assert rows[:, 0].tolist() == [10.0 + i, 20.0 + i]
    # 1 + 10 images in 1 + 2 calls: the queued callers were batched, never above max_batch.
    assert model.calls == [1, 8, 2]
    assert batcher.stats.batches == 3 and batcher.stats.images == 11 and batcher.stats.requests == 6
    await batcher.close()


async def test_a_caller_larger_than_max_batch_gets_one_call(pool: ThreadPoolExecutor) -> None:
    model = FakeModel()
    batcher = EmbeddingBatcher(model.embed, executor=pool, max_batch=2, max_wait_ms=1)
    rows = await batcher.embed([image(v) for v in range(5)])
    assert rows[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert model.calls == [5]
    empty = await batcher.embed([])
    assert empty.shape[0] == 0


async def test_wait_lets_concurrent_callers_join(pool: ThreadPoolExecutor) -> None:
    model = FakeModel()
    # A long wait that ends early once max_batch images are waiting.
    batcher = EmbeddingBatcher(model.embed, executor=pool, max_batch=4, max_wait_ms=60_000)
    results = await asyncio.gather(*(batcher.embed([image(v)]) for v in range(4)))
    assert [r[0, 0] for r in results] == [0.0, 1.0, 2.0, 3.0]
    assert model.calls == [4]
    assert {float(r[0, 1]) for r in results} == {1.0}


async def test_one_bad_caller_does_not_fail_the_others(pool: ThreadPoolExecutor) -> None:
    model = FakeModel(hold_first=True)
    batcher = EmbeddingBatcher(model.embed, executor=pool, max_batch=16, max_wait_ms=0)
    first = asyncio.create_task(batcher.embed([image(1)]))
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    good = asyncio.create_task(batcher.embed([image(2)]))
    bad = asyncio.create_task(batcher.embed([image(255)]))
    also_good = asyncio.create_task(batcher.embed([image(3)]))
    await asyncio.sleep(0)
    model.release.set()
    await first
    assert (await good)[0, 0] == 2.0
    assert (await also_good)[0, 0] == 3.0
    with pytest.raises(ValueError, match="bad image"):
        await bad


async def test_a_cancelled_caller_is_skipped(pool: ThreadPoolExecutor) -> None:
    model = FakeModel(hold_first=True)
    batcher = EmbeddingBatcher(model.embed, executor=pool, max_batch=16, max_wait_ms=0)
    first = asyncio.create_task(batcher.embed([image(1)]))
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    gone = asyncio.create_task(batcher.embed([image(7)]))
    kept = asyncio.create_task(batcher.embed([image(8)]))
    await asyncio.sleep(0)
    gone.cancel()
    model.release.set()
    await first
    assert (await kept)[:, 0].tolist() == [8.0]
    assert model.calls == [1, 1]
    await batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.embed([image(1)])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        EmbeddingBatcher(FakeModel().embed, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        EmbeddingBatcher(FakeModel().embed, max_wait_ms=-1)


class MeanEmbedder:
    name = "mean"
    version = "mean@1"
    dim = 3

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        rows = np.array([im.reshape(-1, 3).mean(axis=0) + 1.0 for im in images], dtype=np.float32)
        out: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return out


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


async def test_analyse_with_batcher_equals_analyse_images(pool: ThreadPoolExecutor) -> None:
    photos = Path(skimage.__file__).parent / "data"
    astronaut = np.asarray(Image.open(photos / "astronaut.png").convert("RGB"))
    coffee = np.asarray(Image.open(photos / "coffee.png").convert("RGB"))
    # A screenshot framing the coffee photo: its photo is embedded and stored as well.
    page = np.full((700, 520, 3), 245, np.uint8)
    page[150:550, 10:510] = coffee[:400, :500]
    page[40:60, 20:300] = 60  # a title bar
    blobs = [jpeg(astronaut), b"not an image", jpeg(coffee), jpeg(page)]
    embedder = MeanEmbedder()
    expected = analyse_images(blobs, embedder, max_pixels=40_000_000)
    batcher = EmbeddingBatcher(embedder.embed, executor=pool)
    loop = asyncio.get_running_loop()

    async def run_cpu(fn: Callable[[], T]) -> T:
        return await loop.run_in_executor(pool, fn)

    got = await analyse_with_batcher(blobs, batcher, run_cpu, max_pixels=40_000_000)
    assert len(got) == len(expected)
    assert isinstance(got[1], ImageRejected) and isinstance(expected[1], ImageRejected)
    assert got[1].reason == expected[1].reason
    for a, b in ((got[0], expected[0]), (got[2], expected[2]), (got[3], expected[3])):
        assert not isinstance(a, ImageRejected) and not isinstance(b, ImageRejected)
        assert a.phash == b.phash and a.pixel_sha256 == b.pixel_sha256 and a.jpeg == b.jpeg
        np.testing.assert_allclose(a.vector, b.vector, rtol=1e-6)
        assert a.region == b.region and a.photo_jpeg == b.photo_jpeg
        assert a.sift == b.sift and a.photo_sift == b.photo_sift
    await batcher.close()
    ordinary, shot = got[0], got[3]
    assert not isinstance(ordinary, ImageRejected) and not isinstance(shot, ImageRejected)
    assert ordinary.region is None and ordinary.photo_vector is None and ordinary.photo_jpeg is None
    assert shot.region is not None and shot.photo_vector is not None and shot.photo_jpeg is not None
    # The stored SIFT features are those of the stored copies, as the verifier decodes them.
    for stored_jpeg, stored_sift in ((ordinary.jpeg, ordinary.sift), (shot.photo_jpeg, shot.photo_sift)):
        assert stored_sift is not None
        features = sift_from_bytes(stored_sift)
        assert features is not None and len(features.points) > 50
        np.testing.assert_array_equal(features.descriptors, extract_sift(load_rgb(stored_jpeg)).descriptors)
    assert ordinary.photo_sift is None
    assert abs(shot.region.x0 - 10) <= 3 and abs(shot.region.y0 - 150) <= 3
    assert abs(shot.region.x1 - 510) <= 3 and abs(shot.region.y1 - 550) <= 3
    # Each vector belongs to its own picture: the photo's is the coffee crop's mean colour.
    crop = page[shot.region.y0 : shot.region.y1, shot.region.x0 : shot.region.x1]
    np.testing.assert_allclose(shot.photo_vector, MeanEmbedder().embed([crop])[0], atol=0.02)
    assert np.abs(shot.vector - shot.photo_vector).max() > 0.005


def _is_red(im: np.ndarray) -> bool:
    return bool(im[..., 0].mean() > 200 and im[..., 1].mean() < 50 and im[..., 2].mean() < 50)


class RedIntolerantEmbedder(MeanEmbedder):
    """Raises on any batch holding an all-red picture, as a model might on one odd input."""

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if any(_is_red(im) for im in images):
            raise RuntimeError("the model fell over on one input")
        return super().embed(images)


def _three_photos() -> list[bytes]:
    photos = Path(skimage.__file__).parent / "data"
    astronaut = np.asarray(Image.open(photos / "astronaut.png").convert("RGB"))
    coffee = np.asarray(Image.open(photos / "coffee.png").convert("RGB"))
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    return [jpeg(astronaut), jpeg(red), jpeg(coffee)]


def _only_the_middle_one_failed(got: list[AnalysedImage | ImageRejected], reason: str) -> None:
    blobs = _three_photos()
    alone = [analyse_images([blobs[i]], MeanEmbedder(), max_pixels=40_000_000)[0] for i in (0, 2)]
    rejected = got[1]
    assert isinstance(rejected, ImageRejected) and rejected.reason == reason, rejected
    assert "RuntimeError" in rejected.detail
    for mine, reference in zip((got[0], got[2]), alone, strict=True):
        assert isinstance(mine, AnalysedImage) and isinstance(reference, AnalysedImage)
        np.testing.assert_allclose(mine.vector, reference.vector, rtol=1e-6)
        assert mine.jpeg == reference.jpeg


def test_a_model_failure_on_one_image_rejects_only_that_image() -> None:
    got = analyse_images(_three_photos(), RedIntolerantEmbedder(), max_pixels=40_000_000)
    _only_the_middle_one_failed(got, "embed_error")


async def test_a_model_failure_on_one_image_rejects_only_that_image_when_batched(
    pool: ThreadPoolExecutor,
) -> None:
    batcher = EmbeddingBatcher(RedIntolerantEmbedder().embed, executor=pool)
    loop = asyncio.get_running_loop()

    async def run_cpu(fn: Callable[[], T]) -> T:
        return await loop.run_in_executor(pool, fn)

    got = await analyse_with_batcher(_three_photos(), batcher, run_cpu, max_pixels=40_000_000)
    await batcher.close()
    _only_the_middle_one_failed(got, "embed_error")


@pytest.mark.parametrize("step", ["find_photo_region", "phash_pair", "stored_copy"])
def test_an_exception_in_one_image_s_analysis_rejects_only_that_image(
    monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    original = getattr(analyse_module, step)

    def fragile(rgb: np.ndarray, *args: object, **kwargs: object) -> object:
        if _is_red(rgb):
            raise RuntimeError(f"{step} broke on one image")
        return original(rgb, *args, **kwargs)

    monkeypatch.setattr(analyse_module, step, fragile)
    got = analyse_images(_three_photos(), MeanEmbedder(), max_pixels=40_000_000)
    _only_the_middle_one_failed(got, "analysis_error")


def test_stored_features_are_made_with_the_running_verifiers_settings() -> None:
    """A verifier with other SIFT settings (fused-v6's low-texture pass) cannot use features made
    with fused-v3's: it extracted both images' again for every pair (2x CPU per image measured,
    bench/results/throughput-fused-v6-vs-v3.md). Analysing with its config stores usable ones."""
    from imgdup_core.verifier_config import DEFAULT_VERIFIER, FUSED_V6

    blobs = _three_photos()
    as_v3 = [
        a
        for a in analyse_images(blobs, MeanEmbedder(), max_pixels=40_000_000)
        if isinstance(a, AnalysedImage)
    ]
    as_v6 = [
        a
        for a in analyse_images(blobs, MeanEmbedder(), max_pixels=40_000_000, sift_config=FUSED_V6)
        if isinstance(a, AnalysedImage)
    ]
    assert as_v3 and len(as_v3) == len(as_v6)
    for v3, v6 in zip(as_v3, as_v6, strict=True):
        assert v3.sift is not None and v6.sift is not None
        assert sift_from_bytes(v3.sift, FUSED_V6) is None  # unusable: re-extracted per pair
        usable = sift_from_bytes(v6.sift, FUSED_V6)
        assert usable is not None
        expected = extract_sift(load_rgb(v6.jpeg), FUSED_V6)
        assert np.array_equal(usable.descriptors, expected.descriptors)
        # The default's stored features are unchanged.
        assert sift_from_bytes(v3.sift, DEFAULT_VERIFIER) is not None
