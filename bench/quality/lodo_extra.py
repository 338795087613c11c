"""The default pool's train split, measured as `calibrate` measures it -> extra training pairs for
the leave-one-domain-out folds (`lodo --extra-train default`), without any pair that involves a
photo of the held-out domain or of the fold's test side."""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bench.quality.calibrate import Candidate, measure_candidates, training_candidates
from bench.quality.dataset import SetImage, build_set
from bench.quality.domains import domain_of
from imgdup_core.evidence import Evidence
from imgdup_core.verify import VerifierConfig

Measured = tuple[Candidate, Evidence, float]


@dataclass(frozen=True)
class ExtraTraining:
    """Measured candidate pairs of another set, with each image's photo and that photo's domain
    (the image names can repeat the broad set's: another set, other pixels)."""

    name: str
    measured: list[Measured]
    group_of: dict[str, str]
    domain_of: dict[str, str]

    def usable(self, held_out_domain: str | None, test_groups: Collection[str]) -> list[Measured]:
        """The pairs whose two photos are neither of the held-out domain nor on the test side."""

        def ok(name: str) -> bool:
            group = self.group_of[name]
            return group not in test_groups and self.domain_of[name] != held_out_domain

        return [m for m in self.measured if ok(m[0].a) and ok(m[0].b)]


def default_train(
    config: VerifierConfig,
    *,
    seed: int,
    copies: int,
    top_k: int,
    min_score: float,
    negatives: int,
    processes: int,
) -> ExtraTraining:
    """What `calibrate --verifier V` fits V on: the default pool's train split, its emulated ANN
    candidates (and pHash-channel ones where V proposes them), measured with V's settings (cached)."""
    from bench.quality.analysis import analyse
    from imgdup_core.embedding import build_embedder

    bench = build_set(seed=seed, copies=copies, pool="default")
    images: Sequence[SetImage] = bench.split("train")
    analysed = analyse(bench, images, build_embedder("sscd"))
    candidates = training_candidates(
        bench,
        images,
        analysed,
        top_k=top_k,
        min_score=min_score,
        negatives=negatives,
        seed=bench.seed,
        phash_channel=config.phash_candidates,
    )
    measured = measure_candidates(bench, images, analysed, candidates, config=config, processes=processes)
    return ExtraTraining(
        name=f"default pool train split ({bench.root.name})",
        measured=measured,
        group_of={i.name: i.group for i in images},
        domain_of={i.name: i.domain or domain_of(i.group) for i in images},
    )


def extra_training(args: argparse.Namespace, config: VerifierConfig) -> ExtraTraining | None:
    """`lodo --extra-train`'s pairs (None without it)."""
    if getattr(args, "extra_train", None) != "default":
        return None
    return default_train(
        config,
        seed=args.seed,
        copies=args.copies,
        top_k=args.top_k,
        min_score=args.min_score,
        negatives=args.negatives,
        processes=args.processes,
    )
