"""The Helm chart's production objects -> checks of the rendered ServiceAccount, NetworkPolicy,
PodDisruptionBudgets, ingress TLS, topic replication, the prune CronJob, and the production example."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
import yaml
from deploy_files import CHART_DIR
from helm_render import BASE_VALUES, SERVICE_PEERS, HelmError, by_kind, merge, parse

from imgdup.settings import Settings

PRODUCTION_FILE = CHART_DIR / "values-production.yaml"
# Never reachable from a pod except through a peer named in values: RFC 1918, link-local (the cloud
# metadata address 169.254.169.254 is in it), and the IPv6 unique-local and link-local ranges.
PRIVATE_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
PRIVATE_V6 = ["fc00::/7", "fe80::/10"]
NETPOL_VALUES = BASE_VALUES


@pytest.fixture(scope="module")
def objects(helm: Any) -> list[dict[str, Any]]:
    render, _lint = helm
    return parse(render(NETPOL_VALUES))


def _pods(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            out.append((o["metadata"]["name"], o["spec"]["template"]["spec"]))
        elif o["kind"] == "CronJob":
            out.append((o["metadata"]["name"], o["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


def test_api_liveness_does_not_depend_on_postgres(objects: list[dict[str, Any]]) -> None:
    api = by_kind(objects, "Deployment")["rel-imgdup-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_service_account_without_token_or_rights(objects: list[dict[str, Any]]) -> None:
    (account,) = by_kind(objects, "ServiceAccount").values()
    assert account["automountServiceAccountToken"] is False
    rights = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    assert not [o for o in objects if o["kind"] in rights]
    pods = _pods(objects)
    assert len(pods) == 6  # four Deployments, the migrate Job, the prune CronJob
    for name, spec in pods:
        assert spec["serviceAccountName"] == account["metadata"]["name"], name
        assert spec["automountServiceAccountToken"] is False, name


def _egress(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (policy,) = by_kind(objects, "NetworkPolicy").values()
    assert policy["spec"]["policyTypes"] == ["Egress"]
    deployments = by_kind(objects, "Deployment").values()
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for deployment in deployments:  # the policy selects every imgdup pod
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
    rules: list[dict[str, Any]] = policy["spec"]["egress"]
    return rules


def _ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule["ports"]}


def test_network_policy_egress(objects: list[dict[str, Any]]) -> None:
    rules = _egress(objects)
    dns = [r for r in rules if ("UDP", 53) in _ports(r)]
    assert len(dns) == 1 and _ports(dns[0]) == {("UDP", 53), ("TCP", 53)}
    assert all("ipBlock" not in peer for peer in dns[0]["to"]), "DNS by selector, not by address"
    for name, peers in SERVICE_PEERS.items():
        (rule,) = [r for r in rules if r["to"] == peers["to"]]
        assert _ports(rule) == {("TCP", p) for p in peers["ports"]}, name
    public = [peer["ipBlock"] for r in rules for peer in r["to"] if "except" in peer.get("ipBlock", {})]
    assert {block["cidr"] for block in public} == {"0.0.0.0/0", "::/0"}
    for block in public:
        private = PRIVATE_V4 if block["cidr"] == "0.0.0.0/0" else PRIVATE_V6
        assert set(private) <= set(block["except"]), block
    # Any other address block is one given as a value (the in-cluster or managed services).
    given = {peer["ipBlock"]["cidr"] for p in SERVICE_PEERS.values() for peer in p["to"] if "ipBlock" in peer}
    others = {peer["ipBlock"]["cidr"] for r in rules for peer in r["to"] if "ipBlock" in peer} - {
        "0.0.0.0/0",
        "::/0",
    }
    assert others == given
    # What the public rule leaves open: no private, link-local or metadata address at all.
    for address in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "fd00::1", "fe80::1"):
        ip = ipaddress.ip_address(address)
        allowed = [
            b
            for b in public
            if ip in ipaddress.ip_network(b["cidr"])
            and not any(ip in ipaddress.ip_network(x) for x in b["except"])
        ]
        assert not allowed, address


@pytest.mark.parametrize("service", ["kafka", "postgres", "qdrant"])
def test_network_policy_needs_each_service(helm: Any, service: str) -> None:
    render, _lint = helm
    with pytest.raises(HelmError, match=re.escape(f"networkPolicy.{service}.to")):
        render(merge(NETPOL_VALUES, {"networkPolicy": {service: {"to": []}}}))


def test_network_policy_can_be_left_out(helm: Any) -> None:
    render, _lint = helm
    rendered = parse(render(merge(BASE_VALUES, {"networkPolicy": {"enabled": False}})))
    assert not by_kind(rendered, "NetworkPolicy")


def test_pod_disruption_budgets(objects: list[dict[str, Any]]) -> None:
    budgets = by_kind(objects, "PodDisruptionBudget")
    deployments = by_kind(objects, "Deployment")
    assert set(budgets) == {"rel-imgdup-api", "rel-imgdup-worker", "rel-imgdup-verifier"}
    for name, budget in budgets.items():
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["selector"] == deployments[name]["spec"]["selector"], name


def test_ingress_tls_with_cert_manager(helm: Any) -> None:
    render, _lint = helm
    values = merge(NETPOL_VALUES, {"api": {"ingress": {"certManager": {"clusterIssuer": "letsencrypt"}}}})
    ingress = by_kind(parse(render(values)), "Ingress")["rel-imgdup-api"]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    (tls,) = ingress["spec"]["tls"]
    assert tls == {"hosts": ["imgdup.example.com"], "secretName": "rel-imgdup-api-tls"}
    with pytest.raises(HelmError, match="issuer or clusterIssuer"):
        render(merge(values, {"api": {"ingress": {"certManager": {"issuer": "local"}}}}))


def test_ingress_without_tls_by_default(objects: list[dict[str, Any]]) -> None:
    ingress = by_kind(objects, "Ingress")["rel-imgdup-api"]
    assert "tls" not in ingress["spec"]
    assert "cert-manager.io/cluster-issuer" not in (ingress["metadata"].get("annotations") or {})


def _migrate_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    (container,) = by_kind(objects, "Job")["rel-imgdup-migrate"]["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What imgdup's Settings read from this environment (the names as the pods get them)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_topic_replication_factor_is_a_value(
    helm: Any, objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _migrate_env(objects)["IMGDUP_TOPIC_REPLICATION_FACTOR"] == "1"
    render, _lint = helm
    three = parse(render(merge(NETPOL_VALUES, {"kafka": {"topicReplicationFactor": 3}})))
    assert _migrate_env(three)["IMGDUP_TOPIC_REPLICATION_FACTOR"] == "3"  # `imgdup topics` reads it
    assert by_kind(three, "ConfigMap")["rel-imgdup"]["data"]["IMGDUP_TOPIC_REPLICATION_FACTOR"] == "3"
    configmap = by_kind(three, "ConfigMap")["rel-imgdup"]["data"]
    assert _settings_from(configmap, monkeypatch).topic_replication_factor == 3


def test_prune_cron_job(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    (cron,) = by_kind(objects, "CronJob").values()
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["prune"]
    assert container["envFrom"] == [{"configMapRef": {"name": "rel-imgdup"}}]
    assert {e["name"] for e in container["env"]} >= {"DATABASE_URL"}
    assert "IMGDUP_API_TOKEN" not in {e["name"] for e in container["env"]}
    configmap = by_kind(objects, "ConfigMap")["rel-imgdup"]["data"]
    assert _settings_from(configmap, monkeypatch).rejected_pair_retention_days == 30


def test_retrain_cron_job_writes_models_the_workers_read(helm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    render, lint = helm
    values = merge(
        NETPOL_VALUES,
        {
            "retrain": {"enabled": True},
            "verifierModels": {"claimName": "imgdup-models", "version": "fused-v9-r2"},
        },
    )
    assert lint(values) == []
    rendered = parse(render(values))
    cron = by_kind(rendered, "CronJob")["rel-imgdup-retrain"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == [
        "retrain",
        "--benchmark-evidence",
        "/var/lib/imgdup-models/training-evidence-fused-v26.jsonl",  # values.yaml's default
    ]
    names = {e["name"] for e in container["env"]}
    assert "DATABASE_URL" in names and "IMGDUP_API_TOKEN" not in names
    models = {m["name"]: m for m in container["volumeMounts"]}["models"]
    assert models["mountPath"] == "/var/lib/imgdup-models" and not models.get("readOnly")
    claims = {v["name"]: v for v in spec["volumes"]}
    assert claims["models"]["persistentVolumeClaim"]["claimName"] == "imgdup-models"
    # Every worker reads the same claim, read-only, and runs the version named in values.
    for deployment in by_kind(rendered, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        mounts = {m["name"]: m for c in pod["containers"] for m in c.get("volumeMounts", [])}
        assert mounts["models"]["readOnly"] is True, deployment["metadata"]["name"]
    settings = _settings_from(by_kind(rendered, "ConfigMap")["rel-imgdup"]["data"], monkeypatch)
    assert settings.verifier_version == "fused-v9-r2"
    assert str(settings.models_dir) == "/var/lib/imgdup-models"
    # Off by default; on without a claim, the chart refuses to render.
    assert "rel-imgdup-retrain" not in by_kind(parse(render(NETPOL_VALUES)), "CronJob")
    with pytest.raises(HelmError, match="claimName"):
        render(merge(NETPOL_VALUES, {"retrain": {"enabled": True}}))


def test_production_example(helm: Any) -> None:
    render, lint = helm
    values = yaml.safe_load(PRODUCTION_FILE.read_text())
    assert lint(values) == []
    rendered = parse(render(values))
    assert _migrate_env(rendered)["IMGDUP_TOPIC_REPLICATION_FACTOR"] == "3"
    ingress = by_kind(rendered, "Ingress")["rel-imgdup-api"]
    assert ingress["spec"]["tls"] and "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    assert by_kind(rendered, "NetworkPolicy") and by_kind(rendered, "PodDisruptionBudget")
    assert not by_kind(rendered, "Secret"), "the example takes its secrets from an existing Secret"


def test_chart_readme() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    for topic in ("values-production.yaml", "networkPolicy", "/livez", "prune", "topicReplicationFactor"):
        assert topic in readme, topic
