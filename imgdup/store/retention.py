"""A retention in days -> `duplicates` rows with status 'rejected' decided before it deleted, in batches."""

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
    if retention_days < 1 or batch_size < 1:
        raise ValueError("retention_days and batch_size must be positive")
    total = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            deleted = conn.execute(BATCH_SQL, (retention_days, batch_size)).rowcount
            total += deleted
            if deleted < batch_size:
                return total
