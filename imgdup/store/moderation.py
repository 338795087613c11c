"""Moderators' verdicts and Postgres rows -> stored verdicts and the moderated read models: duplicates
of an ad, one pair in detail, the admin page's clusters with per-pair evidence and verdicts.

A moderator's verdict overrides the verifier wherever duplicates are presented from here: a pair
marked `not_duplicate` is never shown as a duplicate (it is marked, or left out on request), and
an image whose every duplicate pair was rejected is shown as detached from its cluster.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup.blobs.base import BlobStore
from imgdup.store import reads
from imgdup.store.images import BLOB_COLUMNS, BlobMissing, read_blob_columns
from imgdup.store.pairs import EVIDENCE_COLUMNS, evidence_fields

Row = dict[str, Any]


def _verdict_of(row: Row) -> Row | None:
    if row.get("verdict") is None:
        return None
    return {
        "verdict": row["verdict"],
        "moderator": row["moderator"],
        "note": row["note"],
        "decided_at": row["verdict_at"],
    }


def _effective(is_duplicate: bool | None, verdict: str | None) -> bool:
    if verdict is not None:
        return verdict == "confirmed"
    return bool(is_duplicate)


def _evidence(row: Row) -> Row | None:
    # A candidate no verifier has measured yet has only the embedding cosine: no evidence yet.
    return None if row["phash_distance"] is None else evidence_fields(row)


async def record_verdict(
    pool: AsyncConnectionPool, pair_id: str, *, verdict: str, moderator: str, note: str | None
) -> Row | None:
    """Upsert the pair's verdict (latest wins; the same verdict again changes nothing): the stored
    verdict with `changed`. None when the pair is unknown."""
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT 1 FROM duplicates WHERE pair_id = %s", (pair_id,))
        if await cur.fetchone() is None:
            return None
        await cur.execute(
            "WITH up AS ("
            " INSERT INTO moderator_verdicts AS v (pair_id, verdict, moderator, note)"
            " VALUES (%(pair)s, %(verdict)s, %(moderator)s, %(note)s)"
            " ON CONFLICT (pair_id) DO UPDATE SET verdict = EXCLUDED.verdict,"
            " moderator = EXCLUDED.moderator, note = EXCLUDED.note, decided_at = now()"
            " WHERE (v.verdict, v.moderator, v.note)"
            " IS DISTINCT FROM (EXCLUDED.verdict, EXCLUDED.moderator, EXCLUDED.note)"
            " RETURNING v.*"
            "), logged AS ("
            " INSERT INTO moderator_verdict_history (pair_id, verdict, moderator, note, decided_at)"
            " SELECT pair_id, verdict, moderator, note, decided_at FROM up"
            ") SELECT pair_id::text AS pair_id, verdict, moderator, note, decided_at FROM up",
            {"pair": pair_id, "verdict": verdict, "moderator": moderator, "note": note},
        )
        row = await cur.fetchone()
        changed = row is not None
        if row is None:
            await cur.execute(
                "SELECT pair_id::text AS pair_id, verdict, moderator, note, decided_at"
                " FROM moderator_verdicts WHERE pair_id = %s",
                (pair_id,),
            )
            row = await cur.fetchone()
    assert row is not None
    return {**row, "changed": changed}


async def moderated_truth(pool: AsyncConnectionPool) -> list[tuple[str, str]]:
    """Every pair a moderator decided on, as (pair_id, 'confirmed' | 'not_duplicate'), by pair_id:
    the human feedback the quality benchmark scores the pipeline against."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pair_id::text, verdict FROM moderator_verdicts ORDER BY pair_id")
        return [(str(pair), str(verdict)) for pair, verdict in await cur.fetchall()]


async def pair_detail(pool: AsyncConnectionPool, pair_id: str) -> Row | None:
    """One pair: its state, the verifier's evidence, both images, the moderator's verdict and its
    history. None when the pair is unknown."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT d.*, m.cluster_id::text AS cluster_id, v.verdict, v.moderator, v.note,"
            " v.decided_at AS verdict_at"
            " FROM duplicates d"
            " LEFT JOIN cluster_members m ON m.image_id = d.image_a AND d.status = 'clustered'"
            " AND d.held_at IS NULL"
            " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
            " WHERE d.pair_id = %s",
            (pair_id,),
        )
        pair = await cur.fetchone()
        if pair is None:
            return None
        await cur.execute(
            "SELECT i.image_id::text AS image_id, i.url, i.ad_id, a.source, a.category, a.seller_id,"
            " i.first_seen_at, i.width, i.height"
            " FROM images i JOIN ads a ON a.ad_id = i.ad_id WHERE i.image_id = ANY(%s::uuid[])",
            ([pair["image_a"], pair["image_b"]],),
        )
        sides = {row["image_id"]: row for row in await cur.fetchall()}
        await cur.execute(
            "SELECT verdict, moderator, note, decided_at FROM moderator_verdict_history"
            " WHERE pair_id = %s ORDER BY id",
            (pair_id,),
        )
        history = await cur.fetchall()
    return {
        "pair_id": str(pair["pair_id"]),
        "status": pair["status"],
        "verifier_duplicate": pair["is_duplicate"],
        "duplicate": _effective(pair["is_duplicate"], pair["verdict"]),
        "confidence": pair["confidence"],
        "evidence": _evidence(pair),
        "versions": {"embedding_model": pair["embedding_model"], "verifier": pair["verifier_version"]},
        "cluster_id": pair["cluster_id"],
        "found_at": pair["found_at"],
        "decided_at": pair["decided_at"],
        "images": [sides[str(image)] for image in (pair["image_a"], pair["image_b"]) if str(image) in sides],
        "moderator_verdict": _verdict_of(pair),
        "history": history,
    }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _components(image_ids: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Connected components (of two or more images) of the cluster's remaining duplicate edges."""
    parent = {image: image for image in image_ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for image in image_ids:
        groups.setdefault(find(image), []).append(image)
    return [group for group in groups.values() if len(group) > 1]


_PAIR_COLUMNS = (
    "d.pair_id::text AS pair_id, d.image_a::text AS image_a, d.image_b::text AS image_b, d.ad_a,"
    " d.ad_b, d.status, d.is_duplicate, d.confidence, d.cosine, d.phash_distance, d.phash_mirrored,"
    " d.sift_inliers, d.sift_mirrored, d.ssim, d.exact, d.decided_at, d.score, d.sift_matches,"
    " d.overlap, d.mismatch, d.compared, v.verdict, v.moderator, v.note, v.decided_at AS verdict_at"
)
# The pairs of the listed clusters: their edges, and the pairs a moderator rejected once the
# clusterer applied it (status 'rejected', edge retracted), listed marked in the cluster of the image
# still in one (image_a's first; the small moderator_verdicts table drives it). So the page reads
# the same before and after the clusterer caught up: the admin page reloads right after a verdict,
# racing the clusterer, and a pair that vanished when the clusterer won looked like a lost verdict.
_ADMIN_PAIRS = (
    "SELECT m.cluster_id::text AS cluster_id, "
    + _PAIR_COLUMNS
    + " FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
    " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
    " WHERE m.cluster_id = ANY(%(ids)s::uuid[]) AND d.status = 'clustered' AND d.held_at IS NULL"
    " UNION ALL SELECT * FROM (SELECT DISTINCT ON (d.pair_id) m.cluster_id::text AS cluster_id, "
    + _PAIR_COLUMNS
    + " FROM moderator_verdicts v JOIN duplicates d ON d.pair_id = v.pair_id"
    " JOIN cluster_members m ON m.image_id IN (d.image_a, d.image_b)"
    " WHERE v.verdict = 'not_duplicate' AND d.status = 'rejected' AND d.held_at IS NULL"
    " ORDER BY d.pair_id, m.image_id = d.image_a DESC) AS applied"
    # After the one cluster is chosen: a pair split over two clusters is listed once, not per page.
    " WHERE applied.cluster_id = ANY(%(ids)s::text[])"
)


async def admin_clusters(
    pool: AsyncConnectionPool,
    *,
    limit: int = 20,
    offset: int = 0,
    ad_id: int | None = None,
    category: str | None = None,
    source: str | None = None,
    since: date | None = None,
    until: date | None = None,
    include_rejected: bool = True,
) -> Row:
    """Live clusters, most recently changed first, with their images, their pairs' evidence and
    verdicts. Filters: an image of `ad_id`; an image whose ad has `category`/`source` and which was
    first seen between `since` and `until` (UTC days, inclusive). Pairs a moderator marked
    `not_duplicate` are marked (`duplicate: false`), or left out with `include_rejected=False`
    together with the images and clusters they leave without a duplicate."""
    params: dict[str, Any] = {
        "ad": ad_id,
        "category": category,
        "source": source,
        "since": _day_start(since) if since else None,
        # The day after the last one Python knows does not exist: until then is no upper bound.
        "until": _day_start(until + timedelta(days=1)) if until and until < date.max else None,
        "hide": not include_rejected,
        "limit": limit,
        "offset": offset,
    }
    where = (
        " WHERE c.merged_into IS NULL AND c.dissolved_at IS NULL"
        " AND (%(ad)s::bigint IS NULL OR EXISTS ("
        "   SELECT 1 FROM cluster_members m WHERE m.cluster_id = c.cluster_id AND m.ad_id = %(ad)s::bigint))"
        " AND ((%(category)s::text IS NULL AND %(source)s::text IS NULL"
        "       AND %(since)s::timestamptz IS NULL AND %(until)s::timestamptz IS NULL) OR EXISTS ("
        "   SELECT 1 FROM cluster_members m JOIN images i ON i.image_id = m.image_id"
        "   JOIN ads a ON a.ad_id = i.ad_id WHERE m.cluster_id = c.cluster_id"
        "   AND (%(category)s::text IS NULL OR a.category = %(category)s::text)"
        "   AND (%(source)s::text IS NULL OR a.source = %(source)s::text)"
        "   AND (%(since)s::timestamptz IS NULL OR i.first_seen_at >= %(since)s::timestamptz)"
        "   AND (%(until)s::timestamptz IS NULL OR i.first_seen_at < %(until)s::timestamptz)))"
        " AND (NOT %(hide)s::boolean OR EXISTS ("
        "   SELECT 1 FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
        "   WHERE m.cluster_id = c.cluster_id AND d.status = 'clustered' AND d.held_at IS NULL"
        "   AND NOT EXISTS ("
        "     SELECT 1 FROM moderator_verdicts v"
        "     WHERE v.pair_id = d.pair_id AND v.verdict = 'not_duplicate')))"
    )
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT count(*) AS n FROM duplicate_clusters c" + where, params)
        total_row = await cur.fetchone()
        await cur.execute(
            "SELECT c.cluster_id::text AS cluster_id, c.size, c.ad_count, c.edge_count, c.confidence,"
            " c.created_at, c.updated_at FROM duplicate_clusters c"
            + where
            + " ORDER BY c.updated_at DESC, c.cluster_id LIMIT %(limit)s OFFSET %(offset)s",
            params,
        )
        clusters = await cur.fetchall()
        ids = [c["cluster_id"] for c in clusters]
        await cur.execute(
            "SELECT m.cluster_id::text AS cluster_id, i.image_id::text AS image_id, i.url, i.ad_id,"
            " a.source, a.category, a.seller_id, i.first_seen_at, i.width, i.height"
            " FROM cluster_members m JOIN images i ON i.image_id = m.image_id"
            " JOIN ads a ON a.ad_id = i.ad_id"
            " WHERE m.cluster_id = ANY(%s::uuid[]) ORDER BY i.first_seen_at, i.image_id",
            (ids,),
        )
        members = await cur.fetchall()
        await cur.execute(_ADMIN_PAIRS, {"ids": ids})
        # Edges and applied rejections come from two queries: one order for both.
        pairs = sorted(await cur.fetchall(), key=lambda p: (-float(p["confidence"] or 0), p["pair_id"]))

    for cluster in clusters:
        cid = cluster["cluster_id"]
        images = [
            {k: v for k, v in m.items() if k != "cluster_id"} for m in members if m["cluster_id"] == cid
        ]
        cluster_pairs = [
            {
                "pair_id": p["pair_id"],
                "image_a": p["image_a"],
                "image_b": p["image_b"],
                "ad_a": p["ad_a"],
                "ad_b": p["ad_b"],
                "status": p["status"],
                "confidence": p["confidence"],
                "evidence": evidence_fields(p),
                "decided_at": p["decided_at"],
                "duplicate": _effective(p["is_duplicate"], p["verdict"]),
                "moderator_verdict": _verdict_of(p),
            }
            for p in pairs
            if p["cluster_id"] == cid
        ]
        kept = [(p["image_a"], p["image_b"]) for p in cluster_pairs if p["duplicate"]]
        groups = _components([i["image_id"] for i in images], kept)
        grouped = {image for group in groups for image in group}
        for image in images:
            image["detached"] = image["image_id"] not in grouped
        if not include_rejected:
            cluster_pairs = [p for p in cluster_pairs if p["duplicate"]]
            images = [i for i in images if not i["detached"]]
        cluster["images"] = images
        cluster["ads"] = sorted({i["ad_id"] for i in images})
        cluster["pairs"] = cluster_pairs
        cluster["groups"] = groups
        cluster["verdicts"] = {
            "confirmed": sum(1 for p in cluster_pairs if _verdict_name(p) == "confirmed"),
            "not_duplicate": sum(1 for p in cluster_pairs if _verdict_name(p) == "not_duplicate"),
            "pending": sum(1 for p in cluster_pairs if _verdict_name(p) is None),
        }
    return {
        "total": int(total_row["n"]) if total_row else 0,
        "limit": limit,
        "offset": offset,
        "clusters": clusters,
    }


def _verdict_name(pair: Row) -> str | None:
    verdict = pair["moderator_verdict"]
    return None if verdict is None else str(verdict["verdict"])


async def moderated_duplicates_of_ad(pool: AsyncConnectionPool, ad_id: int, *, cluster_mates: int) -> Row:
    """`reads.duplicates_of_ad` with moderators' verdicts applied: each pair carries its
    `moderator_verdict`; pairs marked `not_duplicate` are left out, and so are ads left with none.
    Then up to `cluster_mates` ads linked only through a shared cluster (`reads.cluster_mates_of_ad`),
    never one with a pair of its own with this ad: a moderator's `not_duplicate` on that pair stands
    even where the two ads' images meet in a cluster through others. Also how many such ads the
    limit left out."""
    entries = await reads.duplicates_of_ad(pool, ad_id)
    pair_ids = [pair["pair_id"] for entry in entries for pair in entry["pairs"]]
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT pair_id::text AS pair_id, verdict, moderator, note, decided_at AS verdict_at"
            " FROM moderator_verdicts WHERE pair_id = ANY(%s::uuid[])",
            (pair_ids,),
        )
        verdicts = {row["pair_id"]: _verdict_of(row) for row in await cur.fetchall()}
    kept_entries = []
    for entry in entries:
        kept = []
        for pair in entry["pairs"]:
            verdict = verdicts.get(pair["pair_id"])
            if verdict is not None and verdict["verdict"] == "not_duplicate":
                continue
            kept.append({**pair, "moderator_verdict": verdict})
        if kept:
            similarity = max(float(p["confidence"]) for p in kept)
            kept_entries.append({**entry, "similarity": similarity, "pairs": kept})
    mates, total = await reads.cluster_mates_of_ad(
        pool, ad_id, exclude=[entry["ad_id"] for entry in entries], limit=cluster_mates
    )
    by_pair = sorted(kept_entries, key=lambda e: (-e["similarity"], e["ad_id"]))
    return {"duplicates": by_pair + mates, "cluster_mates_left_out": total - len(mates)}


async def pair_for_explanation(pool: AsyncConnectionPool, pair_id: str, blobs: BlobStore) -> Row | None:
    """What the admin page's "why" view recomputes from (imgdup_core.explain): the pair's stored
    evidence and, per side, the stored copies, their SIFT features (from the blob store, or the
    bytea of rows not moved yet) and the framed photo's box. None when the pair is unknown or an
    image has no stored copy (also one the blob store lacks)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT pair_id::text AS pair_id, image_a::text AS image_a, image_b::text AS image_b,"
            " ad_a, ad_b, compared, sift_inliers, sift_mirrored, phash_mirrored, verifier_version, cosine"
            " FROM duplicates WHERE pair_id = %s",
            (pair_id,),
        )
        pair = await cur.fetchone()
        if pair is None:
            return None
        await cur.execute(
            "SELECT i.image_id::text AS image_id, i.width, i.height, i.photo_box, i.photo_box_share,"
            " i.phash, i.phash_mirrored,"
            f" {', '.join(f'b.{c}, b.{c}_sha256' for c in BLOB_COLUMNS)}"
            " FROM images i JOIN image_blobs b USING (image_id) WHERE i.image_id = ANY(%s::uuid[])",
            ([pair["image_a"], pair["image_b"]],),
        )
        sides = {row["image_id"]: row for row in await cur.fetchall()}
    if pair["image_a"] not in sides or pair["image_b"] not in sides:
        return None
    try:
        await read_blob_columns(blobs, list(sides.values()))
    except BlobMissing:
        return None
    return {**pair, "side_a": sides[pair["image_a"]], "side_b": sides[pair["image_b"]]}


async def verdict_evidence(pool: AsyncConnectionPool) -> list[Row]:
    """Every moderator's verdict with the evidence stored for its pair (imgdup retrain's own
    training data): the pair id, the verifier version that measured it, the evidence columns and
    the verdict. Pairs without a full measurement (undecided, or decided before the fused score
    was stored) are left out: there is nothing to refit on."""
    columns = ", ".join(f"d.{column}" for column in EVIDENCE_COLUMNS.values())
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"SELECT d.pair_id::text AS pair_id, d.verifier_version, v.verdict, {columns}"
            " FROM moderator_verdicts v JOIN duplicates d USING (pair_id)"
            " WHERE d.score IS NOT NULL AND d.status <> 'candidate' ORDER BY d.pair_id"
        )
        return await cur.fetchall()
