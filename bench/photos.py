"""scikit-image's bundled photos -> many distinct real images (non-overlapping tiles) and edited
copies of some of them, laid out as ads in posting order (every copy after its original, in
another ad). Nothing is downloaded; the same seed gives the same files."""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# The demo feed's edits and its JPEG encoder, so bench copies are made as the demo's are.
from imgdup.ops.demo.feed import _EDITS, _encode

# Real photographs only (no synthetic charts); motorcycle_right is left out because it is a
# second shot of motorcycle_left (a near-duplicate of it); brick, grass and gravel because
# tiles of one texture look alike to SSCD and flood the verifier with pairs no ad feed has.
PHOTOS = (
    "astronaut.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
TILE_MIN = 80  # smallest tile side in source pixels
OUT_SIDE = 640  # tiles are scaled so their longer side is this (ad photos are not thumbnails)
COPY_EDITS = ("resize", "flip", "crop10", "watermark", "brightness", "contrast", "jpeg", "flip_resize")


@dataclass(frozen=True)
class BenchImage:
    name: str
    group: str  # the tile it shows; copies share their original's group
    edit: str


@dataclass(frozen=True)
class BenchAd:
    ad_id: int
    images: tuple[BenchImage, ...]


def _photo(name: str) -> Image.Image:
    path = Path(str(files("skimage") / "data" / name))
    with Image.open(path) as raw:
        return raw.convert("RGB")


def distinct_tiles(seed: int = 11) -> list[tuple[str, Image.Image]]:
    """Non-overlapping tiles of every photo with enough texture to be a photo of something."""
    tiles: list[tuple[str, Image.Image]] = []
    for photo_name in PHOTOS:
        photo = _photo(photo_name)
        w, h = photo.size
        nx, ny = max(2, w // (TILE_MIN + 14)), max(2, h // (TILE_MIN + 14))
        tw, th = w // nx, h // ny
        for gx in range(nx):
            for gy in range(ny):
                tile = photo.crop((gx * tw, gy * th, (gx + 1) * tw, (gy + 1) * th))
                gray = np.asarray(tile.convert("L"), dtype=np.float32)
                if gray.std() < 18 or gray.mean() < 25:  # flat sky, black background
                    continue
                scale = OUT_SIDE / max(tile.size)
                tile = tile.resize(
                    (round(tile.width * scale), round(tile.height * scale)), Image.Resampling.BICUBIC
                )
                stem = photo_name.split(".")[0]
                tiles.append((f"{stem}-{gx}-{gy}", tile))
    random.Random(seed).shuffle(tiles)
    return tiles


def build_ads(
    out_dir: Path,
    tiles: list[tuple[str, Image.Image]],
    *,
    originals: int,
    copies: int,
    first_ad_id: int,
    copy_from: list[BenchImage] | None = None,
    library: dict[str, Image.Image] | None = None,
    seed: int = 5,
) -> tuple[list[BenchAd], list[BenchImage]]:
    """Write `originals` tiles and `copies` edited copies as JPEGs into out_dir; lay them out as
    ads of 1-3 images. Copies are of this call's originals, or of `copy_from` when given too.
    Returns the ads in posting order and this call's originals."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if originals > len(tiles):
        raise ValueError(f"only {len(tiles)} distinct tiles; asked for {originals}")
    by_group = {**(library or {}), **dict(tiles)}
    mine: list[BenchImage] = []
    for group, tile in tiles[:originals]:
        image = BenchImage(f"{group}.jpg", group, "original")
        (out_dir / image.name).write_bytes(_encode(tile, 92))
        mine.append(image)
    pool = mine + (copy_from or [])
    order: list[BenchImage] = list(mine)
    for n in range(copies):
        source = rng.choice(pool)
        edit = COPY_EDITS[n % len(COPY_EDITS)]
        transform, quality = _EDITS[edit]
        copy = BenchImage(f"{source.group}__{edit}-{n}.jpg", source.group, edit)
        edited = transform(by_group[source.group], random.Random(f"{seed}:{copy.name}"))
        (out_dir / copy.name).write_bytes(_encode(ImageOps.exif_transpose(edited), quality))
        # Somewhere after its original (or anywhere when the original was posted earlier).
        start = order.index(source) + 1 if source in order else 0
        order.insert(rng.randint(start, len(order)), copy)
    ads: list[BenchAd] = []
    current: list[BenchImage] = []
    size = rng.randint(1, 3)
    for image in order:
        if len(current) >= size or any(i.group == image.group for i in current):
            ads.append(BenchAd(first_ad_id + len(ads), tuple(current)))
            current, size = [], rng.randint(1, 3)
        current.append(image)
    if current:
        ads.append(BenchAd(first_ad_id + len(ads), tuple(current)))
    return ads, mine
