"""Pipeline facts <-> Postgres rows: every write here is an idempotent upsert keyed by a deterministic id."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup_core.clustering import ClusterPair, ClusterPlan, ClusterSnapshot, plan_pair
from schemas import (
    AdImagesCreatedV1,
    AdRef,
    ClusterRef,
    DuplicateEventV1,
    EvidenceV1,
    ImageRef,
    VerifiedPairV1,
    VersionsV1,
)

Row = dict[str, Any]


# --------------------------------------------------------------------------- ingest events


async def accept_event(pool: AsyncConnectionPool, event: AdImagesCreatedV1) -> bool:
    """Record an event accepted by the API before it is published. True when it is new."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, replay) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event.event_id, event.ad_id, event.model_dump_json(), event.replay),
        )
        return cur.rowcount == 1


async def forget_accepted_event(pool: AsyncConnectionPool, event_id: str) -> None:
    """Undo accept_event when publishing failed, so `wait` does not wait for it forever."""
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM ingest_events WHERE event_id = %s AND status = 'accepted'", (event_id,)
        )


@dataclass(frozen=True)
class EventImage:
    image_id: str
    url: str
    position: int
    status: str
    embedding: bytes | None
    embedding_model: str | None
    photo_embedding: bytes | None = None


async def begin_event(pool: AsyncConnectionPool, event: AdImagesCreatedV1) -> list[EventImage]:
    """Upsert the event, its ad and its image rows; return the images with what is known of them."""
    urls = [str(url) for url in event.images]
    image_ids = [ids.image_id(event.ad_id, url) for url in urls]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, replay, status)"
            " VALUES (%s, %s, %s, %s, 'processing')"
            " ON CONFLICT (event_id) DO UPDATE SET status = 'processing', updated_at = now()"
            " WHERE ingest_events.status = 'accepted'",
            (event.event_id, event.ad_id, event.model_dump_json(), event.replay),
        )
        await conn.execute(
            "INSERT INTO ads (ad_id, source, category, seller_id, last_event_id)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (ad_id) DO UPDATE SET source = EXCLUDED.source,"
            " category = EXCLUDED.category, seller_id = EXCLUDED.seller_id,"
            " last_event_id = EXCLUDED.last_event_id",
            (event.ad_id, event.source, event.category, event.seller_id, event.event_id),
        )
        await conn.execute(
            "INSERT INTO images (image_id, ad_id, url, position)"
            " SELECT u.image_id, %s, u.url, u.position"
            " FROM unnest(%s::uuid[], %s::text[], %s::int[]) AS u(image_id, url, position)"
            " ON CONFLICT (image_id) DO NOTHING",
            (event.ad_id, image_ids, urls, list(range(len(urls)))),
        )
        cur = await conn.execute(
            "SELECT image_id::text, url, position, status, embedding, embedding_model, photo_embedding"
            " FROM images WHERE image_id = ANY(%s::uuid[])",
            (image_ids,),
        )
        rows = await cur.fetchall()
    by_id = {row[0]: EventImage(*row) for row in rows}
    return [by_id[image] for image in image_ids]


@dataclass(frozen=True)
class IndexedImage:
    image_id: str
    content_sha256: str
    pixel_sha256: str
    phash: int
    phash_mirrored: int
    width: int
    height: int
    format: str
    embedding_model: str
    embedding: bytes
    jpeg: bytes
    # The photo a screenshot or border frames (imgdup_core.framing); None for ordinary photos.
    photo_box: list[int] | None = None
    photo_embedding: bytes | None = None
    photo_jpeg: bytes | None = None
    # imgdup_core.verify.sift_to_bytes of the stored copies.
    sift: bytes | None = None
    photo_sift: bytes | None = None


async def save_indexed_images(pool: AsyncConnectionPool, images: Sequence[IndexedImage]) -> None:
    """One transaction, one statement per table, whatever the number of images. Byte columns go
    in binary (%b): as text, psycopg hex-escapes every JPEG and feature blob with a regex while
    holding the GIL (~110 KB per image)."""
    if not images:
        return
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
                [i.content_sha256 for i in images],
                [i.pixel_sha256 for i in images],
                [i.phash for i in images],
                [i.phash_mirrored for i in images],
                [i.width for i in images],
                [i.height for i in images],
                [i.format for i in images],
                [i.embedding_model for i in images],
                [i.embedding for i in images],
                [i.photo_embedding for i in images],
                # unnest cannot take a ragged int[][]: each box travels as "x0,y0,x1,y1".
                [",".join(map(str, i.photo_box)) if i.photo_box else "" for i in images],
            ),
        )
        await conn.execute(
            "INSERT INTO image_blobs (image_id, jpeg, photo_jpeg, sift, photo_sift)"
            " SELECT * FROM unnest(%s::uuid[], %b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[])"
            " ON CONFLICT (image_id) DO UPDATE SET jpeg = EXCLUDED.jpeg, photo_jpeg = EXCLUDED.photo_jpeg,"
            " sift = EXCLUDED.sift, photo_sift = EXCLUDED.photo_sift",
            (
                [i.image_id for i in images],
                [i.jpeg for i in images],
                [i.photo_jpeg for i in images],
                [i.sift for i in images],
                [i.photo_sift for i in images],
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
class CandidateRow:
    pair_id: str
    image_a: str
    ad_a: int
    image_b: str
    ad_b: int
    cosine: float
    replay: bool


async def add_candidates(
    pool: AsyncConnectionPool, pairs: Sequence[CandidateRow], *, verifier_version: str
) -> set[str]:
    """Insert new candidate pairs; return the ids of those still waiting for a verdict.

    A replayed pair decided by another verifier version goes back to 'candidate' (same row),
    so re-processing with new thresholds re-verifies without duplicating anything.
    """
    if not pairs:
        return set()
    pair_ids = [p.pair_id for p in pairs]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, cosine, replay)"
            " SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::bigint[],"
            " %s::bigint[], %s::real[], %s::bool[])"
            " AS u(pair_id, image_a, image_b, ad_a, ad_b, cosine, replay)"
            # A vector point whose Postgres row is gone (a reset database) is not a candidate.
            " WHERE EXISTS (SELECT 1 FROM images i WHERE i.image_id = u.image_a)"
            " AND EXISTS (SELECT 1 FROM images i WHERE i.image_id = u.image_b)"
            " ON CONFLICT (pair_id) DO UPDATE SET status = 'candidate', replay = true,"
            " cosine = EXCLUDED.cosine"
            " WHERE EXCLUDED.replay AND duplicates.status IN ('rejected', 'verified', 'clustered')"
            " AND duplicates.verifier_version IS DISTINCT FROM %s",
            (
                pair_ids,
                [p.image_a for p in pairs],
                [p.image_b for p in pairs],
                [p.ad_a for p in pairs],
                [p.ad_b for p in pairs],
                [p.cosine for p in pairs],
                [p.replay for p in pairs],
                verifier_version,
            ),
        )
        cur = await conn.execute(
            "SELECT pair_id::text FROM duplicates WHERE pair_id = ANY(%s::uuid[]) AND status = 'candidate'",
            (pair_ids,),
        )
        return {row[0] for row in await cur.fetchall()}


async def finish_event(pool: AsyncConnectionPool, event_id: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE ingest_events SET status = 'indexed', updated_at = now()"
            " WHERE event_id = %s AND status <> 'dead'",
            (event_id,),
        )


async def mark_event_dead(
    pool: AsyncConnectionPool,
    *,
    event_id: str,
    ad_id: int | None,
    payload: str,
    reason: str,
) -> None:
    """A dead event is finished: `wait` stops waiting for it. Unknown events are recorded too."""
    try:
        payload_json = json.dumps(json.loads(payload))
    except ValueError:
        payload_json = json.dumps({"unparsed": payload[:10_000]})
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, status, dead_reason)"
            " VALUES (%s, %s, %s, 'dead', %s)"
            " ON CONFLICT (event_id) DO UPDATE SET status = 'dead',"
            " dead_reason = EXCLUDED.dead_reason, updated_at = now()",
            (event_id, ad_id if ad_id is not None else 0, payload_json, reason),
        )


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ImageForVerification:
    image_id: str
    ad_id: int
    pixel_sha256: str
    phash: int
    phash_mirrored: int
    jpeg: bytes
    photo_jpeg: bytes | None = None
    sift: bytes | None = None
    photo_sift: bytes | None = None


@asynccontextmanager
async def _single_statement(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection in autocommit mode, for work that is one statement (atomic on its
    own): one round trip instead of BEGIN, statement, COMMIT. The verifier runs two such
    statements per pair, three or four per image."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken connection is discarded anyway
                await conn.set_autocommit(False)


async def load_for_verification(
    pool: AsyncConnectionPool, image_a: str, image_b: str
) -> tuple[str, ImageForVerification | None, ImageForVerification | None]:
    """The pair's status and both images' stored copies (None where not indexed), in one query."""
    async with _single_statement(pool) as conn:
        cur = await conn.execute(
            "SELECT coalesce(d.status, 'missing'), i.image_id::text, i.ad_id, i.pixel_sha256, i.phash,"
            " i.phash_mirrored, b.jpeg, b.photo_jpeg, b.sift, b.photo_sift"
            " FROM (SELECT %s::uuid AS pair_id) p"
            " LEFT JOIN duplicates d ON d.pair_id = p.pair_id"
            " LEFT JOIN (images i JOIN image_blobs b USING (image_id))"
            " ON i.image_id = ANY(%s::uuid[]) AND i.status = 'indexed'",
            (ids.pair_id(image_a, image_b), [image_a, image_b]),
            binary=True,  # ~200 KB of blobs per pair: no hex text to parse
        )
        rows = await cur.fetchall()
    status = rows[0][0]  # the pair's row comes back even when neither image is indexed
    found = {row[1]: ImageForVerification(*row[1:]) for row in rows if row[1] is not None}
    return status, found.get(image_a), found.get(image_b)


@dataclass(frozen=True)
class VerdictRow:
    pair_id: str
    is_duplicate: bool
    confidence: float
    evidence: EvidenceV1
    versions: VersionsV1


async def save_verdict(pool: AsyncConnectionPool, verdict: VerdictRow) -> VerifiedPairV1 | None:
    """Record the verdict of a candidate (first verdict wins for a pair already decided).

    Returns the verified pair to hand to the clusterer when the stored verdict is a duplicate
    not yet clustered, also on redelivery, so a crash between commit and publish loses nothing.
    """
    ev = verdict.evidence
    async with _single_statement(pool) as conn:
        # A cursor-level row factory: setting it on the connection would leak into the pool.
        cur = await conn.cursor(row_factory=dict_row).execute(
            "UPDATE duplicates SET"
            " status = CASE WHEN %s THEN 'verified' ELSE 'rejected' END,"
            " is_duplicate = %s, confidence = %s, phash_distance = %s, phash_mirrored = %s,"
            " sift_inliers = %s, sift_mirrored = %s, ssim = %s, exact = %s,"
            " score = %s, sift_matches = %s, overlap = %s, mismatch = %s, compared = %s,"
            " embedding_model = %s, verifier_version = %s, decided_at = now()"
            " WHERE pair_id = %s AND status = 'candidate' RETURNING *",
            (
                verdict.is_duplicate,
                verdict.is_duplicate,
                verdict.confidence,
                ev.phash_distance,
                ev.phash_mirrored,
                ev.sift_inliers,
                ev.sift_mirrored,
                ev.ssim,
                ev.exact,
                ev.score,
                ev.sift_matches,
                ev.overlap,
                ev.mismatch,
                ev.compared,
                verdict.versions.embedding_model,
                verdict.versions.verifier,
                verdict.pair_id,
            ),
        )
        row = await cur.fetchone()
    if row is None:
        # Decided before (a redelivery): hand on the stored verdict if it is a duplicate not
        # yet clustered.
        return await verified_pair(pool, verdict.pair_id)
    return verified_pair_from_row(row) if row["status"] == "verified" else None


async def verified_pair(pool: AsyncConnectionPool, pair_id: str) -> VerifiedPairV1 | None:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM duplicates WHERE pair_id = %s AND status = 'verified'", (pair_id,)
        )
        row = await cur.fetchone()
    return verified_pair_from_row(row) if row else None


def evidence_fields(row: Row) -> dict[str, Any]:
    """A `duplicates` row's evidence columns under EvidenceV1's field names (None where the pair
    is undecided or was decided by an older verifier); the API and admin page serve the same."""
    return {
        "phash_distance": row["phash_distance"],
        "phash_mirrored": row["phash_mirrored"],
        "embedding_cosine": float(row["cosine"]),
        "sift_inliers": row["sift_inliers"],
        "sift_mirrored": row["sift_mirrored"],
        "ssim": _float_or_none(row["ssim"]),
        "exact": row["exact"],
        "score": _float_or_none(row.get("score")),
        "sift_matches": row.get("sift_matches"),
        "overlap": _float_or_none(row.get("overlap")),
        "mismatch": _float_or_none(row.get("mismatch")),
        "compared": row.get("compared"),
    }


def _evidence_from_row(row: Row) -> EvidenceV1:
    return EvidenceV1(**{**evidence_fields(row), "exact": bool(row["exact"])})


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def verified_pair_from_row(row: Row) -> VerifiedPairV1:
    return VerifiedPairV1(
        pair_id=str(row["pair_id"]),
        a=ImageRef(image_id=str(row["image_a"]), ad_id=row["ad_a"]),
        b=ImageRef(image_id=str(row["image_b"]), ad_id=row["ad_b"]),
        confidence=float(row["confidence"]),
        evidence=_evidence_from_row(row),
        versions=VersionsV1(embedding_model=row["embedding_model"], verifier=row["verifier_version"]),
        replay=row["replay"],
        verified_at=row["decided_at"],
    )


# --------------------------------------------------------------------------- clustering


async def _snapshot(conn: AsyncConnection[Any], cluster_id: str) -> ClusterSnapshot:
    cur = await conn.execute(
        "SELECT created_at FROM duplicate_clusters WHERE cluster_id = %s FOR UPDATE",
        (cluster_id,),
    )
    created = await cur.fetchone()
    assert created is not None
    cur = await conn.execute(
        "SELECT image_id::text, ad_id FROM cluster_members WHERE cluster_id = %s", (cluster_id,)
    )
    members = {row[0]: row[1] for row in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT d.image_a::text, d.image_b::text, d.confidence"
        " FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
        " WHERE m.cluster_id = %s AND d.status = 'clustered'",
        (cluster_id,),
    )
    edges = [(row[0], row[1], float(row[2])) for row in await cur.fetchall()]
    return ClusterSnapshot(cluster_id, created[0], members, edges)


async def _apply_plan(conn: AsyncConnection[Any], pair_id: str, plan: ClusterPlan) -> None:
    if plan.created:
        await conn.execute(
            "INSERT INTO duplicate_clusters (cluster_id, size, ad_count, edge_count, confidence)"
            " VALUES (%s, %s, %s, %s, %s)",
            (plan.cluster_id, plan.size, plan.ad_count, plan.edge_count, plan.confidence),
        )
    else:
        await conn.execute(
            "UPDATE duplicate_clusters SET size = %s, ad_count = %s, edge_count = %s,"
            " confidence = %s, updated_at = now() WHERE cluster_id = %s",
            (plan.size, plan.ad_count, plan.edge_count, plan.confidence, plan.cluster_id),
        )
    if plan.moved_members:
        await conn.execute(
            "INSERT INTO cluster_members (image_id, cluster_id, ad_id)"
            " SELECT u.image_id, %s, u.ad_id FROM unnest(%s::uuid[], %s::bigint[])"
            " AS u(image_id, ad_id)"
            " ON CONFLICT (image_id) DO UPDATE SET cluster_id = EXCLUDED.cluster_id",
            (plan.cluster_id, list(plan.moved_members), list(plan.moved_members.values())),
        )
    for absorbed in plan.absorbed:
        await conn.execute(
            "UPDATE duplicate_clusters SET merged_into = %s, updated_at = now() WHERE cluster_id = %s",
            (plan.cluster_id, absorbed),
        )
        await conn.execute(
            "INSERT INTO cluster_merges (absorbed, survivor, pair_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (absorbed) DO NOTHING",
            (absorbed, plan.cluster_id, pair_id),
        )


async def cluster_pair(pool: AsyncConnectionPool, pair: VerifiedPairV1) -> DuplicateEventV1 | None:
    """Add a verified pair to the clusters in one transaction; return the public event for it.

    A pair already clustered (redelivery, replay) changes nothing and yields the same event
    (same event_id), so a crash between commit and publish is repaired by the redelivery.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT status FROM duplicates WHERE pair_id = %s FOR UPDATE", (pair.pair_id,)
        )
        status_row = await cur.fetchone()
        if status_row is None or status_row[0] not in ("verified", "clustered"):
            return None
        if status_row[0] == "verified":
            cur = await conn.execute(
                "SELECT image_id::text, cluster_id::text FROM cluster_members"
                " WHERE image_id = ANY(%s::uuid[])",
                ([pair.a.image_id, pair.b.image_id],),
            )
            cluster_of = {row[0]: row[1] for row in await cur.fetchall()}
            snapshots: dict[str, ClusterSnapshot] = {}
            for cluster in sorted(set(cluster_of.values())):  # fixed lock order
                snapshots[cluster] = await _snapshot(conn, cluster)
            in_a = cluster_of.get(pair.a.image_id)
            in_b = cluster_of.get(pair.b.image_id)
            plan = plan_pair(
                ClusterPair(
                    pair.pair_id,
                    pair.a.image_id,
                    pair.a.ad_id,
                    pair.b.image_id,
                    pair.b.ad_id,
                    pair.confidence,
                ),
                snapshots[in_a] if in_a else None,
                snapshots[in_b] if in_b else None,
                new_cluster_id=ids.cluster_id_for_pair(pair.pair_id),
            )
            await _apply_plan(conn, pair.pair_id, plan)
            await conn.execute(
                "UPDATE duplicates SET status = 'clustered', clustered_at = now() WHERE pair_id = %s",
                (pair.pair_id,),
            )
        return await _duplicate_event(conn, pair)


async def _duplicate_event(conn: AsyncConnection[Any], pair: VerifiedPairV1) -> DuplicateEventV1:
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT i.image_id::text AS image_id, i.url, i.first_seen_at, a.ad_id, a.source,"
        " a.category, a.seller_id"
        " FROM images i JOIN ads a USING (ad_id) WHERE i.image_id = ANY(%s::uuid[])",
        ([pair.a.image_id, pair.b.image_id],),
    )
    sides = {row["image_id"]: row for row in await cur.fetchall()}
    cur2 = await conn.execute(
        "SELECT c.cluster_id::text, c.size, c.ad_count FROM cluster_members m"
        " JOIN duplicate_clusters c USING (cluster_id) WHERE m.image_id = %s",
        (pair.a.image_id,),
    )
    cluster_row = await cur2.fetchone()
    assert cluster_row is not None

    def ref(row: Row) -> AdRef:
        return AdRef(
            ad_id=row["ad_id"],
            source=row["source"],
            category=row["category"],
            seller_id=row["seller_id"],
            image_id=row["image_id"],
            image_url=row["url"],
            first_seen_at=row["first_seen_at"],
        )

    first, second = sorted(
        (sides[pair.a.image_id], sides[pair.b.image_id]),
        key=lambda r: (r["first_seen_at"], r["ad_id"], r["image_id"]),
    )
    return DuplicateEventV1(
        event_id=ids.duplicate_event_id(pair.pair_id, pair.versions.verifier),
        pair_id=pair.pair_id,
        confidence=min(1.0, max(0.0, pair.confidence)),
        original=ref(first),
        duplicate=ref(second),
        evidence=pair.evidence,
        cluster=ClusterRef(cluster_id=cluster_row[0], size=cluster_row[1], ad_count=cluster_row[2]),
        versions=pair.versions,
        replay=pair.replay,
        detected_at=pair.verified_at,
    )


# --------------------------------------------------------------------------- progress and redrive


@dataclass(frozen=True)
class Progress:
    events_accepted: int
    events_processing: int
    events_indexed: int
    events_dead: int
    pairs_candidate: int
    pairs_verified: int
    pairs_rejected: int
    pairs_clustered: int

    @property
    def unfinished(self) -> int:
        """Work still in flight: events not indexed or dead, pairs without a final state."""
        return self.events_accepted + self.events_processing + self.pairs_candidate + self.pairs_verified


async def progress(pool: AsyncConnectionPool) -> Progress:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) FROM ingest_events GROUP BY status")
        events: dict[str, int] = dict(await cur.fetchall())
        cur = await conn.execute("SELECT status, count(*) FROM duplicates GROUP BY status")
        pairs: dict[str, int] = dict(await cur.fetchall())
    return Progress(
        events_accepted=events.get("accepted", 0),
        events_processing=events.get("processing", 0),
        events_indexed=events.get("indexed", 0),
        events_dead=events.get("dead", 0),
        pairs_candidate=pairs.get("candidate", 0),
        pairs_verified=pairs.get("verified", 0),
        pairs_rejected=pairs.get("rejected", 0),
        pairs_clustered=pairs.get("clustered", 0),
    )


async def unfinished_events(pool: AsyncConnectionPool, limit: int = 10_000) -> list[str]:
    """Payloads of events accepted but not finished, oldest first (for redrive after a restart)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT payload::text FROM ingest_events WHERE status IN ('accepted', 'processing')"
            " ORDER BY accepted_at LIMIT %s",
            (limit,),
        )
        return [row[0] for row in await cur.fetchall()]


async def unfinished_pairs(pool: AsyncConnectionPool, limit: int = 10_000) -> list[Row]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM duplicates WHERE status IN ('candidate', 'verified') ORDER BY found_at LIMIT %s",
            (limit,),
        )
        return await cur.fetchall()
