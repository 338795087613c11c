"""pgvector backend: VectorPoints into a Postgres VECTOR(dim) table, HNSW index, cosine VectorHits out."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from imgdup.vectors.base import (
    FloatArray,
    SearchOneAsBatch,
    VectorHit,
    VectorPoint,
    at_least,
    checked_ad_id,
    checked_batch,
    checked_vector,
)

__all__ = ["PgVectorStore", "table_name"]

# Serialises the setup (CREATE EXTENSION / TABLE / INDEX IF NOT EXISTS) of workers that start at
# once: two concurrent IF NOT EXISTS creations of one name can still fail on the catalog's
# unique index. Any constant works; it differs from imgdup.store.db's migration lock.
_SETUP_LOCK = 0x1D6D_0010
_SPACES = "imgdup_vector_spaces"


def table_name(space: str) -> str:
    """The table of one vector space: a short hash, since a space key may be longer than the
    63 characters Postgres allows a name (the key itself is kept in imgdup_vector_spaces)."""
    return "image_vectors_" + hashlib.sha256(space.encode()).hexdigest()[:16]


def _version(text: str) -> tuple[int, ...]:
    """(0, 8, 6) from '0.8.6'; () when unreadable."""
    try:
        return tuple(int(part) for part in text.split(".")[:3])
    except ValueError:
        return ()


def _text(vector: FloatArray) -> str:
    # pgvector's text form. float64 repr of each float32 value parses back to the same float32.
    return "[" + ",".join(map(repr, vector.astype(np.float64).tolist())) + "]"


class PgVectorStore(SearchOneAsBatch):
    """One vector space as a Postgres table (pgvector): any number of processes share it.

    Setup (here, not in a migration, so that a Postgres without pgvector only fails for the
    deployments that choose this backend): `CREATE EXTENSION IF NOT EXISTS vector` (needs a
    role allowed to create it, or a database where it already exists), then a table per vector
    space, `image_vectors_<hash of the space key>`:
    point_id uuid primary key, image_id, ad_id bigint, category, source, embedding VECTOR(dim),
    with an HNSW index (vector_cosine_ops, m=16, ef_construction=64, pgvector's defaults), and a
    row in `imgdup_vector_spaces` naming its space and dim. Reopening with another dim raises.

    Search: the HNSW index ordered by cosine distance, ad and category as filters on the same
    scan. `hnsw.ef_search` (default here 400, pgvector's is 40) is the candidate list per
    query. The search is approximate: on 100k random 512-d vectors (no neighbourhood to guide
    the graph walk, the worst case) the top 10 held 85 % of near-duplicates at cosine 0.8-0.95
    with ef_search 100, 95.5 % at 200, 99.5 % at 400, all at 800, where the exact stores find all
    (bench/results/pgvector-ef-search.md, vectors-pgvector.md). With a filter, pgvector
    >= 0.8's `hnsw.iterative_scan = relaxed_order` keeps walking the graph until `limit` rows
    pass it (bounded by `hnsw.max_scan_tuples`, 20,000 by default), so a category holding a
    tenth of the points still gets its top-10; results are re-sorted here since relaxed order
    may return them slightly out of order.

    Thread-safe: a small pool of autocommit connections (`max_connections`), one per call.
    Every upsert is `INSERT ... ON CONFLICT (point_id) DO UPDATE` (idempotent).
    """

    def __init__(
        self,
        dsn: str,
        *,
        space: str,
        dim: int,
        ef_search: int = 400,
        m: int = 16,
        ef_construction: int = 64,
        max_connections: int = 4,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        self.dim = dim
        self.space = space
        self.table = table_name(space)
        self.ef_search = ef_search
        self._setup(dsn, m=m, ef_construction=ef_construction)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
        )
        self._pool.open(wait=True, timeout=30)
        self._closed = False
        self._close_lock = threading.Lock()
        t = sql.Identifier(self.table)
        self._upsert_sql = sql.SQL(
            "INSERT INTO {t} (point_id, image_id, ad_id, category, source, embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s::vector)"
            " ON CONFLICT (point_id) DO UPDATE SET image_id = EXCLUDED.image_id, ad_id = EXCLUDED.ad_id,"
            " category = EXCLUDED.category, source = EXCLUDED.source, embedding = EXCLUDED.embedding"
        ).format(t=t)
        self._count_sql = sql.SQL("SELECT count(*) FROM {t}").format(t=t)
        # One statement per filter combination: plain predicates, so the planner sees them as such.
        self._search_sql = {
            (has_ad, has_cat): sql.SQL(
                "SELECT image_id::text, ad_id, embedding <=> %(q)s::vector AS d FROM {t}"
                " WHERE {where} ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s"
            ).format(
                t=t,
                where=sql.SQL(" AND ").join(
                    [sql.SQL("TRUE")]
                    + ([sql.SQL("ad_id <> %(ad)s")] if has_ad else [])
                    + ([sql.SQL("category = %(cat)s")] if has_cat else [])
                ),
            )
            for has_ad in (False, True)
            for has_cat in (False, True)
        }

    def _setup(self, dsn: str, *, m: int, ef_construction: int) -> None:
        t = sql.Identifier(self.table)
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise RuntimeError(
                    "the pgvector backend needs the `vector` extension in this database"
                    f" (CREATE EXTENSION vector, as a role allowed to): {exc}"
                ) from exc
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            version = str(row[0]) if row else "?"
            if _version(version) < (0, 8):
                raise RuntimeError(
                    f"the pgvector backend needs pgvector 0.8 or later (hnsw.iterative_scan keeps"
                    f" filtered top-k whole); this database has {version}: ALTER EXTENSION vector UPDATE"
                )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {s} (table_name text PRIMARY KEY, space text NOT NULL,"
                    " dim integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
                ).format(s=sql.Identifier(_SPACES))
            )
            row = conn.execute(
                sql.SQL("SELECT dim FROM {s} WHERE table_name = %s").format(s=sql.Identifier(_SPACES)),
                (self.table,),
            ).fetchone()
            if row is not None and row[0] != self.dim:
                raise ValueError(
                    f"vector space {self.space!r} ({self.table}) has dim {row[0]}, not {self.dim}"
                )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {t} (point_id uuid PRIMARY KEY, image_id uuid NOT NULL,"
                    " ad_id bigint NOT NULL, category text, source text NOT NULL,"
                    " embedding vector({dim}) NOT NULL)"
                ).format(t=t, dim=sql.Literal(self.dim))
            )
            # In line, not TOASTed: a 512-d vector (2 KB) is just over TOAST's threshold, and a
            # TOASTed vector is fetched and decompressed for every distance computed.
            conn.execute(sql.SQL("ALTER TABLE {t} ALTER COLUMN embedding SET STORAGE PLAIN").format(t=t))
            conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {i} ON {t} USING hnsw (embedding vector_cosine_ops)"
                    " WITH (m = {m}, ef_construction = {ef})"
                ).format(
                    i=sql.Identifier(self.table + "_hnsw"),
                    t=t,
                    m=sql.Literal(m),
                    ef=sql.Literal(ef_construction),
                )
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {s} (table_name, space, dim) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
                ).format(s=sql.Identifier(_SPACES)),
                (self.table, self.space, self.dim),
            )

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(sql.SQL("SET hnsw.ef_search = {n}").format(n=sql.Literal(self.ef_search)))
        conn.execute("SET hnsw.iterative_scan = relaxed_order")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("vector store is closed")

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        self._check_open()
        if not points:
            return
        rows = [
            (
                p.id,
                p.image_id,
                checked_ad_id(p.ad_id),
                p.category,
                p.source,
                _text(checked_vector(p.vector, self.dim)),
            )
            for p in points
        ]
        # One transaction per batch: one commit (WAL flush) for all its rows, not one per row.
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(self._upsert_sql, rows)

    def search_batch(
        self,
        vectors: FloatArray,
        *,
        limit: int,
        exclude_ad_ids: Sequence[int | None],
        categories: Sequence[str | None],
        min_score: float | None = None,
    ) -> list[list[VectorHit]]:
        self._check_open()
        matrix = checked_batch(
            vectors, self.dim, limit=limit, exclude_ad_ids=exclude_ad_ids, categories=categories
        )
        params = [
            {
                "q": _text(row),
                "k": limit,
                "ad": None if ex is None else checked_ad_id(ex),
                "cat": cat,
            }
            for row, ex, cat in zip(matrix, exclude_ad_ids, categories, strict=True)
        ]
        if not params:
            return []
        out: list[list[VectorHit]] = []
        with self._pool.connection() as conn, conn.pipeline():
            cursors = []
            for p in params:
                cur = conn.cursor()
                cur.execute(self._search_sql[(p["ad"] is not None, p["cat"] is not None)], p)
                cursors.append(cur)
            for cur in cursors:
                rows = sorted(cur.fetchall(), key=lambda r: float(r[2]))
                out.append(
                    at_least(
                        [VectorHit(image_id=r[0], ad_id=int(r[1]), score=1.0 - float(r[2])) for r in rows],
                        min_score,
                    )
                )
        return out

    def count(self) -> int:
        self._check_open()
        with self._pool.connection() as conn:
            row = conn.execute(self._count_sql).fetchone()
        return int(row[0]) if row else 0

    def size_bytes(self) -> int:
        """The table's size on disk with its indexes (heap, TOAST, HNSW)."""
        self._check_open()
        with self._pool.connection() as conn:
            row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (self.table,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()
