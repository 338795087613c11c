"""Settings -> the worker's shared resources (DB pool, HTTP client, thread pool, embedder, vector store)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import psycopg
import psycopg_pool

from imgdup import metrics
from imgdup.analysis.batching import EmbeddingBatcher
from imgdup.analysis.fetch import FetchPolicy
from imgdup.settings import Settings
from imgdup.store.db import open_pool
from imgdup.vectors.base import VectorStore
from imgdup.vectors.factory import open_vector_store
from imgdup_core.embedding import Embedder, build_embedder

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that say "the database or network is briefly unavailable", never "this message is bad".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    ConnectionError,
)


@dataclass
class Runtime:
    settings: Settings
    pool: psycopg_pool.AsyncConnectionPool
    http: httpx.AsyncClient
    # CPU-heavy work (decode, hashing, embedding, SIFT) runs here, never on the event loop.
    cpu: ThreadPoolExecutor
    fetch_policy: FetchPolicy
    # The model's own thread: one batch at a time, so its ONNX threads never compete with each
    # other; decoding, hashing and SIFT stay in `cpu`.
    model: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="imgdup-model")
    )
    _batcher: EmbeddingBatcher | None = None
    _embedder: Embedder | None = None
    _store: VectorStore | None = None
    _init_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def embedder(self) -> Embedder:
        async with self._init_lock:
            if self._embedder is None:
                options = (
                    {"model_name_or_path": self.settings.clip_model_path}
                    if (self.settings.embedder == "clip")
                    else {"intra_op_threads": self.settings.embed_threads, "allow_spinning": False}
                )
                self._embedder = await asyncio.get_running_loop().run_in_executor(
                    self.cpu, lambda: build_embedder(self.settings.embedder, **options)
                )
            return self._embedder

    async def batcher(self) -> EmbeddingBatcher:
        embedder = await self.embedder()
        async with self._init_lock:
            if self._batcher is None:
                self._batcher = EmbeddingBatcher(
                    embedder.embed,
                    executor=self.model,
                    max_batch=self.settings.embed_max_batch,
                    max_wait_ms=self.settings.embed_max_wait_ms,
                    on_batch=lambda images, _callers, _s: metrics.EMBED_BATCH_IMAGES.observe(images),
                )
            return self._batcher

    async def store(self) -> VectorStore:
        embedder = await self.embedder()
        async with self._init_lock:
            if self._store is None:
                self._store = open_vector_store(self.settings, embedder)
            return self._store

    async def run_cpu(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn)

    async def close(self) -> None:
        await self.http.aclose()
        await self.pool.close()
        if self._batcher is not None:
            await self._batcher.close()
        if self._store is not None:
            self._store.close()
        self.cpu.shutdown(wait=True)
        self.model.shutdown(wait=True)


_runtime: Runtime | None = None
_runtime_lock = asyncio.Lock()


def single_threaded_kernels() -> None:
    """OpenCV and OpenBLAS calls run one thread each in a worker process.

    The worker already runs `cpu_threads` CPU steps side by side (decode, frame finding, SIFT,
    matching); when each OpenCV or OpenBLAS call also fanned out over every core, their helper
    threads spun waiting for work and cost CPU without adding throughput (measured on 2 cores:
    SIFT extraction 52 -> 39 CPU ms per image, frame finding 36 -> 24, the same wall time). ONNX
    Runtime keeps its own pool (settings.embed_threads) and torch its own."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(limits=1, user_api="blas")


async def get_runtime(settings: Settings) -> Runtime:
    global _runtime
    async with _runtime_lock:
        if _runtime is None:
            single_threaded_kernels()
            pool = await retry_transient("startup", lambda: open_pool(settings.database_dsn()))
            _runtime = Runtime(
                settings=settings,
                pool=pool,
                http=httpx.AsyncClient(
                    trust_env=False,
                    timeout=httpx.Timeout(settings.download_timeout_s),
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                    headers={"User-Agent": "imgdup/0.1 (+duplicate photo detection)"},
                ),
                cpu=ThreadPoolExecutor(settings.cpu_threads, thread_name_prefix="imgdup-cpu"),
                fetch_policy=FetchPolicy.from_cidrs(
                    settings.allow_private_networks,
                    timeout_s=settings.download_timeout_s,
                    max_bytes=settings.download_max_bytes,
                    max_redirects=settings.download_max_redirects,
                ),
            )
        return _runtime


async def close_runtime() -> None:
    global _runtime
    async with _runtime_lock:
        if _runtime is not None:
            await _runtime.close()
            _runtime = None


async def retry_transient(stage: str, fn: Callable[[], Awaitable[T]], *, max_delay: float = 30.0) -> T:
    """Retry `fn` while it fails with a transient error; the message stays un-acked meanwhile.

    Nothing is dead-lettered for an outage: when the database comes back the work goes on.
    """
    delay = 0.5
    while True:
        try:
            return await fn()
        except TRANSIENT_ERRORS as exc:
            metrics.TRANSIENT_RETRIES.labels(stage).inc()
            log.warning("%s: transient error, retrying in %.1fs: %s", stage, delay, exc)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)


async def for_each_message(stream: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Run `handle` on each message and ack it only once `handle` returned.

    Faust's default iteration acks the current event in a `finally` block, so a step cancelled
    half-way (SIGTERM, rebalance) would have its offset committed and its work lost. With acks
    taken over here, a cancelled step leaves its message un-acked and it is delivered again.
    """
    acking = stream.noack()
    async for event in acking.events():
        await handle(event.message)
        await acking.ack(event)
