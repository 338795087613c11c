"""Cached real photos -> the labelled benchmark set: each source photo is a group (an "original"
upload plus edited copies), split into train and test by source photo with a fixed seed (or, to
leave one domain out, by domain), with hard-negative relations between groups (stereo pairs,
neighbouring frames, the same scene, the same kind of product) and between images (two different
photos in one screenshot template). Written to `.imgdup/bench-quality/<set>/` as JPEG files plus
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from bench.quality import templates
from bench.quality.domains import Traits, domain_of, photo_traits
from bench.quality.edits import CLASSIC_FAMILIES, EDIT_FAMILIES, FAMILY_BY_NAME, UPLOAD_QUALITY, EditFamily
from bench.quality.photos import (
    DEFAULT_CACHE,
    MAX_SIDE,
    MAX_SIDE_BROAD,
    POOLS,
    Photo,
    ensure_photos,
    load_photo,
)

DEFAULT_OUT = Path(".imgdup/bench-quality")
SET_FORMAT = "imgdup-quality-set/2"  # bump whenever the generated files change
ORIGINAL_QUALITY = 92
# The broad pool leaves out photos whose longer side is under this (stamps of a few dozen pixels).
MIN_LONG_SIDE = 140

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
# Consecutive frames of one static-camera video (RubberWhale's scene, two people passing a ball): the same
# photo to a portal, near-duplicates by any pixel or embedding measure. Neither a positive nor a negative:
# every metric leaves them out (NEUTRAL_KINDS) and the reports say how often they were called duplicates.
ADJACENT_FRAMES: tuple[tuple[str, str], ...] = (
    ("opencv/rubberwhale1", "opencv/rubberwhale2"),
    ("opencv/basketball1", "opencv/basketball2"),
)
# Frames of one sequence far enough apart to be different photos: the camera or the subject moved.
FRAMES: tuple[tuple[str, str], ...] = (
    *(
        (f"opencv/{a}{i:02d}", f"opencv/{b}{j:02d}")
        for i, j in itertools.combinations(_CHESS, 2)
        for a in ("left", "right")
        for b in ("left", "right")
    ),
    ("labelme/00000100", "labelme/00000104"),  # a street, 4 video frames apart
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
    # The broad pool's (none is in the default pool, whose set is unchanged by them).
    ("kphotoalbum/bar55", "kphotoalbum/bar55_2"),
    ("kphotoalbum/donna", "kphotoalbum/donna_2"),
    ("kphotoalbum/grand_canyon_1", "kphotoalbum/grand_canyon_2"),
    ("kphotoalbum/grand_canyon_1", "kphotoalbum/grand_canyon_3"),
    ("kphotoalbum/grand_canyon_2", "kphotoalbum/grand_canyon_3"),
    ("kphotoalbum/jesper", "kphotoalbum/jesper_2"),
    ("kphotoalbum/new_wave_1", "kphotoalbum/new_wave_2"),
    ("kphotoalbum/pool", "kphotoalbum/pool_2"),
    ("kphotoalbum/skagen", "kphotoalbum/skagen_2"),
    ("kphotoalbum/spiff", "kphotoalbum/spiff_2"),
)
# Frames kept together by the split.
SPLIT_FRAMES: tuple[tuple[str, str], ...] = (*ADJACENT_FRAMES, FRAMES[-1])
HARD_NEGATIVE_KINDS = ("stereo", "frames", "same_scene", "same_kind", "same_template")
# Related photos that are neither duplicates nor negatives (kept in BenchSet.hard_negatives under this kind).
NEUTRAL_KINDS = ("adjacent_frames",)


@dataclass(frozen=True)
class SetImage:
    name: str  # file name under images/
    group: str  # source photo_id
    family: str  # "original" or an edit family
    split: str  # "train" or "test"
    sha256: str
    domain: str = ""  # the source photo's domain (bench/quality/domains.py)
    flat: bool = False  # the source photo is flat / low-texture (measured)


@dataclass(frozen=True)
class BenchSet:
    root: Path
    seed: int
    images: tuple[SetImage, ...]
    # Unordered group pairs that are hard negatives, with their kind (or neither: NEUTRAL_KINDS).
    hard_negatives: dict[frozenset[str], str]
    pool: str = "default"
    holdout_domain: str | None = None
    # Unordered image-name pairs that are hard negatives although their groups are not related
    # (two different photos in one screenshot template).
    image_hard_negatives: dict[frozenset[str], str] = field(default_factory=dict)
    # Two different edits of one photo: a positive (broad pool) or neither (default pool).
    edit_pairs_positive: bool = False

    def neutral_pairs(self) -> set[frozenset[str]]:
        """Group pairs that are neither duplicates nor negatives (NEUTRAL_KINDS)."""
        return {pair for pair, kind in self.hard_negatives.items() if kind in NEUTRAL_KINDS}

    def split(self, name: str) -> list[SetImage]:
        return [image for image in self.images if image.split == name]

    def path(self, image: SetImage) -> Path:
        return self.root / "images" / image.name

    def hard_kind(self, group_a: str, group_b: str) -> str | None:
        return self.hard_negatives.get(frozenset((group_a, group_b)))


def _same_kind_relations(photos: Iterable[Photo]) -> list[tuple[str, str]]:
    """IFCT photo codes start with the food group (A cereals, ... P fish): one letter, one kind.
    Tux Paint stamps of one folder (birds, fish, fruit, flowers, trucks ...) are one kind too."""
    by_kind: dict[str, list[str]] = {}
    for photo in photos:
        name = photo.photo_id.split("/")[1]
        if photo.source == "ifct":
            by_kind.setdefault("ifct:" + name[0], []).append(photo.photo_id)
        elif photo.source == "tuxstamps" and name.count("__") >= 2:
            by_kind.setdefault("stamps:" + name.rsplit("__", 1)[0], []).append(photo.photo_id)
    return [pair for ids in by_kind.values() for pair in itertools.combinations(sorted(ids), 2)]


def hard_negative_relations(photo_ids: set[str], photos: Sequence[Photo]) -> dict[frozenset[str], str]:
    relations: dict[frozenset[str], str] = {}
    for kind, pairs in (
        ("same_kind", _same_kind_relations(photos)),
        ("same_scene", SAME_SCENE),
        ("frames", FRAMES),
        ("adjacent_frames", ADJACENT_FRAMES),
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

    for a, b in (*STEREO, *SAME_SCENE, *SPLIT_FRAMES):
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    return {pid: find(pid) for pid in photo_ids}


def assign_splits(
    photo_ids: Sequence[str],
    seed: int,
    test_fraction: float,
    *,
    domains: dict[str, str] | None = None,
    holdout_domain: str | None = None,
) -> dict[str, str]:
    """photo_id -> "train" or "test". By default a seeded share of the split units goes to test.
    Leaving one domain out (`holdout_domain`, with `domains`: photo_id -> domain): every unit
    with a photo of that domain is test, every other unit is train, so the held-out domain is
    absent from training and no scene straddles the split."""
    units = _split_units(photo_ids)
    if holdout_domain is not None:
        if domains is None:
            raise ValueError("leaving a domain out needs every photo's domain")
        held = {units[pid] for pid in photo_ids if domains[pid] == holdout_domain}
        if not held:
            raise ValueError(f"no photo of domain {holdout_domain!r} in the pool")
        return {pid: "test" if units[pid] in held else "train" for pid in photo_ids}
    split: dict[str, str] = {}
    for pid in photo_ids:
        digest = hashlib.sha256(f"imgdup-quality-split:{seed}:{units[pid]}".encode()).digest()
        split[pid] = "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
    return split


def _assign_families(
    groups: Sequence[str], copies: int, rng: random.Random, families: Sequence[EditFamily] = CLASSIC_FAMILIES
) -> dict[str, list[str]]:
    """Each group gets `copies` distinct families; over all groups the families are balanced."""
    names = [family.name for family in families]
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


def _set_key(
    photos: Sequence[Photo],
    seed: int,
    copies: int,
    test_fraction: float,
    families: Sequence[EditFamily] = CLASSIC_FAMILIES,
    variant: str = "",
) -> str:
    """The set's id. The default pool's has no `variant`: it is the id it had before pools."""
    digest = hashlib.sha256(f"{SET_FORMAT}:{seed}:{copies}:{test_fraction}{variant}".encode())
    for photo in photos:
        digest.update(photo.sha256.encode())
    for family in families:
        digest.update(f"{family.name}:{family.kind}".encode())
    return digest.hexdigest()[:12]


def template_pairs(groups: Sequence[str], seed: int) -> dict[str, str]:
    """group -> template name for the groups whose copy is `screenshot_templates`: consecutive
    groups (in a seeded order) share one template, so that two different photos appear in the
    same page (a hard negative pair); an odd one out gets a template of its own."""
    order = sorted(
        groups, key=lambda g: hashlib.sha256(f"imgdup-template-pairs:{seed}:{g}".encode()).digest()
    )
    chosen: dict[str, str] = {}
    for k in range(0, len(order), 2):
        rng = random.Random(f"imgdup-template-pair:{seed}:{order[k]}")
        name = rng.choice(templates.TEMPLATES).name
        for group in order[k : k + 2]:
            chosen[group] = name
    return chosen


def pool_photos(
    pool: str, cache: Path = DEFAULT_CACHE, *, say: bool = True
) -> tuple[list[Photo], dict[str, Traits]]:
    """The photos a set of this pool is made of (drawings left out; in the broad pool, photos
    whose longer side is under MIN_LONG_SIDE too) and their traits."""
    photos = [p for p in ensure_photos(cache, POOLS[pool], say=say) if p.photo_id not in EXCLUDED]
    traits = photo_traits(photos, cache.resolve())
    if pool != "default":  # thumbnails are not ad photos
        photos = [
            p for p in photos if max(traits[p.photo_id].width, traits[p.photo_id].height) >= MIN_LONG_SIDE
        ]
    return photos, traits


def build_set(
    *,
    seed: int = 2024,
    copies: int = 3,
    test_fraction: float = 0.5,
    pool: str = "default",
    holdout_domain: str | None = None,
    cache: Path = DEFAULT_CACHE,
    out: Path = DEFAULT_OUT,
    say: bool = True,
) -> BenchSet:
    """Build (or reuse) the labelled set for these arguments. `pool`: "default" (the original
    photos, edits and set ids) or "broad" (bench/quality/photos.py POOLS; full-size photos up to
    MAX_SIDE_BROAD, every edit family, edit-vs-edit pairs as positives). `holdout_domain`: leave
    that domain out (assign_splits)."""
    broad = pool != "default"
    families = EDIT_FAMILIES if broad else CLASSIC_FAMILIES
    max_side = MAX_SIDE_BROAD if broad else MAX_SIDE
    photos, traits = pool_photos(pool, cache, say=say)
    photo_ids = [p.photo_id for p in photos]
    variant = f":{pool}:{holdout_domain}:{max_side}:{MIN_LONG_SIDE}" if broad or holdout_domain else ""
    key = _set_key(photos, seed, copies, test_fraction, families, variant)
    root = out / f"set-{key}"
    manifest_path = root / "manifest.json"
    relations = hard_negative_relations(set(photo_ids), photos)
    if manifest_path.exists():
        return _load(root, seed, relations)

    domains = {pid: traits[pid].domain for pid in photo_ids}
    splits = assign_splits(photo_ids, seed, test_fraction, domains=domains, holdout_domain=holdout_domain)
    # Families are balanced within each split.
    plan: dict[str, list[str]] = {}
    for split_name in ("test", "train"):
        rng = random.Random(f"imgdup-quality-families:{seed}:{split_name}")
        in_split = [p for p in photo_ids if splits[p] == split_name]
        plan.update(_assign_families(in_split, copies, rng, families))
    template_of: dict[str, str] = {}
    image_relations: dict[frozenset[str], str] = {}
    if broad:  # pairs within a split: the splits are evaluated apart
        for split_name in ("test", "train"):
            chosen = [p for p in photo_ids if splits[p] == split_name and "screenshot_templates" in plan[p]]
            paired = template_pairs(chosen, seed)
            template_of.update(paired)
            image_relations.update(_same_template_images(paired))
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    if say:
        print(f"  building the labelled set in {root} ({len(photos)} photos, {copies} copies each) ...")
    records: list[SetImage] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AugLy's own deprecation noise
        for photo in photos:
            source = Image.fromarray(load_photo(photo, max_side))
            original_bytes = _encode(source, ORIGINAL_QUALITY)
            outputs = [("original", original_bytes)]
            for family_name in plan[photo.photo_id]:
                family = FAMILY_BY_NAME[family_name]
                if family.apply is None:
                    outputs.append((family_name, original_bytes))
                    continue
                if family_name == "screenshot_templates":
                    edited = templates.render(template_of[photo.photo_id], source)
                else:
                    edit_rng = random.Random(f"imgdup-quality-edit:{seed}:{photo.photo_id}:{family_name}")
                    edited = family.apply(source, edit_rng)
                outputs.append((family_name, _encode(edited, UPLOAD_QUALITY)))
            t = traits[photo.photo_id]
            for family_name, data in outputs:
                name = _file_name(photo.photo_id, family_name)
                (images_dir / name).write_bytes(data)
                split = splits[photo.photo_id]
                records.append(
                    SetImage(name, photo.photo_id, family_name, split, _sha(data), t.domain, t.flat)
                )
    document = {
        "format": SET_FORMAT,
        "seed": seed,
        "copies": copies,
        "test_fraction": test_fraction,
        "images": [asdict(r) for r in records],
    }
    if broad or holdout_domain:
        document.update(
            {
                "pool": pool,
                "holdout_domain": holdout_domain,
                "max_side": max_side,
                "edit_pairs_positive": broad,
                "image_hard_negatives": [
                    [*sorted(pair), kind]
                    for pair, kind in sorted(image_relations.items(), key=lambda kv: sorted(kv[0]))
                ],
            }
        )
    tmp = manifest_path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    return _load(root, seed, relations)


def _same_template_images(template_of: dict[str, str]) -> dict[frozenset[str], str]:
    """The screenshot copies of two different photos in one template: a hard negative pair."""
    by_template: dict[str, list[str]] = {}
    for group, name in sorted(template_of.items()):
        by_template.setdefault(name, []).append(_file_name(group, "screenshot_templates"))
    return {
        frozenset(pair): "same_template"
        for names in by_template.values()
        for pair in itertools.combinations(names, 2)
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(root: Path, seed: int, relations: dict[frozenset[str], str]) -> BenchSet:
    document = json.loads((root / "manifest.json").read_text())
    # A set built before domains were recorded gets them from the table (its flat flags stay unset).
    images = tuple(
        SetImage(**{"domain": domain_of(record["group"]), **record}) for record in document["images"]
    )
    return BenchSet(
        root,
        seed,
        images,
        relations,
        pool=document.get("pool", "default"),
        holdout_domain=document.get("holdout_domain"),
        image_hard_negatives={
            frozenset((a, b)): kind for a, b, kind in document.get("image_hard_negatives", [])
        },
        edit_pairs_positive=bool(document.get("edit_pairs_positive", False)),
    )
