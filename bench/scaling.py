"""Per-image cost of the non-embedding hot path at 10k and 100k indexed images, the plans of the
hot queries, and the Postgres bytes each image costs (stored copies and features in the blob store).

    python -m bench.scaling [--sizes 10000,100000] [--ads 100] [--stores numpy,edge,pgvector]

For each size N: an embedded Postgres (fresh, migrated) and a vector store are pre-filled by
bulk insert with N synthetic images (2 per ad, random unit vectors, 20% of them in clusters of
3, 10% in rejected pairs). Then `--ads` new ads of 2 images run the images agent's steps
without download and model (begin_event, save_indexed_images, vector upsert, top-K search,
add_candidates, finish_event) and the verifier's and clusterer's storage steps for every
candidate (load_for_verification, save_verdict, cluster_pair). 30% of the new images are
near-duplicates (cosine 0.9) of stored ones, half of those of clustered images, so clusters grow.

The pre-fill writes each image's stored copy and SIFT features through the blob store (files under
the run's folder, imgdup.blobs.fs, as `imgdup up` does) and only their addresses to `image_blobs`;
then the size of every table with its indexes and TOAST (pg_total_relation_size) over N is the
Postgres bytes per image (target: <= 16 KB).

Every statement of that hot path runs with auto_explain (log_analyze, plans sent back as
notices): the plans are stored in the JSON, and any Seq Scan on a large table is listed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import AnyHttpUrl

from bench.common import machine, table, write_results
from imgdup import ids
from imgdup.analysis.analyse import AnalysedImage
from imgdup.blobs.base import BlobStore, blob_ref
from imgdup.blobs.fs import FilesystemBlobStore
from imgdup.ops.embedded import start_postgres
from imgdup.store import events, pairs, truth
from imgdup.store import images as image_rows
from imgdup.store.db import migrate
from imgdup.vectors.base import VectorPoint, VectorStore
from imgdup.vectors.edge import EdgeVectorStore
from imgdup.vectors.numpy_index import NumpyVectorIndex
from imgdup.vectors.pgvector import PgVectorStore
from imgdup_core.bridges import BridgeRule
from schemas import AdImagesCreatedV1, EvidenceV1, VersionsV1

DIM = 512
TOP_K = 10
MIN_SCORE = 0.3
JPEG = bytes(random.Random(1).randbytes(6000))  # stands in for the 512-px copy (~6 KB... 40 KB real)
# Stands in for a new image's stored SIFT features (imgdup_core.sift.sift_to_bytes: ~500
# keypoints x 136 bytes).
SIFT = bytes(random.Random(2).randbytes(68_000))
# Pre-filled images get unique blobs (distinct addresses, as real photos have), smaller than real
# ones to keep 100k images' files within a few GB: Postgres stores only their addresses and sizes,
# whatever their length.
PREFILL_SIFT = SIFT[:16_000]
BIG_TABLES = {
    "images",
    "image_blobs",
    "duplicates",
    "ads",
    "ingest_events",
    "cluster_members",
    "duplicate_clusters",
}
VERSIONS = VersionsV1(embedding_model="bench", verifier="bench")
# The product's clustering rule with its default settings (held bridges, imgdup_core.bridges).
BRIDGE_RULE = BridgeRule()


async def add_candidates(pool: AsyncConnectionPool, rows: list[pairs.CandidateRow]) -> set[str]:
    return await pairs.add_candidates(pool, rows, verifier_version=VERSIONS.verifier)


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def fill_blobs(
    blobs: BlobStore, n: int, files: int | None = None
) -> tuple[list[tuple[str, int, str, int]], float]:
    """Each pre-filled image's copy and features put through the blob store (threads, like the
    images worker): their (jpeg sha256, size, sift sha256, size), and the seconds it took.
    With `files`, only the first `files` images get files (the only ones the hot path reads,
    see hot_path's near-duplicate sources); the others get the same addresses, computed
    (blob_ref) but not written: 2 fsynced files per image would take 1M images' fill hours."""
    t = time.perf_counter()
    limit = n if files is None else min(n, files)

    def put(i: int) -> tuple[str, int, str, int]:
        tag = i.to_bytes(8, "little")
        store = blobs.put if i < limit else blob_ref
        jpeg, sift = store(tag + JPEG), store(tag + PREFILL_SIFT)
        return jpeg.sha256, jpeg.size, sift.sha256, sift.size

    with ThreadPoolExecutor(8) as pool:
        refs = list(pool.map(put, range(n), chunksize=256))
    return refs, time.perf_counter() - t


def postgres_bytes(conn: psycopg.Connection[Any], n: int) -> dict[str, Any]:
    """Every table's size with its indexes and TOAST, and their sum over the n images."""
    tables: dict[str, int] = dict(
        conn.execute(
            "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables ORDER BY relname"
        ).fetchall()
    )
    total = sum(tables.values())
    return {"tables": tables, "total": total, "per_image": total / n}


def prefill(
    dsn: str, n: int, vectors: np.ndarray, rng: random.Random, blobs: BlobStore, files: int | None = None
) -> dict[str, Any]:
    """Bulk-load N images (ad = i // 2) with their rows in every table the hot path touches."""
    image_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    refs, blob_seconds = fill_blobs(blobs, n, files)
    t = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY ads (ad_id, source, category, seller_id, last_event_id) FROM STDIN") as copy:
                for ad in range(n // 2):
                    copy.write_row((ad + 1, "bench", None, f"s{ad}", f"e{ad}"))
            with cur.copy("COPY ingest_events (event_id, ad_id, payload, status) FROM STDIN") as copy:
                for ad in range(n // 2):
                    copy.write_row((f"e{ad}", ad + 1, json.dumps({"ad_id": ad + 1}), "indexed"))
            with cur.copy(
                "COPY images (image_id, ad_id, url, position, status, content_sha256, pixel_sha256, phash,"
                " phash_mirrored, width, height, format, embedding_model, embedding, indexed_at) FROM STDIN"
            ) as copy:
                now = datetime.now(UTC)
                for i in range(n):
                    copy.write_row(
                        (
                            image_ids[i],
                            i // 2 + 1,
                            f"http://img/{i}.jpg",
                            i % 2,
                            "indexed",
                            f"c{i}",
                            f"p{i}",
                            rng.getrandbits(63),
                            rng.getrandbits(63),
                            640,
                            480,
                            "JPEG",
                            "bench",
                            vectors[i].astype("<f4").tobytes(),
                            now,
                        )
                    )
            with cur.copy(
                "COPY image_blobs (image_id, jpeg_sha256, jpeg_size, sift_sha256, sift_size) FROM STDIN"
            ) as copy:
                for i in range(n):
                    copy.write_row((image_ids[i], *refs[i]))
            # Clusters of 3 images from 3 ads: images 10g, 10g+2, 10g+4 (20% of all images).
            members: dict[int, str] = {}
            with cur.copy(
                "COPY duplicate_clusters (cluster_id, size, ad_count, edge_count, confidence) FROM STDIN"
            ) as copy:
                for g in range(n // 10):
                    cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    copy.write_row((cid, 3, 3, 2, 0.9))
                    for i in (10 * g, 10 * g + 2, 10 * g + 4):
                        members[i] = cid
            with cur.copy("COPY cluster_members (image_id, cluster_id, ad_id) FROM STDIN") as copy:
                for i, cid in members.items():
                    copy.write_row((image_ids[i], cid, i // 2 + 1))
            with cur.copy(
                "COPY duplicates (pair_id, image_a, image_b, ad_a, ad_b, status, is_duplicate, confidence,"
                " cosine, decided_at, clustered_at) FROM STDIN"
            ) as copy:
                for g in range(n // 10):
                    for x, y, status in (
                        (10 * g, 10 * g + 2, "clustered"),
                        (10 * g + 2, 10 * g + 4, "clustered"),
                        (10 * g + 6, 10 * g + 8, "rejected"),
                    ):
                        a, b = ids.ordered_pair(image_ids[x], image_ids[y])
                        ad_of = {image_ids[x]: x // 2 + 1, image_ids[y]: y // 2 + 1}
                        dup = status == "clustered"
                        copy.write_row(
                            (
                                ids.pair_id(a, b),
                                a,
                                b,
                                ad_of[a],
                                ad_of[b],
                                status,
                                dup,
                                0.9 if dup else 0.1,
                                0.8,
                                now,
                                now if dup else None,
                            )
                        )
        conn.commit()
        conn.execute("ANALYZE")
        # Write the pre-fill out now: otherwise the checkpoint it triggers lands in the timed
        # phase (one ~1 s stall in 100 ads read as +5 ms per image at 100k).
        conn.execute("CHECKPOINT")
        sizes: dict[str, int] = dict(
            conn.execute("SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY relname").fetchall()
        )
        footprint = postgres_bytes(conn, n)
    return {
        "seconds": time.perf_counter() - t,
        "blob_seconds": blob_seconds,
        "blob_files": n if files is None else min(n, files),
        "rows": sizes,
        "postgres_bytes": footprint,
        "image_ids": image_ids,
        "members": members,
    }


class PlanCollector:
    def __init__(self) -> None:
        self.plans: list[dict[str, Any]] = []
        self.enabled = False

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        if not self.enabled or not diag.message_primary or "duration:" not in diag.message_primary:
            return
        text = diag.message_primary
        start = text.find("{")
        if start < 0:
            return
        with contextlib.suppress(ValueError):
            self.plans.append(json.loads(text[start:]))


def seq_scans(node: dict[str, Any], found: list[str]) -> None:
    if node.get("Node Type") == "Seq Scan":
        found.append(f"{node.get('Relation Name')} (rows {node.get('Actual Rows')})")
    for child in node.get("Plans", []) or []:
        seq_scans(child, found)


async def hot_path(
    dsn: str,
    store: VectorStore,
    blobs: BlobStore,
    n: int,
    pre: dict[str, Any],
    vectors: np.ndarray,
    ads: int,
    rng: np.random.Generator,
    collect_plans: bool,
) -> dict[str, Any]:
    plans = PlanCollector()

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        if collect_plans:
            await conn.execute("LOAD 'auto_explain'")
            await conn.execute("SET auto_explain.log_min_duration = 0")
            await conn.execute("SET auto_explain.log_analyze = on")
            await conn.execute("SET auto_explain.log_buffers = on")
            await conn.execute("SET auto_explain.log_format = json")
            await conn.execute("SET auto_explain.log_level = notice")
            await conn.execute("SET auto_explain.log_nested_statements = on")
            conn.add_notice_handler(plans)
        await conn.commit()

    pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False, configure=configure)
    await pool.open(wait=True)
    stage: dict[str, float] = defaultdict(float)
    candidates_per_image: list[int] = []
    cluster_ms: list[float] = []
    cluster_sizes: list[int] = []
    # Near-duplicate sources: images whose blob files exist (all of them unless --blob-files).
    readable = pre["blob_files"]
    clustered = [i for i in sorted(pre["members"]) if i < readable]
    plain = [i for i in range(readable) if i not in pre["members"]]
    near_dups, near_dup_found = 0, 0

    def timed(name: str, t0: float) -> None:
        stage[name] += time.perf_counter() - t0

    plans.enabled = True
    try:
        for k in range(ads):
            ad_id = n // 2 + 1000 + k
            event = AdImagesCreatedV1(
                schema_version=1,
                event_id=f"hot-{ad_id}",
                ad_id=ad_id,
                source="bench",
                category=None,
                seller_id=f"s{ad_id}",
                images=[AnyHttpUrl(f"http://img/new-{ad_id}-{j}.jpg") for j in range(2)],
                created_at=datetime.now(UTC),
            )
            t0 = time.perf_counter()
            rows = await events.begin_event(pool, event)
            timed("begin_event", t0)
            new_vecs = unit_rows(rng, 2)
            sources: list[int | None] = [None, None]
            for j in range(2):
                r = rng.random()
                if r < 0.3:  # a near-duplicate of a stored image, half of them clustered ones
                    src = int(rng.choice(clustered)) if r < 0.15 else int(rng.choice(plain))
                    sources[j] = src
                    noise = unit_rows(rng, 1)[0]
                    noise -= (noise @ vectors[src]) * vectors[src]
                    noise /= np.linalg.norm(noise)
                    new_vecs[j] = 0.9 * vectors[src] + np.sqrt(1 - 0.81) * noise
            indexed = [
                image_rows.IndexedImage(
                    image_id=row.image_id,
                    embedding_model="bench",
                    image=AnalysedImage(
                        content_sha256=f"c-{row.image_id}",
                        pixel_sha256=f"p-{row.image_id}",
                        phash=1,
                        phash_mirrored=2,
                        width=640,
                        height=480,
                        format="JPEG",
                        jpeg=JPEG,
                        vector=new_vecs[j],
                        sift=SIFT,
                    ),
                )
                for j, row in enumerate(rows)
            ]
            t0 = time.perf_counter()
            await image_rows.save_indexed_images(pool, indexed, blobs)
            timed("save_indexed_images", t0)
            points = [VectorPoint(r.image_id, new_vecs[j], ad_id, None, "bench") for j, r in enumerate(rows)]
            t0 = time.perf_counter()
            store.upsert(points)
            timed("vector_upsert", t0)
            t0 = time.perf_counter()
            hits = store.search_batch(
                new_vecs,
                limit=TOP_K,
                exclude_ad_ids=[ad_id, ad_id],
                categories=[None, None],
                min_score=MIN_SCORE,
            )
            timed("vector_search", t0)
            cands: dict[str, pairs.CandidateRow] = {}
            for p, ph, source in zip(points, hits, sources, strict=True):
                candidates_per_image.append(len(ph))
                if source is not None:  # near-duplicate hit@10: its source among the top-10 hits
                    near_dups += 1
                    near_dup_found += pre["image_ids"][source] in {h.image_id for h in ph}
                for h in ph:
                    a, b = ids.ordered_pair(p.image_id, h.image_id)
                    ad_of = {p.image_id: ad_id, h.image_id: h.ad_id}
                    pid = ids.pair_id(a, b)
                    cands[pid] = pairs.CandidateRow(pid, a, ad_of[a], b, ad_of[b], h.score, False)
            t0 = time.perf_counter()
            pending = await add_candidates(pool, list(cands.values()))
            timed("add_candidates", t0)
            t0 = time.perf_counter()
            await events.finish_event(pool, event.event_id)
            timed("finish_event", t0)
            for pid in sorted(pending):
                row = cands[pid]
                t0 = time.perf_counter()
                await image_rows.load_for_verification(pool, row.image_a, row.image_b, blobs)
                timed("load_for_verification", t0)
                dup = row.cosine >= 0.8
                verdict = pairs.VerdictRow(
                    pair_id=pid,
                    is_duplicate=dup,
                    confidence=0.9 if dup else 0.1,
                    evidence=EvidenceV1(
                        phash_distance=3,
                        phash_mirrored=False,
                        embedding_cosine=row.cosine,
                        sift_inliers=40,
                        sift_mirrored=False,
                        ssim=0.9,
                    ),
                    versions=VERSIONS,
                )
                t0 = time.perf_counter()
                verified = await pairs.save_verdict(pool, verdict)
                timed("save_verdict", t0)
                if verified is not None:
                    t0 = time.perf_counter()
                    events_out = await truth.cluster_pair(pool, verified.pair_id, BRIDGE_RULE)
                    elapsed = time.perf_counter() - t0
                    timed("cluster_pair", t0)
                    cluster_ms.append(elapsed * 1e3)
                    cluster_sizes.extend(event_out.cluster.size for event_out in events_out)
    finally:
        plans.enabled = False
        await pool.close()
    images = 2 * ads
    per_image = {k: v / images * 1e3 for k, v in stage.items()}
    per_image["total_db"] = sum(v for k, v in per_image.items() if not k.startswith("vector_"))
    per_image["total"] = sum(v for k, v in per_image.items() if k != "total_db")
    statements = []
    for plan in plans.plans:
        scans: list[str] = []
        seq_scans(plan.get("Plan", {}), scans)
        statements.append({"query": plan.get("Query Text", ""), "seq_scans": scans, "plan": plan.get("Plan")})
    return {
        "per_image_ms": per_image,
        "near_duplicate_hit_at_10": {
            "near_duplicates": near_dups,
            "found": near_dup_found,
            "rate": near_dup_found / near_dups if near_dups else float("nan"),
        },
        "candidates_per_image": {
            "mean": float(np.mean(candidates_per_image)),
            "max": int(max(candidates_per_image)),
        },
        "cluster_pair_ms": {
            "n": len(cluster_ms),
            "mean": float(np.mean(cluster_ms)) if cluster_ms else float("nan"),
            "max": max(cluster_ms) if cluster_ms else float("nan"),
        },
        "cluster_size_after": {"max": max(cluster_sizes) if cluster_sizes else 0},
        "statements": statements,
    }


def summarise_plans(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct statement: how often, worst time, scans of big tables."""
    by_query: dict[str, dict[str, Any]] = {}
    for s in statements:
        query = " ".join(s["query"].split())[:160]
        entry = by_query.setdefault(
            query, {"query": query, "runs": 0, "max_ms": 0.0, "seq_scans": set(), "nodes": set()}
        )
        entry["runs"] += 1
        plan = s["plan"] or {}
        entry["max_ms"] = max(entry["max_ms"], float(plan.get("Actual Total Time", 0.0)))
        entry["seq_scans"].update(x for x in s["seq_scans"] if x.split(" ")[0] in BIG_TABLES)
        nodes: list[str] = []
        _nodes(plan, nodes)
        entry["nodes"].update(nodes)
    return [
        {**e, "seq_scans": sorted(e["seq_scans"]), "nodes": sorted(e["nodes"])}
        for e in sorted(by_query.values(), key=lambda e: -e["max_ms"])
    ]


def _nodes(node: dict[str, Any], out: list[str]) -> None:
    kind = node.get("Node Type")
    if kind:
        rel = node.get("Index Name") or node.get("Relation Name")
        out.append(f"{kind}({rel})" if rel else kind)
    for child in node.get("Plans", []) or []:
        _nodes(child, out)


def explain_reads(dsn: str, pre: dict[str, Any]) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of the API's read queries (imgdup/store/reads.py) and the progress query."""
    ad = 7
    cluster_id = next(iter(pre["members"].values()))
    statements: dict[str, tuple[str, dict[str, Any]]] = {
        "queries.duplicates_of_ad": (
            "SELECT d.*, ia.url AS url_a, ib.url AS url_b, ao.source AS other_source,"
            " ao.seller_id AS other_seller_id, ao.category AS other_category,"
            " m.cluster_id::text AS cluster_id FROM duplicates d"
            " JOIN images ia ON ia.image_id = d.image_a JOIN images ib ON ib.image_id = d.image_b"
            " JOIN ads ao ON ao.ad_id = CASE WHEN d.ad_a = %(ad)s THEN d.ad_b ELSE d.ad_a END"
            " LEFT JOIN cluster_members m ON m.image_id = d.image_a"
            " WHERE d.is_duplicate AND (d.ad_a = %(ad)s OR d.ad_b = %(ad)s)"
            " ORDER BY d.confidence DESC, d.pair_id",
            {"ad": ad},
        ),
        "queries.clusters_page (list)": (
            "SELECT cluster_id::text AS cluster_id, size, ad_count, edge_count, confidence,"
            " created_at, updated_at FROM duplicate_clusters WHERE merged_into IS NULL"
            " ORDER BY updated_at DESC, cluster_id LIMIT 50 OFFSET 0",
            {},
        ),
        "queries.clusters_page (count)": (
            "SELECT count(*) FROM duplicate_clusters WHERE merged_into IS NULL",
            {},
        ),
        "queries.clusters_page (members)": (
            "SELECT m.cluster_id::text AS cluster_id, i.image_id::text AS image_id, i.url,"
            " i.ad_id, a.source, a.category, a.seller_id, i.first_seen_at"
            " FROM cluster_members m JOIN images i USING (image_id) JOIN ads a ON a.ad_id = i.ad_id"
            " WHERE m.cluster_id = ANY(%(ids)s::uuid[]) ORDER BY i.first_seen_at, i.image_id",
            {"ids": [cluster_id]},
        ),
        "queries.ad_state (images)": (
            "SELECT image_id::text AS image_id, url, position, status FROM images WHERE ad_id = %(ad)s"
            " ORDER BY position, url",
            {"ad": ad},
        ),
        "queries.ad_state (pairs)": (
            "SELECT status, count(*) AS n FROM duplicates WHERE ad_a = %(ad)s OR ad_b = %(ad)s"
            " GROUP BY status",
            {"ad": ad},
        ),
        "store.progress (events)": ("SELECT status, count(*) FROM ingest_events GROUP BY status", {}),
        "store.progress (pairs)": ("SELECT status, count(*) FROM duplicates GROUP BY status", {}),
        "store.pairs.unfinished_pairs": (
            "SELECT * FROM duplicates WHERE status IN ('candidate', 'verified')"
            " ORDER BY found_at LIMIT 10000",
            {},
        ),
    }
    out = []
    with psycopg.connect(dsn) as conn:
        for name, (sql, params) in statements.items():
            row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
            assert row is not None
            plan = row[0][0]
            scans: list[str] = []
            seq_scans(plan["Plan"], scans)
            nodes: list[str] = []
            _nodes(plan["Plan"], nodes)
            out.append(
                {"name": name, "ms": plan["Execution Time"], "seq_scans": scans, "nodes": nodes, "plan": plan}
            )
    return out


def run_size(n: int, store_kind: str, args: argparse.Namespace, collect_plans: bool) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    root = Path(tempfile.mkdtemp(prefix="imgdup-bench-scaling-"))
    root.chmod(0o755)
    pg = start_postgres(root / "pg")
    try:
        migrate(pg.dsn)
        vectors = unit_rows(rng, n)
        blobs = FilesystemBlobStore(root / "blobs")
        pre = prefill(pg.dsn, n, vectors, random.Random(n), blobs, args.blob_files or None)
        print(
            f"  N={n}: blobs in {pre['blob_seconds']:.1f}s, Postgres prefilled in {pre['seconds']:.1f}s"
            f" {pre['rows']}; {pre['postgres_bytes']['per_image']:.0f} Postgres bytes per image",
            flush=True,
        )
        store: VectorStore
        if store_kind == "edge":
            store = EdgeVectorStore(root / "vectors", dim=DIM)
        elif store_kind == "pgvector":  # in the same Postgres, as the images workers use it
            store = PgVectorStore(pg.dsn, space="bench", dim=DIM)
        else:
            store = NumpyVectorIndex(root / "vectors", dim=DIM)
        t = time.perf_counter()
        for s in range(0, n, 2000):
            store.upsert(
                [
                    VectorPoint(pre["image_ids"][i], vectors[i], i // 2 + 1, None, "bench")
                    for i in range(s, min(n, s + 2000))
                ]
            )
        fill_s = time.perf_counter() - t
        if isinstance(store, PgVectorStore):
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                conn.execute(f"ANALYZE {store.table}")  # what autovacuum does after a bulk load
        print(f"  N={n}: {store_kind} store filled in {fill_s:.1f}s", flush=True)
        result = asyncio.run(hot_path(pg.dsn, store, blobs, n, pre, vectors, args.ads, rng, collect_plans))
        store.close()
        with psycopg.connect(pg.dsn) as conn:
            after = postgres_bytes(conn, n + 2 * args.ads)
        result.update(
            {
                "n": n,
                "store": store_kind,
                "prefill_rows": pre["rows"],
                "store_fill_s": fill_s,
                "blob_fill_s": pre["blob_seconds"],
                "blob_files": pre["blob_files"],
                "postgres_bytes": pre["postgres_bytes"],
                "postgres_bytes_after_hot_path": after,
            }
        )
        if collect_plans:
            result["hot_statements"] = summarise_plans(result.pop("statements"))
            result["read_queries"] = explain_reads(pg.dsn, pre)
        else:
            result.pop("statements")
        return result
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ads", type=int, default=100, help="new ads (2 images each) timed per size")
    parser.add_argument("--stores", default="numpy,edge")
    parser.add_argument(
        "--blob-files",
        type=int,
        default=0,
        help="write blob files for the first N pre-filled images only (0 = all); the rest get"
        " addresses in image_blobs but no file, and near-duplicates are drawn from the first N",
    )
    parser.add_argument(
        "--plans-max", type=int, default=0, help="collect plans only at sizes <= this (0 = every size)"
    )
    parser.add_argument("--name", default="scaling")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, Any] = {"machine": machine(), "args": vars(args), "runs": []}
    for kind in args.stores.split(","):
        for n in sizes:
            print(f"{kind} N={n} ...", flush=True)
            # Plans once per size (auto_explain's ANALYZE adds its own cost to the timings).
            result["runs"].append(run_size(n, kind, args, collect_plans=False))
            if kind == args.stores.split(",")[0] and (not args.plans_max or n <= args.plans_max):
                planned = run_size(n, kind, args, collect_plans=True)
                result.setdefault("plans", {})[str(n)] = {
                    "hot_statements": planned["hot_statements"],
                    "read_queries": planned["read_queries"],
                }
    write_results(args.name, result, markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    runs = result["runs"]
    stages = sorted({k for r in runs for k in r["per_image_ms"]}, key=lambda s: (s.startswith("total"), s))
    lines = [
        f"### Hot-path cost per image vs indexed images ({m['cores']} cores, load average"
        f" {m['loadavg_at_start'][0]:.1f} at start)",
        "",
        table(
            ["ms per image"] + [f"{r['store']} N={r['n']:,}" for r in runs],
            [[s] + [r["per_image_ms"].get(s, 0.0) for r in runs] for s in stages],
        ),
        "",
        table(
            ["", *[f"{r['store']} N={r['n']:,}" for r in runs]],
            [
                [
                    "candidates per image (mean / max)",
                    *[
                        f"{r['candidates_per_image']['mean']:.2f} / {r['candidates_per_image']['max']}"
                        for r in runs
                    ],
                ],
                [
                    "cluster_pair ms (mean / max)",
                    *[
                        f"{r['cluster_pair_ms']['mean']:.1f} / {r['cluster_pair_ms']['max']:.1f}"
                        for r in runs
                    ],
                ],
                ["largest cluster touched", *[r["cluster_size_after"]["max"] for r in runs]],
                [
                    "near-duplicate hit@10 (found / near-duplicates)",
                    *[
                        f"{h['rate']:.3f} ({h['found']} / {h['near_duplicates']})"
                        if (h := r.get("near_duplicate_hit_at_10"))
                        else "n/a"
                        for r in runs
                    ],
                ],
                ["pre-filled images with blob files", *[f"{r.get('blob_files', r['n']):,}" for r in runs]],
            ],
        ),
        "",
        "### Postgres bytes per image (tables + indexes + TOAST after the pre-fill, over N;"
        " stored copies and SIFT features in the blob store)",
        "",
        table(
            ["bytes", *[f"{r['store']} N={r['n']:,}" for r in runs]],
            [
                [f"{name} / N", *[r["postgres_bytes"]["tables"].get(name, 0) / r["n"] for r in runs]]
                for name in sorted({t for r in runs for t in r["postgres_bytes"]["tables"]})
                if any(r["postgres_bytes"]["tables"].get(name, 0) > 8192 * 4 for r in runs)
            ]
            + [
                ["total per image", *[r["postgres_bytes"]["per_image"] for r in runs]],
                [
                    "total per image after the hot path",
                    *[r["postgres_bytes_after_hot_path"]["per_image"] for r in runs],
                ],
            ],
        ),
        "",
    ]
    by_store: dict[str, dict[int, float]] = defaultdict(dict)
    for r in runs:
        by_store[r["store"]][r["n"]] = r["per_image_ms"]["total"]
    for store, totals in by_store.items():
        ns = sorted(totals)
        if len(ns) >= 2:
            lines.append(
                f"- {store}: total per image at {ns[-1]:,} / at {ns[0]:,}"
                f" = {totals[ns[-1]] / totals[ns[0]]:.2f}x"
            )
    for n, plans in result.get("plans", {}).items():
        lines += [
            "",
            f"Plans at N={int(n):,} (auto_explain on the hot path; EXPLAIN ANALYZE of the reads):",
            "",
        ]
        rows = [
            [
                p["query"][:90] + "...",
                p["runs"],
                p["max_ms"],
                ", ".join(p["nodes"])[:120],
                ", ".join(p["seq_scans"]) or "none",
            ]
            for p in plans["hot_statements"]
        ]
        rows += [
            [
                q["name"],
                1,
                q["ms"],
                ", ".join(sorted(set(q["nodes"])))[:120],
                ", ".join(q["seq_scans"]) or "none",
            ]
            for q in plans["read_queries"]
        ]
        lines.append(table(["statement", "runs", "max ms", "plan nodes", "seq scans"], rows))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
