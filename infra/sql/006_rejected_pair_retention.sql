-- Rejected pairs (judged not duplicate) are kept for IMGDUP_REJECTED_PAIR_RETENTION_DAYS, then
-- `imgdup prune` deletes them in batches. This index finds the next batch without reading the
-- table; it holds only rejected pairs, the ones the retention applies to.
CREATE INDEX duplicates_rejected ON duplicates (decided_at) WHERE status = 'rejected';
