-- Held bridges (issue 11, imgdup_core/bridges.py): a verified pair whose images sit in two different
-- established clusters, too weak on its own to merge them, stays a duplicate pair (status
-- 'clustered', is_duplicate) but no edge (clustered_at NULL) while held_at is set. The clusterer
-- looks up the held pairs between two clusters whenever a new edge or verdict arrives between them,
-- and those inside one cluster after a merge; both partial indexes stay as small as the held set.
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS held_at timestamptz;
CREATE INDEX IF NOT EXISTS duplicates_held_a ON duplicates (image_a) WHERE held_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS duplicates_held_b ON duplicates (image_b) WHERE held_at IS NOT NULL;
