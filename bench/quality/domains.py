"""Cached photos -> what each is of and how it looks: its visual domain (what kind of ad would
carry it: from bench/quality/domains.tsv, labelled by looking, or from its source's folder), its
size, and a measured flat/low-texture flag (skies, white walls, studio backdrops); the measures
are cached by content hash next to the photos."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from bench.quality.photos import Photo

DOMAINS_FILE = Path(__file__).with_name("domains.tsv")
# What ads carry (issue 11), plus photos of people and of nothing an ad would sell ("other").
DOMAINS = (
    "interiors",
    "vehicles",
    "objects",  # electronics and small objects
    "clothing",
    "household",  # furniture and household
    "outdoor",  # outdoor and landscape
    "animals",
    "food",
    "plants",
    "people",
    "other",
)
# Sources whose folder says the domain (their photos are not listed one by one).
SOURCE_DOMAIN = {"ifct": "food", "scratch": "outdoor"}
# Flatness: the share of pixels (grey, longer side WORK_SIDE) whose gradient is under
# FLAT_GRADIENT grey levels per pixel; a photo is flat when at least FLAT_SHARE of it is.
WORK_SIDE = 256
FLAT_GRADIENT = 2.0
FLAT_SHARE = 0.6
TRAITS_VERSION = 1


@cache
def domain_table(path: Path = DOMAINS_FILE) -> dict[str, str]:
    table: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        photo_id, domain = line.split("\t")
        if domain not in DOMAINS:
            raise ValueError(f"{path}:{number}: unknown domain {domain!r}; expected one of {DOMAINS}")
        table[photo_id] = domain
    return table


def domain_of(photo_id: str) -> str:
    listed = domain_table().get(photo_id)
    if listed is not None:
        return listed
    return SOURCE_DOMAIN.get(photo_id.split("/", 1)[0], "other")


def flat_share(rgb: np.ndarray) -> float:
    """Share of the photo with almost no gradient, measured on a grey copy whose longer side is
    WORK_SIDE (so the figure does not depend on the photo's resolution)."""
    image = Image.fromarray(rgb).convert("L")
    scale = WORK_SIDE / max(image.size)
    size = (max(2, round(image.width * scale)), max(2, round(image.height * scale)))
    grey = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    gy, gx = np.gradient(grey)
    return float(np.mean(np.hypot(gx, gy) < FLAT_GRADIENT))


@dataclass(frozen=True)
class Traits:
    domain: str
    width: int
    height: int
    flat_share: float

    @property
    def flat(self) -> bool:
        return self.flat_share >= FLAT_SHARE


def photo_traits(photos: Sequence[Photo], cache_dir: Path) -> dict[str, Traits]:
    """photo_id -> Traits; pixel measures cached in <cache_dir>/traits.json by sha256."""
    from bench.quality.photos import load_photo

    path = cache_dir / "traits.json"
    stored: dict[str, dict[str, float]] = {}
    if path.exists():
        document = json.loads(path.read_text())
        if document.get("version") == TRAITS_VERSION:
            stored = document["photos"]
    out: dict[str, Traits] = {}
    changed = False
    for photo in photos:
        measured = stored.get(photo.sha256)
        if measured is None:
            with Image.open(photo.path) as raw:
                width, height = raw.size
            rgb = load_photo(photo, max_side=WORK_SIDE * 4)
            measured = {"width": width, "height": height, "flat_share": round(flat_share(rgb), 4)}
            stored[photo.sha256] = measured
            changed = True
        out[photo.photo_id] = Traits(
            domain_of(photo.photo_id),
            int(measured["width"]),
            int(measured["height"]),
            float(measured["flat_share"]),
        )
    if changed:
        tmp = path.with_name(".traits.json.tmp")
        tmp.write_text(
            json.dumps({"version": TRAITS_VERSION, "photos": stored}, indent=1, sort_keys=True) + "\n"
        )
        tmp.replace(path)
    return out


def summary(photos: Iterable[Photo], traits: dict[str, Traits]) -> list[str]:
    """Lines for `python -m bench.quality photos`: counts per domain and per source, flat photos,
    full-size photos (longer side 1,000-2,000 px and more)."""
    photos = list(photos)
    by_domain: Counter[str] = Counter()
    flat: Counter[str] = Counter()
    full: Counter[str] = Counter()
    by_source: dict[str, Counter[str]] = {}
    for photo in photos:
        t = traits[photo.photo_id]
        by_domain[t.domain] += 1
        flat[t.domain] += t.flat
        full[t.domain] += max(t.width, t.height) >= 1000
        by_source.setdefault(photo.source, Counter())[t.domain] += 1
    lines = [
        f"{len(photos)} distinct photos in {len(by_domain)} domains",
        "",
        "domain        photos  flat  full-size",
    ]
    for domain in DOMAINS:
        if by_domain[domain]:
            lines.append(f"{domain:12s} {by_domain[domain]:7d} {flat[domain]:5d} {full[domain]:10d}")
    lines += ["", "source        photos  domains"]
    for source, counts in by_source.items():
        parts = ", ".join(f"{d} {n}" for d, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        lines.append(f"{source:12s} {sum(counts.values()):7d}  {parts}")
    return lines


def as_dict(traits: Traits) -> dict[str, object]:
    return {**asdict(traits), "flat": traits.flat}
