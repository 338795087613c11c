"""Downloaded image bytes -> decoded, hashed, embedded records ready to store (runs in a worker thread).

A screenshot or a bordered copy of a photo also gets the photo inside its frame embedded and
stored (imgdup_core.framing): the images agent indexes both vectors and the verifier compares
the framed photo. Each stored copy's SIFT features are extracted here once, so that the
verifier does not extract them again for every candidate pair the image is in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from imgdup_core.gray import working_gray
from imgdup_core.hashing import phash_pair
from imgdup_core.sift import extract_features, flat_to_bytes, sift_to_bytes, stored_flat_features
from imgdup_core.verifier_config import VerifierConfig, default_verifier_for

log = logging.getLogger(__name__)

# Features are stored for the verifier the worker runs unless told (sscd's default).
DEFAULT_SIFT_CONFIG = default_verifier_for("sscd")


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
    # imgdup_core.sift.flat_to_bytes of a flat stored copy's second features (stored_flat_features):
    # None for a picture with keypoints enough, or a verifier without the second alignment.
    flat_sift: bytes | None = None
    photo_flat_sift: bytes | None = None
    # The region as shares of the decoded image (x0, y0, x1, y1 in 0..1), which are shares of the
    # stored copy too (a resize of it): the verifier's box, so that it does not run the frame
    # finder again per pair. `region` is in decoded pixels, and the row keeps the original's size.
    photo_box: tuple[float, float, float, float] | None = None


def stored_copy(
    rgb: np.ndarray, config: VerifierConfig = DEFAULT_SIFT_CONFIG
) -> tuple[bytes, bytes, bytes | None]:
    """The reduced JPEG copy the verifier loads, the SIFT features of exactly those pixels, and a
    flat copy's second features (or None), extracted with the settings of the verifier that will
    read them (`config`): features made under other settings are not used, and that verifier would
    extract them again for every pair."""
    jpeg = storage_jpeg(rgb)
    gray = working_gray(load_rgb(jpeg), config)  # extract_sift's working copy, made once for both passes
    features = extract_features(gray, config)
    flat = stored_flat_features(gray, features, config)
    return jpeg, sift_to_bytes(features, config), flat_to_bytes(flat, config) if flat is not None else None


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
    the photo it frames; a rejection is a value, in place, and so is any other exception of one
    image (`analysis_error`)."""
    outcomes: list[FramedImage | ImageRejected] = []
    for blob in blobs:
        try:
            decoded = decode_image(blob, max_pixels=max_pixels, max_side=max_side, max_bytes=max_bytes)
            region = find_photo_region(decoded.rgb)
            photo = crop_region(decoded.rgb, region) if region is not None else None
        except ImageRejected as rejected:
            outcomes.append(rejected)
        except Exception as exc:
            outcomes.append(_failed("analysis_error", exc))
        else:
            outcomes.append(FramedImage(decoded, region, photo))
    return outcomes


def _failed(reason: str, exc: Exception) -> ImageRejected:
    return ImageRejected(reason, f"{type(exc).__name__}: {exc}"[:500])


def embedding_inputs(outcomes: Sequence[FramedImage | ImageRejected]) -> list[np.ndarray]:
    """What to embed, in the order finish_analysis reads the vectors back: every decoded image,
    then every framed photo."""
    framed = [o for o in outcomes if isinstance(o, FramedImage)]
    return [f.image.rgb for f in framed] + [f.photo for f in framed if f.photo is not None]


def image_inputs(outcome: FramedImage) -> list[np.ndarray]:
    """One image's embedding inputs: the image, then its framed photo if it has one."""
    return [outcome.image.rgb] + ([outcome.photo] if outcome.photo is not None else [])


def merge_single_embeddings(
    outcomes: Sequence[FramedImage | ImageRejected], singles: Mapping[int, np.ndarray | Exception]
) -> tuple[list[FramedImage | ImageRejected], list[np.ndarray]]:
    """After a batch failed, each image embedded alone (`singles`, by position): the outcomes with
    the images whose own call failed rejected (`embed_error`), and the others' vectors in
    embedding_inputs order."""
    merged: list[FramedImage | ImageRejected] = []
    rows: dict[int, np.ndarray] = {}
    for index, outcome in enumerate(outcomes):
        single = singles.get(index)
        if isinstance(outcome, FramedImage):
            if single is None:
                single = RuntimeError("not embedded")
            elif not isinstance(single, Exception) and len(single) != len(image_inputs(outcome)):
                single = RuntimeError(f"{len(single)} vectors for {len(image_inputs(outcome))} inputs")
            if isinstance(single, Exception):
                merged.append(_failed("embed_error", single))
                continue
            rows[index] = single
        merged.append(outcome)
    ordered = [rows[i] for i in sorted(rows)]
    return merged, [r[0] for r in ordered] + [r[1] for r in ordered if len(r) > 1]


def embed_isolated(
    outcomes: Sequence[FramedImage | ImageRejected], embed: Callable[[Sequence[np.ndarray]], np.ndarray]
) -> tuple[list[FramedImage | ImageRejected], list[np.ndarray]]:
    """Embed all images in one call; when it raises, each image alone, so that an input the
    model cannot take fails only its own image."""
    inputs = embedding_inputs(outcomes)
    if not inputs:
        return list(outcomes), []
    try:
        return list(outcomes), list(embed(inputs))
    except Exception as exc:
        log.warning("embedding %d inputs failed (%s); embedding each image alone", len(inputs), exc)
    singles: dict[int, np.ndarray | Exception] = {}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, FramedImage):
            try:
                singles[index] = np.asarray(embed(image_inputs(outcome)))
            except Exception as exc:
                singles[index] = exc
    return merge_single_embeddings(outcomes, singles)


def finish_analysis(
    outcomes: Sequence[FramedImage | ImageRejected],
    vectors: Iterable[np.ndarray],
    sift_config: VerifierConfig = DEFAULT_SIFT_CONFIG,
) -> list[AnalysedImage | ImageRejected]:
    """Hash and store-copy each decoded image beside its vectors (in embedding_inputs order);
    an exception of one image rejects that image (`analysis_error`)."""
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
        # Taken before the work that may fail, so that the next image gets its own vectors.
        vector = next(full)
        photo_vector = next(photos) if outcome.photo is not None else None
        try:
            results.append(_finish_one(outcome, vector, photo_vector, sift_config))
        except Exception as exc:
            results.append(_failed("analysis_error", exc))
    return results


def _finish_one(
    outcome: FramedImage, vector: np.ndarray, photo_vector: np.ndarray | None, sift_config: VerifierConfig
) -> AnalysedImage:
    image = outcome.image
    plain, mirrored = phash_pair(image.rgb)
    jpeg, sift, flat_sift = stored_copy(image.rgb, sift_config)
    photo_jpeg, photo_sift, photo_flat_sift = (
        stored_copy(outcome.photo, sift_config) if outcome.photo is not None else (None, None, None)
    )
    decoded_h, decoded_w = image.rgb.shape[:2]
    return AnalysedImage(
        content_sha256=image.content_sha256,
        pixel_sha256=image.pixel_sha256,
        phash=plain,
        phash_mirrored=mirrored,
        width=image.width,
        height=image.height,
        format=image.format,
        jpeg=jpeg,
        vector=np.asarray(vector, dtype=np.float32),
        region=outcome.region,
        photo_vector=np.asarray(photo_vector, dtype=np.float32) if photo_vector is not None else None,
        photo_jpeg=photo_jpeg,
        sift=sift,
        photo_sift=photo_sift,
        flat_sift=flat_sift,
        photo_flat_sift=photo_flat_sift,
        photo_box=outcome.region.shares(decoded_w, decoded_h) if outcome.region is not None else None,
    )


def analyse_images(
    blobs: Sequence[bytes],
    embedder: Embedder,
    *,
    max_pixels: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sift_config: VerifierConfig = DEFAULT_SIFT_CONFIG,
) -> list[AnalysedImage | ImageRejected]:
    """Decode and hash each image, then embed all decodable ones in one batch (same order out)."""
    decoded = decode_all(blobs, max_pixels=max_pixels, max_bytes=max_bytes)
    outcomes, vectors = embed_isolated(decoded, embedder.embed)
    return finish_analysis(outcomes, vectors, sift_config)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
