"""A source photo (PIL RGB) and a seeded RNG in -> a copy with what portals and resellers stamp
over ad photos: dense tiled text watermarks, semi-transparent logos, large stickers. Drawn with
PIL alone (fonts from Debian's fonts-dejavu, installed on the machines here), so these edits and
their tests need neither AugLy nor a network."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Several faces from one installed package; a missing file is skipped, and with none at all PIL's
# own scalable font stands in (the edits stay deterministic on one machine either way).
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
FONT_FILES = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSans.ttf",
)
TILED_TEXTS = (
    "AUTO-KOMIS 24h",
    "olx.pl",
    "+48 600 123 456",
    "NIERUCHOMOSCI 24",
    "www.imobiliaria.example.pt",
    "@best_deals_2024",
    "SAMPLE",
    "MOTO-CENTRUM",
)
LOGO_WORDS = ("AUTOPLAC", "DOM+", "FOTO", "OKAZJA", "IMO", "CARS24", "HOME", "SHOP")
STICKER_TEXTS = ("SALE", "-30%", "NEW", "TOP", "HOT", "PROMO", "OKAZJA", "SOLD")
PALETTE = ((255, 255, 255), (0, 0, 0), (230, 30, 30), (255, 210, 0), (20, 90, 220), (0, 150, 70))


@cache
def font_paths() -> tuple[str, ...]:
    return tuple(str(d / name) for name in FONT_FILES for d in FONT_DIRS if (d / name).is_file())


def font(rng: random.Random, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    paths = font_paths()
    if not paths:
        return ImageFont.load_default(size)
    return ImageFont.truetype(rng.choice(paths), max(8, size))


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def blend(image: Image.Image, mask: Image.Image, color: tuple[int, int, int], opacity: float) -> Image.Image:
    """Paint `color` where mask (L, 0-255) is set, at `opacity` of the mask: the watermark's ink
    replaces that share of each pixel, as an overlay layer at that opacity does."""
    base = np.asarray(_rgb(image), dtype=np.float32)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 * opacity
    ink = np.asarray(color, dtype=np.float32)[None, None, :]
    out = base * (1.0 - alpha) + ink * alpha
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


@dataclass(frozen=True)
class TiledText:
    """What one tiled watermark paints: the coverage mask, its ink and its opacity."""

    mask: Image.Image  # L, the photo's size
    color: tuple[int, int, int]
    opacity: float


def tiled_text(size: tuple[int, int], rng: random.Random) -> TiledText:
    """Rows of one text repeated edge to edge, rotated as a whole, at 40-60 % opacity: the whole
    photo is covered (every row spans the rotated canvas, rows are at most ~2 text heights apart)."""
    w, h = size
    side = int(math.hypot(w, h)) + 4  # a square that still covers the photo after any rotation
    short = min(w, h)
    face = font(rng, max(10, int(short * rng.uniform(0.045, 0.09))))
    text = rng.choice(TILED_TEXTS)
    gap = "  " if rng.random() < 0.5 else "   "
    left, top, right, bottom = face.getbbox(text + gap)
    unit_w, unit_h = max(1, right - left), max(1, bottom - top)
    line = (text + gap) * (side // unit_w + 2)
    step = int(unit_h * rng.uniform(1.4, 2.1))
    layer = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(layer)
    stagger = rng.uniform(0.25, 0.5) * unit_w
    for row, y in enumerate(range(-unit_h, side + unit_h, step)):
        draw.text((-(row % 3) * stagger - unit_w, y), line, font=face, fill=255)
    angle = rng.choice((-1, 1)) * rng.uniform(15, 45) if rng.random() < 0.85 else 0.0
    layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC)
    x0, y0 = (side - w) // 2, (side - h) // 2
    mask = layer.crop((x0, y0, x0 + w, y0 + h))
    return TiledText(mask, rng.choice(PALETTE), rng.uniform(0.4, 0.6))


def tiled_watermark(image: Image.Image, rng: random.Random) -> Image.Image:
    """Dense tiled text over the whole photo (a dealer's or a portal's name), 40-60 % opacity,
    several fonts, sizes and angles."""
    layer = tiled_text(image.size, rng)
    return blend(image, layer.mask, layer.color, layer.opacity)


def _logo_mark(side: int, rng: random.Random) -> Image.Image:
    """A logo-like mark on transparency: a badge (circle, rounded square or shield) with initials
    and a word beside or under it."""
    word = rng.choice(LOGO_WORDS)
    color = rng.choice(PALETTE[2:] + PALETTE[:2])
    ink = (255, 255, 255) if sum(color) < 400 else (0, 0, 0)
    horizontal = rng.random() < 0.6
    face = font(rng, int(side * 0.42))
    label = font(rng, int(side * (0.42 if horizontal else 0.3)))
    word_w = int(label.getlength(word)) + 4
    width, height = (int(side * 1.12) + word_w, side) if horizontal else (max(side, word_w), int(side * 1.45))
    mark = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    shape = rng.choice(("circle", "square", "shield"))
    box = (0, 0, side - 1, side - 1)
    if shape == "circle":
        draw.ellipse(box, fill=(*color, 255))
    elif shape == "square":
        draw.rounded_rectangle(box, radius=side // 5, fill=(*color, 255))
    else:
        draw.polygon(
            [(0, 0), (side - 1, 0), (side - 1, side // 2), (side // 2, side - 1), (0, side // 2)],
            fill=(*color, 255),
        )
    draw.text((side // 2, int(side * 0.45)), word[:2], font=face, fill=(*ink, 255), anchor="mm")
    if horizontal:
        draw.text((int(side * 1.12), side // 2), word, font=label, fill=(*color, 255), anchor="lm")
    else:
        draw.text((width // 2, int(side * 1.22)), word, font=label, fill=(*color, 255), anchor="mm")
    return mark.crop(mark.getbbox() or (0, 0, width, height))


def logo(image: Image.Image, rng: random.Random) -> Image.Image:
    """A semi-transparent logo (opacity 0.35-0.75), its badge 12-22 % of the shorter side, in a
    corner or the centre."""
    base = _rgb(image).convert("RGBA")
    w, h = base.size
    mark = _logo_mark(max(12, int(min(w, h) * rng.uniform(0.12, 0.22))), rng)
    if mark.width > w * 0.9:
        scale = w * 0.9 / mark.width
        mark = mark.resize((max(1, int(mark.width * scale)), max(1, int(mark.height * scale))))
    opacity = rng.uniform(0.35, 0.75)
    alpha = mark.getchannel("A").point(lambda v: int(v * opacity))
    mark.putalpha(alpha)
    margin = int(min(w, h) * 0.03)
    spots = (
        (margin, margin),
        (w - mark.width - margin, margin),
        (margin, h - mark.height - margin),
        (w - mark.width - margin, h - mark.height - margin),
        ((w - mark.width) // 2, (h - mark.height) // 2),
    )
    x, y = rng.choice(spots)
    base.alpha_composite(mark, (max(0, x), max(0, y)))
    return base.convert("RGB")


def _star(cx: float, cy: float, outer: float, inner: float, points: int) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        radius = outer if k % 2 == 0 else inner
        angle = math.pi * k / points - math.pi / 2
        out.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return out


def sticker_image(side: int, rng: random.Random) -> Image.Image:
    """An opaque promo sticker, `side` pixels square: a starburst, disc, tag or ribbon badge with
    a white rim and a word on it."""
    sticker = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sticker)
    color = rng.choice(PALETTE[2:])
    rim = max(2, side // 25)
    c = side / 2
    shape = rng.choice(("burst", "disc", "tag", "ribbon"))
    if shape == "burst":
        points = rng.randint(12, 20)
        draw.polygon(_star(c, c, c - 1, c * 0.78, points), fill=(255, 255, 255, 255))
        draw.polygon(_star(c, c, c - 1 - rim, c * 0.78 - rim, points), fill=(*color, 255))
    elif shape == "disc":
        draw.ellipse((0, 0, side - 1, side - 1), fill=(255, 255, 255, 255))
        draw.ellipse((rim, rim, side - 1 - rim, side - 1 - rim), fill=(*color, 255))
    elif shape == "tag":
        draw.rounded_rectangle(
            (0, side // 5, side - 1, side - side // 5), radius=side // 8, fill=(255, 255, 255, 255)
        )
        draw.rounded_rectangle(
            (rim, side // 5 + rim, side - 1 - rim, side - side // 5 - rim),
            radius=side // 9,
            fill=(*color, 255),
        )
    else:
        draw.polygon(
            [
                (0, side // 3),
                (side - 1, side // 3),
                (side * 0.85, c),
                (side - 1, side * 2 // 3),
                (0, side * 2 // 3),
                (side * 0.15, c),
            ],
            fill=(*color, 255),
        )
    text = rng.choice(STICKER_TEXTS)
    face = font(rng, int(side * 0.24))
    draw.text(
        (c, c),
        text,
        font=face,
        fill=(255, 255, 255, 255),
        anchor="mm",
        stroke_width=max(1, side // 60),
        stroke_fill=(0, 0, 0, 255),
    )
    return sticker.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC, expand=False)


def sticker(image: Image.Image, rng: random.Random) -> Image.Image:
    """A large opaque sticker, 25-45 % of the photo's shorter side, anywhere on it."""
    base = _rgb(image).convert("RGBA")
    w, h = base.size
    side = max(8, int(min(w, h) * rng.uniform(0.25, 0.45)))
    badge = sticker_image(side, rng)
    base.alpha_composite(badge, (rng.randint(0, w - side), rng.randint(0, h - side)))
    return base.convert("RGB")
