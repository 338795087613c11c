"""The TRAINING split's verified candidates (fused-v5's committed model, cached evidence) -> where
the clusterer's bridge bar (IMGDUP_CLUSTER_BRIDGE_MIN_PROBABILITY) can sit: the fused probability of
every false verified pair, and the share of true verified pairs at or above each bar.

`python -m bench.quality.bridge_bar [EVIDENCE.jsonl]` (the default pool, seed 2024, the candidates of
`calibrate --verifier fused-v5`). EVIDENCE: a calibration's evidence cache to read instead of measuring
(fused-v5 was fitted on set-e60b32fdd803/evidence-047e902b19a6.jsonl, commit fca73a9; the measuring
code changed since only in what the admin page draws, which moved the cache key).
Never reads the test split: the bar is chosen here and measured on the test split by the benchmark.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from bench.quality.analysis import analyse
from bench.quality.calibrate import IGNORED_KINDS, measure_candidates, training_candidates
from bench.quality.dataset import build_set
from imgdup_core.evidence import Evidence
from imgdup_core.fusion import duplicate_probability
from imgdup_core.verifier_config import FUSED_V5

BARS = (0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)


def main() -> int:
    from imgdup_core.embedding import build_embedder

    bench = build_set(seed=2024, copies=3, pool="default", holdout_domain=None)
    images = bench.split("train")
    print(f"set {bench.root.name}, train split: {len(images)} images")
    analysed = analyse(bench, images, build_embedder("sscd"))
    candidates = training_candidates(
        bench, images, analysed, top_k=10, min_score=0.2, negatives=1500, seed=bench.seed, phash_channel=True
    )
    if len(sys.argv) > 1:
        rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines()]
        cached = {(r["a"], r["b"]): Evidence(**r["evidence"]) for r in rows}
        missing = [c for c in candidates if (c.a, c.b) not in cached]
        print(
            f"evidence from {sys.argv[1]}: {len(candidates) - len(missing)} of {len(candidates)} candidates"
        )
        everything = [(c, cached[(c.a, c.b)], 0.0) for c in candidates if (c.a, c.b) in cached]
    else:
        everything = measure_candidates(bench, images, analysed, candidates, config=FUSED_V5)
    measured = [m for m in everything if m[0].kind not in IGNORED_KINDS]
    model = FUSED_V5.fusion
    p = np.array([1.0 if e.exact else duplicate_probability(e, model) for _, e, _ in measured])
    y = np.array([c.label for c, _, _ in measured])
    w = np.array([c.weight for c, _, _ in measured])
    verified = p >= model.threshold
    tp, fp = verified & (y == 1), verified & (y == 0)
    print(f"verified at the threshold {model.threshold:.4f}: {int(tp.sum())} true, {fp.sum()} false")
    for i in np.nonzero(fp)[0]:
        c = measured[i][0]
        print(f"  false: p={p[i]:.5f} weight={w[i]:.1f} kind={c.kind} {c.a} ~ {c.b}")
    for bar in BARS:
        above = p >= bar
        kept = (tp & above).sum() / max(tp.sum(), 1)
        false = (w * (fp & above)).sum()
        print(
            f"  bar {bar}: true verified pairs at or above {100 * kept:.1f} %, false (weighted) {false:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
