"""Consumes schemas.events and schemas.export: committed JSON Schemas vs the pydantic models."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel, ValidationError

from schemas import AdImagesCreatedV1, AdRef, ClusterRef, DuplicateEventV1, EvidenceV1, VersionsV1
from schemas.events import MAX_IMAGES_PER_AD
from schemas.export import PUBLISHED, SCHEMA_DIR, render

# jsonschema checks the "uri" and "date-time" formats only when optional packages are installed
# (rfc3987, rfc3339-validator); they are not, so the checks consumers would run are given here.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$")


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _RFC3339.match(value):
            return False
        try:
            datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            return False
        return True

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        return not isinstance(value, str) or bool(_URI.match(value))

    return checker


def _validator(file_name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / file_name).read_text())
    return Draft202012Validator(schema, format_checker=_format_checker())


def _valid_ad_event() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": "evt-0001",
        "ad_id": 123456789,
        "source": "olx.pt",
        "category": "real_estate",
        "seller_id": "seller-42",
        "images": ["https://cdn.example.com/a/1.jpg", "http://cdn.example.com/a/2.png?w=800"],
        "created_at": "2024-05-01T12:30:00+01:00",
    }


# --- drift -------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", sorted(PUBLISHED))
def test_committed_schema_matches_model(file_name: str) -> None:
    model, mode = PUBLISHED[file_name]
    committed = (SCHEMA_DIR / file_name).read_text()
    assert committed == render(model, mode), (
        f"schemas/{file_name} differs from {model.__name__}; run `python -m schemas.export` and commit it"
    )


def test_no_stale_schema_files() -> None:
    on_disk = {path.name for path in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(PUBLISHED), "schemas/*.json and schemas.export.PUBLISHED list different files"


@pytest.mark.parametrize("file_name", sorted(PUBLISHED))
def test_committed_schema_is_valid_draft_2020_12(file_name: str) -> None:
    schema = json.loads((SCHEMA_DIR / file_name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + file_name)
    Draft202012Validator.check_schema(schema)


# --- ad.images.created v1: pydantic and JSON Schema agree ------------------------------------


def _pydantic_accepts(model: type[BaseModel], payload: dict[str, Any]) -> bool:
    try:
        model.model_validate_json(json.dumps(payload))
    except ValidationError:
        return False
    return True


def test_valid_ad_event_accepted_by_both() -> None:
    payload = _valid_ad_event()
    event = AdImagesCreatedV1.model_validate_json(json.dumps(payload))
    assert event.ad_id == 123456789
    assert [str(u) for u in event.images] == payload["images"]
    assert event.created_at.utcoffset() is not None
    assert event.replay is False
    _validator("ad.images.created.v1.json").validate(payload)


def test_minimal_ad_event_accepted_by_both() -> None:
    payload = _valid_ad_event()
    for optional in ("category", "seller_id"):
        del payload[optional]
    payload["images"] = ["https://cdn.example.com/only.jpg"]
    event = AdImagesCreatedV1.model_validate_json(json.dumps(payload))
    assert event.category is None and event.seller_id is None
    _validator("ad.images.created.v1.json").validate(payload)


def _without(key: str) -> dict[str, Any]:
    payload = _valid_ad_event()
    del payload[key]
    return payload


def _with(**changes: Any) -> dict[str, Any]:
    return {**_valid_ad_event(), **changes}


INVALID_AD_EVENTS = {
    "missing ad_id": _without("ad_id"),
    "missing event_id": _without("event_id"),
    "missing created_at": _without("created_at"),
    "ad_id 0": _with(ad_id=0),
    "ad_id 2**63": _with(ad_id=2**63),
    "0 images": _with(images=[]),
    f"{MAX_IMAGES_PER_AD + 1} images": _with(
        images=[f"https://cdn.example.com/{i}.jpg" for i in range(MAX_IMAGES_PER_AD + 1)]
    ),
    "non-URL image": _with(images=["not a url"]),
    "created_at without timezone": _with(created_at="2024-05-01T12:30:00"),
    "schema_version 2": _with(schema_version=2),
    "empty event_id": _with(event_id=""),
    "source too long": _with(source="x" * 201),
}


@pytest.mark.parametrize("payload", list(INVALID_AD_EVENTS.values()), ids=list(INVALID_AD_EVENTS))
def test_invalid_ad_event_rejected_by_both(payload: dict[str, Any]) -> None:
    assert not _pydantic_accepts(AdImagesCreatedV1, payload), "pydantic accepted it"
    with pytest.raises(jsonschema.ValidationError):
        _validator("ad.images.created.v1.json").validate(payload)


def test_fifty_images_is_the_limit() -> None:
    payload = _with(images=[f"https://cdn.example.com/{i}.jpg" for i in range(MAX_IMAGES_PER_AD)])
    assert _pydantic_accepts(AdImagesCreatedV1, payload)
    _validator("ad.images.created.v1.json").validate(payload)


def test_largest_ad_id_accepted_by_both() -> None:
    payload = _with(ad_id=2**63 - 1)
    assert AdImagesCreatedV1.model_validate_json(json.dumps(payload)).ad_id == 2**63 - 1
    _validator("ad.images.created.v1.json").validate(payload)


@pytest.mark.parametrize("payload", [_with(ad_id=True), _with(schema_version=True)], ids=["ad_id", "version"])
def test_boolean_ids_rejected_by_both(payload: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validator("ad.images.created.v1.json").validate(payload)
    assert not _pydantic_accepts(AdImagesCreatedV1, payload), "pydantic accepted it"


def test_unknown_fields_accepted_by_both() -> None:
    """Additive change rule: a producer may add optional fields without a new version."""
    payload = _with(price_eur=250_000, tags=["sea view"], location={"lat": 38.7, "lon": -9.1})
    event = AdImagesCreatedV1.model_validate_json(json.dumps(payload))
    assert event.ad_id == payload["ad_id"]
    assert "price_eur" not in event.model_dump()
    _validator("ad.images.created.v1.json").validate(payload)


# --- imgdup.duplicates v1 ----------------------------------------------------------------------


def _duplicate_event() -> DuplicateEventV1:
    seen = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return DuplicateEventV1(
        event_id="3b0f1c1e-0000-5000-8000-000000000001",
        pair_id="3b0f1c1e-0000-5000-8000-000000000002",
        confidence=0.93,
        original=AdRef(
            ad_id=1,
            source="olx.pt",
            category="real_estate",
            seller_id="s1",
            image_id="img-1",
            image_url="https://cdn.example.com/1.jpg",
            first_seen_at=seen,
        ),
        duplicate=AdRef(
            ad_id=2,
            source="olx.pt",
            category=None,
            seller_id=None,
            image_id="img-2",
            image_url="https://cdn.example.com/2.jpg",
            first_seen_at=seen.replace(hour=13),
        ),
        evidence=EvidenceV1(
            phash_distance=4,
            phash_mirrored=False,
            embedding_cosine=0.91,
            sift_inliers=120,
            sift_mirrored=False,
            ssim=0.88,
            exact=False,
        ),
        cluster=ClusterRef(cluster_id="c-1", size=2, ad_count=2),
        versions=VersionsV1(embedding_model="sscd-v1", verifier="v1"),
        replay=False,
        detected_at=seen.replace(hour=14),
    )


def test_duplicate_event_round_trips_json() -> None:
    event = _duplicate_event()
    text = event.model_dump_json()
    again = DuplicateEventV1.model_validate_json(text)
    assert again == event
    assert again.model_dump_json() == text
    wire = json.loads(text)
    assert wire["schema_version"] == 1
    assert wire["decision"] == "duplicate"
    assert wire["evidence"]["exact"] is False
    assert wire["evidence"]["ssim"] == 0.88


def test_duplicate_event_matches_committed_schema() -> None:
    wire = json.loads(_duplicate_event().model_dump_json())
    _validator("imgdup.duplicates.v1.json").validate(wire)
    wire["confidence"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        _validator("imgdup.duplicates.v1.json").validate(wire)


@pytest.mark.parametrize("confidence", [-0.01, 1.01])
def test_duplicate_event_confidence_bounded(confidence: float) -> None:
    with pytest.raises(ValidationError):
        DuplicateEventV1.model_validate({**_duplicate_event().model_dump(), "confidence": confidence})
