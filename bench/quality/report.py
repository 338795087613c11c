"""Scored methods -> bench/results/quality.md (tables for the README) and quality.json (every number)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.quality.dataset import HARD_NEGATIVE_KINDS
from bench.quality.edits import CLASSIC_FAMILIES, EDIT_FAMILIES
from bench.quality.metrics import EDIT_PAIR, PRECISION_TARGETS

CLASSIC_NAMES = frozenset(f.name for f in CLASSIC_FAMILIES)

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    methods: list[dict[str, Any]] = result["methods"]
    setup = result["setup"]
    out = [
        "## Detection quality (held-out test split)",
        "",
        f"{setup['test_images']} test images: {setup['test_photos']} real photos (sources: "
        f"{setup['sources']}) and {setup['test_copies']} edited copies made with AugLy; "
        f"{setup['positive_pairs']} original-copy pairs, {setup['negative_pairs']:,} negative pairs of "
        f"which {setup['hard_negative_pairs']:,} hard. Split by source photo (seed {setup['seed']}); "
        f"the verifier was calibrated on the train split only. Percentages.",
        "",
        *(
            [
                f"Photo pool **{setup['pool']}**"
                + (
                    f"; domain **{setup['holdout_domain']}** left out: the test split is its photos, "
                    "the train split every other domain."
                    if setup.get("holdout_domain")
                    else "."
                ),
                "",
            ]
            if setup.get("pool", "default") != "default" or setup.get("holdout_domain")
            else []
        ),
        "**imgdup** is the whole product run through the embedded stack and fed through the API "
        f"(embedder `{setup.get('embedder', 'sscd')}`, ANN top-{setup['ann_top_k']} above cosine "
        f"{setup['ann_min_score']}, verifier "
        f"`{setup['verifier_version']}`): predicted pairs are the `duplicates` rows with "
        "`is_duplicate` (the verdicts); *clusters* counts every pair that ends up in one cluster; "
        "*API* is what `GET /api/v1/duplicates/{ad_id}` answers for each test image's ad (its verified "
        "pairs and the ads matched through a cluster; a pair counts when either side lists the other). "
        "*seed rules* is the seed's rule (all four thresholds) on the evidence the verifier "
        "measured for the same ANN candidates; the other baselines score every pair exhaustively. "
        "R@P = best recall at a precision of at least P "
        "(over thresholds of the method's score; benign and hard each against all negatives).",
        "",
    ]
    headers = [
        "method",
        "operating point",
        "precision",
        "recall",
        "benign recall",
        "hard recall",
        "R@P.995 benign",
        "R@P.995 hard",
        "R@P.9999 all",
        "hard-neg FPR",
    ]
    rows = []
    for m in methods:
        op = m["operating_point"]
        curves = m.get("curves") or {}
        c995 = curves.get(f"{PRECISION_TARGETS[0]:g}", {})
        c9999 = curves.get(f"{PRECISION_TARGETS[1]:g}", {})
        rows.append(
            [
                f"**{m['name']}**" if m["name"].startswith("imgdup") else m["name"],
                m["label"],
                _pct(op["precision"], 2),
                _pct(op["recall"]),
                _pct(op["benign_recall"]),
                _pct(op["hard_recall"]),
                _pct(c995.get("benign", {}).get("recall")) if c995 else "–",
                _pct(c995.get("hard", {}).get("recall")) if c995 else "–",
                _pct(c9999.get("all", {}).get("recall")) if c9999 else "–",
                _pct(op["hard_negatives"]["all"]["fpr"], 2),
            ]
        )
    out += [_table(headers, rows), ""]

    out += ["### Recall per edit family (at each method's operating point)", ""]
    fam_headers = ["edit", "kind", "pairs", *[m["name"] for m in methods], "imgdup precision"]
    fam_rows = []
    main = methods[0]
    rows_of = [(f.name, f.kind) for f in EDIT_FAMILIES] + [(EDIT_PAIR, "edit vs edit")]
    for name, kind in rows_of:
        stats = [m["operating_point"]["families"][name] for m in methods]
        if not stats[0]["pairs"] and name not in CLASSIC_NAMES:
            continue  # a family the evaluated pool does not use
        fam_rows.append(
            [
                name,
                kind,
                str(stats[0]["pairs"]),
                *[_pct(s["recall"]) for s in stats],
                _pct(main["operating_point"]["families"][name]["precision"], 2),
            ]
        )
    out += [_table(fam_headers, fam_rows), ""]

    out += ["### Hard negatives: false-positive rate (false positives / pairs)", ""]
    hn_headers = ["kind", "pairs", *[m["name"] for m in methods]]
    hn_rows = []
    for kind in (*HARD_NEGATIVE_KINDS, "all"):
        if kind == "same_template" and not methods[0]["operating_point"]["hard_negatives"][kind]["pairs"]:
            continue  # the default pool has no screenshot templates
        cells = []
        for m in methods:
            h = m["operating_point"]["hard_negatives"][kind]
            cells.append(f"{_pct(h['fpr'], 2)} ({h['false_positives']})")
        hn_rows.append([kind, str(methods[0]["operating_point"]["hard_negatives"][kind]["pairs"]), *cells])
    neutral = [m["operating_point"].get("neutral", {"pairs": 0}) for m in methods]
    if neutral[0]["pairs"]:
        cells = [f"called duplicates: {n['called_duplicates']}" for n in neutral]
        hn_rows.append(["adjacent frames (neither)", str(neutral[0]["pairs"]), *cells])
    out += [_table(hn_headers, hn_rows), ""]

    domains = main["operating_point"].get("domains", {})
    if len(domains) > 1:
        out += ["### Recall per domain of the source photo (at each method's operating point)", ""]
        dom_headers = ["domain", "pairs", *[m["name"] for m in methods], "imgdup false positives"]
        dom_rows = []
        for domain, stats in domains.items():
            cells = [_pct(m["operating_point"]["domains"][domain]["recall"]) for m in methods]
            dom_rows.append([domain, str(stats["pairs"]), *cells, str(stats["false_positives"])])
        out += [_table(dom_headers, dom_rows), ""]

    clusters = result.get("clusters")
    if clusters:
        out += [
            "### Clusters (imgdup)",
            "",
            f"- {clusters['clusters']} clusters of two or more test images (largest "
            f"{clusters['largest_cluster']}); of the {clusters['pairs_in_clusters']} image pairs that "
            f"share a cluster, {clusters['true_pairs']} are of one source photo: cluster-level "
            f"precision {_pct(clusters['precision'], 2)} % (two edits of one photo count as true).",
            f"- {clusters['clusters_joining_photos']} clusters join images of two or more different "
            f"photos ({clusters['images_in_joining_clusters']} images; at most "
            f"{clusters['most_photos_in_one_cluster']} photos in one cluster).",
            *(
                [
                    f"- The API listed {result['timing']['api_one_sided_listings']} matches one way only "
                    "(an ad listing another that does not list it back)."
                ]
                if "api_one_sided_listings" in result.get("timing", {})
                else []
            ),
            "",
        ]
    timing = result.get("timing", {})
    if timing:
        out += [
            "### Cost",
            "",
            f"- verification: median {timing['verify_ms_median']:.0f} ms, p95 "
            f"{timing['verify_ms_p95']:.0f} ms per pair (wall, one thread, {timing['verify_pairs']} "
            "candidate pairs of the run, with the SIFT features stored at indexing, as in the stream)"
            + (
                f"; extracting those features: median {timing['sift_cpu_ms_per_image_median']:.0f} ms"
                " CPU per image, once"
                if "sift_cpu_ms_per_image_median" in timing
                else ""
            ),
        ]
        if "stack_elapsed_s" in timing:
            out.append(
                f"- stack: {timing['stack_elapsed_s']:.0f} s from the first post to all processed "
                f"({timing['stack_pairs']} candidate pairs verified for {setup['test_images']} images)"
            )
        out.append("")
    targets = result.get("targets")
    if targets:
        out += ["### Targets", ""]
        out += [f"- {line}" for line in targets]
        out.append("")
    machine = result.get("machine", {})
    out.append(
        f"Measured {machine.get('when', '')} on {machine.get('cpu', '')} ({machine.get('cores', '')} cores, "
        f"load {float(machine.get('loadavg_at_start', [0.0])[0]):.1f} at the start), "
        f"commit {machine.get('commit', '')}; "
        f"`python -m bench.quality{' --quick' if setup.get('quick') else ''}`."
    )
    return "\n".join(out) + "\n"


def write(result: dict[str, Any], name: str = "quality") -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {**result, "loadavg_at_end": list(os.getloadavg())}
    json_path = RESULTS / f"{name}.json"
    md_path = RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(_clean(result), indent=2, sort_keys=True, allow_nan=False) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path


def _clean(value: Any) -> Any:
    """Strict JSON: NaN (no data) becomes null, infinities (a threshold never reached) strings."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
