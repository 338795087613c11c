"""What each backend adds to the contract: the files backend's paths and atomic writes, the S3 backend's
bucket and prefix, and the factory's choice from settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.s3 import s3_store
from pydantic import SecretStr

from imgdup.blobs.base import blob_ref
from imgdup.blobs.factory import open_blob_store
from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.blobs.s3 import S3BlobStore
from imgdup.settings import Settings


def test_files_are_content_addressed_under_two_levels_of_folders(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"copy")

    assert store.path(ref.sha256) == tmp_path / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    assert store.path(ref.sha256).read_bytes() == b"copy"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [ref.sha256]


def test_a_write_that_fails_leaves_neither_a_blob_nor_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"half written")
    monkeypatch.undo()

    assert store.get(blob_ref(b"half written").sha256) is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert list(store.list_blobs()) == []


def test_a_temporary_file_left_by_a_crash_is_not_listed_as_a_blob(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"kept")
    (store.path(ref.sha256).parent / ".tmp-abc").write_bytes(b"half")

    assert [key for key, _ in store.list_blobs()] == [ref.sha256]


def test_s3_creates_its_bucket_and_keeps_blobs_under_its_prefix(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, prefix="imgdup-test/")
    ref = store.put(b"copy")

    objects = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [o["Key"] for o in objects] == [f"imgdup-test/{ref.sha256[:2]}/{ref.sha256}"]
    # Another prefix in the same bucket is another store.
    assert list(s3_store(s3_endpoint, bucket=store.bucket, prefix="other/").list_blobs()) == []


def test_s3_with_a_missing_bucket_reads_nothing(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)

    assert store.get(blob_ref(b"x").sha256) is None
    assert list(store.list_blobs()) == []


def test_the_factory_opens_files_under_the_data_dir_by_default(tmp_path: Path) -> None:
    store = open_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(store, FilesystemBlobStore) and store.root == tmp_path / "blobs"
    elsewhere = open_blob_store(Settings(data_dir=tmp_path, blob_dir=tmp_path / "shared"))
    assert isinstance(elsewhere, FilesystemBlobStore) and elsewhere.root == tmp_path / "shared"


def test_the_factory_opens_an_s3_bucket_with_the_settings_credentials(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGDUP_BLOB_STORE", "s3")
    monkeypatch.setenv("IMGDUP_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("IMGDUP_S3_BUCKET", "from-env")
    monkeypatch.setenv("IMGDUP_S3_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("IMGDUP_S3_SECRET_ACCESS_KEY", "test-secret")
    settings = Settings()
    assert isinstance(settings.s3_secret_access_key, SecretStr)
    assert "test-secret" not in repr(settings)

    store = open_blob_store(settings)

    assert isinstance(store, S3BlobStore) and store.bucket == "from-env"
    ref = store.put(b"through the factory")
    assert store.get(ref.sha256) == b"through the factory"
