"""An upload's leading bytes -> the allowed image format they declare, or the foreign format they look
like; a WebP's canvas size read from its header."""

from __future__ import annotations

import struct

from PIL import Image, features

__all__ = [
    "ALLOWED_FORMATS",
    "OPENED_AS",
    "declared_format",
    "foreign_format",
    "strong_signature",
    "webp_canvas_size",
]

# The formats ad photos come in. Everything else Pillow can open (PPM, PCX, TGA, SGI, ICO, DDS,
# QOI, SPIDER, ICNS, EPS through Ghostscript, ...) is attack surface and no photo: refused before
# any plugin parses it. AVIF only where Pillow was built with libavif; HEIC has no decoder here.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF") + (
    ("AVIF",) if features.check("avif") else ()
)

# What Image.format may say after opening with one allowed plugin: the JPEG plugin opens a
# multi-picture file (cameras, some phones) as MPO, a JPEG subclass.
OPENED_AS: dict[str, frozenset[str]] = {fmt: frozenset({fmt}) for fmt in ALLOWED_FORMATS} | {
    "JPEG": frozenset({"JPEG", "MPO"})
}

_AVIF_BRANDS = (b"avif", b"avis")
# HEIF brands of HEVC-coded images (iPhones' HEIC); "mif1"/"msf1" alone say only "an image
# container", so the coding brand among the compatible brands decides.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs")


def declared_format(data: bytes) -> str | None:
    """The allowed format whose signature the data starts with, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM"):
        return "BMP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if "AVIF" in ALLOWED_FORMATS and _brands(data) & set(_AVIF_BRANDS):
        return "AVIF"
    return None


def strong_signature(fmt: str) -> bool:
    """Whether data carrying this format's signature is that format, so that a header Pillow cannot
    parse means a broken image. "BM" is two letters any text may start with."""
    return fmt != "BMP"


def foreign_format(data: bytes) -> str | None:
    """The name of a format outside the allowlist the data looks like, or None.

    Only signature checks run (Pillow's prefix tests and the HEIF brands); no plugin parses."""
    brands = _brands(data)
    if brands & set(_HEIF_BRANDS):
        return "HEIC"
    if brands & set(_AVIF_BRANDS):
        return "AVIF"  # an AVIF where Pillow has no libavif
    Image.init()
    prefix = data[:16]  # what Image.open hands each plugin's signature test
    for name, (_factory, accept) in Image.OPEN.items():
        if accept is None or name in ALLOWED_FORMATS:
            continue
        try:
            if accept(prefix):
                return name
        except Exception:  # a signature test on a short or odd prefix
            continue
    return None


def _brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file's leading ftyp box."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return set()
    size = min(struct.unpack(">I", data[:4])[0], len(data), 4096)
    brands = {data[8:12]}
    brands.update(data[offset : offset + 4] for offset in range(16, size - 3, 4))
    return brands


def webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """A WebP's canvas size from its first chunk's header, or None when it cannot be read.

    Pillow's WebP plugin allocates the canvas while opening, so the caps are checked on this."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None
