"""Blobs <-> objects of an S3-compatible bucket (AWS S3, MinIO; moto's server in the tests), one object
per content address under a prefix. boto3 is blocking: the async helpers call it from threads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from imgdup.blobs.base import BlobRef, blob_ref, check_key

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    local = False  # HTTP requests: one thread each, their latencies overlap (BlobStore.local)

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "blobs/",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        # Path-style addressing: MinIO and most S3-compatible servers serve no per-bucket host names.
        # boto3 clients are thread-safe; the pool matches the threads that put and get at once.
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=32,
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )
        self._bucket_checked = False

    def key(self, sha256: str) -> str:
        sha = check_key(sha256)
        return f"{self.prefix}{sha[:2]}/{sha}"

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (MinIO on a laptop); production provisions its own."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _MISSING:
                raise
            self.client.create_bucket(Bucket=self.bucket)
        self._bucket_checked = True

    def put(self, data: bytes) -> BlobRef:
        ref = blob_ref(data)
        if not self._bucket_checked:
            self.ensure_bucket()
        # A PUT replaces the object whole or not at all: same key, same bytes, so repeating is harmless
        # (and it renews LastModified, which the orphan collector reads).
        self.client.put_object(Bucket=self.bucket, Key=self.key(ref.sha256), Body=data)
        return ref

    def get(self, sha256: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING | {"NoSuchBucket"}:
                return None
            raise
        body: bytes = response["Body"].read()
        return body

    def delete(self, sha256: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise  # an absent key is no error in S3; an absent bucket holds nothing to delete

    def written_at(self, sha256: str) -> float | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING | {"NoSuchBucket"}:
                return None
            raise
        modified: float = head["LastModified"].timestamp()
        return modified

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"].rsplit("/", 1)[-1], obj["LastModified"].timestamp()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
