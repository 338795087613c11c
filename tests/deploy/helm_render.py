"""Helm's engine for the chart checks -> render(values) and lint(values) through the `helm` binary or
helm-python-sdk, the base values every check starts from, and helpers to pick objects out of a render."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from deploy_files import CHART_DIR

Render = Callable[[dict[str, Any]], str]
Lint = Callable[[dict[str, Any]], list[str]]

DATABASE_URL = "postgresql://imgdup:test-db-password@db.example:5432/imgdup"
API_TOKEN = "test-api-token-value"
# Where Kafka, Postgres and Qdrant are: the NetworkPolicy lets pods reach them and no other private address.
SERVICE_PEERS: dict[str, Any] = {
    "kafka": {"to": [{"podSelector": {"matchLabels": {"app": "kafka"}}}], "ports": [9092]},
    "postgres": {"to": [{"ipBlock": {"cidr": "10.20.30.0/24"}}], "ports": [5432]},
    "qdrant": {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vectors"}},
                "podSelector": {"matchLabels": {"app": "qdrant"}},
            }
        ],
        "ports": [6333, 6334],
    },
}
BASE_VALUES: dict[str, Any] = {
    "networkPolicy": SERVICE_PEERS,
    "kafka": {"bootstrapServers": "kafka-0.kafka:9092"},
    "qdrant": {"url": "http://qdrant:6333"},
    "secrets": {"databaseUrl": DATABASE_URL, "apiToken": API_TOKEN},
    "api": {"ingress": {"enabled": True, "className": "nginx"}},
}
DEPLOYMENTS = {"api": None, "worker": "images", "verifier": "verifier", "clusterer": "clusterer"}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


class HelmError(Exception):
    pass


def helm_binary() -> tuple[Render, Lint] | None:
    helm = shutil.which("helm")
    if helm is None:
        return None

    def run(args: list[str], values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as folder:
            values_file = Path(folder) / "values.yaml"
            values_file.write_text(yaml.safe_dump(values))
            command = [helm, *args, "--values", str(values_file)]
            return subprocess.run(command, capture_output=True, text=True, timeout=60)

    def render(values: dict[str, Any]) -> str:
        result = run(["template", "rel", str(CHART_DIR), "--namespace", "ns"], values)
        if result.returncode != 0:
            raise HelmError(result.stderr)
        return result.stdout

    def lint(values: dict[str, Any]) -> list[str]:
        result = run(["lint", "--strict", str(CHART_DIR)], values)
        return [] if result.returncode == 0 else [result.stdout + result.stderr]

    return render, lint


def helm_library() -> tuple[Render, Lint] | None:
    try:
        import helm_python  # type: ignore[import-not-found]
    except ImportError:
        return None

    def render(values: dict[str, Any]) -> str:
        try:
            with helm_python.Chart.load(CHART_DIR) as chart:
                manifests = chart.render(values, name="rel", namespace="ns", is_install=True)
        except helm_python.HelmError as exc:
            raise HelmError(str(exc)) from exc
        return "\n---\n".join(text for path, text in sorted(manifests.items()) if path.endswith(".yaml"))

    def lint(values: dict[str, Any]) -> list[str]:
        report = helm_python.lint(CHART_DIR, values, strict=True)
        return [*report["errors"], *(m["error"] for m in report["messages"] if m["severity"] >= 2)]

    return render, lint


def parse(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
