"""A set's images and a stack run's aligned pairs -> what passing the photo box stored at indexing to the
verifier changes, against running the frame finder again on the stored copy (before migration 013).

Per image that frames a photo: the indexer's box (found on the capped decode, kept as shares) against
the finder's box on the stored copy (<= 512 px), and the CPU of that re-run (what each pair paid for
each framed side). Per aligned pair with a framed picture: the verdict of one verifier version with
each box. Offline, from the set's images as the stack stores them (bench.quality.analysis.stored_view).

    python -m bench.quality.stored_box --set set-e60b32fdd803 \\
        --pairs stack-pairs-quality-fused-v10.jsonl --version fused-v10 --name stored-box-vs-rerun
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.quality.analysis import stored_view
from bench.quality.dataset import DEFAULT_OUT
from bench.quality.report import RESULTS
from imgdup_core.decode import decode_image
from imgdup_core.framing import find_photo_region
from imgdup_core.hashing import phash_pair
from imgdup_core.verifier_config import VERIFIERS
from imgdup_core.verify import COMPUTE_BOX, ImageView, verify_images


def _rerun(view: ImageView) -> ImageView:
    """The same stored image as the verifier saw it before: no box given, the finder runs again."""
    return ImageView(view.pixels(), view.phash, view.pixels(True), box=COMPUTE_BOX)


def _box_difference(stored: ImageView, rerun: ImageView) -> dict[str, Any]:
    box, again = stored.photo_box(), rerun.photo_box()
    if box is None or again is None:
        return {"rerun_found": again is not None}
    height, width = stored.pixels().shape[:2]
    scale = (width, height, width, height)
    return {
        "rerun_found": True,
        "max_px": max(abs(p - q) * s for p, q, s in zip(box, again, scale, strict=True)),
    }


def measure(set_root: Path, pairs_file: Path, version: str) -> dict[str, Any]:
    config = VERIFIERS[version]
    views: dict[str, tuple[ImageView, ImageView]] = {}

    def view(name: str) -> tuple[ImageView, ImageView]:
        if name not in views:
            path = set_root / "images" / name
            stored = stored_view(path, phash_pair(decode_image(path.read_bytes()).rgb))
            views[name] = (stored, _rerun(stored) if stored.frames_photo else stored)
        return views[name]

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines() if line.strip()]
    aligned = [r for r in rows if r.get("ssim") is not None]
    counts: Counter[tuple[bool, bool]] = Counter()
    changed: list[dict[str, Any]] = []
    score_moves: list[float] = []
    for row in aligned:
        (a, a_rerun), (b, b_rerun) = view(row["a"]), view(row["b"])
        if not (a.frames_photo or b.frames_photo):
            continue
        cosine = float(row["cosine"])
        before = verify_images(a_rerun, b_rerun, cosine=cosine, config=config)
        after = verify_images(a, b, cosine=cosine, config=config)
        counts[(before.is_duplicate, after.is_duplicate)] += 1
        score_moves.append(abs(after.score - before.score))
        if before.is_duplicate != after.is_duplicate or before.evidence.compared != after.evidence.compared:
            changed.append(
                {
                    "a": row["a"],
                    "b": row["b"],
                    "rerun": [before.score, before.evidence.compared, before.evidence.mismatch],
                    "stored": [after.score, after.evidence.compared, after.evidence.mismatch],
                }
            )
    framed = [(stored, rerun) for stored, rerun in views.values() if stored.frames_photo]
    boxes = [_box_difference(stored, rerun) for stored, rerun in framed]
    found = [b["max_px"] for b in boxes if "max_px" in b]
    cpu0 = time.process_time()
    for stored, _ in framed:
        find_photo_region(stored.pixels())
    finder_ms = (time.process_time() - cpu0) / max(1, len(framed)) * 1e3
    return {
        "version": version,
        "pairs": len(rows),
        "aligned": len(aligned),
        "framed_pairs": sum(counts.values()),
        "counts": [{"rerun": r, "stored": s, "pairs": n} for (r, s), n in sorted(counts.items())],
        "score_move_median": statistics.median(score_moves) if score_moves else None,
        "score_move_max": max(score_moves) if score_moves else None,
        "changed": changed,
        "framed_images": len(framed),
        "rerun_finds_no_box": sum(not b["rerun_found"] for b in boxes),
        "box_max_px_median": statistics.median(found) if found else None,
        "box_max_px_max": max(found) if found else None,
        "finder_cpu_ms_per_stored_copy": round(finder_ms, 2),
    }


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any], pairs_file: str) -> str:
    lines = [
        f"### The stored photo box against the finder run again on the stored copy ({result['version']})",
        "",
        f"Pairs of `{pairs_file}`: {result['pairs']}, {result['aligned']} aligned, "
        f"{result['framed_pairs']} of them with a framed picture, each verified with both boxes.",
        "",
        "| re-run box says duplicate | stored box says duplicate | pairs |",
        "|---|---|---|",
        *[f"| {c['rerun']} | {c['stored']} | {c['pairs']} |" for c in result["counts"]],
        "",
        f"Score moved by a median {_num(result['score_move_median'], 4)}, at most "
        f"{_num(result['score_move_max'], 4)}.",
        "",
        f"Framed images: {result['framed_images']}; the finder re-run on the stored copy finds no box in "
        f"{result['rerun_finds_no_box']}; where it finds one, its farthest side is a median "
        f"{_num(result['box_max_px_median'], 1)} px and at most {_num(result['box_max_px_max'], 1)} px "
        "(stored-copy pixels) "
        f"from the stored box. The re-run cost {result['finder_cpu_ms_per_stored_copy']} ms of CPU per "
        "stored copy, paid per pair and framed side before.",
        "",
        "Pairs whose verdict or deciding comparison changed (score, compared, mismatch):",
        "",
        "| a | b | re-run box | stored box |",
        "|---|---|---|---|",
        *[f"| {c['a']} | {c['b']} | {c['rerun']} | {c['stored']} |" for c in result["changed"]],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="set-e60b32fdd803", help="the set's folder under the bench cache")
    parser.add_argument("--pairs", required=True, help="stack-pairs-<name>.jsonl beside the set")
    parser.add_argument("--version", default="fused-v10", choices=sorted(VERIFIERS))
    parser.add_argument("--name", default="stored-box-vs-rerun")
    args = parser.parse_args(argv)
    root = DEFAULT_OUT / args.set
    started, info = time.monotonic(), machine()  # the load before the run
    result = measure(root, root / args.pairs, args.version)
    result["machine"] = info
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result, args.pairs))
    print(markdown(result, args.pairs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
