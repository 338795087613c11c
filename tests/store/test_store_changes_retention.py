"""Retention of the `cluster_changes` outbox on a real Postgres: `prune_published_changes` and
`imgdup prune` delete published changes older than the retention, in batches; never an unpublished
one, and never one whose count numbers the next event ids (a pair's retractions, a cluster's splits)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from imgdup.cli import main
from imgdup.store.retention import prune_published_changes

TYPES = ("pair_clustered", "pair_retracted", "clusters_merged", "cluster_split")
# Days since publication; None: never published (created 90 days ago, its publisher died).
AGES = (None, 0, 5, 29, 31, 45, 90)


def _seed(dsn: str) -> None:
    """Each type at each age, three times: 84 changes (make_interval(NULL) leaves one unpublished)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(3):
            for kind in TYPES:
                for age in AGES:
                    conn.execute(
                        "INSERT INTO cluster_changes (event_id, type, pair_id, cluster_id, message_key,"
                        " payload, created_at, published_at)"
                        " VALUES (%s, %s, %s, %s, '1', '{}', now() - interval '90 days',"
                        " now() - make_interval(days => %s))",
                        (uuid.uuid4(), kind, uuid.uuid4(), uuid.uuid4(), age),
                    )


def _left(dsn: str) -> set[tuple[str, int | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT type, extract(day FROM now() - published_at)::int FROM cluster_changes"
        ).fetchall()
    return {(kind, age) for kind, age in rows}


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM cluster_changes").fetchone()
    return int(row[0]) if row else 0


def test_prune_deletes_old_published_changes_only(clean_db: str) -> None:
    _seed(clean_db)
    assert _count(clean_db) == 84
    gone = {(kind, age) for kind in ("pair_clustered", "clusters_merged") for age in (31, 45, 90)}

    deleted = prune_published_changes(clean_db, retention_days=30, batch_size=4)

    assert deleted == 3 * len(gone)
    assert _left(clean_db) == {(kind, age) for kind in TYPES for age in AGES} - gone
    assert _count(clean_db) == 84 - deleted
    assert prune_published_changes(clean_db, retention_days=30, batch_size=4) == 0  # idempotent


def test_imgdup_prune_command_prunes_the_outbox(
    clean_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _seed(clean_db)
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("IMGDUP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IMGDUP_CLUSTER_CHANGES_RETENTION_DAYS", "3")
    assert main(["prune"]) == 0
    # pair_clustered and clusters_merged published 5 days ago or more: 2 types x 5 ages x 3.
    assert "pruned 30 published cluster changes" in capsys.readouterr().out
    assert _count(clean_db) == 84 - 30
    assert main(["prune"]) == 0
    assert "pruned 0 published cluster changes" in capsys.readouterr().out
