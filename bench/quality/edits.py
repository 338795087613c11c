"""A source photo (PIL RGB) and a seeded RNG in -> an edited copy, DISC21-style, made with AugLy
(Meta's augmentation library, the one that generated DISC21's queries) and, for the broad pool's
families, with PIL (overlays.py, templates.py). Each edit family is a function; `EDIT_FAMILIES`
lists them with the group they are reported in; `CLASSIC_FAMILIES` are the default pool's."""

from __future__ import annotations

import io
import os
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from bench.quality import overlays, templates


def _augly() -> Any:
    try:
        import augly.image as imaugs  # type: ignore[import-untyped]
        import augly.utils as augly_utils  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - environment problem, said plainly
        raise SystemExit(
            "the quality benchmark needs AugLy: pip install -e '.[bench]' (see bench/quality/README.md)"
        ) from exc
    return imaugs, augly_utils


Edit = Callable[[Image.Image, random.Random], Image.Image]

# The JPEG quality ad photos are saved with (the copy's upload) unless the edit says otherwise.
UPLOAD_QUALITY = 90

WATERMARK_TEXTS = (
    "olx.pl",
    "+48 600 123 456",
    "WhatsApp 912 345 678",
    "AUTO-KOMIS 24h",
    "www.imobiliaria.example.pt",
    "@best_deals_2024",
    "Tel. 0800 555 010",
)
CAPTIONS = (
    "SUPER OKAZJA",
    "PROMO -30%",
    "VENDIDO",
    "NOWA CENA",
    "Only today!",
    "Pilne! Sprzedam",
    "Preço negociável",
    "Like & share",
)
LATIN_FONTS = (
    # Fonts whose AugLy character list has a space (Montserrat's and Ubuntu's do not).
    "Raleway-ExtraBold.ttf",
    "OpenSans-Bold.ttf",
    "IBMPlexSans-Regular.ttf",
    "SourceSansPro-Semibold.ttf",
)


def _font_path(name: str) -> str:
    _, utils = _augly()
    return os.path.join(utils.FONTS_DIR, name)


@cache
def _font_chars(name: str) -> list[int]:
    with open(os.path.splitext(_font_path(name))[0] + ".pkl", "rb") as handle:
        chars: list[int] = pickle.load(handle)
    return chars


def _indices(text: str, font: str) -> list[int]:
    """AugLy's overlay_text takes indices into its font's character list, not a string."""
    chars = _font_chars(font)
    return [chars.index(ord(c)) for c in text]


@cache
def _emojis() -> tuple[str, ...]:
    _, utils = _augly()
    root = Path(utils.EMOJI_DIR)
    return tuple(sorted(str(p) for p in root.rglob("*.png")))


def _color(rng: random.Random) -> tuple[int, int, int]:
    return rng.choice(((255, 255, 255), (0, 0, 0), (230, 30, 30), (255, 210, 0), (20, 90, 220)))


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    _rgb(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


# --- benign -------------------------------------------------------------------------------------


def resize(image: Image.Image, rng: random.Random) -> Image.Image:
    imaugs, _ = _augly()
    factor = rng.uniform(0.35, 0.7) if rng.random() < 0.8 else rng.uniform(1.2, 1.5)
    return _rgb(imaugs.scale(image, factor=factor))


def jpeg(image: Image.Image, rng: random.Random) -> Image.Image:
    imaugs, _ = _augly()
    return _rgb(imaugs.encoding_quality(image, quality=rng.randint(12, 30)))


def _factor(rng: random.Random) -> float:
    return rng.uniform(0.55, 0.8) if rng.random() < 0.5 else rng.uniform(1.3, 1.7)


def brightness(image: Image.Image, rng: random.Random) -> Image.Image:
    imaugs, _ = _augly()
    return _rgb(imaugs.brightness(image, factor=_factor(rng)))


def contrast(image: Image.Image, rng: random.Random) -> Image.Image:
    imaugs, _ = _augly()
    return _rgb(imaugs.contrast(image, factor=_factor(rng)))


def flip(image: Image.Image, rng: random.Random) -> Image.Image:
    imaugs, _ = _augly()
    return _rgb(imaugs.hflip(image))


def watermark(image: Image.Image, rng: random.Random) -> Image.Image:
    """A seller's small caption in a corner (a phone number, a site, a handle)."""
    imaugs, _ = _augly()
    font = rng.choice(LATIN_FONTS)
    text = rng.choice(WATERMARK_TEXTS)
    size = rng.uniform(0.05, 0.08)
    width_share = 0.6 * size * len(text) * min(image.size) / image.width
    x = rng.choice((0.03, max(0.03, 0.97 - width_share)))
    y = rng.choice((0.04, 0.88 - size))
    return _rgb(
        imaugs.overlay_text(
            image,
            text=_indices(text, font),
            font_file=_font_path(font),
            font_size=size,
            opacity=rng.uniform(0.6, 0.9),
            color=_color(rng),
            x_pos=x,
            y_pos=y,
        )
    )


def _crop(image: Image.Image, rng: random.Random, per_side: float) -> Image.Image:
    imaugs, _ = _augly()
    total = 2 * per_side
    left = rng.uniform(0.3, 0.7) * total
    top = rng.uniform(0.3, 0.7) * total
    return _rgb(imaugs.crop(image, x1=left, y1=top, x2=1 - (total - left), y2=1 - (total - top)))


def crop10(image: Image.Image, rng: random.Random) -> Image.Image:
    """10 % of each dimension off each side on average (80 % x 80 % kept), off-centre."""
    return _crop(image, rng, rng.uniform(0.07, 0.10))


# --- hard ---------------------------------------------------------------------------------------


def crop25(image: Image.Image, rng: random.Random) -> Image.Image:
    """25 % of each dimension off each side on average: half the width and height kept."""
    return _crop(image, rng, 0.25)


def rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    """3-10 degrees either way; AugLy crops to the largest upright rectangle inside."""
    imaugs, _ = _augly()
    return _rgb(imaugs.rotate(image, degrees=rng.choice((-1, 1)) * rng.uniform(3.0, 10.0)))


def heavy_watermark(image: Image.Image, rng: random.Random) -> Image.Image:
    """A dealer's name tiled diagonally over the whole picture, semi-transparent."""
    imaugs, _ = _augly()
    w, h = image.size
    side = int(1.5 * max(w, h))
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.truetype(
        _font_path(rng.choice(LATIN_FONTS)), max(12, int(min(w, h) * rng.uniform(0.06, 0.1)))
    )
    text = "   ".join([rng.choice(WATERMARK_TEXTS)] * 6)
    fill = (*_color(rng), 255)
    step = max(16, int(min(w, h) * rng.uniform(0.12, 0.2)))
    for row, y in enumerate(range(0, side, step)):
        draw.text((-(row % 3) * step, y), text, font=font, fill=fill)
    layer = layer.rotate(rng.uniform(20, 45), resample=Image.Resampling.BICUBIC)
    left, top = (side - w) // 2, (side - h) // 2
    layer = layer.crop((left, top, left + w, top + h))
    return _rgb(
        imaugs.overlay_image(
            image,
            overlay=layer,
            opacity=rng.uniform(0.35, 0.6),
            overlay_size=1.0,
            x_pos=0.0,
            y_pos=0.0,
            max_visible_opacity=1.0,
        )
    )


def text_overlay(image: Image.Image, rng: random.Random) -> Image.Image:
    """A big caption across the picture (one or two lines)."""
    imaugs, _ = _augly()
    font = rng.choice(LATIN_FONTS)
    lines = [_indices(rng.choice(CAPTIONS), font) for _ in range(rng.choice((1, 2)))]
    return _rgb(
        imaugs.overlay_text(
            image,
            text=lines,
            font_file=_font_path(font),
            font_size=rng.uniform(0.1, 0.18),
            opacity=rng.uniform(0.8, 1.0),
            color=_color(rng),
            x_pos=rng.uniform(0.0, 0.3),
            y_pos=rng.uniform(0.1, 0.6),
        )
    )


def emoji_overlay(image: Image.Image, rng: random.Random) -> Image.Image:
    imaugs, _ = _augly()
    size = rng.uniform(0.2, 0.35)
    return _rgb(
        imaugs.overlay_emoji(
            image,
            emoji_path=rng.choice(_emojis()),
            emoji_size=size,
            opacity=rng.uniform(0.8, 1.0),
            x_pos=rng.uniform(0.0, 1.0 - size),
            y_pos=rng.uniform(0.0, 1.0 - size),
        )
    )


def padding(image: Image.Image, rng: random.Random) -> Image.Image:
    """A border or letterbox: coloured padding around the photo."""
    imaugs, _ = _augly()
    color = rng.choice(((0, 0, 0), (255, 255, 255), (240, 240, 240), (30, 60, 120)))
    if rng.random() < 0.4:
        return _rgb(imaugs.pad_square(image, color=color))
    return _rgb(
        imaugs.pad(image, w_factor=rng.uniform(0.05, 0.3), h_factor=rng.uniform(0.05, 0.3), color=color)
    )


def screenshot(image: Image.Image, rng: random.Random) -> Image.Image:
    """The photo shown inside a web page or a phone screen, as a screenshot of the listing."""
    imaugs, utils = _augly()
    template = os.path.join(utils.SCREENSHOT_TEMPLATES_DIR, rng.choice(("web.png", "mobile.png")))
    return _rgb(
        imaugs.overlay_onto_screenshot(
            image,
            template_filepath=template,
            crop_src_to_fit=rng.random() < 0.5,
        )
    )


_COMBO_PARTS: tuple[Edit, ...] = (
    flip,
    crop10,
    brightness,
    contrast,
    watermark,
    text_overlay,
    emoji_overlay,
    padding,
    rotate,
    resize,
)


def combo(image: Image.Image, rng: random.Random) -> Image.Image:
    """Two to four of the edits above, then a low-quality JPEG (DISC21's "mixed" queries)."""
    for part in rng.sample(_COMBO_PARTS, rng.randint(2, 4)):
        image = part(image, rng)
    return _jpeg(image, rng.randint(35, 70))


@dataclass(frozen=True)
class EditFamily:
    name: str
    kind: str  # "benign" or "hard"
    apply: Edit | None  # None: the same file, byte for byte (an exact re-upload)
    description: str


# The default pool's families, in this order: the order decides which photo gets which edit, so
# a set built from the default pool stays byte-identical (and keeps its set id) as families are added.
CLASSIC_FAMILIES: tuple[EditFamily, ...] = (
    EditFamily("exact", "benign", None, "the same file uploaded again"),
    EditFamily("resize", "benign", resize, "scaled to 35-70 % (or up to 150 %)"),
    EditFamily("jpeg", "benign", jpeg, "re-encoded at JPEG quality 12-30"),
    EditFamily("brightness", "benign", brightness, "brightness x0.55-0.8 or x1.3-1.7"),
    EditFamily("contrast", "benign", contrast, "contrast x0.55-0.8 or x1.3-1.7"),
    EditFamily("flip", "benign", flip, "mirrored left-right"),
    EditFamily("watermark", "benign", watermark, "small text caption in a corner"),
    EditFamily("crop10", "benign", crop10, "7-10 % cut off each side, off-centre"),
    EditFamily("crop25", "hard", crop25, "25 % cut off each side on average (a quarter of the area kept)"),
    EditFamily("rotate", "hard", rotate, "rotated 3-10 degrees, cropped upright"),
    EditFamily(
        "heavy_watermark", "hard", heavy_watermark, "text tiled over the whole picture, opacity 0.35-0.6"
    ),
    EditFamily("text_overlay", "hard", text_overlay, "large caption across the picture"),
    EditFamily("emoji", "hard", emoji_overlay, "emoji covering 20-35 % of the side"),
    EditFamily("padding", "hard", padding, "coloured border or square letterbox"),
    EditFamily("screenshot", "hard", screenshot, "inside a web or phone screenshot template"),
    EditFamily("combo", "hard", combo, "2-4 of the edits above, then JPEG 35-70"),
)
# What ad portals carry on top (issue 11): the broad pool uses these as well.
BROAD_FAMILIES: tuple[EditFamily, ...] = (
    EditFamily(
        "logo", "benign", overlays.logo, "semi-transparent logo, 12-22 % of the side, corner or centre"
    ),
    EditFamily(
        "tiled_watermark",
        "hard",
        overlays.tiled_watermark,
        "dense tiled text over the whole photo, opacity 0.4-0.6, several fonts, sizes, angles",
    ),
    EditFamily("sticker", "hard", overlays.sticker, "opaque promo sticker 25-45 % of the side"),
    EditFamily(
        "screenshot_templates",
        "hard",
        templates.screenshot_template,
        "letterboxed in a listing page, phone app or social post template",
    ),
)
EDIT_FAMILIES: tuple[EditFamily, ...] = CLASSIC_FAMILIES + BROAD_FAMILIES
FAMILY_BY_NAME = {family.name: family for family in EDIT_FAMILIES}
BENIGN = tuple(f.name for f in EDIT_FAMILIES if f.kind == "benign")
HARD = tuple(f.name for f in EDIT_FAMILIES if f.kind == "hard")
