"""One stored image (its copy as pixels or JPEG bytes, its pHashes, the SIFT features and framed photo
indexing kept, the photo's box) -> the view the verifier compares, decoding only what a comparison needs."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imgdup_core.decode import load_rgb
from imgdup_core.framing import find_photo_region
from imgdup_core.gray import check_rgb
from imgdup_core.sift import SiftFeatures
from imgdup_core.slot import Box

__all__ = ["COMPUTE_BOX", "BoxUnknown", "ImageView", "box_or_compute"]


class BoxUnknown(enum.Enum):
    COMPUTE = "compute"


# ImageView.box of a view whose photo box was not stored (rows indexed before migration 013): the
# frame finder runs again on the stored copy when a comparison needs the box.
COMPUTE_BOX = BoxUnknown.COMPUTE


@dataclass(frozen=True)
class ImageView:
    """One image as the verifier sees it: the stored copy (longer side <= 512), the pHashes of the
    decoded image (plain, mirrored) and, when the image frames a photo (a screenshot, a border),
    the stored copy of that photo, and where that photo sits in the picture (box).

    The copies are given as pixels (rgb, photo_rgb: HxWx3 uint8, checked here) or as the stored
    JPEG bytes (jpeg, photo_jpeg), decoded only if the comparison needs pixels: with stored SIFT
    features, a pair that does not align (most candidates) is decided without decoding either
    whole copy (a framed photo's copy is still decoded for its pHash)."""

    rgb: np.ndarray | None
    phash: tuple[int, int]
    photo_rgb: np.ndarray | None = None
    # extract_sift of rgb and photo_rgb when stored at indexing (else extracted here).
    sift: SiftFeatures | None = None
    photo_sift: SiftFeatures | None = None
    # sift.stored_flat_features of rgb and photo_rgb when stored at indexing (else extracted if needed).
    flat_sift: SiftFeatures | None = None
    photo_flat_sift: SiftFeatures | None = None
    jpeg: bytes | None = None
    photo_jpeg: bytes | None = None
    # The framed photo's box as shares of the picture (x0, y0, x1, y1 in 0..1): the one the indexer
    # found (imgdup.analysis.analyse), None for a picture known to frame no photo, or COMPUTE_BOX.
    box: Box | BoxUnknown | None = COMPUTE_BOX
    _decoded: dict[bool, np.ndarray] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    _box: list[Box | None] = dataclasses.field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.rgb is None and self.jpeg is None:
            raise ValueError("an ImageView needs the stored copy's pixels or its JPEG bytes")
        for given in (self.rgb, self.photo_rgb):
            if given is not None:
                check_rgb(given)
        if isinstance(self.box, tuple):
            _check_box(self.box)

    @property
    def frames_photo(self) -> bool:
        return self.photo_rgb is not None or self.photo_jpeg is not None

    def pixels(self, photo: bool = False) -> np.ndarray:
        """The stored copy (or the framed photo's), decoded from its JPEG on first use."""
        given = self.photo_rgb if photo else self.rgb
        if given is not None:
            return given
        if photo not in self._decoded:
            blob = self.photo_jpeg if photo else self.jpeg
            if blob is None:
                raise ValueError("this image frames no photo")
            self._decoded[photo] = load_rgb(blob)
        return self._decoded[photo]

    def stored_bytes(self, photo: bool = False) -> bytes | None:
        return self.photo_jpeg if photo else self.jpeg

    def photo_box(self) -> Box | None:
        """Where the framed photo sits in the stored copy, as shares of its width and height
        (x0, y0, x1, y1): the given box, else the frame finder run again on the stored copy, on
        first use (~6-12 ms); None for a picture that frames no photo (or, computed, whose box the
        smaller copy no longer shows)."""
        if not isinstance(self.box, BoxUnknown):
            return self.box
        if not self._box:
            region = find_photo_region(self.pixels()) if self.frames_photo else None
            if region is None:
                self._box.append(None)
            else:
                h, w = self.pixels().shape[:2]
                self._box.append(region.shares(w, h))
        return self._box[0]


def _check_box(box: Sequence[float]) -> None:
    if len(box) != 4 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in box):
        raise ValueError(f"a photo box is four shares in 0..1, got {box!r}")
    if not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(f"a photo box needs x0 < x1 and y0 < y1, got {box!r}")


def box_or_compute(stored: Sequence[float] | None) -> Box | BoxUnknown:
    """A box read back from storage (shares) -> an ImageView's box; none stored (an image indexed
    before the box was) or not a valid box: COMPUTE_BOX, the frame finder runs as before."""
    if stored is None:
        return COMPUTE_BOX
    try:
        _check_box(stored)
    except ValueError:
        return COMPUTE_BOX
    return (float(stored[0]), float(stored[1]), float(stored[2]), float(stored[3]))
