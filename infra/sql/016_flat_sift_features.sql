-- A flat picture's second SIFT features (issue 11, fused-v22's second alignment of flat pictures;
-- imgdup_core.sift.stored_flat_features, flat_to_bytes): the low-contrast features of a stored copy
-- with fewer than 50 keypoints, extracted once when the image is indexed instead of for every
-- candidate pair that aligns nowhere (a decode, a grey copy and a SIFT pass per pair). In the blob
-- store like the other features (migration 009; the bytea columns only keep BLOB_COLUMNS uniform and
-- stay NULL). NULL for a picture with keypoints enough, for a verifier without the second alignment,
-- and for rows of before this migration: the verifier then extracts them per pair, as fused-v18 did.
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS flat_sift bytea;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS flat_sift_sha256 text;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS flat_sift_size integer;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_flat_sift bytea;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_flat_sift_sha256 text;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_flat_sift_size integer;
-- For the orphan collector (imgdup/store/blob_gc.py), as migration 009's.
CREATE INDEX IF NOT EXISTS image_blobs_flat_sift_sha256 ON image_blobs (flat_sift_sha256)
    WHERE flat_sift_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS image_blobs_photo_flat_sift_sha256 ON image_blobs (photo_flat_sift_sha256)
    WHERE photo_flat_sift_sha256 IS NOT NULL;
