"""Analysed images -> `images` and `image_blobs` rows (hashes, embeddings, stored copies and their SIFT
features); failed images -> their reason; a pair's two images -> what the verifier needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.analysis.analyse import AnalysedImage, vector_to_bytes
from imgdup.store.db import single_statement


@dataclass(frozen=True)
class IndexedImage:
    """One analysed image of an ad, under its deterministic id and the model that embedded it."""

    image_id: str
    embedding_model: str
    image: AnalysedImage


async def save_indexed_images(pool: AsyncConnectionPool, images: Sequence[IndexedImage]) -> None:
    """One transaction, one statement per table, whatever the number of images. Byte columns go
    in binary (%b): as text, psycopg hex-escapes every JPEG and feature blob with a regex while
    holding the GIL (~110 KB per image)."""
    if not images:
        return
    analysed = [i.image for i in images]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE images AS i SET status = 'indexed', error_reason = NULL, error_detail = NULL,"
            " content_sha256 = u.content_sha256, pixel_sha256 = u.pixel_sha256,"
            " phash = u.phash, phash_mirrored = u.phash_mirrored, width = u.width,"
            " height = u.height, format = u.format, embedding_model = u.embedding_model,"
            " embedding = u.embedding, photo_embedding = u.photo_embedding,"
            " photo_box = CASE WHEN u.photo_box = '' THEN NULL"
            " ELSE string_to_array(u.photo_box, ',')::int[] END,"
            " indexed_at = coalesce(i.indexed_at, now())"
            " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bigint[], %s::bigint[],"
            " %s::int[], %s::int[], %s::text[], %s::text[], %b::bytea[], %b::bytea[], %s::text[])"
            " AS u(image_id, content_sha256, pixel_sha256, phash, phash_mirrored, width, height,"
            " format, embedding_model, embedding, photo_embedding, photo_box)"
            " WHERE i.image_id = u.image_id",
            (
                [i.image_id for i in images],
                [a.content_sha256 for a in analysed],
                [a.pixel_sha256 for a in analysed],
                [a.phash for a in analysed],
                [a.phash_mirrored for a in analysed],
                [a.width for a in analysed],
                [a.height for a in analysed],
                [a.format for a in analysed],
                [i.embedding_model for i in images],
                [vector_to_bytes(a.vector) for a in analysed],
                [vector_to_bytes(a.photo_vector) if a.photo_vector is not None else None for a in analysed],
                # unnest cannot take a ragged int[][]: each box travels as "x0,y0,x1,y1".
                [",".join(map(str, a.region.as_list())) if a.region is not None else "" for a in analysed],
            ),
        )
        await conn.execute(
            "INSERT INTO image_blobs (image_id, jpeg, photo_jpeg, sift, photo_sift)"
            " SELECT * FROM unnest(%s::uuid[], %b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[])"
            " ON CONFLICT (image_id) DO UPDATE SET jpeg = EXCLUDED.jpeg, photo_jpeg = EXCLUDED.photo_jpeg,"
            " sift = EXCLUDED.sift, photo_sift = EXCLUDED.photo_sift",
            (
                [i.image_id for i in images],
                [a.jpeg for a in analysed],
                [a.photo_jpeg for a in analysed],
                [a.sift for a in analysed],
                [a.photo_sift for a in analysed],
            ),
        )


async def save_failed_image(pool: AsyncConnectionPool, image_id: str, reason: str, detail: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE images SET status = 'failed', error_reason = %s, error_detail = %s"
            " WHERE image_id = %s AND status <> 'indexed'",
            (reason, detail[:2000], image_id),
        )


@dataclass(frozen=True)
class ImageForVerification:
    """What the verifier reads of one indexed image: hashes, stored copies and their features."""

    image_id: str
    ad_id: int
    pixel_sha256: str
    phash: int
    phash_mirrored: int
    jpeg: bytes
    photo_jpeg: bytes | None = None
    sift: bytes | None = None
    photo_sift: bytes | None = None


_VERIFICATION_COLUMNS = [f.name for f in fields(ImageForVerification)]


async def load_for_verification(
    pool: AsyncConnectionPool, image_a: str, image_b: str
) -> tuple[str, ImageForVerification | None, ImageForVerification | None]:
    """The pair's status and both images' stored copies (None where not indexed), in one query."""
    async with single_statement(pool) as conn:
        # Binary: ~200 KB of blobs per pair, no hex text to parse.
        cur = await conn.cursor(row_factory=dict_row, binary=True).execute(
            "SELECT coalesce(d.status, 'missing') AS pair_status, i.image_id::text AS image_id,"
            " i.ad_id, i.pixel_sha256, i.phash, i.phash_mirrored, b.jpeg, b.photo_jpeg, b.sift,"
            " b.photo_sift"
            " FROM (SELECT %s::uuid AS pair_id) p"
            " LEFT JOIN duplicates d ON d.pair_id = p.pair_id"
            " LEFT JOIN (images i JOIN image_blobs b USING (image_id))"
            " ON i.image_id = ANY(%s::uuid[]) AND i.status = 'indexed'",
            (ids.pair_id(image_a, image_b), [image_a, image_b]),
        )
        rows = await cur.fetchall()
    status = rows[0]["pair_status"]  # the pair's row comes back even when neither image is indexed
    found = {
        row["image_id"]: ImageForVerification(**{name: row[name] for name in _VERIFICATION_COLUMNS})
        for row in rows
        if row["image_id"] is not None
    }
    return status, found.get(image_a), found.get(image_b)
