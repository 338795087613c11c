"""Settings -> the worker's shared resources (DB pool, HTTP client, thread pools, embedder, vector store) and
the context each step runs in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import psycopg_pool

from imgdup import metrics
from imgdup.analysis.analyse import AnalysedImage
from imgdup.analysis.batching import EmbeddingBatcher, analyse_with_batcher
from imgdup.analysis.fetch import FetchPolicy, fetch_image, open_transport
from imgdup.blobs.base import BlobStore
from imgdup.blobs.factory import open_blob_store
from imgdup.settings import Settings
from imgdup.steps.cluster import ClusterContext
from imgdup.steps.index import IndexContext
from imgdup.steps.verify import VerifyContext
from imgdup.store.db import open_pool
from imgdup.store.transient import retry_transient
from imgdup.vectors.base import VectorStore
from imgdup.vectors.factory import open_vector_store
from imgdup.verifiers import ChosenVerifier, VerifierUnavailable, resolve_verifier
from imgdup_core.bridges import BridgeRule
from imgdup_core.decode import ImageRejected
from imgdup_core.embedding import Embedder, build_embedder
from imgdup_core.hashing import PHASH_CANDIDATE_DISTANCE
from imgdup_core.sift import FeatureCache

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    pool: psycopg_pool.AsyncConnectionPool
    # Image downloads: connects only to addresses resolved once and judged (analysis.guarded).
    transport: httpx.AsyncBaseTransport
    # CPU-heavy work (decode, hashing, embedding, SIFT) runs here, never on the event loop.
    cpu: ThreadPoolExecutor
    fetch_policy: FetchPolicy
    # The model's own thread: one batch at a time, so its ONNX threads never compete with each
    # other; decoding, hashing and SIFT stay in `cpu`.
    model: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="imgdup-model")
    )
    # One per process, shared by the verifier's concurrent agents (imgdup.steps.verify).
    feature_cache: FeatureCache = field(default_factory=FeatureCache)
    _batcher: EmbeddingBatcher | None = None
    _embedder: Embedder | None = None
    _store: VectorStore | None = None
    _blobs: BlobStore | None = None
    _init_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _verifier: ChosenVerifier | None = None

    @property
    def verifier(self) -> ChosenVerifier:
        """The verifier model of the settings (imgdup.verifiers); `imgdup worker` refused to start
        when there is none for the embedder, so this raises only for a runtime built elsewhere."""
        if self._verifier is None:
            self._verifier = resolve_verifier(self.settings)
            if self._verifier.warning:
                log.warning("%s", self._verifier.warning)
        return self._verifier

    @property
    def phash_max_distance(self) -> int:
        """The pHash candidate channel's distance: IMGDUP_PHASH_CANDIDATE_DISTANCE when set, else
        on only for a verifier calibrated on such candidates (fused-v5)."""
        if "phash_candidate_distance" in self.settings.model_fields_set:
            return self.settings.phash_candidate_distance
        return PHASH_CANDIDATE_DISTANCE if self.verifier.config.phash_candidates else -1

    async def embedder(self) -> Embedder:
        async with self._init_lock:
            if self._embedder is None:
                options = (
                    {"model_name_or_path": self.settings.clip_model_path}
                    if (self.settings.embedder == "clip")
                    else {"intra_op_threads": self.settings.embed_threads, "allow_spinning": False}
                )
                embedder = await asyncio.get_running_loop().run_in_executor(
                    self.cpu, lambda: build_embedder(self.settings.embedder, **options)
                )
                # Same kind, other weights (another package's model): the verifier's cosine scale
                # is not the one it was fitted on.
                fitted = self.verifier.config.fusion.embedding_model
                mismatch = fitted and embedder.version.split("@")[0] != fitted
                if mismatch and not self.verifier.warning:
                    raise VerifierUnavailable(
                        f"the embedder's model is {embedder.version} but verifier"
                        f" {self.verifier.config.version} was calibrated on {fitted}"
                    )
                self._embedder = embedder
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

    def blobs(self) -> BlobStore:
        if self._blobs is None:
            self._blobs = open_blob_store(self.settings)
        return self._blobs

    async def run_cpu(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn)

    async def index_context(self) -> IndexContext:
        embedder = await self.embedder()
        batcher = await self.batcher()

        async def analyse(blobs: Sequence[bytes]) -> list[AnalysedImage | ImageRejected]:
            return await analyse_with_batcher(
                blobs,
                batcher,
                self.run_cpu,
                max_pixels=self.settings.decode_max_pixels,
                max_bytes=self.settings.decode_max_bytes,
                # Stored features made with the running verifier's SIFT settings, or it would
                # extract both images' features again for every pair (fused-v5/v6: ~2x CPU).
                sift_config=self.verifier.config,
            )

        return IndexContext(
            pool=self.pool,
            vectors=await self.store(),
            blobs=self.blobs(),
            fetch=lambda url: fetch_image(self.transport, url, self.fetch_policy),
            analyse=analyse,
            run_cpu=self.run_cpu,
            embedder_name=embedder.name,
            embedding_model=embedder.version,
            top_k=self.settings.ann_top_k,
            min_score=self.verifier.ann_min_score,
            verifier_version=self.verifier.config.version,
            phash_max_distance=self.phash_max_distance,
        )

    async def verify_context(self) -> VerifyContext:
        embedder = await self.embedder()
        return VerifyContext(
            pool=self.pool,
            run_cpu=self.run_cpu,
            embedding_model=embedder.version,
            blobs=self.blobs(),
            config=self.verifier.config,
            cache=self.feature_cache,
        )

    def cluster_context(self) -> ClusterContext:
        bridge = BridgeRule(
            min_probability=self.settings.cluster_bridge_min_probability,
            established_min_ads=self.settings.cluster_bridge_min_ads,
        )
        return ClusterContext(pool=self.pool, bridge=bridge)

    async def close(self) -> None:
        await self.transport.aclose()
        await self.pool.close()
        if self._batcher is not None:
            await self._batcher.close()
        if self._store is not None:
            self._store.close()
        self.cpu.shutdown(wait=True)
        self.model.shutdown(wait=True)


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


async def open_runtime(settings: Settings) -> Runtime:
    """The worker's shared resources; the database pool waits out a database that is not up yet."""
    single_threaded_kernels()
    pool = await retry_transient("startup", open_pool, settings.database_dsn())
    fetch_policy = FetchPolicy.from_cidrs(
        settings.allow_private_networks,
        timeout_s=settings.download_timeout_s,
        max_bytes=settings.download_max_bytes,
        max_redirects=settings.download_max_redirects,
    )
    return Runtime(
        settings=settings,
        pool=pool,
        transport=open_transport(fetch_policy),
        cpu=ThreadPoolExecutor(settings.cpu_threads, thread_name_prefix="imgdup-cpu"),
        fetch_policy=fetch_policy,
    )


class SharedRuntime:
    """One Runtime per worker process, opened by the first agent that needs it (inside the event
    loop) and shared by every agent of the process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: Runtime | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Runtime:
        async with self._lock:
            if self._runtime is None:
                self._runtime = await open_runtime(self.settings)
            return self._runtime

    async def close(self) -> None:
        async with self._lock:
            if self._runtime is not None:
                await self._runtime.close()
                self._runtime = None
