"""`python -m bench.quality [--quick]`: the detection-quality benchmark (see bench/quality/README.md).

python -m bench.quality            # the set, the stack on the test split, baselines, report
python -m bench.quality --quick    # a quarter of the test photos (a few minutes)
python -m bench.quality calibrate  # re-fit the verifier on the TRAIN split (imgdup_core/fusion_weights.py)
python -m bench.quality calibrate --pool broad --extra-train default --verifier fused-v10  # both pools' TRAIN
python -m bench.quality photos     # only fetch the photos into the cache
python -m bench.quality export-evidence  # the TRAIN and TEST candidates' evidence, for imgdup retrain
python -m bench.quality lodo --pool broad  # leave one domain out (offline emulation)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# AugLy's and albumentations' import-time update checks stay off; everything here is offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from bench.common import machine
from bench.quality import report
from bench.quality.analysis import Analysed, analyse, signed_phash, stored_view
from bench.quality.baselines import all_baselines, seed_rules_baseline
from bench.quality.dataset import BenchSet, SetImage, build_set
from bench.quality.edits import BENIGN, HARD
from bench.quality.metrics import (
    PRECISION_TARGETS,
    cluster_quality,
    curve_summary,
    operating_point,
    pair_labels,
    pair_scores,
)
from bench.quality.photos import POOLS, ensure_photos, iter_sources
from imgdup_core.decode import load_rgb

DEFAULT_TOP_K = 10
# Calibration sees every ANN candidate down to this cosine (heavy watermarks and tight crops
# fall to 0.15-0.3 with SSCD yet still rank among an image's top neighbours) and chooses the
# product's cut-off from them (fusion_weights.CANDIDATE_MIN_COSINE, imgdup.settings).
CALIBRATION_MIN_SCORE = 0.2


def _order(images: Sequence[SetImage], seed: int) -> list[SetImage]:
    """Posting order: every original first (shuffled), then every copy (shuffled)."""
    rng = random.Random(f"imgdup-quality-order:{seed}")
    originals = [i for i in images if i.family == "original"]
    copies = [i for i in images if i.family != "original"]
    rng.shuffle(originals)
    rng.shuffle(copies)
    return originals + copies


def _quick(images: Sequence[SetImage], seed: int, share: float = 0.25) -> list[SetImage]:
    def keep(group: str) -> bool:
        digest = hashlib.sha256(f"imgdup-quality-quick:{seed}:{group}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < share

    return [i for i in images if keep(i.group)]


def stack_verifier(embedder: str) -> str:
    """The verifier the stack's workers will run: IMGDUP_VERIFIER_VERSION when set (the stack
    inherits this environment), else the embedder's own default (imgdup.verifiers)."""
    from imgdup.settings import Settings
    from imgdup.verifiers import chosen_version

    return chosen_version(Settings(embedder=embedder))


def _verify_timing(
    bench: BenchSet, analysed: Analysed, pairs: Sequence[tuple[str, str]], limit: int, version: str
) -> dict[str, Any]:
    """Time of verify_images on candidate pairs as the verifier agent runs it: each image's
    stored copies as JPEG bytes with the SIFT features extracted at indexing (timed apart, once
    per image), decoded only for pairs that align."""
    from imgdup_core import verify
    from imgdup_core.decode import storage_jpeg
    from imgdup_core.verifier_config import VERIFIERS
    from streams.runtime import single_threaded_kernels

    config = VERIFIERS[version]  # the verifier the stack ran, with its SIFT settings

    single_threaded_kernels()  # as in the worker process
    index = analysed.index()
    chosen = sorted(pairs)[:: max(1, len(pairs) // limit)][:limit]
    stored: dict[str, verify.ImageView] = {}
    timings: list[float] = []
    cpu: list[float] = []
    extraction: list[float] = []
    for a, b in chosen:
        for name in (a, b):
            if name not in stored:
                k = index[name]
                hashes = (signed_phash(int(analysed.phash[k])), signed_phash(int(analysed.phash_mirrored[k])))
                view = stored_view(bench.root / "images" / name, hashes)
                jpeg = storage_jpeg(view.pixels())
                photo_jpeg = storage_jpeg(view.pixels(True)) if view.frames_photo else None
                started = time.process_time()
                stored[name] = verify.ImageView(
                    None,
                    hashes,
                    jpeg=jpeg,
                    photo_jpeg=photo_jpeg,
                    sift=verify.extract_sift(load_rgb(jpeg), config),
                    photo_sift=verify.extract_sift(load_rgb(photo_jpeg), config) if photo_jpeg else None,
                    box=view.box,  # stored at indexing, as the verifier step passes it
                )
                extraction.append(1000 * (time.process_time() - started))
        cosine = float(analysed.vectors[index[a]] @ analysed.vectors[index[b]])
        wall, started = time.perf_counter(), time.process_time()
        verify.verify_images(stored[a], stored[b], cosine=cosine, config=config)
        timings.append(1000 * (time.perf_counter() - wall))
        cpu.append(1000 * (time.process_time() - started))
    if not timings:
        return {}
    return {
        "verify_pairs": len(timings),
        "verify_ms_median": statistics.median(timings),
        "verify_ms_p95": float(np.percentile(timings, 95)),
        "verify_cpu_ms_median": statistics.median(cpu),
        "sift_cpu_ms_per_image_median": statistics.median(extraction),
    }


def _targets(methods: list[dict[str, Any]]) -> list[str]:
    main = methods[0]
    curves = main["curves"][f"{PRECISION_TARGETS[0]:g}"]
    benign = curves["benign"]["recall"]
    hard = curves["hard"]["recall"]
    op = main["operating_point"]
    lines = [
        f"benign edits: recall {100 * benign:.1f} % at precision >= 99.5 % (target >= 99) -> "
        f"{'met' if benign >= 0.99 else 'missed'}; at the shipped operating point recall "
        f"{100 * op['benign_recall']:.1f} %, precision {100 * op['precision']:.2f} %",
        f"hard edits: recall {100 * hard:.1f} % at precision >= 99.5 % (target >= 90) -> "
        f"{'met' if hard >= 0.90 else 'missed'}; at the shipped operating point "
        f"{100 * op['hard_recall']:.1f} %",
    ]
    baseline_hard = max(
        (m["curves"][f"{PRECISION_TARGETS[0]:g}"]["hard"]["recall"], m["name"])
        for m in methods
        if not m["name"].startswith("imgdup")
    )
    gain = 100 * (hard - baseline_hard[0])
    lines.append(
        f"hard edits vs the best baseline at precision >= 99.5 %: {gain:+.1f} points over "
        f"{baseline_hard[1]} ({100 * baseline_hard[0]:.1f} %) (target >= +20) -> "
        f"{'met' if gain >= 20 else 'missed'}"
    )
    fpr = op["hard_negatives"]["all"]["fpr"]
    worst = max(
        (v["fpr"], k)
        for k, v in op["hard_negatives"].items()
        if k != "all" and v["pairs"] and v["fpr"] == v["fpr"]
    )
    lines.append(
        f"hard negatives: false-positive rate {100 * fpr:.2f} % (target <= 0.5) -> "
        f"{'met' if fpr <= 0.005 else 'missed'}"
        f"; worst kind {worst[1]} {100 * worst[0]:.2f} %"
    )
    weak = sorted(
        (stats["recall"], name)
        for name, stats in op["families"].items()
        if name != "original" and stats["pairs"] and stats["recall"] < 0.9
    )
    if weak:
        lines.append(
            "weak edits at the operating point: " + ", ".join(f"{name} {100 * r:.0f} %" for r, name in weak)
        )
    return lines


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    facts = machine()
    print("quality benchmark")
    bench = build_set(seed=args.seed, copies=args.copies, pool=args.pool, holdout_domain=args.holdout_domain)
    photos = ensure_photos(sources=POOLS[args.pool], say=False)
    images = bench.split("test")
    if args.quick:
        images = _quick(images, args.seed)
    images = _order(images, args.seed)
    names = [i.name for i in images]
    print(f"  {len(images)} test images ({sum(i.family == 'original' for i in images)} photos)")

    verifier_version = stack_verifier(args.embedder)
    print(f"  embedder {args.embedder}, verifier {verifier_version}")
    stack_result = None
    if not args.skip_stack:
        from bench.quality.stack_run import run_stack

        print(f"  running the stack (top-{args.top_k}, min score {args.min_score}) ...")
        stack_result = run_stack(
            bench,
            images,
            top_k=args.top_k,
            min_score=args.min_score,
            timeout_s=args.timeout,
            keep_data=args.keep_stack_data,
            embedder=args.embedder,
        )
        from bench.quality.stack_run import write_pairs

        # Kept beside the set (not committed) for offline re-scoring (bench.quality.first_stage).
        write_pairs(stack_result, bench.root / f"stack-pairs-{args.name or 'quality'}.jsonl")
        missing = [n for n in names if n not in stack_result.vectors]
        if missing:
            print(f"  warning: {len(missing)} images were not indexed by the stack, e.g. {missing[:3]}")
        analysed = analyse(
            bench,
            images,
            None if not missing else _embedder(args.embedder),
            vectors_from=None if missing else stack_result.vectors,
            model_version=stack_result.embedding_model,
        )
    else:
        analysed = analyse(bench, images, _embedder(args.embedder))

    labels = pair_labels(bench, images)
    methods: list[dict[str, Any]] = []
    timing: dict[str, Any] = {}
    if stack_result is not None:
        from bench.quality.stack_run import cluster_matrix, listed_matrix, one_sided_listings, pipeline_scores

        index = analysed.index()
        scores = pair_scores(labels, pipeline_scores(stack_result, index, len(images)))
        predicted = scores >= 0.5
        methods.append(
            {
                "name": "imgdup",
                "label": f"verdicts ({verifier_version})",
                "operating_point": operating_point(labels, predicted),
                "curves": curve_summary(labels, scores),
            }
        )
        together = cluster_matrix(stack_result, names)[labels.i, labels.j]
        methods.append(
            {
                "name": "imgdup clusters",
                "label": "same cluster",
                "operating_point": operating_point(labels, together),
                "curves": None,
            }
        )
        listed = listed_matrix(stack_result, names)[labels.i, labels.j]
        methods.append(
            {
                "name": "imgdup API",
                "label": "GET /api/v1/duplicates lists it",
                "operating_point": operating_point(labels, listed),
                "curves": None,
            }
        )
        timing["api_one_sided_listings"] = one_sided_listings(stack_result)
        seed = seed_rules_baseline(stack_result.pairs, index, len(images))
        seed_scores = pair_scores(labels, seed.scores)
        methods.append(
            {
                "name": seed.name,
                "label": seed.label,
                "operating_point": operating_point(labels, seed_scores >= seed.threshold),
                "curves": curve_summary(labels, seed_scores),
            }
        )
        timing["stack_elapsed_s"] = stack_result.elapsed_s
        timing["stack_pairs"] = len(stack_result.pairs)
        ran = {str(row["verifier_version"]) for row in stack_result.pairs.values() if row["verifier_version"]}
        if ran - {verifier_version}:
            raise SystemExit(f"the stack's verdicts are by {sorted(ran)}, not {verifier_version}")
        timing.update(
            _verify_timing(bench, analysed, list(stack_result.pairs), args.timing_pairs, verifier_version)
        )
    for baseline in all_baselines(analysed, args.embedder):
        scores = pair_scores(labels, baseline.scores)
        methods.append(
            {
                "name": baseline.name,
                "label": baseline.label,
                "operating_point": operating_point(labels, scores >= baseline.threshold),
                "curves": curve_summary(labels, scores),
            }
        )

    groups = {i.group for i in images}
    result: dict[str, Any] = {
        "machine": facts,
        "setup": {
            "set": bench.root.name,
            "pool": bench.pool,
            "holdout_domain": bench.holdout_domain,
            "seed": args.seed,
            "copies_per_photo": args.copies,
            "quick": args.quick,
            "sources": ", ".join(
                f"{s} {n}" for s, n in iter_sources([p for p in photos if p.photo_id in groups])
            ),
            "test_images": len(images),
            "test_photos": len(groups),
            "test_copies": len(images) - len(groups),
            "positive_pairs": int(labels.positive.sum()),
            "negative_pairs": int(labels.negative.sum()),
            "hard_negative_pairs": int((labels.negative & (labels.hard_kind != "")).sum()),
            "benign_families": list(BENIGN),
            "hard_families": list(HARD),
            "ann_top_k": args.top_k,
            "ann_min_score": args.min_score,
            "verifier_version": verifier_version,
            "embedder": args.embedder,
            "stack": stack_result.settings if stack_result else None,
        },
        "methods": methods,
        "timing": timing,
        "elapsed_s": time.monotonic() - started,
    }
    if stack_result is not None:
        result["targets"] = _targets(methods)
        result["stack_progress"] = stack_result.progress
        result["clusters"] = cluster_quality(
            stack_result.clusters, {i.name: i.group for i in images}, bench.neutral_pairs()
        )
    json_path, md_path = report.write(result, name=args.name or "quality")
    print()
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path} in {time.monotonic() - started:.0f}s")
    return 0


def default_min_score(embedder: str) -> float:
    """The ANN cut-off fitted with the embedder's default verifier (what its workers run)."""
    from bench.quality.calibrate import shipped_cut_off
    from imgdup_core.verifier_config import default_verifier_for

    return shipped_cut_off(default_verifier_for(embedder))


def _embedder(kind: str = "sscd") -> Any:
    from imgdup_core.embedding import build_embedder

    return build_embedder(kind)


def calibrate(args: argparse.Namespace) -> int:
    from bench.quality.calibrate import calibrate as fit
    from bench.quality.calibrate import model_target, threshold_rule
    from bench.quality.lodo_extra import extra_training
    from imgdup_core.verifier_config import VERIFIERS

    version, features, path = model_target(args.verifier, args.embedder)
    if args.extra_train == args.pool:
        raise SystemExit(f"calibrate --extra-train {args.extra_train}: that is --pool already")
    bench = build_set(seed=args.seed, copies=args.copies, pool=args.pool, holdout_domain=args.holdout_domain)
    images = bench.split("train")
    print(f"calibrating {version} on the train split: {len(images)} images, embedder {args.embedder}")
    embedder = _embedder(args.embedder)
    analysed = analyse(bench, images, embedder)
    config = VERIFIERS[args.verifier]
    # --extra-train default: the default pool's train split too, measured with the same settings (as
    # lodo's folds get it), less any pair with a photo on this set's test side.
    extra = extra_training(args, config)
    test_groups = {image.group for image in bench.split("test")}
    outcome = fit(
        bench,
        images,
        analysed,
        top_k=args.top_k,
        min_score=args.min_score,
        negatives=args.negatives,
        write=not args.dry_run,
        config=config,
        features=features,
        path=path,
        embedder=args.embedder,
        embedding_model=embedder.version.split("@")[0],
        version=version,
        rule=threshold_rule(args.verifier),
        extra=extra.usable(None, test_groups) if extra else (),
        extra_name=extra.name if extra else None,
    )
    for key in (
        "pool_pairs",
        "extra_training_pairs",
        "pairs",
        "duplicates",
        "threshold",
        "candidate_min_cosine",
        "train_precision",
        "train_recall",
        "cpu_ms_per_pair_median",
    ):
        if key in outcome:
            print(f"  {key:24s} {outcome[key]}")
    for name, weight in zip(outcome["features"], outcome["weights"], strict=True):
        print(f"  weight {name:18s} {weight:+.3f}")
    print(f"  bias {outcome['bias']:+.3f}")
    if not args.dry_run:
        print(f"wrote {path.name}; bump the verifier version if verdicts change")
    return 0


def export_evidence(args: argparse.Namespace) -> int:
    from bench.quality import export
    from bench.quality.calibrate import model_target
    from imgdup_core.verifier_config import VERIFIERS

    # Named after the model it refits (imgdup retrain's default file: training-evidence-<base>.jsonl),
    # measured with --verifier's settings on --embedder's cosines.
    version = model_target(args.verifier, args.embedder)[0]
    bench = build_set(seed=args.seed, copies=args.copies, pool=args.pool, holdout_domain=args.holdout_domain)
    path = args.out or bench.root.parent / f"training-evidence-{version}.jsonl"
    header = export.export_evidence(
        bench,
        _embedder(args.embedder),
        config=VERIFIERS[args.verifier],
        top_k=args.top_k,
        min_score=args.min_score,
        negatives=args.negatives,
        path=path,
    )
    print(f"wrote {path}: {header['rows']} (for imgdup retrain --benchmark-evidence)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from bench.quality.calibrate import MODELS, default_measuring
    from imgdup_core.verifier_config import DEFAULT_VERIFIER

    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", nargs="?", default="run", choices=("run", "calibrate", "photos", "export-evidence", "lodo")
    )
    parser.add_argument("--quick", action="store_true", help="a quarter of the test photos")
    parser.add_argument(
        "--pool",
        choices=("default", "broad"),
        default="default",
        help="default: the original photo pool and edits (its set id is unchanged); broad: more "
        "domains, full-size photos, the new edit families, edit-vs-edit positives",
    )
    parser.add_argument(
        "--holdout-domain",
        default=None,
        help="leave one domain out: its photos (and those that share a scene with them) are the test "
        "split, every other photo trains (broad pool)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--copies", type=int, default=3, help="edited copies per source photo")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    parser.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="ANN cut-off: run, the product's default (imgdup_core/fusion_weights.py); "
        f"calibrate, {CALIBRATION_MIN_SCORE} (every candidate a cut-off could keep)",
    )
    parser.add_argument("--skip-stack", action="store_true", help="baselines only")
    parser.add_argument(
        "--name",
        default=None,
        help="run: bench/results/NAME.md and NAME.json (default quality); lodo: the same "
        "(default quality-broad-lodo)",
    )
    parser.add_argument("--keep-stack-data", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the stack")
    parser.add_argument("--timing-pairs", type=int, default=150)
    parser.add_argument("--negatives", type=int, default=1500, help="calibrate: sampled easy negatives")
    parser.add_argument(
        "--min-photos", type=int, default=15, help="lodo: hold out domains with this many photos"
    )
    parser.add_argument("--max-photos", type=int, default=60, help="lodo: photos per domain (seeded choice)")
    parser.add_argument("--edit-pairs", action="store_true", help="lodo: measure two edits of one photo too")
    parser.add_argument(
        "--processes", type=int, default=3, help="lodo, and calibrate --extra-train: measuring processes"
    )
    parser.add_argument("--dry-run", action="store_true", help="calibrate: do not write the model")
    parser.add_argument(
        "--verifier",
        choices=tuple(MODELS),
        default=None,
        help="calibrate: the verifier settings to measure with and the model to write; lodo: the "
        "settings to measure with and the features each fold fits "
        "(fused-v3: imgdup_core/fusion_weights.py, fused-vN: imgdup_core/fusion_weights_vN.py); "
        f"default {DEFAULT_VERIFIER.version}. export-evidence: the settings to measure with, default "
        "those of the model the embedder runs by default (what imgdup retrain refits)",
    )
    parser.add_argument(
        "--threshold-rule",
        choices=("precision", "cost"),
        default=None,
        help="lodo: how each fold's threshold is chosen (default: the verifier's own, "
        "bench/quality/calibrate.py THRESHOLD_RULES): precision, the lowest cut with 99.5 %% "
        "training precision (0.5 where none reaches it); cost, the least missed duplicates + "
        "imgdup_core.fitting.FALSE_POSITIVE_COST x false positives",
    )
    parser.add_argument(
        "--extra-train",
        choices=("default",),
        default=None,
        help="lodo: also train every fold on the default pool's train split (what calibrate fits "
        "on), less its pairs with a photo of the held-out domain or of the fold's test side; "
        "calibrate (--pool broad): fit on both pools' train splits, less any default-pool pair "
        "with a photo of the broad test split (fused-v10)",
    )
    parser.add_argument(
        "--embedder",
        choices=("sscd", "sscd_distilled"),
        default="sscd",
        help="calibrate, export-evidence and run: the embedder (IMGDUP_EMBEDDER) the candidates and "
        "cosines come from; calibrate --embedder sscd_distilled writes fused-v3-distilled "
        "(imgdup_core/fusion_weights_v3_distilled.py)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="export-evidence: the file (default beside the set)"
    )
    args = parser.parse_args(argv)
    if args.command == "photos":
        from bench.quality.dataset import pool_photos
        from bench.quality.domains import summary

        photos, traits = pool_photos(args.pool)
        print(f"pool {args.pool}: " + ", ".join(f"{s} {n}" for s, n in iter_sources(photos)))
        print("\n".join(summary(photos, traits)))
        return 0
    if args.verifier is None:
        # calibrate and lodo: fused-v3's settings (fusion_weights.py is the model fused-v3 and the
        # default fused-v9 both run); export-evidence: what the embedder runs by default.
        export = args.command == "export-evidence"
        args.verifier = default_measuring(args.embedder) if export else DEFAULT_VERIFIER.version
    if args.command == "lodo":
        from bench.quality import lodo

        args.min_score = CALIBRATION_MIN_SCORE if args.min_score is None else args.min_score
        return lodo.main(args)
    if args.command == "calibrate":
        args.min_score = CALIBRATION_MIN_SCORE if args.min_score is None else args.min_score
        return calibrate(args)
    if args.command == "export-evidence":
        args.min_score = CALIBRATION_MIN_SCORE if args.min_score is None else args.min_score
        return export_evidence(args)
    if args.min_score is None:
        args.min_score = default_min_score(args.embedder)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
