"""Vector store: takes VectorPoints (image embeddings + ad metadata), returns cosine VectorHits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

if TYPE_CHECKING:
    from qdrant_edge import ConditionType

__all__ = [
    "EdgeVectorStore",
    "QdrantServerStore",
    "VectorHit",
    "VectorPoint",
    "VectorStore",
    "open_vector_store",
]

FloatArray = npt.NDArray[np.float32]

# Payload keys written with every point.
IMAGE_ID = "image_id"
AD_ID = "ad_id"
CATEGORY = "category"
SOURCE = "source"
_HIT_PAYLOAD = [IMAGE_ID, AD_ID]

# Qdrant integer payloads (and their indexes) are signed 64-bit. The edge engine accepts a
# larger int on upsert but then mis-filters it, so out-of-range ad ids are refused up front.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class VectorPoint:
    """One embedding of an image to store. The point id is `image_id` (a UUID string) for the
    image itself, or `point_id` for a second vector of the same image (the photo a screenshot
    frames, imgdup.ids.photo_point_id); hits always name the image."""

    image_id: str
    vector: FloatArray  # float32 [dim], L2-normalised
    ad_id: int  # signed 64-bit
    category: str | None
    source: str
    point_id: str | None = None

    @property
    def id(self) -> str:
        return _point_id(self.point_id or self.image_id)


@dataclass(frozen=True)
class VectorHit:
    """One search result; `score` is the cosine similarity. An image stored with a photo
    vector too may appear twice, once per vector."""

    image_id: str
    ad_id: int
    score: float


class VectorStore(Protocol):
    """Cosine-similarity store of image embeddings, filtered by ad and category."""

    dim: int

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Insert or overwrite points; the same image_id overwrites (idempotent)."""
        ...

    def search(
        self,
        vector: FloatArray,
        *,
        limit: int,
        exclude_ad_id: int | None = None,
        category: str | None = None,
        min_score: float | None = None,
    ) -> list[VectorHit]:
        """Top-`limit` hits by cosine, best first.

        Points of `exclude_ad_id` are left out; with `category`, only points whose payload
        category equals it are searched; with `min_score`, hits scoring below it are dropped.
        """
        ...

    def search_batch(
        self,
        vectors: FloatArray,
        *,
        limit: int,
        exclude_ad_ids: Sequence[int | None],
        categories: Sequence[str | None],
        min_score: float | None = None,
    ) -> list[list[VectorHit]]:
        """`search` for each row of `vectors` [n, dim], with per-row ad and category filters."""
        ...

    def count(self) -> int:
        """Number of stored points."""
        ...

    def close(self) -> None:
        """Flush and release the store; idempotent."""
        ...


# --------------------------------------------------------------------------- validation


def _point_id(image_id: str) -> str:
    try:
        return str(uuid.UUID(image_id))
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"image_id must be a UUID string, got {image_id!r}") from err


def _check_ad_id(ad_id: int) -> int:
    if isinstance(ad_id, bool) or not isinstance(ad_id, int | np.integer):
        raise TypeError(f"ad_id must be an int, got {type(ad_id).__name__}")
    value = int(ad_id)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"ad_id {value} does not fit a signed 64-bit integer")
    return value


def _vector(vector: npt.ArrayLike, dim: int) -> FloatArray:
    arr = np.ascontiguousarray(vector, dtype=np.float32)
    if arr.shape != (dim,):
        raise ValueError(f"vector must have shape ({dim},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vector contains NaN or infinity")
    return arr


def _matrix(vectors: npt.ArrayLike, dim: int) -> FloatArray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    return arr


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


def _check_batch(n: int, exclude_ad_ids: Sequence[int | None], categories: Sequence[str | None]) -> None:
    if len(exclude_ad_ids) != n or len(categories) != n:
        raise ValueError(
            f"search_batch needs one exclude_ad_id and one category per vector: "
            f"{n} vectors, {len(exclude_ad_ids)} exclude_ad_ids, {len(categories)} categories"
        )


def _payload(point: VectorPoint) -> dict[str, Any]:
    return {
        IMAGE_ID: point.image_id,
        AD_ID: _check_ad_id(point.ad_id),
        CATEGORY: point.category,
        SOURCE: point.source,
    }


def _hit(point_id: object, payload: dict[str, Any] | None, score: float) -> VectorHit:
    payload = payload or {}
    image_id = payload.get(IMAGE_ID)
    return VectorHit(
        image_id=str(image_id) if image_id is not None else str(point_id),
        ad_id=int(payload[AD_ID]),
        score=float(score),
    )


def _keep(hits: list[VectorHit], min_score: float | None) -> list[VectorHit]:
    # The engines differ on whether a score equal to the threshold is kept; this makes the
    # contract "score >= min_score" hold for both (the engine already cut everything lower).
    if min_score is None:
        return hits
    return [h for h in hits if h.score >= min_score]


class _Gate:
    """Lets calls run concurrently, and makes close() wait for the calls in flight."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextmanager
    def enter(self) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise RuntimeError("vector store is closed")
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    def close(self) -> bool:
        """Mark closed and wait for calls in flight; True for the call that closed it."""
        with self._cond:
            if self._closed:
                return False
            self._closed = True
            self._cond.wait_for(lambda: self._active == 0)
            return True


# --------------------------------------------------------------------------- Qdrant Edge


def _edge_filter(exclude_ad_id: int | None, category: str | None) -> qe.Filter | None:
    must: list[ConditionType] = []
    must_not: list[ConditionType] = []
    if category is not None:
        must.append(qe.FieldCondition(key=CATEGORY, match=qe.MatchValue(category)))
    if exclude_ad_id is not None:
        must_not.append(qe.FieldCondition(key=AD_ID, match=qe.MatchValue(_check_ad_id(exclude_ad_id))))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


class EdgeVectorStore:
    """Embedded Qdrant Edge shard in a folder (created on first use, loaded afterwards).

    Layout: one unnamed dense vector of size `dim`, cosine distance, float32, WAL on;
    integer payload index on `ad_id` and keyword index on `category`; payload also holds
    `image_id` and `source`. Search is exact (brute force over plain segments): the store
    never calls `EdgeShard.optimize()`, which would build HNSW in-process, block for
    minutes and hold the GIL. indexing_threshold=0 in the optimizer config also keeps an
    explicit optimize() from building HNSW (checked: 50k points stay plain, where the
    default config spends 36 s indexing them), and `prevent_unoptimized` is off so fresh
    points are always searchable.

    One process only: the engine takes an exclusive lock on the folder's WAL, so a second
    `EdgeVectorStore` on the same folder (in this or another process) fails until the first
    is closed. Within the process the store is thread-safe: the engine serves concurrent
    upserts and queries itself (checked with a thread pool), and `close()` waits for calls
    in flight, flushes and releases the folder; calls after close raise RuntimeError.
    Reopening a folder with a different `dim` raises.

    Cost (qdrant-edge-py 0.9.0, 2 vCPUs): an exact query over 20k 512-d points takes
    about 4 ms and grows linearly with the number of points. The engine appears to hold the
    GIL while it searches (a Python thread on a free core ran at ~30% speed meanwhile), so
    queries from a thread pool are safe but barely overlap with other Python work.
    """

    def __init__(self, path: Path, *, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.path = Path(path)
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0, prevent_unoptimized=False),
        )
        if (self.path / "edge_config.json").exists():
            # Passing the config checks it against the stored segments (size, distance).
            self._shard = qe.EdgeShard.load(str(self.path), config)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(self.path), config)
        try:
            schema = self._shard.info().payload_schema
            for field, kind in (
                (AD_ID, qe.PayloadSchemaType.Integer),
                (CATEGORY, qe.PayloadSchemaType.Keyword),
            ):
                if field not in schema:
                    self._shard.update(qe.UpdateOperation.create_field_index(field, kind))
        except BaseException:
            self._shard.close()
            raise
        self._params = qe.SearchParams(exact=True)
        self._gate = _Gate()

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        batch = [qe.Point(p.id, _vector(p.vector, self.dim).tolist(), _payload(p)) for p in points]
        with self._gate.enter():
            self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def _request(
        self,
        vector: FloatArray,
        limit: int,
        exclude_ad_id: int | None,
        category: str | None,
        min_score: float | None,
    ) -> qe.QueryRequest:
        return qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist()),
            filter=_edge_filter(exclude_ad_id, category),
            score_threshold=min_score,
            params=self._params,
            with_payload=_HIT_PAYLOAD,
            with_vector=False,
        )

    def search(
        self,
        vector: FloatArray,
        *,
        limit: int,
        exclude_ad_id: int | None = None,
        category: str | None = None,
        min_score: float | None = None,
    ) -> list[VectorHit]:
        _check_limit(limit)
        request = self._request(_vector(vector, self.dim), limit, exclude_ad_id, category, min_score)
        with self._gate.enter():
            points = self._shard.query(request)
        return _keep([_hit(p.id, p.payload, p.score) for p in points], min_score)

    def search_batch(
        self,
        vectors: FloatArray,
        *,
        limit: int,
        exclude_ad_ids: Sequence[int | None],
        categories: Sequence[str | None],
        min_score: float | None = None,
    ) -> list[list[VectorHit]]:
        _check_limit(limit)
        matrix = _matrix(vectors, self.dim)
        _check_batch(len(matrix), exclude_ad_ids, categories)
        if len(matrix) == 0:
            return []
        requests = [
            self._request(row, limit, ex, cat, min_score)
            for row, ex, cat in zip(matrix, exclude_ad_ids, categories, strict=True)
        ]
        with self._gate.enter():
            results = self._shard.query_batch(qe.QueryBatchRequest(requests))
        return [_keep([_hit(p.id, p.payload, p.score) for p in points], min_score) for points in results]

    def count(self) -> int:
        with self._gate.enter():
            return int(self._shard.count(qe.CountRequest(exact=True)))

    def close(self) -> None:
        if self._gate.close():
            try:
                self._shard.flush()
            finally:
                self._shard.close()


# --------------------------------------------------------------------------- Qdrant server


def _server_filter(exclude_ad_id: int | None, category: str | None) -> models.Filter | None:
    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    if category is not None:
        must.append(models.FieldCondition(key=CATEGORY, match=models.MatchValue(value=category)))
    if exclude_ad_id is not None:
        must_not.append(
            models.FieldCondition(key=AD_ID, match=models.MatchValue(value=_check_ad_id(exclude_ad_id)))
        )
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


class QdrantServerStore:
    """A collection on a Qdrant server, through qdrant-client.

    The collection is created when missing: one unnamed vector of size `dim`, cosine
    distance, HNSW with `m` edges per node and `ef_construct` build candidates, an integer
    payload index on `ad_id` and a keyword index on `category` (the indexes are also created
    on an existing collection that lacks them). An existing collection must have a single
    unnamed vector of size `dim` with cosine distance; its HNSW build settings are left as
    they are.

    Defaults:
      * m=16 (Qdrant's default): good recall/memory balance for 512-d embeddings.
      * ef_construct=200 (Qdrant's default is 100): a better graph for near-duplicate
        recall, paid once at indexing time.
      * hnsw_ef=128 at query time: recall close to exact for top-10..50 at a few ms per
        query; raise it when recall matters more than latency.
    Segments below Qdrant's full_scan_threshold, and small filtered subsets, are searched
    exactly by the server regardless of these settings.

    The store owns the client: close() closes it. Thread-safety is the client's: the remote
    (HTTP/gRPC) client may be shared by threads; local mode (`location=":memory:"` or
    `path=`) is meant for tests and single-threaded use.
    """

    def __init__(
        self,
        client: QdrantClient,
        *,
        collection: str,
        dim: int,
        hnsw_ef: int = 128,
        m: int = 16,
        ef_construct: int = 200,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.collection = collection
        self.hnsw_ef = hnsw_ef
        self._client = client
        # Local mode (tests) is brute force: it ignores payload indexes and search params, and
        # warns when given them, so neither is sent there.
        options = client.init_options
        self._local = options.get("location") == ":memory:" or options.get("path") is not None
        self._params = None if self._local else models.SearchParams(hnsw_ef=hnsw_ef)
        self._closed = False
        self._ensure_collection(m=m, ef_construct=ef_construct)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        api_key: str | None,
        collection: str,
        dim: int,
        hnsw_ef: int = 128,
        m: int = 16,
        ef_construct: int = 200,
    ) -> QdrantServerStore:
        client = QdrantClient(url=url, api_key=api_key)
        try:
            return cls(
                client,
                collection=collection,
                dim=dim,
                hnsw_ef=hnsw_ef,
                m=m,
                ef_construct=ef_construct,
            )
        except BaseException:
            client.close()
            raise

    def _ensure_collection(self, *, m: int, ef_construct: int) -> None:
        client, name = self._client, self.collection
        if not client.collection_exists(name):
            try:
                client.create_collection(
                    name,
                    vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
                    hnsw_config=models.HnswConfigDiff(m=m, ef_construct=ef_construct),
                )
            except Exception:
                if not client.collection_exists(name):  # not a lost creation race
                    raise
        info = client.get_collection(name)
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise ValueError(f"collection {name!r} has named vectors; expected one unnamed vector")
        if vectors.size != self.dim or vectors.distance != models.Distance.COSINE:
            raise ValueError(
                f"collection {name!r} has size={vectors.size} distance={vectors.distance}; "
                f"expected size={self.dim} distance=Cosine"
            )
        if self._local:
            return
        schema = info.payload_schema or {}
        for field, kind in (
            (AD_ID, models.PayloadSchemaType.INTEGER),
            (CATEGORY, models.PayloadSchemaType.KEYWORD),
        ):
            if field not in schema:
                client.create_payload_index(name, field, field_schema=kind, wait=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("vector store is closed")

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        self._check_open()
        if not points:
            return
        batch = [
            models.PointStruct(
                id=p.id,
                vector=_vector(p.vector, self.dim).tolist(),
                payload=_payload(p),
            )
            for p in points
        ]
        self._client.upsert(self.collection, points=batch, wait=True)

    def _request(
        self,
        vector: FloatArray,
        limit: int,
        exclude_ad_id: int | None,
        category: str | None,
        min_score: float | None,
    ) -> models.QueryRequest:
        return models.QueryRequest(
            query=vector.tolist(),
            filter=_server_filter(exclude_ad_id, category),
            limit=limit,
            score_threshold=min_score,
            params=self._params,
            with_payload=_HIT_PAYLOAD,
            with_vector=False,
        )

    def search(
        self,
        vector: FloatArray,
        *,
        limit: int,
        exclude_ad_id: int | None = None,
        category: str | None = None,
        min_score: float | None = None,
    ) -> list[VectorHit]:
        self._check_open()
        _check_limit(limit)
        return self.search_batch(
            _vector(vector, self.dim)[None, :],
            limit=limit,
            exclude_ad_ids=[exclude_ad_id],
            categories=[category],
            min_score=min_score,
        )[0]

    def search_batch(
        self,
        vectors: FloatArray,
        *,
        limit: int,
        exclude_ad_ids: Sequence[int | None],
        categories: Sequence[str | None],
        min_score: float | None = None,
    ) -> list[list[VectorHit]]:
        self._check_open()
        _check_limit(limit)
        matrix = _matrix(vectors, self.dim)
        _check_batch(len(matrix), exclude_ad_ids, categories)
        if len(matrix) == 0:
            return []
        requests = [
            self._request(row, limit, ex, cat, min_score)
            for row, ex, cat in zip(matrix, exclude_ad_ids, categories, strict=True)
        ]
        responses = self._client.query_batch_points(self.collection, requests=requests)
        return [
            _keep([_hit(p.id, p.payload, p.score) for p in response.points], min_score)
            for response in responses
        ]

    def count(self) -> int:
        self._check_open()
        return self._client.count(self.collection, exact=True).count

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()


# --------------------------------------------------------------------------- factory


def open_vector_store(
    *,
    qdrant_url: str | None,
    qdrant_api_key: str | None,
    edge_path: Path,
    collection: str,
    dim: int,
) -> VectorStore:
    """QDRANT_URL set (non-empty) -> QdrantServerStore; else EdgeVectorStore in edge_path."""
    if qdrant_url:
        return QdrantServerStore.from_url(qdrant_url, api_key=qdrant_api_key, collection=collection, dim=dim)
    return EdgeVectorStore(edge_path, dim=dim)
