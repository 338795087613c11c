"""Settings and an embedder -> the VectorStore of that vector space (numpy, edge, pgvector or server)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from imgdup.vectors.base import VectorStore
from imgdup.vectors.edge import EdgeVectorStore
from imgdup.vectors.numpy_index import NumpyVectorIndex
from imgdup.vectors.pgvector import PgVectorStore
from imgdup.vectors.qdrant_server import QdrantServerStore

if TYPE_CHECKING:
    from imgdup.settings import Settings
    from imgdup_core.embedding import Embedder

__all__ = ["open_vector_store", "vector_space_key"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Keeps folder and collection names well under the 255 characters filesystems and Qdrant allow.
_READABLE_MAX = 80


def vector_space_key(name: str, version: str) -> str:
    """A folder- and collection-name-safe key, different for every (embedder name, version) pair.

    The readable part is the name and version with unsafe characters replaced; a hash of the
    exact pair follows it, because replacing (or cutting) characters could make two keys equal.
    """
    readable = _UNSAFE.sub("-", f"{name}-{version}").strip("-.")[:_READABLE_MAX]
    digest = hashlib.sha256(f"{name}\0{version}".encode()).hexdigest()[:12]
    return f"{readable}-{digest}" if readable else digest


def open_vector_store(settings: Settings, embedder: Embedder) -> VectorStore:
    """The store of `embedder`'s vectors: a Qdrant server collection when QDRANT_URL is set,
    else, by IMGDUP_VECTOR_STORE (alias IMGDUP_VECTOR_INDEX), a pgvector table in the
    database (DATABASE_URL, shared by every process) or a folder under `settings.vector_dir`
    holding a numpy index or a qdrant-edge shard (one process only).

    Every (embedder name, version) pair gets its own collection or folder: vectors of two
    models never share a space, so re-processing with a new model runs beside the old index.
    """
    key = vector_space_key(embedder.name, embedder.version)
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantServerStore.from_url(
            settings.qdrant_url,
            api_key=api_key,
            collection=f"{settings.qdrant_collection}_{key}",
            dim=embedder.dim,
        )
    kind = settings.vector_store_kind()
    if kind == "pgvector":
        return PgVectorStore(
            settings.database_dsn(), space=key, dim=embedder.dim, ef_search=settings.pgvector_ef_search
        )
    if kind == "numpy":
        return NumpyVectorIndex(settings.vector_dir / f"{key}-numpy", dim=embedder.dim)
    return EdgeVectorStore(settings.vector_dir / key, dim=embedder.dim)
