"""Analysed images -> `images` rows (hashes, embeddings) and `image_blobs` rows (the content addresses of
the stored copies and their SIFT features, whose bytes go to the blob store); failed images -> their
reason; a pair's two images -> what the verifier needs, read back from the blob store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.analysis.analyse import AnalysedImage, vector_to_bytes
from imgdup.blobs.base import BlobStore, get_all, put_all
from imgdup.store.db import single_statement

# The blob columns of image_blobs: each is a bytea (rows before migration 009 and not yet moved by
# `imgdup migrate-blobs`) or a `<name>_sha256` + `<name>_size` pointing into the blob store. A flat
# picture's second features (migration 016) are only ever in the blob store.
# The ones rows of before migration 009 hold as bytea: what `imgdup migrate-blobs` moves.
BYTEA_COLUMNS = ("jpeg", "photo_jpeg", "sift", "photo_sift")
BLOB_COLUMNS = (*BYTEA_COLUMNS, "flat_sift", "photo_flat_sift")


class BlobMissing(LookupError):
    """A row points at a blob the blob store does not have (deleted by hand, or a wrong store)."""


@dataclass(frozen=True)
class IndexedImage:
    """One analysed image of an ad, under its deterministic id and the model that embedded it."""

    image_id: str
    embedding_model: str
    image: AnalysedImage


async def save_indexed_images(
    pool: AsyncConnectionPool, images: Sequence[IndexedImage], blobs: BlobStore
) -> None:
    """The blobs first, then one statement for both tables, whatever the number of images. Blobs
    before rows: a committed row never points at a blob not yet written; a failure in between leaves
    only orphan blobs, which `imgdup prune` collects. Byte columns go in binary (%b): as text,
    psycopg hex-escapes them with a regex while holding the GIL."""
    if not images:
        return
    analysed = [i.image for i in images]
    # All the blob columns of all images in one round of concurrent puts (threads: files or HTTP).
    refs = await put_all(blobs, [getattr(a, column) for column in BLOB_COLUMNS for a in analysed])
    by_column = {
        column: refs[n * len(analysed) : (n + 1) * len(analysed)] for n, column in enumerate(BLOB_COLUMNS)
    }
    # One statement, atomic on its own (no BEGIN and COMMIT round trips): the images' update as a
    # data-modifying CTE, then the blobs' addresses (another table: the two never touch one row).
    # The old bytea columns are set NULL: a re-indexed image of before migration 009 moves too.
    async with single_statement(pool) as conn:
        await conn.execute(
            "WITH indexed AS (UPDATE images AS i SET status = 'indexed', error_reason = NULL,"
            " error_detail = NULL, content_sha256 = u.content_sha256, pixel_sha256 = u.pixel_sha256,"
            " phash = u.phash, phash_mirrored = u.phash_mirrored, width = u.width,"
            " height = u.height, format = u.format, embedding_model = u.embedding_model,"
            " embedding = u.embedding, photo_embedding = u.photo_embedding,"
            " photo_box = CASE WHEN u.photo_box = '' THEN NULL"
            " ELSE string_to_array(u.photo_box, ',')::int[] END,"
            " photo_box_share = CASE WHEN u.photo_box_share = '' THEN NULL"
            " ELSE string_to_array(u.photo_box_share, ',')::float8[] END,"
            " indexed_at = coalesce(i.indexed_at, now())"
            " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bigint[], %s::bigint[],"
            " %s::int[], %s::int[], %s::text[], %s::text[], %b::bytea[], %b::bytea[], %s::text[],"
            " %s::text[])"
            " AS u(image_id, content_sha256, pixel_sha256, phash, phash_mirrored, width, height,"
            " format, embedding_model, embedding, photo_embedding, photo_box, photo_box_share)"
            " WHERE i.image_id = u.image_id)"
            " INSERT INTO image_blobs (image_id, jpeg_sha256, jpeg_size, photo_jpeg_sha256,"
            " photo_jpeg_size, sift_sha256, sift_size, photo_sift_sha256, photo_sift_size,"
            " flat_sift_sha256, flat_sift_size, photo_flat_sift_sha256, photo_flat_sift_size)"
            " SELECT * FROM unnest(%s::uuid[], %s::text[], %s::int[], %s::text[], %s::int[],"
            " %s::text[], %s::int[], %s::text[], %s::int[], %s::text[], %s::int[], %s::text[], %s::int[])"
            " ON CONFLICT (image_id) DO UPDATE SET jpeg = NULL, photo_jpeg = NULL, sift = NULL,"
            " photo_sift = NULL, jpeg_sha256 = EXCLUDED.jpeg_sha256, jpeg_size = EXCLUDED.jpeg_size,"
            " photo_jpeg_sha256 = EXCLUDED.photo_jpeg_sha256,"
            " photo_jpeg_size = EXCLUDED.photo_jpeg_size, sift_sha256 = EXCLUDED.sift_sha256,"
            " sift_size = EXCLUDED.sift_size, photo_sift_sha256 = EXCLUDED.photo_sift_sha256,"
            " photo_sift_size = EXCLUDED.photo_sift_size, flat_sift_sha256 = EXCLUDED.flat_sift_sha256,"
            " flat_sift_size = EXCLUDED.flat_sift_size,"
            " photo_flat_sift_sha256 = EXCLUDED.photo_flat_sift_sha256,"
            " photo_flat_sift_size = EXCLUDED.photo_flat_sift_size",
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
                # repr of a float reads back as the same float8.
                [",".join(repr(float(v)) for v in a.photo_box) if a.photo_box else "" for a in analysed],
                [i.image_id for i in images],
                *(
                    values
                    for column in BLOB_COLUMNS
                    for values in (
                        [r.sha256 if r else None for r in by_column[column]],
                        [r.size if r else None for r in by_column[column]],
                    )
                ),
            ),
        )


async def save_failed_image(pool: AsyncConnectionPool, image_id: str, reason: str, detail: str) -> None:
    async with single_statement(pool) as conn:  # one statement: no BEGIN and COMMIT round trips
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
    flat_sift: bytes | None = None  # migration 016: None before it, or with keypoints enough
    photo_flat_sift: bytes | None = None
    # x0, y0, x1, y1 as shares of the picture (migration 013); None before it or without a photo.
    photo_box_share: list[float] | None = None


_VERIFICATION_COLUMNS = [f.name for f in fields(ImageForVerification)]


async def read_blob_columns(blobs: BlobStore, rows: Sequence[dict[str, object]]) -> None:
    """Fill each row's blob columns in place: from the blob store where the row has an address,
    else the row's own bytea (not moved by `imgdup migrate-blobs` yet). All reads run at once."""
    wanted = [(row, column) for row in rows for column in BLOB_COLUMNS if row.get(f"{column}_sha256")]
    found = await get_all(blobs, [str(row[f"{column}_sha256"]) for row, column in wanted])
    for (row, column), data in zip(wanted, found, strict=True):
        if data is None:
            raise BlobMissing(f"blob {row[f'{column}_sha256']} ({column}) is not in the blob store")
        row[column] = data


_SELECT_BLOBS = ", ".join(f"b.{c}, b.{c}_sha256" for c in BLOB_COLUMNS)


async def load_for_verification(
    pool: AsyncConnectionPool, image_a: str, image_b: str, blobs: BlobStore
) -> tuple[str, ImageForVerification | None, ImageForVerification | None]:
    """The pair's status and both images' stored copies (None where not indexed): one query, then
    the blob store (concurrent reads in threads)."""
    async with single_statement(pool) as conn:
        # Binary: rows not moved yet still carry ~200 KB of bytea per pair, no hex text to parse.
        cur = await conn.cursor(row_factory=dict_row, binary=True).execute(
            "SELECT coalesce(d.status, 'missing') AS pair_status, i.image_id::text AS image_id,"
            f" i.ad_id, i.pixel_sha256, i.phash, i.phash_mirrored, i.photo_box_share, {_SELECT_BLOBS}"
            " FROM (SELECT %s::uuid AS pair_id) p"
            " LEFT JOIN duplicates d ON d.pair_id = p.pair_id"
            " LEFT JOIN (images i JOIN image_blobs b USING (image_id))"
            " ON i.image_id = ANY(%s::uuid[]) AND i.status = 'indexed'",
            (ids.pair_id(image_a, image_b), [image_a, image_b]),
        )
        rows = await cur.fetchall()
    await read_blob_columns(blobs, [row for row in rows if row["image_id"] is not None])
    status = rows[0]["pair_status"]  # the pair's row comes back even when neither image is indexed
    found = {
        row["image_id"]: ImageForVerification(**{name: row[name] for name in _VERIFICATION_COLUMNS})
        for row in rows
        if row["image_id"] is not None
    }
    return status, found.get(image_a), found.get(image_b)
