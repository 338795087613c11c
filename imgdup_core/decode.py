"""Untrusted image bytes in, a capped, canonical RGB array (plus hashes and a storage copy) out."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
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

_IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
)

# Modes PIL converts to RGB faithfully. Anything else (e.g. raw "BGR;16") is refused rather
# than guessed at, because a wrong conversion silently poisons hashes and embeddings.
_DIRECT_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class ImageRejected(Exception):
    """The input cannot (or must not) be decoded; ``reason`` is a stable machine-readable code.

    Reasons: ``empty``, ``not_an_image``, ``truncated``, ``corrupt`` (decoder error other than
    premature end of data), ``too_many_pixels``, ``unsupported_mode``, ``bad_array`` (storage
    helpers given something that is not an HxWx3 uint8 array).
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


def decode_image(data: bytes, *, max_pixels: int = 40_000_000, max_side: int = 1024) -> DecodedImage:
    """Decode untrusted bytes into an upright HxWx3 uint8 array whose longer side is <= max_side.

    Raises ImageRejected for anything that is not a decodable image within the pixel budget.
    """
    if not data:
        raise ImageRejected("empty", "no bytes")
    if max_side < 1:
        raise ValueError("max_side must be positive")
    content_sha256 = hashlib.sha256(data).hexdigest()

    im = _open(data)
    fmt = im.format or "UNKNOWN"
    raw_w, raw_h = im.size
    if raw_w < 1 or raw_h < 1:
        raise ImageRejected("corrupt", f"declared size {raw_w}x{raw_h}")
    if raw_w * raw_h > max_pixels:
        # Checked on the header only: nothing has been decompressed yet.
        raise ImageRejected("too_many_pixels", f"{raw_w}x{raw_h} exceeds the budget of {max_pixels} pixels")

    orientation = _orientation(im)
    if orientation in (5, 6, 7, 8):
        width, height = raw_h, raw_w
    else:
        width, height = raw_w, raw_h

    if fmt == "JPEG" and max(raw_w, raw_h) >= 2 * max_side:
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients,
        # which saves most of the decode time and memory for camera-sized photos.
        ratio = max_side / max(raw_w, raw_h)
        im.draft(im.mode, (max(1, math.ceil(raw_w * ratio)), max(1, math.ceil(raw_h * ratio))))

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

    rgb_image = _to_rgb(im)
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
    im = _open(jpeg_or_png)
    try:
        im.load()
    except Exception as exc:  # same assorted decoder errors as above
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    return np.asarray(_to_rgb(im), dtype=np.uint8).copy()


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check is the policy; PIL's global warning would only turn into
            # an error under strict warning filters.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        if data.startswith(_IMAGE_SIGNATURES):
            # PIL reports a damaged header of a known format as "unidentified"; that is a
            # broken image, not some other kind of file.
            raise ImageRejected("corrupt", "image header could not be parsed") from exc
        raise ImageRejected("not_an_image", "no image format recognised the data") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(_damage_reason(exc), str(exc)) from exc


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
    mode = im.mode
    if mode in _WIDE_MODES:
        return _wide_to_rgb(im)
    has_alpha = mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        try:
            with warnings.catch_warnings():
                # PIL warns about palette transparency given as bytes; converting is the fix.
                warnings.simplefilter("ignore", UserWarning)
                rgba = im.convert("RGBA")
        except ValueError as exc:
            raise ImageRejected("unsupported_mode", f"pixel mode {mode!r}: {exc}") from exc
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode not in _DIRECT_MODES:
        raise ImageRejected("unsupported_mode", f"pixel mode {mode!r}")
    try:
        return im if mode == "RGB" else im.convert("RGB")
    except ValueError as exc:
        raise ImageRejected("unsupported_mode", f"pixel mode {mode!r}: {exc}") from exc


def _wide_to_rgb(im: Image.Image) -> Image.Image:
    # PIL's own convert("RGB") clips 16-bit values at 255, which turns most photos white.
    values = np.asarray(im)
    if im.mode.startswith("I;16"):
        # The high byte is the 8-bit value; shifting keeps the temporaries at 1-2 bytes a pixel.
        gray8 = (values.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    elif im.mode == "I":
        # 32-bit integers carry no declared range: 8-bit data stays, 16-bit data is shifted,
        # anything wider is scaled by its peak.
        peak = int(values.max()) if values.size else 0
        clipped = np.clip(values, 0, None)
        if peak <= 255:
            gray8 = clipped.astype(np.uint8)
        elif peak <= 65535:
            gray8 = (clipped >> 8).astype(np.uint8)
        else:
            gray8 = (clipped.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    else:  # "F": floats, either 0..1 or an arbitrary positive range
        finite = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        peak_f = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak_f <= 1.0 else 255.0 / peak_f
        gray8 = np.rint(np.clip(finite * scale, 0, 255)).astype(np.uint8)
    return Image.fromarray(np.repeat(gray8[:, :, None], 3, axis=2), "RGB")


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
