-- The portal's created_at of each ad (ad.images.created `created_at`; the API's accept time when an
-- ingest body leaves it out). Which side of a duplicate pair is the original is decided by it, not
-- by when imgdup happened to insert the row: a backfill into a fresh database sees ads in any
-- order and must not flip originals. The earliest value seen wins (a re-sent or re-created event
-- does not make an ad younger). NULL for ads stored before this migration: those fall back to
-- images.first_seen_at until a replay carries the portal's value.
ALTER TABLE ads ADD COLUMN IF NOT EXISTS created_at timestamptz;
