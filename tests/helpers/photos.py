"""scikit-image's bundled photos in; reposters' edits of them and the JPEG bytes the tests serve out."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data as skdata

# The demo's own functions wherever the tests' edit is the same one, pixel for pixel.
from imgdup.ops.demo.feed import _brightness, _encode
from imgdup.ops.demo.synthetic import _edit

Make = Callable[[], Image.Image]


def photo(name: str) -> Image.Image:
    """A bundled photo as RGB, its longer side at most 640."""
    if name.startswith("motorcycle_"):  # only reachable as files (stereo_motorcycle() loads both)
        image = Image.open(Path(skdata.__file__).parent / f"{name}.png").convert("RGB")
    else:
        array = getattr(skdata, name)()
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        image = Image.fromarray(array[..., :3].astype(np.uint8))
    if max(image.size) > 640:
        image.thumbnail((640, 640))
    return image


def watermark(image: Image.Image) -> Image.Image:
    """A phone number written across the middle of the photo."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(16, image.height // 12))
    draw.text((10, image.height // 2), "CALL 912 345 678", font=font, fill=(255, 255, 255))
    return out


def crop(image: Image.Image) -> Image.Image:
    """A tenth of the width and height off each side (the synthetic fault feed's crop)."""
    return _edit(image, "crop")


def brighter(image: Image.Image) -> Image.Image:
    """Brightness x1.25, the demo feed's edit (it draws nothing from its generator)."""
    return _brightness(image, random.Random(0))


def screenshot(image: Image.Image) -> Image.Image:
    """The photo as a screenshot of another portal's listing page (header, title, price, buttons)."""
    page = Image.new("RGB", (480, 760), (250, 250, 250))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 480, 70), fill=(0, 47, 52))
    draw.text((20, 18), "other-portal.example", font=ImageFont.load_default(size=28), fill="white")
    draw.text((20, 100), "Rocket model, as new", font=ImageFont.load_default(size=26), fill="black")
    draw.text((20, 640), "2 450 PLN   Warszawa", font=ImageFont.load_default(size=30), fill="black")
    draw.rounded_rectangle((20, 690, 230, 740), radius=12, fill=(35, 229, 219))
    shot = image.copy()
    shot.thumbnail((440, 380))
    page.paste(shot, (20 + (440 - shot.width) // 2, 250 + (380 - shot.height) // 2))
    return page


def jpeg(image: Image.Image) -> bytes:
    """The demo feed's encoder at quality 92: the pairs and clusters the tests expect are of these bytes."""
    return _encode(image.convert("RGB"), 92)


def write_jpegs(folder: Path, files: Mapping[str, Make]) -> None:
    for name, make in files.items():
        (folder / name).write_bytes(jpeg(make()))


# Three photos re-posted with edits in other ads, and distinct photos (one a stereo pair: the same
# scene, another shot) that must stay apart.
REPOSTED: dict[str, Make] = {
    "coffee.jpg": lambda: photo("coffee"),
    "coffee_flip.jpg": lambda: ImageOps.mirror(photo("coffee")),
    "coffee_crop.jpg": lambda: crop(photo("coffee")),
    "astronaut.jpg": lambda: photo("astronaut"),
    "astronaut_wm.jpg": lambda: watermark(photo("astronaut")),
    "astronaut_small.jpg": lambda: photo("astronaut").resize((256, 256)),
    "chelsea.jpg": lambda: photo("chelsea"),
    "chelsea_bright.jpg": lambda: brighter(photo("chelsea")),
    "moto_left.jpg": lambda: photo("motorcycle_left"),
    "moto_right.jpg": lambda: photo("motorcycle_right"),
    "rocket.jpg": lambda: photo("rocket"),
}
