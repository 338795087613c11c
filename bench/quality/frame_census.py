"""The benchmark sets' images -> how many the frame finder boxes, per edit family, under the shipped
FramingConfig and under a variant of it: what a frame-finder change gains on pictures that frame a photo
(screenshots, page templates, padding, combos) and what it costs in boxes on pictures that frame none.

Offline, on the decoded images as the images worker decodes them (imgdup_core.framing.find_photo_region);
every set folder under .imgdup/bench-quality (both pools once built) unless --set names some.

    python -m bench.quality.frame_census --field max_frame_texture=0.5 [--set set-e60b32fdd803 ...]
        [--name frame-census]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, table, write_results
from bench.quality.dataset import DEFAULT_OUT
from imgdup_core.decode import decode_image
from imgdup_core.framing import DEFAULT_FRAMING, FramingConfig, Region, find_photo_region

# The edit families whose pictures frame the photo by construction; every other picture frames none.
FRAMING_FAMILIES = ("screenshot", "screenshot_templates", "padding", "combo")


def variant(fields: Sequence[str]) -> FramingConfig:
    """DEFAULT_FRAMING with each NAME=VALUE replaced (the field's own type); ValueError for an unknown one."""
    known = {field.name: field for field in dataclasses.fields(FramingConfig)}
    changes: dict[str, Any] = {}
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise ValueError(f"expected FIELD=VALUE with a FramingConfig field, got {item!r}")
        changes[name] = type(getattr(DEFAULT_FRAMING, name))(value)
    return dataclasses.replace(DEFAULT_FRAMING, **changes)


def census(
    images: Iterable[tuple[str, str, np.ndarray]], config: FramingConfig
) -> tuple[dict[tuple[str, bool, bool], int], list[tuple[str, Region | None, Region | None]]]:
    """Per (family or "plain", boxed by the shipped finder, boxed by `config`): how many images; and every
    image whose box differs, with both boxes. `images`: (name, edit family, RGB array)."""
    counts: Counter[tuple[str, bool, bool]] = Counter()
    changed = []
    for name, family, rgb in images:
        shipped, other = find_photo_region(rgb), find_photo_region(rgb, config)
        counts[
            (family if family in FRAMING_FAMILIES else "plain", shipped is not None, other is not None)
        ] += 1
        if shipped != other:
            changed.append((name, shipped, other))
    return dict(counts), changed


def _set_images(root: Path) -> Iterable[tuple[str, str, np.ndarray]]:
    for path in sorted((root / "images").glob("*.jpg")):
        yield path.name, path.stem.rsplit("__", 1)[-1], decode_image(path.read_bytes()).rgb


def markdown(result: dict[str, Any]) -> str:
    out = [
        "### Frame finder census: shipped FramingConfig against a variant",
        "",
        f"Variant: {', '.join(result['fields'])}. Images boxed per edit family (*plain*: every family that "
        "frames no photo by construction), offline on the decoded benchmark images.",
        "",
    ]
    for name, one in result["sets"].items():
        rows = []
        for family in (*FRAMING_FAMILIES, "plain"):
            got = {tuple(k.split("|")[1:]): v for k, v in one["counts"].items() if k.split("|")[0] == family}
            total = sum(got.values())
            if not total:
                continue
            shipped = got.get(("True", "True"), 0) + got.get(("True", "False"), 0)
            other = got.get(("True", "True"), 0) + got.get(("False", "True"), 0)
            rows.append(
                [family, total, shipped, other, got.get(("False", "True"), 0), got.get(("True", "False"), 0)]
            )
        out += [f"**{name}** ({one['images']} images; {len(one['changed'])} boxes differ)", ""]
        out += [table(["family", "images", "boxed (shipped)", "boxed (variant)", "gained", "lost"], rows), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--field", action="append", required=True, metavar="NAME=VALUE")
    parser.add_argument("--set", action="append", default=[], help="a set folder under .imgdup/bench-quality")
    parser.add_argument("--name", default="frame-census")
    args = parser.parse_args(argv)
    config = variant(args.field)
    roots = [DEFAULT_OUT / s for s in args.set] or sorted(p for p in DEFAULT_OUT.glob("set-*") if p.is_dir())
    if not roots:
        raise SystemExit(f"no benchmark set under {DEFAULT_OUT}: run python -m bench.quality first")
    result: dict[str, Any] = {"machine": machine(), "fields": args.field, "sets": {}}
    for root in roots:
        counts, changed = census(_set_images(root), config)
        result["sets"][root.name] = {
            "images": sum(counts.values()),
            "counts": {f"{family}|{a}|{b}": n for (family, a, b), n in sorted(counts.items())},
            "changed": [[name, a and a.as_list(), b and b.as_list()] for name, a, b in changed],
        }
    write_results(args.name, result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
