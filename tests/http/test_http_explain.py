"""GET /api/v1/pairs/{id}/explanation and /overlay on a real Postgres with real stored copies: the
matched keypoints of a mirrored copy, the overlay JPEG, and 4xx for unknown, malformed or image-less
pairs and for callers without credentials."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from helpers.api import AUTH, PAIR, api_with_recording_publisher, image_id, seed
from PIL import Image
from skimage import data

from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.store.blob_migration import migrate_blobs
from imgdup_core.decode import load_rgb, storage_jpeg
from imgdup_core.verify import extract_sift, sift_to_bytes


@pytest.fixture
def client(clean_db: str) -> Iterator[tuple[TestClient, str]]:
    seed(clean_db)
    photo = data.chelsea()
    with psycopg.connect(clean_db, autocommit=True) as conn:
        for ad, rgb in ((1, photo), (2, np.ascontiguousarray(photo[:, ::-1]))):
            jpeg = storage_jpeg(rgb)
            conn.execute(
                "INSERT INTO image_blobs (image_id, jpeg, sift) VALUES (%s, %s, %s)",
                (image_id(ad), jpeg, sift_to_bytes(extract_sift(load_rgb(jpeg)))),
            )
        conn.execute(
            "UPDATE duplicates SET compared = 'full/full', sift_mirrored = true, phash_mirrored = true"
            " WHERE pair_id = %s",
            (PAIR,),
        )
    app, _ = api_with_recording_publisher(clean_db)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, clean_db


def test_a_mirrored_pair_is_explained_with_its_matches_and_an_overlay(client: tuple[TestClient, str]) -> None:
    api, _ = client
    response = api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["aligned"] and body["mirrored"] and body["compared"] == "full/full"
    assert body["stored_inliers"] == 30 and body["inliers"] >= 20
    assert len(body["matches"]) >= 20
    assert body["box_a"] is None and body["box_b"] is None
    matches = np.array(body["matches"])
    assert np.median(np.abs(matches[:, 2] - (1 - matches[:, 0]))) < 0.01  # mirrored x, same y
    overlay = api.get(body["overlay_url"], headers=AUTH)
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/jpeg"
    panels = np.asarray(Image.open(io.BytesIO(overlay.content)))
    assert panels.shape[1] > panels.shape[0] and panels.std() > 10


def test_unknown_malformed_and_image_less_pairs_are_4xx(client: tuple[TestClient, str]) -> None:
    api, dsn = client
    unknown = uuid.UUID(int=777)
    for path in ("explanation", "overlay"):
        assert api.get(f"/api/v1/pairs/{unknown}/{path}", headers=AUTH).status_code == 404
        assert api.get(f"/api/v1/pairs/not-a-uuid/{path}", headers=AUTH).status_code == 422
        assert api.get(f"/api/v1/pairs/{PAIR}/{path}").status_code == 401
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM image_blobs WHERE image_id = %s", (image_id(2),))
    assert api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH).status_code == 404


def test_a_pair_that_does_not_align_has_no_overlay(client: tuple[TestClient, str]) -> None:
    api, dsn = client
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE image_blobs SET jpeg = %s, sift = NULL WHERE image_id = %s",
            (storage_jpeg(data.rocket()), image_id(2)),
        )
    body = api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH).json()
    assert not body["aligned"] and body["matches"] == [] and body["overlay_url"] is None
    assert api.get(f"/api/v1/pairs/{PAIR}/overlay", headers=AUTH).status_code == 404


def test_the_explanation_reads_copies_and_features_from_the_blob_store(
    client: tuple[TestClient, str], tmp_path: Path
) -> None:
    api, dsn = client
    before = api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH).json()
    store = FilesystemBlobStore(tmp_path / "blobs")
    api.app.state.blobs = store  # type: ignore[attr-defined]

    assert migrate_blobs(dsn, store) == {"jpeg": 2, "photo_jpeg": 0, "sift": 2, "photo_sift": 0}

    assert api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH).json() == before
    for key, _ in list(store.list_blobs()):
        store.delete(key)
    assert api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH).status_code == 404


def test_a_framed_side_is_explained_with_its_stored_box_shares(client: tuple[TestClient, str]) -> None:
    # images.photo_box is in the pixels of the capped decode, width/height the original's size: the
    # shares stored beside it (migration 013) are the box the page draws.
    api, dsn = client
    photo = data.chelsea()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE images SET width = 4000, height = 3000, photo_box = '{102,154,614,538}',"
            " photo_box_share = '{0.1,0.2,0.6,0.7}' WHERE image_id = %s",
            (image_id(1),),
        )
        conn.execute(
            "UPDATE image_blobs SET photo_jpeg = %s WHERE image_id = %s",
            (storage_jpeg(photo[100:300, 100:400]), image_id(1)),
        )
        conn.execute("UPDATE duplicates SET compared = 'photo/full' WHERE pair_id = %s", (PAIR,))

    body = api.get(f"/api/v1/pairs/{PAIR}/explanation", headers=AUTH).json()

    assert body["compared"] == "photo/full"
    assert body["box_a"] == [0.1, 0.2, 0.6, 0.7] and body["box_b"] is None
