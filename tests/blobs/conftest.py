"""Fixtures for the blob store's tests: a store of each backend (files; S3 on the session's moto server,
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.s3 import s3_store

from imgdup.blobs.base import BlobStore
from imgdup.blobs.fs import FilesystemBlobStore


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "fs":
        return FilesystemBlobStore(tmp_path / "blobs")
    return s3_store(request.getfixturevalue("s3_endpoint"))
