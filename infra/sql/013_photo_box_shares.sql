-- The framed photo's box as shares of the picture (x0, y0, x1, y1 in 0..1; imgdup_core.framing
-- Region.shares), filled at indexing (issue 11). images.photo_box holds the box in the pixels of
-- the capped decode the frame finder ran on while width/height are the original's size, so no
-- share can be computed reliably from those; with this column the verifier (fused-v8 and later)
-- reads the box instead of running the frame finder again on the stored copy for every pair
-- (~6-12 ms each). NULL for images indexed before this migration (the verifier runs the finder,
-- as before) and for images that frame no photo.
ALTER TABLE images ADD COLUMN IF NOT EXISTS photo_box_share double precision[];
