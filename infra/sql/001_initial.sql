-- imgdup schema v1. Applied by `imgdup migrate` (and on start) inside one transaction.
-- Every row has a deterministic key so a redelivered or replayed event is an upsert, not a new row.

-- Accepted ad events and their processing state: "is everything I sent processed?" is a query.
CREATE TABLE ingest_events (
    event_id      text PRIMARY KEY,
    ad_id         bigint      NOT NULL,
    payload       jsonb       NOT NULL,            -- the event as accepted, for replay and redrive
    status        text        NOT NULL DEFAULT 'accepted'
                  CHECK (status IN ('accepted', 'processing', 'indexed', 'dead')),
    replay        boolean     NOT NULL DEFAULT false,
    dead_reason   text,
    accepted_at   timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_events_ad_id ON ingest_events (ad_id);
CREATE INDEX ingest_events_unfinished ON ingest_events (accepted_at)
    WHERE status IN ('accepted', 'processing');

CREATE TABLE ads (
    ad_id          bigint PRIMARY KEY,
    source         text        NOT NULL,
    category       text,
    seller_id      text,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_event_id  text        NOT NULL
);

-- image_id = uuid5(ad_id, url): the same image of the same ad is always the same row and point.
CREATE TABLE images (
    image_id        uuid PRIMARY KEY,
    ad_id           bigint      NOT NULL REFERENCES ads (ad_id),
    url             text        NOT NULL,
    position        integer     NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'indexed', 'failed')),
    error_reason    text,
    error_detail    text,
    content_sha256  text,
    pixel_sha256    text,
    phash           bigint,
    phash_mirrored  bigint,
    width           integer,
    height          integer,
    format          text,
    embedding_model text,
    embedding       bytea,                          -- float32 little-endian, for re-search and replay
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    indexed_at      timestamptz,
    UNIQUE (ad_id, url)
);
CREATE INDEX images_ad_id ON images (ad_id);
CREATE INDEX images_pixel_sha256 ON images (pixel_sha256);

-- The reduced copy (longer side <= 512 px, JPEG) used for verification and admin thumbnails.
CREATE TABLE image_blobs (
    image_id  uuid PRIMARY KEY REFERENCES images (image_id) ON DELETE CASCADE,
    jpeg      bytea NOT NULL
);

-- One row per unordered image pair (image_a < image_b), from candidate to verdict to cluster.
-- pair_id = uuid5(image_a, image_b). Re-verifying with a new verifier version updates the row.
CREATE TABLE duplicates (
    pair_id           uuid PRIMARY KEY,
    image_a           uuid        NOT NULL REFERENCES images (image_id),
    image_b           uuid        NOT NULL REFERENCES images (image_id),
    ad_a              bigint      NOT NULL,
    ad_b              bigint      NOT NULL,
    status            text        NOT NULL DEFAULT 'candidate'
                      CHECK (status IN ('candidate', 'rejected', 'verified', 'clustered')),
    is_duplicate      boolean,
    confidence        real,
    cosine            real        NOT NULL,
    phash_distance    integer,
    phash_mirrored    boolean,
    sift_inliers      integer,
    sift_mirrored     boolean,
    ssim              real,
    exact             boolean,
    embedding_model   text,
    verifier_version  text,
    replay            boolean     NOT NULL DEFAULT false,
    found_at          timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz,
    clustered_at      timestamptz,
    CHECK (image_a < image_b)
);
CREATE INDEX duplicates_ad_a ON duplicates (ad_a) WHERE is_duplicate;
CREATE INDEX duplicates_ad_b ON duplicates (ad_b) WHERE is_duplicate;
CREATE INDEX duplicates_image_a ON duplicates (image_a);
CREATE INDEX duplicates_image_b ON duplicates (image_b);
CREATE INDEX duplicates_unfinished ON duplicates (found_at)
    WHERE status IN ('candidate', 'verified');

-- Cluster ids are stable: a growing cluster keeps its id; a merge keeps the older cluster's id
-- and records the absorbed one in cluster_merges.
CREATE TABLE duplicate_clusters (
    cluster_id   uuid PRIMARY KEY,
    size         integer     NOT NULL CHECK (size >= 2),
    ad_count     integer     NOT NULL,
    edge_count   integer     NOT NULL,
    confidence   real        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    merged_into  uuid REFERENCES duplicate_clusters (cluster_id)
);
CREATE INDEX duplicate_clusters_live ON duplicate_clusters (updated_at DESC, cluster_id)
    WHERE merged_into IS NULL;

CREATE TABLE cluster_members (
    image_id    uuid PRIMARY KEY REFERENCES images (image_id),
    cluster_id  uuid        NOT NULL REFERENCES duplicate_clusters (cluster_id),
    ad_id       bigint      NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cluster_members_cluster ON cluster_members (cluster_id);

CREATE TABLE cluster_merges (
    absorbed   uuid PRIMARY KEY REFERENCES duplicate_clusters (cluster_id),
    survivor   uuid        NOT NULL REFERENCES duplicate_clusters (cluster_id),
    pair_id    uuid        NOT NULL,
    merged_at  timestamptz NOT NULL DEFAULT now()
);
