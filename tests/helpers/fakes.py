"""Stand-ins for the world outside a step: an in-memory web of image URLs, an inline CPU runner, and a
counting frame finder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest

import imgdup_core.views as views_module
from imgdup.analysis.fetch import FetchError
from imgdup_core.framing import Region, find_photo_region

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


def count_finder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The verifier's frame finder, counted: one entry per call (the stored photo box spares it)."""
    calls: list[int] = []

    def counting(rgb: np.ndarray) -> Region | None:
        calls.append(1)
        return find_photo_region(rgb)

    monkeypatch.setattr(views_module, "find_photo_region", counting)
    return calls
