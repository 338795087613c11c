-- The SIFT features of each stored copy (imgdup_core.verify.sift_to_bytes: ~136 bytes per
-- keypoint, at most 1,000 keypoints, ~70 KB for a typical photo), extracted once when the image
-- is indexed. Extracting them was ~60 ms of CPU per image for every candidate pair the image
-- was in; the verifier now reads them instead. NULL for images indexed before this migration
-- (the verifier extracts those on the fly) and for images that frame no photo (photo_sift).
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS sift bytea;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_sift bytea;
