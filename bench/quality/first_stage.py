"""The test split's vectors from both SSCD models and a distilled run's stored pairs -> the
distilled SSCD as a first stage (issue 14): its ANN recall of the full model's true candidates,
and the verdicts the full model's cosine would change on the pairs the distilled model is unsure of.

Offline: the ANN search is emulated as calibration does (exact top-K above each model's fitted
cut-off); the evidence is the stack's own (`python -m bench.quality --embedder sscd_distilled`
writes it beside the set), with the cosine swapped for the full model's and re-scored by the full
model's fusion (the rest of the evidence does not depend on the embedder)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine
from bench.quality.__main__ import _order
from bench.quality.analysis import Analysed, analyse
from bench.quality.calibrate import ann_candidates, label_pair
from bench.quality.dataset import BenchSet, SetImage, build_set
from bench.quality.report import RESULTS
from imgdup_core.decode import decode_image
from imgdup_core.embedding import Embedder, build_embedder
from imgdup_core.evidence import Evidence
from imgdup_core.fusion import FusionModel, duplicate_probability
from imgdup_core.verifier_config import default_verifier_for

# Calibration's floor: every candidate a cut-off could keep (bench.quality.__main__).
FLOOR = 0.2
# Borderline: the distilled model's fused logit within this many units of its threshold's logit.
BANDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
EVIDENCE_FIELDS = {f.name for f in dataclasses.fields(Evidence)}


def pair_cosines(analysed: Analysed, i: int, j: int) -> float:
    """The best cosine among the two images' stored vectors (the image's and its framed photo's),
    as the ANN search meets them."""
    sides_i = [analysed.vectors[i]] + ([analysed.photo_vectors[i]] if analysed.has_photo[i] else [])
    sides_j = [analysed.vectors[j]] + ([analysed.photo_vectors[j]] if analysed.has_photo[j] else [])
    return max(float(x @ y) for x in sides_i for y in sides_j)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def ann_recall(
    bench: BenchSet, images: Sequence[SetImage], full: Analysed, distilled: Analysed, top_k: int
) -> dict[str, Any]:
    """Each model's true candidates (pairs of one photo) at the floor and at its fitted cut-off,
    and how many of the full model's the distilled one proposes."""
    cut = {
        name: default_verifier_for(name).fusion.candidate_min_cosine for name in ("sscd", "sscd_distilled")
    }
    out: dict[str, Any] = {"cut_off": cut, "top_k": top_k}
    true: dict[str, set[tuple[int, int]]] = {}
    for name, analysed in (("sscd", full), ("sscd_distilled", distilled)):
        floor = ann_candidates(analysed.vectors, top_k, FLOOR, analysed.photo_vectors, analysed.has_photo)
        kept = {pair for pair, cosine in floor.items() if cosine >= float(cut[name] or FLOOR)}
        positives = {p for p in floor if label_pair(bench, images[p[0]], images[p[1]])[0] == 1}
        true[name] = positives & kept
        out[name] = {
            "candidates_at_floor": len(floor),
            "candidates_at_cut_off": len(kept),
            "true_at_floor": len(positives),
            "true_at_cut_off": len(true[name]),
            "true_lost_at_cut_off": len(positives - kept),
        }
    both = true["sscd"] & true["sscd_distilled"]
    out["full_true_proposed_by_distilled"] = len(both)
    out["distilled_recall_of_full"] = len(both) / max(1, len(true["sscd"]))
    out["distilled_true_not_proposed_by_full"] = len(true["sscd_distilled"] - true["sscd"])
    missed = sorted(true["sscd"] - true["sscd_distilled"])
    out["missed_by_distilled_families"] = _families(bench, images, missed)
    return out


def _families(
    bench: BenchSet, images: Sequence[SetImage], pairs: Sequence[tuple[int, int]]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i, j in pairs:
        kind = label_pair(bench, images[i], images[j])[1]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def borderline(
    bench: BenchSet,
    images: Sequence[SetImage],
    full: Analysed,
    distilled: Analysed,
    rows: Sequence[dict[str, Any]],
    model_d: FusionModel | None = None,
    model_f: FusionModel | None = None,
) -> dict[str, Any]:
    """For each band around the distilled model's threshold: its pairs, the images in them, and
    the verdicts the full model (its fusion, on the full cosine) changes, right and wrong.
    The models default to each embedder's default verifier's."""
    model_d = model_d or default_verifier_for("sscd_distilled").fusion
    model_f = model_f or default_verifier_for("sscd").fusion
    index = full.index()
    scored: list[dict[str, Any]] = []
    mismatched_cosines = 0
    for row in rows:
        if row.get("is_duplicate") is None or row["a"] not in index or row["b"] not in index:
            continue
        i, j = index[row["a"]], index[row["b"]]
        fields = {k: v for k, v in row.items() if k in EVIDENCE_FIELDS}
        fields["embedding_cosine"] = float(row["cosine"])
        fields["exact"] = bool(row.get("exact"))
        fields["sift_matches"] = int(row.get("sift_matches") or 0)
        fields["overlap"] = float(row.get("overlap") or 0.0)
        fields["compared"] = row.get("compared") or "full/full"
        evidence = Evidence(**fields)
        cosine_d = pair_cosines(distilled, i, j)
        mismatched_cosines += abs(cosine_d - evidence.embedding_cosine) > 1e-3
        p_d = duplicate_probability(evidence, model_d)
        swapped = dataclasses.replace(evidence, embedding_cosine=pair_cosines(full, i, j))
        p_f = duplicate_probability(swapped, model_f)
        # The control: the full model's fusion on the distilled cosine. Where its verdict is the
        # cascade's, the change came from the other fusion (weights, threshold), not the cosine.
        p_fd = duplicate_probability(evidence, model_f)
        label, kind = label_pair(bench, images[i], images[j])
        scored.append(
            {
                "i": i,
                "j": j,
                "label": label,
                "kind": kind,
                "p_d": p_d,
                "p_f": p_f,
                "p_fd": p_fd,
                "dup_d": bool(row["is_duplicate"]),
            }
        )
    t_d, t_f = model_d.threshold, model_f.threshold
    out: dict[str, Any] = {
        "verified_pairs": len(scored),
        "stack_verdicts_agree_with_rescoring": sum((s["p_d"] >= t_d) == s["dup_d"] for s in scored),
        "stack_cosine_differs_from_emulated": int(mismatched_cosines),
        "distilled_tp": sum(s["dup_d"] and s["label"] == 1 for s in scored),
        "distilled_fp": sum(s["dup_d"] and s["label"] == 0 for s in scored),
        "bands": [],
    }
    for band in BANDS:
        near = [s for s in scored if s["p_d"] < 1.0 and abs(_logit(s["p_d"]) - _logit(t_d)) <= band]
        changed = [s for s in near if (s["p_d"] >= t_d) != (s["p_f"] >= t_f)]
        images_in = {k for s in near for k in (s["i"], s["j"])}
        out["bands"].append(
            {
                "logit_band": band,
                "pairs": len(near),
                "images": len(images_in),
                "image_share": len(images_in) / max(1, len(images)),
                "verdicts_changed": len(changed),
                "changed_to_right": sum((s["p_f"] >= t_f) == (s["label"] == 1) for s in changed),
                "changed_to_wrong": sum((s["p_f"] >= t_f) != (s["label"] == 1) for s in changed),
                "new_true_duplicates": sum(s["p_f"] >= t_f and s["label"] == 1 for s in changed),
                "new_false_duplicates": sum(s["p_f"] >= t_f and s["label"] == 0 for s in changed),
                "new_true_original_copy": sum(
                    s["p_f"] >= t_f and s["label"] == 1 and s["kind"] != "copy-copy" for s in changed
                ),
                # Changed only because of the full cosine: the full fusion on the distilled
                # cosine keeps the distilled verdict.
                "changed_by_the_cosine": sum((s["p_fd"] >= t_f) != (s["p_f"] >= t_f) for s in changed),
                "changed_families": dict(sorted(Counter(s["kind"] for s in changed).items())),
            }
        )
    return out


def embed_cpu_ms(embedder: Embedder, images: Sequence[np.ndarray]) -> float:
    """Median CPU ms of one image embedded alone, on one ONNX thread."""
    embedder.embed(images[:2])  # warm up
    spent = []
    for image in images:
        started = time.process_time()
        embedder.embed([image])
        spent.append(1000 * (time.process_time() - started))
    return float(np.median(spent))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality.first_stage", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pairs", default="stack-pairs-quality-sscd-distilled.jsonl", help="beside the set")
    parser.add_argument("--name", default="sscd-distilled")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--timing-images", type=int, default=40, help="0: keep the last run's timings")
    args = parser.parse_args(argv)
    facts = machine()
    bench = build_set(seed=2024, copies=3, pool="default")
    # The benchmark run's posting order: its analysis caches (keyed by the images in order) serve.
    images = _order(bench.split("test"), bench.seed)
    full = analyse(bench, images, build_embedder("sscd"))
    distilled = analyse(bench, images, build_embedder("sscd_distilled"))
    result: dict[str, Any] = {"machine": facts, "set": bench.root.name, "test_images": len(images)}
    result["ann"] = ann_recall(bench, images, full, distilled, args.top_k)
    pairs_path = bench.root / args.pairs
    if pairs_path.exists():
        rows = [json.loads(line) for line in pairs_path.read_text().splitlines()]
        result["borderline"] = borderline(bench, images, full, distilled, rows)
    # The uploads as decoded (what the images worker embeds), a spread of the test split.
    step = max(1, len(images) // max(1, args.timing_images))
    sample = [decode_image(bench.path(image).read_bytes()).rgb for image in images[::step]]
    path = Path(RESULTS) / f"{args.name}.json"
    if args.timing_images:
        result["embed_cpu_ms"] = {
            kind: embed_cpu_ms(build_embedder(kind, intra_op_threads=1), sample[: args.timing_images])
            for kind in ("sscd", "sscd_distilled")
        }
    else:
        result["embed_cpu_ms"] = json.loads(path.read_text())["embed_cpu_ms"]
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, sort_keys=True))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
