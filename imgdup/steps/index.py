"""An ad event -> its images downloaded, analysed, stored and indexed, and the candidate pairs that their
nearest neighbours make (CandidatePairV1, most similar first); failed images as data. No Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from psycopg_pool import AsyncConnectionPool

from imgdup import ids, metrics
from imgdup.analysis.analyse import AnalysedImage, vector_from_bytes
from imgdup.analysis.batching import RunCpu
from imgdup.analysis.fetch import FetchError
from imgdup.blobs.base import BlobStore
from imgdup.store import events, images, pairs, phash
from imgdup.store.transient import retry_transient
from imgdup.vectors.base import VectorPoint, VectorStore
from imgdup_core.decode import ImageRejected
from imgdup_core.verifier_config import DEFAULT_VERIFIER_FOR_EMBEDDER
from schemas import AdImagesCreatedV1, CandidatePairV1, ImageRef

Fetch = Callable[[str], Awaitable[bytes]]  # raises FetchError with a reason
Analyse = Callable[[Sequence[bytes]], Awaitable[list[AnalysedImage | ImageRejected]]]


@dataclass(frozen=True)
class IndexContext:
    """What indexing needs from the world; the worker builds it from its runtime, tests from fakes."""

    pool: AsyncConnectionPool
    vectors: VectorStore
    blobs: BlobStore  # stored copies and SIFT features go here, their addresses to Postgres
    fetch: Fetch
    analyse: Analyse
    run_cpu: RunCpu
    embedder_name: str
    embedding_model: str  # the embedder's version: images indexed by another are indexed again
    top_k: int
    min_score: float
    # The verifier the worker runs: a pair decided by another version is verified again on replay.
    verifier_version: str = DEFAULT_VERIFIER_FOR_EMBEDDER["sscd"]
    # The pHash candidate channel (imgdup.store.phash): other ads' images this close in pHash
    # are candidates whatever their cosine; -1 turns it off (settings phash_candidate_distance).
    phash_max_distance: int = -1


@dataclass(frozen=True)
class ImageFailure:
    """One image that could not be indexed, and why (the ad's other images go on)."""

    image_id: str
    url: str
    reason: str
    detail: str


@dataclass(frozen=True)
class IndexResult:
    candidates: list[CandidatePairV1]  # still waiting for a verdict, most similar first
    failures: list[ImageFailure]


async def _download(fetch: Fetch, url: str) -> bytes | FetchError:
    """One image's download: whatever it raises is that image's failure, never the ad's."""
    try:
        return await fetch(url)
    except FetchError as exc:
        return exc
    except Exception as exc:
        return FetchError("fetch_error", f"{type(exc).__name__}: {exc}"[:500])


async def _analyse(analyse: Analyse, blobs: Sequence[bytes]) -> list[AnalysedImage | ImageRejected]:
    """The ad's images analysed together; when that raises, each alone, so that an exception
    caused by one image (a decoder or model bug, memory) fails that image with `analysis_error`."""
    try:
        return await analyse(blobs)
    except Exception as exc:
        if len(blobs) == 1:
            return [ImageRejected("analysis_error", f"{type(exc).__name__}: {exc}"[:500])]
    return [outcome for blob in blobs for outcome in await _analyse(analyse, [blob])]


async def index_ad(ctx: IndexContext, event: AdImagesCreatedV1) -> IndexResult:
    """All work for one ad event up to its candidates; safe to repeat (every write is an upsert).

    The caller publishes the candidates and then calls `finish_event`, so an event is marked
    done only once its candidates are handed on."""
    known = await retry_transient("images.begin", events.begin_event, ctx.pool, event)
    todo = [i for i in known if not (i.status == "indexed" and i.embedding_model == ctx.embedding_model)]

    started = time.perf_counter()
    fetched = await asyncio.gather(*(_download(ctx.fetch, image.url) for image in todo))
    metrics.STAGE_SECONDS.labels("download").observe(time.perf_counter() - started)

    blobs = [(image, data) for image, data in zip(todo, fetched, strict=True) if isinstance(data, bytes)]
    failures = [
        ImageFailure(image.image_id, image.url, data.reason, data.detail)
        for image, data in zip(todo, fetched, strict=True)
        if isinstance(data, FetchError)
    ]
    started = time.perf_counter()
    analysed = await _analyse(ctx.analyse, [data for _, data in blobs])
    metrics.STAGE_SECONDS.labels("analyse").observe(time.perf_counter() - started)

    indexed: list[images.IndexedImage] = []
    for (image, _), outcome in zip(blobs, analysed, strict=True):
        if isinstance(outcome, ImageRejected):
            failures.append(ImageFailure(image.image_id, image.url, outcome.reason, outcome.detail))
        else:
            indexed.append(images.IndexedImage(image.image_id, ctx.embedding_model, outcome))
    await retry_transient("images.save", images.save_indexed_images, ctx.pool, indexed, ctx.blobs)
    metrics.EMBEDDINGS_PROCESSED.labels(ctx.embedder_name).inc(len(indexed))
    for failure in failures:
        await retry_transient(
            "images.fail",
            images.save_failed_image,
            ctx.pool,
            failure.image_id,
            failure.reason,
            failure.detail,
        )
        metrics.IMAGES_FAILED.labels(failure.reason).inc()

    vectors = {i.image_id: i.image.vector for i in indexed}
    photo_vectors = {i.image_id: i.image.photo_vector for i in indexed if i.image.photo_vector is not None}
    # Images indexed by an earlier delivery are searched again from their stored vector, so a
    # crash between indexing and publishing never loses their candidates.
    for image in known:
        if (
            image.image_id not in vectors
            and image.status == "indexed"
            and image.embedding
            and image.embedding_model == ctx.embedding_model
        ):
            vectors[image.image_id] = vector_from_bytes(image.embedding)
            if image.photo_embedding:
                photo_vectors[image.image_id] = vector_from_bytes(image.photo_embedding)
    if not vectors:
        return IndexResult([], failures)
    points = _points(event, vectors, photo_vectors)
    candidates = await _search(ctx, event, points)
    await _phash_channel(ctx, event, vectors, candidates)
    pending = await retry_transient(
        "images.candidates",
        pairs.add_candidates,
        ctx.pool,
        list(candidates.values()),
        verifier_version=ctx.verifier_version,
    )
    now = datetime.now(UTC)
    # Most similar first: the verifier takes an ad's candidates in order (one key, one
    # partition), so a likely copy is decided, clustered and published before the long tail
    # of unrelated neighbours is checked.
    out = [
        CandidatePairV1(
            pair_id=pair,
            a=ImageRef(image_id=candidates[pair].image_a, ad_id=candidates[pair].ad_a),
            b=ImageRef(image_id=candidates[pair].image_b, ad_id=candidates[pair].ad_b),
            cosine=candidates[pair].cosine,
            replay=event.replay,
            found_at=now,
        )
        for pair in sorted(pending, key=lambda p: (-candidates[p].cosine, p))
    ]
    return IndexResult(out, failures)


def _points(
    event: AdImagesCreatedV1, vectors: dict[str, np.ndarray], photo_vectors: dict[str, np.ndarray]
) -> list[VectorPoint]:
    """Every image's vector, and a second point for each framed photo (its own deterministic id)."""
    ad, category, source = event.ad_id, event.category, event.source
    return [VectorPoint(i, v, ad, category, source) for i, v in vectors.items()] + [
        VectorPoint(i, v, ad, category, source, point_id=ids.photo_point_id(i))
        for i, v in photo_vectors.items()
    ]


async def _search(
    ctx: IndexContext, event: AdImagesCreatedV1, points: list[VectorPoint]
) -> dict[str, pairs.CandidateRow]:
    """Upsert the ad's points, then search their neighbours in other ads: one candidate per pair."""
    matrix = np.stack([p.vector for p in points])
    # Upsert before searching: of two copies indexed at the same moment, at least one sees the other.
    # Both are retried through a database outage: the pgvector store lives in Postgres.
    await retry_transient("images.vector_upsert", ctx.run_cpu, lambda: ctx.vectors.upsert(points))
    started = time.perf_counter()
    hits = await retry_transient(
        "images.vector_search",
        ctx.run_cpu,
        lambda: ctx.vectors.search_batch(
            matrix,
            limit=ctx.top_k,
            exclude_ad_ids=[event.ad_id] * len(points),
            categories=[event.category] * len(points),
            min_score=ctx.min_score,
        ),
    )
    metrics.ANN_QUERY_SECONDS.observe(time.perf_counter() - started)
    # An image with a framed photo searches twice and may be found twice: one candidate per
    # pair, with the best cosine of the vectors that found it.
    candidates: dict[str, pairs.CandidateRow] = {}
    for point, point_hits in zip(points, hits, strict=True):
        for hit in point_hits:
            a, b = ids.ordered_pair(point.image_id, hit.image_id)
            ad_of = {point.image_id: event.ad_id, hit.image_id: hit.ad_id}
            pair = ids.pair_id(a, b)
            known = candidates.get(pair)
            if known is None or hit.score > known.cosine:
                candidates[pair] = pairs.CandidateRow(
                    pair, a, ad_of[a], b, ad_of[b], float(hit.score), event.replay
                )
    return candidates


async def _phash_channel(
    ctx: IndexContext,
    event: AdImagesCreatedV1,
    vectors: dict[str, np.ndarray],
    candidates: dict[str, pairs.CandidateRow],
) -> None:
    """Add the pHash channel's pairs the ANN search did not propose, with their true cosine (the
    verifier weighs it): a copy under a heavy tiled watermark keeps its pHash but not its
    embedding. At most top_k per image, closest first."""
    if ctx.phash_max_distance < 0:
        return
    found = await retry_transient(
        "images.phash",
        phash.phash_neighbours,
        ctx.pool,
        list(vectors),
        embedding_model=ctx.embedding_model,
        max_distance=ctx.phash_max_distance,
        limit=ctx.top_k * len(vectors),
    )
    added = 0
    for neighbour in found:
        a, b = ids.ordered_pair(neighbour.query_id, neighbour.image_id)
        pair = ids.pair_id(a, b)
        if pair in candidates:
            continue
        added += 1
        ad_of = {neighbour.query_id: event.ad_id, neighbour.image_id: neighbour.ad_id}
        cosine = float(vectors[neighbour.query_id] @ vector_from_bytes(neighbour.embedding))
        candidates[pair] = pairs.CandidateRow(pair, a, ad_of[a], b, ad_of[b], cosine, event.replay)
    metrics.PHASH_CANDIDATES.inc(added)


async def finish_event(ctx: IndexContext, event: AdImagesCreatedV1, published: int) -> None:
    """Mark the event indexed once its candidates are handed on (`published` of them)."""
    metrics.CANDIDATES_FOUND.inc(published)
    await retry_transient("images.finish", events.finish_event, ctx.pool, event.event_id)
