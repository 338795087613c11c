"""`image_blobs` rows that still hold bytea (written before migration 009) -> their bytes in the blob
store, the row keeping the sha256 and size instead (`imgdup migrate-blobs`): batched, idempotent,
resumable."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

from imgdup.blobs.base import BlobStore
from imgdup.store.images import BYTEA_COLUMNS

log = logging.getLogger(__name__)

# Keyset pagination over the primary key: each batch is one index range, never a scan from the start.
_BATCH = (
    "SELECT image_id, {c} FROM image_blobs WHERE image_id > %s AND {c} IS NOT NULL ORDER BY image_id LIMIT %s"
)
# The bytea is dropped only if it is still the bytes that were copied (sha256 re-checked in SQL): a
# row the images worker rewrote meanwhile (it writes addresses and NULLs the bytea) is left alone.
_MOVE = (
    "UPDATE image_blobs b SET {c} = NULL, {sha} = u.sha, {size} = u.size"
    " FROM unnest(%s::uuid[], %s::text[], %s::int[]) AS u(image_id, sha, size)"
    " WHERE b.image_id = u.image_id AND b.{c} IS NOT NULL AND encode(sha256(b.{c}), 'hex') = u.sha"
)


def migrate_blobs(dsn: str, blobs: BlobStore, *, batch_size: int = 500, threads: int = 8) -> dict[str, int]:
    """Copy every bytea blob column to the blob store, then NULL it; return the rows moved per column.

    Each batch writes its blobs first and then updates its rows in one short transaction, so a
    crash anywhere leaves at worst blobs not referenced yet (harmless, content-addressed: the rerun
    puts them again; `imgdup prune` collects any left over). A rerun skips what was moved, and
    readers fall back to the bytea of rows not moved yet. Run VACUUM on image_blobs afterwards.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    moved: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn, ThreadPoolExecutor(threads) as pool:
        for column in BYTEA_COLUMNS:
            names = {
                "c": sql.Identifier(column),
                "sha": sql.Identifier(f"{column}_sha256"),
                "size": sql.Identifier(f"{column}_size"),
            }
            select, move = sql.SQL(_BATCH).format(**names), sql.SQL(_MOVE).format(**names)
            after: uuid.UUID = uuid.UUID(int=0)
            moved[column] = 0
            while True:
                rows = conn.execute(select, (after, batch_size), binary=True).fetchall()
                if not rows:
                    break
                refs = list(pool.map(lambda row: blobs.put(bytes(row[1])), rows))
                moved[column] += conn.execute(
                    move, ([row[0] for row in rows], [r.sha256 for r in refs], [r.size for r in refs])
                ).rowcount
                after = rows[-1][0]
                log.info("migrate-blobs: %s, %d rows moved", column, moved[column])
    return moved
