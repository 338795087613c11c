"""Ingest rate limits that a client cannot step around: keyed on who the caller is (not on the bytes
of its Authorization header), on its address when the API runs open, never on a forwarded address
from an untrusted peer; wrong credentials are throttled per address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from imgdup.http.app import create_api
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"
INGEST = "/api/v1/image/ingest"
BAD_BODY = {"ad_id": 1}  # passes the limiter, then fails validation: 422, nothing published


def _settings(dsn: str, **changes: Any) -> Settings:
    return Settings(
        database_url=SecretStr(dsn),
        kafka_bootstrap_servers="127.0.0.1:9",
        api_ingest_rate_per_s=0.01,
        api_ingest_burst=2,
        **changes,
    )


@pytest.fixture
def token_api(clean_db: str) -> Iterator[FastAPI]:
    app = create_api(
        _settings(clean_db, api_token=SecretStr(TOKEN), api_auth_failures=5, api_auth_failure_window_s=60)
    )
    with TestClient(app):
        yield app


@pytest.fixture
def open_api(clean_db: str) -> Iterator[FastAPI]:
    app = create_api(_settings(clean_db))
    with TestClient(app):
        yield app


def test_padding_the_authorization_header_does_not_buy_a_new_bucket(token_api: FastAPI) -> None:
    client = TestClient(token_api, client=("203.0.113.9", 1000))
    statuses = [
        client.post(INGEST, json=BAD_BODY, headers={"Authorization": "Bearer" + " " * n + TOKEN}).status_code
        for n in range(1, 8)
    ]
    assert statuses[:2] == [422, 422]
    assert set(statuses[2:]) == {429}, statuses


def test_open_api_limits_by_address_whatever_the_headers_say(open_api: FastAPI) -> None:
    client = TestClient(open_api, client=("203.0.113.10", 1000))
    statuses = [
        client.post(INGEST, json=BAD_BODY, headers={"Authorization": f"Bearer x{n}"}).status_code
        for n in range(6)
    ]
    assert statuses[:2] == [422, 422] and set(statuses[2:]) == {429}, statuses


def test_forwarded_for_from_an_untrusted_peer_is_ignored(open_api: FastAPI) -> None:
    """No trusted proxies configured: a client on loopback cannot pose as many by X-Forwarded-For."""
    client = TestClient(open_api, client=("127.0.0.1", 1000))
    statuses = [
        client.post(INGEST, json=BAD_BODY, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
        for n in range(6)
    ]
    assert set(statuses[2:]) == {429}, statuses


def test_the_api_server_does_not_trust_proxy_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told not to: `imgdup api` tells it."""
    import uvicorn

    from imgdup import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.delenv("IMGDUP_API_TOKEN", raising=False)
    assert cli.main(["api", "--api-port", "8999"]) == 0
    assert seen["proxy_headers"] is False
    assert seen["port"] == 8999


def test_wrong_tokens_are_throttled_per_address(token_api: FastAPI) -> None:
    guesser = TestClient(token_api, client=("203.0.113.20", 1000))
    statuses = [
        guesser.get("/api/v1/progress", headers={"Authorization": f"Bearer guess-{n}"}).status_code
        for n in range(8)
    ]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    throttled = guesser.get("/api/v1/progress", headers={"Authorization": f"Bearer {TOKEN}"})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    # Another address is not throttled by the guesser's failures.
    other = TestClient(token_api, client=("203.0.113.21", 1000))
    assert other.get("/api/v1/progress", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
