"""Settings -> the blob store they name: files under the data dir (IMGDUP_BLOB_STORE=fs, the default)
or an S3-compatible bucket (IMGDUP_BLOB_STORE=s3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from imgdup.blobs.base import BlobStore
from imgdup.blobs.fs import FilesystemBlobStore

if TYPE_CHECKING:
    from imgdup.settings import Settings


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_store == "fs":
        return FilesystemBlobStore(settings.blob_root)
    # Imported here: boto3 takes ~0.3 s to import, and only S3 deployments need it.
    from imgdup.blobs.s3 import S3BlobStore

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return S3BlobStore(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint,
        region=settings.s3_region,
        access_key_id=secret(settings.s3_access_key_id),
        secret_access_key=secret(settings.s3_secret_access_key),
    )
