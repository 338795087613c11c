"""The Helm chart -> static checks of its files, and checks of the chart as Helm's own engine renders it.

The engine is the `helm` binary when it is on PATH, else the `helm_python` bindings (helm-python-sdk,
Helm's Go SDK as a shared library). Without either, the tests that need a render are skipped, with
the reason; the static checks always run.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from deploy_files import API_PORT, CHART_DIR, SECRET_NAME, WORKER_METRICS_PORT
from helm_render import (
    API_TOKEN,
    BASE_VALUES,
    DATABASE_URL,
    DEPLOYMENTS,
    HelmError,
    by_kind,
    merge,
    parse,
)

from imgdup.settings import Settings


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


@pytest.fixture(scope="module")
def rendered(helm: Any) -> list[dict[str, Any]]:
    render, _lint = helm
    return parse(render(BASE_VALUES))


def test_helm_lint(helm: Any) -> None:
    _render, lint = helm
    assert lint(BASE_VALUES) == []


def test_helm_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds.count("Deployment") == 4
    assert kinds.count("HorizontalPodAutoscaler") == 3
    assert {"Service", "ConfigMap", "Secret", "Job", "Ingress"} <= set(kinds)
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == {f"rel-imgdup-{name}" for name in DEPLOYMENTS}
    service = by_kind(rendered, "Service")["rel-imgdup-api"]
    assert service["spec"]["selector"] == deployments["rel-imgdup-api"]["spec"]["selector"]["matchLabels"]
    ingress = by_kind(rendered, "Ingress")["rel-imgdup-api"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "rel-imgdup-api"


def test_helm_autoscaling_excludes_the_clusterer(rendered: list[dict[str, Any]]) -> None:
    hpas = by_kind(rendered, "HorizontalPodAutoscaler").values()
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    assert targets == {"rel-imgdup-api", "rel-imgdup-worker", "rel-imgdup-verifier"}
    for hpa in hpas:
        assert hpa["apiVersion"] == "autoscaling/v2"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"] >= 1
    clusterer = by_kind(rendered, "Deployment")["rel-imgdup-clusterer"]["spec"]
    assert clusterer["replicas"] == 1 and clusterer["strategy"] == {"type": "Recreate"}
    for name in ("api", "worker", "verifier"):
        assert "replicas" not in by_kind(rendered, "Deployment")[f"rel-imgdup-{name}"]["spec"], name


def test_helm_pods(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
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
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez"  # not Postgres
        else:
            assert container["args"] == ["worker", "--roles", role]
            health = ["imgdup", "health", "--roles", role]
            assert container["livenessProbe"]["exec"]["command"] == health, name
            assert container["startupProbe"]["exec"]["command"] == health, name
            assert container["readinessProbe"]["httpGet"]["port"] == "metrics", name
    configmap = by_kind(rendered, "ConfigMap")["rel-imgdup"]["data"]
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
        assert "DATABASE_URL" in env, owner
        # Only the API reads the token and the named credentials; worker pods and the migrate Job
        # do not get them.
        assert ("IMGDUP_API_TOKEN" in env) == (owner == "rel-imgdup-api"), owner
        assert ("IMGDUP_API_CREDENTIALS" in env) == (owner == "rel-imgdup-api"), owner
        if owner == "rel-imgdup-api":
            assert env["IMGDUP_API_CREDENTIALS"]["valueFrom"]["secretKeyRef"]["optional"] is True
    secret = by_kind(rendered, "Secret")["rel-imgdup"]
    assert base64.b64decode(secret["data"]["DATABASE_URL"]).decode() == DATABASE_URL
    assert base64.b64decode(secret["data"]["IMGDUP_API_TOKEN"]).decode() == API_TOKEN
    configmap = by_kind(rendered, "ConfigMap")["rel-imgdup"]["data"]
    assert not any(SECRET_NAME.search(key) for key in configmap)


def test_helm_existing_secret(helm: Any) -> None:
    render, _lint = helm
    values = merge(
        BASE_VALUES, {"secrets": {"existingSecret": "imgdup-prod", "databaseUrl": "", "apiToken": ""}}
    )
    objects = parse(render(values))
    assert not by_kind(objects, "Secret"), "no Secret is created when one exists"
    for owner, container in _containers(objects):
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "imgdup-prod", owner


def test_helm_migration_hook(rendered: list[dict[str, Any]]) -> None:
    (job,) = by_kind(rendered, "Job").values()
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert re.search(r"imgdup migrate\s*&&\s*imgdup topics", " ".join(container["command"]))
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # On a first install the chart's Secret does not exist yet: the Job reads a hook Secret.
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "DATABASE_URL"]
    hook_secret = by_kind(rendered, "Secret")[ref["name"]]
    assert set(hook_secret["data"]) == {"DATABASE_URL"}  # the migrate Job needs no API token
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
        ({"blobStore": {"bucket": ""}}, "blobStore.bucket is required"),
        ({"settings": {"IMGDUP_S3_BUCKET": "x"}}, "set the blob store with blobStore"),
        ({"settings": {"IMGDUP_S3_SECRET_ACCESS_KEY": "x"}}, "looks like a secret"),
    ],
)
def test_helm_refuses_bad_values(helm: Any, extra: dict[str, Any], message: str) -> None:
    render, _lint = helm
    with pytest.raises(HelmError, match=re.escape(message)):
        render(merge(BASE_VALUES, extra))


def test_helm_blob_store_reaches_every_pod_with_its_credentials_as_references(helm: Any) -> None:
    render, _lint = helm
    values = merge(
        BASE_VALUES,
        {
            "blobStore": {"endpoint": "http://minio.minio.svc:9000", "bucket": "imgdup-prod"},
            "secrets": {"s3AccessKeyId": "test-access-key", "s3SecretAccessKey": "test-s3-secret-key"},
            "networkPolicy": {"blobStore": {"to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}]}},
        },
    )
    objects = parse(render(values))
    configmap = by_kind(objects, "ConfigMap")["rel-imgdup"]["data"]
    assert configmap["IMGDUP_BLOB_STORE"] == "s3"
    assert configmap["IMGDUP_S3_ENDPOINT"] == "http://minio.minio.svc:9000"
    assert configmap["IMGDUP_S3_BUCKET"] == "imgdup-prod"
    assert Settings(**{k.removeprefix("IMGDUP_").lower(): v for k, v in configmap.items() if "_S3_" in k})
    secrets = by_kind(objects, "Secret")
    for name, deployment in by_kind(objects, "Deployment").items():
        env = _pod_env(deployment, secrets, configmap)
        assert env["IMGDUP_S3_SECRET_ACCESS_KEY"] == "test-s3-secret-key", name
        assert env["IMGDUP_S3_ACCESS_KEY_ID"] == "test-access-key", name
    (prune,) = by_kind(objects, "CronJob").values()
    (container,) = prune["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert "IMGDUP_S3_SECRET_ACCESS_KEY" in {e["name"] for e in container["env"]}  # it collects orphans
    assert "test-s3-secret-key" not in yaml.safe_dump(by_kind(objects, "ConfigMap"))
    (policy,) = by_kind(objects, "NetworkPolicy").values()
    assert {"to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}], "ports": [{"protocol": "TCP", "port": 9000}]} in (
        policy["spec"]["egress"]
    )


KAFKA_PASSWORD = "test-kafka-sasl-password"
TLS_DIR = "/etc/imgdup/kafka-tls"
SECURE_VALUES = merge(
    BASE_VALUES,
    {
        "kafka": {
            "security": {
                "protocol": "SASL_SSL",
                "sasl": {"mechanism": "SCRAM-SHA-512", "username": "imgdup"},
                "tls": {"secretName": "kafka-client-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
            }
        },
        "secrets": {"kafkaSaslPassword": KAFKA_PASSWORD},
    },
)


def _pod_env(
    obj: dict[str, Any], secrets: dict[str, dict[str, Any]], configmap: dict[str, str]
) -> dict[str, str]:
    """The environment a pod's container starts with: the ConfigMap, inline values, Secret keys."""
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    if container.get("envFrom"):
        env.update(configmap)
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            env[entry["name"]] = entry["value"]
        elif ref["key"] in secrets.get(ref["name"], {}).get("data", {}):
            env[entry["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
        else:
            assert ref.get("optional"), (obj["metadata"]["name"], entry["name"])
    return env


def test_helm_plaintext_kafka_by_default(rendered: list[dict[str, Any]]) -> None:
    configmap = by_kind(rendered, "ConfigMap")["rel-imgdup"]["data"]
    assert configmap["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not [key for key in configmap if key.startswith(("KAFKA_SASL", "KAFKA_SSL"))]
    for owner, container in _containers(rendered):
        assert "KAFKA_SASL_PASSWORD" not in {e["name"] for e in container.get("env", [])}, owner
        assert "kafka-tls" not in {m["name"] for m in container["volumeMounts"]}, owner


def test_helm_kafka_security_reaches_every_pod_and_the_topics_hook(helm: Any) -> None:
    """Every Deployment and the pre-install Job (`imgdup topics`) start with the same Kafka settings,
    which imgdup's own Settings read as SASL_SSL with the mounted files, the password from a Secret."""
    render, lint = helm
    assert lint(SECURE_VALUES) == []
    objects = parse(render(SECURE_VALUES))
    secrets = by_kind(objects, "Secret")
    configmap = by_kind(objects, "ConfigMap")["rel-imgdup"]["data"]
    for obj in objects:
        if obj["kind"] != "Secret":
            assert KAFKA_PASSWORD not in yaml.safe_dump(obj), f"password inline in {obj['kind']}"
    pods = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(pods) == 5
    for obj in pods:
        name = obj["metadata"]["name"]
        spec = obj["spec"]["template"]["spec"]
        env = _pod_env(obj, secrets, configmap)
        settings = {key: value for key, value in env.items() if key.startswith("KAFKA_")}
        assert settings == {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka-0.kafka:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "imgdup",
            "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
            "KAFKA_SSL_CAFILE": f"{TLS_DIR}/ca.crt",
            "KAFKA_SSL_CERTFILE": f"{TLS_DIR}/client.crt",
            "KAFKA_SSL_KEYFILE": f"{TLS_DIR}/client.key",
        }, name
        volume = {v["name"]: v for v in spec["volumes"]}["kafka-tls"]["secret"]
        assert volume["secretName"] == "kafka-client-tls", name
        files = {item["path"]: item["key"] for item in volume["items"]}
        assert files == {"ca.crt": "ca.crt", "client.crt": "tls.crt", "client.key": "tls.key"}, name
        (container,) = spec["containers"]
        mount = {m["name"]: m for m in container["volumeMounts"]}["kafka-tls"]
        assert mount["mountPath"] == TLS_DIR and mount["readOnly"] is True, name
        # The names are the ones imgdup reads: its Settings accept this environment as it is.
        parsed = Settings.model_validate(settings)
        assert parsed.kafka_security_protocol == "SASL_SSL" and parsed.kafka_sasl_password is not None
        assert parsed.kafka_sasl_password.get_secret_value() == KAFKA_PASSWORD
        assert str(parsed.kafka_ssl_keyfile) == f"{TLS_DIR}/client.key"


def test_helm_kafka_password_from_an_existing_secret(helm: Any) -> None:
    render, _lint = helm
    values = merge(
        SECURE_VALUES,
        {
            "secrets": {
                "existingSecret": "imgdup-prod",
                "databaseUrl": "",
                "apiToken": "",
                "kafkaSaslPassword": "",
            }
        },
    )
    objects = parse(render(values))
    assert not by_kind(objects, "Secret")
    for owner, container in _containers(objects):
        (entry,) = [e for e in container["env"] if e["name"] == "KAFKA_SASL_PASSWORD"]
        assert entry["valueFrom"]["secretKeyRef"] == {"name": "imgdup-prod", "key": "KAFKA_SASL_PASSWORD"}, (
            owner
        )


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"protocol": "TLS"}, "kafka.security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
        ({"sasl": {"mechanism": "GSSAPI"}}, "kafka.security.sasl.mechanism must be"),
        ({"sasl": {"username": ""}}, "kafka.security.sasl.username is required"),
        ({"protocol": "SSL"}, "uses no SASL login"),
        ({"protocol": "SASL_PLAINTEXT"}, "uses no TLS"),
        ({"tls": {"keyKey": ""}}, "certKey and keyKey go together"),
    ],
)
def test_helm_refuses_inconsistent_kafka_security(helm: Any, security: dict[str, Any], message: str) -> None:
    render, _lint = helm
    with pytest.raises(HelmError, match=re.escape(message)):
        render(merge(SECURE_VALUES, {"kafka": {"security": security}}))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"secrets": {"kafkaSaslPassword": ""}}, "SASL_SSL needs a password"),
        ({"settings": {"KAFKA_SECURITY_PROTOCOL": "SSL"}}, "set Kafka security with kafka.security.*"),
    ],
)
def test_helm_refuses_kafka_security_elsewhere(helm: Any, extra: dict[str, Any], message: str) -> None:
    render, _lint = helm
    with pytest.raises(HelmError, match=re.escape(message)):
        render(merge(SECURE_VALUES, extra))
