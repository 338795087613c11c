-- The per-ad pair counts (GET /api/v1/ads/{ad_id}) filter on ad_a OR ad_b whatever the verdict;
-- the partial indexes of 001 only cover duplicates. Measured in bench/results/scaling.md.
CREATE INDEX duplicates_ad_a_all ON duplicates (ad_a);
CREATE INDEX duplicates_ad_b_all ON duplicates (ad_b);
