"""bench.cpu_profile's pure parts: py-spy raw lines, the innermost named frame's group, the table."""

from __future__ import annotations

from bench import cpu_profile

WORKER = 'process 7:"python -m bench.worker";'
POOL = "thread (0x1);_worker (concurrent/futures/thread.py:83);"
LOOP = "thread (0x2);_run_once (/usr/lib/asyncio/base_events.py:1900)"
RAW = "\n".join(
    [
        WORKER + POOL + "storage_jpeg (/r/imgdup_core/decode.py:170);save (/v/PIL/Image.py:2400) 30",
        WORKER
        + POOL
        + "stored_copy (/r/imgdup/analysis/analyse.py:56);extract_sift (/r/imgdup_core/sift.py:66);"
        + "_detect (/r/imgdup_core/sift.py:60) 50",
        WORKER + LOOP + ";execute (/v/psycopg/cursor_async.py:90) 5",
        WORKER + LOOP + ";EpollSelector.select (/usr/lib/selectors.py:468) 10",
        WORKER + POOL[:-1] + " 2",  # a pool thread waiting on its queue
        'process 9:"python -m bench.throughput";thread (0x3);post (/v/httpx/_client.py:1) 99',
    ]
)


def test_parse_raw_keeps_frames_and_counts() -> None:
    samples = cpu_profile.parse_raw(RAW)
    assert len(samples) == 6
    assert samples[0][1] == 30 and samples[0][0][-1].startswith("save (")


def test_innermost_named_frame_decides_the_group() -> None:
    summary = cpu_profile.summarize_samples(cpu_profile.parse_raw(RAW))
    # The benchmark's own process and the loop waiting in select are left out.
    assert (summary["samples"], summary["idle_samples"]) == (85, 12)
    assert summary["groups"] == {
        "JPEG (stored copy encode/decode)": 30,  # PIL under storage_jpeg
        "SIFT extraction": 50,
        "psycopg/SQL": 5,
    }
    assert summary["functions"]["_detect (/r/imgdup_core/sift.py:60)"] == 50


def test_unnamed_process_stacks_are_all_kept() -> None:
    raw = "thread (0x1);embed (/r/imgdup_core/embedding.py:90);run (/v/onnxruntime/x.py:1) 4\n"
    raw += "foo (/x/y.py:1) 1\n"
    summary = cpu_profile.summarize_samples(cpu_profile.parse_raw(raw))
    assert summary["groups"] == {"embedding (ONNX)": 4, "other": 1}


def test_markdown_per_image_milliseconds() -> None:
    summary = cpu_profile.summarize_samples(cpu_profile.parse_raw(RAW))
    result = {
        "machine": {"cores": 2, "cpu": "Xeon", "loadavg_at_start": [1.0]},
        "rate": 100,
        "images": 10,
        "worker_cpu_s": 2.0,
        "summary": summary,
    }
    text = cpu_profile.markdown(result)
    # 50 samples at 100 Hz over 10 images = 50 ms busy per image; 50 / 85 of 200 ms CPU
    assert "| SIFT extraction | 50 | 58.8% | 50.0 | 118 |" in text
    assert "200 ms per image" in text
