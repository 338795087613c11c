"""Consumes imgdup.pairs-verified.v1 (key pair_id, VerifiedPairV1) -> grows, creates or merges
duplicate clusters in Postgres and produces the public imgdup.duplicates.v1 (key ad_id,
DuplicateEventV1). Single partition, single writer: merges never race."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from pydantic import ValidationError

from imgdup import metrics
from imgdup.store import repository
from schemas import VerifiedPairV1
from streams import app as streams_app
from streams.deadletter import dead_letter
from streams.runtime import Runtime, for_each_message, get_runtime, retry_transient

log = logging.getLogger(__name__)


async def handle_message(rt: Runtime, message: Any) -> None:
    try:
        pair = VerifiedPairV1.model_validate_json(message.value or b"")
    except ValidationError as exc:
        await dead_letter(message, reason="invalid_verified_pair", error=exc)
        return
    started = time.perf_counter()
    try:
        event = await retry_transient("clusterer", lambda: repository.cluster_pair(rt.pool, pair))
    except Exception as exc:
        log.exception("pair %s could not be clustered", pair.pair_id)
        await dead_letter(message, reason="clustering_error", error=exc)
        return
    metrics.STAGE_SECONDS.labels("cluster").observe(time.perf_counter() - started)
    if event is None:
        return
    fut = await streams_app.duplicates.send(
        key=str(event.duplicate.ad_id).encode(),
        value=event.model_dump_json().encode(),
        headers={"imgdup-event-id": event.event_id.encode()},
    )
    await fut
    metrics.DUPLICATES_FOUND.inc()


@streams_app.app.agent(streams_app.pairs_verified, concurrency=1)
async def cluster_verified_pairs(stream: Any) -> None:
    rt = await get_runtime(streams_app.settings)
    await for_each_message(stream, partial(handle_message, rt))
