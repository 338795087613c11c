"""docker-compose.yml -> structure checks without Docker; `docker compose config` where a CLI is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_files import COMPOSE_FILE, DOCKERFILE, ROOT, SECRET_NAME, WORKER_METRICS_PORT, WORKER_SERVICES

from imgdup.settings import ALL_ROLES, Settings

IMGDUP_SERVICES = {"init", "api", *WORKER_SERVICES}
SCALABLE_WORKERS = {"worker-images", "worker-verifier"}
# Variables compose must refuse to run without (no default secret in the file).
REQUIRED_SECRETS = (
    "IMGDUP_API_TOKEN",
    "IMGDUP_API_CREDENTIALS",
    "IMGDUP_METRICS_TOKEN",
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
)
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$")


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
    # Only the API reads the token (in production it refuses to start without a real one);
    # workers and init serve no authenticated routes and do not get it.
    api_env = _env(services["api"])
    assert api_env["IMGDUP_ENVIRONMENT"] == "production"
    assert REQUIRED_VARIABLE.match(api_env.get("IMGDUP_API_TOKEN", "")), "api"
    # Its named credentials too (Prometheus's metrics one at least): only hashes, only the API.
    assert REQUIRED_VARIABLE.match(api_env.get("IMGDUP_API_CREDENTIALS", "")), "api"
    for name in set(IMGDUP_SERVICES) - {"api"}:
        assert "IMGDUP_API_TOKEN" not in _env(services[name]), name
        assert "IMGDUP_API_CREDENTIALS" not in _env(services[name]), name


def test_compose_keeps_blobs_in_minio(services: dict[str, dict[str, Any]]) -> None:
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    for name in ("init", "api", *WORKER_SERVICES):
        env = _env(services[name])
        assert env["IMGDUP_BLOB_STORE"] == "s3", name
        assert urlsplit(env["IMGDUP_S3_ENDPOINT"]).hostname == "minio", name
        assert REQUIRED_VARIABLE.match(env["IMGDUP_S3_SECRET_ACCESS_KEY"]), name
        for key in (k for k in env if k.startswith(("IMGDUP_S3_", "IMGDUP_BLOB_"))):
            assert key.removeprefix("IMGDUP_").lower() in Settings.model_fields, key
    for name in ("api", *WORKER_SERVICES):
        assert _depends(services[name]).get("minio") == "service_healthy", name


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


# The commented Kafka security example: its YAML lines, found by what they set.
KAFKA_SECURITY_EXAMPLE = re.compile(r"(?m)^(\s*)# ((?:KAFKA_[A-Z_]+|volumes):.*|  - \./secrets/kafka.*)$")
KAFKA_SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
}


def _with_kafka_security_example() -> str:
    text, uncommented = KAFKA_SECURITY_EXAMPLE.subn(r"\1\2", COMPOSE_FILE.read_text())
    assert uncommented == len(KAFKA_SECURITY_ENV) + 2, "the example: five variables and the CA's volume"
    return text


def test_compose_kafka_is_plaintext_unless_uncommented(services: dict[str, dict[str, Any]]) -> None:
    for name in IMGDUP_SERVICES:
        assert not KAFKA_SECURITY_ENV & set(_env(services[name])), name
        assert not services[name].get("volumes"), name


def test_compose_kafka_security_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented, the example gives every imgdup service the same security, the CA file mounted
    where KAFKA_SSL_CAFILE points, a login required from the environment, and settings imgdup accepts."""
    services = yaml.safe_load(_with_kafka_security_example())["services"]
    examples = []
    for name in IMGDUP_SERVICES:
        env = _env(services[name])
        security = {key: value for key, value in env.items() if key in KAFKA_SECURITY_ENV}
        assert set(security) == KAFKA_SECURITY_ENV, name
        for secret in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
            assert REQUIRED_VARIABLE.match(security[secret]), f"{name}: {secret} must be ${{VAR:?message}}"
        mounts = {volume.split(":")[1]: volume for volume in services[name].get("volumes", [])}
        assert security["KAFKA_SSL_CAFILE"] in mounts, name
        assert mounts[security["KAFKA_SSL_CAFILE"]].endswith(":ro"), name
        examples.append(security)
    assert all(example == examples[0] for example in examples)
    for key in list(os.environ):
        if key.startswith(("KAFKA_", "IMGDUP_KAFKA_")):
            monkeypatch.delenv(key)
    for key, value in examples[0].items():
        monkeypatch.setenv(key, "from-the-environment" if value.startswith("${") else value)
    settings = Settings(kafka_bootstrap_servers="kafka.example:9093")
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert str(settings.kafka_ssl_cafile) == examples[0]["KAFKA_SSL_CAFILE"]


def test_compose_config_validates_the_kafka_security_example(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no `docker compose` plugin and no docker-compose binary installed")
    example = ROOT / f".compose-kafka-security-{os.getpid()}.yml"  # beside the original: same build context
    example.write_text(_with_kafka_security_example())
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.pop("COMPOSE_PROJECT_NAME", None)
        env.update(dict.fromkeys(REQUIRED_SECRETS, "test-only-value"))
        empty_env_file = tmp_path / "empty.env"
        empty_env_file.write_text("")
        command = [*cli, "--env-file", str(empty_env_file), "-f", str(example), "config", "-q"]
        login = {"KAFKA_SASL_USERNAME": "imgdup", "KAFKA_SASL_PASSWORD": "test-only-value"}
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        runs = [subprocess.Popen(command, cwd=ROOT, env=e, **pipes) for e in (env, {**env, **login})]
        (_, _), (_, ok_err) = (run.communicate(timeout=60) for run in runs)
    finally:
        example.unlink()
    assert runs[0].returncode != 0, "compose must refuse the example without the Kafka login"
    assert runs[1].returncode == 0, ok_err
