"""Pydantic models of every event imgdup consumes or produces (JSON on the wire).

Versioning: an additive change (a new optional field) keeps the version, and consumers ignore
fields they do not know; a breaking change gets a new model, a new `schema_version` and a new
topic name. `python -m schemas.export` rewrites the committed JSON Schemas; a test fails when
they drift from these models.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    UrlConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

AD_ID_MAX = 2**63 - 1
AdId = Annotated[int, Field(ge=1, le=AD_ID_MAX, description="64-bit ad identifier")]
# What a producer's JSON must carry: an integer. Not `true` (ad 1 in Python), not "42", not 42.0,
# as the published JSON Schema (`"type": "integer"`) says.
StrictAdId = Annotated[AdId, Field(strict=True)]


def storable_text(text: str) -> str:
    """Text Postgres can store: its text type refuses NUL, and UTF-8 cannot encode a lone
    surrogate (JSON can carry both as escapes, \\u0000 and \\ud800)."""
    if "\x00" in text:
        raise PydanticCustomError("text_nul", "must not contain the NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "text_surrogate", "must not contain a lone surrogate (\\ud800-\\udfff)"
        ) from exc
    return text


# Every free-text field that reaches Postgres.
SafeText = Annotated[str, AfterValidator(storable_text)]

_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def date_time_text(value: object) -> object:
    """A date-time from a producer is an RFC 3339 string, as the published schema says; pydantic
    alone would also read a number, or a string of digits, as a Unix time (0 -> 1970-01-01)."""
    if isinstance(value, datetime):  # built by our own code (the API, replay)
        return value
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise PydanticCustomError(
            "date_time_text", "must be an RFC 3339 date-time string, e.g. 2024-05-01T12:00:00Z"
        )
    return value


DateTimeText = Annotated[AwareDatetime, BeforeValidator(date_time_text)]
ImageUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["http", "https"])]
MAX_IMAGES_PER_AD = 50


class _Event(BaseModel):
    # Unknown fields are ignored so producers can add optional fields without breaking us.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AdImagesCreatedV1(_Event):
    """`ad.images.created` v1: the portal created (or re-created) the images of one ad."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        title="ad.images.created v1",
        json_schema_extra={"$id": "https://imgdup.dev/schemas/ad.images.created.v1.json"},
    )

    # Strict: JSON `true` must not pass as version 1 or ad 1, as the published schema says.
    schema_version: Literal[1]
    event_id: Annotated[SafeText, Field(min_length=1, max_length=200)]
    ad_id: StrictAdId
    source: Annotated[SafeText, Field(min_length=1, max_length=200, examples=["olx.pt"])]
    category: Annotated[SafeText | None, Field(max_length=200, examples=["real_estate"])] = None
    seller_id: Annotated[SafeText | None, Field(max_length=200)] = None
    images: Annotated[list[ImageUrl], Field(min_length=1, max_length=MAX_IMAGES_PER_AD)]
    created_at: DateTimeText
    # Set by `imgdup replay`; the portal never sets it.
    replay: bool = False

    @field_validator("schema_version", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # True == 1 in Python, not in JSON Schema
            raise ValueError("schema_version must be the integer 1")
        return value


class ImageRef(_Event):
    image_id: str
    ad_id: AdId


class CandidatePairV1(_Event):
    """Internal: an ANN neighbour that must be verified. `a`/`b` are ordered by image_id."""

    schema_version: Literal[1] = 1
    pair_id: str
    a: ImageRef
    b: ImageRef
    cosine: float
    replay: bool = False
    found_at: datetime


class EvidenceV1(_Event):
    """What each method measured for a pair; kept with every verdict."""

    phash_distance: Annotated[
        int,
        Field(ge=0, le=64, description="Hamming distance of 64-bit pHashes, min over the mirror"),
    ]
    phash_mirrored: bool
    embedding_cosine: float
    sift_inliers: Annotated[int, Field(ge=0, description="RANSAC homography inliers of SIFT matches")]
    sift_mirrored: bool
    ssim: Annotated[float | None, Field(description="SSIM after homography alignment; null without one")]
    exact: bool = Field(False, description="Same decoded pixels: decided without the heavy methods")
    # Added without a version bump (optional fields; consumers of v1 may ignore them).
    score: Annotated[
        float | None,
        Field(ge=0, le=1, description="Fused probability of a duplicate that the verdict thresholds"),
    ] = None
    sift_matches: Annotated[
        int | None, Field(ge=0, description="SIFT ratio-test matches (the inliers are a part)")
    ] = None
    overlap: Annotated[
        float | None,
        Field(ge=0, le=1, description="Share of the smaller picture the other covers once aligned"),
    ] = None
    mismatch: Annotated[
        float | None,
        Field(ge=0, le=1, description="Share of the aligned textured overlap where the pictures disagree"),
    ] = None
    compared: Annotated[
        str | None,
        Field(
            description="Pictures compared, a's/b's: 'full' (the image) or 'photo' (the photo a "
            "screenshot or border frames), e.g. 'photo/full'; 'slot/slot' (fused-v5): the whole "
            "pictures aligned as one page and were judged by the photo slot inside it"
        ),
    ] = None


class VersionsV1(_Event):
    embedding_model: str
    verifier: str


class VerifiedPairV1(_Event):
    """Internal: a verified duplicate pair, input of the clusterer."""

    schema_version: Literal[1] = 1
    pair_id: str
    a: ImageRef
    b: ImageRef
    confidence: float
    evidence: EvidenceV1
    versions: VersionsV1
    replay: bool = False
    verified_at: datetime


class AdRef(_Event):
    """One side of a duplicate: enough to act on without calling imgdup back."""

    ad_id: AdId
    source: str
    category: str | None
    seller_id: str | None
    image_id: str
    image_url: str
    first_seen_at: datetime


class ClusterRef(_Event):
    cluster_id: str
    size: Annotated[int, Field(ge=2, description="images in the cluster after this pair")]
    ad_count: Annotated[int, Field(ge=1)]


class DuplicateEventV1(_Event):
    """`imgdup.duplicates.v1`: public event for fraud systems, one per verified duplicate pair.

    `event_id` is deterministic (pair and verifier version), so consumers drop repeats by it.
    """

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        title="imgdup.duplicates v1",
        json_schema_extra={"$id": "https://imgdup.dev/schemas/imgdup.duplicates.v1.json"},
    )

    schema_version: Literal[1] = 1
    event_id: str
    pair_id: str
    decision: Literal["duplicate"] = "duplicate"
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    original: AdRef = Field(description="The side seen first")
    duplicate: AdRef = Field(description="The side seen later")
    evidence: EvidenceV1
    cluster: ClusterRef
    versions: VersionsV1
    replay: bool
    detected_at: AwareDatetime


class DeadLetterV1(_Event):
    """`imgdup.dead-letters.v1`: a message that could not be processed, and why."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        title="imgdup.dead-letters v1",
        json_schema_extra={"$id": "https://imgdup.dev/schemas/imgdup.dead-letters.v1.json"},
    )

    schema_version: Literal[1] = 1
    reason: Annotated[str, Field(description="Machine-readable reason, e.g. invalid_json")]
    error_class: str
    message: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    attempt: int = 1
    event_id: str | None = None
    ad_id: int | None = None
    image_url: str | None = None
    original_key: str | None = None
    original_value: str | None = Field(None, description="Original payload (UTF-8, replaced errors), capped")
    failed_at: AwareDatetime
