"""Helpers for the vector-store tests: UUID point ids, unit vectors, VectorPoints, a concurrency drill."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from imgdup.vectors.base import VectorPoint, VectorStore

DIM = 32


def pid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"imgdup-test/{name}"))


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def random_unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    if n is None:
        return unit(rng.standard_normal(DIM))
    m = rng.standard_normal((n, DIM))
    out: np.ndarray = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    return out


def at_cosine(v: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine with unit vector v is exactly `cos`."""
    r = rng.standard_normal(DIM)
    ortho = unit(r - (r @ v) * v)
    return unit(cos * v + np.sqrt(1.0 - cos**2) * ortho)


def point(name: str, vec: np.ndarray, ad_id: int, category: str | None = None) -> VectorPoint:
    return VectorPoint(image_id=pid(name), vector=vec, ad_id=ad_id, category=category, source="t")


def fill(store: VectorStore, rng: np.random.Generator, n: int = 60) -> tuple[list[str], np.ndarray]:
    """n points; ad_id = i // 3 (three images per ad); categories cycle cars/flats/None."""
    vecs = random_unit(rng, n)
    cats = ["cars", "flats", None]
    names = [f"p{i}" for i in range(n)]
    store.upsert([point(names[i], vecs[i], i // 3, cats[i % 3]) for i in range(n)])
    return [pid(x) for x in names], vecs


def brute_force(vecs: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    scores = np.where(mask, vecs @ q, -np.inf)
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:k] if mask[i]]


def concurrent_upsert_and_search(
    store: VectorStore, vecs: np.ndarray, *, batch: int, read_stride: int, probes: tuple[int, ...]
) -> None:
    """Four writers upsert `vecs` in batches while four readers search (every `read_stride`-th
    vector) with ad exclusion; every point lands and each probe finds itself."""
    n = len(vecs)
    share = n // 4
    start = threading.Barrier(8)

    def writer(k: int) -> None:
        start.wait()
        for s in range(k * share, (k + 1) * share, batch):
            store.upsert([point(f"c{i}", vecs[i], i) for i in range(s, s + batch)])

    def reader(k: int) -> int:
        start.wait()
        seen = 0
        for i in range(k, n, read_stride):
            hits = store.search(vecs[i], limit=3, exclude_ad_id=i)
            assert all(h.ad_id != i for h in hits)
            seen += len(hits)
        return seen

    with ThreadPoolExecutor(8) as pool:
        futures: list[Future[object]] = [pool.submit(writer, k) for k in range(4)]
        futures += [pool.submit(reader, k) for k in range(4)]
        for f in futures:
            f.result()
    assert store.count() == n
    for i in probes:
        assert store.search(vecs[i], limit=1)[0].image_id == pid(f"c{i}")
