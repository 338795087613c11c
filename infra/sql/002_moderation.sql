-- Moderator verdicts on duplicate pairs: the human answer to "is this really the same photo?".
-- One current verdict per pair (an upsert: the latest verdict wins); every change is also kept
-- in moderator_verdict_history for audit. A 'not_duplicate' verdict overrides the verifier in
-- what the admin API presents; 'confirmed' and 'not_duplicate' both feed the quality benchmark.

CREATE TABLE moderator_verdicts (
    pair_id     uuid PRIMARY KEY REFERENCES duplicates (pair_id) ON DELETE CASCADE,
    verdict     text        NOT NULL CHECK (verdict IN ('confirmed', 'not_duplicate')),
    moderator   text        NOT NULL CHECK (length(moderator) BETWEEN 1 AND 200),
    note        text        CHECK (length(note) <= 2000),
    decided_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderator_verdicts_rejected ON moderator_verdicts (pair_id) WHERE verdict = 'not_duplicate';

CREATE TABLE moderator_verdict_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pair_id     uuid        NOT NULL REFERENCES duplicates (pair_id) ON DELETE CASCADE,
    verdict     text        NOT NULL,
    moderator   text        NOT NULL,
    note        text,
    decided_at  timestamptz NOT NULL
);
CREATE INDEX moderator_verdict_history_pair ON moderator_verdict_history (pair_id, id);
