"""`calibrate --pool broad --extra-train default` (fused-v10): the fit takes the broad pool's train
candidates and the default pool's train candidates, both measured with the verifier's settings, and
never a pair with an image of the broad test split (nor a default-pool pair of one of its photos)."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import imgdup_core.embedding
from bench.quality import __main__ as quality_main
from bench.quality import analysis, calibrate, lodo_extra
from bench.quality.analysis import Analysed
from bench.quality.calibrate import Candidate
from bench.quality.dataset import BenchSet, SetImage
from imgdup_core.evidence import Evidence
from imgdup_core.verifier_config import FUSED_V10

Measured = tuple[Candidate, Evidence, float]


def _images(prefix: str, split: str, groups: list[str]) -> list[SetImage]:
    return [
        SetImage(f"{prefix}-{group}__{family}.jpg", group, family, split, "0" * 64, domain="food")
        for group in groups
        for family in ("original", "resize")
    ]


# "shared" is a photo of both pools: on the broad test side, and in the default pool's train split.
BROAD = BenchSet(
    Path("broad"),
    2024,
    (*_images("b", "train", ["p1", "p2", "p3"]), *_images("b", "test", ["shared", "t1"])),
    {},
    pool="broad",
)
DEFAULT = BenchSet(
    Path("default"),
    2024,
    (*_images("d", "train", ["q1", "q2", "shared"]), *_images("d", "test", ["u1"])),
    {},
)


def _analysed(images: Any, *args: Any, **kwargs: Any) -> Analysed:
    """Every image close to every other: the exact search proposes every pair."""
    n = len(images)
    rng = np.random.default_rng(0)
    vectors = np.ones(16, dtype=np.float32) + 0.05 * rng.standard_normal((n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    zeros = np.zeros(n, dtype=np.uint64)
    return Analysed(
        [i.name for i in images],
        vectors,
        zeros,
        zeros,
        np.zeros((n, 8, 32), dtype=np.uint8),
        ["0" * 64] * n,
        np.zeros_like(vectors),
        np.zeros(n, dtype=bool),
    )


def _evidence(candidate: Candidate, rng: random.Random) -> Evidence:
    if candidate.label:
        return Evidence(
            rng.randint(0, 8), False, rng.uniform(0.85, 1.0), rng.randint(40, 300), False,
            rng.uniform(0.8, 0.99), sift_matches=400, overlap=rng.uniform(0.6, 1.0), mismatch=0.02,
        )  # fmt: skip
    return Evidence(rng.randint(20, 40), False, rng.uniform(0.2, 0.6), 0, False, None)


def _calibrate(monkeypatch: Any, argv: list[str]) -> dict[str, Any]:
    """Run `python -m bench.quality calibrate --dry-run ARGV` on the two tiny pools (embedding and
    measuring stubbed) and return what was measured with which settings and what was fitted."""
    seen: dict[str, Any] = {"configs": [], "fitted": None}
    rng = random.Random(5)

    def measure(
        bench: BenchSet, images: Any, analysed: Any, candidates: Any, **kwargs: Any
    ) -> list[Measured]:
        seen["configs"].append((bench.pool, kwargs["config"]))
        return [(c, _evidence(c, rng), 0.0) for c in candidates]

    fit = calibrate.fit_measured

    def fit_measured(measured: list[Measured], *args: Any, **kwargs: Any) -> dict[str, Any]:
        seen["fitted"] = [(c.a, c.b) for c, _, _ in measured]
        return fit(measured, *args, **kwargs)

    monkeypatch.setattr(quality_main, "build_set", lambda **kwargs: BROAD)
    monkeypatch.setattr(lodo_extra, "build_set", lambda **kwargs: DEFAULT)
    monkeypatch.setattr(quality_main, "analyse", lambda bench, images, *a, **k: _analysed(images))
    monkeypatch.setattr(analysis, "analyse", lambda bench, images, *a, **k: _analysed(images))
    monkeypatch.setattr(quality_main, "_embedder", lambda kind="sscd": SimpleNamespace(version="m@1"))
    monkeypatch.setattr(imgdup_core.embedding, "build_embedder", lambda kind: None)
    monkeypatch.setattr(calibrate, "measure_candidates", measure)
    monkeypatch.setattr(lodo_extra, "measure_candidates", measure)
    monkeypatch.setattr(calibrate, "fit_measured", fit_measured)
    assert (
        quality_main.main(["calibrate", "--pool", "broad", "--dry-run", "--verifier", "fused-v10", *argv])
        == 0
    )
    return seen


def test_fused_v10_fits_both_pools_train_pairs_and_none_of_the_broad_test_split(monkeypatch: Any) -> None:
    seen = _calibrate(monkeypatch, ["--extra-train", "default"])
    fitted = seen["fitted"]
    assert seen["configs"] == [("default", FUSED_V10), ("broad", FUSED_V10)]
    pools = {name.split("-")[0] for pair in fitted for name in pair}
    assert pools == {"b", "d"}  # no pair mixes the pools: each set is searched alone
    assert all(a[0] == b[0] for a, b in fitted)
    # Every pair of the two train splits is there (the search proposes all), none of a test side.
    train = {
        prefix: sorted(i.name for i in bench.split("train") if "shared" not in i.name)
        for prefix, bench in (("b", BROAD), ("d", DEFAULT))
    }
    expected = {(a, b) for names in train.values() for k, a in enumerate(names) for b in names[k + 1 :]}
    assert set(fitted) == expected
    test_names = {i.name for i in BROAD.split("test")}
    assert not any(a in test_names or b in test_names for a, b in fitted)
    # The default pool's pairs with a photo of the broad test split are left out.
    assert not any("shared" in a or "shared" in b for a, b in fitted)


def test_without_extra_train_only_the_pools_own_pairs_are_fitted(monkeypatch: Any) -> None:
    seen = _calibrate(monkeypatch, [])
    assert seen["configs"] == [("broad", FUSED_V10)]
    assert {name[0] for pair in seen["fitted"] for name in pair} == {"b"}


def test_extra_train_of_the_same_pool_is_refused(monkeypatch: Any) -> None:
    def build_set(**kwargs: Any) -> BenchSet:
        raise AssertionError("refused before any set is built")

    monkeypatch.setattr(quality_main, "build_set", build_set)
    with pytest.raises(SystemExit, match="--pool already"):
        quality_main.main(["calibrate", "--extra-train", "default", "--dry-run"])
