"""Pydantic models of every event imgdup consumes or produces (JSON on the wire).

Versioning: an additive change (a new optional field) keeps the version, and consumers ignore
fields they do not know; a breaking change gets a new model, a new `schema_version` and a new
topic name. `python -m schemas.export` rewrites the committed JSON Schemas; a test fails when
they drift from these models.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
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
            "pictures aligned as one page and were judged by the photo slot inside it; 'box/box' (fused-v8): "
            "likewise, by the photo box the frame finder found in one of them"
        ),
    ] = None
    mismatch_evenness: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="Share of the aligned picture's cells whose disagreement reaches half the "
            "picture's (fused-v14): ~1 for an overlay spread over the whole photo, low for a page's "
            "photo slot or a sticker; null where not measured",
        ),
    ] = None
    coverage: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="Share of the larger picture the other covers once aligned (fused-v15; overlap is "
            "the smaller's): a copy-edit keeps most of its photo; null where nothing aligned or not measured",
        ),
    ] = None
    moved: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="Share of the aligned textured overlap that disagrees in place but agrees once "
            "displaced locally by more than a pixel (fused-v24): ~0 for a copy, high for two views of one "
            "scene (stereo, frames of one video); null where not measured",
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
    created_at: datetime | None = Field(
        None,
        description="When the portal created the ad (its event's created_at, the earliest seen);"
        " the original of a pair is the side created first. Null for ads stored before imgdup"
        " recorded it.",
    )


class ClusterRef(_Event):
    cluster_id: str
    size: Annotated[int, Field(ge=2, description="images in the cluster after this pair")]
    ad_count: Annotated[int, Field(ge=1)]


class Decision(StrEnum):
    """What imgdup says of a pair: the `decision` of every pair event."""

    DUPLICATE = "duplicate"
    NOT_DUPLICATE = "not_duplicate"


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
    decision: Literal[Decision.DUPLICATE] = Decision.DUPLICATE
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    original: AdRef = Field(description="The side seen first")
    duplicate: AdRef = Field(description="The side seen later")
    evidence: EvidenceV1
    cluster: ClusterRef
    versions: VersionsV1
    replay: bool
    detected_at: AwareDatetime


class PairReviewV1(_Event):
    """Internal, on imgdup.pairs-verified.v1 beside VerifiedPairV1: the truth about a pair may have
    changed (a moderator's verdict, a verifier rejecting a clustered pair): the clusterer, the one
    writer of clusters, reads the pair's current truth and reconciles its clusters."""

    schema_version: Literal[1] = 1
    type: Literal["pair_review"] = "pair_review"
    pair_id: str
    cause: Literal["moderator", "verifier"]
    requested_at: datetime


# Every change of cluster truth, in the one order the clusterer made them, on
# imgdup.cluster-changes.v1 (one partition). `type` tells them apart; `event_id` is deterministic.


class _Change(_Event):
    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic: the same change published again has the same id")
    occurred_at: AwareDatetime


class PairClusteredV1(_Change):
    """A pair became an edge of a cluster (the change behind a DuplicateEventV1): both images are in
    `cluster_id` now. Clusters it joined are announced first by a `clusters_merged`."""

    type: Literal["pair_clustered"] = "pair_clustered"
    pair_id: str
    decision: Literal[Decision.DUPLICATE] = Decision.DUPLICATE
    duplicate_event_id: str = Field(description="event_id of the DuplicateEventV1 for this pair")
    original: ImageRef = Field(description="The side seen first")
    duplicate: ImageRef = Field(description="The side seen later (its ad_id is the message key)")
    cluster_id: str
    by: Literal["verifier", "moderator"]
    verifier_version: str | None


class PairRetractedV1(_Change):
    """A pair once announced as a duplicate is not one: by a moderator's verdict, or by a newer
    verifier version on re-verification. Its edge leaves the cluster; a `cluster_split` follows when
    the cluster falls apart."""

    type: Literal["pair_retracted"] = "pair_retracted"
    pair_id: str
    decision: Literal[Decision.NOT_DUPLICATE] = Decision.NOT_DUPLICATE
    original: ImageRef
    duplicate: ImageRef = Field(description="The side seen later (its ad_id is the message key)")
    cluster_id: str = Field(description="The cluster the pair was an edge of")
    by: Literal["verifier", "moderator"]
    moderator: str | None = None
    note: str | None = None
    verifier_version: str | None = Field(description="The verifier version whose verdict stands")


class ClustersMergedV1(_Change):
    """A pair joined two clusters: `absorbed` is gone, its members are in `survivor` now."""

    type: Literal["clusters_merged"] = "clusters_merged"
    absorbed: str
    survivor: str
    pair_id: str = Field(description="The pair that joined them")
    moved: list[ImageRef] = Field(description="The absorbed cluster's members, now in survivor")


class ClusterPieceV1(_Event):
    cluster_id: str
    members: list[ImageRef]


class ClusterSplitV1(_Change):
    """A retracted pair broke a cluster apart. Every member of `cluster_id` is now in exactly one
    of `pieces` (the first, the largest, keeps `cluster_id` unless `dissolved`) or in `left`."""

    type: Literal["cluster_split"] = "cluster_split"
    cluster_id: str
    pair_id: str = Field(description="The retracted pair whose edge broke the cluster")
    pieces: list[ClusterPieceV1]
    left: list[ImageRef] = Field(description="Images left without a duplicate: in no cluster now")
    dissolved: bool = Field(description="True when no piece keeps cluster_id: it is gone")


ClusterChange = Annotated[
    PairClusteredV1 | PairRetractedV1 | ClustersMergedV1 | ClusterSplitV1, Field(discriminator="type")
]


class ClusterChangeV1(RootModel[ClusterChange]):
    """`imgdup.cluster-changes.v1`: one change of cluster truth (see `type`)."""

    model_config = ConfigDict(
        frozen=True,
        title="imgdup.cluster-changes v1",
        json_schema_extra={"$id": "https://imgdup.dev/schemas/imgdup.cluster-changes.v1.json"},
    )


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
