"""Pipeline and API events -> Prometheus metrics in imgdup's own registry (base units, _total)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Seed name dup_embeddings_processed -> imgdup_embeddings_processed_total.
EMBEDDINGS_PROCESSED = Counter(
    "imgdup_embeddings_processed_total", "Images embedded and indexed", ["model"], registry=REGISTRY
)
IMAGES_FAILED = Counter(
    "imgdup_images_failed_total", "Images that could not be indexed", ["reason"], registry=REGISTRY
)
# Seed name ann query latency -> imgdup_ann_query_seconds (histogram). One observation per search
# call: the images agent searches all of an ad's vectors (its images and framed photos) in one
# batched call, so this is the latency the pipeline waits for, not a per-vector share of it.
ANN_QUERY_SECONDS = Histogram(
    "imgdup_ann_query_seconds",
    "Vector store top-K search latency, one observation per batched search of an ad's vectors",
    registry=REGISTRY,
    buckets=_LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "imgdup_stage_seconds",
    "Time spent per pipeline stage",
    ["stage"],
    registry=REGISTRY,
    buckets=_LATENCY_BUCKETS,
)
CANDIDATES_FOUND = Counter(
    "imgdup_candidates_found_total", "ANN candidate pairs sent to verification", registry=REGISTRY
)
PHASH_CANDIDATES = Counter(
    "imgdup_phash_candidates_total",
    "Candidate pairs the pHash channel added to the ANN search's (issue 11)",
    registry=REGISTRY,
)
VERDICTS = Counter("imgdup_verdicts_total", "Verification verdicts", ["decision"], registry=REGISTRY)
# Seed name duplicates_found -> imgdup_duplicates_found_total.
DUPLICATES_FOUND = Counter(
    "imgdup_duplicates_found_total", "Public duplicate events published", registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "imgdup_dead_letters_total",
    "Messages sent to the dead-letter topic",
    ["reason", "topic"],
    registry=REGISTRY,
)
TRANSIENT_RETRIES = Counter(
    "imgdup_transient_retries_total",
    "Retries after a transient error",
    ["stage"],
    registry=REGISTRY,
)
# Seed name api_ingest_requests -> imgdup_api_ingest_requests_total.
API_INGEST_REQUESTS = Counter(
    "imgdup_api_ingest_requests_total", "Ingest API requests", ["status"], registry=REGISTRY
)
API_AUTH_REFUSALS = Counter(
    "imgdup_api_auth_refusals_total",
    "API requests refused by the access guard (missing, wrong, throttled, forbidden)",
    ["reason"],
    registry=REGISTRY,
)
EMBED_BATCH_IMAGES = Histogram(
    "imgdup_embed_batch_images",
    "Images per embedder call (micro-batches across concurrent events)",
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32),
)
