"""Raw ad.images.created value -> AdImagesCreatedV1, or InvalidEvent with a machine-readable reason."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from schemas.events import MAX_IMAGES_PER_AD, AdImagesCreatedV1


class InvalidEvent(Exception):
    def __init__(self, reason: str, detail: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.payload = payload


def parse_ad_event(raw: bytes | None) -> AdImagesCreatedV1:
    """Validate a raw message against ad.images.created v1; the reason names what is wrong."""
    if not raw:
        raise InvalidEvent("empty_message", "message has no value")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent("invalid_json", f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidEvent("invalid_event", "event is not a JSON object")
    version = payload.get("schema_version")
    if version != 1:
        raise InvalidEvent("unsupported_schema_version", f"schema_version {version!r} is not 1", payload)
    images = payload.get("images")
    if isinstance(images, list) and len(images) > MAX_IMAGES_PER_AD:
        raise InvalidEvent("too_many_images", f"{len(images)} images > {MAX_IMAGES_PER_AD}", payload)
    try:
        return AdImagesCreatedV1.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()[:10]
        )
        raise InvalidEvent("invalid_event", problems, payload) from exc
