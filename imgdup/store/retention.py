"""A retention in days -> `duplicates` rows with status 'rejected' decided before it, and published
`cluster_changes` rows (the outbox) past theirs, deleted in batches."""

from __future__ import annotations

import psycopg

# One batch: the oldest rejected pairs past the retention (index duplicates_rejected, migration 006).
# Pairs a moderator gave a verdict on are kept: the verdict and its history are an audit record and
# feed the quality benchmark (they would go with the pair, ON DELETE CASCADE). SKIP LOCKED: a row the
# verifier is rewriting right now is left for the next run.
BATCH_SQL = (
    # = ANY(ARRAY(...)): the batch's ids are looked up through the primary key, never a table scan.
    "DELETE FROM duplicates WHERE pair_id = ANY(ARRAY("
    " SELECT d.pair_id FROM duplicates d"
    " WHERE d.status = 'rejected' AND d.decided_at < now() - make_interval(days => %s)"
    # An edge the clusterer has not retracted yet stays until it has (clustered_at, migration 007).
    " AND d.clustered_at IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM moderator_verdicts m WHERE m.pair_id = d.pair_id)"
    " AND NOT EXISTS (SELECT 1 FROM moderator_verdict_history h WHERE h.pair_id = d.pair_id)"
    " ORDER BY d.decided_at LIMIT %s FOR UPDATE SKIP LOCKED))"
    # Re-checked on the locked row: a replay may have made it a candidate again meanwhile.
    " AND status = 'rejected'"
)


def prune_rejected_pairs(dsn: str, *, retention_days: int, batch_size: int) -> int:
    """Delete every rejected pair decided more than `retention_days` ago; return how many went.

    Each batch is its own short transaction, so locks and WAL stay bounded whatever the backlog.
    Idempotent: a second run finds nothing. A pruned pair that a later replay proposes again is
    inserted as a candidate and verified again, like any new pair.
    """
    return _delete_in_batches(dsn, BATCH_SQL, retention_days=retention_days, batch_size=batch_size)


# One batch of the `cluster_changes` outbox: the oldest published changes past the retention. Only
# `pair_clustered` and `clusters_merged`: how many `pair_retracted` a pair had and how many
# `cluster_split` a cluster had number the next event ids (imgdup.store.changes.count), so deleting
# those would hand a later change the id of one consumers have already seen (and dedupe away). A
# merge names its absorbed cluster, absorbed once; a clustering is numbered by retractions, kept.
# Never an unpublished row. By `seq` (the primary key): the oldest rows come first.
CHANGES_BATCH_SQL = (
    "DELETE FROM cluster_changes WHERE seq = ANY(ARRAY("
    " SELECT seq FROM cluster_changes"
    " WHERE type IN ('pair_clustered', 'clusters_merged') AND published_at IS NOT NULL"
    " AND published_at < now() - make_interval(days => %s)"
    " ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED))"
)


def prune_published_changes(dsn: str, *, retention_days: int, batch_size: int) -> int:
    """Delete the published cluster changes older than `retention_days` that nothing numbers by;
    return how many went. The outbox is not the topic: a consumer rebuilding its clusters reads
    imgdup.cluster-changes.v1 (its retention is the broker's), never these rows. Short batches."""
    return _delete_in_batches(dsn, CHANGES_BATCH_SQL, retention_days=retention_days, batch_size=batch_size)


def _delete_in_batches(dsn: str, batch_sql: str, *, retention_days: int, batch_size: int) -> int:
    """Run one batch statement (parameters: retention days, batch size) until a batch comes back
    short, each batch its own autocommitted transaction; return how many rows went."""
    if retention_days < 1 or batch_size < 1:
        raise ValueError("retention_days and batch_size must be positive")
    total = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            deleted = conn.execute(batch_sql, (retention_days, batch_size)).rowcount
            total += deleted
            if deleted < batch_size:
                return total
