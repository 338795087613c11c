"""`imgdup worker` with benchmark-only switches, so bench.throughput can measure changes to the
images step before they are wired into agents/images.py. Environment:

IMGDUP_BENCH_INTRA_OP=N     build the embedder with N ONNX Runtime intra-op threads
IMGDUP_BENCH_NOSPIN=1       ... with ONNX Runtime's intra-op spin-waiting off

Micro-batching is part of the product now: bench.throughput's --batch sets
IMGDUP_EMBED_MAX_BATCH for the worker instead of patching it.

Usage: python -m bench.worker [--roles images,...]  (same arguments as `imgdup worker`).
"""

from __future__ import annotations

import os
import sys
from typing import Any


def no_spinning(embedder: Any) -> None:
    """Rebuild an SSCD embedder's ONNX session with intra-op spin-waiting off (same threads)."""
    import onnxruntime as ort

    session = embedder._session
    options = ort.SessionOptions()
    options.intra_op_num_threads = session.get_session_options().intra_op_num_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    embedder._session = ort.InferenceSession(
        session._model_path, sess_options=options, providers=["CPUExecutionProvider"]
    )


def _install_patches() -> None:
    intra = int(os.environ.get("IMGDUP_BENCH_INTRA_OP", "0") or 0)
    nospin = os.environ.get("IMGDUP_BENCH_NOSPIN", "") == "1"
    if intra or nospin:
        import streams.runtime as runtime

        original = runtime.build_embedder  # type: ignore[attr-defined]

        def build(kind: str, **options: Any) -> Any:
            if kind != "clip" and intra:
                options.setdefault("intra_op_threads", intra)
            embedder = original(kind, **options)
            if kind != "clip" and nospin:
                no_spinning(embedder)
            return embedder

        runtime.build_embedder = build  # type: ignore[attr-defined]


def main() -> int:
    _install_patches()
    from imgdup.cli import main as cli_main

    return cli_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
