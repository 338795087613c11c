"""docker-compose.yml and the Helm chart's values -> the verifier their workers run unless told: the one
`sscd` runs by default (imgdup_core.verifier_config.DEFAULT_VERIFIER_FOR_EMBEDDER), not a copy of an
older default, and the retrain CronJob's evidence file named after it."""

from __future__ import annotations

from typing import Any

import yaml
from deploy_files import CHART_DIR

from imgdup_core.verifier_config import DEFAULT_VERIFIER_FOR_EMBEDDER

SSCD_DEFAULT = DEFAULT_VERIFIER_FOR_EMBEDDER["sscd"]


def test_compose_workers_run_the_default_verifier_unless_told(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        env = service.get("environment") or {}
        if "IMGDUP_VERIFIER_VERSION" in env:
            assert env["IMGDUP_VERIFIER_VERSION"] == f"${{IMGDUP_VERIFIER_VERSION:-{SSCD_DEFAULT}}}", name


def test_helm_values_run_and_retrain_the_default_verifier() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["verifierModels"]["version"] == SSCD_DEFAULT
    # What `python -m bench.quality export-evidence` names it (imgdup retrain's default file name).
    assert values["retrain"]["benchmarkEvidence"] == f"training-evidence-{SSCD_DEFAULT}.jsonl"
