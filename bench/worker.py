"""`imgdup worker` with benchmark-only switches, so bench.throughput can measure changes to the
images step before they are wired into agents/images.py. Environment:

IMGDUP_BENCH_INTRA_OP=N     build the embedder with N ONNX Runtime intra-op threads
IMGDUP_BENCH_NOSPIN=1       ... with ONNX Runtime's intra-op spin-waiting off
IMGDUP_BENCH_BATCH=N        share embedder calls between concurrent events through
                            imgdup.batching.EmbeddingBatcher (max_batch N; 0 = off), run on a
                            dedicated model thread; decode and hashing stay in the CPU pool
IMGDUP_BENCH_WAIT_MS=F      the batcher's max_wait_ms (default 5)

Usage: python -m bench.worker [--roles images,...]  (same arguments as `imgdup worker`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


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
    batch = int(os.environ.get("IMGDUP_BENCH_BATCH", "0") or 0)
    wait_ms = float(os.environ.get("IMGDUP_BENCH_WAIT_MS", "5") or 5)
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
    if batch:
        import agents.images as images_agent
        from imgdup.batching import EmbeddingBatcher
        from imgdup.processing import AnalysedImage
        from imgdup_core.decode import DecodedImage, ImageRejected, decode_image, storage_jpeg
        from imgdup_core.hashing import phash_pair
        from streams import app as streams_app

        model_thread = ThreadPoolExecutor(1, thread_name_prefix="imgdup-model")
        batchers: dict[int, EmbeddingBatcher] = {}

        async def embed(embedder: Any, rgbs: list[np.ndarray]) -> np.ndarray:
            batcher = batchers.get(id(embedder))
            if batcher is None:
                batcher = EmbeddingBatcher(
                    embedder.embed, executor=model_thread, max_batch=batch, max_wait_ms=wait_ms
                )
                batchers[id(embedder)] = batcher
            return await batcher.embed(rgbs)

        def analyse_images(
            blobs: Sequence[bytes], embedder: Any, *, max_pixels: int
        ) -> list[AnalysedImage | ImageRejected]:
            # Runs in a CPU-pool thread (as the original does); only the model call is shared.
            outcomes: list[DecodedImage | ImageRejected] = []
            for blob in blobs:
                try:
                    outcomes.append(decode_image(blob, max_pixels=max_pixels))
                except ImageRejected as rejected:
                    outcomes.append(rejected)
            decoded = [o for o in outcomes if isinstance(o, DecodedImage)]
            vectors: Any = []
            if decoded:
                future = asyncio.run_coroutine_threadsafe(
                    embed(embedder, [d.rgb for d in decoded]), streams_app.app.loop
                )
                vectors = future.result()
            rows = iter(vectors)
            results: list[AnalysedImage | ImageRejected] = []
            for outcome in outcomes:
                if isinstance(outcome, ImageRejected):
                    results.append(outcome)
                    continue
                plain, mirrored = phash_pair(outcome.rgb)
                results.append(
                    AnalysedImage(
                        content_sha256=outcome.content_sha256,
                        pixel_sha256=outcome.pixel_sha256,
                        phash=plain,
                        phash_mirrored=mirrored,
                        width=outcome.width,
                        height=outcome.height,
                        format=outcome.format,
                        jpeg=storage_jpeg(outcome.rgb),
                        vector=np.asarray(next(rows), dtype=np.float32),
                    )
                )
            return results

        images_agent.analyse_images = analyse_images  # type: ignore[attr-defined]


def main() -> int:
    _install_patches()
    from imgdup.cli import main as cli_main

    return cli_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
