"""Consumes imgdup.ids: deterministic UUIDs, so replays produce the same rows and events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from imgdup import ids

A = ids.image_id(1, "https://cdn.example.com/a.jpg")
B = ids.image_id(2, "https://cdn.example.com/b.jpg")


def _is_uuid5(value: str) -> bool:
    parsed = uuid.UUID(value)
    return str(parsed) == value and parsed.version == 5


def test_image_id_is_deterministic_uuid5() -> None:
    assert ids.image_id(1, "https://cdn.example.com/a.jpg") == A
    assert _is_uuid5(A)


def test_image_id_depends_on_ad_and_url() -> None:
    same_url_other_ad = ids.image_id(2, "https://cdn.example.com/a.jpg")
    same_ad_other_url = ids.image_id(1, "https://cdn.example.com/a.jpg?v=2")
    assert len({A, same_url_other_ad, same_ad_other_url}) == 3


def test_known_value_is_stable_across_releases() -> None:
    """The namespace and input format are part of the stored data; changing them orphans rows."""
    expected = str(uuid.uuid5(uuid.UUID("6f1c3a52-3f5e-4c0e-9f3b-2d8e1f0a7b11"), "image:7:http://x/y.jpg"))
    assert ids.image_id(7, "http://x/y.jpg") == expected


def test_ordered_pair_sorts() -> None:
    low, high = sorted((A, B))
    assert ids.ordered_pair(A, B) == (low, high)
    assert ids.ordered_pair(B, A) == (low, high)


def test_pair_id_is_symmetric_and_deterministic() -> None:
    pid = ids.pair_id(A, B)
    assert pid == ids.pair_id(B, A) == ids.pair_id(A, B)
    assert _is_uuid5(pid)
    other = ids.image_id(3, "https://cdn.example.com/c.jpg")
    assert ids.pair_id(A, other) != pid


@pytest.mark.parametrize("call", [ids.ordered_pair, ids.pair_id])
def test_self_pair_refused(call: Callable[[str, str], object]) -> None:
    with pytest.raises(ValueError, match="itself"):
        call(A, A)


def test_cluster_and_event_ids_are_deterministic_and_distinct() -> None:
    pid = ids.pair_id(A, B)
    cid = ids.cluster_id_for_pair(pid)
    assert cid == ids.cluster_id_for_pair(pid)
    assert cid != pid
    event = ids.duplicate_event_id(pid, "verifier-1")
    assert event == ids.duplicate_event_id(pid, "verifier-1")
    assert event != ids.duplicate_event_id(pid, "verifier-2")
    assert len({pid, cid, event}) == 3


def test_ingest_event_id_stable_under_key_order() -> None:
    one = {"ad_id": 5, "source": "olx.pt", "images": ["https://x/1.jpg"], "meta": {"b": 1, "a": 2}}
    two = {"meta": {"a": 2, "b": 1}, "images": ["https://x/1.jpg"], "source": "olx.pt", "ad_id": 5}
    assert ids.ingest_event_id(one) == ids.ingest_event_id(two)
    assert _is_uuid5(ids.ingest_event_id(one))


def test_ingest_event_id_changes_with_content() -> None:
    base: dict[str, Any] = {"ad_id": 5, "source": "olx.pt", "images": ["https://x/1.jpg", "https://x/2.jpg"]}
    assert ids.ingest_event_id(base) != ids.ingest_event_id({**base, "ad_id": 6})
    assert ids.ingest_event_id(base) != ids.ingest_event_id({**base, "images": base["images"][:1]})
