"""An ad's duplicates as the store reads them -> the shape of GET /api/v1/duplicates/{ad_id}: the ads with
a verified pair of their own, then the ads sharing a duplicate cluster with it."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from imgdup.http.models import ModeratorVerdict
from schemas import EvidenceV1


class DuplicatePair(BaseModel):
    pair_id: str
    image_id: str = Field(description="The image of the ad asked about")
    image_url: str
    other_image_id: str
    other_image_url: str
    confidence: float
    status: str
    cluster_id: str | None
    held: bool = Field(
        False,
        description="A duplicate pair held out of clusters: it would join two established clusters on "
        "its own, too weak to merge them (docs/events.md, held bridges)",
    )
    evidence: EvidenceV1
    versions: dict[str, str | None]
    decided_at: AwareDatetime | None
    moderator_verdict: ModeratorVerdict | None


class ClusterLink(BaseModel):
    image_id: str = Field(description="The image of the ad asked about")
    image_url: str
    other_image_id: str
    other_image_url: str
    cluster_id: str = Field(description="The duplicate cluster both images are in")
    cluster_size: int


class DuplicateAd(BaseModel):
    ad_id: int
    source: str
    seller_id: str | None
    category: str | None
    similarity: float = Field(
        description="The best confidence among the pairs; for an ad matched through a cluster, the best "
        "confidence of the clusters linking them (the mean of each cluster's edges)"
    )
    match: Literal["pair", "cluster"] = Field(
        description="`pair`: the ads have a verified duplicate pair of their own (in `pairs`). `cluster`: "
        "none, but their images are in one duplicate cluster, linked through other ads' images (two "
        "edits of one photo, each verified against the original; in `links`)"
    )
    pairs: list[DuplicatePair]
    links: list[ClusterLink] = Field(description="Only for `match: cluster`: the images sharing a cluster")


class AdDuplicates(BaseModel):
    ad_id: int
    duplicates: list[DuplicateAd] = Field(
        description="Ads with a verified pair first (best first), then ads matched through a cluster"
    )
    cluster_mates_left_out: int = Field(
        0, description="Ads matched through a cluster that `cluster_mates` (the limit) left out"
    )
