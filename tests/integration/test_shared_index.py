"""Two images worker processes in one consumer group on one pgvector index: the feed split between
them, and every candidate pair one worker finds on the same feed found too."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import psycopg
import pytest
from helpers.photos import REPOSTED, Make
from helpers.pipeline import wait_idle
from psycopg import sql

from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.embedded import free_port, start_broker
from imgdup.ops.supervisor import Stack
from imgdup.settings import ALL_ROLES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MakeStack = Callable[..., Stack]
# One photo per ad, so that the ads (the topic's keys) spread over the partitions: with 4
# partitions and 2 consumers, 11 keys all landing on one consumer's 2 partitions is 2 ** -10.
FEED = {9100 + k: name for k, name in enumerate(sorted(REPOSTED))}
DUPLICATES = {
    frozenset(pair)
    for cluster in (
        ("coffee.jpg", "coffee_flip.jpg", "coffee_crop.jpg"),
        ("astronaut.jpg", "astronaut_wm.jpg", "astronaut_small.jpg"),
        ("chelsea.jpg", "chelsea_bright.jpg"),
    )
    for pair in ((a, b) for a in cluster for b in cluster if a < b)
}


@pytest.fixture(scope="module")
def photo_files() -> Mapping[str, Make]:
    return REPOSTED


def _reset(dsn: str, truncate_db: Callable[[], None]) -> None:
    """Empty the pipeline's tables and drop the pgvector tables (the vector index goes too)."""
    truncate_db()
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('imgdup_vector_spaces') IS NOT NULL").fetchone()
        if exists and exists[0]:
            for (table,) in conn.execute("SELECT table_name FROM imgdup_vector_spaces").fetchall():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            conn.execute("TRUNCATE imgdup_vector_spaces")


def _with_metrics_ports(stack: Stack) -> dict[str, int]:
    """Each worker process gets a /metrics port of its own (IMGDUP_WORKER_METRICS_PORT), by name:
    processes of the same roles share a heartbeat file, not their counters."""
    ports: dict[str, int] = {}
    spawn = stack._spawn

    def spawn_with_port(name: str, argv: list[str]) -> None:
        if not name.startswith("worker"):
            spawn(name, argv)
            return
        ports[name] = free_port()
        saved = dict(stack.extra_env)
        stack.extra_env["IMGDUP_WORKER_METRICS_PORT"] = str(ports[name])
        try:
            spawn(name, argv)
        finally:
            stack.extra_env = saved

    stack._spawn = spawn_with_port  # type: ignore[method-assign]
    return ports


def _ad_events_indexed(port: int) -> int:
    """The ad events a worker process finished, from its own counters."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(r'^imgdup_stage_seconds_count\{stage="ad_event"\} (\S+)$', text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def _run_feed(
    make_stack: MakeStack,
    dsn: str,
    server: LoopbackImageServer,
    data_dir: Path,
    groups: list[list[str]],
) -> tuple[set[frozenset[str]], set[frozenset[str]], dict[str, int]]:
    """(candidate pairs, duplicate pairs, worker process -> ad events it received) of the feed, on a
    broker of its own (the other run's events stay out of it)."""
    broker = start_broker(data_dir / "tansu")
    stack = make_stack(
        data_dir, dsn, broker.bootstrap, worker_groups=groups, extra_settings={"vector_index": "pgvector"}
    )
    ports = _with_metrics_ports(stack)
    try:
        stack.start()
        for ad_id, name in FEED.items():
            body = {"ad_id": ad_id, "source": "olx.pt", "images": [server.url_for(name)]}
            response = httpx.post(f"{stack.api_url}/api/v1/image/ingest", json=body, timeout=30)
            assert response.status_code == 202, response.text
            time.sleep(0.3)  # a trickle, as a portal sends: ads are indexed while others are
        wait_idle(stack.api_url, timeout=240)
        consumed = {
            name: _ad_events_indexed(ports[name])
            for name, roles in stack.workers().items()
            if "images" in roles
        }
    finally:
        stack.stop()
        broker.stop()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT ia.url, ib.url, d.is_duplicate FROM duplicates d"
            " JOIN images ia ON ia.image_id = d.image_a JOIN images ib ON ib.image_id = d.image_b"
        ).fetchall()
    candidates = {frozenset(u.rsplit("/", 1)[-1] for u in (a, b)) for a, b, _ in rows}
    duplicates = {frozenset(u.rsplit("/", 1)[-1] for u in (a, b)) for a, b, dup in rows if dup}
    return candidates, duplicates, consumed


@pytest.fixture(scope="module")
def one_worker(
    make_stack: MakeStack,
    pg_dsn: str,
    image_server: LoopbackImageServer,
    truncate_db: Callable[[], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[set[frozenset[str]], set[frozenset[str]]]]:
    _reset(pg_dsn, truncate_db)
    candidates, duplicates, _ = _run_feed(
        make_stack, pg_dsn, image_server, tmp_path_factory.mktemp("one"), [list(ALL_ROLES)]
    )
    yield candidates, duplicates
    _reset(pg_dsn, truncate_db)


def test_two_images_workers_share_one_index(
    make_stack: MakeStack,
    pg_dsn: str,
    image_server: LoopbackImageServer,
    truncate_db: Callable[[], None],
    tmp_path_factory: pytest.TempPathFactory,
    one_worker: tuple[set[frozenset[str]], set[frozenset[str]]],
) -> None:
    single_candidates, single_duplicates = one_worker
    assert single_duplicates == DUPLICATES
    _reset(pg_dsn, truncate_db)
    candidates, duplicates, consumed = _run_feed(
        make_stack,
        pg_dsn,
        image_server,
        tmp_path_factory.mktemp("two"),
        # Two processes of the images role alone: one consumer group, so they split the topic.
        [["images"], ["images"], ["verifier", "clusterer"]],
    )
    # Both processes indexed ad events: the feed was split between them. (An event may be
    # indexed twice after a rebalance hands an unacknowledged one over: idempotent.)
    assert len(consumed) == 2 and all(consumed.values()), consumed
    assert sum(consumed.values()) >= len(FEED), consumed
    # One consumer group: not every ad indexed by both, as two groups would.
    assert sum(consumed.values()) < 2 * len(FEED), consumed
    # Nothing missed: an image indexed in one process is found by the other's searches.
    assert candidates == single_candidates
    assert duplicates == DUPLICATES
