"""Indexed images in Postgres -> the pHash candidate channel's neighbours of some of them: other
ads' images whose pHash (plain, or the mirrored hash of the query) is within a few bits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from imgdup.store.db import single_statement

__all__ = ["PhashNeighbour", "phash_neighbours"]

# Eight 8-bit bands (infra/sql/011_phash_candidates.sql): the band expressions must be exactly
# those of the indexes for Postgres to use them.
_BANDS = tuple(f"(({{col}} >> {shift}) & 255)" if shift else "({col} & 255)" for shift in range(56, -1, -8))


def _band_matches() -> str:
    """One index range per band and query hash (plain, mirrored), as a UNION of equality joins."""
    parts = []
    for band in _BANDS:
        for query_hash in ("q.phash", "q.phash_mirrored"):
            parts.append(
                f"SELECT q.image_id AS query_id, i.image_id AS found_id FROM q JOIN images i"
                f" ON {band.format(col='i.phash')} = {band.format(col=query_hash)}"
                f" WHERE i.phash IS NOT NULL"
            )
    return " UNION ".join(parts)


_SQL = (
    "WITH q AS (SELECT i.image_id, i.ad_id, a.category, i.phash, i.phash_mirrored FROM images i"
    " JOIN ads a ON a.ad_id = i.ad_id WHERE i.image_id = ANY(%(ids)s::uuid[]) AND i.phash IS NOT NULL),"
    f" m AS ({_band_matches()})"
    " SELECT q.image_id::text AS query_id, i.image_id::text AS image_id, i.ad_id, i.embedding,"
    " least(bit_count((q.phash # i.phash)::bit(64)), bit_count((q.phash_mirrored # i.phash)::bit(64)))"
    " AS distance"
    " FROM m JOIN q ON q.image_id = m.query_id JOIN images i ON i.image_id = m.found_id"
    " JOIN ads a ON a.ad_id = i.ad_id"
    " WHERE i.ad_id <> q.ad_id AND i.status = 'indexed' AND i.embedding_model = %(model)s"
    " AND i.embedding IS NOT NULL"
    # As the ANN search: an ad with a category is compared within it; one without, with all.
    " AND (q.category IS NULL OR a.category = q.category)"
    " AND least(bit_count((q.phash # i.phash)::bit(64)), bit_count((q.phash_mirrored # i.phash)::bit(64)))"
    " <= %(distance)s"
    " ORDER BY distance, image_id LIMIT %(limit)s"
)


@dataclass(frozen=True)
class PhashNeighbour:
    query_id: str
    image_id: str
    ad_id: int
    embedding: bytes  # float32 little-endian, for the pair's cosine
    distance: int


async def phash_neighbours(
    pool: AsyncConnectionPool,
    image_ids: Sequence[str],
    *,
    embedding_model: str,
    max_distance: int,
    limit: int,
) -> list[PhashNeighbour]:
    """Other ads' indexed images within max_distance bits of the given images' pHashes, closest
    first, at most `limit` in all. Found for sure within 7 bits (a shared band); at 8 bits only
    where one band also matches exactly."""
    if not image_ids or max_distance < 0 or limit <= 0:
        return []
    async with single_statement(pool) as conn:  # one read: no BEGIN and COMMIT round trips
        cur = await conn.cursor(row_factory=class_row(PhashNeighbour)).execute(
            _SQL,
            {
                "ids": list(image_ids),
                "model": embedding_model,
                "distance": max_distance,
                "limit": limit,
            },
        )
        return await cur.fetchall()
