"""Stand-ins for the world outside a step: an in-memory web of image URLs and an inline CPU runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from imgdup.analysis.fetch import FetchError

T = TypeVar("T")


async def run_inline(fn: Callable[[], T]) -> T:
    return fn()


class Web:
    """URL -> bytes, or a FetchError reason; counts the downloads it served."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.downloads.append(url)
        if url not in self.files:
            raise FetchError("http_404", f"{url}: 404 Not Found")
        return self.files[url]
