"""Downloaded image bytes -> decoded, hashed, embedded records ready to store (runs in a worker thread).

A screenshot or a bordered copy of a photo also gets the photo inside its frame embedded and
stored (imgdup_core.framing): the images agent indexes both vectors and the verifier compares
the framed photo. Each stored copy's SIFT features are extracted here once, so that the
verifier does not extract them again for every candidate pair the image is in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from imgdup_core.decode import (
    DEFAULT_MAX_BYTES,
    DecodedImage,
    ImageRejected,
    decode_image,
    load_rgb,
    storage_jpeg,
)
from imgdup_core.embedding import Embedder
from imgdup_core.framing import Region, crop_region, find_photo_region
from imgdup_core.hashing import phash_pair
from imgdup_core.sift import extract_sift, sift_to_bytes


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
    # The photo a screenshot or border frames (None for an ordinary photo): its box in the
    # decoded image, its embedding and its stored copy.
    region: Region | None = None
    photo_vector: np.ndarray | None = None
    photo_jpeg: bytes | None = None
    # imgdup_core.sift.sift_to_bytes of the stored copies (jpeg, photo_jpeg) as the verifier
    # decodes them.
    sift: bytes | None = None
    photo_sift: bytes | None = None


def stored_copy(rgb: np.ndarray) -> tuple[bytes, bytes]:
    """The reduced JPEG copy the verifier loads, and the SIFT features of exactly those pixels."""
    jpeg = storage_jpeg(rgb)
    return jpeg, sift_to_bytes(extract_sift(load_rgb(jpeg)))


@dataclass(frozen=True)
class FramedImage:
    """A decoded image and the photo it frames, if any."""

    image: DecodedImage
    region: Region | None
    photo: np.ndarray | None  # the region's pixels


def decode_all(
    blobs: Sequence[bytes], *, max_pixels: int, max_side: int = 1024, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[FramedImage | ImageRejected]:
    """Decode each image under the caps (pixels, memory held while decoding one image) and find
    the photo it frames; a rejection is a value, in place."""
    outcomes: list[FramedImage | ImageRejected] = []
    for blob in blobs:
        try:
            decoded = decode_image(blob, max_pixels=max_pixels, max_side=max_side, max_bytes=max_bytes)
        except ImageRejected as rejected:
            outcomes.append(rejected)
            continue
        region = find_photo_region(decoded.rgb)
        photo = crop_region(decoded.rgb, region) if region is not None else None
        outcomes.append(FramedImage(decoded, region, photo))
    return outcomes


def embedding_inputs(outcomes: Sequence[FramedImage | ImageRejected]) -> list[np.ndarray]:
    """What to embed, in the order finish_analysis reads the vectors back: every decoded image,
    then every framed photo."""
    framed = [o for o in outcomes if isinstance(o, FramedImage)]
    return [f.image.rgb for f in framed] + [f.photo for f in framed if f.photo is not None]


def finish_analysis(
    outcomes: Sequence[FramedImage | ImageRejected], vectors: Iterable[np.ndarray]
) -> list[AnalysedImage | ImageRejected]:
    """Hash and store-copy each decoded image beside its vectors (in embedding_inputs order)."""
    rows = list(vectors)
    framed = [o for o in outcomes if isinstance(o, FramedImage)]
    expected = len(framed) + sum(f.photo is not None for f in framed)
    if len(rows) != expected:
        raise ValueError(f"{len(rows)} vectors for {expected} embedding inputs")
    full = iter(rows[: len(framed)])
    photos = iter(rows[len(framed) :])
    results: list[AnalysedImage | ImageRejected] = []
    for outcome in outcomes:
        if isinstance(outcome, ImageRejected):
            results.append(outcome)
            continue
        image = outcome.image
        plain, mirrored = phash_pair(image.rgb)
        jpeg, sift = stored_copy(image.rgb)
        photo_jpeg, photo_sift = stored_copy(outcome.photo) if outcome.photo is not None else (None, None)
        has_photo = outcome.photo is not None
        results.append(
            AnalysedImage(
                content_sha256=image.content_sha256,
                pixel_sha256=image.pixel_sha256,
                phash=plain,
                phash_mirrored=mirrored,
                width=image.width,
                height=image.height,
                format=image.format,
                jpeg=jpeg,
                vector=np.asarray(next(full), dtype=np.float32),
                region=outcome.region,
                photo_vector=np.asarray(next(photos), dtype=np.float32) if has_photo else None,
                photo_jpeg=photo_jpeg,
                sift=sift,
                photo_sift=photo_sift,
            )
        )
    return results


def analyse_images(
    blobs: Sequence[bytes], embedder: Embedder, *, max_pixels: int, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[AnalysedImage | ImageRejected]:
    """Decode and hash each image, then embed all decodable ones in one batch (same order out)."""
    outcomes = decode_all(blobs, max_pixels=max_pixels, max_bytes=max_bytes)
    inputs = embedding_inputs(outcomes)
    return finish_analysis(outcomes, embedder.embed(inputs) if inputs else [])


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
