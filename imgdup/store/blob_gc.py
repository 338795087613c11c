"""Blobs in the blob store that no `image_blobs` row refers to, written before a grace period -> deleted
(`imgdup prune`). Rows never delete their blobs themselves: a blob is content-addressed and may be
shared by many rows (the same photo in two ads), so deleting rows only orphans blobs, collected here."""

from __future__ import annotations

import time
from collections.abc import Iterable

import psycopg

from imgdup.blobs.base import BlobStore

# Every column that refers to a blob, each with its index (migrations 009, 016).
_UNREFERENCED = (
    "SELECT k FROM unnest(%s::text[]) AS k WHERE"
    " NOT EXISTS (SELECT 1 FROM image_blobs WHERE jpeg_sha256 = k)"
    " AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE sift_sha256 = k)"
    " AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE photo_jpeg_sha256 = k)"
    " AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE photo_sift_sha256 = k)"
    " AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE flat_sift_sha256 = k)"  # migration 016
    " AND NOT EXISTS (SELECT 1 FROM image_blobs WHERE photo_flat_sift_sha256 = k)"
)


def _batches(keys: Iterable[str], size: int) -> Iterable[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def collect_orphan_blobs(dsn: str, blobs: BlobStore, *, grace_s: float, batch_size: int = 1000) -> int:
    """Delete every blob older than `grace_s` that no row refers to; return how many went.

    The grace period covers a blob written just before its row commits (the images worker puts
    blobs first), and every put renews a blob's time, also the put of a blob that exists. The time
    is read again right before deleting, so a blob a new row took up during the sweep stays.
    Idempotent: a second run finds nothing more.
    """
    if grace_s < 0 or batch_size < 1:
        raise ValueError("grace_s must be >= 0 and batch_size positive")
    cutoff = time.time() - grace_s
    old = (key for key, written in blobs.list_blobs() if written < cutoff)
    deleted = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for batch in _batches(old, batch_size):
            for (key,) in conn.execute(_UNREFERENCED, (batch,)).fetchall():
                written = blobs.written_at(key)
                if written is not None and written < cutoff:
                    blobs.delete(key)
                    deleted += 1
    return deleted
