"""Every blob store backend (files; S3 against moto's server): bytes in, content addresses out, and the
same answers to put, get, delete, list and the async helpers."""

from __future__ import annotations

import hashlib
import time

import pytest

from imgdup.blobs.base import BlobRef, BlobStore, blob_ref, get_all, put_all

DATA = b"\xff\xd8 a stored copy " * 100
OTHER = b"SIFT features " * 50


def test_a_blob_comes_back_under_its_sha256(store: BlobStore) -> None:
    ref = store.put(DATA)

    assert ref == BlobRef(hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert store.get(ref.sha256) == DATA


def test_putting_the_same_bytes_again_is_harmless_and_renews_their_time(store: BlobStore) -> None:
    first = store.put(DATA)
    written = store.written_at(first.sha256)
    time.sleep(1.1)  # S3's LastModified has a one-second resolution

    assert store.put(DATA) == first
    assert store.get(first.sha256) == DATA
    renewed = store.written_at(first.sha256)
    assert written is not None and renewed is not None and renewed > written
    assert [key for key, _ in store.list_blobs()] == [first.sha256]


def test_an_absent_blob_is_none_and_deleting_it_is_not_an_error(store: BlobStore) -> None:
    absent = blob_ref(b"never stored").sha256

    assert store.get(absent) is None
    assert store.written_at(absent) is None
    store.delete(absent)


def test_a_deleted_blob_is_gone_and_the_others_stay(store: BlobStore) -> None:
    kept, gone = store.put(DATA), store.put(OTHER)

    store.delete(gone.sha256)
    store.delete(gone.sha256)

    assert store.get(gone.sha256) is None
    assert store.get(kept.sha256) == DATA
    assert [key for key, _ in store.list_blobs()] == [kept.sha256]


def test_listing_tells_each_blob_and_when_it_was_written(store: BlobStore) -> None:
    before = time.time() - 5
    refs = {store.put(DATA).sha256, store.put(OTHER).sha256}

    listed = dict(store.list_blobs())

    assert set(listed) == refs
    assert all(before < written < time.time() + 5 for written in listed.values())


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABC", "", "a" * 63, "g" * 64, ("a" * 64) + "/x"])
def test_a_key_that_is_not_a_sha256_is_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="not a blob key"):
        store.get(key)
    with pytest.raises(ValueError, match="not a blob key"):
        store.delete(key)


async def test_the_async_helpers_keep_order_and_none_and_put_shared_bytes_once(store: BlobStore) -> None:
    refs = await put_all(store, [DATA, None, OTHER, DATA])

    assert refs == [blob_ref(DATA), None, blob_ref(OTHER), blob_ref(DATA)]
    assert len(list(store.list_blobs())) == 2
    keys = [r.sha256 if r else None for r in refs] + [blob_ref(b"absent").sha256]
    assert await get_all(store, keys) == [DATA, None, OTHER, DATA, None]


async def test_put_all_hashes_each_blob_once_before_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIFT blob is ~136 KB: put_all hashed every blob twice (to drop repeats, then for the refs
    it returns) before the store hashed it a third time."""
    import imgdup.blobs.base as base

    hashed: list[int] = []

    def counting(data: bytes) -> BlobRef:
        hashed.append(len(data))
        return blob_ref(data)

    class Recording:
        local = False

        def __init__(self) -> None:
            self.put_data: list[bytes] = []

        def put(self, data: bytes) -> BlobRef:
            self.put_data.append(data)
            return BlobRef(hashlib.sha256(data).hexdigest(), len(data))

    monkeypatch.setattr(base, "blob_ref", counting)
    store = Recording()
    refs = await put_all(store, [DATA, None, OTHER, DATA])  # type: ignore[arg-type]
    assert refs == [blob_ref(DATA), None, blob_ref(OTHER), blob_ref(DATA)]
    assert sorted(store.put_data) == sorted([DATA, OTHER])
    assert len(hashed) == 3  # one per blob given


async def test_a_local_store_runs_a_batch_in_one_thread_an_object_store_one_thread_per_blob(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread's hand-over back to the event loop costs more than reading a file from the page cache;
    an object store's requests wait on the network and overlap."""
    import asyncio

    handed_over: list[object] = []
    to_thread = asyncio.to_thread

    async def counting(func: object, /, *args: object) -> object:
        handed_over.append(func)
        return await to_thread(func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counting)
    refs = await put_all(store, [DATA, OTHER, b"a third blob"])
    puts = len(handed_over)
    assert await get_all(store, [r.sha256 if r else None for r in refs]) == [DATA, OTHER, b"a third blob"]

    assert (puts, len(handed_over) - puts) == ((1, 1) if store.local else (3, 3))
