"""Downloaded image bytes -> decoded, hashed, embedded records ready to store (runs in a worker thread)."""

from __future__ import annotations

from collections.abc import Sequence
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


def analyse_images(
    blobs: Sequence[bytes], embedder: Embedder, *, max_pixels: int
) -> list[AnalysedImage | ImageRejected]:
    """Decode and hash each image, then embed all decodable ones in one batch (same order out)."""
    outcomes: list[DecodedImage | ImageRejected] = []
    for blob in blobs:
        try:
            outcomes.append(decode_image(blob, max_pixels=max_pixels))
        except ImageRejected as rejected:
            outcomes.append(rejected)
    decoded = [o for o in outcomes if isinstance(o, DecodedImage)]
    vectors = iter(embedder.embed([d.rgb for d in decoded]) if decoded else [])
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
                vector=np.asarray(next(vectors), dtype=np.float32),
            )
        )
    return results


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
