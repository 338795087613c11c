"""Test helpers: numpy photos in; encoded bytes, hand-made PNGs and reposters' edits out."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from imgdup_core.decode import decode_image, load_rgb, storage_jpeg
from imgdup_core.evidence import Verdict
from imgdup_core.framing import crop_region, find_photo_region
from imgdup_core.hashing import phash_pair
from imgdup_core.verifier_config import VerifierConfig
from imgdup_core.verify import verify_images
from imgdup_core.views import ImageView

Edit = Callable[[np.ndarray], np.ndarray]


# --- encoding helpers -------------------------------------------------------------------------


def uploaded(image: Image.Image) -> tuple[ImageView, np.ndarray, tuple[float, float, float, float] | None]:
    """What the images agent keeps for an upload (an RGB JPEG at quality 90): the stored copy, its pHashes
    and, where the frame finder sees a framed photo, the photo's stored copy and its box as shares of it."""
    rgb = decode_image(encode(image.convert("RGB"), quality=90)).rgb
    region = find_photo_region(rgb)
    stored = load_rgb(storage_jpeg(rgb))
    if region is None:
        return ImageView(stored, phash_pair(rgb), box=None), stored, None
    photo = load_rgb(storage_jpeg(crop_region(rgb, region)))
    box = region.shares(rgb.shape[1], rgb.shape[0])
    return ImageView(stored, phash_pair(rgb), photo, box=box), stored, box


def verify_uploads(
    a: Image.Image, b: Image.Image, cosine: Callable[[np.ndarray, np.ndarray], float], config: VerifierConfig
) -> Verdict:
    """The verifier's verdict on two uploads as the images agent keeps them (uploaded), the embedding cosine
    of their stored copies from `cosine` (the tests' SSCD fixture)."""
    (view_a, stored_a, _), (view_b, stored_b, _) = uploaded(a), uploaded(b)
    return verify_images(view_a, view_b, cosine=cosine(stored_a, stored_b), config=config)


def view_of(rgb: np.ndarray) -> ImageView:
    """A stored copy as the verifier sees an unframed picture: its pixels and pHashes."""
    return ImageView(rgb, phash_pair(rgb))


def encode(rgb: np.ndarray | Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def png_chunks(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG written by hand, so tests can declare any size or bit depth PIL would not write."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zlib_stream(rows: Iterable[bytes]) -> bytes:
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for row in rows]
    parts.append(compressor.flush())
    return b"".join(parts)


def pipeline_copy(rgb: np.ndarray, *, quality: int = 90) -> np.ndarray:
    """What the service keeps for an uploaded photo: decode the upload, store a reduced JPEG."""
    decoded = decode_image(encode(rgb, "JPEG", quality=quality))
    return load_rgb(storage_jpeg(decoded.rgb))


# --- edits ------------------------------------------------------------------------------------


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encode(rgb, "JPEG", quality=quality))).convert("RGB"))


def resize(rgb: np.ndarray, factor: float) -> np.ndarray:
    image = Image.fromarray(rgb)
    size = (round(image.width * factor), round(image.height * factor))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def brightness(rgb: np.ndarray, factor: float) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(rgb)).enhance(factor))


def contrast(rgb: np.ndarray, factor: float) -> np.ndarray:
    return np.asarray(ImageEnhance.Contrast(Image.fromarray(rgb)).enhance(factor))


# Issue 11's flat blind spot: edits that leave a flat sky's copy no SIFT keypoint that matches the original's.
SKY_EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "brightness60": lambda x: brightness(x, 0.6),
    "brightness50": lambda x: brightness(x, 0.5),
    "contrast60": lambda x: contrast(x, 0.6),
    "brightness70-contrast70": lambda x: contrast(brightness(x, 0.7), 0.7),
}


def mirror(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def crop(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """Cut `fraction` of the width and height from every side."""
    h, w = rgb.shape[:2]
    dy, dx = round(h * fraction), round(w * fraction)
    return np.ascontiguousarray(rgb[dy : h - dy, dx : w - dx])


def rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    image = Image.fromarray(rgb)
    turned = image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    return np.asarray(turned)


def watermark(rgb: np.ndarray, text: str = "SUPER-AUTO.example  +48 600 100 200") -> np.ndarray:
    """A dealer's caption along the bottom, white with a dark outline."""
    image = Image.fromarray(rgb).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(12, image.height // 16))
    draw.text(
        (image.width * 0.05, image.height * 0.85),
        text,
        font=font,
        fill=(255, 255, 255, 200),
        stroke_width=2,
        stroke_fill=(0, 0, 0, 200),
    )
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


def heavy_watermark(rgb: np.ndarray, text: str = "AUTO-KOMIS  www.example.pl") -> np.ndarray:
    """Semi-transparent text tiled over the whole picture at a slant."""
    image = Image.fromarray(rgb).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(12, image.height // 14))
    for row, y in enumerate(range(0, image.height, image.height // 6)):
        draw.text(((row % 2) * -80, y), (text + "   ") * 4, font=font, fill=(255, 255, 255, 110))
    overlay = overlay.rotate(20, resample=Image.Resampling.BICUBIC)
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


def agency_logo(rgb: np.ndarray) -> np.ndarray:
    """The same fixed-size logo box in the corner, as an agency stamps on all its photos."""
    image = Image.fromarray(rgb).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((10, 10, 330, 80), fill=(255, 255, 255, 230))
    draw.text((20, 20), "AUTO-KOMIS 24h", font=ImageFont.load_default(size=28), fill="#c80000")
    draw.text((20, 50), "www.example.pl", font=ImageFont.load_default(size=20), fill="black")
    return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


def listing_screenshot(rgb: np.ndarray) -> np.ndarray:
    """The photo inside a fixed listing-page template (header, title, price, buttons), as a
    screenshot of someone else's ad: the same frame for every photo."""
    canvas = Image.new("RGB", (480, 760), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 480, 70), fill=(0, 47, 52))
    draw.text((20, 18), "classifieds.example", font=ImageFont.load_default(size=28), fill="white")
    for row in range(4):
        draw.rectangle((20, 90 + 36 * row, 460 - 60 * row, 112 + 36 * row), fill=(200, 205, 210))
    draw.text((20, 640), "2 450 PLN   Warszawa", font=ImageFont.load_default(size=30), fill="black")
    draw.rounded_rectangle((20, 690, 230, 740), radius=12, fill=(35, 229, 219))
    draw.rounded_rectangle((250, 690, 460, 740), radius=12, outline=(0, 47, 52), width=3)
    draw.text((60, 700), "Message", font=ImageFont.load_default(size=24), fill="black")
    draw.text((300, 700), "Call", font=ImageFont.load_default(size=24), fill="black")
    photo = Image.fromarray(rgb)
    photo.thumbnail((440, 380))
    canvas.paste(photo, (20 + (440 - photo.width) // 2, 250 + (380 - photo.height) // 2))
    return np.asarray(canvas)


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    image = Image.fromarray(rgb)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


# The photos every edit is applied to in the tests.
EDITED_BASES = ("astronaut", "coffee", "chelsea", "rocket")

EDITS: dict[str, Edit] = {
    "resize50": lambda x: resize(x, 0.5),
    "jpeg40": lambda x: jpeg(x, 40),
    "brightness130": lambda x: brightness(x, 1.3),
    "contrast140": lambda x: contrast(x, 1.4),
    "mirror": mirror,
    "crop10": lambda x: crop(x, 0.10),
    "crop25": lambda x: crop(x, 0.25),
    "watermark": watermark,
    "heavy_watermark": heavy_watermark,
    "rotate5": lambda x: rotate(x, 5),
    "rotate10": lambda x: rotate(x, -10),
    "combo": lambda x: jpeg(mirror(watermark(crop(brightness(x, 1.2), 0.08))), 60),
}
