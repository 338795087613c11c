"""The benchmark's exported evidence and the moderators' verdicts -> a refitted fusion model, evaluated
against the running one on the benchmark's TEST split and on held-back verdicts, and written as
<models dir>/<version>.json only when it is worse on neither (`imgdup retrain`).

imgdup never imports the benchmark: `python -m bench.quality export-evidence` writes its training
and test evidence as a file, and this command says in one line when that file is absent. Only the
fusion is refitted (weights, bias, threshold) on evidence already measured; the measurement
settings and the ANN cut-off stay those of the running model, so a retrained version measures as
its base and its verdicts compare with the stored ones."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from imgdup.settings import Settings
from imgdup.store import moderation
from imgdup.verifiers import (
    MODEL_SUFFIX,
    VerifierUnavailable,
    base_verifier,
    known_verifiers,
    resolve_verifier,
)
from imgdup_core.evidence import Evidence
from imgdup_core.fitting import Labelled, Quality, fit_fusion, quality
from imgdup_core.fusion import FusionModel, model_to_dict
from imgdup_core.verifier_config import VERIFIERS, VerifierConfig

# What `python -m bench.quality export-evidence` writes (bench/quality/export.py).
BENCHMARK_FORMAT = "imgdup-benchmark-evidence/1"
# The training precision the threshold is chosen for, as calibration (bench.quality.calibrate).
TARGET_PRECISION = 0.995
# One verdict in this many (by pair id, so a rerun holds back the same ones) is kept out of the
# fit to evaluate on.
HOLD_BACK_EVERY = 4


class RetrainError(RuntimeError):
    """Why retraining cannot run, in one line."""


@dataclass(frozen=True)
class Outcome:
    version: str
    incumbent: str
    written: Path | None
    worse_on: list[str]
    report: dict[str, Any]


def default_benchmark_evidence(settings: Settings, base: str) -> Path:
    return settings.data_dir / "bench-quality" / f"training-evidence-{base}.jsonl"


def held_back(pair_id: str) -> bool:
    return uuid.UUID(pair_id).int % HOLD_BACK_EVERY == 0


def _measures_like(one: VerifierConfig, other: VerifierConfig) -> bool:
    """Same measurement settings: evidence of one is evidence of the other."""
    strip = {"version": "", "fusion": None}
    return dataclasses.replace(one, **strip) == dataclasses.replace(other, **strip)  # type: ignore[arg-type]


def _evidence(fields: dict[str, Any]) -> Evidence:
    """Evidence from a row or an exported dict; a NULL column of a field that has a non-None
    default (a pair measured before the field existed) takes the default."""
    values = {
        field.name: fields[field.name]
        for field in dataclasses.fields(Evidence)
        if field.name in fields
        and (fields[field.name] is not None or field.default in (None, dataclasses.MISSING))
    }
    return Evidence(**values)


def _export_options(base: VerifierConfig) -> str:
    """export-evidence's options for `base`'s evidence: its own version on the full SSCD's cosines;
    for another embedder's model (fused-v3-distilled), the full SSCD's version measuring alike."""
    embedder = base.fusion.embedder
    if embedder == "sscd":
        return f"--verifier {base.version}"
    alike = next(
        (c for c in VERIFIERS.values() if c.fusion.embedder == "sscd" and _measures_like(c, base)), base
    )
    return f"--verifier {alike.version} --embedder {embedder}"


def load_benchmark_evidence(
    path: Path, base: VerifierConfig, model: FusionModel | None = None
) -> tuple[dict[str, Any], list[Labelled], list[Labelled]]:
    """(header, train rows, test rows) of an exported file; RetrainError when it is absent or
    was measured by other settings than `base`'s or on another embedder than `model`'s (default
    base's own: a refit's embedder is its base's)."""
    model = model or base.fusion
    if not path.is_file():
        raise RetrainError(
            f"the benchmark's training evidence is not at {path}: write it with `python -m bench.quality"
            f" export-evidence {_export_options(base)} --out {path}` (needs the bench extra and its"
            " photos), or pass --benchmark-evidence"
        )
    lines = path.read_text().splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
        rows = [json.loads(line) for line in lines[1:] if line.strip()]
        split: dict[str, list[Labelled]] = {"train": [], "test": []}
        for row in rows:
            example = Labelled(_evidence(row["evidence"]), int(row["label"]), float(row["weight"]))
            split[row["split"]].append(example)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise RetrainError(f"{path} is not benchmark evidence: {exc!r}") from exc
    if header.get("format") != BENCHMARK_FORMAT:
        raise RetrainError(f"{path} is not {BENCHMARK_FORMAT} (format {header.get('format')!r})")
    measured_by = VERIFIERS.get(str(header.get("verifier")))
    if measured_by is None or not _measures_like(measured_by, base):
        raise RetrainError(
            f"{path} was measured by {header.get('verifier')!r}, not as {base.version} measures"
        )
    if (header.get("embedder"), header.get("embedding_model")) != (model.embedder, model.embedding_model):
        raise RetrainError(
            f"{path} was measured on {header.get('embedder')} embeddings;"
            f" {base.version} runs on {model.embedder}"
        )
    if not split["train"] or not split["test"]:
        raise RetrainError(f"{path} holds no train or no test rows")
    return header, split["train"], split["test"]


def verdict_examples(
    rows: Sequence[dict[str, Any]], comparable: Callable[[str | None], bool], weight: float
) -> tuple[list[Labelled], list[Labelled]]:
    """(training, held back) examples from verdict rows measured like the running model."""
    train: list[Labelled] = []
    hold: list[Labelled] = []
    for row in rows:
        if not comparable(row["verifier_version"]):
            continue
        fields = {**row, "embedding_cosine": row["cosine"], "exact": bool(row.get("exact"))}
        example = Labelled(_evidence(fields), 1 if row["verdict"] == "confirmed" else 0, weight)
        (hold if held_back(row["pair_id"]) else train).append(example)
    return train, hold


def worse(incumbent: Quality, candidate: Quality) -> list[str]:
    """What the candidate loses against the incumbent on one evaluation set (nothing to judge
    when the set is empty)."""
    if incumbent.examples == 0:
        return []
    lost = []
    for metric in ("precision", "recall"):
        mine, theirs = getattr(candidate, metric), getattr(incumbent, metric)
        if theirs is not None and (mine is None or mine < theirs):
            lost.append(metric)
    return lost


def _next_version(models_dir: Path, base: str) -> str:
    n = 1
    while (models_dir / f"{base}-r{n}{MODEL_SUFFIX}").exists():
        n += 1
    return f"{base}-r{n}"


async def retrain(
    settings: Settings,
    pool: AsyncConnectionPool,
    *,
    benchmark_evidence: Path | None = None,
    version: str | None = None,
    verdict_weight: float = 1.0,
    target_precision: float = TARGET_PRECISION,
    write: bool = True,
) -> Outcome:
    try:
        running = resolve_verifier(settings).config
        known = known_verifiers(settings.models_dir)
        # Its own lineage, not the first built-in that measures alike (fused-v7 is not fused-v6's).
        base = base_verifier(settings)
    except VerifierUnavailable as exc:
        raise RetrainError(str(exc)) from exc
    if not _measures_like(base, running):
        raise RetrainError(
            f"{running.version} does not measure as its base {base.version}: nothing to retrain from"
        )
    path = benchmark_evidence or default_benchmark_evidence(settings, base.version)
    # The running model's fusion, not base's: a VerifierConfig named fused-v3 with another fusion is
    # refused (verifier_config.VerifierConfig.__post_init__), which made refitting fused-v3-r1 fail.
    header, bench_train, bench_test = load_benchmark_evidence(path, base, running.fusion)

    def comparable(name: str | None) -> bool:
        config = known.get(name or "")
        return config is not None and _measures_like(config, running)

    verdict_train, verdict_hold = verdict_examples(
        await moderation.verdict_evidence(pool), comparable, verdict_weight
    )
    incumbent = running.fusion
    weights, bias, threshold = fit_fusion(
        bench_train + verdict_train, incumbent.features, target_precision=target_precision
    )
    candidate = dataclasses.replace(
        incumbent, weights=tuple(float(w) for w in weights), bias=float(bias), threshold=float(threshold)
    )
    report = {
        name: {
            "incumbent": dataclasses.asdict(quality(incumbent, rows)),
            "candidate": dataclasses.asdict(quality(candidate, rows)),
        }
        for name, rows in (("benchmark_test", bench_test), ("held_back_verdicts", verdict_hold))
    }
    worse_on = [
        f"{name} {metric}"
        for name, rows in (("benchmark_test", bench_test), ("held_back_verdicts", verdict_hold))
        for metric in worse(quality(incumbent, rows), quality(candidate, rows))
    ]
    new_version = version or _next_version(settings.models_dir, base.version)
    if new_version in known:
        raise RetrainError(f"version {new_version} exists: versions are immutable, stored verdicts name them")
    training = {
        "benchmark": {k: header.get(k) for k in ("set", "seed", "verifier")}
        | {"train_rows": len(bench_train)},
        "verdicts": len(verdict_train),
        "held_back_verdicts": len(verdict_hold),
        "verdict_weight": verdict_weight,
        "target_precision": target_precision,
        "incumbent": running.version,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    written = None
    if write and not worse_on:
        written = _write_model(settings.models_dir, new_version, base.version, candidate, training, report)
    return Outcome(new_version, running.version, written, worse_on, report)


def _write_model(
    models_dir: Path,
    version: str,
    base: str,
    model: FusionModel,
    training: dict[str, Any],
    report: dict[str, Any],
) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{version}{MODEL_SUFFIX}"
    document = {
        "version": version,
        "base": base,
        **model_to_dict(model),
        "training": training,
        "evaluation": report,
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)  # a worker never reads half a model
    return path


def _show(quality_row: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.2f} %"

    precision, recall = pct(quality_row["precision"]), pct(quality_row["recall"])
    return f"precision {precision}, recall {recall} ({quality_row['examples']} pairs)"


def cmd_retrain(args: argparse.Namespace) -> int:
    from imgdup.store.db import open_pool

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))

    async def go() -> Outcome:
        pool = await open_pool(settings.database_dsn(), max_size=2)
        try:
            return await retrain(
                settings,
                pool,
                benchmark_evidence=args.benchmark_evidence,
                version=args.version,
                verdict_weight=args.verdict_weight,
                write=not args.dry_run,
            )
        finally:
            await pool.close()

    try:
        outcome = asyncio.run(go())
    except (RetrainError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, row in outcome.report.items():
        print(f"{name:20s} {outcome.incumbent}: {_show(row['incumbent'])}")
        print(f"{'':20s} {outcome.version}: {_show(row['candidate'])}")
    if outcome.written is not None:
        print(f"wrote {outcome.written}; run it with IMGDUP_VERIFIER_VERSION={outcome.version}")
    elif outcome.worse_on:
        print(
            f"kept {outcome.incumbent}: the refit is worse on {', '.join(outcome.worse_on)}; nothing written"
        )
    else:
        print("dry run: nothing written")
    return 0


def add_command(
    sub: Any, with_data_dir: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    retrain_cmd = with_data_dir(
        sub.add_parser(
            "retrain", help="refit the verifier's fusion from the benchmark and moderators' verdicts"
        )
    )
    retrain_cmd.add_argument(
        "--benchmark-evidence",
        type=Path,
        help="python -m bench.quality export-evidence's file (default <data dir>/bench-quality/)",
    )
    retrain_cmd.add_argument("--version", help="the new model's version (default <base>-r<N>)")
    retrain_cmd.add_argument(
        "--verdict-weight", type=float, default=1.0, help="weight of one verdict in the fit"
    )
    retrain_cmd.add_argument("--dry-run", action="store_true", help="evaluate and report, write nothing")
    retrain_cmd.set_defaults(func=cmd_retrain)
