"""Bad-input corpus -> a loopback server that misbehaves on purpose, and a table of what imgdup does
with each case (`imgdup bad-inputs`)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
from PIL import Image

from imgdup.analysis.fetch import FetchError, FetchPolicy, fetch_image, open_transport
from imgdup_core.decode import ImageRejected, decode_image

# Caps used by the corpus run and the hostile-input tests (small, so cases stay fast).
POLICY = FetchPolicy.from_cidrs(["127.0.0.1/32"], timeout_s=2.0, max_bytes=2 * 1024 * 1024, max_redirects=3)


def _photo(size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(5)
    coarse = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_bomb(side: int = 20_000) -> bytes:
    """A 1-bit PNG declaring side×side pixels that compresses to a few tens of KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise on display
    return _save(_photo(), "JPEG", exif=exif.tobytes())


def _animated(fmt: str) -> bytes:
    frames = [_photo(), _photo().transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _sixteen_bit_png() -> bytes:
    gray = (np.asarray(_photo().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return _save(Image.fromarray(gray), "PNG")  # uint16 -> mode I;16


@dataclass(frozen=True)
class ImageCase:
    path: str
    expected: str  # "indexed" or the machine-readable reason
    description: str


IMAGE_CASES: tuple[ImageCase, ...] = (
    ImageCase("/ok.jpg", "indexed", "a plain JPEG"),
    ImageCase("/cmyk.jpg", "indexed", "CMYK JPEG"),
    ImageCase("/gray16.png", "indexed", "16-bit grayscale PNG"),
    ImageCase("/exif-rotated.jpg", "indexed", "JPEG with EXIF orientation 6"),
    ImageCase("/animated.gif", "indexed", "animated GIF (first frame)"),
    ImageCase("/animated.webp", "indexed", "animated WebP (first frame)"),
    ImageCase("/rgba.png", "indexed", "PNG with alpha"),
    ImageCase("/status/404", "http_404", "404 Not Found"),
    ImageCase("/status/500", "http_500", "500 Server Error"),
    ImageCase("/hang", "timeout", "no response within the time cap"),
    ImageCase("/slow-drip", "timeout", "one byte every 0.5 s (slow drip)"),
    ImageCase("/redirect-loop", "too_many_redirects", "redirects to itself"),
    ImageCase("/redirect-metadata", "url_blocked", "redirects to 169.254.169.254 (SSRF)"),
    ImageCase("/redirect-bad-port", "url_invalid", "redirects to port 99999"),
    ImageCase("/redirect-signed-port", "url_invalid", "redirects to port +18081"),
    ImageCase("/redirect-no-host", "url_invalid", "redirects to `http:127.0.0.1:18080/x` (no host)"),
    ImageCase(
        "/redirect-v4-compatible", "url_blocked", "redirects to [::7f00:1] (IPv4-compatible 127.0.0.1)"
    ),
    ImageCase(
        "/redirect-v4-translated", "url_blocked", "redirects to [::ffff:0:7f00:1] (translated 127.0.0.1)"
    ),
    ImageCase(
        "/redirect-nat64", "url_blocked", "redirects to [64:ff9b::a9fe:a9fe] (NAT64 of 169.254.169.254)"
    ),
    ImageCase("/redirect-6to4", "url_blocked", "redirects to [2002:7f00:1::] (6to4 of 127.0.0.1)"),
    ImageCase("/redirect-teredo", "url_blocked", "redirects to [2001::1] (Teredo)"),
    ImageCase("/redirect-site-local", "url_blocked", "redirects to [fec0::1] (site-local)"),
    ImageCase("/page.html", "not_an_image", "an HTML page"),
    ImageCase("/doc.pdf", "not_an_image", "a PDF document"),
    ImageCase("/empty.jpg", "empty", "0-byte file"),
    ImageCase("/truncated.jpg", "truncated", "JPEG cut in half"),
    ImageCase("/truncated.png", "truncated", "PNG cut in half"),
    ImageCase("/bomb.png", "too_many_pixels", "decompression bomb: 20000×20000 PNG"),
    ImageCase("/huge.jpg", "too_large", "3 MB body with Content-Length over the byte cap"),
    ImageCase("/huge-chunked.jpg", "too_large", "3 MB chunked body, no Content-Length"),
)


# Where each redirecting case sends the client (issue 12: each used to fail the whole ad or pass).
REDIRECTS = {
    "/redirect-loop": "/redirect-loop",
    "/redirect-metadata": "http://169.254.169.254/latest/meta-data/",
    "/redirect-bad-port": "http://127.0.0.1:99999/img.jpg",
    "/redirect-signed-port": "http://127.0.0.1:+18081/img.jpg",
    "/redirect-no-host": "http:127.0.0.1:18080/x",
    "/redirect-v4-compatible": "http://[::7f00:1]/img.jpg",
    "/redirect-v4-translated": "http://[::ffff:0:7f00:1]/img.jpg",
    "/redirect-nat64": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "/redirect-6to4": "http://[2002:7f00:1::]/img.jpg",
    "/redirect-teredo": "http://[2001::1]/img.jpg",
    "/redirect-site-local": "http://[fec0::1]/img.jpg",
}


@dataclass(frozen=True)
class EventCase:
    name: str
    value: bytes
    expected: str


def event_cases(image_url: str) -> tuple[EventCase, ...]:
    valid = {
        "schema_version": 1,
        "event_id": "hostile-valid",
        "ad_id": 77,
        "source": "olx.pt",
        "category": None,
        "seller_id": None,
        "images": [image_url],
        "created_at": "2026-11-26T10:00:00Z",
    }

    def variant(**changes: Any) -> bytes:
        data = {**valid, **changes}
        return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()

    return (
        EventCase("malformed JSON", b'{"ad_id": 1,', "invalid_json"),
        EventCase("not an object", b"[1, 2]", "invalid_event"),
        EventCase("unknown schema version", variant(schema_version=2), "unsupported_schema_version"),
        EventCase("missing ad_id", variant(ad_id=...), "invalid_event"),
        EventCase("too many images (51)", variant(images=[image_url] * 51), "too_many_images"),
        EventCase("non-http image URL", variant(images=["file:///etc/passwd"]), "invalid_event"),
    )


def _bodies() -> dict[str, tuple[str, bytes]]:
    photo = _photo()
    ok = _save(photo, "JPEG", quality=90)
    png = _save(photo, "PNG")
    return {
        "/ok.jpg": ("image/jpeg", ok),
        "/cmyk.jpg": ("image/jpeg", _save(photo.convert("CMYK"), "JPEG")),
        "/gray16.png": ("image/png", _sixteen_bit_png()),
        "/exif-rotated.jpg": ("image/jpeg", _exif_rotated()),
        "/animated.gif": ("image/gif", _animated("GIF")),
        "/animated.webp": ("image/webp", _animated("WEBP")),
        "/rgba.png": ("image/png", _save(photo.convert("RGBA"), "PNG")),
        "/page.html": ("text/html", b"<!doctype html><html><body>not an image</body></html>"),
        "/doc.pdf": ("application/pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
        "/empty.jpg": ("image/jpeg", b""),
        "/truncated.jpg": ("image/jpeg", ok[: len(ok) // 2]),
        "/truncated.png": ("image/png", png[: len(png) // 2]),
        "/bomb.png": ("image/png", _png_bomb()),
        "/huge.jpg": ("image/jpeg", b"\xff\xd8" + bytes(3 * 1024 * 1024)),
    }


class HostileServer:
    """A loopback HTTP server whose paths misbehave as IMAGE_CASES describe."""

    def __init__(self) -> None:
        bodies = _bodies()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(
                self, status: int, body: bytes = b"", content_type: str = "text/plain", **headers: str
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                try:
                    if path.startswith("/status/"):
                        self._send(int(path.rsplit("/", 1)[1]), b"error")
                    elif path == "/hang":
                        time.sleep(6)
                        self._send(200, bodies["/ok.jpg"][1], "image/jpeg")
                    elif path == "/slow-drip":
                        self.send_response(200)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Content-Length", "1000")
                        self.end_headers()
                        for _ in range(12):
                            self.wfile.write(b"\xff")
                            self.wfile.flush()
                            time.sleep(0.5)
                    elif path in REDIRECTS:
                        self._send(302, Location=REDIRECTS[path])
                    elif path == "/huge-chunked.jpg":
                        self.send_response(200)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        block = bytes(64 * 1024)
                        for _ in range(48):
                            self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    elif path in bodies:
                        content_type, body = bodies[path]
                        self._send(200, body, content_type)
                    else:
                        self._send(404, b"not found")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


async def image_outcome(transport: httpx.AsyncBaseTransport, url: str, policy: FetchPolicy = POLICY) -> str:
    """What the images agent does with one URL, minus the embedding: 'indexed' or a reason."""
    try:
        data = await fetch_image(transport, url, policy)
        decode_image(data)
    except (FetchError, ImageRejected) as exc:
        return exc.reason
    return "indexed"


def corpus_table(progress: Callable[[str], None] = lambda _line: None) -> tuple[list[dict[str, str]], str]:
    """Run the whole corpus; return rows and a markdown table (case, expected, observed)."""
    from schemas.parsing import InvalidEvent, parse_ad_event

    rows: list[dict[str, str]] = []
    with HostileServer() as server:

        async def run_images() -> None:
            async with open_transport(POLICY) as transport:
                for case in IMAGE_CASES:
                    observed = await image_outcome(transport, server.url(case.path))
                    rows.append(
                        {
                            "level": "image",
                            "case": case.description,
                            "expected": case.expected,
                            "observed": observed,
                        }
                    )
                    progress(f"{case.description}: {observed}")

        asyncio.run(run_images())
        for event_case in event_cases(server.url("/ok.jpg")):
            try:
                parse_ad_event(event_case.value)
                observed = "accepted"
            except InvalidEvent as exc:
                observed = exc.reason
            rows.append(
                {
                    "level": "event",
                    "case": event_case.name,
                    "expected": event_case.expected,
                    "observed": observed,
                }
            )
    lines = ["| level | case | expected | observed | |", "|---|---|---|---|---|"]
    for row in rows:
        mark = "ok" if row["expected"] == row["observed"] else "MISMATCH"
        lines.append(
            f"| {row['level']} | {row['case']} | `{row['expected']}` | `{row['observed']}` | {mark} |"
        )
    return rows, "\n".join(lines)
