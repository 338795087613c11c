"""A loaded Pillow image of any supported pixel mode -> the same pixels as 8-bit RGB, converted strip by
strip so that no full-size intermediate exists besides the RGB result."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Container, Iterator

import numpy as np
from PIL import Image

__all__ = [
    "ALPHA_MODES",
    "DIRECT_MODES",
    "STRIP_PIXELS",
    "WIDE_MODES",
    "UnsupportedMode",
    "has_alpha",
    "is_supported",
    "makes_new_image",
    "to_rgb",
]

# Modes PIL converts to RGB faithfully. Anything else (e.g. raw "BGR;16") is refused rather
# than guessed at, because a wrong conversion silently poisons hashes and embeddings.
DIRECT_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

# Pixels converted at a time where a conversion needs intermediates (flattening transparency: an
# RGBA copy, a white background, the composite; wide grey: float arrays). These conversions are
# pixel by pixel (a shift, or a scale by the whole image's peak), so strips give exactly the
# pixels a whole-image conversion gives, while the temporaries (~20 bytes a pixel) stay a few MB
# instead of several times the image.
STRIP_PIXELS = 1 << 18


class UnsupportedMode(ValueError):
    """PIL has no faithful conversion from this pixel mode to RGB."""


def is_supported(mode: str) -> bool:
    return mode in DIRECT_MODES or mode in ALPHA_MODES or mode in WIDE_MODES


def has_alpha(mode: str, info: Container[object]) -> bool:
    return mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in info)


def makes_new_image(mode: str, info: Container[object]) -> bool:
    """Whether to_rgb allocates a new full-size RGB image (only plain RGB is used as it is)."""
    return mode != "RGB" or has_alpha(mode, info)


def to_rgb(im: Image.Image) -> Image.Image:
    """The image's pixels as RGB: transparency flattened on white, 16-bit and float grey scaled to
    8 bits. Raises UnsupportedMode."""
    mode = im.mode
    if mode in WIDE_MODES:
        return _by_strips(im, _wide_converter(im))
    if has_alpha(mode, im.info):
        return _by_strips(im, _flatten_on_white)
    if mode not in DIRECT_MODES:
        raise UnsupportedMode(f"pixel mode {mode!r}")
    if mode == "RGB":
        return im
    try:
        # One pass straight into the RGB image: no intermediate to bound.
        return im.convert("RGB")
    except ValueError as exc:
        raise UnsupportedMode(f"pixel mode {mode!r}: {exc}") from exc


def _by_strips(im: Image.Image, convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL warns about palette transparency given as bytes; converting is the fix.
            warnings.simplefilter("ignore", UserWarning)
            if _rows_per_strip(im) >= im.height:
                return convert(im)  # one strip: no copy
            out = Image.new("RGB", im.size)
            for top, strip in _strips(im):
                out.paste(convert(strip), (0, top))
            return out
    except ValueError as exc:
        raise UnsupportedMode(f"pixel mode {im.mode!r}: {exc}") from exc


def _flatten_on_white(strip: Image.Image) -> Image.Image:
    rgba = strip.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _wide_converter(im: Image.Image) -> Callable[[Image.Image], Image.Image]:
    """A strip converter for 16-bit, 32-bit and float grey (PIL's own convert("RGB") clips them at
    255, which turns most photos white). I and F carry no declared range, so the scale comes from
    the whole image's peak, found strip by strip first."""
    if im.mode.startswith("I;16"):
        # The high byte is the 8-bit value.
        return lambda strip: _grey_rgb((_values(strip).astype(np.uint16, copy=False) >> 8).astype(np.uint8))
    if im.mode == "I":
        peak = max(int(_values(strip).max()) for _, strip in _strips(im))

        def convert_int(strip: Image.Image) -> Image.Image:
            # 8-bit data stays, 16-bit data is shifted, anything wider is scaled by its peak.
            clipped = np.clip(_values(strip), 0, None)
            if peak <= 255:
                return _grey_rgb(clipped.astype(np.uint8))
            if peak <= 65535:
                return _grey_rgb((clipped >> 8).astype(np.uint8))
            return _grey_rgb((clipped.astype(np.float32) * (255.0 / peak)).astype(np.uint8))

        return convert_int
    # "F": floats, either 0..1 or an arbitrary positive range
    peak_f = max(float(_finite(strip).max()) for _, strip in _strips(im))
    scale = 255.0 if peak_f <= 1.0 else 255.0 / peak_f
    return lambda strip: _grey_rgb(np.rint(np.clip(_finite(strip) * scale, 0, 255)).astype(np.uint8))


def _rows_per_strip(im: Image.Image) -> int:
    return max(1, STRIP_PIXELS // im.width)


def _strips(im: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """(top row, strip) one at a time; crop keeps the palette and the transparency entry."""
    rows = _rows_per_strip(im)
    if rows >= im.height:
        yield 0, im
        return
    for top in range(0, im.height, rows):
        yield top, im.crop((0, top, im.width, min(im.height, top + rows)))


def _values(strip: Image.Image) -> np.ndarray:
    return np.asarray(strip)


def _finite(strip: Image.Image) -> np.ndarray:
    return np.nan_to_num(_values(strip).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _grey_rgb(grey8: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(grey8[:, :, None], 3, axis=2), "RGB")
