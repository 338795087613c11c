"""Tests for imgdup_core.decode: hostile and unusual uploads in, rejections or canonical RGB out."""

from __future__ import annotations

import hashlib
import io
import resource
import zlib

import numpy as np
import pytest
from core_images import encode, png_chunks, zlib_stream
from PIL import Image

from imgdup_core.decode import (
    DecodedImage,
    ImageRejected,
    _to_rgb,
    decode_image,
    load_rgb,
    storage_jpeg,
)


def _reject(data: bytes, **options: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, **options)
    return caught.value


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- rejections ---------------------------------------------------------------------------------


def test_png_bomb_is_rejected_from_its_header_without_decoding() -> None:
    # 20000 x 20000 one-bit pixels: a complete, valid image of 400 M pixels in about 50 KB.
    side = 20_000
    row = b"\x00" * (1 + side // 8)
    bomb = png_chunks(side, side, 1, 0, zlib_stream(row for _ in range(side)))
    assert len(bomb) < 100_000

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = _reject(bomb)
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    assert error.reason == "too_many_pixels"
    # Decoding would take at least 400 MB; the header check reads none of the pixels.
    assert rss_growth_mib < 64


def test_bomb_below_pil_own_limit_is_caught_by_our_budget() -> None:
    # 8000 x 8000 = 64 M pixels in ~8 KB: under PIL's 89 M warning level, over our 40 M budget.
    side = 8_000
    bomb = png_chunks(side, side, 1, 0, zlib_stream(b"\x00" * (1 + side // 8) for _ in range(side)))
    assert len(bomb) < 16_000
    error = _reject(bomb)
    assert error.reason == "too_many_pixels"
    assert "8000x8000" in error.detail


def test_bomb_beyond_pil_own_limit_is_reported_the_same_way() -> None:
    # PIL itself refuses > 179 M pixels at open(); even with a generous budget that must come
    # back as our reason, not as a PIL exception.
    bomb = png_chunks(100_000, 100_000, 1, 0, zlib.compress(b"\x00" * 64))
    assert _reject(bomb, max_pixels=10**12).reason == "too_many_pixels"


def test_pixel_budget_is_configurable(photos: dict[str, np.ndarray]) -> None:
    data = encode(photos["astronaut"], "PNG")
    assert _reject(data, max_pixels=512 * 512 - 1).reason == "too_many_pixels"
    assert decode_image(data, max_pixels=512 * 512).width == 512


def test_empty_input() -> None:
    assert _reject(b"").reason == "empty"


@pytest.mark.parametrize(
    "payload",
    [
        b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body></body></html>",
        b'{"error": "expired"}',
        bytes(range(256)) * 4,
    ],
)
def test_non_images_are_rejected(payload: bytes) -> None:
    assert _reject(payload).reason == "not_an_image"


def test_truncated_jpeg(photos: dict[str, np.ndarray]) -> None:
    data = encode(photos["astronaut"], "JPEG", quality=90)
    error = _reject(data[: len(data) * 6 // 10])
    assert error.reason == "truncated"


def test_truncated_png(photos: dict[str, np.ndarray]) -> None:
    data = encode(photos["coffee"], "PNG")
    assert _reject(data[: len(data) // 2]).reason == "truncated"


def test_png_with_damaged_header_is_corrupt_not_foreign(photos: dict[str, np.ndarray]) -> None:
    data = encode(photos["coffee"], "PNG")
    assert _reject(data[:40]).reason == "corrupt"


def test_mode_pil_cannot_convert_is_unsupported() -> None:
    # Premultiplied luminance+alpha opens fine but PIL has no conversion path out of it.
    with pytest.raises(ImageRejected) as caught:
        _to_rgb(Image.new("La", (4, 4)))
    assert caught.value.reason == "unsupported_mode"


# --- faithful decoding --------------------------------------------------------------------------


def test_plain_jpeg_metadata(photos: dict[str, np.ndarray]) -> None:
    data = encode(photos["coffee"], "JPEG", quality=92)
    decoded = decode_image(data)
    assert isinstance(decoded, DecodedImage)
    assert decoded.format == "JPEG"
    assert (decoded.width, decoded.height) == (600, 400)
    assert decoded.rgb.shape == (400, 600, 3) and decoded.rgb.dtype == np.uint8
    assert decoded.content_sha256 == hashlib.sha256(data).hexdigest()
    assert _mean_abs(decoded.rgb, photos["coffee"]) < 3


def test_cmyk_jpeg_decodes_to_the_right_colours(photos: dict[str, np.ndarray]) -> None:
    data = encode(Image.fromarray(photos["astronaut"]).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = decode_image(data)
    # An inverted (Adobe) CMYK mix-up would give a photographic negative: error ~100+.
    assert _mean_abs(decoded.rgb, photos["astronaut"]) < 4


def test_sixteen_bit_grayscale_png(photos: dict[str, np.ndarray]) -> None:
    gray = photos["camera"][:, :, 0]
    wide = Image.fromarray((gray.astype(np.uint16) * 257).astype(np.uint16))
    data = encode(wide, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode_image(data)
    assert decoded.rgb.shape == (512, 512, 3)
    # PIL's own convert("RGB") would clip everything above 255 to white.
    assert np.abs(decoded.rgb[:, :, 1].astype(int) - gray).max() <= 1


def test_sixteen_bit_rgb_png(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["chelsea"]
    h, w = rgb.shape[:2]
    wide = (rgb.astype(">u2") * 257).reshape(h, w * 3)
    data = png_chunks(w, h, 16, 2, zlib_stream(b"\x00" + line.tobytes() for line in wide))
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (w, h)
    assert np.abs(decoded.rgb.astype(int) - rgb).max() <= 1


def test_rgba_png_is_flattened_on_white(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["astronaut"]
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :256] = 0  # left half fully transparent
    alpha[:64, 256:] = 128  # a half-transparent band on the right
    data = encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG")
    out = decode_image(data).rgb.astype(int)
    assert (out[:, :256] == 255).all()
    assert np.abs(out[64:, 256:] - rgb[64:, 256:]).max() == 0
    expected_band = (rgb[:64, 256:].astype(int) * 128 + 255 * 127) / 255
    assert np.abs(out[:64, 256:] - expected_band).max() <= 2


def test_palette_transparency_is_flattened_on_white() -> None:
    image = Image.new("P", (32, 32), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    image.paste(0, (0, 0, 16, 32))  # index 0 is declared transparent below
    data = encode(image, "PNG", transparency=0)
    out = decode_image(data).rgb
    assert (out[:, :16] == 255).all()
    assert (out[:, 16:] == [200, 30, 30]).all()


def test_animated_gif_uses_first_frame() -> None:
    red = Image.new("RGB", (64, 48), (255, 0, 0))
    blue = Image.new("RGB", (64, 48), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    decoded = decode_image(data)
    assert decoded.format == "GIF"
    assert decoded.rgb.shape == (48, 64, 3)
    assert (decoded.rgb == [255, 0, 0]).all()


def _with_orientation(image: Image.Image, orientation: int, **options: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), **options)


def test_exif_rotated_jpeg_is_made_upright(photos: dict[str, np.ndarray]) -> None:
    upright = photos["coffee"]  # 600 wide, 400 high
    # A phone held upright stores the sensor's landscape pixels plus "rotate 90 CW" (6).
    sensor = np.ascontiguousarray(np.rot90(upright, k=1))
    data = _with_orientation(Image.fromarray(sensor), 6, quality=95)
    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (600, 400)
    assert decoded.rgb.shape == (400, 600, 3)
    assert _mean_abs(decoded.rgb, upright) < 3


def test_large_exif_rotated_jpeg_is_drafted_and_capped(photos: dict[str, np.ndarray]) -> None:
    upright = Image.fromarray(photos["rocket"]).resize((3000, 2000), Image.Resampling.BICUBIC)
    sensor = upright.transpose(Image.Transpose.ROTATE_270)  # 2000 x 3000 raw
    data = _with_orientation(sensor, 8, quality=90)  # 8: rotate 90 CCW to display
    decoded = decode_image(data, max_side=1024)
    assert (decoded.width, decoded.height) == (3000, 2000)
    assert decoded.rgb.shape == (683, 1024, 3)
    expected = np.asarray(upright.resize((1024, 683), Image.Resampling.LANCZOS))
    assert _mean_abs(decoded.rgb, expected) < 6


def test_webp_and_formats(photos: dict[str, np.ndarray]) -> None:
    decoded = decode_image(encode(photos["chelsea"], "WEBP", quality=90))
    assert decoded.format == "WEBP"
    assert _mean_abs(decoded.rgb, photos["chelsea"]) < 6
    assert decode_image(encode(photos["chelsea"], "PNG")).format == "PNG"


def test_downscale_keeps_aspect(photos: dict[str, np.ndarray]) -> None:
    decoded = decode_image(encode(photos["rocket"], "PNG"), max_side=320)
    assert (decoded.width, decoded.height) == (640, 427)
    assert decoded.rgb.shape == (214, 320, 3)
    assert not decoded.rgb.flags.writeable


def test_pixel_hash_ignores_container_but_not_pixels(photos: dict[str, np.ndarray]) -> None:
    image = Image.fromarray(photos["astronaut"])
    small = encode(image, "PNG", compress_level=9)
    fast = encode(image, "PNG", compress_level=1)
    lossless_webp = encode(image, "WEBP", lossless=True)
    a, b, c = decode_image(small), decode_image(fast), decode_image(lossless_webp)
    assert len({a.content_sha256, b.content_sha256, c.content_sha256}) == 3
    assert a.pixel_sha256 == b.pixel_sha256 == c.pixel_sha256

    edited = photos["astronaut"].copy()
    edited[100:140, 100:140] = 0
    assert decode_image(encode(edited, "PNG")).pixel_sha256 != a.pixel_sha256
    half = image.resize((256, 256))
    assert decode_image(encode(half, "PNG")).pixel_sha256 != a.pixel_sha256


def test_storage_copy_round_trip(photos: dict[str, np.ndarray]) -> None:
    original = photos["coffee"]  # 600 x 400
    stored = storage_jpeg(original)
    assert stored[:3] == b"\xff\xd8\xff"
    restored = load_rgb(stored)
    assert restored.shape == (341, 512, 3) and restored.dtype == np.uint8
    expected = np.asarray(Image.fromarray(original).resize((512, 341), Image.Resampling.LANCZOS))
    assert _mean_abs(restored, expected) < 3
    # A small image is stored as it is, not enlarged.
    assert load_rgb(storage_jpeg(photos["chelsea"])).shape == (300, 451, 3)
    assert load_rgb(encode(photos["chelsea"], "PNG")).shape == (300, 451, 3)


def test_storage_copy_rejects_non_rgb() -> None:
    with pytest.raises(ImageRejected) as caught:
        storage_jpeg(np.zeros((4, 4), np.uint8))
    assert caught.value.reason == "bad_array"
