"""Bytes -> their content address (`BlobRef`); the `BlobStore` protocol every backend implements, and
the async helpers that run a backend's blocking IO in threads, never on the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobRef:
    """What a row keeps of a blob: its content address and its size, not its bytes."""

    sha256: str
    size: int


def blob_ref(data: bytes) -> BlobRef:
    return BlobRef(hashlib.sha256(data).hexdigest(), len(data))


def check_key(sha256: str) -> str:
    """A key is a lower-case sha256 in hex, nothing else: it becomes a path or an object name."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a blob key: {sha256[:80]!r}")
    return sha256


class BlobStore(Protocol):
    """Content-addressed and immutable: the same bytes are always the same key, so every put is
    idempotent and a blob may be shared by many rows. Blocking calls (files, HTTP): call them from
    a thread (the helpers below do)."""

    # True where a call is a local file operation (microseconds, the page cache): the helpers below
    # then run a batch in one thread, whose single hand-over to the event loop costs less than one per
    # blob (a pair's five reads: 0.13 vs 0.46 ms CPU). False (an object store over HTTP): a thread per
    # blob, so that the requests' latencies overlap.
    local: bool

    def put(self, data: bytes) -> BlobRef:
        """Store the bytes and mark them written now (the orphan collector spares fresh blobs,
        also one a new row refers to again); return their address."""
        ...

    def get(self, sha256: str) -> bytes | None:
        """The blob's bytes, or None when the store has no such blob."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the blob; removing an absent blob is not an error."""
        ...

    def written_at(self, sha256: str) -> float | None:
        """When the blob was last written (seconds since the epoch), or None when it is absent."""
        ...

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        """Every stored blob's key and when it was last written (seconds since the epoch)."""
        ...


async def put_all(store: BlobStore, blobs: Sequence[bytes | None]) -> list[BlobRef | None]:
    """Store each blob (None stays None) in threads; identical blobs are put once.
    Each blob is hashed once here (a SIFT blob is ~136 KB), besides the store's own hash."""
    refs = [blob_ref(b) if b is not None else None for b in blobs]
    unique = {ref.sha256: b for ref, b in zip(refs, blobs, strict=True) if ref is not None and b is not None}
    await _each(store, store.put, list(unique.values()))
    return refs


async def get_all(store: BlobStore, keys: Sequence[str | None]) -> list[bytes | None]:
    """Each key's bytes (None for None and for a blob the store lacks), read in threads."""
    unique = sorted({k for k in keys if k is not None})
    found = await _each(store, store.get, unique)
    by_key = dict(zip(unique, found, strict=True))
    return [by_key[k] if k is not None else None for k in keys]


async def _each(store: BlobStore, call: Callable[[T], R], items: list[T]) -> list[R]:
    """call(item) for each item, off the event loop: in one thread for a local store, else one each."""
    if store.local:
        return await asyncio.to_thread(lambda: [call(item) for item in items])
    return list(await asyncio.gather(*(asyncio.to_thread(call, item) for item in items)))
