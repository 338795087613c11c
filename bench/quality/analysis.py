"""Benchmark image files -> what the product computes for each upload (decoded pixels, SSCD vector,
the framed photo's SSCD vector, mirror-aware pHash, the stored reduced copies) plus the PDQ
baseline's dihedral hashes; cached next to the set, keyed by file content, model version and
the frame finder's code."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.quality.dataset import BenchSet, SetImage
from imgdup_core import framing, framing_config, letterbox
from imgdup_core.decode import decode_image, load_rgb, storage_jpeg
from imgdup_core.embedding import Embedder
from imgdup_core.framing import crop_region, find_photo_region
from imgdup_core.hashing import phash_pair
from imgdup_core.verify import ImageView

# The frame finder's code: its boxes, and so the analysis (framed photos' vectors) and every measurement.
FRAME_FINDER_MODULES = (framing, framing_config, letterbox)


@dataclass(frozen=True)
class Analysed:
    names: list[str]
    vectors: np.ndarray  # [N, dim] float32, unit rows (SSCD, as the product embeds uploads)
    phash: np.ndarray  # [N] uint64, plain pHash
    phash_mirrored: np.ndarray  # [N] uint64
    pdq: np.ndarray  # [N, 8, 32] uint8: PDQ hash of the 8 dihedral variants (index 0: as is)
    pixel_sha256: list[str]
    # The framed photo's vector (imgdup_core.framing), zeros where the image frames none.
    photo_vectors: np.ndarray  # [N, dim] float32
    has_photo: np.ndarray  # [N] bool

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


def _pdq_dihedral(rgb: np.ndarray) -> np.ndarray:
    import pdqhash  # type: ignore[import-untyped]

    vectors, _ = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
    return np.stack([np.packbits(np.asarray(v, dtype=np.uint8)) for v in vectors])


def analyse(
    bench: BenchSet,
    images: Sequence[SetImage],
    embedder: Embedder | None,
    *,
    vectors_from: dict[str, np.ndarray] | None = None,
    model_version: str = "",
    say: bool = True,
) -> Analysed:
    """Everything the baselines need for `images`, computed once per file content and model.
    With `vectors_from` (e.g. the vectors the stack stored), nothing is embedded here."""
    if embedder is None and vectors_from is None:
        raise ValueError("analyse needs an embedder or the vectors")
    version = embedder.version if embedder is not None else model_version
    key = hashlib.sha256(version.encode())
    for module in FRAME_FINDER_MODULES:
        key.update(Path(module.__file__ or "").read_bytes())
    for image in images:
        key.update(image.sha256.encode())
    cache = bench.root / f"analysis-{key.hexdigest()[:12]}.npz"
    names = [image.name for image in images]
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return Analysed(
            names,
            data["vectors"],
            data["phash"],
            data["phash_mirrored"],
            data["pdq"],
            [str(s) for s in data["pixel_sha256"]],
            data["photo_vectors"],
            data["has_photo"],
        )
    started = time.monotonic()
    vectors: list[np.ndarray] = []
    plain: list[int] = []
    mirrored: list[int] = []
    pdq: list[np.ndarray] = []
    shas: list[str] = []
    batch: list[np.ndarray] = []
    photos: dict[int, np.ndarray] = {}
    for number, image in enumerate(images, start=1):
        decoded = decode_image(bench.path(image).read_bytes())
        region = find_photo_region(decoded.rgb)
        if region is not None:
            photos[number - 1] = crop_region(decoded.rgb, region)
        hashes = phash_pair(decoded.rgb)
        plain.append(hashes[0] & (2**64 - 1))
        mirrored.append(hashes[1] & (2**64 - 1))
        pdq.append(_pdq_dihedral(decoded.rgb))
        shas.append(decoded.pixel_sha256)
        batch.append(decoded.rgb)
        if len(batch) == 16 or number == len(images):
            if vectors_from is not None:
                names_now = [im.name for im in images[number - len(batch) : number]]
                vectors.append(np.stack([vectors_from[name] for name in names_now]))
            elif embedder is not None:
                vectors.append(embedder.embed(batch))
            batch = []
            if say:
                print(f"\r  analysing {number}/{len(images)} images", end="", flush=True)
    if say:
        print(f" ({time.monotonic() - started:.0f}s)")
    dim = vectors[0].shape[1] if vectors else 512
    photo_vectors = np.zeros((len(images), dim), np.float32)
    has_photo = np.zeros(len(images), bool)
    if photos:
        if embedder is None:
            embedder = _default_embedder(version)
        order = sorted(photos)
        photo_vectors[order] = embedder.embed([photos[i] for i in order])
        has_photo[order] = True
    result = Analysed(
        names,
        np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, 512), np.float32),
        np.array(plain, dtype=np.uint64),
        np.array(mirrored, dtype=np.uint64),
        np.stack(pdq) if pdq else np.zeros((0, 8, 32), np.uint8),
        shas,
        photo_vectors,
        has_photo,
    )
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(
        tmp,
        vectors=result.vectors,
        phash=result.phash,
        phash_mirrored=result.phash_mirrored,
        pdq=result.pdq,
        pixel_sha256=np.array(shas),
        photo_vectors=photo_vectors,
        has_photo=has_photo,
    )
    tmp.replace(cache)
    return result


def _default_embedder(version: str) -> Embedder:
    """The embedder whose vectors the stack stored (sscd or sscd_distilled, by model tag)."""
    from imgdup_core.embedding import build_embedder

    kind = "sscd_distilled" if version.startswith("sscd-distilled-") else "sscd"
    embedder = build_embedder(kind)
    if embedder.version != version:
        raise RuntimeError(f"stack vectors are {version!r} but the benchmark embeds {embedder.version!r}")
    return embedder


def stored_copy(path: Path) -> np.ndarray:
    """The reduced copy the pipeline keeps and verifies (decode, cap, JPEG <= 512 px, decode)."""
    return load_rgb(storage_jpeg(decode_image(path.read_bytes()).rgb))


def stored_view(path: Path, phash: tuple[int, int]) -> ImageView:
    """What the verifier loads for an image: the stored copy and, for a framed photo, the stored
    copy of the photo inside the frame and its box as shares of the picture (as
    imgdup.analysis.analyse stores them and imgdup.steps.verify passes them)."""
    rgb = decode_image(path.read_bytes()).rgb
    region = find_photo_region(rgb)
    if region is None:
        return ImageView(load_rgb(storage_jpeg(rgb)), phash, box=None)
    photo = load_rgb(storage_jpeg(crop_region(rgb, region)))
    box = region.shares(rgb.shape[1], rgb.shape[0])
    return ImageView(load_rgb(storage_jpeg(rgb)), phash, photo, box=box)


def signed_phash(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value
