-- The share of an aligned pair's textured overlap that disagrees in place but agrees once displaced
-- locally (issue 11, fused-v24; imgdup_core.parallax.moved_share): the evidence column of EvidenceV1's
-- field of the same name. NULL for verdicts of earlier verifiers, where nothing aligned, and where the
-- pair's disagreement stayed under the verifier's parallax_min_mismatch.
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS moved real;
