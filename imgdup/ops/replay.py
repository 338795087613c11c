"""Stored ad events (a range of one Postgres, imgdup.store.events.load_events) -> the replay topic, flagged as
replays and recorded as accepted in the target database."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from psycopg_pool import AsyncConnectionPool

from imgdup.kafka.publisher import EventPublisher
from imgdup.store.events import accept_replayed_event
from schemas import AdImagesCreatedV1, topics
from schemas.wire import encode, encode_key


async def replay(
    events: Sequence[AdImagesCreatedV1],
    *,
    target: AsyncConnectionPool,
    publisher: EventPublisher,
    on_progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> int:
    """Record each event as accepted in the target database (so `imgdup wait` waits for it),
    then publish it on the replay topic. Re-processing an event that is already done there is
    a no-op for its rows; images embedded by another model version are embedded again."""
    for number, event in enumerate(events, start=1):
        await accept_replayed_event(target, event)
        await publisher.publish(
            topics.AD_IMAGES_REPLAY.name,
            key=encode_key(event.ad_id),
            value=encode(event),
            headers={"imgdup-replay": b"1"},
        )
        on_progress(number, len(events))
    return len(events)
