"""bench/pgvector_bulk.py: the binary COPY encoding of a store row and its vector, and the bulk
load (COPY, then the store's own HNSW index rebuilt) into a PgVectorStore on the embedded Postgres."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import psycopg
import pytest

from bench.pgvector_bulk import (
    COPY_HEADER,
    COPY_TRAILER,
    bulk_load,
    copy_row,
    copy_rows,
    relation_bytes,
    server_memory,
    vector_field,
)
from imgdup.ops.embedded import Postgres
from imgdup.vectors.base import VectorPoint
from imgdup.vectors.pgvector import PgVectorStore

DIM = 16


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def units(n: int, seed: int = 3) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


def test_vector_field_is_length_then_dim_then_big_endian_floats() -> None:
    v = np.array([1.0, -2.5, 0.125], dtype=np.float32)
    data = vector_field(v)
    assert struct.unpack("!i", data[:4])[0] == len(data) - 4 == 4 + 4 * 3
    assert struct.unpack("!hh", data[4:8]) == (3, 0)
    assert struct.unpack("!3f", data[8:]) == (1.0, -2.5, 0.125)


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2), np.float32), np.zeros(0, np.float32), np.array([1.0, np.nan], np.float32)]
)
def test_vector_field_rejects_what_pgvector_would(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        vector_field(bad)


def test_copy_row_fields_in_table_order_with_null_category() -> None:
    pid = str(uuid.UUID(int=7))
    row = copy_row(pid, pid, -3, None, "src", np.ones(2, np.float32))
    assert struct.unpack("!h", row[:2])[0] == 6
    assert row[2:6] == struct.pack("!i", 16) and row[6:22] == uuid.UUID(pid).bytes
    assert row[22:26] == struct.pack("!i", 16) and row[26:42] == uuid.UUID(pid).bytes
    assert struct.unpack("!iq", row[42:54]) == (8, -3)
    assert row[54:58] == struct.pack("!i", -1)  # NULL category
    assert row[58:65] == struct.pack("!i", 3) + b"src"
    assert row[65:] == vector_field(np.ones(2, np.float32))


def test_copy_rows_frames_the_stream_and_checks_lengths() -> None:
    x = units(5)
    chunks = list(copy_rows(x, ids(5), [0] * 5, ["c"] * 5, "s", chunk=2))
    assert chunks[0] == COPY_HEADER and chunks[-1] == COPY_TRAILER
    assert len(chunks) == 2 + 3  # 5 rows in chunks of 2
    with pytest.raises(ValueError):
        list(copy_rows(x, ids(4), [0] * 5, ["c"] * 5, "s"))


def test_bulk_load_fills_the_store_and_rebuilds_its_own_index(pg_server: Postgres) -> None:
    n = 400
    x = units(n)
    store = PgVectorStore(pg_server.dsn, space=f"bulk-{uuid.uuid4()}", dim=DIM)
    try:
        with psycopg.connect(pg_server.dsn) as conn:
            before = conn.execute(
                "SELECT pg_get_indexdef(to_regclass(%s))", (store.table + "_hnsw",)
            ).fetchone()
        cats = [f"c{i % 3}" if i % 5 else None for i in range(n)]
        out = bulk_load(
            store,
            pg_server.dsn,
            copy_rows(x, ids(n), [i // 2 for i in range(n)], cats, "bench", chunk=64),
            maintenance_work_mem="64MB",
        )
        assert store.count() == n
        assert before is not None and out["index_def"] == before[0]
        with psycopg.connect(pg_server.dsn) as conn:
            after = conn.execute(
                "SELECT pg_get_indexdef(to_regclass(%s))", (store.table + "_hnsw",)
            ).fetchone()
        assert after == before  # the same index, m and ef_construction as the store made
        hits = store.search(x[11], limit=3, category="c2")
        assert hits[0].image_id == ids(n)[11] and hits[0].ad_id == 5
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert all(h.image_id != ids(n)[10] for h in hits)  # row 10: NULL category, filtered out
        extra = units(1, seed=9)[0]  # the live index takes upserts after the load
        store.upsert([VectorPoint(str(uuid.UUID(int=10**6)), extra, 1, None, "t")])
        assert store.search(extra, limit=1)[0].image_id == str(uuid.UUID(int=10**6))
        sizes = relation_bytes(pg_server.dsn, store)
        assert sizes["table_bytes"] > n * DIM * 4
        assert 0 < sizes["hnsw_index_bytes"] < sizes["total_bytes"]
    finally:
        store.close()


def test_server_memory_reads_the_postmaster_and_its_children(pg_server: Postgres) -> None:
    mem = server_memory(pg_server.postmaster_pid())
    assert mem is not None and mem["processes"] >= 2
    assert 0 < mem["pss_bytes"] <= mem["rss_bytes"]
    assert server_memory(None) is None
