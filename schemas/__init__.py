"""Event contracts: versioned pydantic models whose JSON Schemas are committed beside them."""

from schemas.events import (
    AdImagesCreatedV1,
    AdRef,
    CandidatePairV1,
    ClusterRef,
    DeadLetterV1,
    DuplicateEventV1,
    EvidenceV1,
    ImageRef,
    VerifiedPairV1,
    VersionsV1,
)

__all__ = [
    "AdImagesCreatedV1",
    "AdRef",
    "CandidatePairV1",
    "ClusterRef",
    "DeadLetterV1",
    "DuplicateEventV1",
    "EvidenceV1",
    "ImageRef",
    "VerifiedPairV1",
    "VersionsV1",
]
