"""The frame finder's types: a photo's box in a picture (Region) and the finder's thresholds
(FramingConfig), shared by imgdup_core.framing and imgdup_core.letterbox."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_FRAMING", "FramingConfig", "Region"]


@dataclass(frozen=True)
class Region:
    """A box in the image's pixel coordinates (x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def shares(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box as shares (x0, y0, x1, y1 in 0..1) of the picture it was found in: the same box in
        any resized copy of that picture (the stored copy), whatever its pixel size."""
        if width <= 0 or height <= 0:
            raise ValueError(f"picture size must be positive, got {width}x{height}")
        return (self.x0 / width, self.y0 / height, self.x1 / width, self.y1 / height)


@dataclass(frozen=True)
class FramingConfig:
    work_side: int = 384  # the detector runs on a grey copy this large (longer side)
    texture_std: float = 6.0  # grey-level std (5x5) above which a pixel is texture
    max_texture: float = 0.75  # a picture more textured than this has no flat frame: skipped
    edge_step: float = 20.0  # grey-level step across a crisp edge (over two pixels)
    edge_coverage: float = 0.75  # share of a side's length that must step
    min_line: float = 0.06  # a candidate line steps over at least this share of the longer side
    max_lines: int = 24  # strongest candidate lines kept per direction
    min_area: float = 0.06  # the photo's share of the image, bounds
    max_area: float = 0.8
    min_side: int = 24  # pixels at work size
    min_inner_sides: int = 2  # sides away from the image border (a horizon has one)
    max_frame_texture: float = 0.35  # textured share of the picture outside the box
    min_photo_texture: float = 0.25  # textured share inside the box
    bar_std: float = 4.0  # a row or column this flat at the box's rim is a letterbox bar
    max_bar: float = 0.45  # at most this share of the box is trimmed per direction
    # A photo letterboxed into a page's slot (a product on white shown on a white page) has no edge
    # where its white meets the page, but its two letterbox bars are there: dark flat rectangles of
    # one length, side by side (pillar bars) or one above the other, that bound the slot.
    bar_dark: float = 50.0  # grey level under which a pixel may belong to a bar
    bar_fill: float = 0.9  # a bar fills this share of its bounding rectangle
    min_bar_length: float = 0.1  # a bar runs along this share of the picture's side at least
    bar_tolerance: int = 2  # pixels (at work size) by which the two bars' ends may differ
    min_slot_texture: float = 0.1  # textured share between the bars (a product, not a blank slot)
    max_bars: int = 4  # more dark rectangles than this are a pattern (a chessboard), not a letterbox
    # Where neither bars nor edges frame a photo: flat bars of one light grey level (a page's grey slot
    # around a product on white, a step of ~10 grey levels that edge_step does not see).
    bar_level_band: int = 3  # grey levels either side of the level that a flat bar's pixels keep to
    max_bar_levels: int = 3  # the flat pixels' most common levels tried (a 4th found no box in 6,718 photos)
    # The page around two flat bars may be more textured than max_frame_texture (issue 11): a listing's
    # title, price panel, button and lines of text beside a grey slot leave 0.36-0.40 of the page textured,
    # which hid the slot of 12 page-template screenshots in the broad pool (flower10, flower3 and the 747 in
    # listing-0 among them: pages of one template around different products on white, compared
    # whole). Census on both pools' 6,500 images (frame_census --field): 0.4 boxes those 12 and no other
    # picture; 0.45 adds 5 plain pictures' false boxes. Dark bars and edge-framed boxes keep 0.35.
    max_flat_slot_page_texture: float = 0.4


DEFAULT_FRAMING = FramingConfig()
