"""Untrusted image bytes in, a capped, canonical RGB array (plus hashes and a storage copy) out."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from imgdup_core.decode_budget import DEFAULT_MAX_BYTES, decode_cost
from imgdup_core.formats import (
    ALLOWED_FORMATS,
    OPENED_AS,
    declared_format,
    foreign_format,
    strong_signature,
    webp_canvas_size,
)
from imgdup_core.pixels import UnsupportedMode, is_supported, to_rgb

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DecodedImage",
    "ImageRejected",
    "decode_image",
    "load_rgb",
    "storage_jpeg",
]

# Canonical rendering for pixel_sha256: small enough to be cheap, big enough that distinct
# photos never collide in practice.
_CANONICAL_SIDE = 64

# EXIF orientation tag value -> the PIL transpose that undoes it (as in ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


class ImageRejected(Exception):
    """The input cannot (or must not) be decoded; ``reason`` is a stable machine-readable code.

    Reasons: ``empty``, ``not_an_image``, ``unsupported_format`` (an image format ad photos do
    not come in: refused before any decoder sees it), ``truncated``, ``corrupt`` (decoder error
    other than premature end of data), ``too_many_pixels``, ``too_much_memory`` (decoding it would
    hold more than the memory budget), ``unsupported_mode``, ``bad_array`` (storage helpers given
    something that is not an HxWx3 uint8 array).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image: ``rgb`` is capped to ``max_side``; ``width``/``height`` are the original
    (EXIF-upright) dimensions."""

    rgb: np.ndarray
    width: int
    height: int
    format: str
    content_sha256: str
    pixel_sha256: str


def decode_image(
    data: bytes,
    *,
    max_pixels: int = 40_000_000,
    max_side: int = 1024,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DecodedImage:
    """Decode untrusted bytes into an upright HxWx3 uint8 array whose longer side is <= max_side.

    Only the formats ad photos come in are decoded (formats.ALLOWED_FORMATS), and only when their
    pixel count is within max_pixels and what decoding them holds at peak (decode_budget: decoder
    buffers, Pillow's image, the RGB conversion, the downscale) is within max_bytes; both are
    checked on the header, before any pixel is decompressed. Raises ImageRejected otherwise.
    """
    if not data:
        raise ImageRejected("empty", "no bytes")
    if max_side < 1:
        raise ValueError("max_side must be positive")
    content_sha256 = hashlib.sha256(data).hexdigest()

    fmt = _allowed_format(data)
    if fmt == "WEBP" and (canvas := webp_canvas_size(data)) is not None:
        # Pillow's WebP plugin allocates the canvas when it opens the file: check before that.
        _check_budget(fmt, "RGB", canvas, canvas, {}, max_pixels, max_side, max_bytes)
    im = _open(data, fmt)
    fmt = im.format or fmt
    raw_w, raw_h = im.size
    if raw_w < 1 or raw_h < 1:
        raise ImageRejected("corrupt", f"declared size {raw_w}x{raw_h}")
    if not is_supported(im.mode):
        raise ImageRejected("unsupported_mode", f"pixel mode {im.mode!r}")

    if fmt == "JPEG" and max(raw_w, raw_h) >= 2 * max_side:
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients,
        # which saves most of the decode time and memory for camera-sized photos.
        ratio = max_side / max(raw_w, raw_h)
        im.draft(im.mode, (max(1, math.ceil(raw_w * ratio)), max(1, math.ceil(raw_h * ratio))))
    _check_budget(fmt, im.mode, im.size, (raw_w, raw_h), im.info, max_pixels, max_side, max_bytes)

    # PIL's LOAD_TRUNCATED_IMAGES stays False: a cut-off upload is reported as "truncated"
    # rather than silently padded with grey.
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(_damage_reason(exc), str(exc)) from exc
    except Exception as exc:  # decoder plugins raise assorted errors on bad input
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from exc

    # Read after load: PNG's getexif() loads the whole image to find an eXIf chunk at the end.
    orientation = _orientation(im)
    if orientation in (5, 6, 7, 8):
        width, height = raw_h, raw_w
    else:
        width, height = raw_w, raw_h

    rgb_image = _to_rgb(im)
    del im  # a converted image no longer needs the decoded one (nor its decoder's buffers)
    rgb_image = _downscale(rgb_image, max_side)
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        rgb_image = rgb_image.transpose(transpose)

    rgb = np.asarray(rgb_image, dtype=np.uint8).copy()
    rgb.setflags(write=False)
    return DecodedImage(
        rgb=rgb,
        width=width,
        height=height,
        format=fmt,
        content_sha256=content_sha256,
        pixel_sha256=_pixel_sha256(rgb_image, width, height),
    )


def _check_budget(
    fmt: str,
    mode: str,
    size: tuple[int, int],
    source_size: tuple[int, int],
    info: Mapping[Any, object],
    max_pixels: int,
    max_side: int,
    max_bytes: int,
) -> None:
    """Checked on the header only: nothing has been decompressed yet."""
    raw_w, raw_h = source_size
    if raw_w * raw_h > max_pixels:
        raise ImageRejected("too_many_pixels", f"{raw_w}x{raw_h} exceeds the budget of {max_pixels} pixels")
    peak = decode_cost(fmt, mode, size, source_size=source_size, info=info, max_side=max_side).peak
    if peak > max_bytes:
        raise ImageRejected(
            "too_much_memory",
            f"decoding {fmt} {mode} {raw_w}x{raw_h} would hold about {_mib(peak)} MiB, "
            f"over the budget of {_mib(max_bytes)} MiB",
        )


def _mib(size: int) -> int:
    return math.ceil(size / (1024 * 1024))


def storage_jpeg(rgb: np.ndarray, *, max_side: int = 512, quality: int = 90) -> bytes:
    """Encode the reduced copy the pipeline keeps for verification and thumbnails."""
    image = _downscale(Image.fromarray(_check_rgb(rgb), "RGB"), max_side)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def load_rgb(jpeg_or_png: bytes) -> np.ndarray:
    """Decode a stored copy (trusted, already small) back to an HxWx3 uint8 array."""
    if not jpeg_or_png:
        raise ImageRejected("empty", "no bytes")
    im = _open(jpeg_or_png, _allowed_format(jpeg_or_png))
    try:
        im.load()
    except Exception as exc:  # same assorted decoder errors as above
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    return np.asarray(_to_rgb(im), dtype=np.uint8).copy()


def _allowed_format(data: bytes) -> str:
    """The allowed format the data declares by its signature; anything else is refused here,
    before any Pillow plugin parses it."""
    fmt = declared_format(data)
    if fmt is not None:
        return fmt
    foreign = foreign_format(data)
    if foreign is not None:
        allowed = ", ".join(ALLOWED_FORMATS)
        raise ImageRejected("unsupported_format", f"{foreign} is not among the formats decoded ({allowed})")
    raise ImageRejected("not_an_image", "no image format recognised the data")


def _open(data: bytes, fmt: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check is the policy; PIL's global warning would only turn into
            # an error under strict warning filters.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the plugin of the declared format may parse the data.
            im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        if strong_signature(fmt):
            # PIL reports a damaged header of a known format as "unidentified"; that is a
            # broken image, not some other kind of file.
            raise ImageRejected("corrupt", "image header could not be parsed") from exc
        raise ImageRejected("not_an_image", "no image format recognised the data") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if not strong_signature(fmt):
            raise ImageRejected("not_an_image", f"not a {fmt} header: {exc}") from exc
        raise ImageRejected(_damage_reason(exc), str(exc)) from exc
    if im.format not in OPENED_AS[fmt]:
        raise ImageRejected("unsupported_format", f"{im.format} is not among the formats decoded")
    return im


def _damage_reason(exc: BaseException) -> str:
    # PIL signals premature end of data only through the message text.
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return "truncated"
    return "corrupt"


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not reject a good image
        return 1
    return value if isinstance(value, int) else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    try:
        return to_rgb(im)
    except UnsupportedMode as exc:
        raise ImageRejected("unsupported_mode", str(exc)) from exc


def _downscale(image: Image.Image, max_side: int) -> Image.Image:
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    ratio = max_side / max(w, h)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    # reducing_gap first box-reduces by an integer factor, then finishes with Lanczos: much
    # faster than a full Lanczos pass and visually indistinguishable.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _pixel_sha256(image: Image.Image, width: int, height: int) -> str:
    small = image.resize((_CANONICAL_SIDE, _CANONICAL_SIDE), Image.Resampling.BOX)
    digest = hashlib.sha256()
    # The dimensions take part so that a resized copy is never "pixel-identical".
    digest.update(f"{width}x{height}:".encode())
    digest.update(np.asarray(small, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ImageRejected("bad_array", f"expected HxWx3 uint8, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)
