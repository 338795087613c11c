"""A format, pixel mode and size about to be decoded -> the bytes its decode, conversion to RGB and
downscale will hold at their peak, known before a pixel is decompressed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imgdup_core.pixels import STRIP_PIXELS, makes_new_image

__all__ = ["DEFAULT_MAX_BYTES", "DecodeCost", "decode_cost", "stored_bytes_per_pixel"]

# Per image decoded at a time (a worker decodes up to IMGDUP_CPU_THREADS at once). Every photo a
# phone or camera takes fits (a 48 MP JPEG decodes drafted; a 40 MP RGB PNG needs ~200 MB); what
# does not is a tiny file that would amplify into several times this.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_RGB = 4  # Pillow keeps RGB padded to 32 bits a pixel
_STORED = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_BANDS = {"L": 1, "RGB": 3, "YCbCr": 3, "CMYK": 4}
_BMP_RLE = (1, 2)  # BMP compression: RLE8, RLE4
# Conversion temporaries per strip pixel: a crop, an RGBA copy, a white background, the composite
# and its RGB (or the float arrays of a wide-mode strip).
_STRIP_BYTES_PER_PIXEL = 24


def stored_bytes_per_pixel(mode: str) -> int:
    """Bytes a pixel of this mode takes in Pillow's own storage (alpha, CMYK, I and F: 4)."""
    return _STORED.get(mode, 4)


@dataclass(frozen=True)
class DecodeCost:
    decoder: int  # what the format's decoder holds beside Pillow's image
    image: int  # Pillow's image of the decoded pixels
    rgb: int  # the RGB image the pixels are converted into (0: the image is RGB already)
    downscale: int  # the reduced copy and the resampling pass towards max_side

    @property
    def peak(self) -> int:
        strips = min(self.rgb // _RGB, STRIP_PIXELS) * _STRIP_BYTES_PER_PIXEL
        converting = self.decoder + self.image + self.rgb + strips
        # The decoded image is released once converted; a plain RGB one is downscaled as it is.
        downscaling = (self.rgb or self.image + self.decoder) + self.downscale
        return max(converting, downscaling)


def decode_cost(
    fmt: str,
    mode: str,
    size: tuple[int, int],
    *,
    source_size: tuple[int, int] | None = None,
    info: Mapping[Any, object] | None = None,
    max_side: int = 1024,
) -> DecodeCost:
    """What decoding `size` pixels of `mode` holds. size: what Pillow will produce (a JPEG after
    its draft scale); source_size: the size in the file; info: Pillow's info of the opened file."""
    info = info or {}
    width, height = size
    pixels = width * height
    image = pixels * stored_bytes_per_pixel(mode)
    source_pixels = math.prod(source_size) if source_size else pixels
    return DecodeCost(
        decoder=_decoder_bytes(fmt, mode, image, pixels, source_pixels, info),
        image=image,
        rgb=pixels * _RGB if makes_new_image(mode, info) else 0,
        downscale=_downscale_bytes(size, max_side),
    )


def _decoder_bytes(
    fmt: str, mode: str, image: int, pixels: int, source_pixels: int, info: Mapping[Any, object]
) -> int:
    if fmt in ("JPEG", "MPO") and info.get("progressive"):
        # libjpeg keeps every DCT coefficient of a progressive scan (2 bytes a sample, at full
        # size whatever the draft scale); chroma subsampling would halve it: assume none.
        return source_pixels * _BANDS.get(mode, 4) * 2
    if fmt == "WEBP":
        # libwebp's animation decoder keeps two canvases (made when the file is opened) and Pillow
        # copies the frame out of them: 3 x 32 bits a pixel, alive as long as the image. Measured:
        # a 12 MP lossy WebP holds 16 bytes a pixel with Pillow's image.
        return 3 * pixels * 4
    if fmt == "AVIF":
        # The YUV planes (up to 16 bits, 4:4:4) and alpha plane, and libavif's RGB buffer while
        # Pillow copies it. Measured: 8-bit 4:2:0 holds ~5 bytes a pixel beside Pillow's image.
        return pixels * 10
    if fmt == "TIFF":
        # libtiff reads a strip or tile at a time, and one strip may be the whole image.
        return image
    if fmt == "BMP" and info.get("compression") in _BMP_RLE:
        # Pillow's RLE decoder builds the whole image as bytes, then copies them.
        return 2 * image
    return 0


def _downscale_bytes(size: tuple[int, int], max_side: int) -> int:
    """The reduced copy and the horizontal resampling pass of decode._downscale (PIL's resize with
    reducing_gap=3: box-reduce by an integer factor, then Lanczos)."""
    width, height = size
    if max(width, height) <= max_side:
        return 0
    ratio = max_side / max(width, height)
    target_w, target_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    factor_x = int(width / target_w / 3.0) or 1
    factor_y = int(height / target_h / 3.0) or 1
    reduced_w, reduced_h = math.ceil(width / factor_x), math.ceil(height / factor_y)
    reduced = reduced_w * reduced_h * _RGB if factor_x * factor_y > 1 else 0
    return reduced + target_w * reduced_h * _RGB
