"""Prometheus config and Grafana dashboard -> targets are compose services, queries use exported metrics."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_files import (
    API_PORT,
    DASHBOARD_FILE,
    GRAFANA_DIR,
    METRIC_SOURCES,
    PROMETHEUS_FILE,
    ROOT,
    WORKER_METRICS_PORT,
    WORKER_SERVICES,
    tool,
)

# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    data = yaml.safe_load(PROMETHEUS_FILE.read_text())
    assert isinstance(data, dict) and data.get("scrape_configs")
    return data


def _scrape_targets(job: dict[str, Any]) -> list[tuple[str, int]]:
    targets: list[tuple[str, int]] = []
    for sd in job.get("dns_sd_configs", []):
        targets += [(name, int(sd["port"])) for name in sd["names"]]
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, _, port = target.rpartition(":")
            targets.append((host, int(port)))
    return targets


def test_prometheus_scrapes_every_role(prometheus: dict[str, Any], services: dict[str, Any]) -> None:
    scraped: dict[str, int] = {}
    for job in prometheus["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        for host, port in _scrape_targets(job):
            assert host in services or host == "localhost", f"{host} is not a compose service"
            scraped[host] = port
    assert scraped.get("api") == API_PORT
    for name in WORKER_SERVICES:
        assert scraped.get(name) == WORKER_METRICS_PORT, name
    names = [job["job_name"] for job in prometheus["scrape_configs"]]
    assert len(names) == len(set(names))


def test_prometheus_scrapes_the_api_with_a_metrics_credential_from_a_secret(
    prometheus: dict[str, Any], services: dict[str, Any]
) -> None:
    """The API's /metrics answers its metrics role only; its token reaches Prometheus as a file,
    written at start from a required variable, never committed."""
    (api_job,) = [job for job in prometheus["scrape_configs"] if ("api", API_PORT) in _scrape_targets(job)]
    authorization = api_job["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer" and "credentials" not in authorization
    token_file = authorization["credentials_file"]
    service = services["prometheus"]
    assert service["environment"]["IMGDUP_METRICS_TOKEN"].startswith("${IMGDUP_METRICS_TOKEN:?")
    start = " ".join(service["command"])
    assert f'"$$IMGDUP_METRICS_TOKEN" > {token_file} &&' in start and "umask 077" in start
    assert start.rstrip().split("&&")[-1].strip().startswith("exec /bin/prometheus")
    assert any(str(v).endswith(":" + str(Path(token_file).parent)) for v in service["volumes"])


def test_prometheus_config_is_mounted(services: dict[str, Any]) -> None:
    mounts = [str(v).split(":") for v in services["prometheus"].get("volumes", [])]
    sources = {(ROOT / m[0]).resolve(): m[1] for m in mounts if m[0].startswith(".")}
    assert sources.get(PROMETHEUS_FILE) == "/etc/prometheus/prometheus.yml"


def test_promtool_check_config() -> None:
    promtool = tool("promtool", "promtool is not installed (Debian package `prometheus`)")
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Grafana
# --------------------------------------------------------------------------------------------

# Prometheus' own series that a panel may use besides imgdup's.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}
METRIC_DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")


def exported_series() -> dict[str, str]:
    """Every series name imgdup's code exports -> the metric it belongs to, read from the code."""
    series: dict[str, str] = {}
    for folder in METRIC_SOURCES:
        for path in folder.rglob("*.py"):
            for kind, name in METRIC_DEFINITION.findall(path.read_text()):
                if kind == "Counter":
                    base = name.removesuffix("_total")
                    names = [f"{base}_total", f"{base}_created"]
                elif kind == "Gauge":
                    names = [name]
                elif kind == "Histogram":
                    names = [f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"]
                else:
                    names = [name, f"{name}_sum", f"{name}_count", f"{name}_created"]
                series.update(dict.fromkeys(names, name))
    return series


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if re.match(r"\s*\(", text[match.end() :]) or match.group(0) in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def test_promql_metric_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(imgdup_stage_seconds_bucket{stage="x"}'
        "[$__rate_interval]))) > on (job) group_left up or vector(0)"
    )
    assert promql_metrics(expr) == {"imgdup_stage_seconds_bucket", "up"}


def test_metric_sources_cover_the_registry() -> None:
    from imgdup.metrics import REGISTRY

    exported = set(exported_series().values())
    for family in REGISTRY.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        assert name in exported, f"{name} is registered but not found by the source scan"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def test_dashboard_queries_use_exported_metrics(dashboard: dict[str, Any]) -> None:
    known = exported_series()
    for name in (
        "imgdup_embeddings_processed_total",
        "imgdup_ann_query_seconds_bucket",
        "imgdup_duplicates_found_total",
        "imgdup_api_ingest_requests_total",
        "imgdup_stage_seconds_bucket",
        "imgdup_dead_letters_total",
        "imgdup_work_items",
        "imgdup_verdicts_total",
        "imgdup_images_failed_total",
    ):
        assert name in known, f"{name} is no longer exported by the code"
    exprs = _exprs(dashboard)
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names = promql_metrics(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - set(known) - PROMETHEUS_SERIES
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, which imgdup does not export"
        used |= {known[n] for n in names if n in known}
    required = {
        "imgdup_embeddings_processed_total",
        "imgdup_ann_query_seconds",
        "imgdup_duplicates_found_total",
        "imgdup_api_ingest_requests_total",
        "imgdup_stage_seconds",
        "imgdup_dead_letters_total",
        "imgdup_work_items",
        "imgdup_verdicts_total",
        "imgdup_images_failed_total",
    }
    assert required <= used, f"no panel for {sorted(required - used)}"


def test_dashboard_panels(dashboard: dict[str, Any]) -> None:
    exprs = _exprs(dashboard)
    for metric in ("imgdup_ann_query_seconds_bucket", "imgdup_stage_seconds_bucket"):
        for q in ("0.50", "0.95"):
            assert any(f"histogram_quantile({q}," in e and metric in e for e in exprs), (metric, q)
    assert any(re.search(r"histogram_quantile\(0\.95, sum by \(le, stage\)", e) for e in exprs), "per stage"
    assert any(re.search(r"sum by \(reason\) \(rate\(imgdup_dead_letters_total", e) for e in exprs)
    assert any("imgdup_work_items" in e and "accepted" in e for e in exprs), "queue backlog panel"
    panels = [p for p in _panels(dashboard) if p.get("type") != "row"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel.get("title") and panel.get("gridPos") and panel.get("targets"), panel.get("id")
        assert panel["datasource"]["type"] == "prometheus"
    assert dashboard["uid"] and dashboard["title"]


def test_promtool_parses_dashboard_queries(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = tool("promtool", "promtool is not installed (Debian package `prometheus`)")
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": e.replace("$__rate_interval", "5m").replace("$__range", "1h"),
        }
        for i, e in enumerate(_exprs(dashboard))
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning(services: dict[str, Any], dashboard: dict[str, Any]) -> None:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    url = urlsplit(source["url"])
    assert url.hostname in services and url.port == 9090
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == source["uid"]

    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "imgdup.yml").read_text())
    (provider,) = providers["providers"]
    mounts = dict(
        ((ROOT / v.split(":")[0]).resolve(), v.split(":")[1])
        for v in services["grafana"]["volumes"]
        if str(v).startswith(".")
    )
    assert mounts[DASHBOARD_FILE.parent] == provider["options"]["path"]
    assert mounts[GRAFANA_DIR / "provisioning"] == "/etc/grafana/provisioning"
