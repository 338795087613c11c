"""Vector stores at 100k and 1M x 512-d: upsert rate, build time, top-10 latency, near-duplicate
hit@10, recall@10 against exact search, memory against the raw vectors.

    python -m bench.vectors [--sizes 100000,1000000] [--queries 200] [--edge-max 100000]
                            [--pgvector-max 100000] [--hnsw-n 20000] [--local-n 5000] [--no-real]
                            [--pgvector-bulk [--maintenance-work-mem 4GB] [--parallel-workers 1]]

Stores measured:
  numpy-b128 / numpy-b256   imgdup.vectors.numpy_index.NumpyVectorIndex (sketch scan + exact re-rank)
  edge-plain                imgdup.vectors.edge.EdgeVectorStore (qdrant-edge, exact plain segments)
  edge-hnsw (subprocess)    a copy of an edge-plain folder, HNSW built by optimize() in another
                            process while this one keeps upserting into the original
  qdrant-local              qdrant-client local mode (the server adapter's code path, brute force)
  pgvector-hnsw             imgdup.vectors.pgvector.PgVectorStore in an embedded Postgres (HNSW,
                            m=16, ef_construction=64, ef_search=400, iterative scan); its memory
                            is the server's, so the table and index size is reported instead
                            (and the server processes' RSS/PSS). --pgvector-bulk fills it by
                            binary COPY and one index build (bench/pgvector_bulk.py), not upserts

Every store also ingests 2-image upserts for a few seconds while another thread queries it
("while querying": points/s upserted, query p99 meanwhile), as an images worker does.

Data: random unit vectors (SSCD spreads unrelated photos over the sphere; the worst case for
partition and graph indexes); queries are near-duplicates at cosine U(0.8, 0.95) of stored
vectors. With --real (default on), 40 real SSCD embeddings of photos are stored among them and
their edited copies (resize, flip, crop, watermark, brightness, contrast, JPEG) are queried too.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench import pgvector_bulk
from bench.common import machine, percentiles, rss_bytes, table, write_results
from imgdup.vectors.base import VectorPoint, VectorStore
from imgdup.vectors.edge import EdgeVectorStore
from imgdup.vectors.numpy_index import NumpyVectorIndex
from imgdup.vectors.pgvector import PgVectorStore

DIM = 512
LIMIT = 10
CATEGORIES = 0  # --categories: points get category "c{row % CATEGORIES}"; queries ask for the target's
MIN_SCORE = 0.3
PG: Any = None  # the embedded Postgres, when pgvector runs


def point_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):
        block = rng.standard_normal((min(n, s + 100_000) - s, DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + len(block)] = block
    return out


def near_copies(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    cos = rng.uniform(0.8, 0.95, len(x)).astype(np.float32)
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    noise -= (noise * x).sum(1, keepdims=True) * x
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out: np.ndarray = cos[:, None] * x + np.sqrt(1 - cos**2)[:, None] * noise
    return out.astype(np.float32)


def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(originals [40, 512], their edited copies [40, 512]) embedded with SSCD."""
    import io

    from bench.photos import COPY_EDITS, distinct_tiles
    from imgdup.ops.demo.feed import _EDITS
    from imgdup_core.decode import decode_image
    from imgdup_core.embedding import build_embedder

    embedder = build_embedder("sscd")
    tiles = distinct_tiles()[:40]

    def rgb(image: Any, quality: int = 92) -> np.ndarray:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return decode_image(buffer.getvalue()).rgb

    import random

    originals = [rgb(tile) for _, tile in tiles]
    copies = []
    for k, (_, tile) in enumerate(tiles):
        transform, quality = _EDITS[COPY_EDITS[k % len(COPY_EDITS)]]
        copies.append(rgb(transform(tile, random.Random(k)), quality))
    return embedder.embed(originals), embedder.embed(copies)


def category_of(row: int) -> str | None:
    return f"c{row % CATEGORIES}" if CATEGORIES else None


def exact_topk(
    x: np.ndarray, q: np.ndarray, k: int, targets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ids and scores of each query by brute force (chunked matmul); with
    categories, only rows of the query target's category count."""
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for s in range(0, len(x), 200_000):
        scores = q @ x[s : s + 200_000].T
        if CATEGORIES and targets is not None:
            rows = np.arange(s, s + scores.shape[1])
            scores[(rows[None, :] % CATEGORIES) != (targets[:, None] % CATEGORIES)] = -np.inf
        idx = np.argpartition(-scores, k, axis=1)[:, :k]
        cand_s = np.take_along_axis(scores, idx, 1)
        all_s = np.concatenate([best_s, cand_s], 1)
        all_i = np.concatenate([best_i, idx + s], 1)
        top = np.argsort(-all_s, 1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return best_i, best_s


def fill(store: VectorStore, x: np.ndarray, batch: int = 1000) -> float:
    """Upsert everything (ad id = row // 2, no category); returns points per second."""
    t = time.perf_counter()
    for s in range(0, len(x), batch):
        store.upsert(
            [
                VectorPoint(point_id(i), x[i], i // 2, category_of(i), "bench")
                for i in range(s, min(len(x), s + batch))
            ]
        )
    return len(x) / (time.perf_counter() - t)


def measure_queries(
    store: VectorStore, q: np.ndarray, targets: np.ndarray, truth_i: np.ndarray, truth_s: np.ndarray
) -> dict[str, Any]:
    lat, hit, recall, recall_min = [], 0, [], []
    for k in range(len(q)):
        t = time.perf_counter()
        hits = store.search(q[k], limit=LIMIT, category=category_of(int(targets[k])))
        lat.append(time.perf_counter() - t)
        got = {h.image_id for h in hits}
        hit += point_id(int(targets[k])) in got
        want = {point_id(int(i)) for i in truth_i[k]}
        recall.append(len(got & want) / LIMIT)
        above = {point_id(int(i)) for i, s in zip(truth_i[k], truth_s[k], strict=True) if s >= MIN_SCORE}
        if above:
            recall_min.append(len(got & above) / len(above))
    ms = {k: v * 1e3 for k, v in percentiles(lat, (50, 95, 99)).items()}
    return {
        "query_ms": ms,
        "near_duplicate_hit_at_10": hit / len(q),
        "recall_at_10_vs_exact": float(np.mean(recall)),
        "recall_of_exact_hits_above_min_score": float(np.mean(recall_min)) if recall_min else float("nan"),
    }


def upsert_latency(store: VectorStore, rng: np.random.Generator, base: int, n: int = 300) -> dict[str, float]:
    """Single-ad upserts (2 images) into the full store: does any of them stall?"""
    lat = []
    for k in range(n):
        v = unit_rows(rng, 2)
        t = time.perf_counter()
        store.upsert(
            [VectorPoint(point_id(base + 2 * k + j), v[j], 10**9 + k, None, "bench") for j in range(2)]
        )
        lat.append(time.perf_counter() - t)
    return {**{k: v * 1e3 for k, v in percentiles(lat, (50, 99)).items()}, "max": max(lat) * 1e3}


def ingest_while_querying(
    store: VectorStore, q: np.ndarray, rng: np.random.Generator, seconds: float = 8.0
) -> dict[str, Any]:
    """2-image upserts for `seconds` while another thread queries in a loop: the upsert rate and
    the query latency an images worker sees when ingesting and searching at once."""
    stop = threading.Event()
    lat: list[float] = []

    def query() -> None:
        k = 0
        while not stop.is_set():
            t = time.perf_counter()
            store.search(q[k % len(q)], limit=LIMIT, min_score=MIN_SCORE)
            lat.append(time.perf_counter() - t)
            k += 1

    thread = threading.Thread(target=query)
    thread.start()
    points, k, base = 0, 0, 20_000_000
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            v = unit_rows(rng, 2)
            store.upsert(
                [
                    VectorPoint(point_id(base + 2 * k + j), v[j], 2 * 10**9 + k, None, "bench")
                    for j in range(2)
                ]
            )
            points += 2
            k += 1
    finally:
        stop.set()
        thread.join()
    wall = time.perf_counter() - t0
    return {
        "points_per_s": points / wall,
        "queries_per_s": len(lat) / wall,
        "query_ms": {kk: vv * 1e3 for kk, vv in percentiles(lat, (50, 99)).items()},
    }


def _hnsw_child(path: str, queries: np.ndarray, targets: list[int], out: Any) -> None:
    import qdrant_edge as qe

    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=DIM,
            distance=qe.Distance.Cosine,
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000),
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1000, prevent_unoptimized=False),
    )
    shard = qe.EdgeShard.load(path, config)
    t = time.perf_counter()
    shard.optimize()
    build = time.perf_counter() - t
    lat, hit = [], 0
    params = qe.SearchParams(hnsw_ef=128)
    for q, target in zip(queries, targets, strict=True):
        t = time.perf_counter()
        points = shard.query(qe.QueryRequest(limit=LIMIT, query=qe.Query.Nearest(q.tolist()), params=params))
        lat.append(time.perf_counter() - t)
        hit += str(uuid.UUID(int=target + 1)) in {str(p.id) for p in points}
    shard.close()
    out.put({"build_s": build, "lat": lat, "hit": hit / len(targets)})


def edge_hnsw(
    x: np.ndarray, q: np.ndarray, targets: np.ndarray, workdir: Path, rng: np.random.Generator
) -> dict[str, Any]:
    """HNSW built by optimize() in a separate process on a copy; this process keeps ingesting."""
    live = EdgeVectorStore(workdir / "hnsw-live", dim=DIM)
    fill(live, x)
    live.close()  # flush, then copy the folder: the copy is what gets indexed
    shutil.copytree(workdir / "hnsw-live", workdir / "hnsw-copy")
    live = EdgeVectorStore(workdir / "hnsw-live", dim=DIM)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(
        target=_hnsw_child, args=(str(workdir / "hnsw-copy"), q, [int(t) for t in targets], out)
    )
    t0 = time.perf_counter()
    child.start()
    lat = []
    k = 0
    while child.is_alive() and out.empty():
        v = unit_rows(rng, 2)
        t = time.perf_counter()
        live.upsert(
            [VectorPoint(point_id(len(x) + 2 * k + j), v[j], 10**9 + k, None, "bench") for j in range(2)]
        )
        lat.append(time.perf_counter() - t)
        k += 1
        time.sleep(0.01)
    result = out.get(timeout=3600)
    child.join()
    live.close()
    return {
        "n": len(x),
        "build_s_in_child": result["build_s"],
        "child_wall_s": time.perf_counter() - t0,
        "query_ms": {kk: vv * 1e3 for kk, vv in percentiles(result["lat"], (50, 95, 99)).items()},
        "near_duplicate_hit_at_10": result["hit"],
        "ingest_during_build": {
            "upserts": len(lat),
            **{kk: vv * 1e3 for kk, vv in percentiles(lat, (50, 99)).items()},
            "max_ms": max(lat) * 1e3 if lat else float("nan"),
        },
        "params": {"m": 16, "ef_construct": 100, "hnsw_ef": 128},
    }


def run_store(
    name: str,
    make: Any,
    x: np.ndarray,
    q: np.ndarray,
    targets: np.ndarray,
    truth: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    extra: Any = None,
    bulk: Any = None,
    unfiltered_truth: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    gc.collect()
    rss0 = rss_bytes()
    store = make()
    loaded = None
    if bulk is not None and isinstance(store, PgVectorStore):
        loaded = bulk(store, x)
        rate = len(x) / (loaded["copy_s"] + loaded["index_build_s"])
    else:
        rate = fill(store, x)
    gc.collect()
    rss1 = rss_bytes()
    result: dict[str, Any] = {
        "store": name,
        "n": len(x),
        "upsert_per_s": rate,
        "build_s": len(x) / rate,
        "rss_delta_bytes": rss1 - rss0,
        "rss_over_raw": (rss1 - rss0) / (x.nbytes or 1),
    }
    if isinstance(store, NumpyVectorIndex):
        result["array_bytes_over_raw"] = store.memory_bytes() / (x.nbytes or 1)
    if loaded is not None:
        result["bulk_load"] = loaded
    if isinstance(store, PgVectorStore):
        result["pg_relation_bytes_over_raw"] = store.size_bytes() / (x.nbytes or 1)
    result.update(measure_queries(store, q, targets, *truth))
    if unfiltered_truth is not None:  # the same queries without the category filter
        global CATEGORIES
        kept, CATEGORIES = CATEGORIES, 0
        try:
            result["unfiltered"] = measure_queries(store, q, targets, *unfiltered_truth)
        finally:
            CATEGORIES = kept
    if extra is not None:
        result.update(extra(store))
    result["upsert_2_images_ms"] = upsert_latency(store, rng, len(x) + 10_000_000)
    result["while_querying"] = ingest_while_querying(store, q, rng)
    if isinstance(store, PgVectorStore) and PG is not None:  # hot: after the queries and upserts
        result["pg_relation_bytes"] = pgvector_bulk.relation_bytes(PG.dsn, store)
        result["pg_server_memory"] = pgvector_bulk.server_memory(PG.postmaster_pid())
    store.close()
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vectors", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000", help="comma-separated store sizes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--edge-max", type=int, default=100_000, help="largest size for edge-plain")
    parser.add_argument("--numpy-256-max", type=int, default=100_000, help="largest size for numpy-b256")
    parser.add_argument(
        "--pgvector-max", type=int, default=100_000, help="largest size for pgvector (0 = skip)"
    )
    parser.add_argument("--only", default="", help="comma-separated store names to run (default: all)")
    parser.add_argument("--hnsw-n", type=int, default=10_000, help="edge HNSW size (0 = skip)")
    parser.add_argument("--local-n", type=int, default=5_000, help="qdrant-client local size (0 = skip)")
    parser.add_argument("--no-real", action="store_true", help="skip the real SSCD embeddings")
    parser.add_argument(
        "--categories", type=int, default=0, help="K category shards (queries filter by category)"
    )
    parser.add_argument(
        "--pgvector-bulk", action="store_true", help="fill pgvector by COPY + one HNSW build, not upserts"
    )
    parser.add_argument("--maintenance-work-mem", default="4GB", help="for the bulk HNSW build")
    parser.add_argument("--parallel-workers", type=int, default=1, help="max_parallel_maintenance_workers")
    parser.add_argument(
        "--unfiltered-too", action="store_true", help="with --categories: also the queries without filter"
    )
    parser.add_argument("--name", default="vectors")
    args = parser.parse_args(argv)
    global CATEGORIES, PG
    CATEGORIES = args.categories
    rng = np.random.default_rng(7)
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, Any] = {"machine": machine(), "args": vars(args), "runs": [], "dim": DIM}
    real = None
    if not args.no_real:  # in a child process, so the model's memory never shows in this one's RSS
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            real = pool.submit(real_embeddings).result()
    if real is not None:
        cos = (real[0] * real[1]).sum(1)
        result["real_sscd_copy_cosine"] = {"min": float(cos.min()), "mean": float(cos.mean())}
    workdir = Path(tempfile.mkdtemp(prefix="imgdup-bench-vectors-"))
    workdir.chmod(0o755)  # the embedded Postgres runs as an unprivileged user when we are root
    pg = None
    if args.pgvector_max:
        from imgdup.ops.embedded import start_postgres

        pg = PG = start_postgres(workdir / "pg")
    bulk = None
    if args.pgvector_bulk and pg is not None:
        dsn = pg.dsn

        def bulk(store: PgVectorStore, x: np.ndarray) -> dict[str, Any]:
            ids = [point_id(i) for i in range(len(x))]
            rows = pgvector_bulk.copy_rows(
                x, ids, [i // 2 for i in range(len(x))], [category_of(i) for i in range(len(x))], "bench"
            )
            return pgvector_bulk.bulk_load(
                store,
                dsn,
                rows,
                maintenance_work_mem=args.maintenance_work_mem,
                parallel_workers=args.parallel_workers,
                progress_every=30.0,
            )

    try:
        for n in sizes:
            x = unit_rows(rng, n)
            targets = rng.choice(n, args.queries, replace=False)
            q = near_copies(rng, x[targets])
            if real is not None:  # real originals stored at the first rows, their copies queried
                x[: len(real[0])] = real[0]
                targets = np.concatenate([targets[targets >= len(real[0])], np.arange(len(real[0]))])
                q = np.concatenate([q[: len(targets) - len(real[0])], real[1]])
                targets, q = targets[-args.queries :], q[-args.queries :]
            truth = exact_topk(x, q, LIMIT, targets)
            unfiltered = exact_topk(x, q, LIMIT) if CATEGORIES and args.unfiltered_too else None
            stores: list[tuple[str, Any]] = [
                ("numpy-b128", lambda n=n: NumpyVectorIndex(workdir / f"np128-{n}", dim=DIM, bits=128)),
            ]
            if n <= args.numpy_256_max:
                stores.append(
                    ("numpy-b256", lambda n=n: NumpyVectorIndex(workdir / f"np256-{n}", dim=DIM, bits=256))
                )
            if n <= args.edge_max:
                stores.append(("edge-plain", lambda n=n: EdgeVectorStore(workdir / f"edge-{n}", dim=DIM)))
            if pg is not None and n <= args.pgvector_max:
                stores.append(
                    ("pgvector-hnsw", lambda n=n: PgVectorStore(pg.dsn, space=f"bench-{n}", dim=DIM))
                )
            if args.only:
                stores = [s for s in stores if s[0] in args.only.split(",")]
            for name, make in stores:
                result["runs"].append(
                    run_store(name, make, x, q, targets, truth, rng, bulk=bulk, unfiltered_truth=unfiltered)
                )
            del x, truth
            gc.collect()
        if args.local_n:
            from qdrant_client import QdrantClient

            from imgdup.vectors.qdrant_server import QdrantServerStore

            n = args.local_n
            x = unit_rows(rng, n)
            targets = rng.choice(n, min(args.queries, 100), replace=False)
            q = near_copies(rng, x[targets])
            truth = exact_topk(x, q, LIMIT, targets)
            result["runs"].append(
                run_store(
                    "qdrant-local",
                    lambda: QdrantServerStore(QdrantClient(location=":memory:"), collection="b", dim=DIM),
                    x,
                    q,
                    targets,
                    truth,
                    rng,
                )
            )
        if args.hnsw_n:
            n = args.hnsw_n
            x = unit_rows(rng, n)
            targets = rng.choice(n, min(args.queries, 100), replace=False)
            q = near_copies(rng, x[targets])
            result["edge_hnsw_subprocess"] = edge_hnsw(x, q, targets, workdir, rng)
            print(json.dumps(result["edge_hnsw_subprocess"]), flush=True)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    write_results(args.name, result, markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = [
        [
            r["store"],
            f"{r['n']:,}",
            r["upsert_per_s"],
            r["build_s"],
            r["query_ms"]["p50"],
            r["query_ms"]["p99"],
            r["near_duplicate_hit_at_10"],
            r["recall_at_10_vs_exact"],
            r["recall_of_exact_hits_above_min_score"],
            r["rss_over_raw"],
            r.get("pg_relation_bytes_over_raw", ""),
            r["upsert_2_images_ms"]["max"],
            r["while_querying"]["points_per_s"] if "while_querying" in r else "",
            r["while_querying"]["query_ms"]["p99"] if "while_querying" in r else "",
        ]
        for r in result["runs"]
    ]
    lines = [
        f"### Vector stores, {result['dim']}-d, top-{LIMIT}"
        f"{f', {CATEGORIES} category shards, queries filtered by category' if CATEGORIES else ''}"
        f" ({m['cores']} cores, {m['cpu']},"
        f" load average {m['loadavg_at_start'][0]:.1f} at start)",
        "",
        table(
            [
                "store",
                "N",
                "upserts/s",
                "build s",
                "p50 ms",
                "p99 ms",
                "near-dup hit@10",
                "recall@10",
                f"recall (exact hits >= {MIN_SCORE})",
                "RSS / raw",
                "Postgres table+index / raw",
                "max 2-image upsert ms",
                "points/s upserted while querying",
                "query p99 ms meanwhile",
            ],
            rows,
        ),
        "",
    ]
    if "real_sscd_copy_cosine" in result:
        lines += [
            f"Real SSCD copies stored among the random vectors: cosine {result['real_sscd_copy_cosine']}.",
            "",
        ]
    h = result.get("edge_hnsw_subprocess")
    if h:
        p, ingest, ms = h["params"], h["ingest_during_build"], h["query_ms"]
        lines += [
            f"qdrant-edge HNSW (m={p['m']}, ef_construct={p['ef_construct']}, hnsw_ef={p['hnsw_ef']})"
            f" built by optimize() in a separate process on a copy of {h['n']:,} points:"
            f" build {h['build_s_in_child']:.1f} s; query p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms;"
            f" near-dup hit@10 {h['near_duplicate_hit_at_10']:.3f}; meanwhile {ingest['upserts']} upserts"
            f" into the live store, p99 {ingest['p99']:.1f} ms, max {ingest['max_ms']:.1f} ms.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
