"""Blobs <-> files under one folder (the embedded default, `data_dir/blobs`): content-addressed paths
(ab/cd/<sha256>), written to a temporary file and renamed into place, so a reader never sees half a blob."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from imgdup.blobs.base import BlobRef, blob_ref, check_key


class FilesystemBlobStore:
    local = True  # files: a batch of puts or gets runs in one thread (BlobStore.local)

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        key = check_key(sha256)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> BlobRef:
        ref = blob_ref(data)
        target = self.path(ref.sha256)
        if target.exists():
            # Same name, same bytes: already stored. Touched, so the orphan collector sees a blob
            # written now and spares it while the new row that refers to it commits.
            with contextlib.suppress(FileNotFoundError):
                os.utime(target)
                return ref
        target.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file sits in the target's folder: the rename stays on one filesystem and is
        # atomic, and two writers of the same blob each rename a complete copy over the other.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return ref

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def written_at(self, sha256: str) -> float | None:
        try:
            return self.path(sha256).stat().st_mtime
        except FileNotFoundError:
            return None

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/??/*"):
            if path.name.startswith(".tmp-"):
                continue  # a write in progress, or one a crash left: not a blob
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                yield path.name, path.stat().st_mtime
