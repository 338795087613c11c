"""A photo and a template name in -> a screenshot of the photo inside a page that carries it: an
ad portal's listing page, a phone app's listing screen or a social post, drawn with PIL. The page
around the photo is fixed by the template's name, so two different photos in one template share
every pixel outside the photo's slot (the benchmark's "same template" hard negatives); the photo
is letterboxed into its slot, aspect kept."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw

from bench.quality.overlays import font

LAYOUTS = ("listing", "phone", "social")
VARIANTS = 2
SITE_NAMES = ("otodom.example", "autoplac.example", "olx.example", "imovirtual.example", "sprzedam.example")
TITLES = (
    "Mieszkanie 3 pokoje, 62 m2, balkon",
    "Volkswagen Golf 1.6 TDI 2017",
    "Sofa narozna, stan idealny",
    "iPhone 12 128GB, bateria 89%",
    "Rower gorski 29 cali",
    "Kurtka zimowa, rozmiar M",
)
PRICES = ("1 250 zl", "38 900 zl", "499 000 zl", "2 100 zl", "650 zl", "12 500 EUR")


@dataclass(frozen=True)
class Template:
    name: str
    layout: str
    size: tuple[int, int]  # page width, height
    slot: tuple[int, int, int, int]  # the photo's box on the page: left, top, right, bottom


def _geometry(layout: str, variant: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    if layout == "listing":  # a desktop browser: chrome, header, photo left, details right
        size = (1200, 780) if variant == 0 else (1280, 820)
        w, h = size
        return size, (40, 150, int(w * 0.62), h - 110)
    if layout == "phone":  # a phone: status bar, app bar, full-width photo, price, buttons
        size = (540, 1080) if variant == 0 else (600, 1200)
        w, h = size
        return size, (0, 150, w, 150 + int(w * 0.9))
    size = (720, 900) if variant == 0 else (800, 1000)  # a social post: header, square photo, bar
    w, h = size
    return size, (20, 110, w - 20, 110 + w - 40)


def templates() -> tuple[Template, ...]:
    out = []
    for layout in LAYOUTS:
        for variant in range(VARIANTS):
            size, slot = _geometry(layout, variant)
            out.append(Template(f"{layout}-{variant}", layout, size, slot))
    return tuple(out)


TEMPLATES = templates()
TEMPLATE_BY_NAME = {t.name: t for t in TEMPLATES}


def _lines(draw: ImageDraw.ImageDraw, rng: random.Random, box: tuple[int, int, int, int], n: int) -> None:
    """Grey bars standing in for body text."""
    left, top, right, _ = box
    for k in range(n):
        width = int((right - left) * rng.uniform(0.55, 1.0))
        y = top + k * 22
        draw.rounded_rectangle((left, y, left + width, y + 10), radius=4, fill=(200, 200, 205))


@cache
def page(name: str) -> Image.Image:
    """The template's page without a photo (its slot painted in the slot's letterbox colour).
    Everything is drawn from a generator seeded by the template's name."""
    template = TEMPLATE_BY_NAME[name]
    rng = random.Random(f"imgdup-screenshot-template:{name}")
    w, h = template.size
    left, top, right, bottom = template.slot
    accent = rng.choice(((0, 47, 52), (35, 120, 220), (255, 90, 0), (60, 160, 90), (120, 40, 140)))
    canvas = Image.new("RGB", template.size, (255, 255, 255) if rng.random() < 0.7 else (242, 242, 245))
    draw = ImageDraw.Draw(canvas)
    title, price, site = rng.choice(TITLES), rng.choice(PRICES), rng.choice(SITE_NAMES)
    if template.layout == "listing":
        draw.rectangle((0, 0, w, 44), fill=(222, 225, 230))  # browser tabs and address bar
        for k in range(3):
            draw.ellipse(
                (14 + 20 * k, 16, 26 + 20 * k, 28), fill=((237, 106, 94), (245, 191, 79), (98, 197, 84))[k]
            )
        draw.rounded_rectangle((110, 9, w - 120, 35), radius=12, fill=(255, 255, 255))
        draw.text(
            (126, 22),
            f"https://www.{site}/oferta/{rng.randint(10**6, 10**7)}",
            font=font(rng, 14),
            fill=(60, 60, 60),
            anchor="lm",
        )
        draw.rectangle((0, 44, w, 110), fill=accent)
        draw.text((40, 77), site.split(".")[0].upper(), font=font(rng, 30), fill=(255, 255, 255), anchor="lm")
        draw.rounded_rectangle((w - 230, 60, w - 40, 94), radius=6, fill=(255, 255, 255))
        draw.text((w - 135, 77), "Dodaj ogloszenie", font=font(rng, 16), fill=accent, anchor="mm")
        draw.text((40, 130), title, font=font(rng, 20), fill=(20, 20, 20), anchor="lm")
        x = right + 40
        draw.text((x, top + 20), price, font=font(rng, 38), fill=(20, 20, 20), anchor="lm")
        draw.rounded_rectangle((x, top + 70, w - 40, top + 120), radius=8, fill=accent)
        draw.text(
            ((x + w - 40) // 2, top + 95), "Zadzwon", font=font(rng, 20), fill=(255, 255, 255), anchor="mm"
        )
        _lines(draw, rng, (x, top + 150, w - 40, bottom), 12)
        for k in range(5):  # thumbnails under the photo
            tx = left + k * 96
            draw.rectangle((tx, bottom + 16, tx + 84, bottom + 76), fill=(215, 218, 222))
    elif template.layout == "phone":
        draw.rectangle((0, 0, w, 40), fill=(20, 20, 20))
        draw.text(
            (24, 20), "12:4" + str(rng.randint(0, 9)), font=font(rng, 18), fill=(255, 255, 255), anchor="lm"
        )
        draw.rectangle((w - 60, 13, w - 24, 27), outline=(255, 255, 255), width=2)
        draw.rectangle((0, 40, w, 150), fill=accent)
        draw.text((24, 95), "<", font=font(rng, 34), fill=(255, 255, 255), anchor="lm")
        draw.text((w // 2, 95), site.split(".")[0], font=font(rng, 28), fill=(255, 255, 255), anchor="mm")
        y = bottom + 30
        draw.text((24, y), price, font=font(rng, 36), fill=(20, 20, 20), anchor="lt")
        draw.text((24, y + 56), title[:30], font=font(rng, 20), fill=(50, 50, 50), anchor="lt")
        _lines(draw, rng, (24, y + 100, w - 24, h - 120), 6)
        draw.rectangle((0, h - 100, w, h), fill=(248, 248, 248))
        draw.rounded_rectangle((24, h - 80, w // 2 - 12, h - 24), radius=10, fill=accent)
        draw.rounded_rectangle((w // 2 + 12, h - 80, w - 24, h - 24), radius=10, outline=accent, width=3)
        draw.text((w // 4 + 6, h - 52), "Zadzwon", font=font(rng, 20), fill=(255, 255, 255), anchor="mm")
        draw.text((3 * w // 4 - 6, h - 52), "Napisz", font=font(rng, 20), fill=accent, anchor="mm")
    else:
        draw.ellipse((20, 30, 76, 86), fill=accent)
        draw.text(
            (92, 46), "@" + site.split(".")[0] + "_deals", font=font(rng, 20), fill=(20, 20, 20), anchor="lm"
        )
        draw.text((92, 72), "Sponsored", font=font(rng, 14), fill=(120, 120, 120), anchor="lm")
        draw.text((w - 40, 58), "...", font=font(rng, 24), fill=(20, 20, 20), anchor="mm")
        y = bottom + 18
        for k in range(3):  # like, comment, share
            draw.ellipse((24 + 52 * k, y, 60 + 52 * k, y + 36), outline=(20, 20, 20), width=3)
        draw.text(
            (24, y + 60), f"{rng.randint(12, 990)} likes", font=font(rng, 18), fill=(20, 20, 20), anchor="lm"
        )
        draw.text(
            (24, y + 92), (title + " " + price)[:48], font=font(rng, 18), fill=(40, 40, 40), anchor="lm"
        )
    draw.rectangle((left, top, right - 1, bottom - 1), fill=letterbox_color(name))
    return canvas


def letterbox_color(name: str) -> tuple[int, int, int]:
    rng = random.Random(f"imgdup-screenshot-letterbox:{name}")
    return rng.choice(((0, 0, 0), (255, 255, 255), (240, 240, 240), (30, 30, 30)))


def render(name: str, photo: Image.Image) -> Image.Image:
    """The photo letterboxed (scaled to fit, aspect kept, centred) into the template's slot."""
    template = TEMPLATE_BY_NAME[name]
    canvas = page(name).copy()
    left, top, right, bottom = template.slot
    slot_w, slot_h = right - left, bottom - top
    scale = min(slot_w / photo.width, slot_h / photo.height)
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    fitted = photo.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    canvas.paste(fitted, (left + (slot_w - size[0]) // 2, top + (slot_h - size[1]) // 2))
    return canvas


def screenshot_template(image: Image.Image, rng: random.Random) -> Image.Image:
    """The photo in one of the templates (listing page, phone app, social post), chosen by rng."""
    return render(rng.choice(TEMPLATES).name, image)
