"""Store read models -> the API's request and response shapes (the JSON contract the admin page reads)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from schemas import EvidenceV1
from schemas.events import (
    AD_ID_MAX,
    MAX_IMAGES_PER_AD,
    DateTimeText,
    ImageUrl,
    SafeText,
    StrictAdId,
    storable_text,
)

Verdict = Literal["confirmed", "not_duplicate"]


def thumbnail_url(image_id: str) -> str:
    return f"/api/v1/images/{image_id}/thumbnail"


class Status(BaseModel):
    status: Literal["ok"] = "ok"


# --------------------------------------------------------------------------- path and query parameters
# Bounded so that every value that passes also fits the database: a bigint ad id, a bigint offset,
# text without NUL. Out of range is a 422 that names the parameter, never a Postgres error.

MAX_OFFSET = 2**31 - 1

AdIdPath = Annotated[int, Path(ge=1, le=AD_ID_MAX, description="64-bit ad identifier")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
TextFilter = Annotated[SafeText | None, Query(max_length=200)]

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    # pydantic alone reads "0" as the Unix epoch.
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise PydanticCustomError("iso_day", "must be a day as YYYY-MM-DD")
    return value


DayFilter = Annotated[date | None, BeforeValidator(_iso_day)]


# --------------------------------------------------------------------------- ingest


# An ad's created_at decides which side of a pair is the original, so an implausible one would
# claim originality for any ad that sent it. A day of clock skew is tolerated; nothing predates
# the web's classified ads.
CREATED_AT_SKEW = timedelta(days=1)
CREATED_AT_EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)


def plausible_created_at(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value > datetime.now(UTC) + CREATED_AT_SKEW:
        raise PydanticCustomError("created_at_future", "must not be more than a day in the future")
    if value < CREATED_AT_EARLIEST:
        raise PydanticCustomError("created_at_past", "must not be before 1995-01-01")
    return value


class IngestRequest(BaseModel):
    """The seed's payload: one ad and the URLs of its images."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "ad_id": 12345,
                    "source": "olx.pt",
                    "category": "real_estate",
                    "images": ["https://cdn.example.com/house1.jpg"],
                }
            ]
        },
    )

    # Strict as the event's: JSON `true`, "900400" and 900401.0 are not ad ids.
    ad_id: StrictAdId
    source: Annotated[SafeText, Field(min_length=1, max_length=200)]
    images: Annotated[list[ImageUrl], Field(min_length=1, max_length=MAX_IMAGES_PER_AD)]
    category: Annotated[SafeText | None, Field(max_length=200)] = None
    seller_id: Annotated[SafeText | None, Field(max_length=200)] = None
    created_at: Annotated[
        DateTimeText | None,
        AfterValidator(plausible_created_at),
        Field(
            description="When the portal created the ad (RFC 3339 with an offset). It decides which"
            " side of a duplicate pair is the original. Optional: without it imgdup assumes the"
            " time it accepts the request (and says so in the answer)."
        ),
    ] = None


class IngestAccepted(BaseModel):
    event_id: str
    status: str = "accepted"
    already_accepted: bool = Field(
        False, description="The same payload was accepted before; it was not published again"
    )
    created_at_assumed: bool = Field(
        False,
        description="The body had no created_at: the ad's creation time is taken to be when the"
        " payload was first accepted, so it may be judged a copy of an ad posted before it",
    )


# --------------------------------------------------------------------------- moderators' verdicts


def optional_storable_text(value: str | None) -> str | None:
    return None if value is None else storable_text(value)


class VerdictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"verdict": "not_duplicate", "moderator": "ana", "note": "same model, other car"}]
        },
    )

    verdict: Verdict
    # Constraints first, then the text check: nested in SafeText, pydantic strips the blanks after
    # checking the length, so "   " passed as an empty name (and the database refused it: a 500).
    moderator: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        AfterValidator(storable_text),
    ]
    note: Annotated[
        str | None,
        StringConstraints(strip_whitespace=True, max_length=2000),
        AfterValidator(optional_storable_text),
    ] = None


class ModeratorVerdict(BaseModel):
    verdict: Verdict
    moderator: str
    note: str | None
    decided_at: AwareDatetime


class VerdictStored(ModeratorVerdict):
    pair_id: str
    changed: bool = Field(description="False when the same verdict, moderator and note were already stored")


# --------------------------------------------------------------------------- images and ads


class ImageOfAd(BaseModel):
    image_id: str
    url: str
    ad_id: int
    source: str
    category: str | None
    seller_id: str | None
    first_seen_at: AwareDatetime


class PairImage(ImageOfAd):
    # The URL has a default only to be filled in here; every response carries it.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    width: int | None
    height: int | None
    # Filled from the validated image_id: the store knows nothing of this API's URLs.
    thumbnail_url: str = Field(default_factory=lambda data: thumbnail_url(data["image_id"]))


class AdRecord(BaseModel):
    ad_id: int
    source: str
    category: str | None
    seller_id: str | None
    first_seen_at: AwareDatetime


class EventState(BaseModel):
    event_id: str
    status: str = Field(description="accepted, processing, indexed or dead")
    replay: bool
    dead_reason: str | None
    accepted_at: AwareDatetime
    updated_at: AwareDatetime


class ImageState(BaseModel):
    image_id: str
    url: str
    position: int
    status: str = Field(description="pending, indexed or failed")
    error_reason: str | None
    error_detail: str | None
    width: int | None
    height: int | None
    format: str | None
    embedding_model: str | None
    indexed_at: AwareDatetime | None


class ImageFailure(BaseModel):
    image_id: str
    url: str
    reason: str = Field(
        description="The image's machine-readable failure (e.g. url_invalid, url_blocked, http_404,"
        " truncated, fetch_error), or not_processed when the ad's event died before reaching it"
    )
    detail: str | None


class AdState(BaseModel):
    ad_id: int
    ad: AdRecord | None = Field(description="None when only the ad's events are known")
    state: Literal["processing", "done", "done_with_failures", "dead"] = Field(
        description="processing: an event or a pair is in flight; dead: the ad's latest event was"
        " dead-lettered (`imgdup replay --ad-ids` re-runs it); done_with_failures: processed, but some"
        " images were not indexed (see failed_images); done: every image indexed"
    )
    image_counts: dict[str, int] = Field(description="The ad's images by status (pending, indexed, failed)")
    failed_images: list[ImageFailure] = Field(
        description="Each image not indexed once nothing is in flight, with its reason"
    )
    events: list[EventState]
    images: list[ImageState]
    pairs: dict[str, int] = Field(description="The ad's pairs by status")


# --------------------------------------------------------------------------- clusters


class ClusterMerge(BaseModel):
    cluster_id: str = Field(description="The cluster merged into this one")
    merged_at: AwareDatetime


class ClusterSummary(BaseModel):
    cluster_id: str
    size: int
    ad_count: int
    edge_count: int
    confidence: float
    created_at: AwareDatetime
    updated_at: AwareDatetime


class Cluster(ClusterSummary):
    images: list[ImageOfAd]
    ads: list[int]
    merged: list[ClusterMerge]


class ClustersPage(BaseModel):
    total: int
    limit: int
    offset: int
    clusters: list[Cluster]


class ModeratedImage(PairImage):
    detached: bool = Field(description="Every duplicate pair of the image was rejected by a moderator")


class ModeratedPair(BaseModel):
    pair_id: str
    image_a: str
    image_b: str
    ad_a: int
    ad_b: int
    status: str
    confidence: float
    evidence: EvidenceV1
    decided_at: AwareDatetime | None
    duplicate: bool = Field(description="A moderator's verdict overrides the verifier's")
    moderator_verdict: ModeratorVerdict | None


class VerdictCounts(BaseModel):
    confirmed: int
    not_duplicate: int
    pending: int


class ModeratedCluster(ClusterSummary):
    images: list[ModeratedImage]
    ads: list[int]
    pairs: list[ModeratedPair]
    groups: list[list[str]] = Field(description="Images still linked by pairs no moderator rejected")
    verdicts: VerdictCounts


class ModeratedClustersPage(BaseModel):
    total: int
    limit: int
    offset: int
    clusters: list[ModeratedCluster]


# --------------------------------------------------------------------------- one pair


class PairDetail(BaseModel):
    pair_id: str
    status: str = Field(description="Pipeline state: candidate, rejected, verified or clustered")
    verifier_duplicate: bool | None = Field(description="The verifier's verdict (None while a candidate)")
    duplicate: bool = Field(
        description="What the API presents: a moderator's verdict overrides the verifier's"
    )
    confidence: float | None
    evidence: EvidenceV1 | None = Field(description="None while no verifier has measured the pair")
    versions: dict[str, str | None]
    cluster_id: str | None
    found_at: AwareDatetime
    decided_at: AwareDatetime | None
    images: list[PairImage]
    moderator_verdict: ModeratorVerdict | None
    history: list[ModeratorVerdict]


class PairExplanation(BaseModel):
    """Why the verifier decided as it did, for the admin page to draw over the two stored copies
    (imgdup_core.explain; recomputed from the stored features, not stored per pair)."""

    pair_id: str
    image_a: str
    image_b: str
    compared: str = Field(description="Which pictures were compared: full/full, photo/full, ...")
    aligned: bool
    mirrored: bool = Field(description="b matched as its mirror image (lines join the unmirrored b)")
    inliers: int = Field(description="RANSAC inliers recomputed now")
    stored_inliers: int | None = Field(description="The inliers stored with the verdict")
    matches: list[tuple[float, float, float, float]] = Field(
        description="Inlier pairs (xa, ya, xb, yb), fractions of each side's stored copy (a sample)"
    )
    box_a: tuple[float, float, float, float] | None = Field(
        description="The framed photo of a that was compared (x0, y0, x1, y1 fractions), if any"
    )
    box_b: tuple[float, float, float, float] | None
    overlay_url: str | None = Field(description="The aligned overlay and difference image, when aligned")


# --------------------------------------------------------------------------- the caller


class Caller(BaseModel):
    """Who the API takes the caller for (GET /api/v1/whoami)."""

    name: str = Field(description="The credential's name, the proxy's user, api-token, or anonymous")
    roles: list[str] = Field(description="ingest, moderator, viewer, metrics; admin for full access")
    via: Literal["token", "credential", "proxy", "open"] = Field(
        description="open: no credentials are configured (development), everyone has full access"
    )
    access: list[str] = Field(description="What the roles reach: any, ingest, read, moderate, metrics")
