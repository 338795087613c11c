"""The blob store's upkeep on a real Postgres: `imgdup migrate-blobs` moves rows' bytea of before
migration 009 to the blob store (batched, idempotent, resumable; reads fall back meanwhile), and the
orphan collector of `imgdup prune` deletes the blobs no row refers to."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import psycopg
import pytest
from helpers.s3 import s3_store
from psycopg.rows import dict_row

from imgdup.blobs.base import BlobRef, BlobStore, blob_ref
from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.cli import main
from imgdup.store import images, reads
from imgdup.store.blob_gc import collect_orphan_blobs
from imgdup.store.blob_migration import migrate_blobs
from imgdup.store.db import open_pool
from imgdup.store.retention import prune_rejected_pairs

IMAGES = [f"00000000-0000-0000-0000-0000000000{i:02d}" for i in range(1, 6)]
OLD = {
    image: {"jpeg": f"jpeg {image}".encode() * 50, "sift": f"sift {image}".encode() * 80} for image in IMAGES
}
OLD[IMAGES[0]] |= {"photo_jpeg": b"photo jpeg" * 40, "photo_sift": b"photo sift" * 60}


def _old_rows(dsn: str) -> None:
    """Five indexed images whose blobs are bytea, as every row written before migration 009."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO ads (ad_id, source, last_event_id) VALUES (1, 'test', 'e1')")
        for n, image in enumerate(IMAGES):
            conn.execute(
                "INSERT INTO images (image_id, ad_id, url, position, status, pixel_sha256, phash,"
                " phash_mirrored) VALUES (%s, 1, %s, %s, 'indexed', %s, 1, 2)",
                (image, f"https://a.example/{n}.jpg", n, f"p{n}"),
            )
            blobs = OLD[image]
            conn.execute(
                "INSERT INTO image_blobs (image_id, jpeg, photo_jpeg, sift, photo_sift)"
                " VALUES (%s, %s, %s, %s, %s)",
                (image, blobs["jpeg"], blobs.get("photo_jpeg"), blobs["sift"], blobs.get("photo_sift")),
            )


def _rows(dsn: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT *, image_id::text AS id FROM image_blobs").fetchall()
    return {str(row["id"]): row for row in rows}


async def _what_readers_see(dsn: str, store: BlobStore) -> dict[str, tuple[object, ...]]:
    """Each image as the verifier and the thumbnail route read it."""
    pool = await open_pool(dsn, max_size=1)
    try:
        seen = {}
        for image in IMAGES:
            partner = IMAGES[0] if image == IMAGES[-1] else IMAGES[-1]
            _, a, _ = await images.load_for_verification(pool, image, partner, store)
            assert a is not None
            thumbnail = await reads.image_jpeg(pool, image, store)
            seen[image] = (a.jpeg, a.photo_jpeg, a.sift, a.photo_sift, thumbnail)
        return seen
    finally:
        await pool.close()


class FailingStore(FilesystemBlobStore):
    """Fails on its n-th put, like a store that goes away in the middle of the migration."""

    def __init__(self, root: Path, fail_at: int) -> None:
        super().__init__(root)
        self.puts, self.fail_at = 0, fail_at

    def put(self, data: bytes) -> BlobRef:
        self.puts += 1
        if self.puts == self.fail_at:
            raise OSError("blob store unreachable")
        return super().put(data)


async def test_migrate_blobs_moves_the_bytea_and_readers_see_the_same_bytes(
    clean_db: str, tmp_path: Path
) -> None:
    _old_rows(clean_db)
    store = FilesystemBlobStore(tmp_path / "blobs")
    before = await _what_readers_see(clean_db, store)  # from the bytea: the store is empty
    assert before[IMAGES[0]] == (*(OLD[IMAGES[0]][c] for c in images.BYTEA_COLUMNS), OLD[IMAGES[0]]["jpeg"])

    moved = migrate_blobs(clean_db, store, batch_size=2)

    assert moved == {"jpeg": 5, "photo_jpeg": 1, "sift": 5, "photo_sift": 1}
    for image, row in _rows(clean_db).items():
        for column in images.BLOB_COLUMNS:
            assert row[column] is None
            if column in OLD[image]:
                assert row[f"{column}_sha256"] == hashlib.sha256(OLD[image][column]).hexdigest()
                assert row[f"{column}_size"] == len(OLD[image][column])
                assert store.get(str(row[f"{column}_sha256"])) == OLD[image][column]
            else:
                assert row[f"{column}_sha256"] is None
    assert await _what_readers_see(clean_db, store) == before
    # Idempotent: nothing left to move, nothing changes.
    assert migrate_blobs(clean_db, store, batch_size=2) == dict.fromkeys(images.BYTEA_COLUMNS, 0)
    assert await _what_readers_see(clean_db, store) == before


async def test_migrate_blobs_resumes_after_a_failure_and_readers_see_both_kinds_meanwhile(
    clean_db: str, tmp_path: Path
) -> None:
    _old_rows(clean_db)
    failing = FailingStore(tmp_path / "blobs", fail_at=4)
    before = await _what_readers_see(clean_db, failing)

    with pytest.raises(OSError, match="unreachable"):
        migrate_blobs(clean_db, failing, batch_size=2, threads=1)

    rows = _rows(clean_db)
    half = [image for image, row in rows.items() if row["jpeg_sha256"] is not None]
    assert 0 < len(half) < len(IMAGES)  # the first batch went, the one that failed did not
    assert await _what_readers_see(clean_db, failing) == before  # moved and not moved alike

    store = FilesystemBlobStore(tmp_path / "blobs")
    moved = migrate_blobs(clean_db, store, batch_size=2)

    assert moved["jpeg"] == len(IMAGES) - len(half)
    assert all(row["jpeg"] is None and row["sift"] is None for row in _rows(clean_db).values())
    assert await _what_readers_see(clean_db, store) == before


def test_migrate_blobs_leaves_rows_an_images_worker_rewrote_meanwhile(clean_db: str, tmp_path: Path) -> None:
    _old_rows(clean_db)
    fresh = blob_ref(b"re-indexed copy")

    class RewritingStore(FilesystemBlobStore):
        def put(self, data: bytes) -> BlobRef:
            with psycopg.connect(clean_db, autocommit=True) as conn:
                if data == OLD[IMAGES[1]]["jpeg"]:  # a worker re-indexes this image during the copy
                    conn.execute(
                        "UPDATE image_blobs SET jpeg = NULL, jpeg_sha256 = %s, jpeg_size = %s"
                        " WHERE image_id = %s",
                        (fresh.sha256, fresh.size, IMAGES[1]),
                    )
                if data == OLD[IMAGES[2]]["jpeg"]:  # a worker of the previous version, mid-upgrade
                    conn.execute(
                        "UPDATE image_blobs SET jpeg = %s WHERE image_id = %s", (b"other bytes", IMAGES[2])
                    )
            return super().put(data)

    store = RewritingStore(tmp_path / "blobs")
    moved = migrate_blobs(clean_db, store, batch_size=10)

    assert moved["jpeg"] == len(IMAGES) - 2
    rows = _rows(clean_db)
    assert (rows[IMAGES[1]]["jpeg"], rows[IMAGES[1]]["jpeg_sha256"]) == (None, fresh.sha256)
    # Never NULLed for bytes that were not copied: the rewritten bytea stays, the next run moves it.
    assert (rows[IMAGES[2]]["jpeg"], rows[IMAGES[2]]["jpeg_sha256"]) == (b"other bytes", None)
    assert migrate_blobs(clean_db, store, batch_size=10)["jpeg"] == 1
    assert store.get(str(_rows(clean_db)[IMAGES[2]]["jpeg_sha256"])) == b"other bytes"


async def test_migrate_blobs_to_s3_then_the_orphan_collector_there(clean_db: str, s3_endpoint: str) -> None:
    _old_rows(clean_db)
    store = s3_store(s3_endpoint)
    before = await _what_readers_see(clean_db, store)

    assert migrate_blobs(clean_db, store, batch_size=3)["sift"] == len(IMAGES)

    assert await _what_readers_see(clean_db, store) == before
    assert len(list(store.list_blobs())) == 12
    orphan = store.put(b"no row refers to this")
    await asyncio.sleep(1.1)  # LastModified has a one-second resolution: the cutoff is after it
    assert collect_orphan_blobs(clean_db, store, grace_s=0) == 1
    assert store.get(orphan.sha256) is None and len(list(store.list_blobs())) == 12
    assert await _what_readers_see(clean_db, store) == before


def test_imgdup_migrate_blobs_command(
    clean_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _old_rows(clean_db)
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("IMGDUP_DATA_DIR", str(tmp_path))

    assert main(["migrate-blobs"]) == 0
    assert "5 jpeg, 1 photo_jpeg, 5 sift, 1 photo_sift" in capsys.readouterr().out
    assert len(list(FilesystemBlobStore(tmp_path / "blobs").list_blobs())) == 12
    assert main(["migrate-blobs"]) == 0
    assert "0 jpeg, 0 photo_jpeg, 0 sift, 0 photo_sift" in capsys.readouterr().out


def _age(store: FilesystemBlobStore, key: str, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(store.path(key), (then, then))


def test_orphan_blobs_past_the_grace_period_are_collected_and_shared_ones_stay(
    clean_db: str, tmp_path: Path
) -> None:
    _old_rows(clean_db)
    store = FilesystemBlobStore(tmp_path / "blobs")
    migrate_blobs(clean_db, store)
    rows = _rows(clean_db)
    # Image 3's copy is also image 4's (the same photo in two ads: one blob, two rows).
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE image_blobs SET jpeg_sha256 = %s WHERE image_id = %s",
            (rows[IMAGES[3]]["jpeg_sha256"], IMAGES[4]),
        )
        conn.execute("DELETE FROM images WHERE image_id = %s", (IMAGES[3],))  # its image_blobs row cascades
    shared, own_sift = str(rows[IMAGES[3]]["jpeg_sha256"]), str(rows[IMAGES[3]]["sift_sha256"])
    lost_jpeg = str(rows[IMAGES[4]]["jpeg_sha256"])  # image 4's old copy: no row refers to it now
    fresh_orphan = store.put(b"written a second ago; its row has not committed yet").sha256
    for key, _ in list(store.list_blobs()):
        if key != fresh_orphan:
            _age(store, key, hours=48)

    deleted = collect_orphan_blobs(clean_db, store, grace_s=24 * 3600, batch_size=3)

    assert deleted == 2
    assert store.get(own_sift) is None and store.get(lost_jpeg) is None
    assert store.get(shared) is not None  # image 4 still refers to it
    assert store.get(fresh_orphan) is not None  # within the grace period
    left = {key for key, _ in store.list_blobs()}
    referenced = {
        str(row[f"{c}_sha256"])
        for row in _rows(clean_db).values()
        for c in images.BLOB_COLUMNS
        if row[f"{c}_sha256"]
    }
    assert left == referenced | {fresh_orphan}
    assert collect_orphan_blobs(clean_db, store, grace_s=24 * 3600) == 0  # idempotent


def test_a_blob_a_row_took_up_again_during_the_sweep_is_spared(clean_db: str, tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    key = store.put(b"an old orphan").sha256
    _age(store, key, hours=48)

    class ReusedDuringSweep(FilesystemBlobStore):
        def written_at(self, sha256: str) -> float | None:
            self.put(b"an old orphan")  # a new image with the same bytes: put renews the blob's time
            return super().written_at(sha256)

    assert collect_orphan_blobs(clean_db, ReusedDuringSweep(store.root), grace_s=3600) == 0
    assert store.get(key) == b"an old orphan"


def test_pruning_rejected_pairs_orphans_no_blob(clean_db: str, tmp_path: Path) -> None:
    # Retention deletes `duplicates` rows only; images, their rows and so their blobs stay.
    _old_rows(clean_db)
    store = FilesystemBlobStore(tmp_path / "blobs")
    migrate_blobs(clean_db, store)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, cosine, status, decided_at)"
            " VALUES (gen_random_uuid(), %s, %s, 1, 1, 0.5, 'rejected', now() - interval '90 days')",
            (IMAGES[0], IMAGES[1]),
        )
    for key, _ in list(store.list_blobs()):
        _age(store, key, hours=48)
    blobs_before = set(store.list_blobs())

    assert prune_rejected_pairs(clean_db, retention_days=30, batch_size=10) == 1
    assert collect_orphan_blobs(clean_db, store, grace_s=3600) == 0
    assert set(store.list_blobs()) == blobs_before
