"""Consumes schemas.parsing.parse_ad_event: raw Kafka value -> event, or a machine-readable reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import AdImagesCreatedV1
from schemas.parsing import InvalidEvent, parse_ad_event


def _event(**changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": "evt-1",
        "ad_id": 42,
        "source": "olx.pt",
        "images": ["https://cdn.example.com/1.jpg", "https://cdn.example.com/2.jpg"],
        "created_at": "2024-05-01T12:00:00Z",
        **changes,
    }


def _raw(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _reason(raw: bytes | None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_ad_event(raw)
    return caught.value


def test_valid_event_parses() -> None:
    event = parse_ad_event(_raw(_event(category="cars", unknown_new_field=True)))
    assert isinstance(event, AdImagesCreatedV1)
    assert event.ad_id == 42
    assert event.event_id == "evt-1"
    assert event.category == "cars"
    assert [str(u) for u in event.images] == [
        "https://cdn.example.com/1.jpg",
        "https://cdn.example.com/2.jpg",
    ]
    assert event.created_at.utcoffset() is not None


@pytest.mark.parametrize("raw", [b"", None])
def test_empty_message(raw: bytes | None) -> None:
    assert _reason(raw).reason == "empty_message"


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\xfd", b'{"a": 1'])
def test_invalid_json(raw: bytes) -> None:
    assert _reason(raw).reason == "invalid_json"


@pytest.mark.parametrize("raw", [b"[1]", b'"text"', b"42", b"null"])
def test_not_an_object(raw: bytes) -> None:
    error = _reason(raw)
    assert error.reason == "invalid_event"
    assert error.payload is None


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unsupported_schema_version(version: object) -> None:
    payload = _event(schema_version=version)
    error = _reason(_raw(payload))
    assert error.reason == "unsupported_schema_version"
    assert error.payload == payload


def test_missing_schema_version() -> None:
    payload = _event()
    del payload["schema_version"]
    assert _reason(_raw(payload)).reason == "unsupported_schema_version"


def test_too_many_images() -> None:
    payload = _event(images=[f"https://cdn.example.com/{i}.jpg" for i in range(51)])
    error = _reason(_raw(payload))
    assert error.reason == "too_many_images"
    assert "51" in error.detail
    assert error.payload == payload


def test_fifty_images_accepted() -> None:
    event = parse_ad_event(_raw(_event(images=[f"https://cdn.example.com/{i}.jpg" for i in range(50)])))
    assert len(event.images) == 50


@pytest.mark.parametrize("field", ["ad_id", "event_id", "source", "images", "created_at"])
def test_missing_field_is_named(field: str) -> None:
    payload = _event()
    del payload[field]
    error = _reason(_raw(payload))
    assert error.reason == "invalid_event"
    assert field in error.detail
    assert error.payload == payload


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ad_id": 0}, "ad_id"),
        ({"ad_id": 2**63}, "ad_id"),
        ({"images": []}, "images"),
        ({"images": ["not a url"]}, "images"),
        ({"images": ["ftp://cdn.example.com/1.jpg"]}, "images"),
        ({"created_at": "2024-05-01T12:00:00"}, "created_at"),
    ],
)
def test_invalid_field_is_named(changes: dict[str, Any], field: str) -> None:
    error = _reason(_raw(_event(**changes)))
    assert error.reason == "invalid_event"
    assert field in error.detail


@pytest.mark.parametrize("field", ["event_id", "source", "category", "seller_id"])
@pytest.mark.parametrize("bad", ["olx\x00pt", "olx\ud800"], ids=["nul", "surrogate"])
def test_text_postgres_cannot_hold_is_named(field: str, bad: str) -> None:
    # json.dumps writes both as escapes (\\u0000, \\ud800), which json.loads turns back into them;
    # Postgres text refuses NUL, and UTF-8 cannot encode a lone surrogate.
    error = _reason(_raw(_event(**{field: bad})))
    assert error.reason == "invalid_event"
    assert field in error.detail


@pytest.mark.parametrize("ad_id", ["42", 42.0], ids=["string", "float"])
def test_ad_id_must_be_a_json_integer(ad_id: object) -> None:
    error = _reason(_raw(_event(ad_id=ad_id)))
    assert error.reason == "invalid_event" and "ad_id" in error.detail


@pytest.mark.parametrize("created_at", [0, 1714560000.5], ids=["int", "float"])
def test_created_at_must_be_a_date_time_string(created_at: object) -> None:
    # pydantic reads a number as a Unix time; the published schema says a date-time string.
    error = _reason(_raw(_event(created_at=created_at)))
    assert error.reason == "invalid_event" and "created_at" in error.detail
