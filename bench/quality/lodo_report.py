"""A leave-one-domain-out result (bench/quality/lodo.py) -> its markdown report: per held-out
domain, per edit family, the worst domain and the average over domains."""

from __future__ import annotations

from typing import Any

from bench.quality.edits import BENIGN, HARD
from bench.quality.metrics import EDIT_PAIR


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.{digits}f}"


def _mean(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None and v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def markdown(result: dict[str, Any]) -> str:
    setup, folds = result["setup"], result["folds"]
    domains = list(folds)
    lines = [
        "# Leave one domain out (broad pool) — an offline emulation of the product",
        "",
        "Not a run of the product: every image of the broad set (both halves) is embedded with "
        "SSCD, the ANN search is emulated (exact top-"
        f"{setup['ann_top_k']} above cosine {setup['ann_min_score_measured']}), every candidate "
        "pair is measured once with the real verifier (`imgdup_core.verify.measure_images`, "
        f"{setup['verifier_measuring']}'s settings), and for each domain with at least "
        f"{setup['min_photos']} photos the fusion model, its threshold and the ANN cut-off are "
        "fitted on the other domains' pairs only (`bench/quality/calibrate.py`'s fit, features "
        f"{', '.join(setup['features'])}; threshold rule "
        f"{setup.get('threshold_rule', 'precision')}"
        + (
            f"; also trained on the {setup['extra_training']}, {setup['extra_training_pairs']} measured "
            "pairs, less those with a photo of the held-out domain or of the fold's test side"
            if setup.get("extra_training")
            else ""
        )
        + ") and applied with `imgdup_core.verify.decide` "
        "to every pair that involves the held-out domain. Positive pairs the emulated search never "
        "proposed, or "
        "proposed under the fitted cut-off, count as misses. Easy negatives are a seeded sample "
        f"({setup['sampled_other_negatives']}) weighted back. The stack's posting order, its "
        "clustering and its workers are not involved.",
        "",
        f"Set `{setup['set']}`: {setup['photos']} photos, {setup['images']} images "
        f"({setup['copies_per_photo']} edited copies each), {setup['measured_pairs']} measured pairs. "
        "Photos per domain: " + ", ".join(f"{d} {n}" for d, n in setup["photos_per_domain"].items()) + ".",
        "",
        "Columns: **held out** = fitted without the domain; **random split** = fitted on the set's "
        "seeded half split (the domain on both sides), scored on the domain's test half: the "
        f"in-domain reference; **shipped** = the committed {setup['verifier_measuring']} model and "
        "cut-off (fitted on the default pool's train split, which shares photos with several "
        "domains: not held out)."
        + (
            f" Candidates: the emulated ANN search plus the pHash channel ({setup['phash_channel_pairs']} "
            "pairs it alone proposed, verified whatever their cosine)."
            if setup.get("phash_channel")
            else ""
        ),
        "",
        "## Per held-out domain (recall % over every positive pair; precision % over candidates)",
        "",
        "Precision here is over every candidate pair with an image of the domain (a wrong pair "
        "between two domains counts against both), from an emulated search that proposes a "
        "superset of the stack's candidates; pairs of different photos in one screenshot template "
        "are hard negatives (`same_template`, every one kept, weight 1): it is not comparable with "
        "the product run's precision (`quality.md`), only between the three columns.",
        "",
        "| domain | photos | positive pairs | proposed | held out: all edits | benign | hard | edit_pair "
        "| precision | hard-neg FP | random split: all | hard | precision | shipped: all | hard | precision "
        "| fold threshold | fold cut-off |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for domain in domains:
        fold = folds[domain]
        held, ref, shipped = fold["held_out"], fold["random_split"], fold["shipped"]
        false_hard = sum(v["false_positives"] for v in held["hard_negatives"].values())
        hard_pairs = sum(v["pairs"] for v in held["hard_negatives"].values())
        lines.append(
            f"| {domain} | {fold['photos']} | {held['edits']['pairs']} | {_pct(held['edits']['proposed'])} "
            f"| {_pct(held['edits']['recall'])} | {_pct(held['benign']['recall'])} "
            f"| {_pct(held['hard']['recall'])} | {_pct(held['edit_pair']['recall'])} "
            f"| {_pct(held['precision'], 2)} | {false_hard} of {hard_pairs} "
            f"| {_pct(ref['edits']['recall'])} | {_pct(ref['hard']['recall'])} | {_pct(ref['precision'], 2)} "
            f"| {_pct(shipped['edits']['recall'])} | {_pct(shipped['hard']['recall'])} "
            f"| {_pct(shipped['precision'], 2)} "
            f"| {fold['fit']['threshold']} | {fold['fit']['candidate_min_cosine']} |"
        )
    held_all = {d: folds[d]["held_out"]["edits"]["recall"] for d in domains}
    held_hard = {d: folds[d]["held_out"]["hard"]["recall"] for d in domains}
    ref_all = {d: folds[d]["random_split"]["edits"]["recall"] for d in domains}
    if domains:
        worst = min(domains, key=lambda d: held_all[d])
        worst_hard = min(domains, key=lambda d: held_hard[d])
        lines += [
            "",
            f"**Worst domain**: {worst} ({_pct(held_all[worst])} % of its edited copies found when "
            f"held out); hard edits: {worst_hard} ({_pct(held_hard[worst_hard])} %).",
            f"**Average over the {len(domains)} domains** (each domain weighs the same): held out "
            f"{_pct(_mean(list(held_all.values())))} % (hard {_pct(_mean(list(held_hard.values())))} %), "
            f"random split {_pct(_mean(list(ref_all.values())))} %; precision held out "
            f"{_pct(_mean([folds[d]['held_out']['precision'] for d in domains]), 2)} %.",
        ]
    lines += _listed_section(folds, domains)
    lines += _false_pairs_section(folds, domains)
    lines += _missed_section(folds, domains)
    lines += _family_table(folds, domains, "held_out", "held out (recall %, pairs in brackets)")
    if any("held_out_listed" in folds[d] for d in domains):
        title = "held out, as the API would list them (pairs, or one cluster; recall %)"
        lines += _family_table(folds, domains, "held_out_listed", title)
    lines += [
        "",
        "## Fitted per fold (the models were written to a temporary folder, not to imgdup_core)",
        "",
        "| fold | train pairs | train duplicates | train recall | threshold | cut-off | "
        + " | ".join(result["setup"]["features"])
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(result["setup"]["features"]),
    ]
    rows = [("random half split", result["random_split_fit"])]
    rows += [(f"hold out {d}", folds[d]["fit"]) for d in domains]
    for name, fit in rows:
        lines.append(
            f"| {name} | {fit['train_pairs']} | {fit['train_duplicates']} | {_pct(fit['train_recall'])} "
            f"| {fit['threshold']} | {fit['candidate_min_cosine']} | "
            + " | ".join(f"{fit['weights'][f]:+.2f}" for f in result["setup"]["features"])
            + " |"
        )
    lines += ["", f"Elapsed {result['elapsed_s']:.0f} s.", ""]
    return "\n".join(lines)


def _false_pairs_section(folds: dict[str, Any], domains: list[str]) -> list[str]:
    """The hard negatives each fold called duplicates, by kind (a pair across two held-out domains is listed
    under both); nothing for a result written before they were recorded."""
    rows = [(d, pair) for d in domains for pair in folds[d]["held_out"].get("false_pairs", [])]
    if not rows and not any(folds[d]["held_out"].get("neutral_called") for d in domains):
        return []
    lines = [
        "",
        "## Hard negatives called duplicates, held out",
        "",
        "| domain | kind | image | image |",
        "|---|---|---|---|",
    ]
    lines += [f"| {domain} | {kind} | {a} | {b} |" for domain, (kind, a, b) in rows]
    neutral = {d: len(folds[d]["held_out"].get("neutral_called", [])) for d in domains}
    if any(neutral.values()):
        lines += [
            "",
            "Adjacent frames of one video (RubberWhale, the basketball pair) are neither duplicates "
            "nor negatives (bench/quality/dataset.py ADJACENT_FRAMES): left out of precision and of the "
            "clusters' precision. Called duplicates, held out: "
            + ", ".join(f"{d} {n}" for d, n in neutral.items() if n)
            + " image pairs.",
        ]
    return lines


def _missed_section(folds: dict[str, Any], domains: list[str]) -> list[str]:
    """The edited copies each fold did not call duplicates of their original or of another copy, by edit
    family (two different edits of one photo left out: the API lists most of them through clusters);
    nothing for a result written before they were recorded."""
    missed = {d: folds[d]["held_out"].get("missed_pairs", []) for d in domains}
    rows = [(d, pair) for d in domains for pair in missed[d] if pair[0] != EDIT_PAIR]
    if not rows:
        return []
    lines = ["", "## Edited copies missed, held out (as pairs)", "", "| domain | family | image | image |"]
    lines.append("|---|---|---|---|")
    return lines + [f"| {domain} | {family} | {a} | {b} |" for domain, (family, a, b) in rows]


def _listed_section(folds: dict[str, Any], domains: list[str]) -> list[str]:
    """What `GET /api/v1/duplicates/{ad_id}` would list in each fold: its verified pairs, or images
    sharing a cluster (bench/quality/lodo_clusters.py replays the clusterer on the fold's verdicts)."""
    listed = {d: folds[d]["held_out_listed"] for d in domains if "held_out_listed" in folds[d]}
    if not listed:
        return []
    lines = [
        "",
        "## What the API would list, held out (pairs, or one cluster; recall %)",
        "",
        "The fold's verified pairs go through an offline replay of the clusterer in the order the stream "
        "takes the images (one ad per image; the bridge rule holds a marginal pair between two "
        "established groups): a positive counts when the two images were verified as a pair or share a "
        "cluster, which is what `GET /api/v1/duplicates/{ad_id}` lists. Cluster precision: of the image "
        "pairs sharing a cluster, the share of one source photo.",
        "",
        "| domain | all edits | benign | hard | edit_pair | cluster precision | clusters joining photos |",
        "|---|---|---|---|---|---|---|",
    ]
    for domain, fold in listed.items():
        lines.append(
            f"| {domain} | {_pct(fold['edits']['recall'])} | {_pct(fold['benign']['recall'])} "
            f"| {_pct(fold['hard']['recall'])} | {_pct(fold['edit_pair']['recall'])} "
            f"| {_pct(fold['cluster_precision'], 2)} | {fold['clusters_joining_photos']} |"
        )
    hard = {d: fold["hard"]["recall"] for d, fold in listed.items()}
    every = {d: fold["edits"]["recall"] for d, fold in listed.items()}
    worst, worst_hard = min(every, key=lambda d: every[d]), min(hard, key=lambda d: hard[d])
    lines += [
        "",
        f"**Worst domain, as listed**: {worst} ({_pct(every[worst])} %); hard edits: {worst_hard} "
        f"({_pct(hard[worst_hard])} %). Average {_pct(_mean(list(every.values())))} % (hard "
        f"{_pct(_mean(list(hard.values())))} %); cluster precision "
        f"{_pct(_mean([f['cluster_precision'] for f in listed.values()]), 2)} % on average, lowest "
        f"{_pct(min(f['cluster_precision'] for f in listed.values()), 2)} %.",
    ]
    return lines


def _family_table(folds: dict[str, Any], domains: list[str], key: str, title: str) -> list[str]:
    """A table of each edit family's recall per held-out domain (`key`: the verdicts as pairs, "held_out",
    or what the API would list, "held_out_listed")."""
    lines = [
        "",
        f"## Per edit family, {title}",
        "",
        "| family | kind | " + " | ".join(domains) + " |",
        "|---|---|" + "---|" * len(domains),
    ]
    for family in [*BENIGN, *HARD, EDIT_PAIR]:
        kind = "benign" if family in BENIGN else "hard" if family in HARD else "two edits"
        cells = []
        for domain in domains:
            stats = folds[domain].get(key, {}).get("families", {}).get(family)
            cells.append(f"{_pct(stats['recall'])} ({stats['pairs']})" if stats else "")
        if any(cells):
            lines.append(f"| {family} | {kind} | " + " | ".join(cells) + " |")
    return lines
