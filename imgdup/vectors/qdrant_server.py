"""Qdrant server backend: VectorPoints into a collection via qdrant-client, HNSW cosine VectorHits out."""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import QdrantClient, models

from imgdup.vectors.base import (
    AD_ID,
    CATEGORY,
    HIT_PAYLOAD,
    FloatArray,
    SearchOneAsBatch,
    VectorHit,
    VectorPoint,
    at_least,
    checked_ad_id,
    checked_batch,
    checked_vector,
    hit_from_payload,
    payload_of,
)

__all__ = ["QdrantServerStore"]


def _server_filter(exclude_ad_id: int | None, category: str | None) -> models.Filter | None:
    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    if category is not None:
        must.append(models.FieldCondition(key=CATEGORY, match=models.MatchValue(value=category)))
    if exclude_ad_id is not None:
        must_not.append(
            models.FieldCondition(key=AD_ID, match=models.MatchValue(value=checked_ad_id(exclude_ad_id)))
        )
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


class QdrantServerStore(SearchOneAsBatch):
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
                vector=checked_vector(p.vector, self.dim).tolist(),
                payload=payload_of(p),
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
            with_payload=HIT_PAYLOAD,
            with_vector=False,
        )

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
        matrix = checked_batch(
            vectors, self.dim, limit=limit, exclude_ad_ids=exclude_ad_ids, categories=categories
        )
        if len(matrix) == 0:
            return []
        requests = [
            self._request(row, limit, ex, cat, min_score)
            for row, ex, cat in zip(matrix, exclude_ad_ids, categories, strict=True)
        ]
        responses = self._client.query_batch_points(self.collection, requests=requests)
        return [
            at_least([hit_from_payload(p.id, p.payload, p.score) for p in response.points], min_score)
            for response in responses
        ]

    def count(self) -> int:
        self._check_open()
        return self._client.count(self.collection, exact=True).count

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()
