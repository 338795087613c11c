"""The thumbnail route on a real Postgres: an image id in; its reduced copy out of the blob store (or
the row's bytea while `imgdup migrate-blobs` has not moved it), a 404 for what is not there."""

from __future__ import annotations

from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from helpers.api import AUTH, TOKEN, image_id, seed
from pydantic import SecretStr

from imgdup.blobs.base import blob_ref
from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.http.app import create_api
from imgdup.settings import Settings

NEW, OLD = b"\xff\xd8 copy in the blob store", b"\xff\xd8 copy still in bytea"


def test_thumbnails_come_from_the_blob_store_or_the_old_bytea(clean_db: str, tmp_path: Path) -> None:
    seed(clean_db)  # images of ads 1 and 2
    store = FilesystemBlobStore(tmp_path / "blobs")
    stored = store.put(NEW)
    gone = blob_ref(b"a blob deleted from the store")
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("INSERT INTO ads VALUES (3, 'olx.pt', NULL, 's3', now(), 'e3')")
        conn.execute(
            "INSERT INTO images (image_id, ad_id, url, position)"
            " VALUES (%s, 3, 'https://c.example/3.jpg', 0)",
            (image_id(3),),
        )
        conn.execute(
            "INSERT INTO image_blobs (image_id, jpeg_sha256, jpeg_size) VALUES (%s, %s, %s), (%s, %s, %s)",
            (image_id(1), stored.sha256, stored.size, image_id(3), gone.sha256, gone.size),
        )
        conn.execute("INSERT INTO image_blobs (image_id, jpeg) VALUES (%s, %s)", (image_id(2), OLD))
    settings = Settings(
        database_url=SecretStr(clean_db),
        kafka_bootstrap_servers="127.0.0.1:9",
        api_token=SecretStr(TOKEN),
        data_dir=tmp_path,
    )

    with TestClient(create_api(settings)) as client:

        def get(image: str) -> tuple[int, bytes]:
            response = client.get(f"/api/v1/images/{image}/thumbnail", headers=AUTH)
            return response.status_code, response.content

        assert get(image_id(1)) == (200, NEW)
        assert get(image_id(2)) == (200, OLD)
        assert get(image_id(3))[0] == 404  # the row points at a blob the store lacks
        assert get(image_id(4))[0] == 404  # no such image
        assert get("not-a-uuid")[0] == 404
