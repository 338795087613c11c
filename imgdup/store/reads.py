"""Postgres rows -> the public read models: duplicates of an ad (its verified pairs, and the ads it shares
a cluster with), live clusters, an ad's state, thumbnails."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup.blobs.base import BlobStore
from imgdup.store.images import read_blob_columns
from imgdup.store.pairs import evidence_fields


def _other_ad(
    ad_id: int,
    source: str,
    seller_id: str | None,
    category: str | None,
    match: str,
    similarity: float,
    *,
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One other ad of an ad's duplicates (imgdup.http.duplicate_models.DuplicateAd): matched by its own
    verified `pairs` (filled in by the caller) or, with none, by the cluster `links`."""
    return {
        "ad_id": ad_id,
        "source": source,
        "seller_id": seller_id,
        "category": category,
        "similarity": similarity,
        "match": match,
        "pairs": [],
        "links": links or [],
    }


async def duplicates_of_ad(pool: AsyncConnectionPool, ad_id: int) -> list[dict[str, Any]]:
    """Other ads sharing duplicate images with `ad_id`, best match first, with per-pair evidence."""
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT d.*, ia.url AS url_a, ib.url AS url_b, ao.source AS other_source,"
            " ao.seller_id AS other_seller_id, ao.category AS other_category,"
            # A held bridge (migration 012) is a duplicate pair but no edge: in no cluster.
            " CASE WHEN d.held_at IS NULL THEN m.cluster_id::text END AS cluster_id"
            " FROM duplicates d"
            " JOIN images ia ON ia.image_id = d.image_a"
            " JOIN images ib ON ib.image_id = d.image_b"
            " JOIN ads ao ON ao.ad_id = CASE WHEN d.ad_a = %(ad)s THEN d.ad_b ELSE d.ad_a END"
            " LEFT JOIN cluster_members m ON m.image_id = d.image_a"
            " WHERE d.is_duplicate AND (d.ad_a = %(ad)s OR d.ad_b = %(ad)s)"
            " ORDER BY d.confidence DESC, d.pair_id",
            {"ad": ad_id},
        )
        rows = await cur.fetchall()
    by_ad: dict[int, dict[str, Any]] = {}
    for row in rows:
        mine_is_a = row["ad_a"] == ad_id
        other = row["ad_b"] if mine_is_a else row["ad_a"]
        entry = by_ad.setdefault(
            other,
            _other_ad(other, row["other_source"], row["other_seller_id"], row["other_category"], "pair", 0.0),
        )
        entry["similarity"] = max(entry["similarity"], float(row["confidence"]))
        entry["pairs"].append(
            {
                "pair_id": str(row["pair_id"]),
                "image_id": str(row["image_a"] if mine_is_a else row["image_b"]),
                "image_url": row["url_a"] if mine_is_a else row["url_b"],
                "other_image_id": str(row["image_b"] if mine_is_a else row["image_a"]),
                "other_image_url": row["url_b"] if mine_is_a else row["url_a"],
                "confidence": row["confidence"],
                "status": row["status"],
                "cluster_id": row["cluster_id"],
                "held": row["held_at"] is not None and row["clustered_at"] is None,
                "evidence": evidence_fields(row),
                "versions": {
                    "embedding_model": row["embedding_model"],
                    "verifier": row["verifier_version"],
                },
                "decided_at": row["decided_at"],
            }
        )
    return sorted(by_ad.values(), key=lambda e: (-e["similarity"], e["ad_id"]))


async def cluster_mates_of_ad(
    pool: AsyncConnectionPool, ad_id: int, *, exclude: list[int], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Other ads whose images share a duplicate cluster with an image of `ad_id`, linked through
    other ads' images (two edits of one photo, each verified against the original), leaving out the
    ads in `exclude` (those with a verified pair of their own) and image pairs a moderator marked
    `not_duplicate`; best cluster first, at most `limit` of them, and how many there are in all. Each
    carries its links: our image, theirs, the cluster they share."""
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT o.ad_id, a.source, a.seller_id, a.category, max(c.confidence) AS similarity,"
            " jsonb_agg(jsonb_build_object("
            "   'image_id', i.image_id::text, 'image_url', i.url,"
            "   'other_image_id', io.image_id::text, 'other_image_url', io.url,"
            "   'cluster_id', c.cluster_id::text, 'cluster_size', c.size)"
            "   ORDER BY i.image_id, io.image_id) AS links,"
            " count(*) OVER () AS total"
            " FROM images i"
            " JOIN cluster_members m ON m.image_id = i.image_id"
            " JOIN duplicate_clusters c ON c.cluster_id = m.cluster_id"
            " JOIN cluster_members o ON o.cluster_id = m.cluster_id AND o.ad_id <> i.ad_id"
            " JOIN images io ON io.image_id = o.image_id"
            " JOIN ads a ON a.ad_id = o.ad_id"
            " WHERE i.ad_id = %(ad)s AND o.ad_id <> ALL(%(exclude)s::bigint[])"
            # A moderator's `not_duplicate` on these two images stands whatever links them.
            " AND NOT EXISTS (SELECT 1 FROM duplicates d JOIN moderator_verdicts v USING (pair_id)"
            "   WHERE v.verdict = 'not_duplicate'"
            "   AND (d.image_a, d.image_b) IN ((i.image_id, io.image_id), (io.image_id, i.image_id)))"
            " GROUP BY o.ad_id, a.source, a.seller_id, a.category"
            " ORDER BY similarity DESC, o.ad_id"
            # One row more than asked for, so `total` is known even when none is asked for.
            " LIMIT %(limit)s",
            {"ad": ad_id, "exclude": exclude, "limit": limit + 1},
        )
        rows = await cur.fetchall()
    total = int(rows[0]["total"]) if rows else 0
    return [
        _other_ad(
            row["ad_id"],
            row["source"],
            row["seller_id"],
            row["category"],
            "cluster",
            float(row["similarity"]),
            links=row["links"],
        )
        for row in rows[:limit]
    ], total


async def clusters_page(
    pool: AsyncConnectionPool, *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Live (not merged) clusters, most recently changed first, with their images and the
    clusters merged into them; also the number of live clusters."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM duplicate_clusters WHERE merged_into IS NULL AND dissolved_at IS NULL"
        )
        total_row = await cur.fetchone()
        total = int(total_row[0]) if total_row else 0
        dcur = conn.cursor(row_factory=dict_row)
        await dcur.execute(
            "SELECT cluster_id::text AS cluster_id, size, ad_count, edge_count, confidence,"
            " created_at, updated_at FROM duplicate_clusters"
            " WHERE merged_into IS NULL AND dissolved_at IS NULL"
            " ORDER BY updated_at DESC, cluster_id LIMIT %s OFFSET %s",
            (limit, offset),
        )
        clusters = await dcur.fetchall()
        ids = [c["cluster_id"] for c in clusters]
        await dcur.execute(
            "SELECT m.cluster_id::text AS cluster_id, i.image_id::text AS image_id, i.url,"
            " i.ad_id, a.source, a.category, a.seller_id, i.first_seen_at"
            " FROM cluster_members m JOIN images i USING (image_id) JOIN ads a ON a.ad_id = i.ad_id"
            " WHERE m.cluster_id = ANY(%s::uuid[]) ORDER BY i.first_seen_at, i.image_id",
            (ids,),
        )
        members = await dcur.fetchall()
        await dcur.execute(
            "SELECT absorbed::text AS absorbed, survivor::text AS survivor, merged_at"
            " FROM cluster_merges WHERE survivor = ANY(%s::uuid[]) ORDER BY merged_at",
            (ids,),
        )
        merges = await dcur.fetchall()
    for cluster in clusters:
        cid = cluster["cluster_id"]
        images = [
            {k: v for k, v in m.items() if k != "cluster_id"} for m in members if m["cluster_id"] == cid
        ]
        cluster["images"] = images
        cluster["ads"] = sorted({m["ad_id"] for m in images})
        cluster["merged"] = [
            {"cluster_id": m["absorbed"], "merged_at": m["merged_at"]} for m in merges if m["survivor"] == cid
        ]
    return total, clusters


async def ad_state(pool: AsyncConnectionPool, ad_id: int) -> dict[str, Any] | None:
    """The ad, its events, its images and its pairs by status; None when nothing of it is known."""
    async with pool.connection() as conn:
        dcur = conn.cursor(row_factory=dict_row)
        await dcur.execute(
            "SELECT ad_id, source, category, seller_id, first_seen_at FROM ads WHERE ad_id = %s",
            (ad_id,),
        )
        ad = await dcur.fetchone()
        await dcur.execute(
            "SELECT event_id, status, replay, dead_reason, accepted_at, updated_at"
            " FROM ingest_events WHERE ad_id = %s ORDER BY accepted_at",
            (ad_id,),
        )
        events = await dcur.fetchall()
        if ad is None and not events:
            return None
        await dcur.execute(
            "SELECT image_id::text AS image_id, url, position, status, error_reason, error_detail,"
            " width, height, format, embedding_model, indexed_at"
            " FROM images WHERE ad_id = %s ORDER BY position, url",
            (ad_id,),
        )
        images = await dcur.fetchall()
        await dcur.execute(
            "SELECT status, count(*) AS n FROM duplicates WHERE ad_a = %s OR ad_b = %s GROUP BY status",
            (ad_id, ad_id),
        )
        pairs = {r["status"]: r["n"] for r in await dcur.fetchall()}
    state = _state(events, images, pairs)
    counts: dict[str, int] = {}
    for image in images:
        counts[image["status"]] = counts.get(image["status"], 0) + 1
    return {
        "ad_id": ad_id,
        "ad": ad,
        "state": state,
        "image_counts": counts,
        "failed_images": [] if state == "processing" else _failed_images(events, images),
        "events": events,
        "images": images,
        "pairs": pairs,
    }


def _state(events: list[dict[str, Any]], images: list[dict[str, Any]], pairs: dict[str, int]) -> str:
    """processing: an event or a pair is in flight. dead: the ad's latest event was dead-lettered.
    done_with_failures: every event finished but some image is not indexed. done: all indexed."""
    if (
        any(e["status"] in ("accepted", "processing") for e in events)
        or pairs.get("candidate")
        or pairs.get("verified")
    ):
        return "processing"
    if events and events[-1]["status"] == "dead":
        return "dead"
    if any(image["status"] != "indexed" for image in images):
        return "done_with_failures"
    return "done"


def _failed_images(events: list[dict[str, Any]], images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each image that is not indexed once nothing is in flight, and why: its own failure, or the
    dead event that never got to it."""
    dead = [e["dead_reason"] for e in events if e["status"] == "dead"]
    never = f"the ad's event was dead-lettered: {dead[-1]}" if dead else "no event of the ad processed it"
    return [
        {
            "image_id": image["image_id"],
            "url": image["url"],
            "reason": image["error_reason"] if image["status"] == "failed" else "not_processed",
            "detail": image["error_detail"] if image["status"] == "failed" else never,
        }
        for image in images
        if image["status"] != "indexed"
    ]


async def image_jpeg(pool: AsyncConnectionPool, image_id: str, blobs: BlobStore) -> bytes | None:
    """The image's reduced JPEG copy (the admin page's thumbnail): from the blob store, or the
    row's bytea while `imgdup migrate-blobs` has not moved it."""
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT jpeg, jpeg_sha256 FROM image_blobs WHERE image_id = %s", (image_id,)
        )
        row = await cur.fetchone()
    if row is None:
        return None
    await read_blob_columns(blobs, [row])
    return bytes(row["jpeg"])
