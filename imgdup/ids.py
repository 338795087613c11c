"""Stable inputs -> deterministic UUIDs for images, pairs, clusters and events (replays are no-ops)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

NAMESPACE = uuid.UUID("6f1c3a52-3f5e-4c0e-9f3b-2d8e1f0a7b11")


def image_id(ad_id: int, url: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"image:{ad_id}:{url}"))


def photo_point_id(image: str) -> str:
    """Vector-store id of the second vector of an image: the photo its screenshot frames."""
    return str(uuid.uuid5(NAMESPACE, f"photo:{image}"))


def ordered_pair(image_x: str, image_y: str) -> tuple[str, str]:
    if image_x == image_y:
        raise ValueError("an image cannot pair with itself")
    return (image_x, image_y) if image_x < image_y else (image_y, image_x)


def pair_id(image_x: str, image_y: str) -> str:
    a, b = ordered_pair(image_x, image_y)
    return str(uuid.uuid5(NAMESPACE, f"pair:{a}:{b}"))


def cluster_id_for_pair(pair: str, retractions: int = 0) -> str:
    """A new cluster is named after the pair that created it (and how often that pair was retracted
    before, so a pair clustered again after a retraction never reuses a retired id)."""
    if retractions == 0:
        return str(uuid.uuid5(NAMESPACE, f"cluster:{pair}"))
    return str(uuid.uuid5(NAMESPACE, f"cluster:{pair}:{retractions}"))


def split_cluster_id(cluster: str, splits: int, members: frozenset[str]) -> str:
    """A piece split off `cluster` at its `splits`-th split, named by its members."""
    return str(uuid.uuid5(NAMESPACE, f"split-cluster:{cluster}:{splits}:{min(members)}"))


def duplicate_event_id(pair: str, verifier_version: str, retractions: int = 0) -> str:
    if retractions == 0:
        return str(uuid.uuid5(NAMESPACE, f"duplicate-event:{pair}:{verifier_version}"))
    return str(uuid.uuid5(NAMESPACE, f"duplicate-event:{pair}:{verifier_version}:{retractions}"))


def change_event_id(kind: str, subject: str, number: int) -> str:
    """A cluster change: its kind, what it is about (a pair, a cluster) and which time it is."""
    return str(uuid.uuid5(NAMESPACE, f"change:{kind}:{subject}:{number}"))


def ingest_event_id(payload: Mapping[str, Any]) -> str:
    """Event id for an API ingest: the same payload posted twice is the same event."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return str(uuid.uuid5(NAMESPACE, f"ingest:{canonical}"))
