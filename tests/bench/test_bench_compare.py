"""bench.compare's pure parts: run order, --head-env, per-run numbers, medians, ratio, table."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bench import compare


def fake_run(commit: str, worker_s: float, pg_s: float, rate: float, pairs: dict[str, int]) -> dict[str, Any]:
    return {
        "machine": {"commit": commit, "cores": 2, "loadavg_at_start": [1.5, 1.0, 1.0]},
        "loadavg_at_end": [2.5, 1.0, 1.0],
        "saturation": {
            "images": 160,
            "end_to_end_images_per_s": rate,
            "cpu_seconds": {"worker": worker_s, "postgres": pg_s, "bench (posting, image server)": 9.0},
            "pairs": pairs,
            "candidates_per_image": 3.29,
        },
    }


def test_order_is_abba() -> None:
    assert compare.order(2) == ["base", "head", "head", "base"]
    assert compare.order(1) == ["base", "head"]


def test_head_env_settings_bench_throughput_owns_become_options() -> None:
    env, options = compare.split_env(["IMGDUP_EMBEDDER=sscd_distilled", "IMGDUP_FOO=1"])
    assert env == {"IMGDUP_FOO": "1"}
    assert options == ["--embedder", "sscd_distilled"]
    with pytest.raises(ValueError):
        compare.split_env(["nonsense"])


def test_summarize_leaves_the_benchmark_process_out_of_stack_cpu() -> None:
    s = compare.summarize(fake_run("abc", worker_s=16.0, pg_s=0.8, rate=10.0, pairs={"rejected": 491}))
    assert s["stack_cpu_ms_per_image"] == pytest.approx((16.0 + 0.8) / 160 * 1e3)
    assert s["worker_cpu_ms_per_image"] == pytest.approx(100.0)
    assert s["images_per_s_per_core"] == pytest.approx(5.0)
    assert s["images_per_cpu_s"] == pytest.approx(1e3 / 105.0)
    assert (s["pairs_rejected"], s["pairs_clustered"]) == (491, 0)


def test_compare_medians_ratio_and_verdicts() -> None:
    pairs = {"rejected": 491, "clustered": 35}
    base = [compare.summarize(fake_run("b", w, 0.0, 8.0, pairs)) for w in (20.0, 22.0)]
    head = [compare.summarize(fake_run("h", w, 0.0, 11.0, pairs)) for w in (10.0, 12.0)]
    out = compare.compare([("base", base[0]), ("head", head[0]), ("head", head[1]), ("base", base[1])])
    assert out["median"]["base"]["worker_cpu_ms_per_image"] == pytest.approx(21.0 / 160 * 1e3)
    assert out["ratio_stack_cpu_base_over_head"] == pytest.approx(21.0 / 11.0)
    assert out["same_verdicts"]
    other = compare.summarize(fake_run("h", 10.0, 0.0, 11.0, {"rejected": 490, "clustered": 35}))
    assert not compare.compare([("base", base[0]), ("head", other)])["same_verdicts"]


def test_ratio_of_zero_head_is_nan() -> None:
    assert math.isnan(compare.ratio(1.0, 0.0))
    assert compare.ratio(132.0, 44.0) == pytest.approx(3.0)


def test_markdown_names_both_commits_and_the_ratio() -> None:
    pairs = {"rejected": 491, "clustered": 35}
    runs = [
        {"side": "base", **compare.summarize(fake_run("a02148a", 20.0, 1.0, 8.0, pairs))},
        {"side": "head", **compare.summarize(fake_run("5613b00", 10.0, 1.0, 11.0, pairs))},
    ]
    result = {
        "machine": {"cores": 2, "cpu": "Intel Xeon", "python": "3.11.7"},
        "embedder": "sscd",
        "images": 240,
        "head_env": [],
        "base": {"label": "a02148a"},
        "head": {"label": "5613b00"},
        "runs": runs,
        "comparison": compare.compare([(r["side"], r) for r in runs]),
    }
    text = compare.markdown(result)
    assert "a02148a (base)" in text and "5613b00 (HEAD)" in text
    assert "stack 1.91x" in text
    assert "the same in every run" in text


def test_markdown_tells_run_to_run_verdict_variation_from_a_commit_difference() -> None:
    def result(pairs_by_run: list[tuple[str, dict[str, int]]]) -> dict[str, Any]:
        runs = [
            {"side": side, **compare.summarize(fake_run("x", 10.0, 1.0, 8.0, pairs))}
            for side, pairs in pairs_by_run
        ]
        return {
            "machine": {"cores": 2, "cpu": "Xeon", "python": "3.11.7"},
            "embedder": "sscd",
            "images": 240,
            "head_env": [],
            "base": {"label": "b"},
            "head": {"label": "h"},
            "runs": runs,
            "comparison": compare.compare([(r["side"], r) for r in runs]),
        }

    a, b = {"rejected": 491, "clustered": 35}, {"rejected": 492, "clustered": 34}
    varying = compare.markdown(result([("base", a), ("head", a), ("head", b), ("base", b)]))
    assert "run-to-run variation" in varying
    apart = compare.markdown(result([("base", a), ("head", b), ("head", b), ("base", a)]))
    assert "not a like-for-like comparison" in apart
    as_read_back = json.loads(json.dumps(result([("base", a), ("head", a), ("head", b), ("base", b)])))
    assert compare.markdown(as_read_back) == varying
