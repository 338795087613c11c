"""Consumes ad.images.created and its replay topic (key ad_id, AdImagesCreatedV1) -> downloads,
hashes, embeds and indexes each image, searches its neighbours, and produces
imgdup.image-candidates.v1 (key ad_id, CandidatePairV1); bad events and images go to dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from imgdup import ids, metrics
from imgdup.analysis.analyse import AnalysedImage, vector_from_bytes, vector_to_bytes
from imgdup.analysis.batching import analyse_with_batcher
from imgdup.analysis.fetch import FetchError, fetch_image
from imgdup.store import repository
from imgdup.vectors.base import VectorPoint
from imgdup_core.decode import ImageRejected
from imgdup_core.verify import DEFAULT_VERIFIER
from schemas import AdImagesCreatedV1, CandidatePairV1, ImageRef
from schemas.parsing import InvalidEvent, parse_ad_event
from streams import app as streams_app
from streams.deadletter import dead_letter
from streams.runtime import Runtime, for_each_message, get_runtime, retry_transient

log = logging.getLogger(__name__)


async def _download(rt: Runtime, url: str) -> bytes | FetchError:
    try:
        return await fetch_image(rt.http, url, rt.fetch_policy)
    except FetchError as exc:
        return exc


async def index_ad(rt: Runtime, event: AdImagesCreatedV1, message: Any) -> int:
    """All work for one ad event; safe to repeat. Returns the number of candidates published."""
    embedder = await rt.embedder()
    store = await rt.store()
    images = await retry_transient("images.begin", lambda: repository.begin_event(rt.pool, event))
    todo = [i for i in images if not (i.status == "indexed" and i.embedding_model == embedder.version)]

    started = time.perf_counter()
    fetched = await asyncio.gather(*(_download(rt, image.url) for image in todo))
    metrics.STAGE_SECONDS.labels("download").observe(time.perf_counter() - started)

    blobs = [(image, data) for image, data in zip(todo, fetched, strict=True) if isinstance(data, bytes)]
    failures: list[tuple[str, str, str, str]] = [  # image_id, url, reason, detail
        (image.image_id, image.url, data.reason, data.detail)
        for image, data in zip(todo, fetched, strict=True)
        if isinstance(data, FetchError)
    ]
    started = time.perf_counter()
    analysed = await analyse_with_batcher(
        [data for _, data in blobs],
        await rt.batcher(),
        rt.run_cpu,
        max_pixels=rt.settings.decode_max_pixels,
    )
    metrics.STAGE_SECONDS.labels("analyse").observe(time.perf_counter() - started)

    indexed: list[repository.IndexedImage] = []
    vectors: dict[str, np.ndarray] = {}
    photo_vectors: dict[str, np.ndarray] = {}  # the photos that screenshots frame
    for (image, _), outcome in zip(blobs, analysed, strict=True):
        if isinstance(outcome, ImageRejected):
            failures.append((image.image_id, image.url, outcome.reason, outcome.detail))
            continue
        indexed.append(_indexed_row(image.image_id, outcome, embedder.version))
        vectors[image.image_id] = outcome.vector
        if outcome.photo_vector is not None:
            photo_vectors[image.image_id] = outcome.photo_vector
    await retry_transient("images.save", lambda: repository.save_indexed_images(rt.pool, indexed))
    metrics.EMBEDDINGS_PROCESSED.labels(embedder.name).inc(len(indexed))

    for image_id, url, reason, detail in failures:
        await retry_transient(
            "images.fail", partial(repository.save_failed_image, rt.pool, image_id, reason, detail)
        )
        metrics.IMAGES_FAILED.labels(reason).inc()
        await dead_letter(
            message,
            reason=reason,
            detail=detail,
            event_id=event.event_id,
            ad_id=event.ad_id,
            image_url=url,
        )

    # Images indexed by an earlier delivery are searched again from their stored vector, so a
    # crash between indexing and publishing never loses their candidates.
    for image in images:
        if (
            image.image_id not in vectors
            and image.status == "indexed"
            and image.embedding
            and (image.embedding_model == embedder.version)
        ):
            vectors[image.image_id] = vector_from_bytes(image.embedding)
            if image.photo_embedding:
                photo_vectors[image.image_id] = vector_from_bytes(image.photo_embedding)
    if not vectors:
        await retry_transient("images.finish", lambda: repository.finish_event(rt.pool, event.event_id))
        return 0

    points = [
        VectorPoint(image_id=i, vector=v, ad_id=event.ad_id, category=event.category, source=event.source)
        for i, v in vectors.items()
    ] + [
        VectorPoint(
            image_id=i,
            vector=v,
            ad_id=event.ad_id,
            category=event.category,
            source=event.source,
            point_id=ids.photo_point_id(i),
        )
        for i, v in photo_vectors.items()
    ]
    matrix = np.stack([p.vector for p in points])
    # Upsert before searching: of two copies indexed at the same moment, at least one sees the other.
    await rt.run_cpu(lambda: store.upsert(points))
    started = time.perf_counter()
    hits = await rt.run_cpu(
        lambda: store.search_batch(
            matrix,
            limit=rt.settings.ann_top_k,
            exclude_ad_ids=[event.ad_id] * len(points),
            categories=[event.category] * len(points),
            min_score=rt.settings.ann_min_score,
        )
    )
    metrics.ANN_QUERY_SECONDS.observe((time.perf_counter() - started) / max(1, len(points)))

    # An image with a framed photo searches twice and may be found twice: one candidate per
    # pair, with the best cosine of the vectors that found it.
    candidates: dict[str, repository.CandidateRow] = {}
    for point, point_hits in zip(points, hits, strict=True):
        for hit in point_hits:
            a, b = ids.ordered_pair(point.image_id, hit.image_id)
            ad_of = {point.image_id: event.ad_id, hit.image_id: hit.ad_id}
            pair = ids.pair_id(a, b)
            known = candidates.get(pair)
            if known is None or hit.score > known.cosine:
                candidates[pair] = repository.CandidateRow(
                    pair, a, ad_of[a], b, ad_of[b], float(hit.score), event.replay
                )
    pending = await retry_transient(
        "images.candidates",
        lambda: repository.add_candidates(
            rt.pool, list(candidates.values()), verifier_version=DEFAULT_VERIFIER.version
        ),
    )
    now = datetime.now(UTC)
    sent = []
    # Most similar first: the verifier takes an ad's candidates in order (one key, one
    # partition), so a likely copy is decided, clustered and published before the long tail
    # of unrelated neighbours is checked.
    for pair in sorted(pending, key=lambda p: (-candidates[p].cosine, p)):
        row = candidates[pair]
        out = CandidatePairV1(
            pair_id=pair,
            a=ImageRef(image_id=row.image_a, ad_id=row.ad_a),
            b=ImageRef(image_id=row.image_b, ad_id=row.ad_b),
            cosine=row.cosine,
            replay=event.replay,
            found_at=now,
        )
        sent.append(
            await streams_app.image_candidates.send(
                key=str(event.ad_id).encode(), value=out.model_dump_json().encode()
            )
        )
    # Every delivery confirmed before the event is marked done; one round trip, not one each.
    await asyncio.gather(*sent)
    metrics.CANDIDATES_FOUND.inc(len(pending))
    await retry_transient("images.finish", lambda: repository.finish_event(rt.pool, event.event_id))
    return len(pending)


def _indexed_row(image_id: str, outcome: AnalysedImage, model: str) -> repository.IndexedImage:
    return repository.IndexedImage(
        image_id=image_id,
        content_sha256=outcome.content_sha256,
        pixel_sha256=outcome.pixel_sha256,
        phash=outcome.phash,
        phash_mirrored=outcome.phash_mirrored,
        width=outcome.width,
        height=outcome.height,
        format=outcome.format,
        embedding_model=model,
        embedding=vector_to_bytes(outcome.vector),
        jpeg=outcome.jpeg,
        photo_box=outcome.region.as_list() if outcome.region is not None else None,
        photo_embedding=vector_to_bytes(outcome.photo_vector) if outcome.photo_vector is not None else None,
        photo_jpeg=outcome.photo_jpeg,
        sift=outcome.sift,
        photo_sift=outcome.photo_sift,
    )


async def handle_message(rt: Runtime, message: Any) -> None:
    """One message in, never an exception out: failures become dead letters."""
    try:
        event = parse_ad_event(message.value)
    except InvalidEvent as invalid:
        payload = invalid.payload or {}
        event_id = payload.get("event_id") if isinstance(payload.get("event_id"), str) else None
        ad_id = payload.get("ad_id") if isinstance(payload.get("ad_id"), int) else None
        await dead_letter(
            message, reason=invalid.reason, detail=invalid.detail, event_id=event_id, ad_id=ad_id
        )
        reason = invalid.reason
        if event_id:
            await retry_transient(
                "images.dead",
                lambda: repository.mark_event_dead(
                    rt.pool,
                    event_id=event_id,
                    ad_id=ad_id,
                    payload=_text(message.value),
                    reason=reason,
                ),
            )
        return
    started = time.perf_counter()
    try:
        await index_ad(rt, event, message)
    except Exception as exc:
        log.exception("ad %s event %s failed", event.ad_id, event.event_id)
        await dead_letter(
            message,
            reason="processing_error",
            error=exc,
            event_id=event.event_id,
            ad_id=event.ad_id,
        )
        await retry_transient(
            "images.dead",
            lambda: repository.mark_event_dead(
                rt.pool,
                event_id=event.event_id,
                ad_id=event.ad_id,
                payload=event.model_dump_json(),
                reason="processing_error",
            ),
        )
    metrics.STAGE_SECONDS.labels("ad_event").observe(time.perf_counter() - started)


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")


@streams_app.app.agent(streams_app.ad_images_in, concurrency=streams_app.settings.images_concurrency)
async def index_ad_images(stream: Any) -> None:
    rt = await get_runtime(streams_app.settings)
    await for_each_message(stream, partial(handle_message, rt))
