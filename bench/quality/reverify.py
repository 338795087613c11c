"""A stack run's aligned pairs (stack-pairs-<name>.jsonl beside the set) -> their verdicts under two
verifier versions, for the pairs where either picture frames a photo: what a frame rule changes.

Offline: every pair is measured again from the set's images as the stack stores them
(bench.quality.analysis.stored_view), with the stack's cosine; labels are the set's (one source
photo, or two edits of one photo in the broad pool, is a duplicate). Only pairs the stack aligned
(evidence with an SSIM) are looked at: a frame rule acts on aligned pictures only.

    python -m bench.quality.reverify --pairs stack-pairs-quality-broad-fused-v6-bridges.jsonl \\
        --base fused-v6 --head fused-v8 --name box-page-rule
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.quality.analysis import stored_view
from bench.quality.dataset import DEFAULT_OUT, SetImage
from bench.quality.report import RESULTS
from imgdup_core.decode import decode_image
from imgdup_core.hashing import phash_pair
from imgdup_core.verifier_config import VERIFIERS
from imgdup_core.verify import ImageView, verify_images


def _labels(manifest: dict[str, Any]) -> dict[str, SetImage]:
    return {row["name"]: SetImage(**row) for row in manifest["images"]}


def reverify(set_root: Path, pairs_file: Path, base: str, head: str) -> dict[str, Any]:
    images = _labels(json.loads((set_root / "manifest.json").read_text()))
    views: dict[str, ImageView] = {}

    def view(name: str) -> ImageView:
        if name not in views:
            path = set_root / "images" / name
            views[name] = stored_view(path, phash_pair(decode_image(path.read_bytes()).rgb))
        return views[name]

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines() if line.strip()]
    aligned = [r for r in rows if r.get("ssim") is not None and r["a"] in images and r["b"] in images]
    counts: Counter[tuple[bool, bool, bool]] = Counter()
    changed: list[dict[str, Any]] = []
    for row in aligned:
        a, b = view(row["a"]), view(row["b"])
        if not (a.frames_photo or b.frames_photo):
            continue
        same = images[row["a"]].group == images[row["b"]].group
        before = verify_images(a, b, cosine=float(row["cosine"]), config=VERIFIERS[base])
        after = verify_images(a, b, cosine=float(row["cosine"]), config=VERIFIERS[head])
        counts[(same, before.is_duplicate, after.is_duplicate)] += 1
        if before.is_duplicate != after.is_duplicate:
            changed.append(
                {
                    "a": row["a"],
                    "b": row["b"],
                    "duplicate": same,
                    base: [before.score, before.evidence.compared],
                    head: [after.score, after.evidence.compared, after.evidence.mismatch],
                }
            )
    return {
        "base": base,
        "head": head,
        "pairs": len(rows),
        "aligned": len(aligned),
        "framed": sum(counts.values()),
        "counts": [
            {"duplicate": same, base: said, head: says, "pairs": n}
            for (same, said, says), n in sorted(counts.items())
        ],
        "changed": changed,
    }


def markdown(result: dict[str, Any]) -> str:
    base, head = result["base"], result["head"]
    lines = [
        f"### {base} -> {head} on a stack run's aligned pairs with a framed picture (offline)",
        "",
        f"{result['pairs']} pairs in the run, {result['aligned']} aligned, {result['framed']} of them with "
        "a photo box found in either picture, measured again under both versions.",
        "",
        f"| truly a duplicate | {base} says | {head} says | pairs |",
        "|---|---|---|---|",
        *[f"| {c['duplicate']} | {c[base]} | {c[head]} | {c['pairs']} |" for c in result["counts"]],
        "",
        "Verdicts that changed:",
        "",
        f"| a | b | truly a duplicate | {base} (p, compared) | {head} (p, compared, mismatch) |",
        "|---|---|---|---|---|",
        *[f"| {c['a']} | {c['b']} | {c['duplicate']} | {c[base]} | {c[head]} |" for c in result["changed"]],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="set-306995c51301", help="the set's folder under the bench cache")
    parser.add_argument("--pairs", required=True, help="stack-pairs-<name>.jsonl beside the set")
    parser.add_argument("--base", default="fused-v6", choices=sorted(VERIFIERS))
    parser.add_argument("--head", default="fused-v8", choices=sorted(VERIFIERS))
    parser.add_argument("--name", default="reverify")
    args = parser.parse_args(argv)
    root = DEFAULT_OUT / args.set
    started = time.monotonic()
    result = reverify(root, root / args.pairs, args.base, args.head)
    result["machine"] = machine()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
