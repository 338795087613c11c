"""imgdup replay's selection on a real Postgres: which stored events are replayed (dead ones too, when
asked or when ads are named), and the target recording them as accepted again; no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from imgdup.cli import build_parser, replay_range
from imgdup.ops.replay import replay
from imgdup.store.db import open_pool
from imgdup.store.events import ReplayRange, load_events


def _payload(event_id: str, ad_id: int) -> str:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "ad_id": ad_id,
            "source": "olx.pt",
            "images": [f"https://cdn.example.com/{ad_id}.jpg"],
            "created_at": "2026-01-01T00:00:00Z",
        }
    )


def _seed(dsn: str) -> None:
    rows = [
        ("evt-ok", 5, _payload("evt-ok", 5), "indexed", None),
        # Issue 12: the ad a bad redirect killed (processing_error) must be recoverable.
        ("evt-dead", 6, _payload("evt-dead", 6), "dead", "processing_error"),
        # A value that never was an event: nothing to replay.
        ("evt-garbage", 0, json.dumps({"unparsed": '{"ad_id": 1,'}), "dead", "invalid_json"),
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for number, (event_id, ad, payload, status, reason) in enumerate(rows):
            conn.execute(
                "INSERT INTO ingest_events (event_id, ad_id, payload, status, dead_reason, accepted_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (event_id, ad, payload, status, reason, datetime(2026, 1, 1, number, tzinfo=UTC)),
            )


def test_dead_events_are_left_out_unless_asked_for(clean_db: str) -> None:
    _seed(clean_db)
    plain = load_events(clean_db, ReplayRange())
    assert [e.event_id for e in plain.events] == ["evt-ok"] and plain.unreadable == []

    with_dead = load_events(clean_db, ReplayRange(include_dead=True))
    assert [e.event_id for e in with_dead.events] == ["evt-ok", "evt-dead"]
    assert all(e.replay for e in with_dead.events)
    assert with_dead.unreadable == ["evt-garbage"]  # reported, not a crash

    by_ad = load_events(clean_db, ReplayRange(ad_ids=[6], include_dead=True))
    assert [e.event_id for e in by_ad.events] == ["evt-dead"]


@pytest.mark.parametrize(
    "argv,include_dead",
    [
        (["replay", "--all"], False),
        (["replay", "--all", "--include-dead"], True),
        (["replay", "--since", "2026-01-01T00:00:00+00:00"], False),
        (["replay", "--ad-ids", "6,7"], True),  # named ads: whatever became of them
    ],
)
def test_the_command_line_selects_dead_events_when_asked_or_when_ads_are_named(
    argv: list[str], include_dead: bool
) -> None:
    selection = replay_range(build_parser().parse_args(argv))
    assert selection.include_dead is include_dead


class Published:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def publish(self, topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
        self.messages.append({"topic": topic, "key": key, "value": json.loads(value)})


async def test_a_replayed_dead_event_is_accepted_again_and_published(clean_db: str) -> None:
    _seed(clean_db)
    stored = load_events(clean_db, ReplayRange(ad_ids=[6], include_dead=True))
    pool = await open_pool(clean_db, max_size=1)
    published = Published()
    try:
        assert await replay(stored.events, target=pool, publisher=published) == 1  # type: ignore[arg-type]
    finally:
        await pool.close()
    [message] = published.messages
    assert message["key"] == b"6" and message["value"]["event_id"] == "evt-dead"
    assert message["value"]["replay"] is True
    with psycopg.connect(clean_db) as conn:
        row = conn.execute(
            "SELECT status, dead_reason FROM ingest_events WHERE event_id = 'evt-dead'"
        ).fetchone()
    assert row == ("accepted", None)  # `imgdup wait` waits for it; the images agent takes it from here
