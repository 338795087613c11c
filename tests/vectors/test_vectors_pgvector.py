"""Consumes imgdup.vectors.pgvector on the embedded Postgres: HNSW recall under filters, sharing, setup."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from vector_points import pid

from imgdup.vectors.base import VectorPoint
from imgdup.vectors.pgvector import PgVectorStore, table_name

BIG_DIM = 512  # SSCD's: HNSW recall depends on it, so not the contract tests' 32
N = 6000
CATEGORIES = [f"cat{i}" for i in range(10)]


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def at_cosine(v: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    r = rng.standard_normal(len(v))
    return unit(cos * v + np.sqrt(1.0 - cos**2) * unit(r - (r @ v) * v))


def space() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def filled(pg_dsn: str) -> Iterator[tuple[PgVectorStore, np.ndarray, list[str]]]:
    """N random 512-d points, two per ad, ten categories, plus six in a rare one ("boats")."""
    rng = np.random.default_rng(7)
    m = rng.standard_normal((N, BIG_DIM))
    vecs = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    cats = [CATEGORIES[i % 10] if i % 1000 else "boats" for i in range(N)]
    store = PgVectorStore(pg_dsn, space=space(), dim=BIG_DIM)
    for s in range(0, N, 1000):
        store.upsert(
            [VectorPoint(pid(f"big{i}"), vecs[i], i // 2, cats[i], "t") for i in range(s, min(N, s + 1000))]
        )
    yield store, vecs, cats
    store.close()


def test_near_duplicate_hit_at_10_with_category_and_ad_filters(
    filled: tuple[PgVectorStore, np.ndarray, list[str]],
) -> None:
    store, vecs, cats = filled
    rng = np.random.default_rng(8)
    targets = rng.choice(N, 200, replace=False)
    found = 0
    for i in targets:
        q = at_cosine(vecs[i], float(rng.uniform(0.6, 0.95)), rng)
        hits = store.search(q, limit=10, category=cats[i], exclude_ad_id=10**9)
        found += pid(f"big{i}") in [h.image_id for h in hits]
        assert len(hits) == (6 if cats[i] == "boats" else 10)
    assert found / len(targets) >= 0.99


def test_a_rare_category_is_found_whole(filled: tuple[PgVectorStore, np.ndarray, list[str]]) -> None:
    # Six of 6000 points: a plain HNSW scan of ef_search candidates then filtered would find
    # none or few of them; the iterative scan walks on until it has them.
    store, _, _ = filled
    rng = np.random.default_rng(9)
    q = unit(rng.standard_normal(BIG_DIM))
    hits = store.search(q, limit=10, category="boats")
    assert sorted(h.image_id for h in hits) == sorted(pid(f"big{i}") for i in range(0, N, 1000))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_the_hnsw_index_answers_the_search(
    pg_dsn: str, filled: tuple[PgVectorStore, np.ndarray, list[str]]
) -> None:
    store, vecs, _ = filled
    q = "[" + ",".join(map(str, vecs[0].tolist())) + "]"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"ANALYZE {store.table}")  # what autovacuum does to a table this size
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT image_id FROM {store.table} WHERE category = 'cat1'"
                " ORDER BY embedding <=> %s::vector LIMIT 10",
                (q,),
            )
        )
    assert f"{store.table}_hnsw" in plan


def test_two_stores_on_one_space_share_it(pg_dsn: str) -> None:
    # Two workers (here two store objects, each with its own connections) see each other's writes.
    key = space()
    rng = np.random.default_rng(10)
    a, b = (PgVectorStore(pg_dsn, space=key, dim=BIG_DIM) for _ in range(2))
    try:
        v = rng.standard_normal(BIG_DIM).astype(np.float32)
        v /= np.linalg.norm(v)
        a.upsert([VectorPoint(pid("shared"), v, 1, None, "t")])
        (hit,) = b.search(v, limit=5)
        assert hit.image_id == pid("shared") and hit.score == pytest.approx(1.0, abs=1e-5)
        b.upsert([VectorPoint(pid("shared"), v, 2, None, "t")])  # the same point: overwritten
        assert a.count() == b.count() == 1
        assert a.size_bytes() > 0
        assert a.search(v, limit=5)[0].ad_id == 2
    finally:
        a.close()
        b.close()


def test_spaces_are_separate_tables_and_keep_their_dim(pg_dsn: str) -> None:
    key = space()
    first = PgVectorStore(pg_dsn, space=key, dim=8)
    other = PgVectorStore(pg_dsn, space=space(), dim=8)
    try:
        v = np.eye(8, dtype=np.float32)[0]
        first.upsert([VectorPoint(pid("one"), v, 1, None, "t")])
        assert other.count() == 0
        assert first.table != other.table == table_name(other.space)
        assert len(first.table) <= 63
    finally:
        first.close()
        other.close()
    with pytest.raises(ValueError, match="dim 8"):
        PgVectorStore(pg_dsn, space=key, dim=16)


def test_pgvector_versions_are_read() -> None:
    from imgdup.vectors.pgvector import _version

    assert _version("0.8.6") == (0, 8, 6) >= (0, 8)
    assert _version("0.7.4") < (0, 8)
    assert _version("?") < (0, 8)
