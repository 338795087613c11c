"""The vector-store interface: VectorPoints in, cosine VectorHits out, and the checks every backend shares."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "AD_ID",
    "CATEGORY",
    "HIT_PAYLOAD",
    "IMAGE_ID",
    "SOURCE",
    "FloatArray",
    "VectorHit",
    "VectorPoint",
    "VectorStore",
    "at_least",
    "check_batch",
    "check_limit",
    "checked_ad_id",
    "checked_batch",
    "checked_matrix",
    "checked_vector",
    "hit_from_payload",
    "payload_of",
    "point_uuid",
]

FloatArray = npt.NDArray[np.float32]

# Payload keys written with every point by the Qdrant backends.
IMAGE_ID = "image_id"
AD_ID = "ad_id"
CATEGORY = "category"
SOURCE = "source"
HIT_PAYLOAD = [IMAGE_ID, AD_ID]

# Qdrant integer payloads (and their indexes) are signed 64-bit. The edge engine accepts a
# larger int on upsert but then mis-filters it, so out-of-range ad ids are refused up front,
# by every backend alike.
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
        return point_uuid(self.point_id or self.image_id)


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


# --------------------------------------------------------------------------- input checks


def point_uuid(image_id: str) -> str:
    """The canonical UUID string of a point id; ValueError when it is not a UUID."""
    try:
        return str(uuid.UUID(image_id))
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"image_id must be a UUID string, got {image_id!r}") from err


def checked_ad_id(ad_id: int) -> int:
    """`ad_id` as a Python int; TypeError for a non-integer, ValueError outside signed 64-bit."""
    if isinstance(ad_id, bool) or not isinstance(ad_id, int | np.integer):
        raise TypeError(f"ad_id must be an int, got {type(ad_id).__name__}")
    value = int(ad_id)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"ad_id {value} does not fit a signed 64-bit integer")
    return value


def checked_vector(vector: npt.ArrayLike, dim: int) -> FloatArray:
    """A contiguous float32 [dim] copy (or view) of `vector`; ValueError on shape or NaN/inf."""
    arr = np.ascontiguousarray(vector, dtype=np.float32)
    if arr.shape != (dim,):
        raise ValueError(f"vector must have shape ({dim},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vector contains NaN or infinity")
    return arr


def checked_matrix(vectors: npt.ArrayLike, dim: int) -> FloatArray:
    """A contiguous float32 [n, dim] copy (or view) of `vectors`; ValueError on shape or NaN/inf."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    return arr


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


def check_batch(n: int, exclude_ad_ids: Sequence[int | None], categories: Sequence[str | None]) -> None:
    """ValueError unless there is one ad exclusion and one category per query vector."""
    if len(exclude_ad_ids) != n or len(categories) != n:
        raise ValueError(
            f"search_batch needs one exclude_ad_id and one category per vector: "
            f"{n} vectors, {len(exclude_ad_ids)} exclude_ad_ids, {len(categories)} categories"
        )


def checked_batch(
    vectors: npt.ArrayLike,
    dim: int,
    *,
    limit: int,
    exclude_ad_ids: Sequence[int | None],
    categories: Sequence[str | None],
) -> FloatArray:
    """A search_batch call's arguments checked as every store checks them (limit, then the
    [n, dim] matrix, then one filter per row): the matrix (checked_matrix); ValueError otherwise."""
    check_limit(limit)
    matrix = checked_matrix(vectors, dim)
    check_batch(len(matrix), exclude_ad_ids, categories)
    return matrix


# --------------------------------------------------------------------------- Qdrant payloads


def payload_of(point: VectorPoint) -> dict[str, Any]:
    """The payload a Qdrant backend stores with `point`."""
    return {
        IMAGE_ID: point.image_id,
        AD_ID: checked_ad_id(point.ad_id),
        CATEGORY: point.category,
        SOURCE: point.source,
    }


def hit_from_payload(point_id: object, payload: dict[str, Any] | None, score: float) -> VectorHit:
    """A VectorHit from a Qdrant scored point; it names the image even for a second vector."""
    payload = payload or {}
    image_id = payload.get(IMAGE_ID)
    return VectorHit(
        image_id=str(image_id) if image_id is not None else str(point_id),
        ad_id=int(payload[AD_ID]),
        score=float(score),
    )


def at_least(hits: list[VectorHit], min_score: float | None) -> list[VectorHit]:
    """`hits` scoring at least `min_score` (all of them when it is None)."""
    # The engines differ on whether a score equal to the threshold is kept; this makes the
    # contract "score >= min_score" hold for both (the engine already cut everything lower).
    if min_score is None:
        return hits
    return [h for h in hits if h.score >= min_score]


class SearchOneAsBatch:
    """`search` as a batch of one, for the stores whose primitive is the batch search (numpy,
    pgvector, Qdrant server): one code path, so a single query and a batch never differ."""

    dim: int

    def search_batch(
        self,
        vectors: FloatArray,
        *,
        limit: int,
        exclude_ad_ids: Sequence[int | None],
        categories: Sequence[str | None],
        min_score: float | None = None,
    ) -> list[list[VectorHit]]:
        raise NotImplementedError

    def search(
        self,
        vector: FloatArray,
        *,
        limit: int,
        exclude_ad_id: int | None = None,
        category: str | None = None,
        min_score: float | None = None,
    ) -> list[VectorHit]:
        check_limit(limit)
        return self.search_batch(
            checked_vector(vector, self.dim)[None, :],
            limit=limit,
            exclude_ad_ids=[exclude_ad_id],
            categories=[category],
            min_score=min_score,
        )[0]
