"""Ad events -> `ingest_events`, `ads` and `images` rows: an event's processing state, from accepted to
indexed or dead (the exact answer to "is everything processed?")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from imgdup import ids
from imgdup.store.db import single_statement
from schemas import AdImagesCreatedV1


async def accept_event(pool: AsyncConnectionPool, event: AdImagesCreatedV1) -> bool:
    """Record an event accepted by the API before it is published. True when it is new."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, replay) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event.event_id, event.ad_id, event.model_dump_json(), event.replay),
        )
        return cur.rowcount == 1


async def forget_accepted_event(pool: AsyncConnectionPool, event_id: str) -> None:
    """Undo accept_event when publishing failed, so `wait` does not wait for it forever."""
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM ingest_events WHERE event_id = %s AND status = 'accepted'", (event_id,)
        )


@dataclass(frozen=True)
class EventImage:
    """An image of an event as Postgres knows it when the event's processing begins."""

    image_id: str
    url: str
    position: int
    status: str
    embedding: bytes | None
    embedding_model: str | None
    photo_embedding: bytes | None = None


_EVENT_IMAGE = (
    "image_id::text AS image_id, url, position, status, embedding, embedding_model, photo_embedding"
)

# The event, its ad and its images upserted, and what is known of the images read back: one statement
# (atomic on its own, so no BEGIN and COMMIT round trips). Its parts all see the snapshot the statement
# started with: images inserted now come from the insert's RETURNING, the others from that snapshot.
_BEGIN_EVENT = (
    "WITH e AS (INSERT INTO ingest_events (event_id, ad_id, payload, replay, status)"
    " VALUES (%(event_id)s, %(ad_id)s, %(payload)s, %(replay)s, 'processing')"
    " ON CONFLICT (event_id) DO UPDATE SET status = 'processing', updated_at = now()"
    " WHERE ingest_events.status = 'accepted'),"
    " a AS (INSERT INTO ads (ad_id, source, category, seller_id, last_event_id, created_at)"
    # A created_at in the future (a skewed portal clock) counts as now.
    " VALUES (%(ad_id)s, %(source)s, %(category)s, %(seller_id)s, %(event_id)s,"
    " LEAST(%(created_at)s::timestamptz, now()))"
    " ON CONFLICT (ad_id) DO UPDATE SET source = EXCLUDED.source,"
    " category = EXCLUDED.category, seller_id = EXCLUDED.seller_id,"
    " last_event_id = EXCLUDED.last_event_id,"
    # The portal's earliest created_at: a re-sent event never makes an ad younger.
    " created_at = LEAST(ads.created_at, EXCLUDED.created_at)),"
    " i AS (INSERT INTO images (image_id, ad_id, url, position)"
    " SELECT u.image_id, %(ad_id)s, u.url, u.position"
    " FROM unnest(%(image_ids)s::uuid[], %(urls)s::text[], %(positions)s::int[])"
    " AS u(image_id, url, position)"
    f" ON CONFLICT (image_id) DO NOTHING RETURNING {_EVENT_IMAGE})"
    " SELECT * FROM i UNION ALL"
    f" SELECT {_EVENT_IMAGE} FROM images WHERE image_id = ANY(%(image_ids)s::uuid[])"
    " AND image_id NOT IN (SELECT image_id::uuid FROM i)"
)


async def begin_event(pool: AsyncConnectionPool, event: AdImagesCreatedV1) -> list[EventImage]:
    """Upsert the event, its ad and its image rows; return the images with what is known of them."""
    urls = [str(url) for url in event.images]
    image_ids = [ids.image_id(event.ad_id, url) for url in urls]
    params = {
        "event_id": event.event_id,
        "ad_id": event.ad_id,
        "payload": event.model_dump_json(),
        "replay": event.replay,
        "source": event.source,
        "category": event.category,
        "seller_id": event.seller_id,
        "created_at": event.created_at,
        "image_ids": image_ids,
        "urls": urls,
        "positions": list(range(len(urls))),
    }
    async with single_statement(pool) as conn:
        cur = await conn.cursor(row_factory=class_row(EventImage)).execute(_BEGIN_EVENT, params)
        by_id = {row.image_id: row for row in await cur.fetchall()}
        if len(by_id) < len(set(image_ids)):
            # An image another delivery of the same ad inserted after this statement's snapshot was
            # taken (its insert then did nothing): read again, as a statement of its own sees it.
            cur = await conn.cursor(row_factory=class_row(EventImage)).execute(
                f"SELECT {_EVENT_IMAGE} FROM images WHERE image_id = ANY(%s::uuid[])", (image_ids,)
            )
            by_id = {row.image_id: row for row in await cur.fetchall()}
    return [by_id[image] for image in image_ids]


async def finish_event(pool: AsyncConnectionPool, event_id: str) -> None:
    async with single_statement(pool) as conn:  # one statement: no BEGIN and COMMIT round trips
        await conn.execute(
            "UPDATE ingest_events SET status = 'indexed', updated_at = now()"
            " WHERE event_id = %s AND status <> 'dead'",
            (event_id,),
        )


async def mark_event_dead(
    pool: AsyncConnectionPool,
    *,
    event_id: str,
    ad_id: int | None,
    payload: str,
    reason: str,
) -> None:
    """A dead event is finished: `wait` stops waiting for it. Unknown events are recorded too."""
    try:
        payload_json = json.dumps(json.loads(payload))
    except ValueError:
        payload_json = json.dumps({"unparsed": payload[:10_000]})
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, status, dead_reason)"
            " VALUES (%s, %s, %s, 'dead', %s)"
            " ON CONFLICT (event_id) DO UPDATE SET status = 'dead',"
            " dead_reason = EXCLUDED.dead_reason, updated_at = now()",
            (event_id, ad_id if ad_id is not None else 0, payload_json, reason),
        )


async def unfinished_events(pool: AsyncConnectionPool, limit: int = 10_000) -> list[str]:
    """Payloads of events accepted but not finished, oldest first (for redrive after a restart)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT payload::text FROM ingest_events WHERE status IN ('accepted', 'processing')"
            " ORDER BY accepted_at LIMIT %s",
            (limit,),
        )
        return [row[0] for row in await cur.fetchall()]


async def claim_stale_accepted(
    pool: AsyncConnectionPool, *, older_than_s: float, limit: int = 500
) -> list[tuple[str, bool]]:
    """(payload, replay) of events still 'accepted' `older_than_s` after they were recorded or last
    claimed: their publisher may have died before publishing them. Claiming moves updated_at on,
    so of several workers one re-drives each event, once per period."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE ingest_events SET updated_at = now() WHERE event_id IN ("
            " SELECT event_id FROM ingest_events WHERE status = 'accepted'"
            " AND updated_at < now() - make_interval(secs => %s)"
            " ORDER BY accepted_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING payload::text, replay",
            (older_than_s, limit),
        )
        return [(str(payload), bool(replay)) for payload, replay in await cur.fetchall()]


@dataclass(frozen=True)
class ReplayRange:
    since: datetime | None = None
    until: datetime | None = None
    ad_ids: Sequence[int] | None = None
    # Dead-lettered events too: an event that died of a bug (processing_error) is re-run after
    # the fix; one that was never an event (invalid_json, ...) is reported as unreadable.
    include_dead: bool = False

    def where(self) -> tuple[str, list[object]]:
        clauses = ["TRUE"] if self.include_dead else ["status <> 'dead'"]
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


@dataclass(frozen=True)
class StoredEvents:
    events: list[AdImagesCreatedV1]  # marked as replays, in the order they were accepted
    unreadable: list[str]  # ids of selected events whose stored payload is not an ad event


def load_events(source_dsn: str, selection: ReplayRange) -> StoredEvents:
    """Events of the source database in the order they were accepted, marked as replays."""
    where, params = selection.where()
    with psycopg.connect(source_dsn) as conn:
        rows = conn.execute(
            f"SELECT event_id, payload::text FROM ingest_events WHERE {where} ORDER BY accepted_at, event_id",
            params,
        ).fetchall()
    events: list[AdImagesCreatedV1] = []
    unreadable: list[str] = []
    for event_id, payload in rows:
        data = json.loads(payload)
        try:
            events.append(AdImagesCreatedV1.model_validate({**data, "replay": True}))
        except ValidationError:
            unreadable.append(event_id)
    return StoredEvents(events, unreadable)


async def accept_replayed_event(pool: AsyncConnectionPool, event: AdImagesCreatedV1) -> None:
    """Record a replayed event as accepted (so `imgdup wait` waits for it), also one that was dead."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, replay, status)"
            " VALUES (%s, %s, %s, true, 'accepted')"
            " ON CONFLICT (event_id) DO UPDATE SET status = 'accepted', replay = true,"
            " payload = EXCLUDED.payload, dead_reason = NULL, updated_at = now()",
            (event.event_id, event.ad_id, event.model_dump_json()),
        )
