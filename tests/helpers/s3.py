"""An S3 endpoint in; a blob store on a fresh bucket of it (the tests' S3 is moto's server, started by
tests/blobs/conftest.py)."""

from __future__ import annotations

import uuid

from imgdup.blobs.s3 import S3BlobStore


def s3_store(endpoint: str, bucket: str | None = None, prefix: str = "blobs/") -> S3BlobStore:
    return S3BlobStore(
        bucket=bucket or f"test-{uuid.uuid4().hex[:12]}",  # a fresh bucket: nothing shared between tests
        prefix=prefix,
        endpoint_url=endpoint,
        access_key_id="test",
        secret_access_key="test-secret",
    )
