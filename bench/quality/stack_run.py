"""The benchmark's test images -> the product's verdicts: the embedded stack (`imgdup up`: broker,
Postgres, Qdrant edge, workers, API) is started in a scratch data dir, every image is posted as
its own ad through the API from a loopback image server, and once Postgres says all is processed
the verdicts, clusters and stored vectors are read back from Postgres."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.quality.dataset import BenchSet, SetImage

FIRST_AD_ID = 7_000_001


@dataclass
class StackResult:
    """Everything read back, keyed by image file name."""

    # (name_a, name_b) sorted -> the duplicates row (status, is_duplicate, confidence, evidence)
    pairs: dict[tuple[str, str], dict[str, Any]]
    clusters: dict[str, str]  # name -> cluster id
    listed: dict[str, set[str]]  # name -> the names GET /api/v1/duplicates/{its ad} lists
    vectors: dict[str, np.ndarray]  # name -> stored embedding
    embedding_model: str
    elapsed_s: float  # first post to everything processed
    progress: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


def _post(client: httpx.Client, api_url: str, body: dict[str, Any]) -> None:
    for attempt in range(20):
        response = client.post(f"{api_url}/api/v1/image/ingest", json=body)
        if response.status_code == 202:
            return
        if response.status_code != 429:
            raise RuntimeError(f"ingest of ad {body['ad_id']} failed: {response.status_code} {response.text}")
        time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"ingest of ad {body['ad_id']} kept being rate limited")


def stack_env(port: int, *, top_k: int, min_score: float, embedder: str) -> dict[str, str]:
    """The stack's environment: the embedder under test (its workers run that embedder's own
    verifier model, imgdup.verifiers; no uncalibrated override), the ANN settings, the API."""
    return {
        # The image server is on loopback, which the SSRF guard refuses unless allowed.
        "IMGDUP_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "IMGDUP_EMBEDDER": embedder,
        "IMGDUP_ANN_TOP_K": str(top_k),
        "IMGDUP_ANN_MIN_SCORE": str(min_score),
        "IMGDUP_API_PORT": str(port),
        "IMGDUP_API_INGEST_RATE_PER_S": "1000",
        "IMGDUP_API_INGEST_BURST": "5000",
    }


def run_stack(
    bench: BenchSet,
    images: Sequence[SetImage],
    *,
    top_k: int,
    min_score: float,
    timeout_s: float,
    keep_data: bool = False,
    say: bool = True,
    embedder: str = "sscd",
) -> StackResult:
    # Imported here: the rest of the benchmark (calibration, baselines) does not need the stack.
    import psycopg

    from imgdup.ops.demo.image_server import LoopbackImageServer
    from imgdup.ops.embedded import free_port
    from imgdup.ops.supervisor import Stack
    from imgdup.settings import Settings

    data_dir = (bench.root.parent / f"stack-{bench.root.name}-{int(time.time())}").resolve()
    port = free_port()
    env = stack_env(port, top_k=top_k, min_score=min_score, embedder=embedder)
    settings = Settings(
        data_dir=data_dir, api_port=port, ann_top_k=top_k, ann_min_score=min_score, embedder=embedder
    )

    def quiet(line: str) -> None:
        if say:
            print(f"    {line}", flush=True)

    stack = Stack(settings, say=quiet, extra_env=env)
    names_by_url: dict[str, str] = {}
    try:
        with LoopbackImageServer(bench.root) as server:
            stack.start()
            with httpx.Client(timeout=30) as client:
                started = time.monotonic()
                for number, image in enumerate(images):
                    url = server.url_for(f"images/{image.name}")
                    names_by_url[url] = image.name
                    _post(
                        client,
                        stack.api_url,
                        {
                            "ad_id": FIRST_AD_ID + number,
                            "source": "bench-quality",
                            "seller_id": f"seller-{number:05d}",
                            "images": [url],
                        },
                    )
                progress = _wait(client, stack.api_url, timeout_s, say)
                elapsed = time.monotonic() - started
                listed = _listed(client, stack.api_url, [image.name for image in images])
            with psycopg.connect(stack.dsn) as conn:
                result = _read_back(conn, names_by_url)
    finally:
        stack.stop()
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    pairs, clusters, vectors, model = result
    return StackResult(
        pairs,
        clusters,
        listed,
        vectors,
        model,
        elapsed,
        progress,
        {"ann_top_k": top_k, "ann_min_score": min_score, "embedder": embedder},
    )


def _wait(client: httpx.Client, api_url: str, timeout_s: float, say: bool) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        progress: dict[str, Any] = client.get(f"{api_url}/api/v1/progress").json()
        line = (
            f"events indexed {progress['events_indexed']}, dead {progress['events_dead']}, "
            f"pairs open {progress['pairs_candidate'] + progress['pairs_verified']}, "
            f"decided {progress['pairs_clustered'] + progress['pairs_rejected']}"
        )
        if say and line != last:
            print(f"\r    {line}   ", end="", flush=True)
            last = line
        if progress["unfinished"] == 0:
            if say:
                print()
            return progress
        if time.monotonic() > deadline:
            raise TimeoutError(f"not processed within {timeout_s:.0f}s: {progress}")
        time.sleep(1.0)


def _listed(client: httpx.Client, api_url: str, names: Sequence[str]) -> dict[str, set[str]]:
    """What the public API answers for each ad (one image each, posted in `names` order): the
    names of the other ads GET /api/v1/duplicates/{ad_id} lists, through pairs and clusters alike."""
    listed: dict[str, set[str]] = {}
    for number, name in enumerate(names):
        response = client.get(
            f"{api_url}/api/v1/duplicates/{FIRST_AD_ID + number}", params={"cluster_mates": 1000}
        )
        response.raise_for_status()
        answer = response.json()
        if answer["cluster_mates_left_out"]:
            raise RuntimeError(f"ad {FIRST_AD_ID + number}: the API left cluster mates out: {answer}")
        listed[name] = {names[entry["ad_id"] - FIRST_AD_ID] for entry in answer["duplicates"]}
    return listed


def _read_back(
    conn: Any, names_by_url: dict[str, str]
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, str], dict[str, np.ndarray], str]:
    names: dict[str, str] = {}
    vectors: dict[str, np.ndarray] = {}
    models: set[str] = set()
    for image_id, url, embedding, model in conn.execute(
        "SELECT image_id::text, url, embedding, embedding_model FROM images"
    ):
        name = names_by_url.get(url)
        if name is None:
            continue
        names[image_id] = name
        if embedding is not None:
            vectors[name] = np.frombuffer(bytes(embedding), dtype="<f4").astype(np.float32)
            models.add(model)
    columns = (
        "status",
        "is_duplicate",
        "confidence",
        "cosine",
        "phash_distance",
        "phash_mirrored",
        "sift_inliers",
        "sift_mirrored",
        "ssim",
        "exact",
        "verifier_version",
        # The rest of the evidence, so a stored run can be re-scored offline (bench.quality.first_stage).
        "score",
        "sift_matches",
        "overlap",
        "mismatch",
        "compared",
        "mismatch_evenness",
        "coverage",
        "moved",
    )
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    query = f"SELECT image_a::text, image_b::text, {', '.join(columns)} FROM duplicates"
    for row in conn.execute(query):
        a, b = names.get(row[0]), names.get(row[1])
        if a is None or b is None:
            continue
        key = (a, b) if a < b else (b, a)
        pairs[key] = dict(zip(columns, row[2:], strict=True))
    clusters: dict[str, str] = {}
    for image_id, cluster_id in conn.execute("SELECT image_id::text, cluster_id::text FROM cluster_members"):
        if image_id in names:
            clusters[names[image_id]] = cluster_id
    return pairs, clusters, vectors, ",".join(sorted(models))


def write_pairs(result: StackResult, path: Path) -> None:
    """The stack's verified pairs, one JSON object a line (a, b and the duplicates row)."""
    with path.open("w") as out:
        for (a, b), row in sorted(result.pairs.items()):
            out.write(json.dumps({"a": a, "b": b, **row}, default=float) + "\n")


def pipeline_scores(result: StackResult, index: dict[str, int], n: int) -> np.ndarray:
    """[N, N] matrix: the verdict's probability-like score (confidence as stated, turned to
    p(duplicate)) for every verified pair, NEVER (-inf) for pairs never proposed."""
    scores = np.full((n, n), -np.inf)
    for (a, b), row in result.pairs.items():
        if row["is_duplicate"] is None:
            continue
        confidence = float(row["confidence"])
        score = confidence if row["is_duplicate"] else 1.0 - confidence
        i, j = index[a], index[b]
        scores[i, j] = scores[j, i] = score
    return scores


def listed_matrix(result: StackResult, names: Sequence[str]) -> np.ndarray:
    """[N, N] bool: the API lists either image's ad among the other's duplicates."""
    position = {name: k for k, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=bool)
    for name, others in result.listed.items():
        for other in others:
            matrix[position[name], position[other]] = matrix[position[other], position[name]] = True
    return matrix


def one_sided_listings(result: StackResult) -> int:
    """Ads listed by one side only (the API should list every match both ways)."""
    listed = result.listed
    return sum(1 for name, others in listed.items() for other in others if name not in listed[other])


def cluster_matrix(result: StackResult, names: Sequence[str]) -> np.ndarray:
    """[N, N] bool: both images sit in one cluster."""
    ids = np.array([result.clusters.get(name, f"-{k}") for k, name in enumerate(names)], dtype=object)
    return np.asarray(ids[:, None] == ids[None, :])
