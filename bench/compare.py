"""Side-by-side CPU per image of a base commit and this working tree: runs both commits' own
`bench.throughput` back to back (ABBA) and writes one comparison table.

    python -m bench.compare [--base a02148a] [--rounds 2] [--name throughput-vs-a02148a]
                            [--images 240] [--embedder sscd] [--head-env K=V ...]
                            [--worktree /tmp/wt-old]

The base runs from a git worktree of its commit (reused when the path is already at that
commit) with this repository's Python (.venv) and PYTHONPATH set to that worktree, so its own
code, benchmark and worker run; HEAD runs from this working tree. Both get the same options
(`--skip-standalone`, same embedder, same number of images). Round r runs base then HEAD when r
is even, HEAD then base when odd: a load trend on a shared machine hits both alike.
`--head-env` gives HEAD's stack extra settings (a configuration to compare, e.g.
IMGDUP_EMBEDDER=sscd_distilled); the few settings bench.throughput sets itself become its
options. Writes bench/results/NAME.json and .md; each run's own files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import machine, table, write_results

REPO = Path(__file__).resolve().parent.parent

# Settings bench.throughput sets on the stack itself (they win over the environment): passed to
# it as its options instead.
OPTION_OF_SETTING = {
    "IMGDUP_EMBEDDER": "--embedder",
    "IMGDUP_EMBED_MAX_BATCH": "--batch",
    "IMGDUP_ANN_MIN_SCORE": "--min-score",
}


# ------------------------------------------------------------------------------ pure parts


def order(rounds: int) -> list[str]:
    """ABBA: base, head, head, base, ... (`rounds` runs of each)."""
    out: list[str] = []
    for r in range(rounds):
        out += ["base", "head"] if r % 2 == 0 else ["head", "base"]
    return out


def split_env(pairs: list[str]) -> tuple[dict[str, str], list[str]]:
    """`K=V` strings -> (environment, bench.throughput options for the settings it owns)."""
    env: dict[str, str] = {}
    options: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--head-env wants K=V, got {pair!r}")
        if key in OPTION_OF_SETTING:
            options += [OPTION_OF_SETTING[key], value]
        else:
            env[key] = value
    return env, options


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """The comparison's numbers from one bench.throughput result (its saturation phase)."""
    sat = run["saturation"]
    images = sat["images"]
    cpu = sat["cpu_seconds"]
    cores = run["machine"]["cores"]
    stack = sum(v for k, v in cpu.items() if not k.startswith("bench"))
    worker = sum(v for k, v in cpu.items() if k.startswith("worker"))
    stack_ms = stack / images * 1e3
    return {
        "commit": run["machine"].get("commit", ""),
        "images": images,
        "images_per_s": sat["end_to_end_images_per_s"],
        "images_per_s_per_core": sat["end_to_end_images_per_s"] / cores,
        "images_per_cpu_s": 1e3 / stack_ms if stack_ms else float("nan"),
        "stack_cpu_ms_per_image": stack_ms,
        "worker_cpu_ms_per_image": worker / images * 1e3,
        "other_cpu_ms_per_image": {
            k: v / images * 1e3 for k, v in sorted(cpu.items()) if not k.startswith(("bench", "worker"))
        },
        "pairs_rejected": int(sat["pairs"].get("rejected", 0)),
        "pairs_clustered": int(sat["pairs"].get("clustered", 0)),
        "candidates_per_image": sat.get("candidates_per_image", float("nan")),
        "loadavg_at_start": run["machine"]["loadavg_at_start"][0],
        "loadavg_at_end": run.get("loadavg_at_end", [float("nan")])[0],
    }


MEDIAN_KEYS = (
    "images_per_s",
    "images_per_s_per_core",
    "images_per_cpu_s",
    "stack_cpu_ms_per_image",
    "worker_cpu_ms_per_image",
    "loadavg_at_start",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(statistics.median(r[k] for r in runs)) for k in MEDIAN_KEYS}


def compare(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per commit medians, the base/HEAD CPU ratios, and whether both decided the same pairs."""
    by = {side: [s for label, s in runs if label == side] for side in ("base", "head")}
    med = {side: medians(rs) for side, rs in by.items() if rs}
    verdicts = {
        side: sorted({(r["pairs_rejected"], r["pairs_clustered"]) for r in rs}) for side, rs in by.items()
    }
    out: dict[str, Any] = {"median": med, "verdicts": verdicts}
    out["same_verdicts"] = len({v for vs in verdicts.values() for v in vs}) == 1
    if "base" in med and "head" in med:
        out["ratio_stack_cpu_base_over_head"] = ratio(
            med["base"]["stack_cpu_ms_per_image"], med["head"]["stack_cpu_ms_per_image"]
        )
        out["ratio_worker_cpu_base_over_head"] = ratio(
            med["base"]["worker_cpu_ms_per_image"], med["head"]["worker_cpu_ms_per_image"]
        )
    return out


def ratio(base: float, head: float) -> float:
    """How many times less CPU HEAD spends than the base (> 1: HEAD is cheaper)."""
    return base / head if head else float("nan")


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    base, head = result["base"], result["head"]
    runs = result["runs"]
    cmp = result["comparison"]
    head_cfg = " ".join(result["head_env"]) or "none"
    lines = [
        f"### CPU per image, side by side: {base['label']} (base) and {head['label']} (HEAD)",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, shared with other work."
        f" `python -m bench.throughput --skip-standalone --embedder {result['embedder']}"
        f" --images {result['images']}` of each commit, order {', '.join(r['side'] for r in runs)}"
        f" (ABBA). HEAD's extra settings: {head_cfg}.",
        "",
        table(
            [
                "run",
                "commit",
                "load at start / end",
                "images/s",
                "images/s per core",
                "images per CPU-s",
                "stack CPU ms/image",
                "worker CPU ms/image",
                "pairs rejected / clustered",
            ],
            [
                [
                    f"{i + 1} {r['side']}",
                    r["commit"],
                    f"{r['loadavg_at_start']:.1f} / {r['loadavg_at_end']:.1f}",
                    r["images_per_s"],
                    r["images_per_s_per_core"],
                    r["images_per_cpu_s"],
                    r["stack_cpu_ms_per_image"],
                    r["worker_cpu_ms_per_image"],
                    f"{r['pairs_rejected']} / {r['pairs_clustered']}",
                ]
                for i, r in enumerate(runs)
            ],
        ),
        "",
        table(
            [
                "median",
                "images/s",
                "images/s per core",
                "images per CPU-s",
                "stack CPU ms/image",
                "worker CPU ms/image",
            ],
            [
                [
                    f"{side} ({result[side]['label']})",
                    v["images_per_s"],
                    v["images_per_s_per_core"],
                    v["images_per_cpu_s"],
                    v["stack_cpu_ms_per_image"],
                    v["worker_cpu_ms_per_image"],
                ]
                for side, v in cmp["median"].items()
            ],
        ),
        "",
    ]
    if "ratio_stack_cpu_base_over_head" in cmp:
        lines += [
            f"CPU ratio base / HEAD: stack {cmp['ratio_stack_cpu_base_over_head']:.2f}x,"
            f" worker {cmp['ratio_worker_cpu_base_over_head']:.2f}x (> 1: HEAD spends less).",
            "",
        ]
    # Lists of [rejected, clustered] once read back from the JSON file.
    verdicts = {side: [tuple(v) for v in vs] for side, vs in cmp["verdicts"].items()}
    if cmp["same_verdicts"]:
        lines.append("Pairs rejected / clustered: the same in every run.")
    elif any(len(vs) > 1 for vs in verdicts.values()) and set(verdicts.get("base", [])) & set(
        verdicts.get("head", [])
    ):
        lines.append(
            "Pairs rejected / clustered vary between runs of the same commit, and both commits had"
            " runs with the same counts: "
            + "; ".join(f"{side} {vs}" for side, vs in verdicts.items())
            + " (run-to-run variation, not the commit)."
        )
    else:
        lines.append(
            "Pairs rejected / clustered differ: "
            + "; ".join(f"{side} {vs}" for side, vs in verdicts.items())
            + " (not a like-for-like comparison until explained)."
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ running


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def base_worktree(base: str, path: Path) -> Path:
    """A worktree of `base` at `path`: reused when already at that commit, else created."""
    want = git("rev-parse", f"{base}^{{commit}}")
    if path.exists():
        have = git("rev-parse", "HEAD", cwd=path) if (path / ".git").exists() else ""
        if have != want:
            raise SystemExit(f"{path} exists at {have or 'no commit'}, not {base}: pass another --worktree")
    else:
        git("worktree", "add", "--detach", str(path), want)
    # The models and other local data (git-ignored) the benchmark loads, shared with this tree.
    local = REPO / ".imgdup"
    if local.exists() and not (path / ".imgdup").exists():
        (path / ".imgdup").symlink_to(local.resolve())
    return path


def run_one(tree: Path, options: list[str], env: dict[str, str], name: str, keep: Path) -> dict[str, Any]:
    """bench.throughput of the code in `tree` (its own files), its result moved to `keep`."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "bench.throughput", "--skip-standalone", *options, "--name", name]
    print(f"== {tree}: {' '.join(cmd[1:])} {env or ''}", flush=True)
    subprocess.run(cmd, cwd=tree, env=full_env, check=True)
    results = tree / "bench" / "results"
    for ext in ("json", "md"):
        shutil.move(str(results / f"{name}.{ext}"), str(keep / f"{name}.{ext}"))
    data: dict[str, Any] = json.loads((keep / f"{name}.json").read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="a02148a", help="commit to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each commit (ABBA order)")
    parser.add_argument("--name", default="", help="result name (default throughput-vs-BASE)")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--embedder", choices=["sscd", "sscd_distilled"], default="sscd")
    parser.add_argument("--head-env", action="append", default=[], metavar="K=V", help="HEAD only")
    parser.add_argument("--worktree", type=Path, default=Path("/tmp/wt-old"), help="base worktree path")
    args = parser.parse_args(argv)
    env, head_options = split_env(args.head_env)
    name = args.name or f"throughput-vs-{args.base}"
    tree = base_worktree(args.base, args.worktree)
    keep = Path(tempfile.mkdtemp(prefix=f"bench-compare-{name}-"))
    result: dict[str, Any] = {
        "machine": machine(),
        "embedder": args.embedder,
        "images": args.images,
        "head_env": args.head_env,
        "base": {"label": git("rev-parse", "--short", args.base), "tree": str(tree)},
        "head": {"label": git("rev-parse", "--short", "HEAD"), "tree": str(REPO)},
        "run_files": str(keep),
    }
    common = ["--embedder", args.embedder, "--images", str(args.images)]
    runs: list[dict[str, Any]] = []
    for i, side in enumerate(order(args.rounds)):
        run_name = f"{name}-{i + 1}-{side}"
        if side == "base":
            data = run_one(tree, common, {}, run_name, keep)
        else:
            data = run_one(REPO, common + head_options, env, run_name, keep)
        runs.append({"side": side, **summarize(data), "modified": data["machine"]["modified_tracked_files"]})
        print(json.dumps(runs[-1]), flush=True)
    result["runs"] = runs
    result["comparison"] = compare([(r["side"], r) for r in runs])
    write_results(name, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
