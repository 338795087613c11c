"""Consumes imgdup.vectors.numpy_index.NumpyVectorIndex: its sketch search path, persistence and
thread-safety (the VectorStore contract runs in test_vectors_contract)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vector_points import DIM, concurrent_upsert_and_search, fill, pid, point, random_unit

from imgdup.vectors.base import VectorPoint
from imgdup.vectors.numpy_index import NumpyVectorIndex


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    m = rng.standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


def near(v: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    r = np.asarray(rng.standard_normal(v.shape[0]), dtype=np.float32)
    r -= (r @ v) * v
    r /= np.linalg.norm(r)
    out: np.ndarray = np.asarray(cos * v + np.sqrt(1 - cos**2) * r, dtype=np.float32)
    return out


def big_index(
    path: Path, rng: np.random.Generator, n: int = 6000, dim: int = 64
) -> tuple[NumpyVectorIndex, np.ndarray]:
    """n random points (ad i // 2, category cycling a/b/None) searched through the sketches."""
    index = NumpyVectorIndex(path, dim=dim, bits=128, rerank=32, exact_below=0)
    vecs = unit_rows(rng, n, dim)
    cats = ["a", "b", None]
    index.upsert([VectorPoint(pid(f"n{i}"), vecs[i], i // 2, cats[i % 3], "t") for i in range(n)])
    return index, vecs


def test_sketch_path_finds_near_duplicates_with_exact_scores(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    index, vecs = big_index(tmp_path / "big", rng)
    try:
        for i in rng.choice(len(vecs), 40, replace=False):
            q = near(vecs[i], float(rng.uniform(0.8, 0.95)), rng)
            hits = index.search(q, limit=10)
            assert hits[0].image_id == pid(f"n{i}")
            assert hits[0].score == pytest.approx(float(vecs[i] @ q), abs=1e-5)
            # Every score returned is the exact cosine, best first.
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            exact = index.search_batch(
                q[None, :], limit=10, exclude_ad_ids=[None], categories=[None], exact=True
            )
            assert exact[0][0].image_id == hits[0].image_id
            assert exact[0][0].score == pytest.approx(hits[0].score, abs=1e-5)
    finally:
        index.close()


def test_sketch_path_applies_category_and_exclusion(tmp_path: Path, rng: np.random.Generator) -> None:
    index, vecs = big_index(tmp_path / "big", rng)
    try:
        i = 301  # ad 150, category "a" (301 % 3 == 1 -> "b")
        q = near(vecs[i], 0.9, rng)
        assert index.search(q, limit=5, category="b")[0].image_id == pid(f"n{i}")
        assert all(h.image_id != pid(f"n{i}") for h in index.search(q, limit=5, category="a"))
        hits = index.search(q, limit=5, exclude_ad_id=i // 2)
        assert hits and all(h.ad_id != i // 2 for h in hits)
        assert index.search(q, limit=5, min_score=0.99) == []
        assert index.shard_sizes() == {"a": 2000, "b": 2000, None: 2000}
    finally:
        index.close()


def test_reopen_replays_the_log_and_cuts_a_torn_tail(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "index"
    first = NumpyVectorIndex(path, dim=DIM)
    ids, vecs = fill(first, rng, n=30)
    first.upsert([point("p3", vecs[4], 77, "flats")])  # overwrite: the last record wins on replay
    before = first.search(vecs[5], limit=5, exclude_ad_id=0, category="flats")
    first.close()
    with open(path / "points.log", "ab") as log:
        log.write(b"\x07\x00\x00")  # a crash mid-write
    second = NumpyVectorIndex(path, dim=DIM)
    try:
        assert second.count() == 30
        assert second.search(vecs[5], limit=5, exclude_ad_id=0, category="flats") == before
        moved = second.search(vecs[4], limit=2, category="flats")
        assert {h.image_id for h in moved} == {ids[3], ids[4]}
        assert all(h.image_id != ids[3] for h in second.search(vecs[3], limit=30, category="cars"))
        second.upsert([point("new", random_unit(rng), 99)])
        second.compact()
        assert second.count() == 31
    finally:
        second.close()
    third = NumpyVectorIndex(path, dim=DIM)
    try:
        assert third.count() == 31
        assert third.search(vecs[5], limit=5, exclude_ad_id=0, category="flats") == before
    finally:
        third.close()
    with pytest.raises(ValueError, match="dim"):
        NumpyVectorIndex(path, dim=DIM * 2)


def test_reopen_keeps_which_image_a_second_vector_belongs_to(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "index"
    photo = random_unit(rng)
    first = NumpyVectorIndex(path, dim=DIM)
    first.upsert([VectorPoint(pid("shot"), photo, 5, "cars", "t", point_id=pid("shot/photo"))])
    first.compact()
    first.close()
    second = NumpyVectorIndex(path, dim=DIM)
    try:
        (hit,) = second.search(photo, limit=1, category="cars")
        assert hit.image_id == pid("shot") and hit.ad_id == 5
    finally:
        second.close()


def test_folder_is_single_owner(tmp_path: Path) -> None:
    first = NumpyVectorIndex(tmp_path / "index", dim=DIM)
    try:
        with pytest.raises(RuntimeError, match="another"):
            NumpyVectorIndex(tmp_path / "index", dim=DIM)
    finally:
        first.close()
    NumpyVectorIndex(tmp_path / "index", dim=DIM).close()


def test_concurrent_upsert_and_search(tmp_path: Path, rng: np.random.Generator) -> None:
    store = NumpyVectorIndex(tmp_path / "index", dim=DIM, exact_below=0, rerank=16)
    try:
        concurrent_upsert_and_search(
            store, random_unit(rng, 2400), batch=50, read_stride=16, probes=(0, 1234, 2399)
        )
    finally:
        store.close()


def test_parallel_scan_gives_the_same_hits(tmp_path: Path, rng: np.random.Generator) -> None:
    vecs = unit_rows(rng, 5000, 64)
    stores = [
        NumpyVectorIndex(tmp_path / f"s{k}", dim=64, rerank=32, exact_below=0, scan_threads=k) for k in (1, 2)
    ]
    try:
        for s in stores:
            s.upsert([VectorPoint(pid(f"n{i}"), vecs[i], i, None, "t") for i in range(5000)])
        for i in (3, 1234, 4999):
            q = near(vecs[i], 0.85, rng)
            one, two = (s.search(q, limit=10, exclude_ad_id=7) for s in stores)
            assert one[0].image_id == pid(f"n{i}")
            assert [h.image_id for h in one] == [h.image_id for h in two]
    finally:
        for s in stores:
            s.close()
