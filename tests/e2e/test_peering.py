"""End to end: two operator replicas with kopf peering (the chart's ``replicaCount: 2``) — only
the active one acts.

kopf's peering pauses a replica when a live peer has a higher priority: kopf stops its watch
streams and handlers. Headway's own parts (its work queue with the plans' wake-ups, the child
informers, measurements, notifications) live beside kopf, so they must stand by too. A paused
replica that went on reconciling would act on the ModelDeployments as they were when kopf
stopped delivering them: during a rolling update of the operator (a new pod with a higher
priority takes over) it would prune the candidate the active replica just created for a new
version, and the two would fight over every child.

Here: replica A (priority 100) serves a ModelDeployment; replica B (priority 200) starts and A
pauses; a new version is rolled out and promoted by B while A writes nothing and says it
stands by; B stops cleanly (kopf removes its entry) and A resumes, acting on the current spec.
Cluster mode (one ClusterKopfPeering) and namespaced mode (a KopfPeering per namespace).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from headway.k8s.client import DEPLOYMENT, Kind, Kube, make_api_client
from tests.e2e.fixtures import SHARED_SCHEMAS, load_yaml
from tests.e2e.harness import IMAGE, IMAGE_V2, REAL_KUBECONFIG, Env, OperatorProcess, install_crd, new_namespace, wait_for
from tests.support.helm import template

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REAL_KUBECONFIG), reason="installs kopf's peering CRDs and runs two operators"),
]

CHART = Path(__file__).resolve().parents[2] / "charts" / "headway"
PEERING = "headway"
PEERING_KINDS = {
    "ClusterKopfPeering": Kind("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False),
    "KopfPeering": Kind("kopf.dev", "v1", "kopfpeerings", "KopfPeering"),
}
V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
STEPS = [{"canary": {"weight": 50, "duration": "3s"}}]


class Replicas:
    def __init__(self, env: Env, tmp_path: Path, clusterwide: bool) -> None:
        self.env, self.tmp_path, self.clusterwide = env, tmp_path, clusterwide
        self.all: list[OperatorProcess] = []

    def start(self, name: str, priority: int) -> OperatorProcess:
        log_dir = self.tmp_path / name
        log_dir.mkdir()
        operator = OperatorProcess(kubeconfig=self.env.kubeconfig, namespace=self.env.namespace, log_dir=log_dir,
                                   clusterwide=self.clusterwide,
                                   extra_args=["--peering", PEERING, "--priority", str(priority)])
        self.all.append(operator)
        operator.start()
        return operator


@pytest.fixture(params=["clusterwide", "namespaced"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Env, Replicas]]:
    from headway.sandbox.apiserver import KubeEmulator

    clusterwide = request.param == "clusterwide"
    with KubeEmulator.running_in_thread() as emulator:
        emulator.start_deployment_controller(delay=0.3)
        kubeconfig = emulator.write_kubeconfig(tmp_path / "admin.kubeconfig")
        kube = Kube(make_api_client(str(kubeconfig)))
        install_crd(kube)
        emulator.install_crd(load_yaml(SHARED_SCHEMAS / "gateway-api/standard_gateway.networking.k8s.io_httproutes.yaml"))
        namespace = new_namespace(kube)
        values = {"replicaCount": 2, **({} if clusterwide else {"watchNamespaces": [namespace]})}
        rendered = template(CHART, values, namespace="headway-system", release=PEERING)
        for doc in rendered:  # kopf's peering CRDs, then the peering object (Helm hooks)
            if doc["kind"] == "CustomResourceDefinition" and doc["spec"]["group"] == "kopf.dev":
                emulator.install_crd(doc)
        for doc in rendered:
            if doc["kind"] in PEERING_KINDS:
                kind = PEERING_KINDS[doc["kind"]]
                kube.create(kind, doc["metadata"].get("namespace") if kind.namespaced else None, doc)
        env = Env(kube=kube, kubeconfig=kubeconfig, namespace=namespace, operator=None, emulated=True)  # type: ignore[arg-type]
        replicas = Replicas(env, tmp_path, clusterwide)
        try:
            yield env, replicas
        finally:
            for operator in replicas.all:
                operator.kill()
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                for operator in replicas.all:
                    print(f"\n----- {operator.log_dir.name} -----\n{operator.logs()[-8000:]}")


def writes(log: str, namespace: str) -> list[str]:
    """The lines of an operator's log that report a write for the namespace's ModelDeployments
    (children created, updated or deleted; a status written)."""
    return [line for line in log.splitlines() if f"{namespace}/fraud " in line
            and re.search(r" (created|updated|deleted) [A-Z]\w+ | status: ", line)]


def test_only_the_active_replica_acts_and_a_paused_one_resumes_on_the_current_spec(world: tuple[Env, Replicas]) -> None:
    env, replicas = world
    a = replicas.start("a", 100)
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": GATEWAY, "rollout": {"steps": STEPS}})
    env.wait_phase("fraud", "Succeeded")

    before_b = len(a.logs())
    b = replicas.start("b", 200)
    wait_for("A pauses in favour of B", lambda: "Pausing operations in favour of" in a.logs()[before_b:], timeout=30)
    wait_for("A says it stands by for B", lambda: "lists live peers that take precedence" in a.logs()[before_b:], timeout=30)
    paused_at = len(a.logs())
    reconciles = a.metric("headway_reconciles_total")

    env.patch_spec("fraud", {"model": V2})
    wait_for("B starts the canary", lambda: env.kube.get(DEPLOYMENT, env.namespace, "fraud-candidate"))
    promoted = env.wait_history("fraud", "Promoted", timeout=60)
    assert promoted["stable"]["bento"] == V2["bento"]
    assert not any(h["event"] in ("RolledBack", "Aborted") for h in promoted["history"])
    env.wait_phase("fraud", "Succeeded")
    assert writes(a.logs()[paused_at:], env.namespace) == [], "the paused replica wrote to the API server"
    # Not even tried: a reconcile from A's stale cache would meet a 409 on its status write, so no
    # write is not enough; A's reconciles (whatever their outcome) did not move while B worked.
    assert a.metric("headway_reconciles_total") == reconciles
    b_writes = writes(b.logs(), env.namespace)
    # B created the candidate once: nobody pruned it under B's feet.
    assert len([line for line in b_writes if "created Deployment fraud-candidate" in line]) == 1, b_writes

    started = env.history("fraud").count("RolloutStarted")
    b.stop()  # a clean exit removes B's entry from the peering object: A resumes at once
    wait_for("A resumes", lambda: "Resuming operations after the pause" in a.logs()[paused_at:], timeout=30)
    wait_for("A says it is active", lambda: "active: no live peer" in a.logs()[paused_at:], timeout=30)
    env.patch_spec("fraud", {"replicas": 3})
    wait_for("A scales the stable on the current spec", lambda: (d := env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable"))
             and d["spec"]["replicas"] == 3 and d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V2)
    # A's cache still held V1 from before it paused; had it reconciled that, it would have started
    # a rollout back to V1. It lists the ModelDeployments afresh on resuming.
    assert env.history("fraud").count("RolloutStarted") == started
    assert "created Deployment fraud-candidate" not in a.logs()[paused_at:]
    assert f"{env.namespace}/fraud changed while reconciling" not in a.logs()[paused_at:]  # no 409 from a stale spec
