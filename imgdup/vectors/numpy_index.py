"""Vector store in plain numpy: binary sketches (SimHash) scanned in full, exact float32 re-rank.

Takes VectorPoints, returns cosine VectorHits; the same interface as `EdgeVectorStore`
(`imgdup.vectors.base.VectorStore`), so it can stand in for the embedded store of the images role.

How a query runs (one category shard, or all shards when the query has no category):

1. Each stored vector also has a `bits`-bit sketch: the signs of its projections on `bits`
   fixed random orthonormal directions. The Hamming distance of two sketches estimates the
   angle between the vectors (SimHash): expected distance = bits * angle / pi, whatever the
   data's distribution. Near-duplicates (cosine >= 0.8, angle <= 37 degrees) sit at about a fifth
   of `bits`; unrelated photos (SSCD spreads them over the sphere, cosine ~ 0) at about half.
2. The sketches are scanned block by block (XOR + popcount, ~`bits`/8 bytes per stored vector,
   16 MB at 1M vectors for 128 bits), keeping the `rerank` nearest by Hamming distance.
3. Those candidates are scored exactly (float32 dot products) and the top `limit` returned, so
   every returned score is exact. What the sketch can miss is a weak neighbour: one whose cosine
   is close to the background's (e.g. 0.3 among a million unrelated vectors). Shards with at
   most `exact_below` vectors are searched exactly.

Nothing is ever rebuilt or retrained: an upsert appends a row to a block (or overwrites its
row) and a sketch computed from a fixed projection, so ingestion never waits for maintenance.

Storage: a folder with `meta.json` (dim, bits, projection seed) and `points.log`, an append-only
log of upserts replayed on open (a torn last record, from a crash mid-write, is cut off). The
log only grows: an overwritten point keeps its old record until `compact()` rewrites the log.
Like the edge store, the folder is locked to one process (flock on `lock`).

Memory: the float32 vectors (4 * dim bytes each), sketches (bits / 8), the ad id (8), the point
id (16) and one dict entry per point; blocks grow geometrically up to `_MAX_BLOCK` rows per
shard, so a shard wastes at most one partly filled block.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from imgdup.vectors.base import (
    FloatArray,
    SearchOneAsBatch,
    VectorHit,
    VectorPoint,
    checked_ad_id,
    checked_batch,
    checked_vector,
)

__all__ = ["NumpyVectorIndex"]

_FORMAT = "imgdup-numpy-vector-index/1"
_FIRST_BLOCK = 1024
_MAX_BLOCK = 65536
_RECORD_HEAD = struct.Struct("<I16sqHH")  # record length, uuid, ad_id, category length, source length
_NO_CATEGORY = 0xFFFF  # category length value meaning "category is None"
_DIST_MAX = np.uint16(0xFFFF)


@dataclass
class _Block:
    vectors: FloatArray  # [cap, dim]
    codes: npt.NDArray[np.uint64]  # [words, cap], column-major so one word of all rows is contiguous
    ad_ids: npt.NDArray[np.int64]  # [cap]
    point_ids: list[str]
    size: int = 0


@dataclass
class _Shard:
    blocks: list[_Block] = field(default_factory=list)
    count: int = 0


@dataclass(frozen=True)
class _Where:
    shard: str | None
    block: int
    row: int


class NumpyVectorIndex(SearchOneAsBatch):
    """Cosine store: category shards of float32 vectors with binary sketches; see module doc.

    bits: sketch length (multiple of 64). rerank: candidates scored exactly per query (raised
    to `limit` when smaller). exact_below: shards up to this size are searched exactly.
    scan_threads: threads that scan the blocks of one query in parallel (numpy releases the
    GIL in the scan); 1 scans in the calling thread.
    Thread-safe: searches run concurrently with each other (numpy releases the GIL in the scan);
    upserts take a lock that searches also take while they read a block list, so a search
    sees each row either before or after an upsert.
    """

    def __init__(
        self,
        path: Path,
        *,
        dim: int,
        bits: int = 128,
        rerank: int = 128,
        exact_below: int = 2048,
        seed: int = 20240611,
        fsync: bool = False,
        scan_threads: int = 1,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if bits < 64 or bits % 64:
            raise ValueError(f"bits must be a positive multiple of 64, got {bits}")
        if rerank < 1:
            raise ValueError(f"rerank must be >= 1, got {rerank}")
        self.dim = dim
        self.path = Path(path)
        self.rerank = rerank
        self.exact_below = exact_below
        self._fsync = fsync
        self._scan_threads = scan_threads
        self._scan_pool = (
            ThreadPoolExecutor(scan_threads, thread_name_prefix="imgdup-index-scan")
            if scan_threads > 1
            else None
        )
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise RuntimeError(f"vector index {self.path} is open in another process or store") from exc
        try:
            meta_path = self.path / "meta.json"
            if meta_path.exists():
                meta = json.loads(meta_path.read_text())
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"{meta_path}: not a {_FORMAT} folder")
                if meta["dim"] != dim:
                    raise ValueError(f"{self.path} holds dim={meta['dim']} vectors, not dim={dim}")
                bits, seed = int(meta["bits"]), int(meta["seed"])
            else:
                meta_path.write_text(json.dumps({"format": _FORMAT, "dim": dim, "bits": bits, "seed": seed}))
            self.bits = bits
            self._words = bits // 64
            self._projection = _projection(dim, bits, seed)
            self._shards: dict[str | None, _Shard] = {}
            self._where: dict[str, _Where] = {}
            self._owners: dict[str, str] = {}  # point id -> image id, for second vectors
            self._lock = threading.Lock()
            self._closed = False
            self._log_path = self.path / "points.log"
            self._replay()
            self._log = open(self._log_path, "ab")  # noqa: SIM115 - kept open for the store's life
        except BaseException:
            os.close(self._lock_fd)
            raise

    # ------------------------------------------------------------------ writing

    def sketch(self, vectors: FloatArray) -> npt.NDArray[np.uint64]:
        """[n, dim] -> [n, words] uint64 sign sketches."""
        bits = (vectors @ self._projection) > 0
        packed = np.packbits(bits, axis=1, bitorder="little")  # [n, bits / 8]
        return np.ascontiguousarray(packed).view(np.uint64)

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        ids = [p.id for p in points]
        matrix = np.stack([checked_vector(p.vector, self.dim) for p in points])
        ad_ids = [checked_ad_id(p.ad_id) for p in points]
        codes = self.sketch(matrix)
        records = b"".join(
            _record(pid, ad, p.category, _source_field(p), row)
            for pid, ad, p, row in zip(ids, ad_ids, points, matrix, strict=True)
        )
        with self._lock:
            self._check_open()
            self._log.write(records)
            self._log.flush()
            if self._fsync:
                os.fsync(self._log.fileno())
            for pid, ad, p, row, code in zip(ids, ad_ids, points, matrix, codes, strict=True):
                if p.point_id is not None:
                    self._owners[pid] = p.image_id
                self._put(pid, ad, p.category, row, code)

    def _put(
        self, pid: str, ad_id: int, category: str | None, vector: FloatArray, code: npt.NDArray[np.uint64]
    ) -> None:
        old = self._where.get(pid)
        if old is not None and old.shard == category:
            block = self._shards[category].blocks[old.block]
            block.vectors[old.row] = vector
            block.codes[:, old.row] = code
            block.ad_ids[old.row] = ad_id
            return
        if old is not None:  # the category changed: retire the old row, add a new one
            block = self._shards[old.shard].blocks[old.block]
            block.codes[:, old.row] = ~np.uint64(0)  # never a sketch candidate again
            block.vectors[old.row] = 0.0  # scores 0 if ever re-ranked
            block.ad_ids[old.row] = _RETIRED_AD
            block.point_ids[old.row] = ""
            self._shards[old.shard].count -= 1
        shard = self._shards.setdefault(category, _Shard())
        if not shard.blocks or shard.blocks[-1].size == len(shard.blocks[-1].ad_ids):
            cap = min(_MAX_BLOCK, _FIRST_BLOCK << len(shard.blocks))
            shard.blocks.append(
                _Block(
                    vectors=np.zeros((cap, self.dim), dtype=np.float32),
                    codes=np.full((self._words, cap), ~np.uint64(0), dtype=np.uint64),
                    ad_ids=np.full(cap, _RETIRED_AD, dtype=np.int64),
                    point_ids=[],
                )
            )
        block = shard.blocks[-1]
        row = block.size
        block.vectors[row] = vector
        block.codes[:, row] = code
        block.ad_ids[row] = ad_id
        block.point_ids.append(pid)
        block.size += 1
        shard.count += 1
        self._where[pid] = _Where(category, len(shard.blocks) - 1, row)

    # ------------------------------------------------------------------ searching

    def search_batch(
        self,
        vectors: FloatArray,
        *,
        limit: int,
        exclude_ad_ids: Sequence[int | None],
        categories: Sequence[str | None],
        min_score: float | None = None,
        exact: bool = False,
    ) -> list[list[VectorHit]]:
        """`exact=True` scores every vector in scope (a slow reference for checks)."""
        matrix = checked_batch(
            vectors, self.dim, limit=limit, exclude_ad_ids=exclude_ad_ids, categories=categories
        )
        if len(matrix) == 0:
            return []
        codes = self.sketch(matrix)
        out: list[list[VectorHit]] = []
        for row, code, exclude, category in zip(matrix, codes, exclude_ad_ids, categories, strict=True):
            excluded = None if exclude is None else checked_ad_id(exclude)
            out.append(self._search_one(row, code, limit, excluded, category, min_score, exact))
        return out

    def _scope(self, category: str | None) -> list[tuple[str | None, list[_Block], list[int]]]:
        """(shard, blocks, filled rows of each block) to search, read under the lock."""
        with self._lock:
            self._check_open()
            if category is None:
                chosen = list(self._shards.items())
            else:
                shard = self._shards.get(category)
                chosen = [(category, shard)] if shard is not None else []
            return [(name, list(s.blocks), [b.size for b in s.blocks]) for name, s in chosen]

    def _search_one(
        self,
        query: FloatArray,
        code: npt.NDArray[np.uint64],
        limit: int,
        exclude: int | None,
        category: str | None,
        min_score: float | None,
        exact: bool,
    ) -> list[VectorHit]:
        scope = self._scope(category)
        total = sum(sum(sizes) for _, _, sizes in scope)
        if total == 0:
            return []
        want = max(self.rerank, limit)
        exhaustive = exact or total <= self.exact_below or total <= want
        # Candidates as (block, rows) pairs; their exact scores are computed below.
        candidates: list[tuple[_Block, npt.NDArray[np.intp]]] = []
        if exhaustive:
            for _, blocks, sizes in scope:
                candidates.extend((b, np.arange(n)) for b, n in zip(blocks, sizes, strict=True) if n)
        else:
            candidates = self._sketch_candidates(code, scope, want)
        hits: list[tuple[float, str, int]] = []
        for block, rows in candidates:
            if len(rows) == 0:
                continue
            ad_ids = block.ad_ids[rows]
            keep = ad_ids != _RETIRED_AD
            if exclude is not None:
                keep &= ad_ids != exclude
            rows = rows[keep]
            if len(rows) == 0:
                continue
            scores = block.vectors[rows] @ query
            if len(rows) > limit:
                best = np.argpartition(-scores, limit)[:limit]
                rows, scores = rows[best], scores[best]
            hits.extend(
                (float(s), block.point_ids[int(r)], int(block.ad_ids[int(r)]))
                for r, s in zip(rows, scores, strict=True)
            )
        hits.sort(key=lambda h: (-h[0], h[1]))
        return [
            VectorHit(image_id=self._owners.get(pid, pid), ad_id=ad, score=score)
            for score, pid, ad in hits[:limit]
            if min_score is None or score >= min_score
        ]

    def _sketch_candidates(
        self,
        code: npt.NDArray[np.uint64],
        scope: list[tuple[str | None, list[_Block], list[int]]],
        want: int,
    ) -> list[tuple[_Block, npt.NDArray[np.intp]]]:
        """The `want` rows nearest by sketch distance (ties at the cut-off may add a few more)."""
        items = [
            (block, n) for _, blocks, sizes in scope for block, n in zip(blocks, sizes, strict=True) if n
        ]
        if self._scan_pool is not None and len(items) > 1:
            k = self._scan_threads
            parts = [self._scan_pool.submit(self._scan, code, items[i::k], want) for i in range(k)]
            found = [entry for part in parts for entry in part.result()]
        else:
            found = self._scan(code, items, want)
        if sum(len(rows) for _, rows, _ in found) > want:
            found, _, _ = _tighten(found, want)
        return [(block, rows) for block, rows, _ in found]

    def _scan(
        self, code: npt.NDArray[np.uint64], items: list[tuple[_Block, int]], want: int
    ) -> list[tuple[_Block, npt.NDArray[np.intp], npt.NDArray[np.uint16]]]:
        found: list[tuple[_Block, npt.NDArray[np.intp], npt.NDArray[np.uint16]]] = []
        pooled = 0
        threshold = int(_DIST_MAX)  # rows farther than this can no longer make the cut
        longest = max((n for _, n in items), default=0)
        xor = np.empty(longest, dtype=np.uint64)  # scratch, reused for every block and word
        bits = np.empty(longest, dtype=np.uint8)
        dist = np.empty(longest, dtype=np.uint16)
        for block, n in items:
            x, c, d = xor[:n], bits[:n], dist[:n]
            np.bitwise_xor(block.codes[0, :n], code[0], out=x)
            np.bitwise_count(x, out=c)
            d[:] = c
            for w in range(1, self._words):
                np.bitwise_xor(block.codes[w, :n], code[w], out=x)
                np.bitwise_count(x, out=c)
                np.add(d, c, out=d)
            rows = np.flatnonzero(d <= threshold)
            if len(rows) == 0:
                continue
            found.append((block, rows, d[rows]))
            pooled += len(rows)
            if pooled >= 2 * want:
                found, pooled, threshold = _tighten(found, want)
        return found

    # ------------------------------------------------------------------ the rest

    def count(self) -> int:
        with self._lock:
            self._check_open()
            return len(self._where)

    def shard_sizes(self) -> dict[str | None, int]:
        with self._lock:
            return {name: shard.count for name, shard in self._shards.items()}

    def memory_bytes(self) -> int:
        """Bytes held by the numpy arrays (vectors, sketches, ad ids), allocated capacity."""
        with self._lock:
            return sum(
                b.vectors.nbytes + b.codes.nbytes + b.ad_ids.nbytes
                for s in self._shards.values()
                for b in s.blocks
            )

    def compact(self) -> None:
        """Rewrite the log with the last record of each point (drops overwritten records)."""
        with self._lock:
            self._check_open()
            self._log.flush()
            data = self._log_path.read_bytes()
            last: dict[str, tuple[int, int]] = {}
            start = 0
            for end, record in _records(data, self.dim):
                last[record[0]] = (start, end)
                start = end
            tmp = self._log_path.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                for begin, end in sorted(last.values()):
                    out.write(data[begin:end])
                out.flush()
                os.fsync(out.fileno())
            self._log.close()
            os.replace(tmp, self._log_path)
            self._log = open(self._log_path, "ab")  # noqa: SIM115

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._log.flush()
            os.fsync(self._log.fileno())
            self._log.close()
            os.close(self._lock_fd)
            if self._scan_pool is not None:
                self._scan_pool.shutdown(wait=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("vector store is closed")

    def _replay(self) -> None:
        if not self._log_path.exists():
            return
        data = self._log_path.read_bytes()
        good = 0
        batch: list[tuple[str, int, str | None, FloatArray]] = []
        for offset, (pid, ad_id, category, source, vector) in _records(data, self.dim):
            owner = source.partition(_OWNER_MARK)[2]
            if owner:
                self._owners[pid] = owner
            batch.append((pid, ad_id, category, vector))
            good = offset
            if len(batch) >= 8192:
                self._put_many(batch)
                batch = []
        self._put_many(batch)
        if good != len(data):  # a torn tail from a crash mid-write: cut it off
            with open(self._log_path, "r+b") as f:
                f.truncate(good)

    def _put_many(self, batch: list[tuple[str, int, str | None, FloatArray]]) -> None:
        if not batch:
            return
        codes = self.sketch(np.stack([v for _, _, _, v in batch]))
        for (pid, ad_id, category, vector), code in zip(batch, codes, strict=True):
            self._put(pid, ad_id, category, vector, code)


# A second vector of an image (VectorPoint.point_id) records its image after this mark in the
# log's source field, so hits name the image after a restart too.
_OWNER_MARK = "\x00image:"


def _source_field(point: VectorPoint) -> str:
    return point.source if point.point_id is None else f"{point.source}{_OWNER_MARK}{point.image_id}"


_RETIRED_AD = np.iinfo(np.int64).min  # marks a row whose point moved to another shard


def _tighten(
    found: list[tuple[_Block, npt.NDArray[np.intp], npt.NDArray[np.uint16]]], want: int
) -> tuple[list[tuple[_Block, npt.NDArray[np.intp], npt.NDArray[np.uint16]]], int, int]:
    """Keep the pooled rows within the distance of the want-th nearest; return the new cut-off."""
    all_dist = np.concatenate([d for _, _, d in found])
    threshold = int(np.partition(all_dist, want - 1)[want - 1])
    kept = []
    pooled = 0
    for block, rows, dist in found:
        mask = dist <= threshold
        if mask.any():
            kept.append((block, rows[mask], dist[mask]))
            pooled += int(mask.sum())
    return kept, pooled, threshold


def _projection(dim: int, bits: int, seed: int) -> FloatArray:
    """`bits` random directions in R^dim; orthonormal in blocks of up to `dim` directions."""
    rng = np.random.default_rng(seed)
    parts = []
    remaining = bits
    while remaining > 0:
        take = min(dim, remaining)
        gaussian = rng.standard_normal((dim, take))
        q, _ = np.linalg.qr(gaussian)
        parts.append(q[:, :take])
        remaining -= take
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def _record(pid: str, ad_id: int, category: str | None, source: str, vector: FloatArray) -> bytes:
    cat = b"" if category is None else category.encode()
    src = source.encode()
    body = np.asarray(vector, dtype="<f4").tobytes()
    length = _RECORD_HEAD.size + len(cat) + len(src) + len(body)
    head = _RECORD_HEAD.pack(
        length, uuid.UUID(pid).bytes, ad_id, _NO_CATEGORY if category is None else len(cat), len(src)
    )
    return head + cat + src + body


def _records(data: bytes, dim: int) -> Iterator[tuple[int, tuple[str, int, str | None, str, FloatArray]]]:
    """(end offset, record) for each complete record; stops at the first torn or bad one."""
    offset = 0
    body_len = 4 * dim
    while offset + _RECORD_HEAD.size <= len(data):
        length, raw_id, ad_id, cat_len, src_len = _RECORD_HEAD.unpack_from(data, offset)
        has_cat = cat_len != _NO_CATEGORY
        expected = _RECORD_HEAD.size + (cat_len if has_cat else 0) + src_len + body_len
        if length != expected or offset + length > len(data):
            break
        pos = offset + _RECORD_HEAD.size
        category = None
        if has_cat:
            category = data[pos : pos + cat_len].decode()
            pos += cat_len
        source = data[pos : pos + src_len].decode()
        pos += src_len
        vector = np.frombuffer(data, dtype="<f4", count=dim, offset=pos).astype(np.float32)
        offset += length
        yield offset, (str(uuid.UUID(bytes=raw_id)), int(ad_id), category, source, vector)
