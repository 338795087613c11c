"""imgdup.steps index and verify with the blob store, on a real Postgres: an ad's photos in; their stored
copies and SIFT features in the blob store (a flat picture's second features too), only their sha256 and
size in Postgres, and the verifier's verdict read back from there (or from the bytea of rows written before
migration 009)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from helpers.fakes import Web, run_inline
from helpers.photos import jpeg, photo, screenshot
from PIL import ImageOps
from psycopg.rows import dict_row

from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.steps.index import IndexContext, index_ad
from imgdup.steps.verify import VerifyContext, verify_candidate
from imgdup.store.images import BLOB_COLUMNS, BlobMissing
from schemas import CandidatePairV1
from tests.helpers.ads import one_image_event


class RecordingBlobs(FilesystemBlobStore):
    """The files backend, recording which blobs were read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[str] = []

    def get(self, sha256: str) -> bytes | None:
        self.read.append(sha256)
        return super().get(sha256)


async def _candidate(ctx: IndexContext, web: Web, first: bytes, second: bytes) -> CandidatePairV1:
    web.files["https://cdn.example/1.jpg"] = first
    web.files["https://cdn.example/2.jpg"] = second
    any_neighbour = replace(ctx, min_score=-1.0)
    await index_ad(any_neighbour, one_image_event(1, "https://cdn.example/1.jpg"))
    result = await index_ad(any_neighbour, one_image_event(2, "https://cdn.example/2.jpg"))
    [candidate] = result.candidates
    return candidate


def _blob_rows(dsn: str) -> list[dict[str, object]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM image_blobs ORDER BY image_id").fetchall()


async def test_indexing_puts_the_bytes_in_the_blob_store_and_only_addresses_in_postgres(
    index_context: IndexContext, web: Web, clean_db: str, blobs: FilesystemBlobStore
) -> None:
    # A screenshot frames a photo: it has all four blobs (copy, photo copy and both features).
    await _candidate(index_context, web, jpeg(photo("rocket")), jpeg(screenshot(photo("rocket"))))

    rows = _blob_rows(clean_db)
    assert len(rows) == 2
    for row in rows:
        assert all(row[column] is None for column in BLOB_COLUMNS), "bytes left in Postgres"
        assert row["jpeg_sha256"] and row["sift_sha256"]
        for column in BLOB_COLUMNS:
            if row[f"{column}_sha256"] is None:
                continue
            data = blobs.get(str(row[f"{column}_sha256"]))
            assert data is not None and len(data) == row[f"{column}_size"]
            assert hashlib.sha256(data).hexdigest() == row[f"{column}_sha256"]
    assert any(row["photo_sift_sha256"] for row in rows), "the screenshot's photo features"
    with psycopg.connect(clean_db) as conn:
        [(stored,)] = conn.execute("SELECT sum(pg_column_size(b.*)) FROM image_blobs b").fetchall()
    assert stored < 2 * 1024  # ~400 bytes of addresses a row, where the bytea were ~100 KB


async def test_the_verifier_reads_the_stored_copies_and_features_from_the_blob_store(
    index_context: IndexContext, web: Web, clean_db: str, tmp_path: Path
) -> None:
    recording = RecordingBlobs(tmp_path / "recorded")
    ctx = replace(index_context, blobs=recording)
    original = photo("rocket")
    candidate = await _candidate(ctx, web, jpeg(original), jpeg(ImageOps.mirror(original)))
    verify = VerifyContext(pool=ctx.pool, run_cpu=run_inline, embedding_model="m", blobs=recording)
    sift_keys = {str(row["sift_sha256"]) for row in _blob_rows(clean_db)}

    # A blob gone from the store is an error with a reason (the policy dead-letters it), not a
    # verdict on half the evidence; the pair stays a candidate.
    saved = {key: recording.get(key) for key in sift_keys}
    for key in sift_keys:
        recording.delete(key)
    with pytest.raises(BlobMissing, match="sift"):
        await verify_candidate(verify, candidate)
    for data in saved.values():
        assert data is not None
        recording.put(data)

    recording.read.clear()
    verified = await verify_candidate(verify, candidate)

    assert verified is not None and verified.evidence.sift_mirrored
    assert sift_keys <= set(recording.read)


async def test_a_flat_pictures_second_features_are_stored_once_and_read_by_the_verifier(
    index_context: IndexContext, web: Web, clean_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock as a 160-pixel thumbnail has 4 keypoints at the default contrast (fused-v22's retry
    # needs 50): its low-contrast features go to the blob store when it is indexed; a textured photo's
    # do not. The cropped copy aligns only with them (tests/core/test_core_flat_retry.py).
    recording = RecordingBlobs(tmp_path / "recorded")
    ctx = replace(index_context, blobs=recording)
    clock = photo("clock")
    clock.thumbnail((160, 160))
    w, h = clock.size
    cropped = clock.crop((round(w * 0.15), round(h * 0.15), w - round(w * 0.15), h - round(h * 0.15)))
    candidate = await _candidate(ctx, web, jpeg(clock), jpeg(cropped))
    rows = _blob_rows(clean_db)
    assert all(row["flat_sift_sha256"] and row["flat_sift"] is None for row in rows), rows
    assert all(row["photo_flat_sift_sha256"] is None for row in rows)
    flat_keys = {str(row["flat_sift_sha256"]) for row in rows}

    import imgdup_core.sift
    import imgdup_core.verify

    def refuse(*_: object) -> None:
        raise AssertionError("flat features extracted per pair")

    monkeypatch.setattr(imgdup_core.sift, "extract_flat_features", refuse)
    monkeypatch.setattr(imgdup_core.verify, "extract_flat_features", refuse)
    verify = VerifyContext(pool=ctx.pool, run_cpu=run_inline, embedding_model="m", blobs=recording)
    # Without the stored ones (a row of before migration 016) this pair needs them extracted...
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE image_blobs SET flat_sift_sha256 = NULL, flat_sift_size = NULL")
    with pytest.raises(AssertionError, match="extracted per pair"):
        await verify_candidate(verify, candidate)
    # ... and with them it is aligned from what indexing stored.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        for row in rows:
            conn.execute(
                "UPDATE image_blobs SET flat_sift_sha256 = %s, flat_sift_size = %s WHERE image_id = %s",
                (row["flat_sift_sha256"], row["flat_sift_size"], row["image_id"]),
            )
    recording.read.clear()
    verified = await verify_candidate(verify, candidate)
    assert flat_keys <= set(recording.read)
    assert verified is not None and verified.evidence.sift_inliers > 0, verified

    web.files["https://cdn.example/4.jpg"] = jpeg(photo("astronaut"))
    await index_ad(ctx, one_image_event(4, "https://cdn.example/4.jpg"))
    textured = [row for row in _blob_rows(clean_db) if str(row["flat_sift_sha256"]) not in flat_keys]
    assert len(textured) == 1 and textured[0]["flat_sift_sha256"] is None


async def test_rows_from_before_the_blob_store_are_read_from_their_bytea(
    index_context: IndexContext, web: Web, clean_db: str, blobs: FilesystemBlobStore, tmp_path: Path
) -> None:
    original = photo("rocket")
    candidate = await _candidate(index_context, web, jpeg(original), jpeg(ImageOps.mirror(original)))
    # Turn the rows into ones written before migration 009: bytea, no addresses, nothing in the store.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        for row in _blob_rows(clean_db):
            for column in BLOB_COLUMNS:
                key = row[f"{column}_sha256"]
                data = blobs.get(str(key)) if key else None
                conn.execute(
                    f"UPDATE image_blobs SET {column} = %s, {column}_sha256 = NULL, {column}_size = NULL"
                    " WHERE image_id = %s",
                    (data, row["image_id"]),
                )
    empty = FilesystemBlobStore(tmp_path / "empty")
    verify = VerifyContext(pool=index_context.pool, run_cpu=run_inline, embedding_model="m", blobs=empty)

    verified = await verify_candidate(verify, candidate)

    assert verified is not None and verified.evidence.sift_mirrored
    assert list(empty.list_blobs()) == []
