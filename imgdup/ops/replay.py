"""Stored ad events (a range of one Postgres) -> the replay topic, flagged as replays."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from imgdup.kafka.publisher import EventPublisher
from schemas import AdImagesCreatedV1, topics


@dataclass(frozen=True)
class ReplayRange:
    since: datetime | None = None
    until: datetime | None = None
    ad_ids: Sequence[int] | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses = ["status <> 'dead'"]
        params: list[object] = []
        if self.since is not None:
            clauses.append("accepted_at >= %s")
            params.append(self.since)
        if self.until is not None:
            clauses.append("accepted_at < %s")
            params.append(self.until)
        if self.ad_ids:
            clauses.append("ad_id = ANY(%s)")
            params.append(list(self.ad_ids))
        return " AND ".join(clauses), params


def load_events(source_dsn: str, selection: ReplayRange) -> list[AdImagesCreatedV1]:
    """Events of the source database in the order they were accepted, marked as replays."""
    where, params = selection.where()
    with psycopg.connect(source_dsn) as conn:
        rows = conn.execute(
            f"SELECT payload::text FROM ingest_events WHERE {where} ORDER BY accepted_at, event_id",
            params,
        ).fetchall()
    events = []
    for (payload,) in rows:
        data = json.loads(payload)
        data["replay"] = True
        events.append(AdImagesCreatedV1.model_validate(data))
    return events


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
        async with target.connection() as conn:
            await conn.execute(
                "INSERT INTO ingest_events (event_id, ad_id, payload, replay, status)"
                " VALUES (%s, %s, %s, true, 'accepted')"
                " ON CONFLICT (event_id) DO UPDATE SET status = 'accepted', replay = true,"
                " payload = EXCLUDED.payload, dead_reason = NULL, updated_at = now()",
                (event.event_id, event.ad_id, event.model_dump_json()),
            )
        await publisher.publish(
            topics.AD_IMAGES_REPLAY.name,
            key=str(event.ad_id).encode(),
            value=event.model_dump_json().encode(),
            headers={"imgdup-replay": b"1"},
        )
        on_progress(number, len(events))
    return len(events)
