"""End to end: the operator runs with exactly the chart's RBAC, and the chart grants exactly what it uses.

The chart is rendered by Helm's own engine (cluster mode, and namespaced mode with
``watchNamespaces``; each also with two replicas, i.e. kopf peering); its ServiceAccount,
ClusterRole/Role and bindings are created in the emulator, which enforces RBAC
(``operator/headway/sandbox/apiserver/rbac.py``). The real operator process runs with that ServiceAccount's token and walks a ModelDeployment through what it does in production: first
an upgrade from 0.1 (its finalizer removed), first deployment, a canary rollout and promotion,
switches of traffic provider, scaling down, an analysed rollout that is rolled back, and
deletion, writing a RolloutRecord per rollout (two kept: the oldest are deleted). Then:

- it reconciled promptly (no minute of retried ``Forbidden`` before the first reconcile);
- nothing was denied: no ``Forbidden`` in its log, none in the emulator's record;
- the permissions the chart grants are exactly those the operator's requests used (plus a
  short, commented allow-list of rare paths), so unused grants cannot creep back in and a new
  API call without a grant fails here, not on a customer's cluster;
- in namespaced mode, not a single cluster-scoped request.

Emulator only: the comparison needs the API server's record of authorised requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headway.k8s.client import DEPLOYMENT, PDB, Kind, Kube, make_api_client
from headway.reconciler import MODEL_DEPLOYMENT, PODMONITOR
from tests.e2e.fixtures import SHARED_SCHEMAS, load_yaml
from tests.e2e.harness import HTTPROUTE, IMAGE, IMAGE_V2, REAL_KUBECONFIG, Env, OperatorProcess, install_crd, new_namespace, wait_for
from tests.support.helm import template

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REAL_KUBECONFIG), reason="needs the emulator's record of authorised requests"),
]

CHART = Path(__file__).resolve().parents[2] / "charts" / "headway"
RELEASE_NAMESPACE = "headway-system"
RELEASE = "headway"
SERVICE_ACCOUNT = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"  # the chart's default name
PROMPT = 30.0  # seconds from creation to Ready: kopf must not be stuck retrying a 403 (its backoff: about a minute)
VIRTUALSERVICE = Kind("networking.istio.io", "v1", "virtualservices", "VirtualService")
HPA = Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
SCALEDOBJECT = Kind("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
RBAC_KINDS = {
    "ServiceAccount": Kind("", "v1", "serviceaccounts", "ServiceAccount"),
    "ClusterRole": Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    "ClusterRoleBinding": Kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    "Role": Kind("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    "RoleBinding": Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
}

# Granted but not exercised by the walk below: (group, resource, verb), each with its reason.
RARE_PATHS = {
    # Children carry ownerReferences with blockOwnerDeletion; where the
    # OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift; not a vanilla
    # kube-apiserver default, not emulated), setting it needs update on the owner's finalizers.
    ("serving.headway.dev", "modeldeployments/finalizers", "update"),
}

V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}],
                                                    "hostnames": ["fraud.ml.example.com"]}}
ISTIO = {"provider": "istio", "istio": {"hosts": ["fraud.ml.example.com"]}, "gatewayApi": None}
# Prometheus is unreachable: the first measurement is inconclusive, and that rolls back.
ANALYSIS = {"prometheus": {"url": "http://127.0.0.1:9"}, "interval": "1s", "slos": [{"errorRate": {"max": 0.01}}],
            "inconclusiveLimit": 1, "onInconclusive": "rollback"}


@dataclass
class World:
    env: Env
    emulator: Any  # KubeEmulator
    mode: str
    granted: set[tuple[str, str, str]]


def permissions(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


PEERING_KINDS = {
    "ClusterKopfPeering": Kind("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False),
    "KopfPeering": Kind("kopf.dev", "v1", "kopfpeerings", "KopfPeering"),
}


@pytest.fixture(params=["clusterwide", "namespaced", "clusterwide-peering", "namespaced-peering"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    from headway.sandbox.apiserver import KubeEmulator

    mode = request.param
    clusterwide, peering = mode.startswith("clusterwide"), mode.endswith("-peering")
    with KubeEmulator.running_in_thread() as emulator:
        emulator.start_deployment_controller(delay=0.3)
        admin_kubeconfig = emulator.write_kubeconfig(tmp_path / "admin.kubeconfig")
        kube = Kube(make_api_client(str(admin_kubeconfig)))
        install_crd(kube)
        for crd in ("gateway-api/standard_gateway.networking.k8s.io_httproutes.yaml",
                    "istio/virtualservices.networking.istio.io.yaml",
                    "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
                    "keda/keda.sh_scaledobjects.yaml"):
            emulator.install_crd(load_yaml(SHARED_SCHEMAS / crd))
        namespace = new_namespace(kube)
        emulator.create_namespace(RELEASE_NAMESPACE)  # `helm install --create-namespace`

        # What `helm install` creates for RBAC, as the admin would.
        values: dict[str, Any] = {} if clusterwide else {"watchNamespaces": [namespace]}
        if peering:
            values["replicaCount"] = 2  # two replicas switch kopf peering on
        rendered = template(CHART, values, namespace=RELEASE_NAMESPACE, release=RELEASE)
        for doc in rendered:  # kopf's peering CRDs, then the peering object (Helm hooks)
            if doc["kind"] == "CustomResourceDefinition":
                emulator.install_crd(doc)
        for doc in rendered:
            if doc["kind"] in PEERING_KINDS:
                kind = PEERING_KINDS[doc["kind"]]
                kube.create(kind, doc["metadata"].get("namespace") if kind.namespaced else None, doc)
        assert peering == any(d["kind"] in PEERING_KINDS for d in rendered)
        docs = [d for d in rendered if d["kind"] in RBAC_KINDS]
        for doc in docs:
            kind = RBAC_KINDS[doc["kind"]]
            kube.create(kind, doc["metadata"].get("namespace") if kind.namespaced else None, doc)
        # The operator's role; the chart also renders one for approvers (governance), bound to no one.
        roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role") and not d["metadata"]["name"].endswith("-approver")]
        assert len(roles) == 1, [r["kind"] for r in roles]
        assert roles[0]["kind"] == ("ClusterRole" if clusterwide else "Role")

        token = emulator.token_for(SERVICE_ACCOUNT)
        kubeconfig = emulator.write_kubeconfig(tmp_path / "operator.kubeconfig", token=token)
        operator = OperatorProcess(kubeconfig=kubeconfig, namespace=namespace, log_dir=tmp_path, clusterwide=clusterwide,
                                   extra_args=["--allowed-prometheus-url", ANALYSIS["prometheus"]["url"],
                                               # two RolloutRecords kept: the walk's four rollouts prune the oldest
                                               "--rollout-records", "2",
                                               *(["--peering", RELEASE, "--priority", "100"] if peering else [])])
        operator.start()
        env = Env(kube=kube, kubeconfig=admin_kubeconfig, namespace=namespace, operator=operator, emulated=True)
        try:
            yield World(env, emulator, mode, permissions(roles[0]))
        finally:
            operator.kill()
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                print(f"\n----- operator logs ({mode}) -----\n{operator.logs()[-12000:]}")


def spec(**extra: Any) -> dict[str, Any]:
    return {"model": V1, "replicas": 4, "traffic": GATEWAY, "rollout": {"steps": [{"canary": {"weight": 50, "duration": "1s"}}]},
            **extra}


def walk(env: Env) -> None:
    """A ModelDeployment's life, touching every kind of child the operator writes."""
    # Upgraded from 0.1, which put kopf's finalizer on every ModelDeployment: kopf removes it,
    # so that deleting one does not wait for an operator that no longer finalizes anything.
    legacy = env.manifest("legacy", spec())
    legacy["metadata"]["finalizers"] = ["headway.dev/finalizer"]
    env.kube.create(MODEL_DEPLOYMENT, env.namespace, legacy)
    wait_for("0.1's finalizer removed", lambda: not env.md("legacy")["metadata"].get("finalizers"))
    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "legacy")
    wait_for("legacy gone", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "legacy") is None)

    env.create_md("fraud", spec())
    wait_for("fraud: Ready", lambda: (c := env.condition("fraud", "Ready")) and c["status"] == "True", timeout=PROMPT)
    env.wait_phase("fraud", "Succeeded")

    # A canary rollout, promoted: the candidate is created, weighted in, then removed.
    env.patch_spec("fraud", {"model": V2})
    env.wait_history("fraud", "Promoted")
    wait_for("the candidate removed", lambda: env.kube.get(DEPLOYMENT, env.namespace, "fraud-candidate") is None)
    env.wait_phase("fraud", "Succeeded")

    # Another data plane: a VirtualService replaces the HTTPRoute.
    env.patch_spec("fraud", {"traffic": ISTIO})
    wait_for("the VirtualService", lambda: env.kube.get(VIRTUALSERVICE, env.namespace, "fraud"))
    wait_for("the HTTPRoute pruned", lambda: env.kube.get(HTTPROUTE, env.namespace, "fraud") is None)

    # One replica: the disruption budget goes.
    env.patch_spec("fraud", {"replicas": 1})
    wait_for("the PodDisruptionBudget pruned", lambda: env.kube.get(PDB, env.namespace, "fraud-stable") is None)

    # Autoscaling: a HorizontalPodAutoscaler per variant, then KEDA's ScaledObject, then fixed replicas again.
    scaled = {"minReplicas": 1, "maxReplicas": 3, "metrics": [{"cpu": {"averageUtilization": 70}}]}
    env.patch_spec("fraud", {"replicas": None, "resources": {"requests": {"cpu": "500m"}}, "autoscaling": scaled})
    wait_for("the HorizontalPodAutoscaler", lambda: env.kube.get(HPA, env.namespace, "fraud-stable"))
    # A change to autoscaling is a new version: its candidate scales with KEDA while the stable
    # keeps its HPA; with no metrics to read, the analysis rolls it back.
    env.patch_spec("fraud", {"analysis": ANALYSIS, "autoscaling": {**scaled, "metrics": [{"inFlight": {"average": 4}}]}})
    wait_for("the candidate's ScaledObject", lambda: env.kube.get(SCALEDOBJECT, env.namespace, "fraud-candidate"))
    env.wait_phase("fraud", "RolledBack")
    assert env.kube.get(HPA, env.namespace, "fraud-stable") is not None
    env.patch_spec("fraud", {"replicas": 1, "autoscaling": None, "analysis": None})
    wait_for("the ScaledObject pruned", lambda: env.kube.get(SCALEDOBJECT, env.namespace, "fraud-candidate") is None)
    wait_for("the HorizontalPodAutoscaler pruned", lambda: env.kube.get(HPA, env.namespace, "fraud-stable") is None)

    # An analysed rollout: a PodMonitor for the model servers; no metrics, so it rolls back.
    env.patch_spec("fraud", {"model": V1, "analysis": ANALYSIS})
    wait_for("the PodMonitor", lambda: env.kube.get(PODMONITOR, env.namespace, "fraud"))
    env.wait_phase("fraud", "RolledBack")
    env.patch_spec("fraud", {"analysis": None})
    wait_for("the PodMonitor pruned", lambda: env.kube.get(PODMONITOR, env.namespace, "fraud") is None)

    # Drift monitoring: the reference profile's ConfigMap is read by name (missing here: reported).
    env.patch_spec("fraud", {"monitoring": {"profile": {"configMap": "fraud-profile"}, "interval": "2s", "window": "10s"}})
    wait_for("the drift check reports the missing profile",
             lambda: "fraud-profile" in ((env.md("fraud").get("status") or {}).get("monitoring") or {}).get("error", ""))
    env.patch_spec("fraud", {"monitoring": None})

    # Back to Gateway API: the VirtualService goes.
    env.patch_spec("fraud", {"traffic": {**GATEWAY, "istio": None}})
    wait_for("the HTTPRoute", lambda: env.kube.get(HTTPROUTE, env.namespace, "fraud"))
    wait_for("the VirtualService pruned", lambda: env.kube.get(VIRTUALSERVICE, env.namespace, "fraud") is None)

    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "fraud")
    wait_for("fraud gone", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "fraud") is None)
    wait_for("its children gone", lambda: not env.children("fraud"))
    # A hold, not a wait: whatever the operator does in reaction to the deletions (nothing
    # observable to wait on) happens in this period, so that a denied request would show.
    time.sleep(1.5)


def test_the_operator_runs_with_exactly_the_charts_rbac(world: World) -> None:
    env = world.env
    walk(env)

    decisions = world.emulator.authorizations(SERVICE_ACCOUNT)
    denied = sorted({(d.verb, d.path) for d in decisions if not d.allowed})
    assert denied == []
    complaints = [line for line in env.operator.logs().splitlines() if "Forbidden" in line or "Not enough permissions" in line]
    assert complaints == []

    resource_requests = [d for d in decisions if d.resource]
    used = {d.permission for d in resource_requests}
    assert not (RARE_PATHS & used), f"exercised now, drop from RARE_PATHS: {RARE_PATHS & used}"
    unused = world.granted - used - RARE_PATHS
    assert unused == set(), f"granted by the chart ({world.mode}) but never used: {sorted(unused)}"
    assert used | RARE_PATHS == world.granted, f"used without a grant: {sorted(used - world.granted)}"

    if world.mode.startswith("namespaced"):
        outside = sorted({(d.verb, d.path) for d in resource_requests if d.namespace != env.namespace})
        assert outside == [], "namespaced mode must make no request outside its namespace"
