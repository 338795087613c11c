"""Candidate pairs and verdicts <-> `duplicates` rows (one row per unordered image pair, from candidate to
verdict to cluster), and the one mapping between a row's columns and the evidence model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup.store.db import single_statement
from schemas import EvidenceV1, ImageRef, VerifiedPairV1, VersionsV1

Row = dict[str, Any]

# One evidence shape end to end: EvidenceV1's fields are the `duplicates` table's columns of the
# same names, except the embedding cosine, which the row holds as the candidate's `cosine`.
EVIDENCE_COLUMNS: dict[str, str] = {
    field: "cosine" if field == "embedding_cosine" else field for field in EvidenceV1.model_fields
}
# Written with a verdict (the cosine was written with the candidate).
_VERDICT_COLUMNS = [column for column in EVIDENCE_COLUMNS.values() if column != "cosine"]


def evidence_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `duplicates` row's evidence columns under EvidenceV1's field names (None where the pair
    is undecided or was decided by an older verifier); events, the API and admin page serve these."""
    return {field: row.get(column) for field, column in EVIDENCE_COLUMNS.items()}


def evidence_from_row(row: Mapping[str, Any]) -> EvidenceV1:
    return EvidenceV1(**{**evidence_fields(row), "exact": bool(row.get("exact"))})


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
    # One statement, atomic on its own (no BEGIN and COMMIT round trips): the upsert, then each
    # pair's status, from the upsert's RETURNING where it wrote the row, else from the snapshot the
    # statement started with.
    async with single_statement(pool) as conn:
        cur = await conn.execute(
            "WITH w AS (INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, cosine, replay)"
            " SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::bigint[],"
            " %s::bigint[], %s::real[], %s::bool[])"
            " AS u(pair_id, image_a, image_b, ad_a, ad_b, cosine, replay)"
            # A vector point whose Postgres row is gone (a reset database) is not a candidate.
            " WHERE EXISTS (SELECT 1 FROM images i WHERE i.image_id = u.image_a)"
            " AND EXISTS (SELECT 1 FROM images i WHERE i.image_id = u.image_b)"
            " ON CONFLICT (pair_id) DO UPDATE SET status = 'candidate', replay = true,"
            " cosine = EXCLUDED.cosine"
            " WHERE EXCLUDED.replay AND duplicates.status IN ('rejected', 'verified', 'clustered')"
            " AND duplicates.verifier_version IS DISTINCT FROM %s"
            " RETURNING pair_id, status)"
            " SELECT p.pair_id::text, coalesce(w.status, d.status)"
            " FROM unnest(%s::uuid[]) AS p(pair_id) LEFT JOIN w USING (pair_id)"
            " LEFT JOIN duplicates d ON w.pair_id IS NULL AND d.pair_id = p.pair_id",
            (
                pair_ids,
                [p.image_a for p in pairs],
                [p.image_b for p in pairs],
                [p.ad_a for p in pairs],
                [p.ad_b for p in pairs],
                [p.cosine for p in pairs],
                [p.replay for p in pairs],
                verifier_version,
                pair_ids,
            ),
        )
        status = {str(pair): state for pair, state in await cur.fetchall()}
        if None in status.values():
            # No row in the statement's snapshot and none written by it: a pair whose images are
            # gone, or one another ad's delivery inserted meanwhile (this insert then did nothing).
            # Read again, as a statement of its own sees it.
            cur = await conn.execute(
                "SELECT pair_id::text, status FROM duplicates WHERE pair_id = ANY(%s::uuid[])", (pair_ids,)
            )
            status = {str(pair): state for pair, state in await cur.fetchall()}
    return {pair for pair, state in status.items() if state == "candidate"}


@dataclass(frozen=True)
class VerdictRow:
    pair_id: str
    is_duplicate: bool
    confidence: float
    evidence: EvidenceV1
    versions: VersionsV1


_SAVE_VERDICT = (
    "UPDATE duplicates SET status = CASE WHEN %(is_duplicate)s THEN 'verified' ELSE 'rejected' END,"
    " is_duplicate = %(is_duplicate)s, confidence = %(confidence)s, "
    + ", ".join(f"{column} = %({column})s" for column in _VERDICT_COLUMNS)
    + ", embedding_model = %(embedding_model)s, verifier_version = %(verifier_version)s,"
    " decided_at = now() WHERE pair_id = %(pair_id)s AND status = 'candidate' RETURNING *,"
    # rejected_needs_review's question, answered by the same statement.
    " EXISTS (SELECT 1 FROM moderator_verdicts v WHERE v.pair_id = duplicates.pair_id)"
    " AS moderated"
)


@dataclass(frozen=True)
class SavedVerdict:
    """What recording a verdict hands back: the verified pair for the clusterer (a duplicate not yet
    clustered), and for a pair rejected now whether the clusterer must review it
    (rejected_needs_review); None when the pair was decided before (a redelivery): not known."""

    verified: VerifiedPairV1 | None
    needs_review: bool | None


async def save_verdict(pool: AsyncConnectionPool, verdict: VerdictRow) -> VerifiedPairV1 | None:
    """Record the verdict of a candidate (first verdict wins for a pair already decided).

    Returns the verified pair to hand to the clusterer when the stored verdict is a duplicate
    not yet clustered, also on redelivery, so a crash between commit and publish loses nothing.
    """
    return (await record_verdict(pool, verdict)).verified


async def record_verdict(pool: AsyncConnectionPool, verdict: VerdictRow) -> SavedVerdict:
    """save_verdict, also telling whether a pair rejected now needs review: one statement where
    the verifier took two (each with its BEGIN and ROLLBACK) for every rejected candidate."""
    evidence = verdict.evidence.model_dump()
    params: dict[str, Any] = {
        column: evidence[field] for field, column in EVIDENCE_COLUMNS.items() if column != "cosine"
    }
    params |= {
        "pair_id": verdict.pair_id,
        "is_duplicate": verdict.is_duplicate,
        "confidence": verdict.confidence,
        "embedding_model": verdict.versions.embedding_model,
        "verifier_version": verdict.versions.verifier,
    }
    async with single_statement(pool) as conn:
        # A cursor-level row factory: setting it on the connection would leak into the pool.
        cur = await conn.cursor(row_factory=dict_row).execute(_SAVE_VERDICT, params)
        row = await cur.fetchone()
    if row is None:
        # Decided before (a redelivery): hand on the stored verdict if it is a duplicate not
        # yet clustered.
        return SavedVerdict(await verified_pair(pool, verdict.pair_id), None)
    if row["status"] == "verified":
        return SavedVerdict(verified_pair_from_row(row), False)
    return SavedVerdict(None, row["clustered_at"] is not None or bool(row["moderated"]))


async def verified_pair(pool: AsyncConnectionPool, pair_id: str) -> VerifiedPairV1 | None:
    async with single_statement(pool) as conn:  # one read: no BEGIN and COMMIT round trips
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM duplicates WHERE pair_id = %s AND status = 'verified'", (pair_id,)
        )
        row = await cur.fetchone()
    return verified_pair_from_row(row) if row else None


async def rejected_needs_review(pool: AsyncConnectionPool, pair_id: str) -> bool:
    """A rejected pair the clusterer must look at again: it is still an edge of a cluster (the
    verifier rejected it on re-verification), or a moderator has a verdict on it (that wins).
    One read in autocommit: no BEGIN and COMMIT round trips (it used to take three)."""
    async with single_statement(pool) as conn:
        cur = await conn.execute(
            "SELECT d.clustered_at IS NOT NULL OR v.pair_id IS NOT NULL FROM duplicates d"
            " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
            " WHERE d.pair_id = %s AND d.status = 'rejected'",
            (pair_id,),
        )
        row = await cur.fetchone()
    return bool(row and row[0])


def verified_pair_from_row(row: Row) -> VerifiedPairV1:
    return VerifiedPairV1(
        pair_id=str(row["pair_id"]),
        a=ImageRef(image_id=str(row["image_a"]), ad_id=row["ad_a"]),
        b=ImageRef(image_id=str(row["image_b"]), ad_id=row["ad_b"]),
        confidence=float(row["confidence"]),
        evidence=evidence_from_row(row),
        versions=VersionsV1(embedding_model=row["embedding_model"], verifier=row["verifier_version"]),
        replay=row["replay"],
        verified_at=row["decided_at"],
    )


async def unfinished_pairs(pool: AsyncConnectionPool, limit: int = 10_000) -> list[Row]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM duplicates WHERE status IN ('candidate', 'verified') ORDER BY found_at LIMIT %s",
            (limit,),
        )
        return await cur.fetchall()
