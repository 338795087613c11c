-- The pHash candidate channel (issue 11, imgdup/store/phash.py): images whose pHash is within a
-- few bits of an indexed image's are proposed as candidates whatever their embedding cosine (a
-- heavy tiled watermark drops SSCD's cosine to the original under the ANN cut-off while pHash
-- stays close). Multi-index hashing: the 64 bits in eight 8-bit bands, one expression index per
-- band; two hashes within 7 bits share at least one band exactly (pigeonhole), so a query reads
-- eight index ranges of about N/256 rows each and checks the full distance on those.
CREATE INDEX IF NOT EXISTS images_phash_band0 ON images (((phash >> 56) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band1 ON images (((phash >> 48) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band2 ON images (((phash >> 40) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band3 ON images (((phash >> 32) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band4 ON images (((phash >> 24) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band5 ON images (((phash >> 16) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band6 ON images (((phash >> 8) & 255)) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS images_phash_band7 ON images ((phash & 255)) WHERE phash IS NOT NULL;
