"""Consumes every VectorStore backend (qdrant-edge, Qdrant server, numpy, pgvector); checks their contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from vector_points import DIM, at_cosine, brute_force, fill, pid, point, random_unit, unit

from imgdup.vectors.base import VectorPoint, VectorStore
from imgdup.vectors.edge import EdgeVectorStore
from imgdup.vectors.numpy_index import NumpyVectorIndex
from imgdup.vectors.pgvector import PgVectorStore
from imgdup.vectors.qdrant_server import QdrantServerStore


@pytest.fixture(params=["edge", "server", "numpy", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s: VectorStore
    if request.param == "pgvector":
        # A vector space (table) of its own per test, in the session's embedded Postgres.
        dsn = request.getfixturevalue("pg_dsn")
        s = PgVectorStore(dsn, space=f"test-{uuid.uuid4()}", dim=DIM)
    elif request.param == "edge":
        s = EdgeVectorStore(tmp_path / "edge", dim=DIM)
    elif request.param == "server":
        s = QdrantServerStore(QdrantClient(location=":memory:"), collection="images", dim=DIM)
    else:
        s = NumpyVectorIndex(tmp_path / "index", dim=DIM)
    yield s
    s.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_upsert_same_id_overwrites(store: VectorStore, rng: np.random.Generator) -> None:
    a, b = random_unit(rng), random_unit(rng)
    store.upsert([point("x", a, 1, "cars")])
    store.upsert([point("x", a, 1, "cars")])
    assert store.count() == 1
    store.upsert([point("x", b, 2, "flats")])  # same image_id: overwrite, not a second point
    assert store.count() == 1
    (hit,) = store.search(b, limit=5)
    assert hit.image_id == pid("x")
    assert hit.ad_id == 2
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    assert store.search(b, limit=5, category="cars") == []
    store.upsert([])
    assert store.count() == 1


def test_a_second_vector_of_an_image_is_found_as_that_image(
    store: VectorStore, rng: np.random.Generator
) -> None:
    # A screenshot is stored with the photo it frames as a second point (VectorPoint.point_id);
    # a hit on either names the image, and re-storing either overwrites only itself.
    whole, photo, other = random_unit(rng), random_unit(rng), random_unit(rng)
    second = str(uuid.uuid5(uuid.NAMESPACE_URL, "imgdup-test/shot/photo"))
    store.upsert([point("shot", whole, 1)])
    store.upsert([VectorPoint(pid("shot"), photo, 1, None, "t", point_id=second), point("o", other, 2)])
    store.upsert([VectorPoint(pid("shot"), photo, 1, None, "t", point_id=second)])
    assert store.count() == 3
    (hit,) = store.search(photo, limit=1)
    assert hit.image_id == pid("shot") and hit.ad_id == 1
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    hits = store.search(whole, limit=3)
    assert [h.image_id for h in hits].count(pid("shot")) == 2
    assert store.search(photo, limit=3, exclude_ad_id=1)[0].image_id == pid("o")


def test_nearest_neighbour_matches_brute_force(store: VectorStore, rng: np.random.Generator) -> None:
    ids, vecs = fill(store, rng)
    assert store.count() == len(ids)
    everything = np.ones(len(ids), dtype=bool)
    for i in (0, 7, 31, 59):
        q = unit(vecs[i] + 0.05 * rng.standard_normal(DIM))
        hits = store.search(q, limit=5)
        expected = brute_force(vecs, q, everything, 5)
        assert expected[0] == i
        assert [h.image_id for h in hits] == [ids[j] for j in expected]
        assert [h.ad_id for h in hits] == [j // 3 for j in expected]
        assert [h.score for h in hits] == pytest.approx([float(vecs[j] @ q) for j in expected], abs=1e-4)


def test_exclude_ad_id(store: VectorStore, rng: np.random.Generator) -> None:
    ids, vecs = fill(store, rng)
    ad_ids = np.arange(len(ids)) // 3
    q = vecs[4]  # image of ad 1
    assert store.search(q, limit=1)[0].ad_id == 1
    hits = store.search(q, limit=10, exclude_ad_id=1)
    assert len(hits) == 10
    assert all(h.ad_id != 1 for h in hits)
    expected = brute_force(vecs, q, ad_ids != 1, 10)
    assert [h.image_id for h in hits] == [ids[j] for j in expected]
    # Excluding an ad that has no points changes nothing.
    unfiltered = store.search(q, limit=10)
    noop = store.search(q, limit=10, exclude_ad_id=10**12)
    assert [h.image_id for h in noop] == [h.image_id for h in unfiltered]
    assert [h.score for h in noop] == pytest.approx([h.score for h in unfiltered], abs=1e-6)


def test_category_filter(store: VectorStore, rng: np.random.Generator) -> None:
    ids, vecs = fill(store, rng)
    cats = np.array([["cars", "flats", None][i % 3] for i in range(len(ids))], dtype=object)
    q = random_unit(rng)
    hits = store.search(q, limit=100, category="flats")
    assert {h.image_id for h in hits} == {ids[i] for i in np.flatnonzero(cats == "flats")}
    expected = brute_force(vecs, q, cats == "flats", 5)
    assert [h.image_id for h in store.search(q, limit=5, category="flats")] == [ids[j] for j in expected]
    assert store.search(q, limit=5, category="boats") == []
    assert len(store.search(q, limit=100)) == len(ids)  # no category: everything, None too
    # Both filters at once.
    both = store.search(q, limit=100, category="cars", exclude_ad_id=0)
    assert {h.image_id for h in both} == {ids[i] for i in np.flatnonzero(cats == "cars") if i // 3 != 0}


def test_min_score(store: VectorStore, rng: np.random.Generator) -> None:
    v = random_unit(rng)
    store.upsert(
        [
            point("same", v, 1),
            point("near", at_cosine(v, 0.95, rng), 2),
            point("mid", at_cosine(v, 0.70, rng), 3),
            point("far", at_cosine(v, 0.20, rng), 4),
        ]
    )
    assert [h.ad_id for h in store.search(v, limit=10)] == [1, 2, 3, 4]
    assert [h.ad_id for h in store.search(v, limit=10, min_score=0.9)] == [1, 2]
    assert [h.ad_id for h in store.search(v, limit=10, min_score=0.6)] == [1, 2, 3]
    assert [h.ad_id for h in store.search(v, limit=10, min_score=0.99)] == [1]
    hits = store.search(v, limit=10, min_score=0.6, exclude_ad_id=1)
    assert [h.ad_id for h in hits] == [2, 3]
    assert hits[0].score == pytest.approx(0.95, abs=1e-4)
    assert hits[1].score == pytest.approx(0.70, abs=1e-4)


def test_search_batch_equals_search(store: VectorStore, rng: np.random.Generator) -> None:
    _, vecs = fill(store, rng)
    queries = np.stack([vecs[0], vecs[10], random_unit(rng), vecs[33], vecs[59]])
    excludes: list[int | None] = [0, None, 5, 11, None]
    categories: list[str | None] = [None, "cars", "flats", None, "flats"]
    for min_score in (None, 0.1):
        batch = store.search_batch(
            queries,
            limit=7,
            exclude_ad_ids=excludes,
            categories=categories,
            min_score=min_score,
        )
        assert len(batch) == len(queries)
        for q, ex, cat, got in zip(queries, excludes, categories, batch, strict=True):
            single = store.search(q, limit=7, exclude_ad_id=ex, category=cat, min_score=min_score)
            assert [h.image_id for h in got] == [h.image_id for h in single]
            assert [h.ad_id for h in got] == [h.ad_id for h in single]
            assert [h.score for h in got] == pytest.approx([h.score for h in single], abs=1e-6)
            assert got, "every query in this batch has matches"
    empty = np.zeros((0, DIM), dtype=np.float32)
    assert store.search_batch(empty, limit=3, exclude_ad_ids=[], categories=[]) == []


def test_bad_input_is_refused(store: VectorStore, rng: np.random.Generator) -> None:
    v = random_unit(rng)
    with pytest.raises(ValueError, match="UUID"):
        store.upsert([VectorPoint("not-a-uuid", v, 1, None, "t")])
    with pytest.raises(ValueError, match="shape"):
        store.upsert([point("short", v[:-1], 1)])
    with pytest.raises(ValueError, match="64-bit"):
        store.upsert([point("huge", v, 2**63)])
    with pytest.raises(ValueError, match="shape"):
        store.search(v[:-1], limit=3)
    with pytest.raises(ValueError, match="limit"):
        store.search(v, limit=0)
    with pytest.raises(ValueError, match="one exclude_ad_id"):
        store.search_batch(np.stack([v, v]), limit=3, exclude_ad_ids=[None], categories=[None, None])
    assert store.count() == 0
    # Extremes of the signed 64-bit range round-trip and filter exactly.
    store.upsert([point("max", v, 2**63 - 1), point("max-1", v, 2**63 - 2)])
    assert {h.ad_id for h in store.search(v, limit=5)} == {2**63 - 1, 2**63 - 2}
    assert [h.ad_id for h in store.search(v, limit=5, exclude_ad_id=2**63 - 1)] == [2**63 - 2]


def test_closed_store_refuses_calls(store: VectorStore, rng: np.random.Generator) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.search(random_unit(rng), limit=1)
