"""Downloaded image bytes -> decoded, hashed, embedded records ready to store (runs in a worker thread)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from imgdup_core.decode import DecodedImage, ImageRejected, decode_image, storage_jpeg
from imgdup_core.embedding import Embedder
from imgdup_core.hashing import phash_pair


@dataclass(frozen=True)
class AnalysedImage:
    content_sha256: str
    pixel_sha256: str
    phash: int
    phash_mirrored: int
    width: int
    height: int
    format: str
    jpeg: bytes
    vector: np.ndarray  # float32 [dim], unit length


def decode_all(
    blobs: Sequence[bytes], *, max_pixels: int, max_side: int = 1024
) -> list[DecodedImage | ImageRejected]:
    """Decode each image under the caps; a rejection is a value, in place."""
    outcomes: list[DecodedImage | ImageRejected] = []
    for blob in blobs:
        try:
            outcomes.append(decode_image(blob, max_pixels=max_pixels, max_side=max_side))
        except ImageRejected as rejected:
            outcomes.append(rejected)
    return outcomes


def finish_analysis(
    outcomes: Sequence[DecodedImage | ImageRejected], vectors: Iterable[np.ndarray]
) -> list[AnalysedImage | ImageRejected]:
    """Hash and store-copy each decoded image beside its vector (vectors in decoded order)."""
    rows = iter(vectors)
    results: list[AnalysedImage | ImageRejected] = []
    for outcome in outcomes:
        if isinstance(outcome, ImageRejected):
            results.append(outcome)
            continue
        plain, mirrored = phash_pair(outcome.rgb)
        results.append(
            AnalysedImage(
                content_sha256=outcome.content_sha256,
                pixel_sha256=outcome.pixel_sha256,
                phash=plain,
                phash_mirrored=mirrored,
                width=outcome.width,
                height=outcome.height,
                format=outcome.format,
                jpeg=storage_jpeg(outcome.rgb),
                vector=np.asarray(next(rows), dtype=np.float32),
            )
        )
    return results


def analyse_images(
    blobs: Sequence[bytes], embedder: Embedder, *, max_pixels: int
) -> list[AnalysedImage | ImageRejected]:
    """Decode and hash each image, then embed all decodable ones in one batch (same order out)."""
    outcomes = decode_all(blobs, max_pixels=max_pixels)
    decoded = [o for o in outcomes if isinstance(o, DecodedImage)]
    return finish_analysis(outcomes, embedder.embed([d.rgb for d in decoded]) if decoded else [])


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
