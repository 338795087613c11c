"""End-to-end throughput and latency of the whole stack against standalone embedding, in one run.

    python -m bench.throughput [--embedder sscd|sscd_distilled] [--images N] [--workers 1|2|3|4]
                               [--images-workers N] [--vector-store edge|numpy|pgvector]
                               [--batch N] [--intra-op N] [--skip-standalone]

1. Standalone: decode + embed the same images with no Kafka, Postgres or HTTP, several ways
   (per-ad batches on a 2-thread pool as the images agent runs them; ONNX Runtime intra-op
   threads 1 vs 2; batches of 16), and decode + hash + storage copy + embed (the agent's whole
   CPU step).
2. Saturation: the embedded stack (tansu, Postgres, worker, API) started as `imgdup up` does;
   all ads of phase A posted through the API at once; images/s until everything is indexed,
   verified and clustered; per-stage time from the worker's Prometheus histograms; CPU seconds
   per process.
3. Latency: phase B's ads posted at half the measured rate; every imgdup.duplicates.v1 event
   read with confluent-kafka; latency = receive time (and detected_at) - post time of the ad
   holding the later copy.

Images: non-overlapping tiles of scikit-image's bundled photos (distinct real images) and edited
copies of 30% of them (resize, flip, crop, watermark, brightness, contrast, JPEG), from a
loopback image server. Writes bench/results/throughput[-<variant>].json and .md.
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil  # type: ignore[import-untyped]
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Timer, machine, percentiles, table, write_results
from bench.photos import BenchAd, build_ads, distinct_tiles
from bench.worker import no_spinning
from imgdup.analysis.analyse import analyse_images
from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.embedded import free_port
from imgdup.ops.supervisor import Stack
from imgdup.settings import Settings
from imgdup.verifiers import chosen_version
from imgdup_core.decode import decode_image
from imgdup_core.embedding import build_embedder
from schemas import DuplicateEventV1, topics
from streams.runtime import single_threaded_kernels

COPY_SHARE = 0.3


# ------------------------------------------------------------------------------ standalone


def _per_ad_rate(blobs_by_ad: list[list[bytes]], work: Any, pool_threads: int) -> dict[str, float]:
    """Images/s doing `work(blobs)` per ad, `pool_threads` ads at a time, and CPU ms per image
    (this process's CPU time, all threads: unlike wall time, it barely depends on what else
    the machine is running)."""
    n = sum(len(b) for b in blobs_by_ad)
    with ThreadPoolExecutor(pool_threads) as pool:
        list(pool.map(work, blobs_by_ad[:pool_threads]))  # warm-up
        cpu0 = time.process_time()
        t = Timer()
        list(pool.map(work, blobs_by_ad))
        return {"images_per_s": n / t.elapsed, "cpu_ms_per_image": (time.process_time() - cpu0) / n * 1e3}


def standalone(kind: str, blobs_by_ad: list[list[bytes]], max_pixels: int) -> dict[str, Any]:
    """Decode+embed rates on the same images, several ways (images/s)."""
    single_threaded_kernels()  # as in the worker process
    results: dict[str, Any] = {}

    def decode_embed(embedder: Any) -> Any:
        return lambda blobs: embedder.embed([decode_image(b, max_pixels=max_pixels).rgb for b in blobs])

    default = build_embedder(kind)
    results["per_ad_pool2_ort_default"] = _per_ad_rate(blobs_by_ad, decode_embed(default), 2)
    one = build_embedder(kind, intra_op_threads=1)
    results["per_ad_pool2_ort1"] = _per_ad_rate(blobs_by_ad, decode_embed(one), 2)
    two = build_embedder(kind, intra_op_threads=2)
    results["per_ad_pool2_ort2"] = _per_ad_rate(blobs_by_ad, decode_embed(two), 2)
    results["per_ad_pool1_ort2"] = _per_ad_rate(blobs_by_ad, decode_embed(two), 1)
    flat = [b for blobs in blobs_by_ad for b in blobs]
    batches16 = [flat[i : i + 16] for i in range(0, len(flat), 16)]
    results["batch16_pool1_ort2"] = _per_ad_rate(batches16, decode_embed(two), 1)
    results["batch16_pool2_ort1"] = _per_ad_rate(batches16, decode_embed(one), 2)
    quiet = build_embedder(kind, intra_op_threads=1)
    no_spinning(quiet)
    results["per_ad_pool2_ort1_nospin"] = _per_ad_rate(blobs_by_ad, decode_embed(quiet), 2)
    results["analyse_per_ad_pool2_ort_default"] = _per_ad_rate(
        blobs_by_ad, lambda blobs: analyse_images(blobs, default, max_pixels=max_pixels), 2
    )
    # Where the agent's CPU step goes: CPU ms per image of each step, one call at a time (CPU
    # time of this process, so a busy neighbour on a shared machine barely moves it).
    from imgdup_core.decode import load_rgb, storage_jpeg
    from imgdup_core.framing import find_photo_region
    from imgdup_core.hashing import phash_pair
    from imgdup_core.verify import extract_sift

    sample = flat[: min(len(flat), 40)]
    per: dict[str, float] = {}

    def cost(label: str, work: Any, inputs: list[Any]) -> list[Any]:
        cpu0 = time.process_time()
        outputs = [work(x) for x in inputs]
        per[label] = (time.process_time() - cpu0) / len(inputs) * 1e3
        return outputs

    decoded = cost("decode_ms", lambda blob: decode_image(blob, max_pixels=max_pixels).rgb, sample)
    cost("phash_pair_ms", phash_pair, decoded)
    jpegs = cost("storage_jpeg_ms", storage_jpeg, decoded)
    cost("find_photo_region_ms", find_photo_region, decoded)
    copies = cost("load_stored_copy_ms", load_rgb, jpegs)
    cost("extract_sift_ms", extract_sift, copies)
    cost("embed_ort1_batch1_ms", lambda rgb: one.embed([rgb]), decoded)
    cost("embed_ort2_batch1_ms (CPU of 2 threads)", lambda rgb: two.embed([rgb]), decoded)
    results["single_thread_costs"] = per
    return results


def verify_cost(pairs: list[tuple[bytes, bytes]], max_pixels: int, version: str) -> dict[str, float]:
    """CPU ms per pair of what the verifier agent runs (verifier `version`, the stack's): verify_images
    on the stored copies with their stored SIFT features ("cpu_ms_per_pair"), and the same with the
    features extracted per pair, as before they were stored ("cpu_ms_per_pair_extracting")."""
    from imgdup_core import verify
    from imgdup_core.decode import load_rgb, storage_jpeg
    from imgdup_core.hashing import phash_pair
    from imgdup_core.verifier_config import VERIFIERS

    config = VERIFIERS[version]
    single_threaded_kernels()  # as in the worker process
    prepared = []
    for a, b in pairs:
        sides = []
        for blob in (a, b):
            rgb = decode_image(blob, max_pixels=max_pixels).rgb
            stored = load_rgb(storage_jpeg(rgb))
            sides.append((stored, phash_pair(rgb), verify.extract_sift(stored, config)))
        prepared.append(sides)
    n = max(1, len(prepared))
    result: dict[str, float] = {"pairs": len(prepared)}
    for label, stored_features in (("", True), ("_extracting", False)):
        cpu0 = time.process_time()
        t = Timer()
        for (rgb_a, ph_a, sift_a), (rgb_b, ph_b, sift_b) in prepared:
            # No FeatureCache: every pair pays for whatever features it extracts.
            verify.verify_images(
                verify.ImageView(rgb_a, ph_a, sift=sift_a if stored_features else None),
                verify.ImageView(rgb_b, ph_b, sift=sift_b if stored_features else None),
                cosine=0.5,
                config=config,
            )
        result[f"cpu_ms_per_pair{label}"] = (time.process_time() - cpu0) / n * 1e3
        result[f"wall_ms_per_pair{label}"] = t.elapsed / n * 1e3
    return result


# ------------------------------------------------------------------------------ the stack


class BenchStack(Stack):
    """Stack whose workers run bench.worker (the same CLI plus benchmark-only patches), each
    with its own Prometheus port (`metrics_ports`, by worker name)."""

    metrics_ports: dict[str, int]

    def _spawn(self, name: str, argv: list[str]) -> None:
        if name.startswith("worker") and argv[1:3] == ["-m", "imgdup"]:
            argv = [sys.executable, "-m", "bench.worker", *argv[4:]]  # argv[3] is "worker"
            port = self.metrics_ports.setdefault(name, free_port())
            saved = dict(self.extra_env)
            self.extra_env["IMGDUP_WORKER_METRICS_PORT"] = str(port)
            try:
                super()._spawn(name, argv)
            finally:
                self.extra_env = saved
            return
        super()._spawn(name, argv)


VERIFY_COUNT = "imgdup_stage_seconds_count{stage=verify}"


def scrape(ports: list[int]) -> dict[str, float]:
    """Summed histogram sums/counts and counters from the workers' /metrics endpoints."""
    out: dict[str, float] = {}
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count", "_total")):
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    key = f"{sample.name}{{{labels}}}"
                    out[key] = out.get(key, 0.0) + float(sample.value)
    return out


def stage_table(
    before: dict[str, float], after: dict[str, float], images: int
) -> dict[str, dict[str, float]]:
    stages: dict[str, dict[str, float]] = {}
    for key, value in after.items():
        if not key.endswith("}") or "_sum{" not in key:
            continue
        count_key = key.replace("_sum{", "_count{")
        total = value - before.get(key, 0.0)
        count = after.get(count_key, 0.0) - before.get(count_key, 0.0)
        if count <= 0:
            continue
        name = key.split("_sum{")[0].removeprefix("imgdup_")
        label = key.split("{", 1)[1].rstrip("}")
        stages[f"{name}[{label}]" if label else name] = {
            "count": count,
            "total_s": total,
            "mean_ms": total / count * 1e3,
            "per_image_ms": total / max(1, images) * 1e3,
        }
    return stages


def process_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds (user+system) so far of each part of the stack and of this process."""
    out: dict[str, float] = {}

    def add(name: str, proc: psutil.Process) -> None:
        try:
            times = proc.cpu_times()
            out[name] = out.get(name, 0.0) + times.user + times.system
        except psutil.Error:
            pass

    for name, process in stack.processes.items():
        add(name, psutil.Process(process.pid))
    if stack.broker is not None:
        add("tansu", psutil.Process(stack.broker.process.pid))
    if stack.postgres is not None:
        pgdata = str(stack.postgres.pgdata)
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                if proc.info["name"] == "postgres" and _postgres_of(proc, pgdata):
                    add("postgres", proc)
            except psutil.Error:
                continue
    add("bench (posting, image server)", psutil.Process())
    return out


def _postgres_of(proc: psutil.Process, pgdata: str) -> bool:
    # Backends are children of the postmaster, whose command line names the data directory.
    while proc is not None:
        if pgdata in " ".join(proc.cmdline()):
            return True
        proc = proc.parent()
    return False


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


@dataclass
class Poster:
    api: str
    server: LoopbackImageServer
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    posted_at: dict[int, float] = field(default_factory=dict)  # ad_id -> time.time()

    def post(self, ad: BenchAd) -> None:
        body = {
            "ad_id": ad.ad_id,
            "source": "bench",
            "category": None,
            "seller_id": f"seller-{ad.ad_id}",
            "images": [self.server.url_for(image.name) for image in ad.images],
        }
        self.posted_at[ad.ad_id] = time.time()
        response = self.client.post(f"{self.api}/api/v1/image/ingest", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"ingest failed: {response.status_code} {response.text}")


def wait_idle(client: httpx.Client, api: str, timeout: float, stack: Stack) -> float:
    """Poll until nothing is unfinished; returns time.time() when first seen idle.

    One persistent client: `httpx.get` builds a client (and an SSL context) per call, which
    costs this process ~30 ms of CPU each time, CPU the stack under test would not get."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = client.get(f"{api}/api/v1/progress", timeout=10).json()
        if progress["unfinished"] == 0:
            return time.time()
        stack.check_children()
        time.sleep(0.2)
    raise TimeoutError(f"pipeline not idle after {timeout}s: {progress}")


class DuplicateListener:
    """Reads imgdup.duplicates.v1 in a thread, recording each event with its receive time and
    its Kafka timestamp (when the clusterer produced it), both in epoch seconds."""

    def __init__(self, kafka: str) -> None:
        self.events: list[tuple[float, float, DuplicateEventV1]] = []  # (received, produced, event)
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": kafka,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                # A subscriber that wants events as they come asks the broker not to hold an
                # empty fetch for librdkafka's default 500 ms (measured here: ~0.5 s of the
                # "received" latency was that wait, not the pipeline).
                "fetch.wait.max.ms": 10,
            }
        )
        # Assigned, not subscribed: no consumer-group join to wait for.
        name = topics.DUPLICATES.name
        partitions = self._consumer.list_topics(name, timeout=10).topics[name].partitions
        self._consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.05)
            if message is None or message.error() is not None:
                continue
            event = DuplicateEventV1.model_validate_json(message.value() or b"")
            self.events.append((time.time(), message.timestamp()[1] / 1000.0, event))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def indexed_times(dsn: str, ad_ids: list[int]) -> list[float]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM indexed_at) FROM images"
            " WHERE ad_id = ANY(%s) AND indexed_at IS NOT NULL ORDER BY indexed_at",
            (ad_ids,),
        ).fetchall()
    return [float(r[0]) for r in rows]


def pair_counts(dsn: str, ad_ids: list[int]) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM duplicates WHERE ad_a = ANY(%s) OR ad_b = ANY(%s) GROUP BY status",
            (ad_ids, ad_ids),
        ).fetchall()
    return {str(s): int(n) for s, n in rows}


# ------------------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    total = args.images
    n_a = round(total * 2 / 3)
    n_b = total - n_a
    root = Path(tempfile.mkdtemp(prefix="imgdup-bench-"))
    root.chmod(0o755)  # the embedded Postgres runs as an unprivileged user when we are root
    if not args.keep:  # also when something fails before the stack starts
        atexit.register(shutil.rmtree, root, True)
    images_dir = root / "images"
    tiles = distinct_tiles()
    orig_a = round(n_a * (1 - COPY_SHARE))
    orig_b = round(n_b * (1 - COPY_SHARE))
    warm_ads, warm_originals = build_ads(
        images_dir, tiles[-6:], originals=4, copies=2, first_ad_id=900_000, seed=1
    )
    tiles = tiles[:-6]
    if orig_a + orig_b > len(tiles):
        raise SystemExit(f"--images {total} needs {orig_a + orig_b} distinct tiles; {len(tiles)} available")
    ads_a, originals_a = build_ads(
        images_dir, tiles[:orig_a], originals=orig_a, copies=n_a - orig_a, first_ad_id=100_000, seed=2
    )
    ads_b, _ = build_ads(
        images_dir,
        tiles[orig_a : orig_a + orig_b],
        originals=orig_b,
        copies=n_b - orig_b,
        first_ad_id=200_000,
        copy_from=originals_a,
        library=dict(tiles[:orig_a]),
        seed=3,
    )
    result["feed"] = {
        "phase_a": {"ads": len(ads_a), "images": sum(len(a.images) for a in ads_a)},
        "phase_b": {"ads": len(ads_b), "images": sum(len(a.images) for a in ads_b)},
        "copy_share": COPY_SHARE,
        "mean_jpeg_bytes": float(np.mean([p.stat().st_size for p in images_dir.glob("*.jpg")])),
    }
    print(f"feed: {result['feed']}", flush=True)
    settings = Settings()

    if not args.skip_standalone:
        print("standalone embedding ...", flush=True)
        blobs_by_ad = [[(images_dir / i.name).read_bytes() for i in ad.images] for ad in ads_a]
        blobs_by_ad = blobs_by_ad[: max(1, args.standalone_ads)]
        # In child processes: their model and OpenCV threads must not linger into the stack phases.
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            result["standalone"] = pool.submit(
                standalone, args.embedder, blobs_by_ad, settings.decode_max_pixels
            ).result()
        result["standalone"]["images"] = sum(len(b) for b in blobs_by_ad)
        # Verification cost per pair: copies with their originals, and unrelated pairs.
        flat_a = [i for ad in ads_a for i in ad.images]
        originals = {i.group: i for i in flat_a if i.edit == "original"}
        copies = [i for i in flat_a if i.edit != "original" and i.group in originals][:12]
        unrelated = list(zip(flat_a[0:24:2], flat_a[1:24:2], strict=True))
        pairs = [(originals[c.group], c) for c in copies] + unrelated
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            result["standalone"]["verify"] = pool.submit(
                verify_cost,
                [((images_dir / a.name).read_bytes(), (images_dir / b.name).read_bytes()) for a, b in pairs],
                settings.decode_max_pixels,
                # What the stack's workers run: IMGDUP_VERIFIER_VERSION, else the embedder's default.
                chosen_version(Settings(embedder=args.embedder)),
            ).result()
        print(json.dumps(result["standalone"], indent=1), flush=True)

    api_port = free_port()
    app_id = f"imgdup-bench-{uuid.uuid4().hex[:8]}"
    extra_env = {
        "IMGDUP_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "IMGDUP_API_PORT": str(api_port),
        "IMGDUP_APP_ID": app_id,
        # Each embedder runs its own verifier model (sscd_distilled: fused-v3-distilled, issue 14).
        "IMGDUP_EMBEDDER": args.embedder,
        # The images agent always micro-batches; --batch sets its size (1 = one call per event).
        **({"IMGDUP_EMBED_MAX_BATCH": str(args.batch)} if args.batch else {}),
        "IMGDUP_BENCH_INTRA_OP": str(args.intra_op),
        "IMGDUP_BENCH_NOSPIN": "1" if args.nospin else "",
        **({"IMGDUP_ANN_MIN_SCORE": str(args.min_score)} if args.min_score is not None else {}),
    }
    groups = [["images", "verifier", "clusterer"]]
    if args.workers == 2:  # the images role owns the embedded vector store: one process only
        groups = [["images", "clusterer"], ["verifier"]]
    elif args.workers == 3:  # one process per role, as docker-compose and the Helm chart run them
        groups = [["images"], ["verifier"], ["clusterer"]]
    elif args.workers == 4:  # two verifier processes in one consumer group: partitions shared
        groups = [["images", "clusterer"], ["verifier"], ["verifier"]]
    if args.images_workers > 1:
        # N processes of the images role alone: one consumer group, splitting the ad topic (a
        # shared vector store only); the other roles as --workers puts them, without images.
        rest = [[r for r in g if r != "images"] for g in groups]
        groups = [["images"]] * args.images_workers + [g for g in rest if g]
    stack_settings = Settings(
        data_dir=root / "stack",
        api_port=api_port,
        app_id=app_id,
        embedder=args.embedder,
        **({"vector_index": args.vector_store} if args.vector_store else {}),
    )
    stack = BenchStack(
        stack_settings,
        say=lambda line: print(f"  {line}", flush=True),
        extra_env=extra_env,
        worker_groups=groups,
    )
    stack.metrics_ports = {}
    listener: DuplicateListener | None = None
    try:
        with LoopbackImageServer(images_dir) as server:
            stack.start()
            ports = list(stack.metrics_ports.values())
            poster = Poster(stack.api_url, server)
            print("warm-up ...", flush=True)
            for ad in warm_ads:
                poster.post(ad)
            wait_idle(poster.client, stack.api_url, 300, stack)
            del warm_originals

            # ---- saturation
            print(f"saturation: posting {len(ads_a)} ads at once ...", flush=True)
            m0, c0 = scrape(ports), process_cpu(stack)
            per_worker0 = {name: scrape([port]) for name, port in stack.metrics_ports.items()}
            t0 = time.time()
            for ad in ads_a:
                poster.post(ad)
            post_s = time.time() - t0
            t_done = wait_idle(poster.client, stack.api_url, args.timeout, stack)
            m1, c1 = scrape(ports), process_cpu(stack)
            verified_by = {
                name: scrape([port]).get(VERIFY_COUNT, 0.0) - per_worker0[name].get(VERIFY_COUNT, 0.0)
                for name, port in stack.metrics_ports.items()
            }
            n_images_a = result["feed"]["phase_a"]["images"]
            ids_a = [ad.ad_id for ad in ads_a]
            times = indexed_times(stack.dsn, ids_a)
            lo, hi = times[int(len(times) * 0.1)], times[int(len(times) * 0.9) - 1]
            steady = (int(len(times) * 0.9) - 1 - int(len(times) * 0.1)) / max(1e-9, hi - lo)
            e2e = n_images_a / (t_done - t0)
            result["saturation"] = {
                "images": n_images_a,
                "indexed": len(times),
                "post_seconds": post_s,
                "seconds_to_idle": t_done - t0,
                "end_to_end_images_per_s": e2e,
                "indexing_steady_images_per_s": steady,
                "seconds_to_last_indexed": times[-1] - t0 if times else float("nan"),
                "pairs": pair_counts(stack.dsn, ids_a),
                "stages": stage_table(m0, m1, n_images_a),
                "cpu_seconds": cpu_delta(c0, c1),
                "pairs_verified_by_process": verified_by,
                "candidates_per_image": (
                    m1.get("imgdup_candidates_found_total{}", 0.0)
                    - m0.get("imgdup_candidates_found_total{}", 0.0)
                )
                / n_images_a,
            }
            print(json.dumps(result["saturation"], indent=1, default=str), flush=True)

            # ---- latency at half the rate
            rate = args.latency_rate or 0.5 * e2e
            mean_per_ad = n_b / max(1, len(ads_b))
            interval = mean_per_ad / rate
            print(
                f"latency: {len(ads_b)} ads at {rate:.2f} images/s (one ad every {interval:.2f}s) ...",
                flush=True,
            )
            listener = DuplicateListener(stack.kafka)
            time.sleep(2.0)  # let the consumer join before the first post
            m0, c0 = scrape(ports), process_cpu(stack)
            t0 = time.time()
            for k, ad in enumerate(ads_b):
                target = t0 + k * interval
                delay = target - time.time()
                if delay > 0:
                    time.sleep(delay)
                poster.post(ad)
            post_end = time.time()
            t_done = wait_idle(poster.client, stack.api_url, args.timeout, stack)
            time.sleep(3.0)  # the last events on their way to the listener
            listener.close()
            m1, c1 = scrape(ports), process_cpu(stack)
            phase_b = {ad.ad_id for ad in ads_b}
            received, detected, produced = [], [], []
            for received_at, produced_at, event in listener.events:
                later = event.duplicate.ad_id
                if later not in phase_b or event.replay:
                    continue
                received.append(received_at - poster.posted_at[later])
                detected.append(event.detected_at.timestamp() - poster.posted_at[later])
                produced.append(produced_at - poster.posted_at[later])
            result["latency"] = {
                "offered_images_per_s": rate,
                "achieved_post_images_per_s": n_b / max(1e-9, post_end - t0),
                "duplicate_events": len(received),
                "events_seen_total": len(listener.events),
                "event_to_duplicate_event_s": percentiles(received),
                "event_to_detected_at_s": percentiles(detected),
                "event_to_duplicate_produced_s": percentiles(produced),
                "max_s": max(received) if received else float("nan"),
                "seconds_to_idle_after_last_post": t_done - post_end,
                "pairs": pair_counts(stack.dsn, list(phase_b)),
                "stages": stage_table(m0, m1, n_b),
                "cpu_seconds": cpu_delta(c0, c1),
            }
            print(json.dumps(result["latency"], indent=1, default=str), flush=True)
    finally:
        if listener is not None and not listener._stop.is_set():
            listener.close()
        stack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    return result


def _modes(standalone: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    return {k: v for k, v in (standalone or {}).items() if isinstance(v, dict) and "images_per_s" in v}


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    lines = [
        f"### Throughput: embedder `{args['embedder']}`, {args['workers']} worker process(es),"
        f" batcher {args['batch'] or 'off'}, intra-op {args['intra_op'] or 'default'}"
        f"{', no spinning' if args.get('nospin') else ''}"
        f"{', ann_min_score ' + str(args['min_score']) if args.get('min_score') is not None else ''}"
        f"{', images processes ' + str(args['images_workers']) if args.get('images_workers', 1) > 1 else ''}"
        f"{', vector store ' + args['vector_store'] if args.get('vector_store') else ''}",
        "",
        f"Machine: {result['machine']['cores']} cores ({result['machine']['cpu']}), load average at start"
        f" {result['machine']['loadavg_at_start'][0]:.1f}. Feed: {result['feed']}.",
        "",
    ]
    sa = result.get("standalone")
    sat = result["saturation"]
    if sa:
        rows = [[k, v["images_per_s"], v["cpu_ms_per_image"]] for k, v in _modes(sa).items()]
        lines += ["Standalone decode+embed (same images, no streaming):", ""]
        lines += [table(["how", "images/s", "CPU ms per image"], rows), ""]
        lines += [
            table(["step, one call at a time", "CPU ms per image"], list(sa["single_thread_costs"].items())),
            "",
        ]
        if "verify" in sa:
            extracting = sa["verify"].get("cpu_ms_per_pair_extracting")
            lines += [
                f"Verification: {sa['verify']['cpu_ms_per_pair']:.0f} CPU ms per pair with the SIFT"
                " features stored at indexing"
                + (f" ({extracting:.0f} ms extracting them per pair)" if extracting else "")
                + f"; {sa['verify']['pairs']} pairs, copies and unrelated tiles.",
                "",
            ]
    ref = sa["per_ad_pool2_ort_default"]["images_per_s"] if sa else float("nan")
    best = max(v["images_per_s"] for v in _modes(sa).values()) if sa else float("nan")
    ref_cpu = sa["per_ad_pool2_ort_default"]["cpu_ms_per_image"] if sa else float("nan")
    best_cpu = (
        min(v["cpu_ms_per_image"] for k, v in _modes(sa).items() if "analyse" not in k)
        if sa
        else float("nan")
    )
    stack_cpu = (
        sum(v for k, v in sat["cpu_seconds"].items() if not k.startswith("bench")) / sat["images"] * 1e3
    )
    analyse_cpu = sa["analyse_per_ad_pool2_ort_default"]["cpu_ms_per_image"] if sa else float("nan")
    pairs_per_image = sum(sat["pairs"].values()) / sat["images"]
    verify_cpu = sa["verify"]["cpu_ms_per_pair"] * pairs_per_image if sa and "verify" in sa else float("nan")
    lines += [
        table(
            ["end to end (saturation)", "value"],
            [
                ["images", sat["images"]],
                ["end-to-end images/s (post -> all verified+clustered)", sat["end_to_end_images_per_s"]],
                ["indexing images/s (steady 10-90%)", sat["indexing_steady_images_per_s"]],
                ["ratio to standalone (per-ad, pool 2)", sat["end_to_end_images_per_s"] / ref],
                ["ratio to best standalone", sat["end_to_end_images_per_s"] / best],
                ["indexing ratio to standalone (per-ad, pool 2)", sat["indexing_steady_images_per_s"] / ref],
                ["stack CPU ms per image (all processes)", stack_cpu],
                ["CPU ratio: standalone (per-ad, pool 2) CPU / stack CPU per image", ref_cpu / stack_cpu],
                ["CPU ratio: leanest standalone CPU / stack CPU per image", best_cpu / stack_cpu],
                ["candidates per image", sat["candidates_per_image"]],
                ["  of which: analyse CPU ms/image (standalone)", analyse_cpu],
                ["  verification CPU ms/image (standalone ms/pair x pairs/image)", verify_cpu],
                [
                    "  streaming + storage overhead CPU ms/image (the rest)",
                    stack_cpu - analyse_cpu - verify_cpu,
                ],
                ["pairs", json.dumps(sat["pairs"])],
            ],
        ),
        "",
        *cpu_budget(sa, sat, stack_cpu, ref_cpu, pairs_per_image),
        "Per-stage time (worker histograms, saturation phase):",
        "",
        table(
            ["stage", "count", "mean ms", "ms per image"],
            [[k, v["count"], v["mean_ms"], v["per_image_ms"]] for k, v in sorted(sat["stages"].items())],
        ),
        "",
        "CPU seconds per process during saturation (2 cores x wall time = "
        f"{2 * sat['seconds_to_idle']:.0f} core-s available):",
        "",
        table(
            ["process", "cpu s", "ms per image"],
            [
                [k, v, v / sat["images"] * 1e3]
                for k, v in sorted(sat["cpu_seconds"].items(), key=lambda kv: -kv[1])
            ],
        ),
        "",
    ]
    by_process = {k: v for k, v in sat.get("pairs_verified_by_process", {}).items() if v}
    if len(by_process) > 1:
        lines += [
            "Pairs verified per worker process (one consumer group; Kafka splits the partitions): "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_process.items()))
            + ".",
            "",
        ]
    lat = result["latency"]
    lines += [
        table(
            ["latency at half rate", "p50 s", "p95 s", "p99 s"],
            [
                ["post -> duplicate event received", *lat["event_to_duplicate_event_s"].values()],
                ["post -> detected_at", *lat["event_to_detected_at_s"].values()],
                [
                    "post -> duplicate event produced (Kafka time)",
                    *lat["event_to_duplicate_produced_s"].values(),
                ],
            ],
        ),
        "",
        f"Offered {lat['offered_images_per_s']:.2f} images/s; {lat['duplicate_events']} duplicate events;"
        f" max {lat['max_s']:.2f} s.",
    ]
    return "\n".join(lines)


def cpu_budget(
    sa: dict[str, Any] | None, sat: dict[str, Any], stack_cpu: float, ref_cpu: float, pairs_per_image: float
) -> list[str]:
    """Where the stack's CPU per image goes: the reference (decode + embed), each further step
    the product runs per image or per pair (measured alone), the other processes, and the rest
    of the worker (Kafka, Faust, asyncio, psycopg, HTTP, vector store)."""
    if not sa or "verify" not in sa:
        return []
    steps = sa["single_thread_costs"]
    rows: list[list[Any]] = [["decode + embed (the standalone reference)", ref_cpu]]
    for label, key in (
        ("pHash, plain and mirrored", "phash_pair_ms"),
        ("stored 512-px copy (resize + JPEG)", "storage_jpeg_ms"),
        ("frame finder", "find_photo_region_ms"),
        ("SIFT features of the stored copy (decode + extract)", None),
    ):
        value = steps["load_stored_copy_ms"] + steps["extract_sift_ms"] if key is None else steps[key]
        rows.append([label, value])
    rows.append(
        [
            f"verification ({pairs_per_image:.2f} pairs x {sa['verify']['cpu_ms_per_pair']:.1f} ms)",
            pairs_per_image * sa["verify"]["cpu_ms_per_pair"],
        ]
    )
    others = {
        k: v for k, v in sat["cpu_seconds"].items() if k not in ("worker",) and not k.startswith("bench")
    }
    for name, seconds in sorted(others.items(), key=lambda kv: -kv[1]):
        rows.append([f"{name} process", seconds / sat["images"] * 1e3])
    accounted = sum(float(r[1]) for r in rows)
    rows.append(
        [
            "worker, the rest (Kafka, Faust, asyncio, psycopg, HTTP, vectors, thread hand-offs)",
            stack_cpu - accounted,
        ]
    )
    rows.append(["total stack CPU per image", stack_cpu])
    return [
        "CPU budget per image (steps measured alone; the ratio target allows "
        f"{ref_cpu / 0.8:.0f} ms in all):",
        "",
        table(["where", "CPU ms per image"], rows),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--embedder", choices=["sscd", "sscd_distilled"], default="sscd")
    parser.add_argument("--images", type=int, default=240, help="images over both phases (2/3 saturation)")
    parser.add_argument("--standalone-ads", type=int, default=16, help="ads of phase A used standalone")
    parser.add_argument(
        "--workers",
        type=int,
        choices=[1, 2, 3, 4],
        default=1,
        help="2: a second process runs the verifier role; 3: one process per role; "
        "4: two verifier processes sharing the candidate topic's partitions",
    )
    parser.add_argument(
        "--images-workers", type=int, default=1, help="images processes (2+ need a shared vector store)"
    )
    parser.add_argument(
        "--vector-store",
        choices=["edge", "numpy", "pgvector"],
        default=None,
        help="IMGDUP_VECTOR_STORE for the stack (default: the settings' default)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="IMGDUP_EMBED_MAX_BATCH for the worker (0 = the product's default)",
    )
    parser.add_argument("--intra-op", type=int, default=0, help="ONNX Runtime intra-op threads (0 = default)")
    parser.add_argument("--nospin", action="store_true", help="ONNX Runtime intra-op spin-waiting off")
    parser.add_argument(
        "--min-score", type=float, default=None, help="IMGDUP_ANN_MIN_SCORE for the stack (default: settings)"
    )
    parser.add_argument("--latency-rate", type=float, default=0.0, help="images/s (default: half the max)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--skip-standalone", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--name", default="", help="result file suffix (default from the options)")
    args = parser.parse_args(argv)
    os.chdir(Path(__file__).resolve().parent.parent)
    result = run(args)
    name = args.name or "-".join(
        part
        for part in (
            "throughput",
            args.embedder,
            f"w{args.workers}" if args.workers != 1 else "",
            f"i{args.images_workers}" if args.images_workers != 1 else "",
            args.vector_store or "",
            f"b{args.batch}" if args.batch else "",
            f"t{args.intra_op}" if args.intra_op else "",
            "nospin" if args.nospin else "",
            f"ms{args.min_score:g}" if args.min_score is not None else "",
        )
        if part
    )
    write_results(name, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
