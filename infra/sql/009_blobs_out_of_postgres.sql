-- Stored copies and SIFT features leave Postgres for the blob store (imgdup.blobs: files under the
-- data dir, or an S3-compatible bucket): ~70-160 KB of bytea an image, ~1 TB a day at a large
-- portal's volume, in the database that also serves the API. A row keeps each blob's content
-- address (sha256, hex) and size; the blob store keeps the bytes under that address.
--
-- SQL cannot write to a blob store: this migration only adds the columns. Rows written before it
-- keep their bytea, and every reader falls back to it while a blob column is NULL;
-- `imgdup migrate-blobs` copies them to the blob store and NULLs the bytea, in batches (idempotent,
-- resumable). Run VACUUM on image_blobs after it so Postgres reuses the freed TOAST pages.
ALTER TABLE image_blobs ALTER COLUMN jpeg DROP NOT NULL;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS jpeg_sha256 text;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS jpeg_size integer;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_jpeg_sha256 text;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_jpeg_size integer;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS sift_sha256 text;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS sift_size integer;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_sift_sha256 text;
ALTER TABLE image_blobs ADD COLUMN IF NOT EXISTS photo_sift_size integer;
-- Every image keeps its reduced copy somewhere. NOT VALID: the rows before this migration all have
-- their bytea (jpeg was NOT NULL), so there is nothing to check and no reason to scan the table.
ALTER TABLE image_blobs ADD CONSTRAINT image_blobs_jpeg_somewhere
    CHECK (jpeg IS NOT NULL OR jpeg_sha256 IS NOT NULL) NOT VALID;
-- The orphan collector (`imgdup prune`, imgdup/store/blob_gc.py) asks, per stored blob, whether any
-- row still refers to it. Blobs are content-addressed and shared (the same bytes in two ads are one
-- blob), so a deleted row never deletes its blobs itself.
CREATE INDEX IF NOT EXISTS image_blobs_jpeg_sha256 ON image_blobs (jpeg_sha256);
CREATE INDEX IF NOT EXISTS image_blobs_sift_sha256 ON image_blobs (sift_sha256);
CREATE INDEX IF NOT EXISTS image_blobs_photo_jpeg_sha256 ON image_blobs (photo_jpeg_sha256)
    WHERE photo_jpeg_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS image_blobs_photo_sift_sha256 ON image_blobs (photo_sift_sha256)
    WHERE photo_sift_sha256 IS NOT NULL;
