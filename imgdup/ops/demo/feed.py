"""Consumes scikit-image's bundled real photos; produces demo ad JPEGs and feed.json truth."""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from itertools import combinations
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

IMAGES_DIRNAME = "images"
FEED_FILENAME = "feed.json"
FEED_FORMAT = "imgdup-demo-feed/1"

MAX_SIDE = 800
JPEG_QUALITY = 92
LOW_JPEG_QUALITY = 50


@dataclass(frozen=True)
class DemoImage:
    """One photo file of the feed and its truth label."""

    name: str  # file name under images/, e.g. "coffee__flip.jpg"
    group: str  # the original photo it derives from; distinct photos have distinct groups
    edit: str  # "original", "resize", "flip", "crop10", "watermark", ...


@dataclass(frozen=True)
class DemoAd:
    """One classified ad of the feed."""

    ad_id: int
    source: str
    category: str | None
    seller_id: str | None
    images: list[DemoImage]


@dataclass(frozen=True)
class DemoFeed:
    """The ads in posting order; the truth is carried by each image's group."""

    ads: list[DemoAd]

    def images(self) -> list[DemoImage]:
        return [image for ad in self.ads for image in ad.images]

    def truth_pairs(self) -> set[frozenset[str]]:
        """Unordered pairs of image names of one group that sit in different ads."""
        placed = [(ad.ad_id, image) for ad in self.ads for image in ad.images]
        pairs: set[frozenset[str]] = set()
        for (ad_a, img_a), (ad_b, img_b) in combinations(placed, 2):
            if ad_a != ad_b and img_a.group == img_b.group and img_a.name != img_b.name:
                pairs.add(frozenset((img_a.name, img_b.name)))
        return pairs


# --------------------------------------------------------------------------------------------
# Photos. Only real photographs that ship inside scikit-image's wheel (skimage/data/); nothing
# is fetched. Synthetic images (chessboard, color, logo, phantom, text, page, horse, cell, ...)
# are deliberately absent.

_PHOTO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "camera": "camera.png",
    "moon": "moon.png",
    "coins": "coins.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "ihc": "ihc.png",
    # negatives: each appears exactly once
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "clock_motion": "clock_motion.png",
}

NEGATIVE_GROUPS: tuple[str, ...] = (
    "motorcycle_left",
    "motorcycle_right",
    "brick",
    "grass",
    "gravel",
    "clock_motion",
)


def _photo_path(group: str) -> Path:
    resource = files("skimage") / "data" / _PHOTO_FILES[group]
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image's bundled photo {_PHOTO_FILES[group]!r} is missing at {path}")
    return path


def _load_photo(group: str) -> Image.Image:
    """The photo as RGB with its longer side at most MAX_SIDE."""
    with Image.open(_photo_path(group)) as raw:
        image = raw.convert("RGB")
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


# --------------------------------------------------------------------------------------------
# Edits. Parameters that vary are drawn from a per-image RNG seeded by (seed, name), so the
# output depends only on the seed.


def _resize(image: Image.Image, rng: random.Random) -> Image.Image:
    scale = rng.uniform(0.50, 0.60)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _flip(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(image)


def _crop(image: Image.Image, rng: random.Random) -> Image.Image:
    frac = rng.uniform(0.08, 0.10)
    dx, dy = round(image.width * frac), round(image.height * frac)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _watermark(image: Image.Image, rng: random.Random) -> Image.Image:
    phone = f"{rng.choice((91, 92, 93, 96))}{rng.randrange(10**7):07d}"
    text = f"WhatsApp {phone[:3]} {phone[3:6]} {phone[6:]}"
    size = max(14, image.height // 13)
    font = ImageFont.load_default(size=size)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
    text_w, text_h = right - left, bottom - top
    margin = max(6, image.height // 40)
    x_slots = (margin, (image.width - text_w) // 2, image.width - text_w - margin)
    y_slots = (image.height - text_h - margin, (image.height - text_h) // 2)
    x = max(0, rng.choice(x_slots)) - left
    y = max(0, rng.choice(y_slots)) - top
    draw.text(
        (x, y),
        text,
        font=font,
        fill=(255, 255, 255, 200),
        stroke_width=2,
        stroke_fill=(0, 0, 0, 160),
    )
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def _brightness(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.25)


def _contrast(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(0.75)


def _identity(image: Image.Image, rng: random.Random) -> Image.Image:
    return image


def _flip_resize(image: Image.Image, rng: random.Random) -> Image.Image:
    return _resize(_flip(image, rng), rng)


_Edit = Callable[[Image.Image, random.Random], Image.Image]

# edit name -> (transform, JPEG quality of the saved file)
_EDITS: dict[str, tuple[_Edit, int]] = {
    "original": (_identity, JPEG_QUALITY),
    "resize": (_resize, JPEG_QUALITY),
    "flip": (_flip, JPEG_QUALITY),
    "crop10": (_crop, JPEG_QUALITY),
    "watermark": (_watermark, JPEG_QUALITY),
    "brightness": (_brightness, JPEG_QUALITY),
    "contrast": (_contrast, JPEG_QUALITY),
    "jpeg": (_identity, LOW_JPEG_QUALITY),
    "flip_resize": (_flip_resize, JPEG_QUALITY),
}


# --------------------------------------------------------------------------------------------
# Layout. Each entry is one ad in posting order: (source, category, seller key, images), an
# image being "group" (the original) or "group__edit". Originals come before their copies;
# copies are posted by other sellers, mostly in the same category (re-posts and scams).

_Layout = tuple[str, str | None, str | None, tuple[str, ...]]

_LAYOUT: tuple[_Layout, ...] = (
    # original ads
    ("olx.pt", "pets", "s01", ("chelsea",)),
    ("olx.pt", "electronics", "s02", ("camera", "moon")),
    ("olx.pl", None, "s03", ("coins", "retina")),
    ("olx.pt", None, "s04", ("astronaut", "rocket")),
    ("olx.pl", "real_estate", "s05", ("coffee",)),
    ("olx.pl", "electronics", "s06", ("hubble_deep_field", "ihc")),
    # negatives: distinct photos, no copies anywhere (motorcycle left/right is a hard negative)
    ("olx.pt", "cars", "s07", ("motorcycle_left",)),
    ("olx.pl", "cars", "s08", ("motorcycle_right",)),
    ("olx.pt", "real_estate", "s09", ("brick",)),
    ("olx.pl", "real_estate", "s10", ("grass", "gravel")),
    ("olx.pt", None, None, ("clock_motion",)),
    # re-posts and scams
    ("olx.pt", "pets", "s11", ("chelsea__crop10",)),
    ("olx.pl", "electronics", "s12", ("camera__flip", "moon__resize")),
    ("olx.pt", None, "s13", ("astronaut__watermark", "rocket__watermark")),
    ("olx.pl", "real_estate", "s14", ("coffee__resize",)),
    ("olx.pt", None, "s15", ("coins__contrast", "retina__flip_resize")),
    ("olx.pl", "electronics", "s16", ("hubble_deep_field__brightness", "ihc__watermark")),
    ("olx.pl", "pets", "s17", ("chelsea__brightness",)),
    ("olx.pt", "electronics", "s18", ("camera__jpeg",)),
    ("olx.pt", "electronics", "s19", ("moon__crop10",)),
    ("olx.pl", None, "s13", ("astronaut__flip", "coins__watermark")),
    ("olx.pt", "real_estate", "s20", ("coffee__contrast",)),
    ("olx.pl", "cars", "s21", ("rocket__flip_resize",)),
    ("olx.pt", "electronics", "s22", ("ihc__brightness", "hubble_deep_field__jpeg")),
    ("olx.pl", None, "s23", ("retina__crop10",)),
    ("olx.pt", None, "s24", ("astronaut__resize",)),
    ("olx.pl", "real_estate", "s25", ("coffee__jpeg",)),
    ("olx.pt", None, "s15", ("coins__flip",)),
    ("olx.pl", "electronics", "s26", ("ihc__resize",)),
)

FIRST_AD_ID = 1001


def _parse(token: str) -> tuple[str, str]:
    group, _, edit = token.partition("__")
    edit = edit or "original"
    if group not in _PHOTO_FILES or edit not in _EDITS:
        raise ValueError(f"bad layout token {token!r}")
    return group, edit


def _image_name(group: str, edit: str) -> str:
    return f"{group}.jpg" if edit == "original" else f"{group}__{edit}.jpg"


def _seller_ids(seed: int) -> dict[str, str]:
    keys = sorted({key for _, _, key, _ in _LAYOUT if key is not None})
    rng = random.Random(f"imgdup-demo-sellers:{seed}")
    ids: dict[str, str] = {}
    used: set[str] = set()
    for key in keys:
        while True:
            candidate = f"seller-{rng.randrange(16**8):08x}"
            if candidate not in used:
                break
        used.add(candidate)
        ids[key] = candidate
    return ids


def _plan(seed: int) -> DemoFeed:
    sellers = _seller_ids(seed)
    ads: list[DemoAd] = []
    for offset, (source, category, seller_key, tokens) in enumerate(_LAYOUT):
        images = []
        for token in tokens:
            group, edit = _parse(token)
            images.append(DemoImage(name=_image_name(group, edit), group=group, edit=edit))
        ads.append(
            DemoAd(
                ad_id=FIRST_AD_ID + offset,
                source=source,
                category=category,
                seller_id=sellers[seller_key] if seller_key is not None else None,
                images=images,
            )
        )
    return DemoFeed(ads=ads)


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _feed_to_json(feed: DemoFeed, seed: int) -> dict[str, Any]:
    return {
        "format": FEED_FORMAT,
        "seed": seed,
        "ads": [
            {
                "ad_id": ad.ad_id,
                "source": ad.source,
                "category": ad.category,
                "seller_id": ad.seller_id,
                "images": [{"name": im.name, "group": im.group, "edit": im.edit} for im in ad.images],
            }
            for ad in feed.ads
        ],
        "truth_pairs": sorted(sorted(pair) for pair in feed.truth_pairs()),
    }


def build_demo_feed(out_dir: Path, *, seed: int = 7) -> DemoFeed:
    """Write ``out_dir/images/*.jpg`` and ``out_dir/feed.json``; return the feed.

    Deterministic for a seed and idempotent: a rebuild rewrites byte-identical files.
    """
    out_dir = Path(out_dir)
    images_dir = out_dir / IMAGES_DIRNAME
    images_dir.mkdir(parents=True, exist_ok=True)
    feed = _plan(seed)

    photos: dict[str, Image.Image] = {}
    for demo_image in feed.images():
        if demo_image.group not in photos:
            photos[demo_image.group] = _load_photo(demo_image.group)
        transform, quality = _EDITS[demo_image.edit]
        rng = random.Random(f"imgdup-demo-edit:{seed}:{demo_image.name}")
        edited = transform(photos[demo_image.group], rng)
        _write_atomic(images_dir / demo_image.name, _encode(edited, quality))

    # Drop JPEGs a different build left behind, so the folder holds exactly this feed.
    wanted = {demo_image.name for demo_image in feed.images()}
    for stale in images_dir.glob("*.jpg"):
        if stale.name not in wanted:
            stale.unlink()

    document = json.dumps(_feed_to_json(feed, seed), indent=2, sort_keys=True) + "\n"
    _write_atomic(out_dir / FEED_FILENAME, document.encode("utf-8"))
    return feed


def load_demo_feed(out_dir: Path) -> DemoFeed:
    """Read the feed written by :func:`build_demo_feed` from ``out_dir/feed.json``."""
    document = json.loads((Path(out_dir) / FEED_FILENAME).read_text(encoding="utf-8"))
    if document.get("format") != FEED_FORMAT:
        raise ValueError(f"{out_dir / FEED_FILENAME}: not a {FEED_FORMAT} document")
    ads = [
        DemoAd(
            ad_id=int(ad["ad_id"]),
            source=str(ad["source"]),
            category=ad["category"],
            seller_id=ad["seller_id"],
            images=[
                DemoImage(name=str(im["name"]), group=str(im["group"]), edit=str(im["edit"]))
                for im in ad["images"]
            ],
        )
        for ad in document["ads"]
    ]
    return DemoFeed(ads=ads)
