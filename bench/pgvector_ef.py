"""Near-duplicate hit@10 and latency of pgvector's HNSW at several hnsw.ef_search values.

    python -m bench.pgvector_ef [--n 100000] [--queries 200]

N random unit 512-d vectors (two per ad) are loaded into an embedded Postgres, the HNSW index
(m=16, ef_construction=64, as imgdup.vectors.pgvector builds it) is built after the load (the
same graph algorithm as insertion, much faster to set up), and near-duplicates at cosine
U(0.8, 0.95) of stored vectors are searched with the store's query shape (an ad filter,
iterative scan relaxed_order) for each ef_search. Writes bench/results/pgvector-ef-search.md/.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench.common import machine, percentiles, table, write_results
from imgdup.ops.embedded import start_postgres

DIM = 512


def _text(v: np.ndarray) -> str:
    return "[" + ",".join(map(repr, v.astype(np.float64).tolist())) + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pgvector_ef", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,100,200,400,800")
    parser.add_argument("--name", default="pgvector-ef-search")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((args.n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    targets = rng.choice(args.n, args.queries, replace=False)
    cos = rng.uniform(0.8, 0.95, args.queries).astype(np.float32)
    noise = rng.standard_normal((args.queries, DIM), dtype=np.float32)
    noise -= (noise * x[targets]).sum(1, keepdims=True) * x[targets]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = cos[:, None] * x[targets] + np.sqrt(1 - cos**2)[:, None] * noise
    result: dict[str, Any] = {"machine": machine(), "args": vars(args), "runs": []}
    root = Path(tempfile.mkdtemp(prefix="imgdup-bench-pgvector-ef-"))
    root.chmod(0o755)  # the embedded Postgres runs as an unprivileged user when we are root
    pg = start_postgres(root / "pg")
    try:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE TABLE v (id int PRIMARY KEY, ad bigint, e vector({DIM}))")
            conn.execute("ALTER TABLE v ALTER COLUMN e SET STORAGE PLAIN")
            t0 = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO v VALUES (%s, %s, %s::vector)",
                    [(i, i // 2, _text(x[i])) for i in range(args.n)],
                )
            result["load_s"] = time.perf_counter() - t0
            conn.execute("SET maintenance_work_mem = '1GB'")
            t0 = time.perf_counter()
            conn.execute(
                "CREATE INDEX ON v USING hnsw (e vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            result["index_build_s"] = time.perf_counter() - t0
            conn.execute("ANALYZE v")
            conn.execute("SET hnsw.iterative_scan = relaxed_order")
            for ef in (int(e) for e in args.ef.split(",")):
                conn.execute(f"SET hnsw.ef_search = {ef}")
                hit, lat = 0, []
                for k in range(args.queries):
                    t = time.perf_counter()
                    rows = conn.execute(
                        "SELECT id FROM v WHERE ad <> %s ORDER BY e <=> %s::vector LIMIT 10",
                        (10**9, _text(q[k])),
                    ).fetchall()
                    lat.append(time.perf_counter() - t)
                    hit += int(targets[k]) in {r[0] for r in rows}
                run = {
                    "ef_search": ef,
                    "near_duplicate_hit_at_10": hit / args.queries,
                    "query_ms": {k: v * 1e3 for k, v in percentiles(lat, (50, 99)).items()},
                }
                print(run, flush=True)
                result["runs"].append(run)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    write_results(args.name, result, markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    return "\n".join(
        [
            f"### pgvector HNSW, {result['args']['n']:,} random 512-d vectors, near-duplicates at cosine"
            f" 0.8-0.95 ({m['cores']} cores, load average {m['loadavg_at_start'][0]:.1f} at start)",
            "",
            f"Load {result['load_s']:.0f} s, index build {result['index_build_s']:.0f} s"
            " (m=16, ef_construction=64).",
            "",
            table(
                ["hnsw.ef_search", "near-dup hit@10", "p50 ms", "p99 ms"],
                [
                    [
                        r["ef_search"],
                        r["near_duplicate_hit_at_10"],
                        r["query_ms"]["p50"],
                        r["query_ms"]["p99"],
                    ]
                    for r in result["runs"]
                ],
            ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
