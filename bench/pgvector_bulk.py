"""Bench bulk load: vectors into a PgVectorStore's own table by binary COPY, then its HNSW index once.

Filling a 1M-point pgvector store through `upsert` walks the live HNSW graph once per row (54
points/s here, about 5 hours for 1M). A bench only needs the end state, so this drops the store's
HNSW index (remembering its definition with pg_get_indexdef, so the rebuilt index is exactly
the store's: same opclass, m, ef_construction), COPYs the rows into the store's table in
Postgres' binary format, and re-creates the index with enough maintenance_work_mem to build the
graph in memory. The build time is reported apart from the COPY time.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from imgdup.vectors.pgvector import PgVectorStore

__all__ = ["COPY_HEADER", "COPY_TRAILER", "bulk_load", "copy_row", "copy_rows", "vector_field"]

# PGCOPY signature, flags (no OIDs), header extension length: Postgres' binary COPY format.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
_COLUMNS = ("point_id", "image_id", "ad_id", "category", "source", "embedding")
_NULL = struct.pack("!i", -1)


def vector_field(vector: np.ndarray) -> bytes:
    """One pgvector value as a binary COPY field: length, then vector_recv's layout (int16 dim,
    int16 unused = 0, dim big-endian float4)."""
    v = np.asarray(vector)
    if v.ndim != 1 or not len(v):
        raise ValueError(f"a vector must be 1-d and non-empty, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("a vector must be finite (pgvector rejects NaN and infinity)")
    body = struct.pack("!hh", len(v), 0) + v.astype(">f4").tobytes()
    return struct.pack("!i", len(body)) + body


def _text_field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return struct.pack("!i", len(data)) + data


def copy_row(
    point_id: str, image_id: str, ad_id: int, category: str | None, source: str, vector: np.ndarray
) -> bytes:
    """One tuple of the store's table (columns in _COLUMNS order) in binary COPY format."""
    return b"".join(
        (
            struct.pack("!hi", len(_COLUMNS), 16),
            uuid.UUID(point_id).bytes,
            struct.pack("!i", 16),
            uuid.UUID(image_id).bytes,
            struct.pack("!iq", 8, ad_id),
            _text_field(category),
            _text_field(source),
            vector_field(vector),
        )
    )


def copy_rows(
    vectors: np.ndarray,
    ids: Sequence[str],
    ad_ids: Sequence[int],
    categories: Sequence[str | None],
    source: str,
    chunk: int = 5000,
) -> Iterator[bytes]:
    """The whole binary COPY stream (header, tuples, trailer) in chunks of `chunk` tuples; the
    image id is the point id, as for a VectorPoint without a second vector."""
    if not (len(vectors) == len(ids) == len(ad_ids) == len(categories)):
        raise ValueError("vectors, ids, ad_ids and categories must have one entry per row")
    yield COPY_HEADER
    for s in range(0, len(vectors), chunk):
        yield b"".join(
            copy_row(ids[i], ids[i], int(ad_ids[i]), categories[i], source, vectors[i])
            for i in range(s, min(len(vectors), s + chunk))
        )
    yield COPY_TRAILER


def _index_name(store: PgVectorStore) -> str:
    return store.table + "_hnsw"


def _progress(dsn: str, stop: threading.Event, log: list[dict[str, Any]], every: float) -> None:
    """Samples pg_stat_progress_create_index while the index builds (phase, tuples done)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        while not stop.wait(every):
            row = conn.execute(
                "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total"
                " FROM pg_stat_progress_create_index"
            ).fetchone()
            if row is not None:
                keys = ("phase", "tuples_done", "tuples_total", "blocks_done", "blocks_total")
                entry = dict(zip(keys, row, strict=True))
                entry["s"] = round(time.perf_counter() - t0, 1)
                log.append(entry)
                print(f"index build {entry}", flush=True)


def bulk_load(
    store: PgVectorStore,
    dsn: str,
    rows: Iterable[bytes],
    *,
    maintenance_work_mem: str = "4GB",
    parallel_workers: int = 1,
    progress_every: float = 0.0,
) -> dict[str, Any]:
    """Replace the index build of row-by-row upserts: drop the store's HNSW index, COPY `rows`
    (copy_rows' stream) into its table, re-create the index from its own definition.
    Returns {copy_s, index_build_s, index_def, settings, progress}."""
    table, index = sql.Identifier(store.table), _index_name(store)
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (index,),
        ).fetchone()
        if found is None:
            raise RuntimeError(f"the store's HNSW index {index} is missing")
        index_def = str(found[0])
        conn.execute(sql.SQL("DROP INDEX {i}").format(i=sql.Identifier(index)))
        t = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL("COPY {t} ({c}) FROM STDIN (FORMAT BINARY)").format(
                    t=table, c=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
                )
            ) as copy,
        ):
            for data in rows:
                copy.write(data)
        copy_s = time.perf_counter() - t
        conn.execute(sql.SQL("VACUUM ANALYZE {t}").format(t=table))
        conn.execute(sql.SQL("SET maintenance_work_mem = {m}").format(m=sql.Literal(maintenance_work_mem)))
        conn.execute(
            sql.SQL("SET max_parallel_maintenance_workers = {n}").format(n=sql.Literal(parallel_workers))
        )
        stop, log = threading.Event(), []  # type: ignore[var-annotated]
        watcher = None
        if progress_every > 0:
            watcher = threading.Thread(target=_progress, args=(dsn, stop, log, progress_every), daemon=True)
            watcher.start()
        t = time.perf_counter()
        try:
            conn.execute(sql.SQL(index_def))  # pg_get_indexdef's own text
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
        build_s = time.perf_counter() - t
    return {
        "copy_s": copy_s,
        "index_build_s": build_s,
        "index_def": index_def,
        "settings": {
            "maintenance_work_mem": maintenance_work_mem,
            "max_parallel_maintenance_workers": parallel_workers,
        },
        "progress": log,
    }


def relation_bytes(dsn: str, store: PgVectorStore) -> dict[str, int]:
    """The store's table (heap, pg_relation_size), its HNSW index, and everything together
    (pg_total_relation_size: heap, TOAST, primary key, HNSW)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_relation_size(%s::regclass), pg_relation_size(to_regclass(%s)),"
            " pg_total_relation_size(%s::regclass)",
            (store.table, _index_name(store), store.table),
        ).fetchone()
    assert row is not None
    return {"table_bytes": int(row[0]), "hnsw_index_bytes": int(row[1] or 0), "total_bytes": int(row[2])}


def _children(pid: int) -> list[int]:
    try:
        text = open(f"/proc/{pid}/task/{pid}/children").read()  # noqa: SIM115
    except OSError:
        return []
    return [int(p) for p in text.split()]


def server_memory(postmaster_pid: int | None) -> dict[str, int] | None:
    """The Postgres server's memory now: RSS and PSS (shared buffers counted once) summed over
    the postmaster and its children, from /proc/PID/smaps_rollup; None when unreadable."""
    if postmaster_pid is None:
        return None
    totals = {"rss_bytes": 0, "pss_bytes": 0, "processes": 0}
    for pid in [postmaster_pid, *_children(postmaster_pid)]:
        try:
            lines = open(f"/proc/{pid}/smaps_rollup").read().splitlines()  # noqa: SIM115
        except OSError:
            continue
        fields = {ln.split(":")[0]: ln.split()[1] for ln in lines if ln.endswith("kB")}
        totals["rss_bytes"] += int(fields.get("Rss", 0)) * 1024
        totals["pss_bytes"] += int(fields.get("Pss", 0)) * 1024
        totals["processes"] += 1
    return totals if totals["processes"] else None
