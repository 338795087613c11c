"""A database DSN in; the API app on it with a token, a publisher that only records, and a few rows
to read (two ads, a clustered pair), for tests that send the API hostile input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
from fastapi import FastAPI
from pydantic import SecretStr

from imgdup.http import deps
from imgdup.http.app import create_api
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WHEN = datetime(2024, 5, 1, 12, tzinfo=UTC)
PAIR = str(uuid.UUID(int=501))
CLUSTER = str(uuid.UUID(int=900))
BODY_CAP = 4096


class RecordingPublisher:
    """Stands in for Kafka: every publish succeeds and is kept, so ingest reaches its 202."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, bytes]] = []

    async def publish(
        self, topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        self.published.append((topic, key, value))


def image_id(ad: int) -> str:
    return str(uuid.UUID(int=ad))


def seed(dsn: str) -> None:
    """Ads 1 and 2 with one image each, a clustered duplicate pair between them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ad in (1, 2):
            conn.execute(
                "INSERT INTO ads VALUES (%s, 'olx.pt', 'cars', %s, %s, %s)", (ad, f"s{ad}", WHEN, f"e{ad}")
            )
            conn.execute(
                "INSERT INTO images (image_id, ad_id, url, position, status, width, height, first_seen_at)"
                " VALUES (%s, %s, %s, 0, 'indexed', 640, 480, %s)",
                (image_id(ad), ad, f"https://cdn.example.com/{ad}.jpg", WHEN),
            )
        conn.execute(
            "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, status, is_duplicate,"
            " confidence, cosine, phash_distance, phash_mirrored, sift_inliers, sift_mirrored, ssim,"
            " exact, embedding_model, verifier_version, decided_at)"
            " VALUES (%s, %s, %s, 1, 2, 'clustered', true, 0.9, 0.8, 4, false, 30, false, 0.75, false,"
            " 'm1', 'v1', %s)",
            (PAIR, image_id(1), image_id(2), WHEN),
        )
        conn.execute(
            "INSERT INTO duplicate_clusters VALUES (%s, 2, 2, 1, 0.9, %s, %s, NULL)", (CLUSTER, WHEN, WHEN)
        )
        for ad in (1, 2):
            conn.execute(
                "INSERT INTO cluster_members VALUES (%s, %s, %s, %s)", (image_id(ad), CLUSTER, ad, WHEN)
            )


def api_with_recording_publisher(dsn: str) -> tuple[FastAPI, RecordingPublisher]:
    """The real app on `dsn`; the rate limit set high so that it never hides a handler."""
    settings = Settings(
        database_url=SecretStr(dsn),
        kafka_bootstrap_servers="127.0.0.1:9",  # nothing listens; the recording publisher stands in
        api_token=SecretStr(TOKEN),
        api_max_body_bytes=BODY_CAP,
        api_ingest_rate_per_s=1_000_000.0,
        api_ingest_burst=1_000_000,
    )
    app = create_api(settings)
    publisher = RecordingPublisher()
    app.dependency_overrides[deps.get_publisher] = lambda: publisher
    return app, publisher
