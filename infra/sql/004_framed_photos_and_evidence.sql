-- Framed photos (imgdup_core.framing): a screenshot or bordered copy keeps the box of the photo
-- inside it, that photo's embedding and its reduced copy for the verifier. NULL for ordinary
-- photos and for images indexed before this migration (re-process them with `imgdup replay`).
ALTER TABLE images ADD COLUMN IF NOT EXISTS photo_box integer[];        -- x0, y0, x1, y1 in decoded pixels
ALTER TABLE images ADD COLUMN IF NOT EXISTS photo_embedding bytea;      -- float32 little-endian
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_jpeg bytea;

-- The rest of the verifier's evidence (fused-v3): the fused probability the decision
-- thresholds, SIFT ratio-test matches, aligned overlap and mismatch, and which pictures were
-- compared ("full/full", "photo/full", ...). NULL for verdicts of earlier verifier versions.
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS score real;
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS sift_matches integer;
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS overlap real;
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS mismatch real;
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS compared text;
