"""Retention of rejected pairs on a real Postgres: `prune_rejected_pairs` and `imgdup prune` delete
rejected pairs decided before the retention, in batches, and nothing else; a second run deletes nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from seed import counts, seed

from imgdup.cli import main
from imgdup.store.retention import prune_rejected_pairs

ROWS = 1_000  # 580 rejected (seed.PAIR_STATES)


def _pairs(dsn: str) -> dict[str, tuple[str, int]]:
    """pair_id -> (status, whole days since the verdict)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pair_id::text, status, coalesce(extract(day FROM now() - decided_at)::int, -1)"
            " FROM duplicates"
        ).fetchall()
    return {pair: (status, days) for pair, status, days in rows}


def _moderate(dsn: str, pair_ids: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for pair_id in pair_ids:
            conn.execute(
                "INSERT INTO moderator_verdicts (pair_id, verdict, moderator)"
                " VALUES (%s, 'confirmed', 'ana')",
                (pair_id,),
            )


def test_prune_deletes_old_rejected_pairs_only(clean_db: str) -> None:
    # Verdicts from 0 to 59 days ago, in every state.
    seed(clean_db, ROWS, decided_days_ago="(i * 7) %% 60")
    before = _pairs(clean_db)
    # A moderator's verdict is kept for audit and for the quality benchmark: its pair stays.
    moderated = [p for p, (status, days) in before.items() if status == "rejected" and days > 40][:3]
    _moderate(clean_db, moderated)
    expected_gone = {
        p
        for p, (status, days) in before.items()
        if status == "rejected" and days >= 30 and p not in moderated
    }
    assert 100 < len(expected_gone) < counts(clean_db, "duplicates")["rejected"]

    deleted = prune_rejected_pairs(clean_db, retention_days=30, batch_size=40)

    after = _pairs(clean_db)
    assert deleted == len(expected_gone)
    assert set(after) == set(before) - expected_gone
    assert all(after[p] == before[p] for p in after)  # nothing else changed
    assert set(moderated) <= set(after)
    assert prune_rejected_pairs(clean_db, retention_days=30, batch_size=40) == 0  # idempotent
    assert _pairs(clean_db) == after


def test_prune_batch_statement_uses_an_index(clean_db: str) -> None:
    from imgdup.store.retention import BATCH_SQL

    seed(clean_db, 30_000, decided_days_ago="i %% 60")
    with psycopg.connect(clean_db) as conn:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + BATCH_SQL, (30, 500)).fetchall())
    assert "Seq Scan on duplicates" not in plan, plan
    assert "duplicates_rejected" in plan, plan


def test_imgdup_prune_command(
    clean_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seed(clean_db, ROWS, decided_days_ago="(i * 7) %% 60")
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("IMGDUP_DATA_DIR", str(tmp_path))  # its blob store: never the checkout's .imgdup
    monkeypatch.setenv("IMGDUP_REJECTED_PAIR_RETENTION_DAYS", "10")
    rejected = counts(clean_db, "duplicates")["rejected"]
    assert main(["prune"]) == 0
    left = counts(clean_db, "duplicates")["rejected"]
    assert 0 < left < rejected
    assert f"pruned {rejected - left} rejected pairs" in capsys.readouterr().out
    assert main(["prune"]) == 0
    assert "pruned 0 rejected pairs" in capsys.readouterr().out
