-- How evenly an aligned pair's disagreement is spread over the picture (issue 11, fused-v14's overlay
-- rule; imgdup_core.similarity.disagreement_evenness): the evidence column of EvidenceV1's field of the
-- same name. NULL for verdicts of earlier verifiers, which do not measure it, and where nothing aligned.
ALTER TABLE duplicates ADD COLUMN IF NOT EXISTS mismatch_evenness real;
