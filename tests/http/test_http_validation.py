"""Hostile input on a real Postgres -> a 4xx with a readable message, never a 5xx: text Postgres
cannot hold, ad ids out of the 64-bit range or of the wrong JSON type, offsets and dates past what
the database or Python can hold, and bodies over the cap however they are sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from helpers.api import AUTH, BODY_CAP, PAIR, RecordingPublisher, api_with_recording_publisher, seed

INGEST = "/api/v1/image/ingest"
BODY: dict[str, Any] = {"ad_id": 900400, "source": "olx.pt", "images": ["https://cdn.example.com/a.jpg"]}
JSON = {**AUTH, "content-type": "application/json"}


@pytest.fixture
def api(clean_db: str) -> Iterator[tuple[TestClient, RecordingPublisher, str]]:
    seed(clean_db)
    app, publisher = api_with_recording_publisher(clean_db)
    # A 5xx comes back as a response, as a client would see it, not as the exception behind it.
    # Authenticated as the full-access token: these tests are about input, not access.
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as client:
        yield client, publisher, clean_db


def _message(response: Any) -> str:
    body = response.json()
    text = body.get("message") or body.get("detail")
    assert isinstance(text, str) and text, body
    return text


def _post_raw(client: TestClient, payload: dict[str, Any]) -> Any:
    # json.dumps escapes a lone surrogate as \\ud800, which httpx's own encoder refuses to send.
    return client.post(INGEST, content=json.dumps(payload), headers=JSON)


def _events(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_events").fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------- text Postgres cannot hold


@pytest.mark.parametrize("field", ["source", "seller_id", "category"])
@pytest.mark.parametrize("bad", ["olx\x00pt", "\x00", "olx\ud800"], ids=["nul", "only-nul", "surrogate"])
def test_ingest_text_postgres_cannot_hold_is_422(api: Any, field: str, bad: str) -> None:
    client, publisher, dsn = api
    response = _post_raw(client, {**BODY, field: bad})
    assert response.status_code == 422, response.text
    assert field in _message(response)
    assert publisher.published == [] and _events(dsn) == 0


@pytest.mark.parametrize("field", ["moderator", "note"])
def test_verdict_text_with_nul_is_422(api: Any, field: str) -> None:
    client, _, _ = api
    body = {"verdict": "confirmed", "moderator": "ana", field: "ana\x00"}
    response = client.post(f"/api/v1/pairs/{PAIR}/verdict", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in _message(response) and "NUL" in _message(response)


def test_a_blank_moderator_is_422_not_an_empty_name(api: Any) -> None:
    client, _, _ = api
    body = {"verdict": "confirmed", "moderator": "   "}
    response = client.post(f"/api/v1/pairs/{PAIR}/verdict", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert "moderator" in _message(response)


@pytest.mark.parametrize("param", ["source", "category"])
def test_admin_filter_with_nul_is_422(api: Any, param: str) -> None:
    client, _, _ = api
    response = client.get("/api/v1/admin/clusters", params={param: "olx\x00"})
    assert response.status_code == 422, response.text
    assert param in _message(response)


# --------------------------------------------------------------------------- ad ids, offsets, dates


@pytest.mark.parametrize("value", [True, "900400", 900401.0, False], ids=["true", "string", "float", "false"])
def test_ingest_ad_id_must_be_a_json_integer(api: Any, value: object) -> None:
    client, publisher, dsn = api
    response = client.post(INGEST, json={**BODY, "ad_id": value}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert "ad_id" in _message(response)
    assert publisher.published == [] and _events(dsn) == 0


@pytest.mark.parametrize("value", [0, 1714560000.5, True], ids=["int", "float", "bool"])
def test_ingest_created_at_must_be_an_iso_string(api: Any, value: object) -> None:
    # Found by tests/http/test_http_fuzz.py: pydantic took 0 for 1970-01-01 (a Unix time).
    client, publisher, dsn = api
    response = client.post(INGEST, json={**BODY, "created_at": value}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert "created_at" in _message(response)
    assert publisher.published == [] and _events(dsn) == 0


@pytest.mark.parametrize(
    "value",
    ["2024-05-01T12:00:00", "2999-01-01T00:00:00Z", "0001-01-01T00:00:00Z"],
    ids=["naive", "far-future", "year-1"],
)
def test_ingest_created_at_must_be_aware_and_plausible(api: Any, value: str) -> None:
    # The original of a pair is the side created first: a created_at in the year 2999 or 1 would
    # decide that for any ad that sent it.
    client, publisher, dsn = api
    response = client.post(INGEST, json={**BODY, "created_at": value}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert "created_at" in _message(response)
    assert publisher.published == [] and _events(dsn) == 0


def test_ingest_without_created_at_says_it_assumed_the_accept_time(api: Any) -> None:
    client, publisher, _ = api
    response = client.post(INGEST, json=BODY, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["created_at_assumed"] is True
    given = client.post(INGEST, json={**BODY, "ad_id": 900401, "created_at": "2024-05-01T12:00:00Z"})
    assert given.status_code == 202 and given.json()["created_at_assumed"] is False
    assert len(publisher.published) == 2


@pytest.mark.parametrize("params", [{"until": "0"}, {"since": "1714560000"}, {"since": "2024-5-1"}])
def test_admin_dates_must_be_iso_days(api: Any, params: dict[str, str]) -> None:
    # Found by the fuzzer too: "0" was read as the Unix epoch.
    client, _, _ = api
    response = client.get("/api/v1/admin/clusters", params=params)
    assert response.status_code == 422, response.text
    assert next(iter(params)) in _message(response)


def test_ingest_still_accepts_a_plain_integer_ad_id(api: Any) -> None:
    client, publisher, _ = api
    response = client.post(INGEST, json={**BODY, "created_at": "2024-05-01T12:00:00+01:00"}, headers=AUTH)
    assert response.status_code == 202, response.text
    assert len(publisher.published) == 1
    filtered = client.get("/api/v1/admin/clusters", params={"since": "2024-05-01", "until": "2024-05-01"})
    assert filtered.status_code == 200 and filtered.json()["total"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/admin/clusters?ad_id=9223372036854775808",
        "/api/v1/admin/clusters?offset=9223372036854775808",
        "/api/v1/clusters?offset=9223372036854775808",
        "/api/v1/duplicates/9223372036854775808",
        "/api/v1/admin/duplicates/9223372036854775808",
        "/api/v1/ads/9223372036854775808",
        "/api/v1/ads/-9223372036854775809",
        "/api/v1/duplicates/0",
    ],
)
def test_ids_and_offsets_out_of_range_are_422(api: Any, url: str) -> None:
    client, _, _ = api
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert _message(response)


def test_largest_ad_id_is_still_asked_about(api: Any) -> None:
    client, _, _ = api
    response = client.get(f"/api/v1/duplicates/{2**63 - 1}")
    assert response.status_code == 200 and response.json()["duplicates"] == []


@pytest.mark.parametrize("params", [{"until": "9999-12-31"}, {"since": "0001-01-01", "until": "9999-12-31"}])
def test_last_day_python_knows_is_a_filter_not_a_crash(api: Any, params: dict[str, str]) -> None:
    client, _, _ = api
    response = client.get("/api/v1/admin/clusters", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 1


# --------------------------------------------------------------------------- the body cap


def test_chunked_body_over_the_cap_is_413(api: Any) -> None:
    client, publisher, _ = api

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the size is known only by reading.
        for _ in range(BODY_CAP // 1000 + 2):
            yield b" " * 1000

    response = client.post(INGEST, content=chunks(), headers=JSON)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "request_too_large"
    assert str(BODY_CAP) in _message(response)
    assert publisher.published == []


def test_chunked_body_under_the_cap_is_read_whole(api: Any) -> None:
    client, publisher, _ = api
    raw = json.dumps(BODY).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 7):
            yield raw[start : start + 7]

    response = client.post(INGEST, content=chunks(), headers=JSON)
    assert response.status_code == 202, response.text
    assert len(publisher.published) == 1
