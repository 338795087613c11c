"""Environment and secret files -> one typed `Settings` object that every process reads once."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imgdup_core.bridges import DEFAULT_BRIDGE_MIN_PROBABILITY, DEFAULT_ESTABLISHED_MIN_ADS
from imgdup_core.decode_budget import DEFAULT_MAX_BYTES
from imgdup_core.fusion_weights import CANDIDATE_MIN_COSINE
from imgdup_core.hashing import PHASH_CANDIDATE_DISTANCE
from imgdup_core.verifier_config import default_verifier_for

# The full SSCD's default verifier (imgdup_core.verifier_config.DEFAULT_VERIFIER_FOR_EMBEDDER).
_SSCD_VERIFIER = default_verifier_for("sscd")
DEFAULT_VERIFIER_VERSION = _SSCD_VERIFIER.version
_DEFAULT_ANN_MIN_SCORE = (
    CANDIDATE_MIN_COSINE
    if _SSCD_VERIFIER.fusion.candidate_min_cosine is None
    else _SSCD_VERIFIER.fusion.candidate_min_cosine
)

EmbedderKind = Literal["sscd", "sscd_distilled", "clip"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
WorkerRole = Literal["images", "verifier", "clusterer"]
VectorStoreKind = Literal["edge", "numpy", "pgvector"]
# The vector store when none is configured, chosen by measurement: the hot path's cost per image at
# 100k indexed images within 1.3x of 10k, near-duplicate hit@10 kept (bench/results/scaling-pgvector.md).
DEFAULT_VECTOR_STORE: VectorStoreKind = "numpy"
ALL_ROLES: tuple[WorkerRole, ...] = ("images", "verifier", "clusterer")
PLACEHOLDER_SECRETS = {"changeme", "change-me", "changethis", "secret", "password", "token", "test"}


def _env(name: str) -> AliasChoices:
    """Accept both the conventional bare name (DATABASE_URL) and the prefixed one."""
    return AliasChoices(name, f"IMGDUP_{name}")


class Settings(BaseSettings):
    """All configuration. Environment variables are prefixed `IMGDUP_`; the three endpoints also
    accept their conventional bare names (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `QDRANT_URL`).
    When an endpoint is unset, `imgdup up` starts an embedded one in `data_dir`."""

    model_config = SettingsConfigDict(
        env_prefix="IMGDUP_",
        extra="ignore",
        populate_by_name=True,
        # Secrets may also come from files (Docker/Kubernetes secrets): /run/secrets/imgdup_api_token.
        secrets_dir="/run/secrets" if Path("/run/secrets").is_dir() else None,
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".imgdup")

    # Endpoints. None -> embedded part started by `imgdup up`.
    kafka_bootstrap_servers: str | None = Field(None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    database_url: SecretStr | None = Field(None, validation_alias=_env("DATABASE_URL"))
    qdrant_url: str | None = Field(None, validation_alias=_env("QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(None, validation_alias=_env("QDRANT_API_KEY"))
    qdrant_collection: str = "imgdup_images"

    # Kafka security, one group for every client (imgdup/kafka/security.py maps it for each). Bare
    # names too, like KAFKA_BOOTSTRAP_SERVERS. TLS always verifies the broker's certificate and
    # host name: against KAFKA_SSL_CAFILE, or the system's CAs when it is unset.
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None, validation_alias=_env("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=_env("KAFKA_SASL_PASSWORD"))
    kafka_ssl_cafile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    # A client certificate and its key (PEM) for brokers that require one (mutual TLS).
    kafka_ssl_certfile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_KEYFILE"))

    # Streams.
    app_id: str = "imgdup"
    topic_partitions: int = Field(4, ge=1, le=256)
    topic_replication_factor: int = Field(1, ge=1, le=7)
    worker_roles: Annotated[list[WorkerRole], NoDecode] = Field(default_factory=lambda: list(ALL_ROLES))
    worker_metrics_port: int = 0  # 0 = no separate metrics endpoint for the worker
    images_concurrency: int = Field(2, ge=1, le=64)
    verifier_concurrency: int = Field(2, ge=1, le=64)
    cpu_threads: int = Field(2, ge=1, le=64)
    # Longest a consumer fetch waits for data (Faust's own: 1,500 ms). Each topic hop can take this
    # long on a broker that holds fetches until the wait runs out, as the embedded tansu does
    # (streams/transport.py); Apache Kafka answers as soon as data arrives.
    consumer_fetch_max_wait_ms: int = Field(100, ge=10, le=10_000)
    # A worker that received messages but committed nothing for this long reports itself unhealthy.
    worker_stall_after_s: float = Field(120.0, gt=0)
    # An event recorded as accepted but still not picked up by a worker this long after (or after its
    # last re-drive) is published again by the images workers: the API, or `imgdup replay`, may have
    # died between recording and publishing it. Keep it above the usual consumer lag: a re-publish
    # is always safe (same event_id, idempotent downstream) but costs work. The clusterer role uses it
    # too: a pair Postgres shows unsettled (or with unpublished changes) this long is reviewed again.
    redrive_after_s: float = Field(60.0, gt=0)
    # Clustering (imgdup_core/bridges.py): a verified pair that would join two groups of at least
    # `cluster_bridge_min_ads` ads each through one edge under this fused probability (not exact, not
    # moderator-confirmed) is held out of clusters until a second link arrives. Default 0.97: above
    # every false verified pair of fused-v5's training split (0.928 to 0.954), measured by
    # `python -m bench.quality.bridge_bar` (bench/results/bridge-bar-fused-v5.txt).
    cluster_bridge_min_probability: float = Field(DEFAULT_BRIDGE_MIN_PROBABILITY, ge=0.0, le=1.0)
    cluster_bridge_min_ads: int = Field(DEFAULT_ESTABLISHED_MIN_ADS, ge=1)

    # Detection.
    embedder: EmbedderKind = "sscd"
    # The model runs on a thread of its own, one micro-batch (across concurrent events) at a time,
    # with this many ONNX Runtime threads and spin-waiting off: spinning threads burn the cores that
    # decoding, hashing and SIFT need (bench/results/throughput-*.md: -15% CPU per image).
    embed_threads: int = Field(2, ge=1, le=64)
    embed_max_batch: int = Field(8, ge=1, le=64)
    embed_max_wait_ms: float = Field(5.0, ge=0)
    # Vector store when QDRANT_URL is unset (IMGDUP_VECTOR_STORE, or its older name
    # IMGDUP_VECTOR_INDEX): "pgvector" (a table with an HNSW index in the database, shared by every
    # process; needs the `vector` extension, which the embedded Postgres has), "edge" (qdrant-edge
    # plain segments in data_dir, exact, cost linear in the collection) or "numpy"
    # (imgdup.vectors.numpy_index: sign-sketch scan + exact re-rank, per-category shards, flat
    # cost). "edge" and "numpy" are folders one process owns. See bench/results/vectors*.md.
    # Unset: DEFAULT_VECTOR_STORE, or "edge" in a data dir that already holds an edge shard.
    vector_index: VectorStoreKind | None = Field(
        None, validation_alias=AliasChoices("IMGDUP_VECTOR_STORE", "IMGDUP_VECTOR_INDEX")
    )
    # pgvector's HNSW candidate list per query (hnsw.ef_search; pgvector's own default is 40). On 100k
    # random 512-d vectors (the graph's worst case) near-duplicate hit@10 was 0.85 at 100, 0.955 at
    # 200, 0.995 at 400, 1.00 at 800, latency roughly doubling per step (bench/results/pgvector-ef-search.md).
    pgvector_ef_search: int = Field(400, ge=10, le=1000)
    # Images worker processes `imgdup up` starts (one consumer group: they split the partitions).
    # More than one needs a vector store they can share: pgvector or a Qdrant server.
    images_workers: int = Field(1, ge=1, le=16)
    clip_model_path: str | None = None
    # Stored copies and SIFT features (imgdup.blobs), ~70-160 KB an image, kept out of Postgres:
    # "fs" (files under IMGDUP_BLOB_DIR, default data_dir/blobs: one machine or a shared volume)
    # or "s3" (an S3-compatible bucket: AWS S3, MinIO). Postgres keeps each blob's sha256 and size.
    blob_store: Literal["fs", "s3"] = "fs"
    blob_dir: Path | None = None
    s3_endpoint: str | None = None  # e.g. http://minio:9000; unset: AWS's endpoint of s3_region
    s3_bucket: str = "imgdup"
    s3_prefix: str = "blobs/"
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    # `imgdup prune` deletes blobs no row refers to once they are this old: a blob is written just
    # before the row that refers to it commits.
    blob_orphan_grace_hours: int = Field(24, ge=1)
    ann_top_k: int = Field(10, ge=1, le=100)
    # Candidates below this cosine are not worth a geometric check: the highest cut-off that
    # drops at most 0.5 % of the duplicates the verifier confirms on the quality benchmark's
    # training split (`python -m bench.quality calibrate`; 0.3: ~22 % fewer pairs than 0.2).
    # The default verifier's own cut-off (fused-v21 runs fused-v3's model: fusion_weights.py).
    ann_min_score: float = Field(_DEFAULT_ANN_MIN_SCORE, ge=-1.0, le=1.0)
    # The verifier model the worker runs (imgdup/verifiers.py): a built-in version
    # (imgdup_core.verifier_config.VERIFIERS) or a retrained one, <models_dir>/<version>.json
    # (`imgdup retrain`). Its embedder must be IMGDUP_EMBEDDER, or the worker refuses to start;
    # its ANN cut-off applies unless IMGDUP_ANN_MIN_SCORE is set. Unset, each embedder runs its own
    # default (imgdup_core.verifier_config.DEFAULT_VERIFIER_FOR_EMBEDDER: sscd runs fused-v21,
    # sscd_distilled fused-v3-distilled); this field's default is the full SSCD's.
    verifier_version: str = Field(DEFAULT_VERIFIER_VERSION, min_length=1, max_length=100)
    # Run a verifier model calibrated for another embedder anyway (a warning on start, never the
    # default): for an embedder without a model of its own (clip), or an explicit version of another.
    allow_uncalibrated_embedder: bool = False
    # Where `imgdup retrain` writes models and the worker reads them; default <data_dir>/models.
    verifier_models_dir: Path | None = None
    # The verifier's fused-probability threshold, when not the calibrated one: the verdicts get
    # their own version (e.g. fused-v21-t0.9), so `imgdup replay --all` re-verifies every pair and
    # retracts the duplicates the stricter verifier rejects (docs/events.md). Above the calibrated one
    # the fusion decides alone (imgdup_core.verifier_config.with_threshold: the rules' verdicts stand at it).
    verifier_threshold: float | None = Field(None, gt=0.0, lt=1.0)
    # The pHash candidate channel (imgdup.store.phash): other ads' images within this many bits
    # of pHash are candidates too, whatever their cosine; -1 off. Unset, it follows the chosen
    # verifier: on (8) for one calibrated on such candidates (fused-v5), off for the others.
    phash_candidate_distance: int = Field(
        PHASH_CANDIDATE_DISTANCE if _SSCD_VERIFIER.phash_candidates else -1, ge=-1, le=16
    )

    # Downloads (untrusted URLs).
    download_timeout_s: float = Field(10.0, gt=0)
    download_max_bytes: int = Field(20 * 1024 * 1024, gt=0)
    download_max_redirects: int = Field(3, ge=0)
    decode_max_pixels: int = Field(40_000_000, gt=0)
    # What decoding one image may hold at peak (decoder buffers, the decoded pixels, the RGB copy,
    # the downscale), estimated from the header before decoding (imgdup_core.decode_budget). A
    # worker decodes up to IMGDUP_CPU_THREADS images at once.
    decode_max_bytes: int = Field(DEFAULT_MAX_BYTES, gt=0)
    # CIDR ranges that image URLs may resolve to even though they are private/loopback.
    # Empty by default (SSRF guard); the demo allows its own loopback server explicitly.
    allow_private_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Full access on every route (the contract). Per-role credentials are better: see below.
    api_token: SecretStr | None = None
    # `name:role[+role]:hash` entries (roles ingest, moderator, viewer, metrics), one per line or
    # comma-separated; only hashes, made by `imgdup credential`. From the environment, the secret
    # file /run/secrets/imgdup_api_credentials, or a file of their own (both are read).
    api_credentials: SecretStr | None = None
    api_credentials_file: Path | None = None
    # Peers (CIDRs) whose X-Forwarded-For and identity headers (X-Imgdup-Role, X-Auth-Request-User)
    # are believed: an authenticating reverse proxy. Empty: no header names the caller.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Wrong credentials from one address: this many per window, then 429 until the window refills.
    api_auth_failures: int = Field(10, ge=1)
    api_auth_failure_window_s: float = Field(60.0, gt=0)
    api_max_body_bytes: int = Field(256 * 1024, gt=0)
    api_ingest_rate_per_s: float = Field(50.0, gt=0)
    api_ingest_burst: int = Field(200, ge=1)

    # Retention: `imgdup prune` deletes pairs judged not duplicate (status 'rejected') decided more
    # than this many days ago; they are never shown and would otherwise grow without bound.
    rejected_pair_retention_days: int = Field(30, ge=1)
    # ... and published `cluster_changes` rows (the outbox of imgdup.cluster-changes.v1) published more
    # than this many days ago. The outbox is not the topic: consumers rebuild from the topic, whose
    # retention the broker keeps. Rows that number later event ids (retractions, splits) are kept.
    cluster_changes_retention_days: int = Field(30, ge=1)
    prune_batch_size: int = Field(5000, ge=1, le=100_000)

    def api_credentials_text(self) -> str:
        """Every configured credential entry: the variable (or its secret file), then the file."""
        parts = [self.api_credentials.get_secret_value()] if self.api_credentials else []
        if self.api_credentials_file is not None:
            parts.append(self.api_credentials_file.read_text())
        return "\n".join(parts)

    def api_is_open(self) -> bool:
        """No token, no credentials, no trusted proxy: the API lets everyone in (development)."""
        return (
            self.api_token is None
            and self.api_credentials is None
            and self.api_credentials_file is None
            and not self.trusted_proxies
        )

    def check_production_ready(self) -> None:
        """In production the API refuses to start open, or with a placeholder token (workers need
        no credentials)."""
        if self.environment != "production":
            return
        if self.api_is_open():
            raise ValueError(
                "the API refuses to run open in production: set IMGDUP_API_TOKEN (a real secret,"
                " 16+ characters) or IMGDUP_API_CREDENTIALS (see docs/production.md)"
            )
        if self.api_token is not None:
            token = self.api_token.get_secret_value()
            if len(token) < 16 or token.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "IMGDUP_API_TOKEN must be set to a real secret (16+ characters) in production"
                )

    @field_validator("api_token", "api_credentials", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `IMGDUP_API_TOKEN=` (compose's empty default) means no token, not an empty one.
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("worker_roles", "allow_private_networks", "trusted_proxies", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError -> a validation error naming it
        return value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        """A half-configured group fails here, rather than connecting in plaintext or without a login."""
        protocol = self.kafka_security_protocol
        sasl = {
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        files = {
            "KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if not value]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        elif given := [name for name, value in sasl.items() if value]:
            raise ValueError(
                f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL login"
                " (SASL_SSL or SASL_PLAINTEXT does)"
            )
        if not protocol.endswith("SSL") and (given := [name for name, value in files.items() if value]):
            raise ValueError(
                f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS"
                " (SSL or SASL_SSL does)"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (client certificate and its key)"
            )
        return self

    @model_validator(mode="after")
    def _images_workers_share_the_store(self) -> Settings:
        if self.images_workers > 1 and not self.vector_store_is_shared():
            raise ValueError(
                f"IMGDUP_IMAGES_WORKERS={self.images_workers} needs a vector store the processes can"
                f" share: IMGDUP_VECTOR_STORE={self.vector_store_kind()} is a folder one process owns; set"
                " IMGDUP_VECTOR_STORE=pgvector or QDRANT_URL"
            )
        return self

    def vector_store_kind(self) -> VectorStoreKind:
        """The configured vector store; unset, the default, except that a data dir holding a
        qdrant-edge shard (the default before) keeps using it: a new store would start empty and
        the images indexed so far would never be found again (`imgdup replay` re-fills one)."""
        if self.vector_index is not None:
            return self.vector_index
        if self.vector_dir.is_dir() and any(
            (folder / "edge_config.json").is_file() for folder in self.vector_dir.iterdir()
        ):
            return "edge"
        return DEFAULT_VECTOR_STORE

    def vector_store_is_shared(self) -> bool:
        """Whether several processes may use the vector store at once (a server or the database)."""
        return bool(self.qdrant_url) or self.vector_store_kind() == "pgvector"

    @property
    def embedded_pg_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def models_dir(self) -> Path:
        return self.verifier_models_dir or self.data_dir / "models"

    @property
    def vector_dir(self) -> Path:
        return self.data_dir / "vectors"

    @property
    def blob_root(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    def database_dsn(self) -> str:
        if self.database_url is None:
            raise RuntimeError("DATABASE_URL is not set and no embedded Postgres was started")
        return self.database_url.get_secret_value()

    def bootstrap_servers(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set and no embedded broker was started")
        return self.kafka_bootstrap_servers


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
