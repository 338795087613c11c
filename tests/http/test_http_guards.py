"""API guards on a real Postgres: bearer token on every route but the probes, per-caller ingest rate
limit, body cap, and settings that refuse placeholder secrets or an open API in production."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from imgdup.http.app import create_api
from imgdup.http.auth import new_credential
from imgdup.http.limits import RateLimiter
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"
BODY = {"ad_id": 1, "source": "olx.pt", "images": ["https://cdn.example.com/a.jpg"]}


def _settings(dsn: str, token: str | None) -> Settings:
    return Settings(
        database_url=SecretStr(dsn),
        kafka_bootstrap_servers="127.0.0.1:9",  # nothing listens: publishing would fail, guards act first
        api_token=SecretStr(token) if token else None,
        api_ingest_rate_per_s=1.0,
        api_ingest_burst=2,
        api_max_body_bytes=2048,
    )


@pytest.fixture
def client(clean_db: str) -> Iterator[TestClient]:
    with TestClient(create_api(_settings(clean_db, TOKEN))) as test_client:
        yield test_client


@pytest.fixture
def open_api(clean_db: str) -> Iterator[FastAPI]:
    """No token configured: the limiter tells clients apart by their address."""
    app = create_api(_settings(clean_db, None))
    with TestClient(app):  # runs the lifespan once for every client below
        yield app


def test_ingest_needs_the_token(client: TestClient) -> None:
    assert client.post("/api/v1/image/ingest", json=BODY).status_code == 401
    wrong = client.post("/api/v1/image/ingest", json=BODY, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    # Reads need it too; the token reads everything.
    assert client.get("/api/v1/clusters").status_code == 401
    assert client.get("/api/v1/clusters", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_bad_payload_with_token_is_422(client: TestClient) -> None:
    response = client.post(
        "/api/v1/image/ingest", json={"ad_id": 1}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 422
    assert "source" in response.json()["message"]


def test_ingest_is_rate_limited_per_client_with_retry_after(open_api: FastAPI) -> None:
    first = TestClient(open_api, client=("203.0.113.1", 50000))
    second = TestClient(open_api, client=("203.0.113.2", 50000))
    statuses = [first.post("/api/v1/image/ingest", json={"ad_id": 1}).status_code for _ in range(4)]
    assert statuses[:2] == [422, 422]  # the burst passes the limiter (and fails validation later)
    limited = first.post("/api/v1/image/ingest", json={"ad_id": 1})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    # The second client has a bucket of its own: the first one's empty bucket does not limit it.
    assert second.post("/api/v1/image/ingest", json={"ad_id": 1}).status_code == 422


def test_ingest_with_the_token_is_limited_per_token(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses = [
        client.post("/api/v1/image/ingest", json={"ad_id": 1}, headers=headers).status_code for _ in range(4)
    ]
    assert statuses[:2] == [422, 422] and statuses[-1] == 429
    # Without the token a request is refused before the limiter: it spends no bucket.
    assert client.post("/api/v1/image/ingest", json={"ad_id": 1}).status_code == 401


def test_oversized_body_is_413(client: TestClient) -> None:
    big = {**BODY, "images": ["https://cdn.example.com/" + "x" * 3000 + ".jpg"]}
    response = client.post("/api/v1/image/ingest", json=big, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


def test_rate_limiter_refills_and_forgets_old_clients() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=1, max_clients=2)
    assert limiter.acquire("a", now=0.0) == 0.0
    assert limiter.acquire("a", now=0.1) == pytest.approx(0.4)
    assert limiter.acquire("a", now=0.6) == 0.0
    limiter.acquire("b", now=1.0)
    limiter.acquire("c", now=1.0)
    assert "a" not in limiter._buckets


@pytest.mark.parametrize("token", [None, "changeme", "short"])
def test_production_api_refuses_missing_or_placeholder_tokens(token: str | None) -> None:
    settings = Settings(environment="production", api_token=SecretStr(token) if token else None)
    with pytest.raises(ValueError, match="IMGDUP_API_TOKEN"):
        create_api(settings)


def test_an_open_api_says_so_once_when_built(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imgdup.http.app"):
        create_api(Settings())
    (line,) = [r.getMessage() for r in caplog.records if r.name == "imgdup.http.app"]
    assert "the API is OPEN" in line and "IMGDUP_API_CREDENTIALS" in line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgdup.http.app"):
        create_api(Settings(api_token=SecretStr(TOKEN)))
    assert not [r for r in caplog.records if r.name == "imgdup.http.app"]


def test_production_runs_on_credentials_alone_but_never_open_or_on_a_placeholder() -> None:
    _token, entry = new_credential("portal", "ingest")
    create_api(Settings(environment="production", api_credentials=SecretStr(entry)))
    create_api(Settings(environment="production", trusted_proxies=["10.0.0.0/8"]))
    with pytest.raises(ValueError, match="refuses to run open"):
        create_api(Settings(environment="production", api_token=SecretStr("  ")))
    with pytest.raises(ValueError, match="IMGDUP_API_TOKEN"):
        create_api(
            Settings(
                environment="production", api_token=SecretStr("changeme"), api_credentials=SecretStr(entry)
            )
        )


def test_a_malformed_credential_stops_the_start() -> None:
    with pytest.raises(ValueError, match="credential entry 2"):
        create_api(Settings(api_credentials=SecretStr("a:viewer:sha256:" + "0" * 64 + "\nb:viewer:plain")))


def test_secrets_never_show_in_repr() -> None:
    settings = Settings(
        environment="production", api_token=SecretStr(TOKEN), database_url=SecretStr("postgresql://u:pw@h/db")
    )
    assert TOKEN not in repr(settings) and "pw@" not in repr(settings)
