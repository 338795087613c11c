"""A broad set -> the same set with every pair of two different photos' copies in one screenshot
frame related as a `same_template` hard negative, across both splits (for leave-one-domain-out).

The manifest relates `screenshot_templates` copies within a split only (the product benchmark
evaluates the splits apart); leave-one-domain-out fits and scores on both halves, where a
train photo and a test photo can share a template too. AugLy's `screenshot` edit puts every
photo into one of two templates (web.png, mobile.png), a frame just as shared. Both choices are
seeded, so they are recomputed here exactly as the set was built (bench/quality/dataset.py
build_set, bench/quality/edits.py screenshot). Calibration of the default pool does not use
this: its committed model stays fitted as before."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from bench.quality.dataset import BenchSet, template_pairs

AUGLY_TEMPLATES = ("web.png", "mobile.png")


def _augly_template(seed: int, group: str) -> str:
    # The screenshot edit's first draw from its seeded generator is the template.
    rng = random.Random(f"imgdup-quality-edit:{seed}:{group}:screenshot")
    return rng.choice(AUGLY_TEMPLATES)


def frame_relations(bench: BenchSet) -> dict[frozenset[str], str]:
    """Image-name pairs of two different photos shown in one screenshot frame."""
    frame_of: dict[str, tuple[str, str]] = {}  # image name -> (family, template)
    for split in sorted({image.split for image in bench.images}):
        templated = sorted(
            {i.group for i in bench.images if i.split == split and i.family == "screenshot_templates"}
        )
        template_of = template_pairs(templated, bench.seed)
        for image in bench.images:
            if image.split == split and image.family == "screenshot_templates":
                frame_of[image.name] = (image.family, template_of[image.group])
    for image in bench.images:
        if image.family == "screenshot":
            frame_of[image.name] = (image.family, _augly_template(bench.seed, image.group))
    group_of = {image.name: image.group for image in bench.images}
    by_frame: dict[tuple[str, str], list[str]] = {}
    for name, frame in sorted(frame_of.items()):
        by_frame.setdefault(frame, []).append(name)
    return {
        frozenset((a, b)): "same_template"
        for names in by_frame.values()
        for a, b in itertools.combinations(names, 2)
        if group_of[a] != group_of[b]
    }


def with_frame_relations(bench: BenchSet) -> BenchSet:
    """The set with frame_relations added to its per-image hard negatives."""
    return replace(bench, image_hard_negatives={**frame_relations(bench), **bench.image_hard_negatives})
