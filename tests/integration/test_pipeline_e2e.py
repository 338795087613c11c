"""End to end on the real stack: API -> tansu -> Faust worker -> Postgres, no mocks of either server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Message, Producer
from helpers.db import truncate
from helpers.photos import REPOSTED, Make, photo, screenshot
from helpers.pipeline import read_topic, wait_idle

from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.supervisor import Stack
from imgdup_core.verifier_config import DEFAULT_VERIFIER_FOR_EMBEDDER
from schemas import DeadLetterV1, DuplicateEventV1, topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class FeedAd:
    ad_id: int
    category: str | None
    images: tuple[str, ...]


# Three photos re-posted with edits in other ads (helpers.photos.REPOSTED, with distinct photos,
# one a stereo pair, that must stay apart) and one more as a screenshot of another portal's listing.
FILES: dict[str, Make] = {
    **REPOSTED,
    "rocket_screenshot.jpg": lambda: screenshot(photo("rocket")),
}
FEED = (
    FeedAd(9001, "electronics", ("coffee.jpg", "rocket.jpg")),
    FeedAd(9002, "electronics", ("coffee_flip.jpg",)),
    FeedAd(9003, "electronics", ("coffee_crop.jpg", "moto_left.jpg")),
    FeedAd(9004, None, ("astronaut.jpg",)),
    FeedAd(9005, None, ("astronaut_wm.jpg", "moto_right.jpg")),
    FeedAd(9006, None, ("astronaut_small.jpg",)),
    FeedAd(9007, "pets", ("chelsea.jpg",)),
    FeedAd(9008, "pets", ("chelsea_bright.jpg",)),
    FeedAd(9009, "electronics", ("rocket_screenshot.jpg",)),
)
EXPECTED_CLUSTERS = {
    frozenset({"coffee.jpg", "coffee_flip.jpg", "coffee_crop.jpg"}),
    frozenset({"astronaut.jpg", "astronaut_wm.jpg", "astronaut_small.jpg"}),
    frozenset({"chelsea.jpg", "chelsea_bright.jpg"}),
    # Found by the photo inside the page (imgdup_core.framing): the whole page is no match.
    frozenset({"rocket.jpg", "rocket_screenshot.jpg"}),
}
EXPECTED_PAIRS = {
    frozenset({a, b}) for cluster in EXPECTED_CLUSTERS for a in cluster for b in cluster if a < b
}


@dataclass
class Running:
    stack: Stack
    api: str
    dsn: str
    kafka: str
    server: LoopbackImageServer


@pytest.fixture(scope="module")
def photo_files() -> Mapping[str, Make]:
    return FILES


@pytest.fixture(scope="module")
def running(image_server: LoopbackImageServer, stack: Stack) -> Running:
    return Running(stack, stack.api_url, stack.dsn, stack.kafka, image_server)


def _wait_event(dsn: str, event_id: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT status FROM ingest_events WHERE event_id = %s", (event_id,)).fetchone()
        if row and row[0] in ("indexed", "dead"):
            return str(row[0])
        time.sleep(0.2)
    raise AssertionError(f"event {event_id} not finished after {timeout}s")


def _post(running: Running, ad: FeedAd) -> httpx.Response:
    body = {
        "ad_id": ad.ad_id,
        "source": "olx.pt",
        "category": ad.category,
        "seller_id": f"seller-{ad.ad_id}",
        "images": [running.server.url_for(name) for name in ad.images],
    }
    return httpx.post(f"{running.api}/api/v1/image/ingest", json=body, timeout=30)


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _db_state(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        pairs = conn.execute(
            "SELECT ia.url, ib.url, d.status, d.is_duplicate, d.confidence FROM duplicates d"
            " JOIN images ia ON ia.image_id = d.image_a JOIN images ib ON ib.image_id = d.image_b"
            " ORDER BY d.pair_id"
        ).fetchall()
        clusters = conn.execute(
            "SELECT c.cluster_id, c.size, c.merged_into, array_agg(i.url ORDER BY i.url)"
            " FROM duplicate_clusters c LEFT JOIN cluster_members m USING (cluster_id)"
            " LEFT JOIN images i USING (image_id) GROUP BY c.cluster_id ORDER BY c.cluster_id"
        ).fetchall()
        images = conn.execute(
            "SELECT image_id, status, phash, pixel_sha256 FROM images ORDER BY image_id"
        ).fetchall()
    return {"pairs": pairs, "clusters": clusters, "images": images}


def test_feed_is_verified_and_clustered_exactly(running: Running) -> None:
    for ad in FEED:
        response = _post(running, ad)
        assert response.status_code == 202, response.text
        assert response.json()["already_accepted"] is False
    wait_idle(running.api)

    state = _db_state(running.dsn)
    duplicate_pairs = {frozenset({_name(a), _name(b)}) for a, b, _s, dup, _c in state["pairs"] if dup}
    assert duplicate_pairs == EXPECTED_PAIRS
    assert all(status == "clustered" for _a, _b, status, dup, _c in state["pairs"] if dup)
    live = {frozenset(_name(u) for u in urls) for _id, _size, merged, urls in state["clusters"] if not merged}
    assert live == EXPECTED_CLUSTERS

    # Through the API: the same clusters, and each ad's duplicates with evidence.
    page = httpx.get(f"{running.api}/api/v1/clusters", params={"limit": 10}).json()
    assert page["total"] == len(EXPECTED_CLUSTERS)
    assert {frozenset(_name(i["url"]) for i in c["images"]) for c in page["clusters"]} == EXPECTED_CLUSTERS

    dups = httpx.get(f"{running.api}/api/v1/duplicates/9002").json()["duplicates"]
    assert sorted(d["ad_id"] for d in dups) == [9001, 9003]
    flip_pair = next(d for d in dups if d["ad_id"] == 9001)["pairs"][0]
    assert flip_pair["evidence"]["phash_mirrored"] or flip_pair["evidence"]["sift_mirrored"]
    assert flip_pair["evidence"]["embedding_cosine"] > 0.3
    # The whole evidence is stored: the fused score the verdict thresholds and the alignment.
    evidence = flip_pair["evidence"]
    assert evidence["score"] is not None and evidence["score"] > 0.5, evidence
    assert evidence["compared"] == "full/full" and evidence["overlap"] > 0.5, evidence
    assert evidence["sift_matches"] >= evidence["sift_inliers"] > 0, evidence
    assert httpx.get(f"{running.api}/api/v1/duplicates/9005").json()["duplicates"][0]["ad_id"] in (9004, 9006)
    # Every stored copy carries its SIFT features, so the verifier never extracts them again; both
    # are in the blob store (files under the data dir, the default), Postgres keeps their addresses.
    with psycopg.connect(running.dsn) as conn:
        blobs = conn.execute(
            "SELECT i.image_id::text, b.jpeg_sha256, b.sift_sha256,"
            " b.photo_jpeg_sha256 IS NULL OR b.photo_sift_sha256 IS NOT NULL,"
            " num_nonnulls(b.jpeg, b.photo_jpeg, b.sift, b.photo_sift)"
            " FROM image_blobs b JOIN images i USING (image_id) WHERE i.status = 'indexed'"
        ).fetchall()
    assert blobs and all(jpeg and sift and photo_ok and not bytea for _, jpeg, sift, photo_ok, bytea in blobs)
    store = FilesystemBlobStore(running.stack.settings.blob_root)
    assert all(store.get(jpeg) and store.get(sift) for _, jpeg, sift, _, _ in blobs)
    image_id, jpeg_key = blobs[0][0], blobs[0][1]
    thumbnail = httpx.get(f"{running.api}/api/v1/images/{image_id}/thumbnail")  # the API process reads it too
    assert thumbnail.status_code == 200 and thumbnail.content == store.get(jpeg_key)

    ad = httpx.get(f"{running.api}/api/v1/ads/9003").json()
    assert ad["state"] == "done"
    assert [i["status"] for i in ad["images"]] == ["indexed", "indexed"]
    assert httpx.get(f"{running.api}/api/v1/ads/424242").status_code == 404

    # The public events: one per duplicate pair (consumers dedupe by event_id), schema-valid.
    def event_id(message: Message) -> str:
        return DuplicateEventV1.model_validate_json(message.value()).event_id

    events = read_topic(running.kafka, topics.DUPLICATES.name, want=len(EXPECTED_PAIRS), key=event_id)
    parsed = {event_id(m): m for m in events}
    assert len(parsed) == len(EXPECTED_PAIRS)
    sample = DuplicateEventV1.model_validate_json(events[0].value())
    # The original is the ad the portal created first (created_at; here the accept time), not the
    # one imgdup happened to index first.
    assert sample.original.created_at is not None and sample.duplicate.created_at is not None
    assert sample.original.created_at <= sample.duplicate.created_at
    assert sample.cluster.size >= 2 and sample.replay is False


def test_publishing_the_same_events_again_changes_nothing(running: Running) -> None:
    before = _db_state(running.dsn)
    # Re-post through the API: the same payload is the same event, not published again.
    for ad in FEED:
        response = _post(running, ad)
        assert response.status_code == 202
        assert response.json()["already_accepted"] is True
    # Redeliver the stored events straight onto the topic, as a replay or a rebalance would.
    with psycopg.connect(running.dsn) as conn:
        payloads = [row[0] for row in conn.execute("SELECT payload::text FROM ingest_events")]
    producer = Producer({"bootstrap.servers": running.kafka, "partitioner": "murmur2_random"})
    for payload in payloads:
        ad_id = json.loads(payload)["ad_id"]
        producer.produce(topics.AD_IMAGES_CREATED.name, key=str(ad_id).encode(), value=payload.encode())
    # A fresh event per ad behind them (same partition) tells us when they have been consumed.
    sentinels = []
    for ad in FEED:
        event_id = f"sentinel-{ad.ad_id}"
        sentinels.append(event_id)
        value = {
            "schema_version": 1,
            "event_id": event_id,
            "ad_id": ad.ad_id,
            "source": "olx.pt",
            "category": ad.category,
            "seller_id": f"seller-{ad.ad_id}",
            "images": [running.server.url_for(name) for name in ad.images],
            "created_at": datetime.now(UTC).isoformat(),
        }
        producer.produce(topics.AD_IMAGES_CREATED.name, key=str(ad.ad_id).encode(), value=json.dumps(value))
    assert producer.flush(10) == 0
    for event_id in sentinels:
        assert _wait_event(running.dsn, event_id) == "indexed"
    wait_idle(running.api)
    assert _db_state(running.dsn) == before


def test_malformed_event_is_dead_lettered_and_the_next_one_processed(running: Running) -> None:
    producer = Producer({"bootstrap.servers": running.kafka, "partitioner": "murmur2_random"})
    key = b"9100"
    producer.produce(topics.AD_IMAGES_CREATED.name, key=key, value=b"{not json")
    producer.produce(
        topics.AD_IMAGES_CREATED.name,
        key=key,
        value=json.dumps({"schema_version": 7, "event_id": "v7", "ad_id": 9100}).encode(),
    )
    valid = {
        "schema_version": 1,
        "event_id": "after-the-bad-ones",
        "ad_id": 9100,
        "source": "olx.pl",
        "category": "pets",
        "seller_id": None,
        "images": [running.server.url_for("chelsea.jpg"), running.server.url_for("missing.jpg")],
        "created_at": datetime.now(UTC).isoformat(),
    }
    producer.produce(topics.AD_IMAGES_CREATED.name, key=key, value=json.dumps(valid).encode())
    assert producer.flush(10) == 0

    assert _wait_event(running.dsn, "after-the-bad-ones") == "indexed"
    wait_idle(running.api)
    ad = httpx.get(f"{running.api}/api/v1/ads/9100").json()
    by_url = {_name(i["url"]): i for i in ad["images"]}
    assert by_url["chelsea.jpg"]["status"] == "indexed"
    assert by_url["missing.jpg"]["status"] == "failed"
    assert by_url["missing.jpg"]["error_reason"] == "http_404"
    # The valid event's chelsea copy joined the chelsea cluster.
    dups = httpx.get(f"{running.api}/api/v1/duplicates/9100").json()["duplicates"]
    assert sorted(d["ad_id"] for d in dups) == [9007, 9008]

    letters = read_topic(running.kafka, topics.DEAD_LETTERS.name, want=3)
    records = [DeadLetterV1.model_validate_json(m.value()) for m in letters]
    reasons = sorted(r.reason for r in records)
    assert reasons == ["http_404", "invalid_json", "unsupported_schema_version"]
    bad_json = next(
        m for m in letters if DeadLetterV1.model_validate_json(m.value()).reason == "invalid_json"
    )
    headers = dict(bad_json.headers() or [])
    assert headers["imgdup-reason"] == b"invalid_json"
    assert headers["imgdup-source-topic"] == topics.AD_IMAGES_CREATED.name.encode()
    assert DeadLetterV1.model_validate_json(bad_json.value()).original_value == "{not json"
    with psycopg.connect(running.dsn) as conn:
        row = conn.execute("SELECT status, dead_reason FROM ingest_events WHERE event_id = 'v7'").fetchone()
    assert row == ("dead", "unsupported_schema_version")


def test_invalid_ingest_payload_is_422_with_a_clear_message(running: Running) -> None:
    response = httpx.post(
        f"{running.api}/api/v1/image/ingest",
        json={"ad_id": "abc", "source": "olx.pt", "images": []},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "ad_id" in body["message"] and "images" in body["message"]
    assert httpx.get(f"{running.api}/healthz").json() == {"status": "ok"}
    metrics = httpx.get(f"{running.api}/metrics").text
    assert 'imgdup_api_ingest_requests_total{status="422"}' in metrics
    assert "imgdup_work_items" in metrics


def _replay_cli(dsn: str, kafka: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": kafka}
    result = subprocess.run(
        [sys.executable, "-m", "imgdup", "replay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _membership(dsn: str) -> tuple[set[frozenset[str]], dict[str, tuple[str, bool]]]:
    with psycopg.connect(dsn) as conn:
        clusters = conn.execute(
            "SELECT array_agg(m.image_id::text) FROM cluster_members m JOIN duplicate_clusters c"
            " USING (cluster_id) WHERE c.merged_into IS NULL GROUP BY c.cluster_id"
        ).fetchall()
        pairs = conn.execute("SELECT pair_id::text, status, is_duplicate FROM duplicates").fetchall()
    return {frozenset(row[0]) for row in clusters}, {p: (s, d) for p, s, d in pairs}


def test_replaying_onto_the_same_database_changes_nothing(running: Running) -> None:
    before = _db_state(running.dsn)
    _replay_cli(running.dsn, running.kafka, "--all")
    wait_idle(running.api)
    assert _db_state(running.dsn) == before
    with psycopg.connect(running.dsn) as conn:
        replayed = conn.execute("SELECT count(*) FROM ingest_events WHERE replay").fetchone()
    assert replayed is not None and replayed[0] > 0


def test_backfill_of_a_fresh_database_from_a_replay_gives_the_same_clusters(
    running: Running, make_stack: Callable[..., Stack], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from imgdup.ops.embedded import start_broker
    from imgdup.store.db import migrate

    with psycopg.connect(running.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'imgdup_backfill'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE imgdup_backfill")
    target = running.dsn.replace("/postgres?", "/imgdup_backfill?")
    migrate(target)
    truncate(target)
    broker = start_broker(tmp_path_factory.mktemp("backfill-broker"))
    stack = make_stack(tmp_path_factory.mktemp("backfill"), target, broker.bootstrap)
    try:
        stack.start()
        _replay_cli(target, broker.bootstrap, "--all", "--from-database-url", running.dsn)
        wait_idle(stack.api_url)
        assert _membership(target) == _membership(running.dsn)
        events = read_topic(broker.bootstrap, topics.DUPLICATES.name, want=1)
        assert events and all(DuplicateEventV1.model_validate_json(m.value()).replay for m in events)
    finally:
        stack.stop()
        broker.stop()


def test_reprocessing_with_a_new_embedding_model_updates_rows_in_place(running: Running) -> None:
    def counts() -> dict[str, int]:
        with psycopg.connect(running.dsn) as conn:
            return {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                for table in ("images", "image_blobs", "duplicates", "cluster_members", "ingest_events")
            }

    before, clusters_before = counts(), _membership(running.dsn)[0]
    running.stack.stop_process("worker")
    running.stack.extra_env["IMGDUP_EMBEDDER"] = "sscd_distilled"
    # The verifier the stack ran so far (the full SSCD's default) on the distilled vectors (the
    # distilled embedder's own default is fused-v3-distilled): the same verdicts, so the rows update
    # in place.
    running.stack.extra_env["IMGDUP_VERIFIER_VERSION"] = DEFAULT_VERIFIER_FOR_EMBEDDER["sscd"]
    running.stack.extra_env["IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER"] = "true"
    running.stack.start_process("worker")
    _replay_cli(running.dsn, running.kafka, "--all")
    wait_idle(running.api)
    with psycopg.connect(running.dsn) as conn:
        models = {
            row[0]
            for row in conn.execute("SELECT DISTINCT embedding_model FROM images WHERE status = 'indexed'")
        }
    assert models and all(model.startswith("sscd-distilled") for model in models), models
    assert counts() == before  # same rows, updated in place
    assert _membership(running.dsn)[0] == clusters_before
