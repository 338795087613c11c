"""Consumes ad.images.created and its replay topic (key ad_id, AdImagesCreatedV1) -> downloads, hashes,
embeds and indexes each image and searches its neighbours (imgdup.steps.index), and produces
imgdup.image-candidates.v1 (key ad_id, CandidatePairV1); bad events and images go to dead letters. Also
re-publishes events accepted in Postgres that no worker picked up (their publisher died)."""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Any

from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.steps.index import IndexContext, finish_event, index_ad
from imgdup.store.events import claim_stale_accepted, mark_event_dead
from imgdup.store.transient import retry_transient
from schemas import AdImagesCreatedV1, DeadLetterV1
from schemas.parsing import InvalidEvent, parse_ad_event
from schemas.wire import encode_key
from streams.app import StreamsApp
from streams.policy import (
    Identity,
    MessagePolicy,
    MessageRejected,
    Outgoing,
    Rejection,
    StepOutput,
    for_each_message,
    handle,
    redrive_round,
)
from streams.runtime import SharedRuntime

log = logging.getLogger(__name__)


def decode(value: bytes | None) -> AdImagesCreatedV1:
    try:
        return parse_ad_event(value)
    except InvalidEvent as invalid:
        payload = invalid.payload or {}
        event_id = payload.get("event_id")
        ad_id = payload.get("ad_id")
        raise MessageRejected(
            invalid.reason,
            invalid.detail,
            event_id=event_id if isinstance(event_id, str) else None,
            ad_id=ad_id if isinstance(ad_id, int) else None,
        ) from invalid


def register(app: StreamsApp, shared: SharedRuntime) -> None:
    @app.faust.agent(app.topics.ad_images_in, concurrency=app.settings.images_concurrency)
    async def index_ad_images(stream: Any) -> None:
        rt = await shared.get()
        ctx = await rt.index_context()

        async def on_dead(record: DeadLetterV1, event: AdImagesCreatedV1 | None) -> None:
            # A dead event is finished: `imgdup wait` stops waiting for it.
            if record.event_id is None:
                return
            payload = event.model_dump_json() if event is not None else (record.original_value or "")
            await retry_transient(
                "images.dead",
                mark_event_dead,
                rt.pool,
                event_id=record.event_id,
                ad_id=record.ad_id,
                payload=payload,
                reason=record.reason,
            )

        policy = MessagePolicy(
            dead_letters=app.topics.dead_letters,
            decode=decode,
            run=partial(_run, app, ctx),
            failure_reason="processing_error",
            identify=lambda event: Identity(event.event_id, event.ad_id),
            on_dead=on_dead,
        )
        await for_each_message(stream, partial(handle, policy))

    # Checked twice per period (at most every 30 s): an event is re-driven within 1.5 periods.
    @app.faust.timer(min(30.0, max(0.5, app.settings.redrive_after_s / 2)))  # type: ignore[untyped-decorator]
    async def redrive_accepted() -> None:
        rt = await shared.get()
        await redrive_stale_events(app, rt.pool)


async def redrive_stale_events(app: StreamsApp, pool: AsyncConnectionPool) -> int:
    """Publish again, through this worker's producer, the events accepted but never picked up.
    Never raises (streams.policy.redrive_round): a failed round is retried next period (the
    claim expires)."""

    async def body() -> int:
        stale = await claim_stale_accepted(pool, older_than_s=app.settings.redrive_after_s)
        for payload, replay in stale:
            topic = app.topics.ad_images_replay if replay else app.topics.ad_images_created
            await topic.send(key=encode_key(json.loads(payload)["ad_id"]), value=payload.encode())
        return len(stale)

    return await redrive_round("accepted events", "accepted events that no worker had picked up", body)


async def _run(app: StreamsApp, ctx: IndexContext, event: AdImagesCreatedV1) -> StepOutput:
    started = time.perf_counter()
    result = await index_ad(ctx, event)

    async def finished() -> None:
        await finish_event(ctx, event, published=len(result.candidates))
        metrics.STAGE_SECONDS.labels("ad_event").observe(time.perf_counter() - started)

    return StepOutput(
        send=[
            Outgoing(app.topics.image_candidates, key=str(event.ad_id), value=c) for c in result.candidates
        ],
        rejections=[
            Rejection(f.reason, f.detail, event_id=event.event_id, ad_id=event.ad_id, image_url=f.url)
            for f in result.failures
        ],
        then=finished,
    )
