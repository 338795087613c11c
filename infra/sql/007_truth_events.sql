-- Every change of truth (issue 15). A cluster's edges are the pairs with clustered_at set: a replay
-- resets a clustered pair's status to 'candidate' while it is verified again, and its edge must stay
-- until the clusterer retracts it (a lost edge left clusters "not connected" and wedged the clusterer).
CREATE INDEX duplicates_edges_a ON duplicates (image_a) WHERE clustered_at IS NOT NULL;
-- Edges the verifier rejected on re-verification, until the clusterer retracts them (`imgdup wait`).
CREATE INDEX duplicates_unsettled ON duplicates (pair_id) WHERE clustered_at IS NOT NULL AND status = 'rejected';

-- A cluster whose last edge was retracted: no member left, not live, its id never reused.
ALTER TABLE duplicate_clusters ADD COLUMN dissolved_at timestamptz;

-- A cluster that lost an edge and fell apart: the largest piece keeps cluster_id (unless it
-- dissolved), the other pieces are new clusters, images left without an edge leave.
CREATE TABLE cluster_splits (
    split_id     uuid PRIMARY KEY,  -- the event_id of the cluster_split event
    cluster_id   uuid        NOT NULL REFERENCES duplicate_clusters (cluster_id),
    pair_id      uuid        NOT NULL,  -- the retracted pair
    pieces       uuid[]      NOT NULL,  -- the new clusters split off
    left_images  uuid[]      NOT NULL,
    split_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cluster_splits_cluster ON cluster_splits (cluster_id);

-- The outbox of imgdup.cluster-changes.v1, written in the clusterer's transaction: seq is the one
-- order of cluster truth; rows not yet published are published (again) by the next clusterer step.
CREATE TABLE cluster_changes (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    type          text        NOT NULL
                  CHECK (type IN ('pair_clustered', 'pair_retracted', 'clusters_merged', 'cluster_split')),
    pair_id       uuid,
    cluster_id    uuid,
    message_key   text        NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX cluster_changes_unpublished ON cluster_changes (seq) WHERE published_at IS NULL;
CREATE INDEX cluster_changes_pair ON cluster_changes (pair_id, type);
-- How often a cluster split before: the number in the next split's ids.
CREATE INDEX cluster_changes_cluster ON cluster_changes (cluster_id, type);
