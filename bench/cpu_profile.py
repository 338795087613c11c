"""Where the worker's CPU goes: a py-spy profile of a bench.throughput run (collapsed stacks) ->
CPU per image by group (embedding, SIFT, verify, decode, JPEG, pHash, ...) and the top functions.

    python -m bench.cpu_profile record [--name cpu-profile] [--rate 100] [-- THROUGHPUT OPTIONS]
    python -m bench.cpu_profile summarize STACKS.txt [--images N] [--name cpu-profile]

`record` runs `py-spy record --subprocesses --format raw` around `python -m bench.throughput
--skip-standalone` (py-spy: `pip install py-spy`; PY_SPY names the binary) and summarizes the
worker process's samples. A sample is one thread seen running (py-spy leaves idle threads out),
so samples / rate = CPU seconds of Python threads; ONNX Runtime's own worker threads run no
Python and are not sampled (the run's measured worker CPU is printed beside the sampled total).
Each sample goes to the group of its innermost frame that a rule names (RULES, in order), so
PIL's encoder under storage_jpeg counts as "JPEG (stored copy)" and psycopg under the store as
"psycopg/SQL".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import machine, table, write_results

REPO = Path(__file__).resolve().parent.parent

# (group, pattern on "function (file:line)"), innermost matching frame wins; first rule on ties.
RULES: list[tuple[str, str]] = [
    ("embedding (ONNX)", r"\bembed\w* \(.*imgdup_core/embedding\.py|onnxruntime"),
    ("JPEG (stored copy encode/decode)", r"\b(storage_jpeg|load_rgb) \("),
    ("SIFT extraction", r"\b(extract_sift|extract_features|_detect|working_gray) \("),
    ("pHash", r"imgdup_core/hashing\.py|imagehash|fftpack"),
    ("frame finder", r"imgdup_core/framing\.py"),
    ("decode (upload)", r"\bdecode_image \(|imgdup_core/(decode|pixels)\.py"),
    (
        "verify (match, geometry, SSIM, fusion)",
        r"imgdup_core/(verify|geometry|similarity|slot|fusion|explain|sift)\.py",
    ),
    ("vector store", r"imgdup/vectors/"),
    ("blob store", r"imgdup/blobs/"),
    ("psycopg/SQL", r"psycopg"),
    ("Kafka/Faust", r"[(/](faust|aiokafka|kafka|mode|confluent_kafka|croniter|tansu)/"),
    ("JSON/pydantic", r"pydantic|[(/]json/|orjson"),
    ("logging/metrics", r"[(/]logging/|prometheus_client"),
    ("asyncio", r"[(/]asyncio/|selectors\.py|uvloop"),
    ("thread pool", r"concurrent/futures|threading\.py"),
    ("imgdup (other)", r"[(/](imgdup|agents|streams|schemas|imgdup_core)/"),
]
_COMPILED = [(group, re.compile(pattern)) for group, pattern in RULES]
OTHER = "other"
# A thread whose innermost frame is one of these is blocked waiting (an idle pool thread on its
# queue, an event loop or the metrics server in select, a lock or sleep). py-spy is meant to
# leave idle threads out, but on this machine it counted them: they are taken out here.
IDLE = re.compile(
    r"^(_worker \(.*concurrent/futures/thread\.py|\w*Selector\.select \(.*selectors\.py"
    r"|wait \(.*threading\.py|_wait_for_tstate_lock \(|sleep \()"
)


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) lines -> (frames root first, count)."""
    out: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def process_of(frames: list[str]) -> str:
    """The process a sample came from (--subprocesses puts `process PID:"CMDLINE"` first)."""
    return frames[0] if frames and frames[0].startswith("process ") else ""


def group_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for group, pattern in _COMPILED:
            if pattern.search(frame):
                return group
    return OTHER


def summarize_samples(
    samples: list[tuple[list[str], int]], process_filter: str = "bench.worker"
) -> dict[str, Any]:
    """Samples (of the processes whose command line contains `process_filter`, when the stacks
    name their process): per group and per innermost function (self), as counts."""
    groups: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = idle = 0
    for frames, count in samples:
        process = process_of(frames)
        if process and process_filter not in process:
            continue
        python = [f for f in frames if not f.startswith(("process ", "thread "))]
        if python and IDLE.search(python[-1]):
            idle += count
            continue
        total += count
        groups[group_of(python)] += count
        functions[python[-1] if python else "(no Python frame)"] += count
    return {
        "samples": total,
        "idle_samples": idle,
        "groups": dict(groups),
        "functions": dict(functions.most_common(40)),
    }


def markdown(result: dict[str, Any]) -> str:
    summary, rate, images = result["summary"], result["rate"], result["images"]
    total = summary["samples"]
    worker_ms = result["worker_cpu_s"] / images * 1e3 if result.get("worker_cpu_s") else None

    def ms(count: int) -> float:
        return float(count / rate / images * 1e3)

    def scaled(count: int) -> float:
        return float(count / max(1, total) * worker_ms) if worker_ms is not None else float("nan")

    lines = [
        f"### Where the worker's CPU goes: py-spy, {rate} Hz, {images} images",
        "",
        f"Machine: {result['machine']['cores']} cores ({result['machine']['cpu']}), load average at start"
        f" {result['machine']['loadavg_at_start'][0]:.1f}. Busy samples (a Python thread running or"
        f" runnable, idle waits left out): {total / rate:.1f} thread-s = {ms(total):.0f} ms per image"
        + (
            f"; the worker process's measured CPU: {result['worker_cpu_s']:.1f} s ="
            f" {worker_ms:.0f} ms per image. On a loaded machine a runnable thread waits for a"
            " core, so busy samples exceed CPU; the last column spreads the measured CPU by the"
            " samples' shares (ONNX Runtime's own pool thread runs no Python and is not sampled:"
            " embedding's share is a lower bound)."
            if worker_ms is not None
            else "."
        ),
        "",
        table(
            ["group (innermost named frame)", "samples", "share", "busy ms per image", "CPU ms per image"],
            [
                [g, n, f"{n / max(1, total):.1%}", ms(n), scaled(n)]
                for g, n in sorted(summary["groups"].items(), key=lambda kv: -kv[1])
            ],
        ),
        "",
        "Top functions by self time (innermost Python frame, idle waits left out):",
        "",
        table(
            ["function (file:line)", "samples", "share", "CPU ms per image"],
            [
                [f.replace("|", "\\|"), n, f"{n / max(1, total):.1%}", scaled(n)]
                for f, n in list(summary["functions"].items())[:25]
            ],
        ),
    ]
    return "\n".join(lines)


def record(args: argparse.Namespace, rest: list[str]) -> dict[str, Any]:
    """bench.throughput with py-spy attached to its worker process(es) from the saturation phase
    to the end (start-up, model loading and warm-up left out)."""
    import psutil  # type: ignore[import-untyped]

    spy = os.environ.get("PY_SPY", "py-spy")
    out = Path(tempfile.mkdtemp(prefix="bench-cpu-profile-"))
    run_name = f"{args.name}-run"
    cmd = [sys.executable, "-m", "bench.throughput", "--skip-standalone", "--name", run_name, *rest]
    bench = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    spies: list[subprocess.Popen[bytes]] = []
    assert bench.stdout is not None
    for line in bench.stdout:
        print(line, end="", flush=True)
        if line.startswith("saturation:") and not spies:
            workers = [
                p
                for p in psutil.Process(bench.pid).children(recursive=True)
                if "bench.worker" in " ".join(p.cmdline())
            ]
            for n, worker in enumerate(workers):
                target = out / f"stacks-{n}.txt"
                spy_cmd = [spy, "record", "--pid", str(worker.pid), "--format", "raw"]
                spy_cmd += ["--rate", str(args.rate), "-o", str(target)]
                spies.append(subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL))
    if bench.wait() != 0:
        raise SystemExit(f"bench.throughput failed ({bench.returncode})")
    for spy_process in spies:
        spy_process.wait(timeout=60)
    stacks = out / "stacks.txt"
    stacks.write_text("".join(p.read_text() for p in sorted(out.glob("stacks-*.txt"))))
    results = REPO / "bench" / "results"
    run = json.loads((results / f"{run_name}.json").read_text())
    for ext in ("json", "md"):
        (results / f"{run_name}.{ext}").rename(out / f"{run_name}.{ext}")
    worker = sum(
        v
        for phase in ("saturation", "latency")
        for k, v in run[phase]["cpu_seconds"].items()
        if k.startswith("worker")
    )
    images = run["saturation"]["images"] + run["feed"]["phase_b"]["images"]
    return {
        "stacks": str(stacks),
        "images": images,
        "worker_cpu_s": worker,
        "run": str(out),
        "pairs": run["saturation"]["pairs"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_profile", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["record", "summarize"])
    parser.add_argument("stacks", nargs="?", help="summarize: py-spy raw output")
    parser.add_argument("--images", type=int, default=0, help="summarize: images the run processed")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--name", default="cpu-profile")
    args = parser.parse_args(argv)
    info: dict[str, Any] = {"machine": machine(), "rate": args.rate}
    if args.mode == "record":
        info.update(record(args, rest))
    else:
        if not args.stacks or args.images <= 0:
            parser.error("summarize needs STACKS.txt and --images")
        info.update({"stacks": args.stacks, "images": args.images})
    info["summary"] = summarize_samples(parse_raw(Path(info["stacks"]).read_text()))
    write_results(args.name, info, markdown(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
