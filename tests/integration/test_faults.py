"""Crash safety on the real stack: SIGKILL each worker role, the broker, Postgres mid-feed; the
final Postgres state must equal that of an undisturbed run of the same feed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from helpers.pipeline import read_topic

from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.demo.synthetic import SyntheticAd, build_synthetic_feed
from imgdup.ops.embedded import Postgres, start_broker
from imgdup.ops.supervisor import Stack
from schemas import DuplicateEventV1, topics
from streams.liveness import check_health, write_health

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLE_GROUPS = [["images"], ["verifier"], ["clusterer"]]


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[SyntheticAd], LoopbackImageServer]]:
    root = tmp_path_factory.mktemp("synthetic")
    ads, _truth = build_synthetic_feed(root, originals=140, copies=60)
    with LoopbackImageServer(root) as server:
        yield ads, server


@dataclass
class Run:
    stack: Stack
    dsn: str
    kafka: str


def _start(make_stack: Callable[..., Stack], dsn: str, data_dir: Path) -> Run:
    broker = start_broker(data_dir / "tansu")
    stack = make_stack(
        data_dir,
        dsn,
        broker.bootstrap,
        worker_groups=ROLE_GROUPS,
        env={
            "IMGDUP_EMBEDDER": "sscd_distilled",
            # Pinned, not a default: fused-v3 on the distilled vectors (the cheaper embedder), the verdicts
            # this test was written against (sscd_distilled's default is fused-v3-distilled,
            # sscd's fused-v26).
            "IMGDUP_VERIFIER_VERSION": "fused-v3",
            "IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER": "true",
            # Candidates are every neighbour above the cut-off, never a top-K cut: the pair set is
            # then independent of the order in which images arrive, which a crash changes.
            "IMGDUP_ANN_TOP_K": "50",
            "IMGDUP_ANN_MIN_SCORE": "0.8",
        },
    )
    # The test owns this broker: Stack treats it as external, we restart it ourselves.
    stack.broker = broker
    stack.start()  # on failure it stops its processes and this broker
    return Run(stack, dsn, broker.bootstrap)


def _post_all(run: Run, ads: list[SyntheticAd], server: LoopbackImageServer) -> None:
    with httpx.Client(timeout=30) as client:
        for ad in ads:
            response = client.post(
                f"{run.stack.api_url}/api/v1/image/ingest",
                json={
                    "ad_id": ad.ad_id,
                    "source": "olx.pt",
                    "category": ad.category,
                    "seller_id": f"s{ad.ad_id % 17}",
                    "images": [server.url_for(name) for name in ad.images],
                },
            )
            assert response.status_code == 202, response.text


def _progress(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        events = dict(conn.execute("SELECT status, count(*) FROM ingest_events GROUP BY status").fetchall())
        pairs = dict(conn.execute("SELECT status, count(*) FROM duplicates GROUP BY status").fetchall())
    return {**{f"events_{k}": v for k, v in events.items()}, **{f"pairs_{k}": v for k, v in pairs.items()}}


def _wait_for(dsn: str, predicate: Callable[[dict[str, int]], bool], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    progress: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            progress = _progress(dsn)
        except psycopg.OperationalError:
            progress = {}
        else:
            if predicate(progress):
                return
        time.sleep(0.2)
    raise AssertionError(f"condition not reached in {timeout}s: {progress}")


def _idle(p: dict[str, int]) -> bool:
    unfinished = sum(
        p.get(k, 0) for k in ("events_accepted", "events_processing", "pairs_candidate", "pairs_verified")
    )
    return unfinished == 0 and p.get("events_indexed", 0) + p.get("events_dead", 0) > 0


def _state(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        pairs = {
            str(pair): (status, dup, None if conf is None else round(conf, 4))
            for pair, status, dup, conf in conn.execute(
                "SELECT pair_id, status, is_duplicate, confidence FROM duplicates"
            )
        }
        members = conn.execute(
            "SELECT c.cluster_id, array_agg(m.image_id::text ORDER BY m.image_id) FROM duplicate_clusters c"
            " JOIN cluster_members m USING (cluster_id) WHERE c.merged_into IS NULL GROUP BY c.cluster_id"
        ).fetchall()
        sizes = conn.execute("SELECT sum(size) FROM duplicate_clusters WHERE merged_into IS NULL").fetchone()
        images = dict(conn.execute("SELECT image_id::text, status FROM images").fetchall())
        events = dict(conn.execute("SELECT event_id, status FROM ingest_events").fetchall())
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("images", "image_blobs", "duplicates", "cluster_members", "ingest_events", "ads")
        }
    return {
        "pairs": pairs,
        "clusters": sorted(tuple(m) for _id, m in members),
        "cluster_size_total": sizes[0] if sizes else None,
        "images": images,
        "events": events,
        "counts": counts,
    }


def _public_events(kafka: str) -> list[DuplicateEventV1]:
    # End offsets are unreliable on tansu, so read until the topic has been quiet for a few seconds.
    messages = read_topic(kafka, topics.DUPLICATES.name, quiet=4)
    return [DuplicateEventV1.model_validate_json(m.value()) for m in messages]


Disturb = Callable[[Run, Postgres], None]


def _run(
    make_stack: Callable[..., Stack],
    feed: tuple[list[SyntheticAd], LoopbackImageServer],
    pg: Postgres,
    truncate: Callable[[], None],
    tmp: Path,
    disturb: Disturb | None,
) -> dict[str, Any]:
    ads, server = feed
    truncate()
    run = _start(make_stack, pg.dsn, tmp)  # stops what it started when it fails
    try:
        _post_all(run, ads, server)
        if disturb is not None:
            disturb(run, pg)
        _wait_for(pg.dsn, _idle)
        state = _state(pg.dsn)
        time.sleep(6)  # one heartbeat interval after the last commit
        state["health"] = {
            path.name: check_health(path, max_age_s=30) for path in (tmp / "health").glob("*.json")
        }
        if disturb is None or disturb.__name__ != "_restart_broker":
            # Nothing lost: every clustered pair reached the public topic (repeats allowed, by id).
            published = {e.event_id for e in _public_events(run.kafka)}
            clustered = sum(1 for status, _d, _c in state["pairs"].values() if status == "clustered")
            assert len(published) == clustered
        return state
    finally:
        run.stack.postgres = None  # the session's server: not the stack's to stop
        run.stack.stop()
        assert run.stack.broker is not None
        run.stack.broker.stop()


@pytest.fixture(scope="module")
def baseline(
    make_stack: Callable[..., Stack],
    feed: tuple[list[SyntheticAd], LoopbackImageServer],
    pg_server: Postgres,
    truncate_db: Callable[[], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    state = _run(make_stack, feed, pg_server, truncate_db, tmp_path_factory.mktemp("baseline"), None)
    assert state["counts"]["ingest_events"] == len(feed[0])
    assert len(state["clusters"]) > 10, "the feed should produce clusters"
    assert any(status == "rejected" for status, _d, _c in state["pairs"].values())
    return state


def test_workers_report_live_after_a_run(baseline: dict[str, Any], tmp_path: Path) -> None:
    # The baseline's heartbeat files were written while it ran; a stale one is reported dead.
    stale = tmp_path / "health.json"
    write_health(
        stale, {"pid": 1, "at": time.time() - 100, "last_commit": 0, "last_message_in": 0, "healthy": True}
    )
    healthy, reason = check_health(stale, max_age_s=30)
    assert not healthy and "old" in reason
    assert baseline["health"], "no heartbeat file was written"
    for name, (healthy, reason) in baseline["health"].items():
        assert healthy, f"{name}: {reason}"


def _kill_role(role: str, after: Callable[[dict[str, int]], bool]) -> Disturb:
    def disturb(run: Run, pg: Postgres) -> None:
        _wait_for(pg.dsn, after, timeout=120)
        name = f"worker-{role}"
        run.stack.kill_process(name)
        run.stack.start_process(name)

    disturb.__name__ = f"_kill_{role}"
    return disturb


def _restart_broker(run: Run, pg: Postgres) -> None:
    _wait_for(pg.dsn, lambda p: p.get("events_indexed", 0) >= 60, timeout=120)
    assert run.stack.broker is not None
    run.stack.broker.process.kill()  # tansu keeps topics in memory: they are gone now
    run.stack.broker.process.wait()
    run.stack.restart_broker()


def _restart_postgres(run: Run, pg: Postgres) -> None:
    _wait_for(pg.dsn, lambda p: p.get("events_indexed", 0) >= 60, timeout=120)
    pg.stop()
    time.sleep(2)  # workers see connection errors and retry; nothing is dead-lettered
    pg.start()


def _kill_postgres(run: Run, pg: Postgres) -> None:
    """SIGKILL the postmaster of the Postgres the stack owns, as `imgdup up` owns its embedded one;
    the stack's supervision pass restarts it, and `imgdup wait` rides out the outage."""
    _wait_for(pg.dsn, lambda p: p.get("events_indexed", 0) >= 60, timeout=120)
    run.stack.postgres = pg  # handed back in _run before the stack stops (the session's server)
    pid = pg.postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not run.stack.check_postgres():  # what serve_forever does every half second
        assert time.monotonic() < deadline, "the stack never noticed the killed postmaster"
        time.sleep(0.5)
    waited = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgdup",
            "wait",
            "--data-dir",
            str(run.stack.settings.data_dir),
            "--timeout",
            "240",
        ],
        env={k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith("done:"), waited.stdout


def _graceful_stop(role: str) -> Disturb:
    def disturb(run: Run, pg: Postgres) -> None:
        _wait_for(pg.dsn, lambda p: p.get("events_indexed", 0) >= 40, timeout=120)
        name = f"worker-{role}"
        run.stack.stop_process(name, timeout=30)  # SIGTERM; SIGKILL only after 30 s
        assert run.stack.processes[name].returncode != -9, "the worker had to be killed"
        run.stack.start_process(name)

    disturb.__name__ = f"_graceful_{role}"
    return disturb


DISTURBANCES: dict[str, Disturb] = {
    "kill-images": _kill_role("images", lambda p: p.get("events_indexed", 0) >= 50),
    "kill-verifier": _kill_role(
        "verifier",
        lambda p: p.get("pairs_rejected", 0) + p.get("pairs_verified", 0) + p.get("pairs_clustered", 0) >= 10,
    ),
    "kill-clusterer": _kill_role("clusterer", lambda p: p.get("pairs_clustered", 0) >= 5),
    "sigterm-images": _graceful_stop("images"),
    "broker-restart": _restart_broker,
    "postgres-restart": _restart_postgres,
    "postgres-killed": _kill_postgres,
}


@pytest.mark.parametrize("name", list(DISTURBANCES))
def test_disturbed_run_ends_in_the_same_state(
    name: str,
    baseline: dict[str, Any],
    make_stack: Callable[..., Stack],
    feed: tuple[list[SyntheticAd], LoopbackImageServer],
    pg_server: Postgres,
    truncate_db: Callable[[], None],
    tmp_path: Path,
) -> None:
    state = _run(make_stack, feed, pg_server, truncate_db, tmp_path, DISTURBANCES[name])
    assert all(healthy for healthy, _reason in state["health"].values()), state["health"]
    assert state["counts"] == baseline["counts"]
    assert state["events"] == baseline["events"]
    assert state["images"] == baseline["images"]
    assert state["pairs"] == baseline["pairs"]
    assert state["clusters"] == baseline["clusters"]
