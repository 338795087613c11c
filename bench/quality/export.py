"""The labelled set -> the verifier's evidence on the ANN candidates of the TRAIN and TEST splits, one
labelled row a line (`python -m bench.quality export-evidence`), for `imgdup retrain` to refit and
evaluate the fusion without importing the benchmark.

The candidates of each split are made as calibration makes the training ones (exact top-K, the pHash
channel's when the verifier uses it, every positive and hard negative, a seeded weighted sample of
the other negatives); their evidence is measured with the verifier's settings and cached per pair
(bench.quality.calibrate)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.quality.analysis import analyse
from bench.quality.calibrate import IGNORED_KINDS, measure_candidates, training_candidates
from bench.quality.dataset import BenchSet
from imgdup_core.embedding import Embedder
from imgdup_core.verify import VerifierConfig

# What imgdup.ops.retrain reads; bump when a row's meaning changes.
FORMAT = "imgdup-benchmark-evidence/1"


def export_evidence(
    bench: BenchSet,
    embedder: Embedder,
    *,
    config: VerifierConfig,
    top_k: int,
    min_score: float,
    negatives: int,
    path: Path,
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "format": FORMAT,
        "set": bench.root.name,
        "seed": bench.seed,
        "verifier": config.version,
        "embedder": embedder.name,
        "embedding_model": embedder.version.split("@")[0],
        "ann_top_k": top_k,
        "ann_min_score": min_score,
        "ignored_kinds": list(IGNORED_KINDS),
    }
    counts: dict[str, int] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w") as out:
        out.write(json.dumps(header) + "\n")
        for split in ("train", "test"):
            images = bench.split(split)
            print(f"  {split}: {len(images)} images")
            analysed = analyse(bench, images, embedder)
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
            for candidate, evidence, _cpu in measure_candidates(
                bench, images, analysed, candidates, config=config
            ):
                if candidate.kind in IGNORED_KINDS:
                    continue
                row = {
                    "split": split,
                    "label": candidate.label,
                    "weight": candidate.weight,
                    "kind": candidate.kind,
                    "evidence": asdict(evidence),
                }
                out.write(json.dumps(row) + "\n")
                counts[split] = counts.get(split, 0) + 1
    partial.replace(path)  # a reader never sees half a file
    return {**header, "rows": counts}
