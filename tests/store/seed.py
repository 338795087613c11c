"""Many `ingest_events` and `duplicates` rows in every state, written by one SQL statement each."""

from __future__ import annotations

import psycopg

# Out of every 100 events: 1 accepted, 1 processing, 1 dead, 97 indexed. Out of every 100 pairs:
# 1 candidate, 1 verified, 58 rejected, 40 clustered.
EVENT_STATES = (
    "CASE i %% 100 WHEN 0 THEN 'accepted' WHEN 1 THEN 'processing' WHEN 2 THEN 'dead' ELSE 'indexed' END"
)
PAIR_STATES = (
    "CASE WHEN i %% 100 = 0 THEN 'candidate' WHEN i %% 100 = 1 THEN 'verified'"
    " WHEN i %% 100 < 60 THEN 'rejected' ELSE 'clustered' END"
)


def seed(dsn: str, rows: int, *, decided_days_ago: str = "0") -> None:
    """`rows` events and `rows` pairs (between the same two images), analysed. `decided_days_ago` is
    an SQL expression of `i`: how many days before now each pair's verdict was given."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ingest_events (event_id, ad_id, payload, status)"
            f" SELECT 'evt-' || i, i, '{{}}'::jsonb, {EVENT_STATES} FROM generate_series(1, %s) AS i",
            (rows,),
        )
        conn.execute("INSERT INTO ads (ad_id, source, last_event_id) VALUES (1, 'test', 'evt-1')")
        conn.execute(
            "INSERT INTO images (image_id, ad_id, url, position) VALUES"
            " ('00000000-0000-0000-0000-00000000000a', 1, 'https://a.example/a.jpg', 0),"
            " ('00000000-0000-0000-0000-00000000000b', 1, 'https://a.example/b.jpg', 1)"
        )
        conn.execute(
            "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, cosine, status, decided_at)"
            " SELECT md5(i::text)::uuid, '00000000-0000-0000-0000-00000000000a',"
            " '00000000-0000-0000-0000-00000000000b', 1, 1, 0.9, s.status,"
            " CASE WHEN s.status = 'candidate' THEN NULL"
            f" ELSE now() - make_interval(days => {decided_days_ago}) END"
            f" FROM generate_series(1, %s) AS i, LATERAL (SELECT {PAIR_STATES} AS status) AS s",
            (rows,),
        )
        conn.execute("ANALYZE ingest_events")
        conn.execute("ANALYZE duplicates")


def counts(dsn: str, table: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall())
