"""A Postgres DSN in; every imgdup table in that database emptied out."""

from __future__ import annotations

import psycopg

TABLES = (
    "cluster_changes",
    "cluster_splits",
    "cluster_merges",
    "cluster_members",
    "duplicate_clusters",
    "duplicates",
    "image_blobs",
    "images",
    "ads",
    "ingest_events",
)


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
