"""agents.clusterer's periodic re-drive on a real Postgres, without a broker: a clusterer-role worker
hands the clusterer again every pair it has still to settle (and, with none left, one pair whose
changes are unpublished), so compose and Helm converge without `imgdup up`'s start-time re-drive."""

from __future__ import annotations

import inspect
from typing import Any

import psycopg

from agents import register_roles
from agents.clusterer import UnsettledRedrive
from imgdup.settings import Settings
from schemas import PairReviewV1
from streams.app import StreamsApp, build_app
from streams.runtime import SharedRuntime

STUCK = "00000000-0000-0000-0000-0000000000c1"  # rejected by a replay, still an edge
SETTLED = "00000000-0000-0000-0000-0000000000c2"  # rejected, never clustered: nothing to do


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO ads (ad_id, source, last_event_id) VALUES (1, 'test', 'evt-1')")
        conn.execute(
            "INSERT INTO images (image_id, ad_id, url, position) VALUES"
            " ('00000000-0000-0000-0000-00000000000a', 1, 'https://a.example/a.jpg', 0),"
            " ('00000000-0000-0000-0000-00000000000b', 1, 'https://a.example/b.jpg', 1)"
        )
        conn.execute(
            "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, cosine, status, decided_at,"
            " clustered_at) SELECT p::uuid, '00000000-0000-0000-0000-00000000000a',"
            " '00000000-0000-0000-0000-00000000000b', 1, 1, 0.9, 'rejected', now(), c"
            " FROM (VALUES (%s, now()), (%s, NULL::timestamptz)) AS v(p, c)",
            (STUCK, SETTLED),
        )


def _clusterer_app(dsn: str) -> tuple[StreamsApp, SharedRuntime]:
    # A tiny period: the second round re-drives what the first saw (numbers of its own, UnsettledRedrive).
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url=dsn,
        worker_roles=["clusterer"],
        redrive_after_s=1e-6,
    )
    app = build_app(settings)
    return app, register_roles(app, ["clusterer"])


async def _run_periodic_tasks(app: StreamsApp, rounds: int = 2) -> list[PairReviewV1]:
    """Runs `rounds` times each task the roles registered (the function under Faust's timer loop)
    and returns the reviews they published on the clusterer's input topic."""
    sent: list[PairReviewV1] = []

    async def send(*, key: Any, value: bytes, **_: Any) -> None:
        review = PairReviewV1.model_validate_json(value)
        assert key == review.pair_id.encode()
        sent.append(review)

    app.topics.pairs_verified.send = send  # type: ignore[method-assign]
    for _ in range(rounds):
        for task in app.faust._app_tasks:
            await inspect.unwrap(task)()
    return sent


async def test_the_clusterer_role_re_drives_pairs_it_has_still_to_settle(clean_db: str) -> None:
    _seed(clean_db)
    app, shared = _clusterer_app(clean_db)
    try:
        assert [r.pair_id for r in await _run_periodic_tasks(app)] == [STUCK]
    finally:
        await shared.close()


async def test_with_none_unsettled_a_pair_with_unpublished_changes_is_re_driven(clean_db: str) -> None:
    """The outbox is published by the clusterer's next step: any review makes one."""
    _seed(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE duplicates SET clustered_at = NULL")
        conn.execute(
            "INSERT INTO cluster_changes (event_id, type, pair_id, cluster_id, message_key, payload)"
            " VALUES ('00000000-0000-0000-0000-0000000000e1', 'pair_retracted', %s, NULL, '1', '{}')",
            (SETTLED,),
        )
    app, shared = _clusterer_app(clean_db)
    try:
        assert [r.pair_id for r in await _run_periodic_tasks(app)] == [SETTLED]
    finally:
        await shared.close()


def test_a_pair_is_re_driven_after_a_period_unsettled_then_once_per_period() -> None:
    now = [0.0]
    redrive = UnsettledRedrive(60.0, clock=lambda: now[0])
    assert redrive.due(["p1"]) == []  # just seen: probably on its way already
    now[0] = 30.0
    assert redrive.due(["p1", "p2"]) == []
    now[0] = 60.0
    assert redrive.due(["p1", "p2"]) == ["p1"]
    now[0] = 90.0
    assert redrive.due(["p1", "p2"]) == ["p2"]  # p1 was sent 30 s ago: the clusterer may lag
    now[0] = 120.0
    assert redrive.due(["p1"]) == ["p1"]  # p2 settled: forgotten
    now[0] = 150.0
    assert redrive.due(["p2"]) == []  # unsettled again: a new first sighting
