"""The Helm chart, linted and rendered by Helm's own engine (helm-python-sdk), offline.

What a platform engineer reviews before installing an operator: the Deployment it runs, the
exact permissions it gets in each mode, HA, monitoring, and that bad values are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client
from pydantic import BaseModel

from headway import GROUP, PLURAL
from headway.config import ENV
from tests.support.helm import HelmValuesError, lint, render, template

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "headway"
SCHEMAS = ROOT.parent / "shared" / "schemas"
SERVICEMONITOR_CRD = SCHEMAS / "prometheus-operator" / "monitoring.coreos.com_servicemonitors.yaml"

NAMESPACED = {"watchNamespaces": ["team-a", "team-b"]}
HA = {"replicaCount": 2}
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": NAMESPACED,
    "ha": HA,
    "ha-namespaced": {**HA, **NAMESPACED},
    "peering-one-replica": {"peering": {"enabled": True}},
    "servicemonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}}},
    "everything": {
        **HA,
        "prometheusUrl": "http://prometheus-operated.monitoring:9090",
        "allowedPrometheusUrls": ["http://thanos-query.monitoring:9090", "https://prometheus.team-a.example.com"],
        "logFormat": "text",
        "resyncSeconds": 30,
        "image": {"repository": "registry.example.com/headway", "tag": "0.2.0", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "10s"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
                "matchLabels": {"app.kubernetes.io/name": "headway"}}}}]}},
        "podAnnotations": {"example.com/team": "ml-platform"},
        "podLabels": {"team": "ml-platform"},
        "priorityClassName": "system-cluster-critical",
        "serviceAccount": {"annotations": {"iam.example.com/role": "headway"}},
        "governance": {"roles": {"ml-lead": ["ml-leads"], "risk": ["risk-officers", "oidc:cro-office"]}},
    },
}

# Every (apiVersion, kind) the chart may render, with the kubernetes client's pydantic model for
# built-in kinds (None: a custom resource, checked against its CRD's schema instead).
KNOWN_KINDS: dict[tuple[str, str], type[BaseModel] | None] = {
    ("apps/v1", "Deployment"): client.V1Deployment,
    ("v1", "Service"): client.V1Service,
    ("v1", "ServiceAccount"): client.V1ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): client.V1ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): client.V1ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): client.V1Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): client.V1RoleBinding,
    ("policy/v1", "PodDisruptionBudget"): client.V1PodDisruptionBudget,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): client.V1CustomResourceDefinition,
    ("v1", "ConfigMap"): client.V1ConfigMap,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): client.V1ValidatingAdmissionPolicy,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): client.V1ValidatingAdmissionPolicyBinding,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): None,
    ("kopf.dev/v1", "ClusterKopfPeering"): None,
    ("kopf.dev/v1", "KopfPeering"): None,
}

# What the operator's requests use, in both modes: tests/e2e/test_rbac.py runs the operator with
# the chart's RBAC against an API server that enforces it and checks that the chart grants exactly
# what the requests used. Children are written with server-side apply (patch), pruned with delete,
# listed and watched into the operator's watch caches, and read by name before a create.
CHILD_VERBS = {"get", "list", "watch", "patch", "delete"}
CHILDREN = [
    ("", "services"),
    ("policy", "poddisruptionbudgets"),
    ("gateway.networking.k8s.io", "httproutes"),
    ("networking.istio.io", "virtualservices"),
    ("monitoring.coreos.com", "podmonitors"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("keda.sh", "scaledobjects"),
]


def triples(
    rules: Iterable[tuple[str, str, Iterable[str]]],
) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for group, resource, verbs in rules for verb in verbs}


APPROVALS = "modelapprovals"
RECORDS = "rolloutrecords"
NAMESPACED_RULES = triples(
    [
        (GROUP, PLURAL, ["list", "watch", "patch"]),  # patch: kopf drops 0.1's finalizer; reads come from the watch
        (GROUP, f"{PLURAL}/status", ["patch"]),
        # children carry blockOwnerDeletion: OwnerReferencesPermissionEnforcement checks this
        (GROUP, f"{PLURAL}/finalizers", ["update"]),
        ("apps", "deployments", CHILD_VERBS),
        *[(group, resource, CHILD_VERBS) for group, resource in CHILDREN],
        ("", "events", ["create"]),
        ("", "configmaps", ["get"]),  # spec.monitoring's reference profile
        (GROUP, APPROVALS, ["list", "watch"]),  # spec.governance: approvals queue the ModelDeployment they name
        (GROUP, RECORDS, ["list", "watch", "create", "patch", "delete"]),  # RolloutRecords: written per rollout, pruned
    ]
)
# kopf runs with scanning disabled (operator/headway/handlers/settings.py): no namespaces or
# CRDs to list and watch, so cluster mode needs nothing beyond the same rules, cluster-wide.
CLUSTER_ONLY_RULES: set[tuple[str, str, str]] = set()
PEERING_VERBS = ["list", "watch", "patch"]
# The approver role (governance.approverRole): cluster admins bind it to approvers. Create and read
# approvals, read the ModelDeployments they decide on; never update or delete an approval.
APPROVER_RULES = triples([(GROUP, APPROVALS, ["create", "get", "list", "watch"]), (GROUP, PLURAL, ["get", "list", "watch"])])
APPROVER_ROLE = "headway-approver"
# Cluster-scoped objects of the approval policy (governance.approvalPolicy.enabled, on by default).
POLICY_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]


# ---------------------------------------------------------------------------------------------
# helpers


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    items = container(docs)["env"]
    names = [e["name"] for e in items]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in items}


def operator_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The operator's own ClusterRole or Roles (not the approver role)."""
    return [r for r in of_kind(docs, kind) if r["metadata"]["name"] != APPROVER_ROLE]


def operator_role(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = operator_roles(docs, kind)
    assert len(found) == 1, f"expected one operator {kind}, got {len(found)}"
    return found[0]


def rule_triples(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: template(CHART, values) for name, values in SCENARIOS.items()}


@pytest.fixture(scope="module")
def crdschema() -> Any:
    """operator/headway/sandbox/apiserver/crdschema.py: validate(obj, crd) against the CRD's openAPIV3Schema."""
    from headway.sandbox.apiserver import crdschema as module

    return module


@pytest.fixture(scope="module")
def defaults(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["defaults"]


# ---------------------------------------------------------------------------------------------
# lint


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_has_no_errors_and_no_warnings(scenario: str) -> None:
    result = lint(CHART, SCENARIOS[scenario], strict=True)
    assert result.ok, result.messages
    assert result.errors == [] and result.warnings == [], result.messages
    assert result.raw["total_charts_linted"] == 1


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "headway"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"


# ---------------------------------------------------------------------------------------------
# the operator Deployment


def test_deployment_image_and_command(defaults: list[dict[str, Any]]) -> None:
    c = container(defaults)
    assert c["image"] == "headway:0.1.0"  # repository : appVersion
    assert c["command"] == ["headway", "operator"]
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_image_tag_overrides_app_version() -> None:
    docs = template(CHART, {"image": {"repository": "registry.example.com/headway", "tag": "0.2.0"}})
    assert container(docs)["image"] == "registry.example.com/headway:0.2.0"


def test_deployment_env_defaults(defaults: list[dict[str, Any]]) -> None:
    assert env(defaults) == {
        "HEADWAY_LOG_FORMAT": "json",
        "HEADWAY_HEALTH_ADDR": "0.0.0.0:8080",
        "HEADWAY_METRICS_PORT": "9090",
        "HEADWAY_RESYNC_SECONDS": "600",
        "HEADWAY_MEASURE_TIMEOUT_SECONDS": "30",
        "HEADWAY_ROLLOUT_RECORDS": "10",
        "HEADWAY_PRICE_VCPU_HOUR": "0",
        "HEADWAY_PRICE_GIB_HOUR": "0",
        "HEADWAY_PRICE_GPU_HOUR": "0",
        "HEADWAY_CURRENCY": "USD",
        # kopf's peer identity is the pod name.
        "POD_ID": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    # Cluster mode: no namespaces; one replica: standalone, no peering.
    assert "HEADWAY_NAMESPACES" not in env(defaults)
    assert "HEADWAY_PEERING" not in env(defaults)
    assert "HEADWAY_PROMETHEUS_URL" not in env(defaults)
    assert "HEADWAY_ALLOWED_PROMETHEUS_URLS" not in env(defaults)  # only the operator's own URL


def test_deployment_env_from_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    e = env(rendered["everything"])
    assert e["HEADWAY_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring:9090"
    assert e["HEADWAY_ALLOWED_PROMETHEUS_URLS"] == "http://thanos-query.monitoring:9090,https://prometheus.team-a.example.com"
    assert e["HEADWAY_LOG_FORMAT"] == "text"
    assert e["HEADWAY_RESYNC_SECONDS"] == "30"
    assert e["HEADWAY_PEERING"] == "headway"
    assert e["TZ"] == "UTC"  # extraEnv
    # One environment for all pods: a priority here would be the same for every replica, and kopf
    # pauses all peers of equal priority. The chart leaves HEADWAY_PRIORITY to the operator.
    assert "HEADWAY_PRIORITY" not in env(rendered["ha"])


def test_every_headway_env_var_is_one_the_operator_reads(rendered: dict[str, list[dict[str, Any]]]) -> None:
    known = set(ENV.values())
    for name, docs in rendered.items():
        headway_vars = {k for k in env(docs) if k.startswith("HEADWAY_")}
        assert headway_vars <= known, f"{name}: {headway_vars - known} are not in headway.config.ENV"


def test_env_values_parse_as_the_operator_parses_them(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in rendered.values():
        e = env(docs)
        host, _, port = e["HEADWAY_HEALTH_ADDR"].rpartition(":")
        assert host == "0.0.0.0" and int(port) == 8080
        assert int(e["HEADWAY_METRICS_PORT"]) == 9090
        assert float(e["HEADWAY_RESYNC_SECONDS"]) > 0
        assert e["HEADWAY_LOG_FORMAT"] in {"json", "text"}


def test_deployment_ports_and_probes(defaults: list[dict[str, Any]]) -> None:
    c = container(defaults)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] in (8080, "health")


def test_deployment_security_context(defaults: list[dict[str, Any]]) -> None:
    pod = one(defaults, "Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(defaults)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_deployment_resources(defaults: list[dict[str, Any]]) -> None:
    assert container(defaults)["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_deployment_pod_basics(defaults: list[dict[str, Any]]) -> None:
    deployment = one(defaults, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    # One standalone operator: never an old and a new one side by side.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == one(defaults, "ServiceAccount")["metadata"]["name"]
    # A writable /tmp on a read-only root filesystem.
    mounts = {m["name"]: m["mountPath"] for m in container(defaults)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts == {"tmp": "/tmp"}
    assert "emptyDir" in volumes["tmp"]
    for absent in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        assert absent not in pod


def test_deployment_scheduling_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    values = SCENARIOS["everything"]
    deployment = one(rendered["everything"], "Deployment")
    template_ = deployment["spec"]["template"]
    pod = template_["spec"]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template_["metadata"]["annotations"] == {"example.com/team": "ml-platform"}
    assert template_["metadata"]["labels"]["team"] == "ml-platform"
    assert container(rendered["everything"])["imagePullPolicy"] == "Always"


def test_pod_labels_cannot_break_the_selector() -> None:
    docs = template(CHART, {"podLabels": {"app.kubernetes.io/name": "other", "team": "x"}})
    deployment = one(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert labels["team"] == "x"


# ---------------------------------------------------------------------------------------------
# ServiceAccount, Service, ServiceMonitor


def test_service_account_toggle(defaults: list[dict[str, Any]]) -> None:
    assert one(defaults, "ServiceAccount")["metadata"]["namespace"] == "headway-system"
    docs = template(CHART, {"serviceAccount": {"create": False, "name": "platform-operators"}})
    assert of_kind(docs, "ServiceAccount") == []
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operators"
    subjects = one(docs, "ClusterRoleBinding")["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": "platform-operators", "namespace": "headway-system"}]


def test_service_exposes_metrics_and_health(defaults: list[dict[str, Any]]) -> None:
    service = one(defaults, "Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"metrics": (9090, "metrics"), "health": (8080, "health")}
    pod_labels = one(defaults, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_service_monitor_is_off_by_default(defaults: list[dict[str, Any]]) -> None:
    assert of_kind(defaults, "ServiceMonitor") == []


def test_service_monitor_when_enabled(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["servicemonitor"]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    # honorLabels: the per-ModelDeployment series keep the ModelDeployment's namespace label (the dashboard selects on it)
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http", "honorLabels": True, "interval": "30s"}]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["headway-system"]}
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    endpoints = one(rendered["everything"], "ServiceMonitor")["spec"]["endpoints"]
    assert endpoints[0]["interval"] == "15s" and endpoints[0]["scrapeTimeout"] == "10s"


@pytest.mark.parametrize("scenario", ["servicemonitor", "everything"])
def test_service_monitor_matches_prometheus_operator_crd(
    rendered: dict[str, list[dict[str, Any]]], scenario: str, crdschema: Any
) -> None:
    crd = yaml.safe_load(SERVICEMONITOR_CRD.read_text())
    monitor = one(rendered[scenario], "ServiceMonitor")
    assert crdschema.validate(monitor, crd) == []
    # The check bites: a misspelt field or a bad interval is what the API server would refuse.
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["intervall"] = "30s"
    broken["spec"]["endpoints"][0]["interval"] = "often"
    errors = " ".join(crdschema.validate(broken, crd))
    assert "intervall" in errors and "interval" in errors


# ---------------------------------------------------------------------------------------------
# RBAC


def test_cluster_mode_rbac_is_exactly_what_the_operator_uses(defaults: list[dict[str, Any]]) -> None:
    role = operator_role(defaults, "ClusterRole")
    assert rule_triples(role) == NAMESPACED_RULES | CLUSTER_ONLY_RULES
    binding = one(defaults, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "headway", "namespace": "headway-system"}]
    assert of_kind(defaults, "Role") == [] and of_kind(defaults, "RoleBinding") == []


def test_cluster_mode_rbac_with_peering(rendered: dict[str, list[dict[str, Any]]]) -> None:
    role = operator_role(rendered["ha"], "ClusterRole")
    peering = triples([("kopf.dev", "clusterkopfpeerings", PEERING_VERBS)])
    assert rule_triples(role) == NAMESPACED_RULES | CLUSTER_ONLY_RULES | peering


def test_namespaced_mode_rbac(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["namespaced"]
    assert of_kind(docs, "ClusterRole") == [] and of_kind(docs, "ClusterRoleBinding") == []
    roles = {r["metadata"]["namespace"]: r for r in operator_roles(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(docs, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == ["team-a", "team-b"]
    for namespace, role in roles.items():
        assert rule_triples(role) == NAMESPACED_RULES, namespace
        binding = bindings[namespace]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
        # The ServiceAccount lives in the release namespace, not the watched one.
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "headway", "namespace": "headway-system"}]
    assert env(docs)["HEADWAY_NAMESPACES"] == "team-a,team-b"


def test_namespaced_mode_renders_nothing_cluster_scoped(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # No cluster-scoped RBAC. With peering on, kopf's shared peering CRDs are cluster-scoped
    # (crds.installPeering); the approval policy and its binding are, by nature (bound to the
    # watched namespaces only: test_approval_policy.py), unless governance.approvalPolicy.enabled=false.
    for name in ("namespaced", "ha-namespaced"):
        cluster_scoped = [d["kind"] for d in rendered[name] if "namespace" not in d["metadata"]]
        allowed = POLICY_KINDS if name == "namespaced" else ["CustomResourceDefinition", "CustomResourceDefinition", *POLICY_KINDS]
        assert sorted(cluster_scoped) == sorted(allowed), name
    no_policy = {"governance": {"approvalPolicy": {"enabled": False}}}
    docs = template(CHART, {**HA, **NAMESPACED, "crds": {"installPeering": False}, **no_policy})
    assert [d["kind"] for d in docs if "namespace" not in d["metadata"]] == []


def test_namespaced_mode_rbac_with_peering(rendered: dict[str, list[dict[str, Any]]]) -> None:
    peering = triples([("kopf.dev", "kopfpeerings", PEERING_VERBS)])
    roles = operator_roles(rendered["ha-namespaced"], "Role")
    assert len(roles) == 2
    for role in roles:
        assert rule_triples(role) == NAMESPACED_RULES | peering


def test_no_wildcards_in_any_rbac(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], (name, rule)
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            # Least privilege: the operator never touches Secrets or Pods, reads a ConfigMap only by
            # name (spec.monitoring's profile: get, never list or watch), never replaces objects
            # (update: server-side apply patches), never lists cluster-scoped kinds (kopf's scanning
            # is off), and has no autoscalers to manage.
            granted = rule_triples(role)
            if role["metadata"]["name"] == APPROVER_ROLE:
                assert granted == APPROVER_RULES, name
                continue
            assert not {t[1] for t in granted} & {"secrets", "pods", "namespaces", "customresourcedefinitions"}, name
            assert {t for t in granted if t[1] == "configmaps"} == {("", "configmaps", "get")}, name
            assert {t for t in granted if t[2] == "update"} <= {(GROUP, f"{PLURAL}/finalizers", "update")}, name


def test_rbac_toggle() -> None:
    for values in ({"rbac": {"create": False}}, {"rbac": {"create": False}, **NAMESPACED}):
        docs = template(CHART, values)
        kinds = {d["kind"] for d in docs}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_approver_role_in_both_modes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """A ClusterRole in cluster mode (aggregating nothing, bound by a cluster admin); a Role in each
    watched namespace in namespaced mode (nothing cluster-scoped); no binding from the chart."""
    (cluster,) = [r for r in of_kind(rendered["defaults"], "ClusterRole") if r["metadata"]["name"] == APPROVER_ROLE]
    assert rule_triples(cluster) == APPROVER_RULES
    assert "aggregationRule" not in cluster
    assert not any(k.startswith("rbac.authorization.k8s.io/aggregate-to") for k in cluster["metadata"]["labels"])
    assert all(b["roleRef"]["name"] != APPROVER_ROLE for b in of_kind(rendered["defaults"], "ClusterRoleBinding"))
    roles = [r for r in of_kind(rendered["namespaced"], "Role") if r["metadata"]["name"] == APPROVER_ROLE]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rule_triples(r) == APPROVER_RULES for r in roles)
    off = template(CHART, {"governance": {"approverRole": {"create": False}}})
    assert [r["metadata"]["name"] for r in of_kind(off, "ClusterRole")] == ["headway"]


# ---------------------------------------------------------------------------------------------
# HA: kopf peering


def test_two_replicas_turn_peering_on(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["ha"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert env(docs)["HEADWAY_PEERING"] == "headway"
    # One replica is active at a time, so a rolling update never has two active operators.
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    crds = {c["metadata"]["name"]: c for c in of_kind(docs, "CustomResourceDefinition")}
    assert sorted(crds) == ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]
    assert crds["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert crds["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"
    for crd in crds.values():
        assert crd["spec"]["group"] == "kopf.dev"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    peering = one(docs, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "headway"
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]
    assert of_kind(docs, "KopfPeering") == []


def test_peering_objects_match_the_peering_crds(rendered: dict[str, list[dict[str, Any]]], crdschema: Any) -> None:
    for name in ("ha", "ha-namespaced"):
        docs = rendered[name]
        crds = {c["spec"]["names"]["kind"]: c for c in of_kind(docs, "CustomResourceDefinition")}
        for kind in ("ClusterKopfPeering", "KopfPeering"):
            for obj in of_kind(docs, kind):
                crd = crds[kind]
                assert obj["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
                assert ("namespace" in obj["metadata"]) == (crd["spec"]["scope"] == "Namespaced")
                assert crdschema.validate(obj, crd) == [], obj


def test_one_replica_is_standalone(defaults: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in defaults}
    assert not kinds & {"PodDisruptionBudget", "CustomResourceDefinition", "ClusterKopfPeering", "KopfPeering"}


def test_peering_enabled_with_one_replica(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["peering-one-replica"]
    assert env(docs)["HEADWAY_PEERING"] == "headway"
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "headway"
    assert of_kind(docs, "PodDisruptionBudget") == []


def test_peering_name_from_values() -> None:
    docs = template(CHART, {**HA, "peering": {"name": "ml-platform"}})
    assert env(docs)["HEADWAY_PEERING"] == "ml-platform"
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "ml-platform"


def test_namespaced_peering_has_one_kopfpeering_per_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["ha-namespaced"]
    peerings = of_kind(docs, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("team-a", "headway"),
        ("team-b", "headway"),
    ]
    assert of_kind(docs, "ClusterKopfPeering") == []
    assert env(docs)["HEADWAY_PEERING"] == "headway"


def test_peering_crds_toggle() -> None:
    docs = template(CHART, {**HA, "crds": {"installPeering": False}})
    assert of_kind(docs, "CustomResourceDefinition") == []
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "headway"


# ---------------------------------------------------------------------------------------------
# values and their schema


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"logFormat": "xml"}, "/logFormat"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"ports": {"metrics": 70000}}, "/ports/metrics"),
        ({"resyncSeconds": 0}, "/resyncSeconds"),
        ({"prometheusUrl": "prometheus:9090"}, "/prometheusUrl"),
        ({"allowedPrometheusUrls": ["prometheus:9090"]}, "/allowedPrometheusUrls/0"),
        ({"allowedPrometheusUrls": "http://a:9090"}, "/allowedPrometheusUrls"),
        ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
        ({"serviceMonitor": {"enable": True}}, "enable"),  # a typo is not silently ignored
        ({"replicas": 2}, "replicas"),
        ({"governance": {"roles": {"Risk": ["risk-officers"]}}}, "propertyName 'Risk'"),  # a role is a DNS label
        ({"governance": {"roles": {"risk": ["risk,officers"]}}}, "/governance/roles/risk/0"),  # commas join groups
        ({"governance": {"roles": {"risk": []}}}, "/governance/roles/risk"),  # a role nobody can fill
        ({"governance": {"roles": {"risk": "risk-officers"}}}, "/governance/roles/risk"),
        ({"governance": {"approvalPolicy": {"enable": False}}}, "enable"),
    ],
)
def test_schema_rejects_bad_values_in_helms_engine(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmValuesError) as raised:
        template(CHART, values)
    assert complaint in str(raised.value)
    result = lint(CHART, values)
    assert result.errors, f"helm lint accepted {values}"


def test_defaults_and_scenarios_satisfy_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(defaults, schema)
    for values in SCENARIOS.values():
        jsonschema.validate(_merge(defaults, values), schema)


def value_paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys down to where the schema stops describing sub-keys."""
    paths = set()
    for key, value in values.items():
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            paths |= value_paths(value, sub, f"{prefix}{key}.")
        else:
            paths.add(f"{prefix}{key}")
    return paths


def test_every_value_is_in_the_schema_and_the_readme() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = value_paths(defaults, schema)
    schema_keys = value_paths({k: _skeleton(v) for k, v in schema["properties"].items()}, schema) - {"global"}
    assert keys == schema_keys
    readme = (CHART / "README.md").read_text()
    section = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))
    assert table == keys, f"README values table: missing {keys - table}, stale {table - keys}"


def test_every_value_has_a_comment() -> None:
    """Each key in values.yaml has a comment line right above it, or an ancestor does."""
    documented_at: list[int] = []  # indents of enclosing keys that carry a comment
    previous = ""
    undocumented = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if match:
            indent = len(match.group(1))
            documented_at = [i for i in documented_at if i < indent]
            if previous.startswith("#"):
                documented_at.append(indent)
            elif not documented_at and not _is_parent(line):
                undocumented.append(match.group(2))
        if stripped:
            previous = stripped
    assert undocumented == []


# ---------------------------------------------------------------------------------------------
# every object


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_kind_is_known(rendered: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    for doc in rendered[scenario]:
        assert (doc["apiVersion"], doc["kind"]) in KNOWN_KINDS, doc["kind"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_builtin_objects_validate_with_kubernetes_client_models(rendered: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    """The kubernetes client v37's pydantic models forbid unknown fields and check types."""
    for doc in rendered[scenario]:
        model = KNOWN_KINDS[(doc["apiVersion"], doc["kind"])]
        if model is not None:
            model.model_validate(doc)


def test_client_models_catch_a_misspelt_field(defaults: list[dict[str, Any]]) -> None:
    deployment = json.loads(json.dumps(one(defaults, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(ValueError, match="securityContex"):
        client.V1Deployment.model_validate(deployment)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_carries_the_standard_labels(rendered: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    for doc in rendered[scenario]:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "headway"
        assert labels["app.kubernetes.io/instance"] == "headway"
        assert labels["app.kubernetes.io/version"] in {"0.1.0", "0.2.0"}
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "headway"
        assert labels["helm.sh/chart"] == "headway-0.1.0"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_namespaced_objects_go_to_the_release_or_a_watched_namespace(
    rendered: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    allowed = {"headway-system", *SCENARIOS[scenario].get("watchNamespaces", [])}
    for doc in rendered[scenario]:
        if doc["kind"] in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ClusterKopfPeering", *POLICY_KINDS}:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] in allowed, doc["kind"]


def test_release_name_shapes_object_names() -> None:
    docs = template(CHART, namespace="ops", release="ml")
    assert one(docs, "Deployment")["metadata"]["name"] == "ml-headway"
    assert one(docs, "Deployment")["metadata"]["namespace"] == "ops"
    assert one(docs, "ClusterRoleBinding")["subjects"][0] == {"kind": "ServiceAccount", "name": "ml-headway", "namespace": "ops"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_notes_render(scenario: str) -> None:
    notes = render(CHART, SCENARIOS[scenario])["headway/templates/NOTES.txt"]
    assert "Headway 0.1.0" in notes
    mode = "Mode: namespaced" if "watchNamespaces" in SCENARIOS[scenario] else "Mode: cluster-wide"
    assert mode in notes


# ---------------------------------------------------------------------------------------------
# the ModelDeployment CRD


def test_chart_crd_is_the_generated_crd_byte_for_byte() -> None:
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    in_chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert generated == in_chart == sorted([f"{PLURAL}.{GROUP}.yaml", f"{APPROVALS}.{GROUP}.yaml", f"{RECORDS}.{GROUP}.yaml"])
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes()


def test_helm_installs_the_crds_from_crds_dir() -> None:
    docs = template(CHART, include_crds=True)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == sorted([f"{PLURAL}.{GROUP}", f"{APPROVALS}.{GROUP}", f"{RECORDS}.{GROUP}"])
    templated = {d["metadata"]["name"] for d in template(CHART)}
    for crd in crds:
        client.V1CustomResourceDefinition.model_validate(crd)
        # Installed from crds/, never templated (Helm does not upgrade or delete crds/).
        assert crd["metadata"]["name"] not in templated


# ---------------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _skeleton(schema: dict[str, Any]) -> Any:
    """A value shaped like the schema's properties (to list the keys the schema describes)."""
    if "properties" in schema:
        return {k: _skeleton(v) for k, v in schema["properties"].items()}
    return None


def _is_parent(line: str) -> bool:
    return line.rstrip().endswith(":")


def test_no_rollout_records_means_no_permission_for_them() -> None:
    """rolloutRecords: 0 writes none (HEADWAY_ROLLOUT_RECORDS=0), so the operator's role does not grant them."""
    docs = template(CHART, {"rolloutRecords": 0})
    assert env(docs)["HEADWAY_ROLLOUT_RECORDS"] == "0"
    assert rule_triples(operator_role(docs, "ClusterRole")) == NAMESPACED_RULES - triples([(GROUP, RECORDS, ["list", "watch", "create", "patch", "delete"])])
