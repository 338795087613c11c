"""Decoded images from concurrent events -> one embedder call per micro-batch -> each caller's vectors.

The images agent runs several events at once (`images_concurrency`), each with a few images.
Embedding each event's images separately runs the model on batches of 1-3; ONNX Runtime does
more images per second on larger batches (see bench/results/throughput.md), and one batch at a
time keeps the model's threads from fighting each other for the cores. `EmbeddingBatcher`
collects the images of concurrent callers until `max_batch` images are waiting or `max_wait_ms`
has passed since the first one, runs one `embed` call in the executor, and hands each caller
its own rows. While a batch runs, new callers queue up, so under load the batches grow by
themselves; an idle pipeline waits at most `max_wait_ms` extra.

`analyse_with_batcher` is `imgdup.analysis.analyse.analyse_images` split around that call: decode
and hashing still run per event in the executor; only the model call is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from imgdup.analysis.analyse import (
    DEFAULT_SIFT_CONFIG,
    AnalysedImage,
    FramedImage,
    decode_all,
    embedding_inputs,
    finish_analysis,
    image_inputs,
    merge_single_embeddings,
)
from imgdup_core.decode import DEFAULT_MAX_BYTES, ImageRejected
from imgdup_core.verifier_config import VerifierConfig

__all__ = ["BatchStats", "EmbeddingBatcher", "analyse_with_batcher"]

log = logging.getLogger(__name__)
T = TypeVar("T")
FloatArray = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[np.ndarray]], np.ndarray]


class RunCpu(Protocol):
    """Runs a blocking function off the event loop (`streams.runtime.Runtime.run_cpu`)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


@dataclass
class _Request:
    images: Sequence[np.ndarray]
    future: asyncio.Future[FloatArray]


@dataclass
class BatchStats:
    """Counters for tests and metrics: batches run, images embedded, callers served."""

    batches: int = 0
    images: int = 0
    requests: int = 0
    sizes: list[int] = field(default_factory=list)  # images per batch, most recent last (<= 1000)

    def record(self, images: int, requests: int) -> None:
        self.batches += 1
        self.images += images
        self.requests += requests
        self.sizes.append(images)
        del self.sizes[:-1000]


class EmbeddingBatcher:
    """Shares embedder calls between concurrent callers (all on one event loop).

    embed: the blocking model call, [images] -> [n, dim] float32 rows in input order.
    executor: where it runs (the runtime's CPU pool); None = the loop's default executor.
    max_batch: images per call at most (a single caller with more gets one call of its own).
    max_wait_ms: how long the first waiting image may wait for company when nothing is running.
    on_batch: called after each call with (images, callers, seconds), e.g. to observe metrics.
    """

    def __init__(
        self,
        embed: EmbedFn,
        *,
        executor: Executor | None = None,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self._embed = embed
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._on_batch = on_batch
        self._queue: list[_Request] = []
        self._waiting_images = 0
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = BatchStats()

    async def embed(self, images: Sequence[np.ndarray]) -> FloatArray:
        """This caller's images -> their [n, dim] rows, embedded together with other callers'."""
        if self._closed:
            raise RuntimeError("EmbeddingBatcher is closed")
        loop = asyncio.get_running_loop()
        if len(images) == 0:
            return np.asarray(await loop.run_in_executor(self._executor, self._embed, []), dtype=np.float32)
        request = _Request(list(images), loop.create_future())
        self._queue.append(request)
        self._waiting_images += len(images)
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        self._wakeup.set()
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name="imgdup-embedding-batcher")
        return await request.future

    async def close(self) -> None:
        """Finish the queued work, then refuse new callers."""
        self._closed = True
        if self._runner is not None:
            if self._wakeup is not None:
                self._wakeup.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        assert self._wakeup is not None
        while self._queue:
            if self._waiting_images < self.max_batch and self.max_wait > 0 and not self._closed:
                # Nothing is running: give concurrent callers a moment to join this batch.
                deadline = time.monotonic() + self.max_wait
                while self._waiting_images < self.max_batch and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
            batch = self._take()
            if batch:
                await self._run_batch(batch)

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # its caller was cancelled
                self._queue.pop(0)
                self._waiting_images -= len(head.images)
                continue
            if batch and size + len(head.images) > self.max_batch:
                break
            self._queue.pop(0)
            self._waiting_images -= len(head.images)
            batch.append(head)
            size += len(head.images)
        return batch

    async def _run_batch(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        images = [image for request in batch for image in request.images]
        started = time.perf_counter()
        try:
            vectors = await loop.run_in_executor(self._executor, self._embed, images)
            if len(vectors) != len(images):
                raise RuntimeError(f"embedder returned {len(vectors)} rows for {len(images)} images")
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, exc)
                return
            # One caller's bad input must not fail the others: run each alone.
            log.warning("batched embedding of %d callers failed (%s); retrying one by one", len(batch), exc)
            for request in batch:
                await self._run_batch([request])
            return
        elapsed = time.perf_counter() - started
        self.stats.record(len(images), len(batch))
        if self._on_batch is not None:
            self._on_batch(len(images), len(batch), elapsed)
        rows = np.asarray(vectors, dtype=np.float32)
        offset = 0
        for request in batch:
            n = len(request.images)
            _settle(request.future, rows[offset : offset + n])
            offset += n


def _settle(future: asyncio.Future[FloatArray], outcome: FloatArray | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def analyse_with_batcher(
    blobs: Sequence[bytes],
    batcher: EmbeddingBatcher,
    run_cpu: RunCpu,
    *,
    max_pixels: int,
    max_side: int = 1024,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sift_config: VerifierConfig = DEFAULT_SIFT_CONFIG,
) -> list[AnalysedImage | ImageRejected]:
    """Same result as `analyse_images(blobs, embedder, max_pixels=...)`, the model call shared.

    run_cpu: runs a blocking function off the event loop (`Runtime.run_cpu`).
    max_bytes: what decoding one image may hold at peak (imgdup_core.decode_budget).
    max_side: longest side of the decoded array. Nothing downstream uses more than 512 px (the
    stored copy is 512, SSCD reads 320, pHash 32), and 512 lets libjpeg decode camera photos at
    1/4 or 1/8 scale: 125 -> 40 CPU ms for a 12 MP JPEG (decode, pHash, storage copy, SSCD
    resize). It changes pixel_sha256 and, slightly, pHash of images larger than 512 px, so
    switch it with a new embedding/verifier version, not silently.
    """

    decoded = await run_cpu(
        lambda: decode_all(blobs, max_pixels=max_pixels, max_side=max_side, max_bytes=max_bytes)
    )
    outcomes, vectors = await _embed_isolated(decoded, batcher)
    return await run_cpu(lambda: finish_analysis(outcomes, vectors, sift_config))


async def _embed_isolated(
    outcomes: Sequence[FramedImage | ImageRejected], batcher: EmbeddingBatcher
) -> tuple[list[FramedImage | ImageRejected], list[np.ndarray]]:
    """`imgdup.analysis.analyse.embed_isolated` through the batcher: one call for the caller's
    images; when it raises, one call per image, so that one bad input fails only its image."""
    inputs = embedding_inputs(outcomes)
    if not inputs:
        return list(outcomes), []
    try:
        return list(outcomes), list(await batcher.embed(inputs))
    except Exception as exc:
        log.warning("embedding %d inputs failed (%s); embedding each image alone", len(inputs), exc)
    singles: dict[int, np.ndarray | Exception] = {}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, FramedImage):
            try:
                singles[index] = await batcher.embed(image_inputs(outcome))
            except Exception as exc:
                singles[index] = exc
    return merge_single_embeddings(outcomes, singles)
