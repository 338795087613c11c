"""Consumes a folder of files and produces a quiet loopback HTTP server that serves them by name."""

from __future__ import annotations

import mimetypes
import os
import socket
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

# The demo only ships JPEGs, but make the common image types explicit so the answer does not
# depend on the host's /etc/mime.types.
_CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".json": "application/json",
}


class _QuietFileHandler(SimpleHTTPRequestHandler):
    """Serves plain files only (no directory listings) and logs nothing."""

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        suffix = Path(str(path)).suffix.lower()
        known = _CONTENT_TYPES.get(suffix)
        if known is not None:
            return known
        guessed, _ = mimetypes.guess_type(str(path))
        return guessed or "application/octet-stream"

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-transfer are normal here; stay silent.
        return None


class LoopbackImageServer:
    """Context manager serving the files of ``root`` over HTTP on a loopback address.

    Port 0 (the default) picks a free port; ``base_url`` tells which one was chosen.
    """

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._root = Path(root).resolve()
        self._host = host
        self._port = port
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoopbackImageServer:
        if self._server is not None:
            raise RuntimeError("LoopbackImageServer is already running")
        if not self._root.is_dir():
            raise FileNotFoundError(f"not a folder: {self._root}")
        handler = partial(_QuietFileHandler, directory=str(self._root))
        server_cls: type[_QuietServer] = _QuietServer
        if ":" in self._host:
            server_cls = type("_QuietServer6", (_QuietServer,), {"address_family": socket.AF_INET6})
        server = server_cls((self._host, self._port), handler)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"imgdup-demo-images:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server = server
        self._thread = thread
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LoopbackImageServer is not running; use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def url_for(self, name: str) -> str:
        """URL of a file given by its path relative to the root, e.g. ``coffee__flip.jpg``."""
        return f"{self.base_url}/{quote(name.lstrip('/'))}"
