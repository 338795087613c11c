"""Cached real photos -> the labelled benchmark set: each source photo is a group (an "original"
upload plus edited copies), split into train and test by source photo with a fixed seed, with
hard-negative relations between groups (stereo pairs, neighbouring frames, the same scene, the
same kind of product). Written to `.imgdup/bench-quality/<set>/` as JPEG files plus
manifest.json; the same arguments give byte-identical files."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import random
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from bench.quality.edits import EDIT_FAMILIES, FAMILY_BY_NAME, UPLOAD_QUALITY
from bench.quality.photos import DEFAULT_CACHE, Photo, ensure_photos, load_photo

DEFAULT_OUT = Path(".imgdup/bench-quality")
SET_FORMAT = "imgdup-quality-set/2"  # bump whenever the generated files change
ORIGINAL_QUALITY = 92

# Drawings and renders among the scratch backgrounds (not photographs).
EXCLUDED = frozenset(
    {
        "scratch/Indoors__party-room",
        "scratch/Indoors__room1",
        "scratch/Indoors__room2",
        "scratch/Indoors__room3",
        "scratch/Indoors__spotlight-stage",
        "scratch/Indoors__chalkboard",
        "scratch/Nature__woods-and-bench",
        "scratch/Outdoors__school2",
    }
)

_CHESS = (*range(1, 10), 11, 12, 13, 14)
# Two shots of one scene from two viewpoints at the same moment.
STEREO: tuple[tuple[str, str], ...] = (
    ("opencv/aloeL", "opencv/aloeR"),
    ("opencv/left", "opencv/right"),
    ("skimage/motorcycle_left", "skimage/motorcycle_right"),
    ("opencv/leuvenA", "opencv/leuvenB"),
    ("opencv/graf1", "opencv/graf3"),
    *((f"opencv/left{i:02d}", f"opencv/right{i:02d}") for i in _CHESS),
)
# Frames of one sequence: the camera or the subject moved a little.
FRAMES: tuple[tuple[str, str], ...] = (
    ("opencv/rubberwhale1", "opencv/rubberwhale2"),
    ("opencv/basketball1", "opencv/basketball2"),
    *(
        (f"opencv/{a}{i:02d}", f"opencv/{b}{j:02d}")
        for i, j in itertools.combinations(_CHESS, 2)
        for a in ("left", "right")
        for b in ("left", "right")
    ),
)
# Distinct photos of one place or object (not the same moment).
SAME_SCENE: tuple[tuple[str, str], ...] = (
    ("scratch/Sports__basketball-court1-a", "scratch/Sports__basketball-court1-b"),
    ("scratch/Outdoors__city-with-water", "scratch/Outdoors__city-with-water2"),
    ("scratch/Outdoors__brick-wall1", "scratch/Outdoors__brick-wall2"),
    ("scratch/Outdoors__brick-wall1", "scratch/Outdoors__brick-wall-and-stairs"),
    ("scratch/Outdoors__brick-wall2", "scratch/Outdoors__brick-wall-and-stairs"),
    ("scratch/Outdoors__train-tracks1", "scratch/Outdoors__train-tracks2"),
    ("scratch/Outdoors__the-movies", "scratch/Indoors__the-movies-inside"),
    ("opencv/box", "opencv/box_in_scene"),
    ("opencv/aero1", "opencv/aero3"),
    ("opencv/apple", "opencv/orange"),
)
HARD_NEGATIVE_KINDS = ("stereo", "frames", "same_scene", "same_kind")


@dataclass(frozen=True)
class SetImage:
    name: str  # file name under images/
    group: str  # source photo_id
    family: str  # "original" or an edit family
    split: str  # "train" or "test"
    sha256: str


@dataclass(frozen=True)
class BenchSet:
    root: Path
    seed: int
    images: tuple[SetImage, ...]
    # Unordered group pairs that are hard negatives, with their kind.
    hard_negatives: dict[frozenset[str], str]

    def split(self, name: str) -> list[SetImage]:
        return [image for image in self.images if image.split == name]

    def path(self, image: SetImage) -> Path:
        return self.root / "images" / image.name

    def hard_kind(self, group_a: str, group_b: str) -> str | None:
        return self.hard_negatives.get(frozenset((group_a, group_b)))


def _same_kind_relations(photos: Iterable[Photo]) -> list[tuple[str, str]]:
    """IFCT photo codes start with the food group (A cereals, ... P fish): one letter, one kind."""
    by_letter: dict[str, list[str]] = {}
    for photo in photos:
        if photo.source == "ifct":
            by_letter.setdefault(photo.photo_id.split("/")[1][0], []).append(photo.photo_id)
    return [pair for ids in by_letter.values() for pair in itertools.combinations(sorted(ids), 2)]


def hard_negative_relations(photo_ids: set[str], photos: Sequence[Photo]) -> dict[frozenset[str], str]:
    relations: dict[frozenset[str], str] = {}
    for kind, pairs in (
        ("same_kind", _same_kind_relations(photos)),
        ("same_scene", SAME_SCENE),
        ("frames", FRAMES),
        ("stereo", STEREO),  # last: the most specific kind wins
    ):
        for a, b in pairs:
            if a in photo_ids and b in photo_ids:
                relations[frozenset((a, b))] = kind
    return relations


def _split_units(photo_ids: Sequence[str]) -> dict[str, str]:
    """photo_id -> unit key; the photos of a stereo pair or a same-scene set share one unit, so
    a split never separates them (frames and same-kind photos may fall on both sides)."""
    parent = {pid: pid for pid in photo_ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in (*STEREO, *SAME_SCENE, *FRAMES[:2]):
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    return {pid: find(pid) for pid in photo_ids}


def assign_splits(photo_ids: Sequence[str], seed: int, test_fraction: float) -> dict[str, str]:
    units = _split_units(photo_ids)
    split: dict[str, str] = {}
    for pid in photo_ids:
        digest = hashlib.sha256(f"imgdup-quality-split:{seed}:{units[pid]}".encode()).digest()
        split[pid] = "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
    return split


def _assign_families(groups: Sequence[str], copies: int, rng: random.Random) -> dict[str, list[str]]:
    """Each group gets `copies` distinct families; over all groups the families are balanced."""
    names = [family.name for family in EDIT_FAMILIES]
    cycle: list[str] = []
    plan: dict[str, list[str]] = {}
    for group in groups:
        chosen: list[str] = []
        while len(chosen) < min(copies, len(names)):
            if not cycle:
                cycle = names[:]
                rng.shuffle(cycle)
            for i, name in enumerate(cycle):
                if name not in chosen:
                    chosen.append(cycle.pop(i))
                    break
            else:
                cycle = []
        plan[group] = chosen
    return plan


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _file_name(group: str, family: str) -> str:
    return f"{group.replace('/', '_')}__{family}.jpg"


def _set_key(photos: Sequence[Photo], seed: int, copies: int, test_fraction: float) -> str:
    digest = hashlib.sha256(f"{SET_FORMAT}:{seed}:{copies}:{test_fraction}".encode())
    for photo in photos:
        digest.update(photo.sha256.encode())
    for family in EDIT_FAMILIES:
        digest.update(f"{family.name}:{family.kind}".encode())
    return digest.hexdigest()[:12]


def build_set(
    *,
    seed: int = 2024,
    copies: int = 3,
    test_fraction: float = 0.5,
    cache: Path = DEFAULT_CACHE,
    out: Path = DEFAULT_OUT,
    say: bool = True,
) -> BenchSet:
    """Build (or reuse) the labelled set for these arguments."""
    photos = [p for p in ensure_photos(cache, say=say) if p.photo_id not in EXCLUDED]
    photo_ids = [p.photo_id for p in photos]
    key = _set_key(photos, seed, copies, test_fraction)
    root = out / f"set-{key}"
    manifest_path = root / "manifest.json"
    relations = hard_negative_relations(set(photo_ids), photos)
    if manifest_path.exists():
        return _load(root, seed, relations)

    splits = assign_splits(photo_ids, seed, test_fraction)
    # Families are balanced within each split.
    plan: dict[str, list[str]] = {}
    for split_name in ("test", "train"):
        rng = random.Random(f"imgdup-quality-families:{seed}:{split_name}")
        plan.update(_assign_families([p for p in photo_ids if splits[p] == split_name], copies, rng))
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    if say:
        print(f"  building the labelled set in {root} ({len(photos)} photos, {copies} copies each) ...")
    records: list[SetImage] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AugLy's own deprecation noise
        for photo in photos:
            source = Image.fromarray(load_photo(photo))
            original_bytes = _encode(source, ORIGINAL_QUALITY)
            outputs = [("original", original_bytes)]
            for family_name in plan[photo.photo_id]:
                family = FAMILY_BY_NAME[family_name]
                if family.apply is None:
                    outputs.append((family_name, original_bytes))
                    continue
                edit_rng = random.Random(f"imgdup-quality-edit:{seed}:{photo.photo_id}:{family_name}")
                outputs.append((family_name, _encode(family.apply(source, edit_rng), UPLOAD_QUALITY)))
            for family_name, data in outputs:
                name = _file_name(photo.photo_id, family_name)
                (images_dir / name).write_bytes(data)
                records.append(
                    SetImage(name, photo.photo_id, family_name, splits[photo.photo_id], _sha(data))
                )
    document = {
        "format": SET_FORMAT,
        "seed": seed,
        "copies": copies,
        "test_fraction": test_fraction,
        "images": [asdict(r) for r in records],
    }
    tmp = manifest_path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    return BenchSet(root, seed, tuple(records), relations)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(root: Path, seed: int, relations: dict[frozenset[str], str]) -> BenchSet:
    document = json.loads((root / "manifest.json").read_text())
    images = tuple(SetImage(**record) for record in document["images"])
    return BenchSet(root, seed, images, relations)
