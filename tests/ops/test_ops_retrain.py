"""imgdup.ops.retrain on a real Postgres: a tiny exported benchmark file and moderators' verdicts over
evidence stored by the verifier's own store calls in; a versioned model file written only when the
refit is worse neither on the benchmark's test rows nor on the held-back verdicts, and the worker's
resolver picking it by version. No benchmark is run: the evidence rows are made here."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from imgdup import cli, ids
from imgdup.ops.retrain import BENCHMARK_FORMAT, RetrainError, held_back, retrain
from imgdup.settings import Settings
from imgdup.store import moderation, pairs
from imgdup.store.db import open_pool
from imgdup.store.events import begin_event
from imgdup.verifiers import resolve_verifier
from imgdup_core.verifier_config import DEFAULT_VERIFIER_FOR_EMBEDDER, VERIFIERS
from schemas import AdImagesCreatedV1, EvidenceV1, VersionsV1

# What the worker runs when IMGDUP_VERIFIER_VERSION is not set (fused-v26 since issue 11).
RUNNING = DEFAULT_VERIFIER_FOR_EMBEDDER["sscd"]


def _evidence(rng: random.Random, duplicate: bool) -> dict[str, Any]:
    """Evidence as the verifier measures it: copies align with a high cosine, SSIM and overlap;
    other photos mostly do not align, and the few that do disagree where textured."""
    if duplicate:
        return {
            "phash_distance": rng.randint(0, 10),
            "phash_mirrored": False,
            "embedding_cosine": rng.uniform(0.86, 0.99),
            "sift_inliers": rng.randint(40, 200),
            "sift_mirrored": False,
            "ssim": rng.uniform(0.6, 0.95),
            "sift_matches": 250,
            "overlap": rng.uniform(0.6, 1.0),
            "mismatch": rng.uniform(0.0, 0.1),
            "compared": "full/full",
        }
    aligned = rng.random() < 0.2
    return {
        "phash_distance": rng.randint(18, 40),
        "phash_mirrored": False,
        "embedding_cosine": rng.uniform(0.3, 0.8),
        "sift_inliers": rng.randint(10, 30) if aligned else 0,
        "sift_mirrored": False,
        "ssim": rng.uniform(0.1, 0.4) if aligned else None,
        "sift_matches": 30,
        "overlap": rng.uniform(0.1, 0.5) if aligned else 0.0,
        "mismatch": rng.uniform(0.4, 0.9) if aligned else None,
        "compared": "full/full",
    }


def _benchmark_file(path: Path, rows_per_split: int = 120, verifier: str = RUNNING) -> Path:
    """What `python -m bench.quality export-evidence --verifier VERIFIER` writes."""
    rng = random.Random(7)
    header = {
        "format": BENCHMARK_FORMAT,
        "set": "set-test",
        "seed": 7,
        "verifier": verifier,
        "embedder": "sscd",
        "embedding_model": "sscd-disc-mixup-int8",
    }
    lines = [json.dumps(header)]
    for split in ("train", "test"):
        for i in range(rows_per_split):
            label = int(i % 3 == 0)
            row = {
                "split": split,
                "label": label,
                "weight": 1.0,
                "kind": "x",
                "evidence": _evidence(rng, bool(label)),
            }
            lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
async def pool(clean_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(clean_db, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("IMGDUP_"):
            monkeypatch.delenv(name)
    return Settings(data_dir=tmp_path)


async def _stored_verdicts(
    pool: AsyncConnectionPool, labelled: list[tuple[bool, str]], verifier: str = RUNNING
) -> list[str]:
    """One pair per (evidence is a duplicate, moderator's verdict), stored as verifier `verifier` and
    the admin page store them; returns the pair ids."""
    versions = VersionsV1(embedding_model="sscd-disc-mixup-int8@test", verifier=verifier)
    rng = random.Random(11)
    pair_ids = []
    for number, (duplicate, verdict) in enumerate(labelled):
        ad_x, ad_y = 1000 + 2 * number, 1001 + 2 * number
        images = []
        for ad in (ad_x, ad_y):
            url = f"https://cdn.example/{ad}.jpg"
            event = AdImagesCreatedV1(
                schema_version=1,
                event_id=f"evt-{ad}",
                ad_id=ad,
                source="olx.pt",
                images=[url],
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
            await begin_event(pool, event)
            images.append((ids.image_id(ad, url), ad))
        (a, ad_a), (b, ad_b) = sorted(images)
        pair = ids.pair_id(a, b)
        fields = _evidence(rng, duplicate)
        await pairs.add_candidates(
            pool,
            [pairs.CandidateRow(pair, a, ad_a, b, ad_b, fields["embedding_cosine"], False)],
            verifier_version=versions.verifier,
        )
        evidence = EvidenceV1(**fields, score=0.99 if duplicate else 0.01)
        await pairs.save_verdict(pool, pairs.VerdictRow(pair, duplicate, 0.9, evidence, versions))
        assert await moderation.record_verdict(pool, pair, verdict=verdict, moderator="ana", note=None)
        pair_ids.append(pair)
    return pair_ids


@pytest.mark.parametrize(
    ("pinned", "base"),
    # The default (IMGDUP_VERIFIER_VERSION unset) and versions set explicitly: each refits itself,
    # fused-v7 too, though fused-v6 measures as it does.
    [(None, "fused-v26"), ("fused-v9", "fused-v9"), ("fused-v3", "fused-v3"), ("fused-v7", "fused-v7")],
    ids=["default", "pinned-fused-v9", "pinned-fused-v3", "pinned-fused-v7"],
)
async def test_a_refit_that_is_not_worse_is_written_and_the_worker_runs_it_by_version(
    pool: AsyncConnectionPool, settings: Settings, tmp_path: Path, pinned: str | None, base: str
) -> None:
    if pinned is not None:
        settings = Settings(data_dir=settings.data_dir, verifier_version=pinned)
    honest = [(i % 2 == 0, "confirmed" if i % 2 == 0 else "not_duplicate") for i in range(24)]
    pair_ids = await _stored_verdicts(pool, honest, verifier=base)
    assert any(held_back(p) for p in pair_ids) and not all(held_back(p) for p in pair_ids)
    bench = _benchmark_file(tmp_path / "bench.jsonl", verifier=base)

    outcome = await retrain(settings, pool, benchmark_evidence=bench)

    assert outcome.incumbent == base
    assert outcome.worse_on == [] and outcome.version == f"{base}-r1"
    assert outcome.written == settings.models_dir / f"{base}-r1.json"
    report = outcome.report
    for name in ("benchmark_test", "held_back_verdicts"):
        incumbent, candidate = report[name]["incumbent"], report[name]["candidate"]
        assert candidate["precision"] >= incumbent["precision"] and candidate["recall"] >= incumbent["recall"]
    assert report["held_back_verdicts"]["candidate"]["examples"] == sum(held_back(p) for p in pair_ids)
    model = json.loads(outcome.written.read_text())
    assert model["base"] == base and model["embedder"] == "sscd"
    assert model["training"]["verdicts"] == len(pair_ids) - sum(held_back(p) for p in pair_ids)
    chosen = resolve_verifier(settings.model_copy(update={"verifier_version": f"{base}-r1"}))
    assert chosen.config.version == f"{base}-r1"
    assert chosen.config.fusion.weights == tuple(model["weights"])
    # The refit measures as its base: the same settings, only the fusion's numbers refitted.
    assert dataclasses.replace(chosen.config, version=base, fusion=VERIFIERS[base].fusion) == VERIFIERS[base]
    # The next refit gets the next version; an existing one is never overwritten.
    again = await retrain(settings, pool, benchmark_evidence=bench, write=False)
    assert again.version == f"{base}-r2" and again.written is None
    # Refitting the refit continues the lineage: it measures as the same base.
    refit = settings.model_copy(update={"verifier_version": f"{base}-r1"})
    onwards = await retrain(refit, pool, benchmark_evidence=bench, write=False)
    assert onwards.incumbent == f"{base}-r1" and onwards.version == f"{base}-r2"
    with pytest.raises(RetrainError, match="exists"):
        await retrain(settings, pool, benchmark_evidence=bench, version=f"{base}-r1")


async def test_a_refit_worse_on_the_benchmark_is_refused_and_nothing_is_written(
    pool: AsyncConnectionPool, settings: Settings, tmp_path: Path
) -> None:
    # Verdicts that call other photos duplicates, weighed heavily: the refit learns to accept
    # what the benchmark's test rows say are different photos.
    poisoned = [(False, "confirmed") for _ in range(16)]
    await _stored_verdicts(pool, poisoned)
    outcome = await retrain(
        settings, pool, benchmark_evidence=_benchmark_file(tmp_path / "b.jsonl"), verdict_weight=50
    )
    assert outcome.written is None
    assert "benchmark_test precision" in outcome.worse_on
    test = outcome.report["benchmark_test"]
    assert test["candidate"]["precision"] < test["incumbent"]["precision"]
    assert not settings.models_dir.exists() or list(settings.models_dir.iterdir()) == []


async def test_without_the_benchmark_file_it_says_how_to_make_one(
    pool: AsyncConnectionPool, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(RetrainError, match="export-evidence") as refused:
        await retrain(settings, pool, benchmark_evidence=tmp_path / "absent.jsonl")
    assert "\n" not in str(refused.value)
    assert f"export-evidence --verifier {RUNNING} --out" in str(refused.value)  # a command that runs
    # The distilled embedder's model measures as fused-v3, on its own cosines: a --verifier choice.
    distilled = Settings(data_dir=settings.data_dir, embedder="sscd_distilled")
    with pytest.raises(RetrainError, match="--verifier fused-v3 --embedder sscd_distilled --out"):
        await retrain(distilled, pool)
    wrong = _benchmark_file(tmp_path / "clip.jsonl")
    wrong.write_text(wrong.read_text().replace('"embedder": "sscd"', '"embedder": "clip"', 1))
    with pytest.raises(RetrainError, match="clip embeddings"):
        await retrain(settings, pool, benchmark_evidence=wrong)


def test_the_command_line_says_it_in_one_line(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    clean_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", clean_db)
    code = cli.main(
        ["retrain", "--data-dir", str(tmp_path), "--benchmark-evidence", str(tmp_path / "none.jsonl")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export-evidence" in err[0]
