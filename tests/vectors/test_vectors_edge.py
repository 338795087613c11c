"""Consumes imgdup.vectors.edge.EdgeVectorStore: reopening a folder, its one-process lock, concurrent use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vector_points import DIM, concurrent_upsert_and_search, fill, point, random_unit

from imgdup.vectors.edge import EdgeVectorStore


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_edge_reopen_keeps_points(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "edge"
    first = EdgeVectorStore(path, dim=DIM)
    ids, vecs = fill(first, rng, n=30)
    before = first.search(vecs[5], limit=5, exclude_ad_id=0, category="flats")
    first.close()

    second = EdgeVectorStore(path, dim=DIM)
    try:
        assert second.count() == 30
        assert second.search(vecs[5], limit=5, exclude_ad_id=0, category="flats") == before
        assert second.search(vecs[5], limit=1)[0].image_id == ids[5]
        second.upsert([point("p0", vecs[0], 0, "cars"), point("new", random_unit(rng), 99)])
        assert second.count() == 31
    finally:
        second.close()

    with pytest.raises(Exception, match="vector size"):
        EdgeVectorStore(path, dim=DIM * 2)


def test_edge_folder_is_single_owner(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path / "edge", dim=DIM)
    try:
        with pytest.raises(Exception, match="WAL"):
            EdgeVectorStore(tmp_path / "edge", dim=DIM)
    finally:
        first.close()
    EdgeVectorStore(tmp_path / "edge", dim=DIM).close()  # free again once closed


def test_edge_concurrent_upsert_and_search(tmp_path: Path, rng: np.random.Generator) -> None:
    store = EdgeVectorStore(tmp_path / "edge", dim=DIM)
    try:
        concurrent_upsert_and_search(
            store, random_unit(rng, 400), batch=10, read_stride=4, probes=(0, 123, 399)
        )
    finally:
        store.close()
