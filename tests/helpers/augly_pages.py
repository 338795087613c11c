"""A photo and AugLy's screenshot templates in -> the benchmark's screenshot edit out, with or without the
black letterbox bars AugLy adds around a picture of another shape than the page's photo slot."""

from __future__ import annotations

import json
import os

from PIL import Image


def slot_box(template: str = "web.png") -> tuple[int, int, int, int]:
    """Where a template's photo slot lies (x0, y0, x1, y1 in the template's pixels)."""
    from augly.utils import SCREENSHOT_TEMPLATES_DIR

    with open(os.path.join(SCREENSHOT_TEMPLATES_DIR, "bboxes.json")) as file:
        x0, y0, x1, y1 = json.load(file)[template]
    return x0, y0, x1, y1


def slot_aspect(template: str = "web.png") -> float:
    x0, y0, x1, y1 = slot_box(template)
    return (x1 - x0) / (y1 - y0)


def slot_shaped(photo: Image.Image, aspect: float) -> Image.Image:
    """The photo's centre cut to width/height `aspect`: shown in a slot of that shape, it gets no bars."""
    width, height = photo.size
    cut_w, cut_h = min(width, int(height * aspect)), min(height, int(width / aspect))
    left, top = (width - cut_w) // 2, (height - cut_h) // 2
    return photo.crop((left, top, left + cut_w, top + cut_h))


def on_white(photo: Image.Image, canvas: float, aspect: float | None = None) -> Image.Image:
    """The photo in the middle of a white canvas `canvas` times its size (a product shot on white);
    with `aspect`, the canvas is widened or heightened to that width/height ratio."""
    width, height = photo.size
    out_w, out_h = int(width * canvas), int(height * canvas)
    if aspect is not None:
        out_w, out_h = max(out_w, int(out_h * aspect)), max(out_h, int(out_w / aspect))
    out = Image.new("RGB", (out_w, out_h), "white")
    out.paste(photo, ((out.width - width) // 2, (out.height - height) // 2))
    return out


def screenshot(picture: Image.Image, template: str = "web.png", **options: bool) -> Image.Image:
    """The picture in AugLy's screenshot template (augly.image.overlay_onto_screenshot)."""
    import augly.image as imaugs
    from augly.utils import SCREENSHOT_TEMPLATES_DIR

    path = os.path.join(SCREENSHOT_TEMPLATES_DIR, template)
    shot: Image.Image = imaugs.overlay_onto_screenshot(picture, template_filepath=path, **options)
    return shot.convert("RGB")
