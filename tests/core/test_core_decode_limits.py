"""Tests for the decoder's limits: hostile formats and memory-amplifying images in, a rejection or a
decode within the memory budget out (peak memory measured in a fresh child process)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from core_images import encode
from PIL import EpsImagePlugin, Image, WebPImagePlugin, features

from imgdup_core import pixels
from imgdup_core.decode import ImageRejected, decode_image

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
HOSTILE_SIDE = 6320  # 39.9 M pixels: just under the default pixel cap of 40 M


def _reject(data: bytes, **options: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, **options)
    return caught.value


def _photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    rng = np.random.default_rng(11)
    coarse = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


# --- the format allowlist -------------------------------------------------------------------------

# Formats Pillow opens but no ad photo comes in, each with the signature Pillow recognises it by.
SIGNED_FOREIGN: dict[str, Callable[[], bytes]] = {
    "PPM": lambda: encode(_photo(), "PPM"),
    "PCX": lambda: encode(_photo(), "PCX"),
    "SGI": lambda: encode(_photo(), "SGI"),
    "ICO": lambda: encode(_photo((32, 32)), "ICO"),
    "DDS": lambda: encode(_photo((32, 32)), "DDS"),
    "QOI": lambda: encode(_photo(), "QOI"),
    "ICNS": lambda: encode(_photo((32, 32)), "ICNS"),
    "EPS": lambda: encode(_photo((16, 16)), "EPS"),
    "JPEG2000": lambda: encode(_photo(), "JPEG2000"),
    "MSP": lambda: encode(_photo().convert("1"), "MSP"),
    "XBM": lambda: encode(_photo().convert("1"), "XBM"),
}
# Formats without a signature: Pillow tries them on anything.
UNSIGNED_FOREIGN: dict[str, Callable[[], bytes]] = {
    "TGA": lambda: encode(_photo(), "TGA"),
    "SPIDER": lambda: encode(_photo().convert("F"), "SPIDER"),
}


@pytest.fixture
def plugin_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Pillow plugin outside the allowlist, wrapped to record that it was asked to parse."""
    Image.init()
    calls: list[str] = []
    allowed = {"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF"}
    for name, (factory, accept) in list(Image.OPEN.items()):
        if name in allowed:
            continue

        def recording(*args: Any, _name: str = name, _factory: Any = factory) -> Any:
            calls.append(_name)
            return _factory(*args)

        monkeypatch.setitem(Image.OPEN, name, (recording, accept))
    return calls


@pytest.mark.parametrize("fmt", sorted(SIGNED_FOREIGN))
def test_foreign_formats_with_a_signature_are_unsupported(fmt: str, plugin_calls: list[str]) -> None:
    data = SIGNED_FOREIGN[fmt]()
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would open it
    plugin_calls.clear()
    error = _reject(data)
    assert error.reason == "unsupported_format"
    assert fmt in error.detail
    assert plugin_calls == []


@pytest.mark.parametrize("fmt", sorted(UNSIGNED_FOREIGN))
def test_foreign_formats_without_a_signature_never_reach_their_plugin(
    fmt: str, plugin_calls: list[str]
) -> None:
    data = UNSIGNED_FOREIGN[fmt]()
    assert Image.open(io.BytesIO(data)).format == fmt
    plugin_calls.clear()
    # Without a signature there is nothing to name it by: "not an image" is as true.
    assert _reject(data).reason in {"unsupported_format", "not_an_image"}
    assert plugin_calls == []


def test_eps_is_refused_without_spawning_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            spawned.append(name)
            raise OSError(f"{name} must not be called")

        return record

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse("Ghostscript"))
    monkeypatch.setattr(subprocess, "Popen", refuse("Popen"))
    monkeypatch.setattr(os, "posix_spawn", refuse("posix_spawn"))
    monkeypatch.setattr(os, "posix_spawnp", refuse("posix_spawnp"))
    monkeypatch.setattr(os, "fork", refuse("fork"))
    tiny_eps = (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
        b"0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"
    )
    error = _reject(tiny_eps)
    assert error.reason == "unsupported_format"
    assert spawned == []


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 64


@pytest.mark.parametrize("brands", [(b"heic", b"mif1", b"heic"), (b"mif1", b"mif1", b"heic")])
def test_heic_is_unsupported(brands: tuple[bytes, ...]) -> None:
    error = _reject(_ftyp(*brands))
    assert error.reason == "unsupported_format"
    assert "HEIC" in error.detail


def _allowed_samples() -> dict[str, bytes]:
    photo = _photo()
    samples = {
        "JPEG": encode(photo, "JPEG", quality=92),
        "PNG": encode(photo, "PNG"),
        "GIF": encode(photo.convert("P"), "GIF"),
        "WEBP": encode(photo, "WEBP", lossless=True),
        "BMP": encode(photo, "BMP"),
        "TIFF": encode(photo, "TIFF", compression="tiff_lzw"),
        # Cameras and some phones write multi-picture JPEGs; Pillow names them MPO.
        "MPO": encode(photo, "MPO", save_all=True, append_images=[photo.rotate(180)]),
    }
    if features.check("avif"):
        samples["AVIF"] = encode(photo, "AVIF", quality=90)
    return samples


@pytest.mark.parametrize("fmt", sorted(_allowed_samples()))
def test_the_formats_ad_photos_come_in_decode(fmt: str) -> None:
    decoded = decode_image(_allowed_samples()[fmt])
    assert decoded.format == fmt
    assert decoded.rgb.shape == (64, 96, 3)
    photo = _photo().convert("P").convert("RGB") if fmt == "GIF" else _photo()  # GIF: 256 colours
    reference = np.asarray(photo, dtype=np.int16)
    assert float(np.abs(decoded.rgb.astype(np.int16) - reference).mean()) < 12


def test_an_ordinary_file_that_starts_like_a_bmp_is_not_an_image() -> None:
    assert _reject(b"BMW 320d, 2015, one owner, full service history").reason == "not_an_image"


# --- the memory budget ----------------------------------------------------------------------------


def test_memory_budget_is_checked_before_decoding(photos: dict[str, np.ndarray]) -> None:
    rgba = np.dstack([photos["astronaut"], np.full((512, 512), 200, np.uint8)])
    data = encode(Image.fromarray(rgba, "RGBA"), "PNG")
    error = _reject(data, max_bytes=MIB)
    assert error.reason == "too_much_memory"
    assert "RGBA" in error.detail and "512x512" in error.detail
    assert decode_image(data).rgb.shape == (512, 512, 3)


def test_progressive_jpeg_counts_its_full_size_coefficient_buffer(photos: dict[str, np.ndarray]) -> None:
    big = Image.fromarray(photos["rocket"]).resize((3000, 2000), Image.Resampling.BILINEAR)
    baseline = encode(big, "JPEG", quality=90)
    progressive = encode(big, "JPEG", quality=90, progressive=True)
    # Drafted to 1/2 scale the baseline JPEG holds ~6 MB; libjpeg keeps every DCT coefficient of
    # a progressive one at full size (2 bytes a sample: ~18-36 MB) whatever the draft scale.
    budget = 16 * MIB
    assert decode_image(baseline, max_bytes=budget).rgb.shape == (683, 1024, 3)
    assert _reject(progressive, max_bytes=budget).reason == "too_much_memory"
    assert decode_image(progressive).rgb.shape == (683, 1024, 3)


def test_webp_size_is_checked_from_its_header_before_pillow_allocates_the_canvas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = encode(Image.new("RGB", (2000, 2000), (10, 20, 30)), "WEBP", lossless=True)
    opened: list[bool] = []
    original = WebPImagePlugin.WebPImageFile._open

    def recording(self: WebPImagePlugin.WebPImageFile) -> None:
        opened.append(True)
        original(self)

    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "_open", recording)
    assert _reject(data, max_pixels=2000 * 2000 - 1).reason == "too_many_pixels"
    assert _reject(data, max_bytes=16 * MIB).reason == "too_much_memory"
    assert opened == []
    assert decode_image(data).format == "WEBP"
    assert opened == [True]


# --- conversion in strips gives the pixels of a whole-image conversion -----------------------------


def _whole_image_rgb(im: Image.Image) -> np.ndarray:
    """The conversions as one full-size pass each (what decode did before converting in strips)."""
    if im.mode in ("I;16", "I;16B"):
        return np.repeat((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)[:, :, None], 3, 2)
    if im.mode == "I":
        values = np.clip(np.asarray(im), 0, None)
        peak = int(values.max())
        grey = values.astype(np.uint8) if peak <= 255 else (values.astype(np.float32) * (255.0 / peak))
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, 2)
    if im.mode == "F":
        finite = np.nan_to_num(np.asarray(im), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if finite.max() <= 1.0 else 255.0 / float(finite.max())
        return np.repeat(np.rint(np.clip(finite * scale, 0, 255)).astype(np.uint8)[:, :, None], 3, 2)
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, im.convert("RGBA")).convert("RGB"))


def _modes() -> dict[str, Image.Image]:
    rng = np.random.default_rng(3)
    shape = (41, 37)
    u8 = rng.integers(0, 256, shape, dtype=np.uint8)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    palette = Image.fromarray(u8 % 16).convert("P")
    palette.putpalette(rng.integers(0, 256, 48, dtype=np.uint8).tobytes())
    indexed = palette.copy()
    indexed.info["transparency"] = 3
    graded = palette.copy()
    graded.info["transparency"] = bytes(range(0, 256, 16))  # a tRNS alpha per palette entry
    grey = Image.fromarray(u8 % 8)
    grey.info["transparency"] = 5
    keyed = Image.fromarray(rgb // 128 * 255)
    keyed.info["transparency"] = (255, 0, 255)
    wide = rng.integers(0, 300, shape).astype(np.int32)
    wide[-1, -1] = 1_000_000  # the peak is in the last strip only: the scale must still apply to all
    floats = rng.random(shape, dtype=np.float32) * 3
    floats[0, 0], floats[0, 1], floats[-1, -1] = np.nan, np.inf, 7.5
    return {
        "P with index transparency": indexed,
        "P with tRNS alpha": graded,
        "L with transparency": grey,
        "RGB with transparency": keyed,
        "LA": Image.fromarray(np.dstack([u8, u8[::-1]])),
        "RGBA": Image.fromarray(np.dstack([rgb, u8])),
        "PA": Image.fromarray(np.dstack([u8 % 16, u8])).convert("LA").convert("PA"),
        "I;16": Image.fromarray((u8.astype(np.uint16) * 257).astype(np.uint16)),
        "I;16B": Image.frombytes("I;16B", shape[::-1], (u8.astype(">u2") * 251).tobytes()),
        "I": Image.fromarray(wide, "I"),
        "F": Image.fromarray(floats, "F"),
    }


@pytest.mark.parametrize("name", sorted(_modes()))
def test_conversion_in_strips_gives_the_pixels_of_a_whole_image_conversion(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _modes()[name]
    monkeypatch.setattr(pixels, "STRIP_PIXELS", 80)  # 2 rows a strip: 21 strips
    assert np.array_equal(np.asarray(pixels.to_rgb(image)), _whole_image_rgb(image))


# --- hostile images, peak memory measured in a fresh process --------------------------------------

# Peak RSS from VmHWM (this memory map's high-water mark), not ru_maxrss: Linux carries the
# parent's peak into the child across fork and exec, which would hide the child's own below it.
_CHILD = """
import json, sys
from imgdup_core.decode import ImageRejected, decode_image
def peak_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
data = open(sys.argv[1], "rb").read()
before = peak_kib()
try:
    decoded = decode_image(data)
    outcome = {"format": decoded.format, "shape": list(decoded.rgb.shape)}
except ImageRejected as exc:
    outcome = {"reason": exc.reason, "detail": exc.detail}
outcome["growth_kib"] = peak_kib() - before
print(json.dumps(outcome))
"""


def _decode_in_child(data: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "hostile.bin"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _palette_png_with_transparency() -> bytes:
    image = Image.new("P", (HOSTILE_SIDE, HOSTILE_SIDE), 0)
    image.putpalette([0, 0, 0, 255, 255, 255])
    return encode(image, "PNG", transparency=0, bits=1)


def _lossless_webp() -> bytes:
    return encode(Image.new("RGBA", (HOSTILE_SIDE, HOSTILE_SIDE), (0, 0, 0, 0)), "WEBP", lossless=True)


def _float_tiff() -> bytes:
    return encode(Image.new("F", (HOSTILE_SIDE, HOSTILE_SIDE), 0.5), "TIFF", compression="tiff_adobe_deflate")


def _rgba_png() -> bytes:
    return encode(Image.new("RGBA", (HOSTILE_SIDE, HOSTILE_SIDE), (9, 9, 9, 9)), "PNG")


HOSTILE: dict[str, tuple[Callable[[], bytes], int, set[str]]] = {
    # name: (builder, most bytes it may take, outcomes allowed: a format decoded or a reason)
    "palette PNG with transparency": (_palette_png_with_transparency, 10_000, {"PNG"}),
    "lossless WebP": (_lossless_webp, 2_000, {"too_much_memory"}),
    "float TIFF": (_float_tiff, 400_000, {"too_much_memory"}),
    "RGBA PNG": (_rgba_png, 400_000, {"too_much_memory"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_image_is_rejected_or_decoded_within_the_memory_bound(name: str, tmp_path: Path) -> None:
    build, max_size, allowed = HOSTILE[name]
    data = build()
    assert len(data) <= max_size  # tiny on the wire: the amplification is the attack
    outcome = _decode_in_child(data, tmp_path)
    assert outcome.get("format", outcome.get("reason")) in allowed, outcome
    if "shape" in outcome:
        assert outcome["shape"] == [1024, 1024, 3]
    # A limit, not a timing: the default budget is 256 MiB; before it, these took 650-1,070 MiB.
    assert outcome["growth_kib"] < 300 * 1024, outcome
