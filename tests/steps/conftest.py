"""Fixtures for the steps' tests: a real Postgres pool, an in-folder vector index and blob store, the
distilled SSCD embedder, and an in-memory "internet" of JPEGs; no Kafka anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from helpers.fakes import Web, run_inline
from psycopg_pool import AsyncConnectionPool

from imgdup.analysis.analyse import AnalysedImage, analyse_images
from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.steps.index import IndexContext
from imgdup.store.db import open_pool
from imgdup.vectors.numpy_index import NumpyVectorIndex
from imgdup_core.decode import ImageRejected
from imgdup_core.embedding import Embedder, build_embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return build_embedder("sscd_distilled")


@pytest.fixture
async def pool(clean_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(clean_db, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def web() -> Web:
    return Web()


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
def index_context(
    pool: AsyncConnectionPool, web: Web, embedder: Embedder, tmp_path: Path, blobs: FilesystemBlobStore
) -> IndexContext:
    async def analyse(blobs: Sequence[bytes]) -> list[AnalysedImage | ImageRejected]:
        return analyse_images(blobs, embedder, max_pixels=40_000_000)

    return IndexContext(
        pool=pool,
        vectors=NumpyVectorIndex(tmp_path / "vectors", dim=embedder.dim),
        blobs=blobs,
        fetch=web.fetch,
        analyse=analyse,
        run_cpu=run_inline,
        embedder_name=embedder.name,
        embedding_model=embedder.version,
        top_k=10,
        min_score=0.3,
    )
