"""The broad set's ANN-emulated candidate pairs with their measured evidence -> leave-one-domain-out
recall and precision per held-out domain and edit family (bench/results/quality-broad-lodo.md/.json).

An OFFLINE EMULATION of the product, not a run of it: every image of the broad set (both halves)
is embedded, the ANN search is emulated (exact top-K above a low cosine, as `calibrate` does),
every candidate pair is measured once with the real verifier (cached), and for each domain with
enough photos the fusion model, its threshold and the ANN cut-off are fitted on the pairs of the
other domains only (bench/quality/calibrate.py's fit) and applied to the pairs that involve the
held-out domain. A positive pair the emulated search never proposed, or proposed under the fitted
cut-off, is a miss. The per-fold models are written to a temporary folder, never to
imgdup_core/fusion_weights.py."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.quality.analysis import Analysed, analyse
from bench.quality.calibrate import (
    MODELS,
    TRAIN_PRECISION,
    Candidate,
    fit_measured,
    measure_candidates,
    shipped_cut_off,
    threshold_rule,
    training_candidates,
    write_model,
)
from bench.quality.dataset import NEUTRAL_KINDS, BenchSet, SetImage, assign_splits, build_set
from bench.quality.edits import BENIGN, HARD
from bench.quality.frame_pairs import with_frame_relations
from bench.quality.lodo_clusters import listed_summary
from bench.quality.lodo_extra import extra_training
from bench.quality.metrics import EDIT_PAIR
from imgdup_core.evidence import Evidence
from imgdup_core.fusion import FusionModel
from imgdup_core.verifier_config import VERIFIERS
from imgdup_core.verify import DEFAULT_VERIFIER, VerifierConfig, decide

RESULTS = Path(__file__).resolve().parents[1] / "results"
MIN_PHOTOS = 15
Measured = tuple[Candidate, Evidence, float]


@dataclass(frozen=True)
class Scored:
    """A fold's verdicts on the candidate pairs of its test side."""

    predicted: dict[tuple[str, str], bool]  # candidate pair -> predicted duplicate
    weights: dict[tuple[str, str], float]
    labels: dict[tuple[str, str], tuple[int, str]]
    confidence: dict[tuple[str, str], float]  # the verdict's (what the clusterer's bridge rule reads)
    # The candidate's cosine: the verifier takes an image's candidates most similar first (steps.index).
    cosine: dict[tuple[str, str], float] = field(default_factory=dict)


def _family(x: SetImage, y: SetImage) -> str:
    if x.family == "original":
        return y.family
    if y.family == "original":
        return x.family
    return EDIT_PAIR


def positive_universe(images: Sequence[SetImage], groups: set[str]) -> dict[tuple[str, str], str]:
    """Every positive image pair of these groups (original-copy: the copy's family; two edits of
    one photo: edit_pair), whether or not the search proposed it."""
    by_group: dict[str, list[SetImage]] = {}
    for image in images:
        if image.group in groups:
            by_group.setdefault(image.group, []).append(image)
    out: dict[tuple[str, str], str] = {}
    for members in by_group.values():
        for x, y in itertools.combinations(members, 2):
            a, b = sorted((x.name, y.name))
            out[(a, b)] = _family(x, y)
    return out


def hard_negative_universe(bench: BenchSet, groups: set[str], *, within: set[str]) -> Counter[str]:
    """Hard-negative image pairs per kind that involve these groups, both photos among `within`
    (the photos whose images were searched: a partner left out can never be a candidate)."""
    sizes = Counter(image.group for image in bench.images)
    out: Counter[str] = Counter()
    for pair, kind in bench.hard_negatives.items():
        if kind not in NEUTRAL_KINDS and len(pair) == 2 and pair & groups and pair <= within:
            ga, gb = tuple(pair)
            out[kind] += sizes[ga] * sizes[gb]
    # Related per image only (two photos' screenshots in one template): one image pair each.
    group_of = {image.name: image.group for image in bench.images}
    for names, kind in bench.image_hard_negatives.items():
        pair = frozenset(group_of[name] for name in names if name in group_of)
        # A related photo pair (bench.hard_negatives) is counted above with all its images.
        if (
            len(names) == 2
            and len(pair) == 2
            and pair & groups
            and pair <= within
            and pair not in bench.hard_negatives
        ):
            out[kind] += 1
    return out


def measuring(verifier: str | None) -> tuple[VerifierConfig, tuple[str, ...]]:
    """The verifier whose settings measure the evidence (and propose pHash-channel candidates when
    it does) and the features each fold fits: `--verifier`, fused-v3 when not given."""
    name = verifier or DEFAULT_VERIFIER.version
    return VERIFIERS[name], tuple(MODELS[name][0])


def score(measured: Sequence[Measured], config: VerifierConfig, cut_off: float) -> Scored:
    """The product's decision (imgdup_core.verify.decide) with this model; a candidate the ANN
    search proposed under the cut-off is never verified (the pHash channel's are, whatever the cosine)."""
    predicted, weights, labels, confidence, cosine = {}, {}, {}, {}, {}
    for candidate, evidence, _ in measured:
        key = (candidate.a, candidate.b)
        proposed = candidate.channel != "ann" or candidate.cosine >= cut_off
        verdict = decide(evidence, config)
        predicted[key] = proposed and verdict.is_duplicate
        weights[key] = candidate.weight
        labels[key] = (candidate.label, candidate.kind)
        confidence[key] = verdict.confidence
        cosine[key] = candidate.cosine
    return Scored(predicted, weights, labels, confidence, cosine)


def restrict(scored: Scored, involves: Callable[[str], bool]) -> Scored:
    """Only the pairs with an image for which `involves` holds."""
    keys = [k for k in scored.predicted if involves(k[0]) or involves(k[1])]
    return Scored(
        {k: scored.predicted[k] for k in keys},
        {k: scored.weights[k] for k in keys},
        {k: scored.labels[k] for k in keys},
        {k: scored.confidence[k] for k in keys},
        {k: scored.cosine[k] for k in keys if k in scored.cosine},
    )


def summarise(
    scored: Scored, positives: dict[tuple[str, str], str], hard_pairs: Counter[str]
) -> dict[str, Any]:
    """Recall per family and for benign / hard edits / edit pairs over every positive pair;
    precision over the candidates (sampled easy negatives weighted back); hard-negative false
    positives per kind. A pair of a neutral kind (adjacent frames) is neither: counted apart."""
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter(positives.values())
    proposed: Counter[str] = Counter()
    missed: list[list[str]] = []
    for key, family in positives.items():
        if key in scored.predicted:
            proposed[family] += 1
            hits[family] += scored.predicted[key]
        if not scored.predicted.get(key, False):
            missed.append([family, *key])
    tp = fp = 0.0
    false_hard: Counter[str] = Counter()
    false_pairs: list[list[str]] = []
    neutral: list[list[str]] = []
    for key, is_dup in scored.predicted.items():
        label, kind = scored.labels[key]
        if not is_dup:
            continue
        if kind in NEUTRAL_KINDS:
            neutral.append([kind, *key])
        elif label == 1:
            tp += 1.0
        else:
            fp += scored.weights[key]
            if kind != "other":
                false_hard[kind] += 1
                false_pairs.append([kind, *key])

    def recall(families: Sequence[str]) -> dict[str, float | int]:
        n = sum(totals[f] for f in families)
        return {
            "pairs": n,
            "recall": sum(hits[f] for f in families) / n if n else float("nan"),
            "proposed": sum(proposed[f] for f in families) / n if n else float("nan"),
        }

    edits = [f for f in totals if f != EDIT_PAIR]
    return {
        "families": {f: recall([f]) for f in sorted(totals)},
        "benign": recall([f for f in BENIGN if f in totals]),
        "hard": recall([f for f in HARD if f in totals]),
        "edits": recall(edits),
        "edit_pair": recall([EDIT_PAIR]),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "false_positives_weighted": fp,
        "hard_negatives": {
            kind: {"pairs": n, "false_positives": false_hard[kind]} for kind, n in sorted(hard_pairs.items())
        },
        # Which hard negatives were called duplicates (kind, image, image): what to look at next.
        "false_pairs": sorted(false_pairs),
        # Neither duplicates nor negatives (NEUTRAL_KINDS), called duplicates: reported, not scored.
        "neutral_called": sorted(neutral),
        # Which positives were not called duplicates (family, image, image), proposed or not: the misses.
        "missed_pairs": sorted(missed),
    }


def listed(
    scored: Scored,
    position: dict[str, int],
    positives: dict[tuple[str, str], str],
    group_of: dict[str, str],
    neutral: set[frozenset[str]],
) -> dict[str, Any]:
    """What the API would list for the fold's verdicts: pairs, or images sharing a replayed cluster
    (image pairs of two `neutral` groups left out of the clusters' precision)."""
    verified = {key: scored.confidence[key] for key, is_dup in scored.predicted.items() if is_dup}
    kinds = {"benign": BENIGN, "hard": HARD, "edit_pair": (EDIT_PAIR,)}
    kinds["edits"] = tuple(f for f in set(positives.values()) if f != EDIT_PAIR)
    return listed_summary(verified, position, positives, group_of, kinds, neutral, cosine=scored.cosine)


def _fold(
    measured: Sequence[Measured],
    in_test: Callable[[str], bool],
    min_score: float,
    model_path: Path,
    info: dict[str, Any],
    base: VerifierConfig = DEFAULT_VERIFIER,
    features: Sequence[str] = MODELS[DEFAULT_VERIFIER.version][0],
    rule: str = "precision",
    extra: Sequence[Measured] = (),
) -> tuple[list[Measured], VerifierConfig, float, dict[str, Any]]:
    """Fit on the pairs with no image of the test side (and on `extra`, another set's pairs), write
    the model to `model_path`, and return the test side's pairs with the fitted configuration and
    ANN cut-off."""
    train = [m for m in measured if not in_test(m[0].a) and not in_test(m[0].b)] + list(extra)
    test = [m for m in measured if in_test(m[0].a) or in_test(m[0].b)]
    fitted = fit_measured(train, features, TRAIN_PRECISION, min_score, rule=rule)
    write_model(
        features,
        fitted["weights_array"],
        fitted["bias"],
        fitted["threshold"],
        fitted["candidate_min_cosine"],
        {**info, "train_pairs": len(fitted["measured"])},
        path=model_path,
    )
    model = FusionModel(
        features=tuple(features),
        weights=tuple(float(v) for v in fitted["weights_array"]),
        bias=float(fitted["bias"]),
        threshold=float(fitted["threshold"]),
    )
    config = replace(base, version=f"lodo-{model_path.stem}", fusion=model)
    facts = {
        "train_pairs": len(fitted["measured"]),
        "train_duplicates": fitted["duplicates"],
        "threshold": round(float(fitted["threshold"]), 4),
        "candidate_min_cosine": fitted["candidate_min_cosine"],
        "train_recall": fitted["train_recall"],
        "weights": {n: round(float(v), 3) for n, v in zip(features, fitted["weights_array"], strict=True)},
    }
    return test, config, float(fitted["candidate_min_cosine"]), facts


def choose_photos(images: Sequence[SetImage], per_domain: int, seed: int) -> set[str]:
    """A seeded choice of at most `per_domain` photos of each domain (every photo where a domain
    has fewer): measuring every candidate of the whole broad set takes hours on 2 cores."""
    by_domain: dict[str, list[str]] = {}
    for group, domain in sorted({(i.group, i.domain) for i in images}):
        by_domain.setdefault(domain, []).append(group)
    chosen: set[str] = set()
    for domain, groups in by_domain.items():
        rng = random.Random(f"imgdup-lodo:{seed}:{domain}")
        chosen.update(groups if len(groups) <= per_domain else rng.sample(groups, per_domain))
    return chosen


def _subset(analysed: Analysed, names: Sequence[str]) -> Analysed:
    rows = [analysed.index()[name] for name in names]
    return Analysed(
        list(names),
        analysed.vectors[rows],
        analysed.phash[rows],
        analysed.phash_mirrored[rows],
        analysed.pdq[rows],
        [analysed.pixel_sha256[k] for k in rows],
        analysed.photo_vectors[rows],
        analysed.has_photo[rows],
    )


def _positives(images: Sequence[SetImage], groups: set[str], edit_pairs: bool) -> dict[tuple[str, str], str]:
    universe = positive_universe(images, groups)
    return universe if edit_pairs else {k: v for k, v in universe.items() if v != EDIT_PAIR}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    base, features = measuring(getattr(args, "verifier", None))
    # The folds' threshold rule: --threshold-rule, else the verifier's own (calibrate.THRESHOLD_RULES).
    rule = getattr(args, "threshold_rule", None) or threshold_rule(base.version)
    # Pairs of different photos in one screenshot frame are hard negatives, across both halves.
    bench = with_frame_relations(build_set(seed=args.seed, copies=args.copies, pool=args.pool))
    from imgdup_core.embedding import build_embedder

    # Embedded once for the whole set (cached), then narrowed to the chosen photos' images.
    analysed = analyse(bench, list(bench.images), build_embedder("sscd"))
    chosen = choose_photos(bench.images, args.max_photos, args.seed)
    images = [image for image in bench.images if image.group in chosen]
    analysed = _subset(analysed, [image.name for image in images])
    candidates = training_candidates(
        bench,
        images,
        analysed,
        top_k=args.top_k,
        min_score=args.min_score,
        negatives=args.negatives,
        seed=args.seed,
        phash_channel=base.phash_candidates,
    )
    if not args.edit_pairs:  # two edits of one photo: not measured (half the positives)
        candidates = [c for c in candidates if c.kind != "copy-copy"]
    positives_found = sum(c.label for c in candidates)
    print(
        f"  {len(images)} images, {len(candidates)} candidate pairs to measure ({positives_found} duplicates)"
    )
    measured = measure_candidates(bench, images, analysed, candidates, config=base, processes=args.processes)
    extra = extra_training(args, base)  # --extra-train default: the default pool's train split
    group_of = {image.name: image.group for image in images}
    position = {image.name: k for k, image in enumerate(images)}  # the order the stream takes them in
    domain_of = {image.group: image.domain for image in images}
    photos_per_domain = Counter(domain_of.values())
    domains = sorted(d for d, n in photos_per_domain.items() if n >= args.min_photos)
    photo_ids = sorted(domain_of)

    folds: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="imgdup-lodo-") as tmp:
        # In-domain reference: the set's own seeded half split (every domain on both sides).
        split = {image.group: image.split for image in images}
        test, config, cut_off, ref_facts = _fold(
            measured,
            lambda name: split[group_of[name]] == "test",
            args.min_score,
            Path(tmp) / "random_split.py",
            {"set": bench.root.name, "fold": "random half split"},
            base,
            features,
            rule,
            extra.usable(None, {g for g, side in split.items() if side == "test"}) if extra else (),
        )
        reference = score(test, config, cut_off)
        for domain in domains:
            held = assign_splits(
                photo_ids, args.seed, 0.5, domains=domain_of, holdout_domain=domain
            )  # units (stereo, scene) follow the held-out domain
            test_groups = {g for g, side in held.items() if side == "test"}
            test, config, cut_off, facts = _fold(
                measured,
                lambda name, groups=test_groups: group_of[name] in groups,
                args.min_score,
                Path(tmp) / f"holdout_{domain}.py",
                {"set": bench.root.name, "fold": f"hold out {domain}"},
                base,
                features,
                rule,
                extra.usable(domain, test_groups) if extra else (),
            )
            domain_groups = {g for g in test_groups if domain_of[g] == domain}
            positives = _positives(images, domain_groups, args.edit_pairs)
            hard = hard_negative_universe(bench, test_groups, within=chosen)
            ref_groups = {g for g in domain_groups if split[g] == "test"}
            held_out = score(test, config, cut_off)
            folds[domain] = {
                "photos": photos_per_domain[domain],
                "test_photos": len(test_groups),
                "fit": facts,
                "held_out": summarise(held_out, positives, hard),
                "held_out_listed": listed(held_out, position, positives, group_of, bench.neutral_pairs()),
                "shipped": summarise(score(test, base, shipped_cut_off(base)), positives, hard),
                "random_split": summarise(
                    restrict(reference, lambda name, groups=ref_groups: group_of[name] in groups),
                    _positives(images, ref_groups, args.edit_pairs),
                    hard_negative_universe(bench, ref_groups, within=chosen),
                ),
            }
            print(
                f"  {domain:10s} held out: recall {_pct(folds[domain]['held_out']['edits']['recall'])} "
                f"(hard {_pct(folds[domain]['held_out']['hard']['recall'])}), "
                f"precision {_pct(folds[domain]['held_out']['precision'], 2)}",
                flush=True,
            )
    result = {
        "what": "leave-one-domain-out, OFFLINE EMULATION of the product on measured candidate evidence",
        "setup": {
            "set": bench.root.name,
            "pool": args.pool,
            "seed": args.seed,
            "copies_per_photo": args.copies,
            "images": len(images),
            "photos": len(photo_ids),
            "set_photos": len({i.group for i in bench.images}),
            "max_photos_per_domain": args.max_photos,
            "edit_pairs_measured": args.edit_pairs,
            "photos_per_domain": dict(sorted(photos_per_domain.items())),
            "min_photos": args.min_photos,
            "ann_top_k": args.top_k,
            "ann_min_score_measured": args.min_score,
            "sampled_other_negatives": args.negatives,
            "measured_pairs": len(measured),
            "features": list(features),
            "threshold_rule": rule,
            "extra_training": extra.name if extra else None,
            "extra_training_pairs": len(extra.measured) if extra else 0,
            "verifier_measuring": base.version,
            "phash_channel": base.phash_candidates,
            "phash_channel_pairs": sum(1 for c in candidates if c.channel != "ann"),
            "shipped_candidate_min_cosine": shipped_cut_off(base),
        },
        "random_split_fit": ref_facts,
        "folds": folds,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    return result


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{100 * value:.{digits}f}"


def write(result: dict[str, Any], out: Path = RESULTS, stem: str = "quality-broad-lodo") -> tuple[Path, Path]:
    from bench.quality.lodo_report import markdown
    from bench.quality.report import _clean

    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(_clean(result), indent=1, sort_keys=True, allow_nan=False) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path


def main(args: argparse.Namespace) -> int:
    print("leave-one-domain-out (offline emulation of the product on measured candidate evidence)")
    result = run(args)
    json_path, md_path = write(result, stem=getattr(args, "name", None) or "quality-broad-lodo")
    print()
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0
