"""The training split -> the fused verifier's calibrated model, written to imgdup_core/fusion_weights.py.

The verifier only ever sees ANN candidates, so it is calibrated on what an exact top-K search
over the training split hands it: every original-copy and copy-copy pair among the candidates
(positives), every hard negative among them, and a seeded sample of the other negatives
(weighted back to their true share). Each pair's evidence is measured once with
`imgdup_core.verify.measure_images` and cached; the fit is an L2-regularised logistic regression
over `fusion_features`, and the threshold is the lowest probability whose training precision
reaches the target."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.quality.analysis import FRAME_FINDER_MODULES, Analysed, signed_phash, stored_view
from bench.quality.dataset import BenchSet, SetImage
from imgdup_core import (
    decode,
    evidence,
    fusion,
    geometry,
    gray,
    hashing,
    parallax,
    rule_config,
    sift,
    similarity,
    slot,
    ssim,
    verifier_config,
    verify,
)
from imgdup_core.evidence import Evidence
from imgdup_core.fitting import (
    FALSE_POSITIVE_COST,
    L2,
    choose_threshold,
    choose_threshold_by_cost,
    design_matrix,
    fit_logistic,
)
from imgdup_core.hashing import PHASH_CANDIDATE_DISTANCE
from imgdup_core.verify import DEFAULT_VERIFIER, ImageView, VerifierConfig, measure_images

FUSION_WEIGHTS_PATH = Path(__file__).resolve().parents[2] / "imgdup_core" / "fusion_weights.py"
# Every module the measured evidence depends on (the verification cascade, the frame finder,
# decoding and hashing of the stored copies): cached evidence is stale when any of them changes.
# The committed weights (fusion_weights.py) are not: a calibration must not discard the
# evidence it is fitted on.
MEASURING_MODULES = tuple(
    sorted(
        (
            decode,
            evidence,
            *FRAME_FINDER_MODULES,
            fusion,
            geometry,
            gray,
            hashing,
            parallax,
            rule_config,
            sift,
            similarity,
            slot,
            ssim,
            verifier_config,
            verify,
        ),
        key=lambda module: module.__name__,  # the cache key reads them in this order
    )
)
# The precision the threshold is chosen for on the training candidates.
TRAIN_PRECISION = 0.995
# The candidate cut-off may drop at most this share of the training duplicates the verifier
# confirms.
CUT_OFF_MAX_LOST = 0.005
# Adjacent frames of a static-camera video (RubberWhale, the basketball pair: neither duplicates nor
# negatives, bench.quality.dataset.NEUTRAL_KINDS) and the other frames of one sequence (chessboards,
# a street) are left out of the fit and the threshold (the benchmark still scores the latter as hard
# negatives and reports the former apart).
IGNORED_KINDS = ("frames", "adjacent_frames")
# The fusion's inputs. The inlier count and ratio are measured and kept as evidence but not
# weighed: fitted freely they come out negative (hundreds of inliers are the signature of a
# shared screenshot frame on the training set), which would make more geometric agreement count
# against a copy; without them training recall at the same precision is within 0.5 point, and
# every weight left moves the probability the intuitive way.
FEATURES = ("cosine_strong", "phash_close", "ssim", "ssim_strong", "no_alignment", "overlap", "mismatch")
# fused-v4 (issue 11): also very strong global evidence, alone and where nothing aligned (a flat
# photo). Measured and left out, as log_inliers above: inliers_many (fitted -2.4, the
# screenshot-frame signature again) and mismatch_phash (fitted -0.1: no help on this set).
FEATURES_V4 = (*FEATURES, "cosine_very_strong", "unaligned_global")
# fused-v5 (issue 11): fused-v4's inputs on evidence measured with the shared-page rule
# (imgdup_core.slot) and with the pHash channel's candidates. Offered again and left out: with
# the screenshot-frame pairs turned into mismatches, inliers_many still fitted -4.0 and
# mismatch_phash -1.1 (train recall 92.47 % with them, 92.31 % without, same precision).
FEATURES_V5 = FEATURES_V4
# fused-v6 (issue 11): fused-v5's inputs; only which comparison of two framing pictures counts changed.
FEATURES_V6 = FEATURES_V5
# fused-v7 (issue 11): fused-v6's inputs and measurements; only the threshold rule changed (the
# cost rule, THRESHOLD_RULES): on the broad pool's leave-one-domain-out folds the precision rule's
# target was unreachable in five folds (a cut of 0.5) and just reachable in three (0.955-0.982).
FEATURES_V7 = FEATURES_V6
# fused-v8 and fused-v9 (issue 11) run another version's model unchanged (fused-v6's, fused-v3's): a
# calibration of their own fits that model's inputs on their measurements, into a file of their own,
# which counts once the version's fusion is model_from(it) (imgdup_core/fusion.py), under a new
# version name if its verdicts change.
FEATURES_V8 = FEATURES_V6
FEATURES_V9 = FEATURES
# fused-v10 (issue 11): fused-v8's measurements and inputs, fitted on both pools' train splits
# (`calibrate --pool broad --extra-train default`).
FEATURES_V10 = FEATURES_V8
# fused-v12 (issue 11): fused-v9's measurements with two frame rules more, fused-v3's model and inputs.
FEATURES_V12 = FEATURES_V9
# fused-v14 (issue 11): fused-v12's measurements, inputs and model, with the overlay rule
# (imgdup_core.verifier_config.OverlayRule) deciding beside the fusion.
FEATURES_V14 = FEATURES_V12
# fused-v15 (issue 11): fused-v14's, with the aligned-copy rule (imgdup_core.verifier_config.CopyRule) too.
FEATURES_V15 = FEATURES_V14
# fused-v16 (issue 11): fused-v15's, with the unaligned rule (imgdup_core.verifier_config.UnalignedRule) too.
FEATURES_V16 = FEATURES_V15
# fused-v17 (issue 11): fused-v16's, with a flat picture's second alignment (flat_retry_keypoints).
FEATURES_V17 = FEATURES_V16
# fused-v18 (issue 11): fused-v17's, its second alignment gated by the cosine and on a half-size copy.
FEATURES_V18 = FEATURES_V17
# fused-v19 (issue 11): fused-v18's, its second alignment only at a cosine >= 0.6.
FEATURES_V19 = FEATURES_V18
# fused-v20 (issue 11): fused-v16's, with a page's slot beside both framed photos' boxes deciding.
FEATURES_V20 = FEATURES_V16
# fused-v21 (issue 11): fused-v20's, its slot beside the boxes around all the disagreement.
FEATURES_V21 = FEATURES_V20
# fused-v22 (issue 11): fused-v21's, with fused-v18's second alignment of flat pictures.
FEATURES_V22 = FEATURES_V21
# fused-v23 (issue 11): fused-v22's, with the frame finder's box's band as a page's slot too.
FEATURES_V23 = FEATURES_V22
# fused-v24 (issue 11): fused-v23's, with the parallax rule (imgdup_core.rule_config.ParallaxRule) deciding.
FEATURES_V24 = FEATURES_V23
# fused-v25 (issue 11): fused-v24's, a slot holding the framed photos only when each box lies 3/4 in it.
FEATURES_V25 = FEATURES_V24
# fused-v26 (issue 11): fused-v25's, the aligned-copy rule from 30 inliers over 0.9 of the smaller picture.
FEATURES_V26 = FEATURES_V25
# What `calibrate --verifier V` fits, and where it writes the model; also the versions whose evidence
# `export-evidence` and `lodo` measure (their --verifier choices).
MODELS = {
    "fused-v3": (FEATURES, FUSION_WEIGHTS_PATH),
    "fused-v4": (FEATURES_V4, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v4.py")),
    "fused-v5": (FEATURES_V5, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v5.py")),
    "fused-v6": (FEATURES_V6, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v6.py")),
    "fused-v7": (FEATURES_V7, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v7.py")),
    "fused-v8": (FEATURES_V8, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v8.py")),
    "fused-v9": (FEATURES_V9, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v9.py")),
    "fused-v10": (FEATURES_V10, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v10.py")),
    "fused-v12": (FEATURES_V12, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v12.py")),
    "fused-v14": (FEATURES_V14, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v14.py")),
    "fused-v15": (FEATURES_V15, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v15.py")),
    "fused-v16": (FEATURES_V16, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v16.py")),
    "fused-v17": (FEATURES_V17, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v17.py")),
    "fused-v18": (FEATURES_V18, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v18.py")),
    "fused-v19": (FEATURES_V19, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v19.py")),
    "fused-v20": (FEATURES_V20, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v20.py")),
    "fused-v21": (FEATURES_V21, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v21.py")),
    "fused-v22": (FEATURES_V22, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v22.py")),
    "fused-v23": (FEATURES_V23, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v23.py")),
    "fused-v24": (FEATURES_V24, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v24.py")),
    "fused-v25": (FEATURES_V25, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v25.py")),
    "fused-v26": (FEATURES_V26, FUSION_WEIGHTS_PATH.with_name("fusion_weights_v26.py")),
}
# How each model's threshold is chosen: "precision", the lowest cut whose weighted training
# precision reaches TRAIN_PRECISION (0.5 where none does: imgdup_core.fitting.choose_threshold);
# "cost", the cut with the least missed duplicates + FALSE_POSITIVE_COST x false positives
# (imgdup_core.fitting.choose_threshold_by_cost).
THRESHOLD_RULE_CHOICES = ("precision", "cost")
THRESHOLD_RULES = {"fused-v7": "cost"}


def threshold_rule(verifier: str) -> str:
    """The threshold rule `verifier`'s model is fitted with (precision unless listed)."""
    return THRESHOLD_RULES.get(verifier, "precision")


# Issue 14: models fitted on another embedder's cosines, (verifier settings, embedder) -> the
# version and file; fused-v3-distilled is fused-v3's features and settings on sscd_distilled's.
EMBEDDER_MODELS = {
    ("fused-v3", "sscd_distilled"): (
        "fused-v3-distilled",
        FUSION_WEIGHTS_PATH.with_name("fusion_weights_v3_distilled.py"),
    ),
}


def model_target(verifier: str, embedder: str) -> tuple[str, tuple[str, ...], Path]:
    """What `calibrate --verifier V --embedder E` writes: the model's version, its features and
    its weights module; ValueError for a pair that has no model of its own."""
    features, path = MODELS[verifier]
    if embedder == "sscd":
        return verifier, tuple(features), path
    if (verifier, embedder) not in EMBEDDER_MODELS:
        known = ", ".join(f"--verifier {v} --embedder {e}" for v, e in EMBEDDER_MODELS)
        raise ValueError(f"no model is fitted for {verifier} on {embedder} (known: {known})")
    version, path = EMBEDDER_MODELS[(verifier, embedder)]
    return version, tuple(features), path


def shipped_cut_off(config: VerifierConfig) -> float:
    """The ANN cut-off fitted with the model `config` runs (not necessarily a file of its own: fused-v9
    and fused-v12 run fused-v3's); ValueError for a model that ships none."""
    cut_off = config.fusion.candidate_min_cosine
    if cut_off is None:
        raise ValueError(f"{config.version}'s model ships no ANN cut-off")
    return cut_off


def default_measuring(embedder: str) -> str:
    """The settings (a MODELS version) that measure the evidence of what `embedder` runs by default
    (imgdup_core.verifier_config.DEFAULT_VERIFIER_FOR_EMBEDDER): `export-evidence`'s default."""
    running = verifier_config.DEFAULT_VERIFIER_FOR_EMBEDDER[embedder]
    for verifier in MODELS:
        try:
            if model_target(verifier, embedder)[0] == running:
                return verifier
        except ValueError:
            continue
    raise ValueError(f"{embedder}'s default verifier {running} has no calibrated model to export for")


@dataclass(frozen=True)
class Candidate:
    a: str  # image names, a < b
    b: str
    cosine: float
    label: int  # 1 duplicate (same source photo), 0 not
    kind: str  # positive: edit family (or "copy-copy"); negative: hard kind or "other"
    weight: float  # 1 / sampling rate
    channel: str = "ann"  # what proposed it: the ANN search or the pHash channel (only)


def ann_candidates(
    vectors: np.ndarray,
    top_k: int,
    min_score: float,
    photo_vectors: np.ndarray | None = None,
    has_photo: np.ndarray | None = None,
) -> dict[tuple[int, int], float]:
    """What the pipeline's exact search proposes: each stored vector's top_k neighbours (cosine
    >= min_score) among the other images' vectors, as unordered image index pairs with the best
    cosine. An image that frames a photo has its photo's vector stored and searched too.
    Posting order is ignored: a superset of the stack's."""
    owners = np.arange(len(vectors))
    points = vectors
    if photo_vectors is not None and has_photo is not None and has_photo.any():
        owners = np.concatenate([owners, np.nonzero(has_photo)[0]])
        points = np.concatenate([vectors, photo_vectors[has_photo]])
    sims = points @ points.T
    sims[owners[:, None] == owners[None, :]] = -np.inf  # an image never pairs with itself
    k = min(top_k, max(0, len(points) - 1))
    pairs: dict[tuple[int, int], float] = {}
    if k == 0:
        return pairs
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    for p, row in enumerate(top):
        for q in row:
            score = float(sims[p, q])
            if score >= min_score:
                i, j = int(owners[p]), int(owners[q])
                key = (min(i, j), max(i, j))
                pairs[key] = max(score, pairs.get(key, -1.0))
    return pairs


def label_pair(bench: BenchSet, x: SetImage, y: SetImage) -> tuple[int, str]:
    """(1, the copy's family or "copy-copy") for two images of one photo; (0, the hard kind or
    "other") otherwise. Hard kinds come per photo pair, or per image pair where only the two
    images are related (two different photos' screenshots in one template: `same_template`),
    so a hard negative is kept whole and never sampled away with the easy ones."""
    if x.group == y.group:
        if x.family == "original" or y.family == "original":
            return 1, y.family if x.family == "original" else x.family
        return 1, "copy-copy"
    kind = bench.hard_kind(x.group, y.group) or bench.image_hard_negatives.get(frozenset((x.name, y.name)))
    return 0, kind or "other"


def training_candidates(
    bench: BenchSet,
    images: Sequence[SetImage],
    analysed: Analysed,
    *,
    top_k: int,
    min_score: float,
    negatives: int,
    seed: int,
    phash_channel: bool = False,
) -> list[Candidate]:
    pairs = ann_candidates(analysed.vectors, top_k, min_score, analysed.photo_vectors, analysed.has_photo)
    channel = {pair: "ann" for pair in pairs}
    if phash_channel:
        for pair in phash_candidates(analysed.phash, analysed.phash_mirrored, PHASH_CANDIDATE_DISTANCE):
            if pair not in pairs:
                pairs[pair] = float(analysed.vectors[pair[0]] @ analysed.vectors[pair[1]])
                channel[pair] = "phash"
    keep: list[Candidate] = []
    others: list[Candidate] = []
    for (i, j), cosine in sorted(pairs.items()):
        x, y = images[i], images[j]
        label, kind = label_pair(bench, x, y)
        a, b = sorted((x.name, y.name))
        candidate = Candidate(a, b, cosine, label, kind, 1.0, channel[(i, j)])
        (others if kind == "other" else keep).append(candidate)
    rng = random.Random(f"imgdup-quality-calibration:{seed}")
    sample = rng.sample(others, min(negatives, len(others)))
    weight = len(others) / max(1, len(sample))
    keep += [Candidate(c.a, c.b, c.cosine, c.label, c.kind, weight, c.channel) for c in sample]
    return keep


def phash_candidates(phash: np.ndarray, mirrored: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """What the pHash candidate channel proposes (imgdup.steps.index): unordered image index
    pairs whose plain pHashes, or one's plain and the other's mirrored, are within max_distance."""
    plain = phash.astype(np.uint64)
    found: set[tuple[int, int]] = set()
    for other in (plain, mirrored.astype(np.uint64)):
        for i in range(len(plain)):
            distance = np.bitwise_count(plain[i] ^ other)
            for j in np.nonzero(distance <= max_distance)[0]:
                if int(j) != i:
                    found.add((min(i, int(j)), max(i, int(j))))
    return sorted(found)


# --- measuring ---------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(root: str, hashes: dict[str, tuple[int, int]], config: VerifierConfig) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER.update(root=Path(root), hashes=hashes, config=config, stored={})


def _stored(name: str) -> ImageView:
    stored: dict[str, ImageView] = _WORKER["stored"]
    if name not in stored:
        if len(stored) > 64:
            stored.clear()
        stored[name] = stored_view(_WORKER["root"] / "images" / name, _WORKER["hashes"][name])
    return stored[name]


def _measure(candidate: Candidate) -> tuple[Candidate, Evidence, float]:
    a, b = _stored(candidate.a), _stored(candidate.b)
    started = time.process_time()
    evidence = measure_images(a, b, cosine=candidate.cosine, config=_WORKER["config"])
    return candidate, evidence, time.process_time() - started


def measurement_key(config: VerifierConfig) -> str:
    """Changes whenever the measuring code or its settings change (not the fusion)."""
    measuring = "".join(Path(module.__file__ or "").read_text() for module in MEASURING_MODULES)
    settings = {k: v for k, v in asdict(config).items() if k not in ("version", "fusion")}
    digest = hashlib.sha256(measuring.encode() + json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def evidence_cache_name(config: VerifierConfig, embedder: str = "sscd") -> str:
    suffix = "" if embedder == "sscd" else f"-{embedder}"
    return f"evidence-{measurement_key(config)}{suffix}.jsonl"


def measure_candidates(
    bench: BenchSet,
    images: Sequence[SetImage],
    analysed: Analysed,
    candidates: Sequence[Candidate],
    *,
    config: VerifierConfig = DEFAULT_VERIFIER,
    processes: int = 2,
    say: bool = True,
    embedder: str = "sscd",
) -> list[tuple[Candidate, Evidence, float]]:
    """Evidence for every candidate, cached per pair, measuring code and embedder (the evidence
    holds the pair's cosine; the full SSCD's cache keeps its old name)."""
    cache_path = bench.root / evidence_cache_name(config, embedder)
    cached: dict[tuple[str, str], tuple[Evidence, float]] = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            row = json.loads(line)
            cached[(row["a"], row["b"])] = (Evidence(**row["evidence"]), row["cpu_s"])
    todo = [c for c in candidates if (c.a, c.b) not in cached]
    index = analysed.index()
    hashes = {
        name: (signed_phash(int(analysed.phash[k])), signed_phash(int(analysed.phash_mirrored[k])))
        for name, k in index.items()
    }
    if todo:
        started = time.monotonic()
        # spawn, not fork: the parent has run ONNX Runtime and OpenCV thread pools, and forked
        # children can hang on a lock one of their threads held.
        context = multiprocessing.get_context("spawn")
        with (
            context.Pool(processes, _init_worker, (str(bench.root), hashes, config)) as pool,
            cache_path.open("a") as out,
        ):
            for number, (candidate, evidence, cpu) in enumerate(
                pool.imap(_measure, todo, chunksize=8), start=1
            ):
                cached[(candidate.a, candidate.b)] = (evidence, cpu)
                row = {"a": candidate.a, "b": candidate.b, "evidence": asdict(evidence), "cpu_s": cpu}
                out.write(json.dumps(row) + "\n")
                if say and (number % 50 == 0 or number == len(todo)):
                    elapsed = time.monotonic() - started
                    print(f"\r  measuring pairs {number}/{len(todo)} ({elapsed:.0f}s)", end="", flush=True)
        if say:
            print()
    return [(c, *cached[(c.a, c.b)]) for c in candidates]


# --- fitting -----------------------------------------------------------------------------------


def candidate_cut_off(
    verified_cosines: np.ndarray, floor: float, max_lost: float = CUT_OFF_MAX_LOST
) -> tuple[float, float]:
    """The highest ANN cosine cut-off (on a 0.05 grid from `floor`) below which at most
    `max_lost` of the training duplicates the verifier confirms would fall; and that share.
    Every candidate costs a geometric check (~60-100 ms of CPU), so this bounds the work."""
    best, best_lost = floor, 0.0
    total = max(1, len(verified_cosines))
    for step in range(0, 13):
        cut = round(floor + 0.05 * step, 2)
        lost = float((verified_cosines < cut).sum()) / total
        if lost > max_lost:
            break
        best, best_lost = cut, lost
    return best, best_lost


def write_model(
    features: Sequence[str],
    weights: np.ndarray,
    bias: float,
    threshold: float,
    cut_off: float,
    info: dict[str, Any],
    *,
    path: Path = FUSION_WEIGHTS_PATH,
    embedder: str = "sscd",
    embedding_model: str = "sscd-disc-mixup-int8",
) -> None:
    """The fitted model as a weights module (imgdup_core.fusion.model_from reads it back)."""
    lines = [
        '"""The verifier\'s calibrated decision (imgdup_core.fusion.FusionModel).',
        "",
        "Generated by `python -m bench.quality calibrate` from the quality benchmark's TRAINING",
        "split only; do not edit by hand. Changing any number here changes verdicts: give the verifier",
        'a new version (imgdup_core/verifier_config.py, _DEFAULT_VERSION) when you regenerate it."""',
        "",
        # One name a line, as the weights: a long feature list stays within the line length.
        "FEATURES = (",
        *[f"    {json.dumps(name)}," for name in features],
        ")",
        "WEIGHTS = (",
        *[f"    {float(v)!r},  # {name}" for name, v in zip(features, weights, strict=True)],
        ")",
        f"BIAS = {float(bias)!r}",
        f"THRESHOLD = {float(threshold)!r}",
        "# The embedder the evidence was measured with (imgdup.settings IMGDUP_EMBEDDER) and its model.",
        f"EMBEDDER = {json.dumps(embedder)}",
        f"EMBEDDING_MODEL = {json.dumps(embedding_model)}",
        "# ANN candidates below this cosine are not verified (imgdup.settings ann_min_score).",
        f"CANDIDATE_MIN_COSINE = {float(cut_off)!r}",
        "",
        "# Provenance of the fit.",
        f"CALIBRATION = {json.dumps(info, indent=4, sort_keys=True)}",
        "",
    ]
    text = (
        "\n".join(lines).replace(": true", ": True").replace(": false", ": False").replace(": null", ": None")
    )
    path.write_text(text)


def calibrate(
    bench: BenchSet,
    images: Sequence[SetImage],
    analysed: Analysed,
    *,
    top_k: int,
    min_score: float,
    negatives: int,
    features: Sequence[str] = FEATURES,
    target: float = TRAIN_PRECISION,
    write: bool = True,
    say: bool = True,
    config: VerifierConfig = DEFAULT_VERIFIER,
    path: Path = FUSION_WEIGHTS_PATH,
    embedder: str = "sscd",
    embedding_model: str = "sscd-disc-mixup-int8",
    version: str | None = None,
    rule: str = "precision",
    extra: Sequence[tuple[Candidate, Evidence, float]] = (),
    extra_name: str | None = None,
) -> dict[str, Any]:
    """Fit `features` on the training candidates `analysed` (embedded with `embedder`) proposes,
    measured with `config`'s settings, and on `extra` (another pool's training pairs measured with
    the same settings, named `extra_name`), the threshold by `rule`; the model is written as
    `version` (default config's)."""
    candidates = training_candidates(
        bench,
        images,
        analysed,
        top_k=top_k,
        min_score=min_score,
        negatives=negatives,
        seed=bench.seed,
        phash_channel=config.phash_candidates,
    )
    if say:
        positives = sum(c.label for c in candidates)
        print(f"  training candidates: {positives} duplicates, {len(candidates) - positives} others")
    measured = measure_candidates(
        bench, images, analysed, candidates, config=config, say=say, embedder=embedder
    )
    own_pairs = sum(1 for c, _, _ in measured if c.kind not in IGNORED_KINDS)
    extra_pairs = sum(1 for c, _, _ in extra if c.kind not in IGNORED_KINDS)
    if say and extra:
        print(f"  extra training pairs ({extra_name}): {extra_pairs}")
    fitted = fit_measured([*measured, *extra], features, target, min_score, rule=rule)
    weights, bias, threshold = fitted["weights_array"], fitted["bias"], fitted["threshold"]
    cut_off, lost = fitted["candidate_min_cosine"], fitted["cut_off_lost"]
    measured = fitted["measured"]
    info = {
        "set": bench.root.name,
        "seed": bench.seed,
        "split": "train",
        "verifier": version or config.version,
        "embedder": embedder,
        "ann_top_k": top_k,
        "ann_min_score": min_score,
        "pairs": len(measured),
        **(
            {
                "pool": bench.pool,
                "pool_pairs": own_pairs,
                "extra_training": extra_name,
                "extra_training_pairs": extra_pairs,
            }
            if extra
            else {}
        ),
        "phash_channel_pairs": fitted["phash_channel_pairs"],
        "duplicates": fitted["duplicates"],
        "sampled_other_negatives": int(sum(1 for c in candidates if c.kind == "other")),
        "ignored_kinds": list(IGNORED_KINDS),
        "l2": L2,
        "target_precision": target,
        "threshold_rule": rule,
        **({"false_positive_cost": FALSE_POSITIVE_COST} if rule == "cost" else {}),
        "train_precision": fitted["train_precision"],
        "train_recall": fitted["train_recall"],
        "candidate_cut_off_lost_share": round(lost, 6),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if write:
        write_model(
            features,
            weights,
            bias,
            threshold,
            cut_off,
            info,
            path=path,
            embedder=embedder,
            embedding_model=embedding_model,
        )
    cpu = [t for _, _, t in measured]
    return {
        **info,
        "candidate_min_cosine": cut_off,
        "features": list(features),
        "weights": [float(v) for v in weights],
        "bias": bias,
        "threshold": threshold,
        "cpu_ms_per_pair_median": 1000 * float(np.median(cpu)) if cpu else math.nan,
    }


def fit_measured(
    measured: Sequence[tuple[Candidate, Evidence, float]],
    features: Sequence[str],
    target: float,
    min_score: float,
    rule: str = "precision",
) -> dict[str, Any]:
    """Measured candidates -> the fitted model (weights, bias, threshold by `rule`, ANN cut-off)
    and its training figures; pairs of IGNORED_KINDS are left out (also of the returned `measured`)."""
    if rule not in THRESHOLD_RULE_CHOICES:
        raise ValueError(f"unknown threshold rule {rule!r} (known: {', '.join(THRESHOLD_RULE_CHOICES)})")
    measured = [m for m in measured if m[0].kind not in IGNORED_KINDS]
    x = design_matrix([e for _, e, _ in measured], features)
    y = np.array([c.label for c, _, _ in measured], dtype=np.float64)
    w = np.array([c.weight for c, _, _ in measured], dtype=np.float64)
    # Identical stored pixels are decided by rule (verdict exact), not by the fusion.
    exact = np.array([e.exact for _, e, _ in measured])
    # Balance the classes so the probability scale is not dominated by the many negatives;
    # the threshold then restores the precision target on the true (weighted) mix.
    fit_w = w * np.where(y == 1, w[y == 0].sum() / max(w[y == 1].sum(), 1e-9), 1.0)
    weights, bias = fit_logistic(x[~exact], y[~exact], fit_w[~exact])
    logits = np.clip(x @ weights + bias, -60, 60)
    p = np.where(exact, 1.0, 1.0 / (1.0 + np.exp(-logits)))
    threshold = (
        choose_threshold(p, y, w, target) if rule == "precision" else choose_threshold_by_cost(p, y, w)
    )
    predicted = p >= threshold
    tp = float((w * y * predicted).sum())
    fp = float((w * (1 - y) * predicted).sum())
    cosines = np.array([c.cosine for c, _, _ in measured])
    # The ANN cut-off is chosen on what the ANN search proposed: the pHash channel's pairs
    # are proposed whatever their cosine.
    by_ann = np.array([c.channel == "ann" for c, _, _ in measured], dtype=bool).reshape(len(measured))
    cut_off, lost = candidate_cut_off(cosines[(y == 1) & predicted & by_ann], min_score)
    return {
        "measured": measured,
        "weights_array": weights,
        "bias": bias,
        "threshold": threshold,
        "candidate_min_cosine": cut_off,
        "cut_off_lost": lost,
        "duplicates": int(y.sum()),
        "phash_channel_pairs": int((~by_ann).sum()),
        "train_precision": round(tp / max(tp + fp, 1e-9), 6),
        "train_recall": round(float((y * predicted).sum() / max(y.sum(), 1)), 6),
    }
