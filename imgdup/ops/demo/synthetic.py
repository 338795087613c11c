"""Seed -> a deterministic feed of many distinct procedurally drawn images and edited copies (fault tests)."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps


@dataclass(frozen=True)
class SyntheticAd:
    ad_id: int
    category: str
    images: tuple[str, ...]


def _draw(seed: int, size: tuple[int, int] = (384, 288)) -> Image.Image:
    """A busy, distinct scene: a noise texture under random shapes, so SIFT has corners."""
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    width, height = size
    coarse = gen.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    base = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(rng.randint(12, 20)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randint(15, 120), y0 + rng.randint(15, 120)
        shape = rng.choice(("ellipse", "rectangle", "polygon", "line"))
        if shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0), width=2)
        elif shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour, outline=(255, 255, 255), width=2)
        elif shape == "polygon":
            points = [(rng.randrange(width), rng.randrange(height)) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=rng.randint(2, 6))
    fine = gen.integers(-25, 26, size=(height, width, 3))
    textured = np.clip(np.asarray(base, dtype=np.int16) + fine, 0, 255).astype(np.uint8)
    return Image.fromarray(textured).filter(ImageFilter.SMOOTH)


def _edit(image: Image.Image, kind: str) -> Image.Image:
    if kind == "flip":
        return ImageOps.mirror(image)
    if kind == "crop":
        dx, dy = image.width // 10, image.height // 10
        return image.crop((dx, dy, image.width - dx, image.height - dy))
    if kind == "resize":
        return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    out = image.copy()
    ImageDraw.Draw(out).text(
        (10, out.height - 30), "SOLD 912 000 000", font=ImageFont.load_default(size=20), fill=(255, 255, 255)
    )
    return out


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def build_synthetic_feed(
    out_dir: Path, *, originals: int = 140, copies: int = 60, seed: int = 11, first_ad_id: int = 50_000
) -> tuple[list[SyntheticAd], set[frozenset[str]]]:
    """Write `originals` distinct images and `copies` edited copies to out_dir; return the ads
    (one image each, copies in their own ads) and the truth pairs of file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    categories = ("cars", "electronics", "real_estate", "pets")
    ads: list[SyntheticAd] = []
    groups: dict[int, list[str]] = {}
    for index in range(originals):
        name = f"syn{index:04d}.jpg"
        (out_dir / name).write_bytes(_jpeg(_draw(seed * 100_003 + index)))
        ads.append(SyntheticAd(first_ad_id + index, categories[index % len(categories)], (name,)))
        groups[index] = [name]
    for number in range(copies):
        source = rng.randrange(originals)
        kind = ("flip", "crop", "resize", "watermark")[number % 4]
        name = f"syn{source:04d}_{kind}_{number}.jpg"
        (out_dir / name).write_bytes(_jpeg(_edit(_draw(seed * 100_003 + source), kind)))
        ads.append(
            SyntheticAd(first_ad_id + originals + number, categories[source % len(categories)], (name,))
        )
        groups[source].append(name)
    truth = {frozenset({a, b}) for names in groups.values() for a in names for b in names if a < b}
    order = random.Random(seed + 1)
    head, tail = ads[:originals], ads[originals:]
    # Copies arrive interleaved with later originals, as re-posts do.
    mixed = head[: originals // 2] + sorted(head[originals // 2 :] + tail, key=lambda _a: order.random())
    return mixed, truth
