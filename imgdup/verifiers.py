"""Settings and retrained model files -> the verifier the worker runs (IMGDUP_VERIFIER_VERSION), refused
in one line when it is unknown or was not calibrated for the configured embedder (IMGDUP_EMBEDDER)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from imgdup.settings import Settings
from imgdup_core.fusion import model_from_dict
from imgdup_core.verifier_config import (
    DEFAULT_VERIFIER_FOR_EMBEDDER,
    VERIFIERS,
    VerifierConfig,
    with_threshold,
)

# A retrained model file (`imgdup retrain`): <models dir>/<version>.json.
MODEL_SUFFIX = ".json"


class VerifierUnavailable(RuntimeError):
    """The configured verifier cannot run with the configured embedder; the message is one line."""


@dataclass(frozen=True)
class ChosenVerifier:
    config: VerifierConfig
    # The ANN cut-off: the operator's IMGDUP_ANN_MIN_SCORE when set, else the model's own.
    ann_min_score: float
    # Set when IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER lets a model of another embedder run: the worker
    # logs it.
    warning: str | None = None


def load_model_file(path: Path) -> VerifierConfig:
    """A retrained model file -> its verifier: the base version's measurement settings with the
    refitted fusion (retraining refits the fusion on evidence measured by the base)."""
    try:
        data = json.loads(path.read_text())
        base = VERIFIERS[data["base"]]
        version = str(data["version"])
        fusion = model_from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerifierUnavailable(f"model file {path} is not a verifier model: {exc!r}") from exc
    if version != path.name.removesuffix(MODEL_SUFFIX) or version in VERIFIERS:
        raise VerifierUnavailable(f"model file {path} names version {version!r}: it must be its file name")
    return dataclasses.replace(base, version=version, fusion=fusion)


def known_verifiers(models_dir: Path) -> dict[str, VerifierConfig]:
    """The built-in versions; retrained ones are read on demand (one file each)."""
    known = dict(VERIFIERS)
    if models_dir.is_dir():
        for path in sorted(models_dir.glob(f"*{MODEL_SUFFIX}")):
            name = path.name.removesuffix(MODEL_SUFFIX)
            if name not in known:
                known[name] = load_model_file(path)
    return known


def chosen_version(settings: Settings) -> str:
    """IMGDUP_VERIFIER_VERSION when it is set; else the embedder's own default model
    (DEFAULT_VERIFIER_FOR_EMBEDDER: fused-v26 for sscd, fused-v3-distilled for sscd_distilled), else
    the field's default (the full SSCD's)."""
    if "verifier_version" in settings.model_fields_set:
        return settings.verifier_version
    return DEFAULT_VERIFIER_FOR_EMBEDDER.get(settings.embedder, settings.verifier_version)


def base_verifier(settings: Settings) -> VerifierConfig:
    """The built-in verifier the configured one measures as: itself when built in, else the base its
    model file records (a retrained model's lineage: fused-v26 -> fused-v26-r1 -> fused-v26-r2)."""
    version = chosen_version(settings)
    if version in VERIFIERS:
        return VERIFIERS[version]
    path = settings.models_dir / f"{version}{MODEL_SUFFIX}"
    try:
        return VERIFIERS[str(json.loads(path.read_text())["base"])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerifierUnavailable(f"model file {path} names no built-in base: {exc!r}") from exc


def resolve_verifier(settings: Settings) -> ChosenVerifier:
    """The verifier IMGDUP_VERIFIER_VERSION names (unset: the embedder's default), if it was
    fitted for IMGDUP_EMBEDDER.

    Each model's weights and ANN cut-off were fitted on one embedder's cosines: under another
    embedder (CLIP's cosines run on another scale) they would decide at random, so a worker
    refuses to start rather than reuse them."""
    version = chosen_version(settings)
    if version in VERIFIERS:
        config = VERIFIERS[version]
    else:
        path = settings.models_dir / f"{version}{MODEL_SUFFIX}"
        if not path.is_file():
            known = ", ".join(sorted(VERIFIERS))
            raise VerifierUnavailable(
                f"IMGDUP_VERIFIER_VERSION={version} is not a known verifier model (built in: {known};"
                f" retrained ones are {settings.models_dir}/<version>{MODEL_SUFFIX})"
            )
        config = load_model_file(path)
    fusion = config.fusion
    warning = None
    if fusion.embedder != settings.embedder and settings.allow_uncalibrated_embedder:
        warning = (
            f"IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER: verifier {version}, calibrated for {fusion.embedder},"
            f" runs on IMGDUP_EMBEDDER={settings.embedder} embeddings; its verdicts are not calibrated"
        )
    elif fusion.embedder != settings.embedder:
        fitted_for = [name for name, c in VERIFIERS.items() if c.fusion.embedder == settings.embedder]
        hint = (
            f"set IMGDUP_VERIFIER_VERSION to one of {fitted_for}"
            if fitted_for
            else "calibrate one for it first (python -m bench.quality calibrate, then imgdup retrain)"
        )
        raise VerifierUnavailable(
            f"IMGDUP_EMBEDDER={settings.embedder} has no verifier model of its own: {version} was"
            f" calibrated for {fusion.embedder} ({fusion.embedding_model}) and its weights and ANN"
            f" cut-off mean nothing for other embeddings; {hint}"
        )
    explicit = "ann_min_score" in settings.model_fields_set
    cut_off = fusion.candidate_min_cosine
    min_score = settings.ann_min_score if explicit or cut_off is None else cut_off
    # IMGDUP_VERIFIER_THRESHOLD: the same model deciding at another threshold, under its own
    # version, so a replay re-verifies and retracts what it now rejects (docs/events.md).
    config = with_threshold(config, settings.verifier_threshold)
    return ChosenVerifier(config=config, ann_min_score=min_score, warning=warning)


def verifier_problem(settings: Settings) -> str | None:
    """Why the configured verifier cannot run with the configured embedder (one line), or None."""
    try:
        resolve_verifier(settings)
    except VerifierUnavailable as exc:
        return str(exc)
    return None
