"""Every change of truth on the real stack (API -> tansu -> Faust workers -> Postgres): moderators'
verdicts merge and split clusters through the clusterer, a replay under a stricter verifier retracts
pairs without wedging it, and a consumer applying imgdup.cluster-changes.v1 in order holds exactly the
clusters Postgres holds (the reference consumer, tests/helpers/cluster_consumer.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

import httpx
import psycopg
import pytest
from helpers.cluster_consumer import ClusterConsumer
from helpers.photos import Make, brighter, photo, watermark
from helpers.pipeline import read_topic, wait_idle

from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.supervisor import Stack
from imgdup_core.verifier_config import default_verifier_for, with_threshold
from schemas import (
    ClusterChangeV1,
    ClustersMergedV1,
    ClusterSplitV1,
    DuplicateEventV1,
    PairRetractedV1,
    topics,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Two clusters of one motorcycle scene each: its left and right shots (a stereo pair, another shot,
# which the verifier keeps apart), each re-posted with an edit. A moderator who joins the two shots
# makes that pair the one bridge between them.
FILES: dict[str, Make] = {
    "moto_left.jpg": lambda: photo("motorcycle_left"),
    "moto_left_wm.jpg": lambda: watermark(photo("motorcycle_left")),
    "moto_right.jpg": lambda: photo("motorcycle_right"),
    "moto_right_bright.jpg": lambda: brighter(photo("motorcycle_right")),
    "coffee.jpg": lambda: photo("coffee"),
    "coffee_wm.jpg": lambda: watermark(photo("coffee")),
    "coffee_bright.jpg": lambda: brighter(photo("coffee")),
}
FEED = {
    9101: "moto_left.jpg",
    9102: "moto_left_wm.jpg",
    9103: "moto_right.jpg",
    9104: "moto_right_bright.jpg",
}
FEED |= {9105: "coffee.jpg", 9106: "coffee_wm.jpg", 9107: "coffee_bright.jpg"}


@pytest.fixture(scope="module")
def photo_files() -> Mapping[str, Make]:
    return FILES


def _live(dsn: str) -> dict[str, set[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.cluster_id::text, m.image_id::text FROM duplicate_clusters c JOIN cluster_members m"
            " USING (cluster_id) WHERE c.merged_into IS NULL AND c.dissolved_at IS NULL"
        ).fetchall()
    clusters: dict[str, set[str]] = {}
    for cluster, image in rows:
        clusters.setdefault(cluster, set()).add(image)
    return clusters


def _names(dsn: str, clusters: dict[str, set[str]]) -> set[frozenset[str]]:
    with psycopg.connect(dsn) as conn:
        url = dict(conn.execute("SELECT image_id::text, url FROM images").fetchall())
    return {frozenset(url[i].rsplit("/", 1)[-1] for i in members) for members in clusters.values()}


def _changes(stack: Stack) -> list[ClusterChangeV1]:
    messages = read_topic(stack.kafka, topics.CLUSTER_CHANGES.name, quiet=4.0, timeout=60)
    return [ClusterChangeV1.model_validate_json(m.value()) for m in messages]


def _consumed(changes: list[ClusterChangeV1]) -> dict[str, set[str]]:
    consumer = ClusterConsumer()
    for change in changes:
        consumer.apply(change)
    return consumer.clusters


def _verdict(stack: Stack, pair_id: str, verdict: str) -> None:
    body = {"verdict": verdict, "moderator": "ana", "note": "integration"}
    response = httpx.post(f"{stack.api_url}/api/v1/pairs/{pair_id}/verdict", json=body, timeout=30)
    assert response.status_code == 200, response.text


def test_moderators_merge_and_split_clusters_through_the_clusterer(
    stack: Stack, image_server: LoopbackImageServer
) -> None:
    for ad, name in FEED.items():
        body = {"ad_id": ad, "source": "olx.pt", "images": [image_server.url_for(name)]}
        assert httpx.post(f"{stack.api_url}/api/v1/image/ingest", json=body, timeout=30).status_code == 202
    wait_idle(stack.api_url)
    before = _live(stack.dsn)
    assert _names(stack.dsn, before) == {
        frozenset({"moto_left.jpg", "moto_left_wm.jpg"}),
        frozenset({"moto_right.jpg", "moto_right_bright.jpg"}),
        frozenset({"coffee.jpg", "coffee_wm.jpg", "coffee_bright.jpg"}),
    }
    # The stereo pair: a candidate the verifier rejected, between the two motorcycle clusters.
    with psycopg.connect(stack.dsn) as conn:
        row = conn.execute(
            "SELECT d.pair_id::text FROM duplicates d JOIN images ia ON ia.image_id = d.image_a"
            " JOIN images ib ON ib.image_id = d.image_b WHERE d.status = 'rejected'"
            " AND ia.url LIKE '%%/moto_%%' AND ib.url LIKE '%%/moto_%%'"
            " AND (ia.url LIKE '%%left%%') <> (ib.url LIKE '%%left%%') ORDER BY d.cosine DESC LIMIT 1"
        ).fetchone()
    assert row is not None, "no rejected pair between the two shots"
    (bridge,) = row

    _verdict(stack, bridge, "confirmed")
    wait_idle(stack.api_url)
    merged = _live(stack.dsn)
    assert len(merged) == 2
    changes = _changes(stack)
    merges = [c.root for c in changes if isinstance(c.root, ClustersMergedV1)]
    assert len(merges) == 1 and merges[0].pair_id == bridge and merges[0].survivor in merged
    assert _consumed(changes) == merged

    _verdict(stack, bridge, "not_duplicate")
    wait_idle(stack.api_url)
    after = _live(stack.dsn)
    assert sorted(map(sorted, after.values())) == sorted(map(sorted, before.values()))
    changes = _changes(stack)
    kinds = [c.root.type for c in changes]
    assert kinds[-2:] == ["pair_retracted", "cluster_split"], kinds
    retracted, split = changes[-2].root, changes[-1].root
    assert isinstance(retracted, PairRetractedV1) and isinstance(split, ClusterSplitV1)
    assert (retracted.pair_id, retracted.by, retracted.moderator) == (bridge, "moderator", "ana")
    assert split.cluster_id == merges[0].survivor and len(split.pieces) == 2 and split.left == []
    assert _consumed(changes) == after
    # The duplicate event of the confirmed pair went out on the public duplicates topic too.
    duplicates = read_topic(stack.kafka, topics.DUPLICATES.name, quiet=3.0, timeout=60)
    assert bridge in {DuplicateEventV1.model_validate_json(m.value()).pair_id for m in duplicates}


def _stricter_threshold(dsn: str) -> float:
    """A threshold between the clustered pairs' fused scores: the lowest-scored are rejected by it."""
    with psycopg.connect(dsn) as conn:
        scores = sorted(
            float(score)
            for (score,) in conn.execute(
                "SELECT score FROM duplicates WHERE clustered_at IS NOT NULL"
            ).fetchall()
        )
    assert scores and scores[0] < 0.999999, scores
    return min(0.999999, (scores[0] + scores[-1]) / 2) if scores[0] < scores[-1] else 0.999999


def test_a_stricter_verifier_replay_retracts_and_never_wedges(stack: Stack) -> None:
    threshold = _stricter_threshold(stack.dsn)
    # The stack runs the full SSCD's default verifier (IMGDUP_VERIFIER_VERSION unset).
    strict_version = with_threshold(default_verifier_for("sscd"), threshold).version
    stack.stop_process("worker")
    stack.extra_env["IMGDUP_VERIFIER_THRESHOLD"] = str(threshold)
    stack.start_process("worker")
    env = {**os.environ, "DATABASE_URL": stack.dsn, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka}
    replayed = subprocess.run(
        [sys.executable, "-m", "imgdup", "replay", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    waited = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgdup",
            "wait",
            "--data-dir",
            str(stack.settings.data_dir),
            "--timeout",
            "180",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr

    with psycopg.connect(stack.dsn) as conn:
        stuck = conn.execute(
            "SELECT count(*) FROM duplicates WHERE status IN ('candidate', 'verified')"
        ).fetchone()
        strict = conn.execute(
            "SELECT count(*) FROM duplicates WHERE verifier_version = %s AND replay", (strict_version,)
        ).fetchone()
    assert stuck == (0,)
    assert strict is not None and strict[0] > 0  # the replay was verified again, by the strict version
    changes = _changes(stack)
    retractions = [c.root for c in changes if isinstance(c.root, PairRetractedV1) and c.root.by == "verifier"]
    assert retractions and all(r.verifier_version == strict_version for r in retractions)
    assert _consumed(changes) == _live(stack.dsn)
    dead = read_topic(stack.kafka, topics.DEAD_LETTERS.name, quiet=3.0, timeout=30)
    assert not [m for m in dead if b"clustering_error" in m.value()]
