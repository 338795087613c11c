-- The share of the larger picture that the other covers once aligned (issue 11, fused-v15's aligned-copy
-- rule; imgdup_core.geometry.plausible_shares): the evidence column of EvidenceV1's field of the same name.
-- NULL for verdicts of earlier verifiers' rows written before it, and where nothing aligned.
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS coverage real;
