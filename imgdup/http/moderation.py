"""Moderators' clicks and Postgres rows -> verdicts on duplicate pairs, and the admin page's read
models: clusters with per-pair evidence and verdicts, one pair in detail, and `/admin` itself.

A moderator's verdict overrides the verifier wherever this module presents duplicates: a pair
marked `not_duplicate` is never shown as a duplicate (it is marked, or left out on request), and
an image whose every duplicate pair was rejected is shown as detached from its cluster.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from imgdup.store import queries, repository

STATIC_DIR = Path(__file__).resolve().parent / "static"
Verdict = Literal["confirmed", "not_duplicate"]
Row = dict[str, Any]

# The admin page loads nothing from elsewhere: scripts, styles and images come from this API.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def require_token(request: Request) -> None:
    """The API's bearer-token guard (`app.state.require_token`), looked up per request."""
    request.app.state.require_token(request)


router = APIRouter(tags=["moderation"])


# --------------------------------------------------------------------------- models


class VerdictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"verdict": "not_duplicate", "moderator": "ana", "note": "same model, other car"}]
        },
    )

    verdict: Verdict
    moderator: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    note: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=2000)] = None


class ModeratorVerdict(BaseModel):
    verdict: Verdict
    moderator: str
    note: str | None
    decided_at: AwareDatetime


class VerdictStored(ModeratorVerdict):
    pair_id: str
    changed: bool = Field(description="False when the same verdict, moderator and note were already stored")


class Evidence(BaseModel):
    phash_distance: int | None
    phash_mirrored: bool | None
    embedding_cosine: float
    sift_inliers: int | None
    sift_mirrored: bool | None
    ssim: float | None
    exact: bool | None
    score: float | None = Field(None, description="Fused probability of a duplicate (fused-v3 and later)")
    sift_matches: int | None = None
    overlap: float | None = None
    mismatch: float | None = None
    compared: str | None = Field(
        None, description="Pictures compared, a's/b's: 'full' or 'photo' (the photo a screenshot frames)"
    )


class PairImage(BaseModel):
    image_id: str
    url: str
    ad_id: int
    source: str
    category: str | None
    seller_id: str | None
    first_seen_at: AwareDatetime
    width: int | None
    height: int | None
    thumbnail_url: str


class PairDetail(BaseModel):
    pair_id: str
    status: str = Field(description="Pipeline state: candidate, rejected, verified or clustered")
    verifier_duplicate: bool | None = Field(description="The verifier's verdict (None while a candidate)")
    duplicate: bool = Field(
        description="What the API presents: a moderator's verdict overrides the verifier's"
    )
    confidence: float | None
    evidence: Evidence
    versions: dict[str, str | None]
    cluster_id: str | None
    found_at: AwareDatetime
    decided_at: AwareDatetime | None
    images: list[PairImage]
    moderator_verdict: ModeratorVerdict | None
    history: list[ModeratorVerdict]


# --------------------------------------------------------------------------- queries


def _evidence(row: Row) -> Evidence:
    return Evidence(**repository.evidence_fields(row))


def _thumbnail(image_id: str) -> str:
    return f"/api/v1/images/{image_id}/thumbnail"


def _verdict_of(row: Row) -> ModeratorVerdict | None:
    if row.get("verdict") is None:
        return None
    return ModeratorVerdict(
        verdict=row["verdict"],
        moderator=row["moderator"],
        note=row["note"],
        decided_at=row["verdict_at"],
    )


def _effective(is_duplicate: bool | None, verdict: str | None) -> bool:
    if verdict is not None:
        return verdict == "confirmed"
    return bool(is_duplicate)


async def record_verdict(
    pool: AsyncConnectionPool, pair_id: str, body: VerdictRequest
) -> VerdictStored | None:
    """Upsert the pair's verdict (latest wins; the same verdict again changes nothing).

    None when the pair is unknown.
    """
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
            {"pair": pair_id, "verdict": body.verdict, "moderator": body.moderator, "note": body.note},
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
    return VerdictStored(**row, changed=changed)


async def moderated_truth(pool: AsyncConnectionPool) -> list[tuple[str, str]]:
    """Every pair a moderator decided on, as (pair_id, 'confirmed' | 'not_duplicate'), by pair_id:
    the human feedback the quality benchmark scores the pipeline against."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pair_id::text, verdict FROM moderator_verdicts ORDER BY pair_id")
        return [(str(pair), str(verdict)) for pair, verdict in await cur.fetchall()]


async def pair_detail(pool: AsyncConnectionPool, pair_id: str) -> PairDetail | None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT d.*, m.cluster_id::text AS cluster_id, v.verdict, v.moderator, v.note,"
            " v.decided_at AS verdict_at"
            " FROM duplicates d"
            " LEFT JOIN cluster_members m ON m.image_id = d.image_a AND d.status = 'clustered'"
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
        history = [ModeratorVerdict(**row) for row in await cur.fetchall()]
    images = [
        PairImage(**sides[str(image)], thumbnail_url=_thumbnail(str(image)))
        for image in (pair["image_a"], pair["image_b"])
        if str(image) in sides
    ]
    return PairDetail(
        pair_id=str(pair["pair_id"]),
        status=pair["status"],
        verifier_duplicate=pair["is_duplicate"],
        duplicate=_effective(pair["is_duplicate"], pair["verdict"]),
        confidence=pair["confidence"],
        evidence=_evidence(pair),
        versions={"embedding_model": pair["embedding_model"], "verifier": pair["verifier_version"]},
        cluster_id=pair["cluster_id"],
        found_at=pair["found_at"],
        decided_at=pair["decided_at"],
        images=images,
        moderator_verdict=_verdict_of(pair),
        history=history,
    )


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
) -> dict[str, Any]:
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
        "until": _day_start(until + timedelta(days=1)) if until else None,
        "hide": not include_rejected,
        "limit": limit,
        "offset": offset,
    }
    where = (
        " WHERE c.merged_into IS NULL"
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
        "   WHERE m.cluster_id = c.cluster_id AND d.status = 'clustered' AND NOT EXISTS ("
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
        await cur.execute(
            "SELECT m.cluster_id::text AS cluster_id, d.pair_id::text AS pair_id,"
            " d.image_a::text AS image_a, d.image_b::text AS image_b, d.ad_a, d.ad_b, d.status,"
            " d.is_duplicate, d.confidence, d.cosine, d.phash_distance, d.phash_mirrored,"
            " d.sift_inliers, d.sift_mirrored, d.ssim, d.exact, d.decided_at, d.score,"
            " d.sift_matches, d.overlap, d.mismatch, d.compared,"
            " v.verdict, v.moderator, v.note, v.decided_at AS verdict_at"
            " FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
            " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
            " WHERE m.cluster_id = ANY(%s::uuid[]) AND d.status = 'clustered'"
            " ORDER BY d.confidence DESC, d.pair_id",
            (ids,),
        )
        pairs = await cur.fetchall()

    for cluster in clusters:
        cid = cluster["cluster_id"]
        images = [
            {**{k: v for k, v in m.items() if k != "cluster_id"}, "thumbnail_url": _thumbnail(m["image_id"])}
            for m in members
            if m["cluster_id"] == cid
        ]
        cluster_pairs = []
        for p in pairs:
            if p["cluster_id"] != cid:
                continue
            verdict = _verdict_of(p)
            cluster_pairs.append(
                {
                    "pair_id": p["pair_id"],
                    "image_a": p["image_a"],
                    "image_b": p["image_b"],
                    "ad_a": p["ad_a"],
                    "ad_b": p["ad_b"],
                    "status": p["status"],
                    "confidence": p["confidence"],
                    "evidence": _evidence(p).model_dump(),
                    "decided_at": p["decided_at"],
                    "duplicate": _effective(p["is_duplicate"], p["verdict"]),
                    "moderator_verdict": verdict.model_dump() if verdict else None,
                }
            )
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


def _verdict_name(pair: dict[str, Any]) -> str | None:
    verdict = pair["moderator_verdict"]
    return None if verdict is None else str(verdict["verdict"])


async def moderated_duplicates_of_ad(pool: AsyncConnectionPool, ad_id: int) -> list[dict[str, Any]]:
    """`queries.duplicates_of_ad` with moderators' verdicts applied: each pair carries its
    `moderator_verdict`; pairs marked `not_duplicate` are left out, and so are ads left with none."""
    entries = await queries.duplicates_of_ad(pool, ad_id)
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
            if verdict is not None and verdict.verdict == "not_duplicate":
                continue
            kept.append({**pair, "moderator_verdict": verdict.model_dump() if verdict else None})
        if kept:
            similarity = max(float(p["confidence"]) for p in kept)
            kept_entries.append({**entry, "similarity": similarity, "pairs": kept})
    return sorted(kept_entries, key=lambda e: (-e["similarity"], e["ad_id"]))


# --------------------------------------------------------------------------- endpoints


@router.post(
    "/api/v1/pairs/{pair_id}/verdict",
    response_model=VerdictStored,
    dependencies=[Depends(require_token)],
    summary="Record a moderator's verdict on a pair (latest wins; repeating it changes nothing)",
    responses={404: {"description": "Unknown pair"}, 401: {"description": "Missing or wrong API token"}},
)
async def post_verdict(pair_id: uuid.UUID, body: VerdictRequest, request: Request) -> VerdictStored:
    stored = await record_verdict(request.app.state.pool, str(pair_id), body)
    if stored is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} is unknown")
    return stored


@router.get(
    "/api/v1/pairs/{pair_id}",
    response_model=PairDetail,
    summary="One pair: both images, the verifier's evidence and the moderator's verdict",
    responses={404: {"description": "Unknown pair"}},
)
async def get_pair(pair_id: uuid.UUID, request: Request) -> PairDetail:
    detail = await pair_detail(request.app.state.pool, str(pair_id))
    if detail is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} is unknown")
    return detail


@router.get("/api/v1/admin/clusters", summary="Clusters for the admin page, with evidence and verdicts")
async def get_admin_clusters(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    ad_id: Annotated[int | None, Query(ge=1, description="Only clusters with an image of this ad")] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[date | None, Query(description="First day (UTC) an image was first seen")] = None,
    until: Annotated[date | None, Query(description="Last day (UTC), inclusive")] = None,
    include_rejected: Annotated[
        bool, Query(description="Show (marked) the pairs moderators rejected, instead of leaving them out")
    ] = True,
) -> dict[str, Any]:
    return await admin_clusters(
        request.app.state.pool,
        limit=limit,
        offset=offset,
        ad_id=ad_id,
        category=category or None,
        source=source or None,
        since=since,
        until=until,
        include_rejected=include_rejected,
    )


@router.get(
    "/api/v1/admin/duplicates/{ad_id}",
    summary="Ads sharing duplicate images with this ad, moderators' verdicts applied",
)
async def get_moderated_duplicates(ad_id: int, request: Request) -> dict[str, Any]:
    others = await moderated_duplicates_of_ad(request.app.state.pool, ad_id)
    return {"ad_id": ad_id, "duplicates": others}


@router.get("/admin", include_in_schema=False)
async def admin_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "admin.html", media_type="text/html", headers=_PAGE_HEADERS)


router.mount("/admin/static", StaticFiles(directory=STATIC_DIR), name="admin-static")
