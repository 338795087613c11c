"""bench/scaling.py's sampled blob fill: every pre-filled image gets its blob addresses, only the
first `files` get files (the only ones the hot path reads)."""

from __future__ import annotations

from pathlib import Path

from bench.scaling import JPEG, PREFILL_SIFT, fill_blobs
from imgdup.blobs.base import blob_ref
from imgdup.blobs.fs import FilesystemBlobStore


def test_fill_blobs_writes_files_for_the_first_images_and_addresses_for_all(tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path)
    refs, _ = fill_blobs(blobs, 5, files=2)
    for i, (jpeg, jpeg_size, sift, sift_size) in enumerate(refs):
        tag = i.to_bytes(8, "little")
        assert (jpeg, jpeg_size) == (blob_ref(tag + JPEG).sha256, len(tag + JPEG))
        assert (sift, sift_size) == (blob_ref(tag + PREFILL_SIFT).sha256, len(tag + PREFILL_SIFT))
        stored = blobs.get(jpeg), blobs.get(sift)
        assert stored == ((tag + JPEG, tag + PREFILL_SIFT) if i < 2 else (None, None))
    assert len({r[0] for r in refs}) == 5  # distinct addresses, as real photos have


def test_fill_blobs_writes_every_file_by_default(tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path)
    refs, _ = fill_blobs(blobs, 3)
    assert all(blobs.get(jpeg) is not None and blobs.get(sift) is not None for jpeg, _, sift, _ in refs)


def test_hot_path_runs_end_to_end_at_a_tiny_size() -> None:
    """The whole of run_size (its own embedded Postgres, pre-fill, 10 ads through the store steps,
    clustering): it must keep up with the store's API, and report near-duplicate hit@10."""
    import argparse

    from bench.scaling import run_size

    args = argparse.Namespace(ads=10, blob_files=100)
    result = run_size(400, "numpy", args, collect_plans=False)
    assert result["n"] == 400 and result["blob_files"] == 100
    assert result["cluster_pair_ms"]["n"] > 0  # verified pairs were clustered
    hit = result["near_duplicate_hit_at_10"]
    assert hit["near_duplicates"] > 0 and hit["found"] == hit["near_duplicates"]  # exact at 400
