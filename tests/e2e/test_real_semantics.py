"""What a real API server makes the operator do, seen as a user sees it.

Server-side apply puts back a hand edit and leaves other writers' fields alone; a
conflict on the status write never moves traffic backwards; a control set while nothing
rolls out never acts later; a delete returns in seconds, with or without the operator.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from headway.k8s.client import DEPLOYMENT, MERGE_PATCH, ApiError, Kind
from headway.reconciler import CONFIGMAP, MODEL_DEPLOYMENT
from tests.e2e.harness import HTTPROUTE, NAMESPACE_KIND, Env, wait_for
from tests.e2e.test_rollouts import TRAFFIC, V1, V2

pytestmark = pytest.mark.e2e


def patch_as(env: Env, kind: Kind, name: str, patch: dict[str, Any], manager: str) -> dict[str, Any]:
    """A merge patch by another field manager (kubectl edit, Argo CD, an autoscaler...)."""
    return env.kube._call("PATCH", kind.path(env.namespace, name), body=patch, query=[("fieldManager", manager)],  # noqa: SLF001
                          content_type=MERGE_PATCH)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_a_hand_edit_is_put_back_and_other_writers_fields_are_kept(env: Env) -> None:
    env.create_md("fraud", {"model": V1, "replicas": 2})
    env.wait_phase("fraud", "Succeeded")
    live = env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable")
    assert live is not None
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert ("headway", "Apply") in managers, managers

    patch_as(env, DEPLOYMENT, "fraud-stable", {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "app:apps/Deployment:x"},
                                                            "labels": {"team-owner": "risk"}}}, "argocd-controller")
    patch_as(env, DEPLOYMENT, "fraud-stable", {"spec": {"replicas": 5, "template": {"spec": {"containers": [
        {**container(live), "image": "registry.example.com/fraud:hacked"}]}}}}, "kubectl-edit")

    fixed = wait_for("the hand edit put back", lambda: (d := env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable"))
                     and container(d)["image"] == V1["image"] and d["spec"]["replicas"] == 2 and d)
    assert fixed["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] == "app:apps/Deployment:x"
    assert fixed["metadata"]["labels"]["team-owner"] == "risk"
    assert "updated Deployment fraud-stable (a rendered field was changed by another writer: spec.replicas, spec.template.spec.containers)" \
        in env.operator.logs()
    generation, writes = fixed["metadata"]["generation"], env.operator.logs().count("updated Deployment fraud-stable")
    # The Deployment controller rolls the fix out (writing only status), and the operator looks again.
    wait_for("the fix rolled out", lambda: (d := env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable"))
             and d["status"].get("observedGeneration") == d["metadata"]["generation"])
    env.reconciled_again("fraud")
    again = env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable")
    assert again is not None and again["metadata"]["generation"] == generation, "the spec was rewritten"
    assert env.operator.logs().count("updated Deployment fraud-stable") == writes


@pytest.mark.parametrize("control", ["abort", "promote"])
def test_a_control_set_while_nothing_rolls_out_never_acts_later(env: Env, control: str) -> None:
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": TRAFFIC,
                            "rollout": {"steps": [{"canary": {"weight": 20, "duration": "1h"}}]}})
    env.wait_phase("fraud", "Succeeded")
    env.annotate("fraud", f"headway.dev/{control}", "1764000000")
    wait_for("the control reported as ignored", lambda: "ControlIgnored" in env.event_reasons("fraud"))
    assert env.history("fraud")[-1] == "ControlIgnored"

    env.patch_spec("fraud", {"model": V2})  # later, git changes spec.model
    wait_for("canary 20%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 80, "fraud-candidate": 20})
    env.reconciled_again("fraud")  # later looks: the old control still does nothing
    status = env.status("fraud")
    assert status["phase"] == "Progressing" and status["rollout"]["step"] == 0 and not status["rollout"].get("promoting")
    assert not {"Aborted", "PromotionStarted"} & set(env.history("fraud"))
    assert env.event_reasons("fraud").count("ControlIgnored") == 1


def test_a_conflict_never_moves_traffic_back(env: Env) -> None:
    """Another writer touches the ModelDeployment while the operator decides: its status writes get 409s."""
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")
    # Five step boundaries, each a decision that can race with the other writer's patches.
    steps = [{"canary": {"weight": w, "duration": "1s"}} for w in (10, 20, 30, 40, 50)] + [{"canary": {"weight": 60, "duration": "1h"}}]
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": TRAFFIC, "rollout": {"steps": steps}})
    env.wait_phase("fraud", "Succeeded")
    env.patch_spec("fraud", {"model": V2})
    # Its first step lasts a second: on a busy machine the route may already be at a later one.
    wait_for("the first canary step", lambda: env.route_split("fraud")[0].get("fraud-candidate", 0) >= 10)

    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(env.route_split("fraud")[0].get("fraud-candidate", 0))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # Writes back to back until the last step: each step's decision races with them.
        deadline = time.monotonic() + 60
        i = 0
        while env.route_split("fraud")[0].get("fraud-candidate") != 60:
            assert time.monotonic() < deadline, f"the rollout did not reach 60% (history: {env.history('fraud')})"
            patch_as(env, MODEL_DEPLOYMENT, "fraud",
                     {"metadata": {"labels": {"touched": str(i)}}}, "someone-else")
            i += 1
    finally:
        done.set()
        sampler.join()
    assert "changed while reconciling" in env.operator.logs(), "no status write conflicted: the test proved nothing"
    drops = [(a, b) for a, b in zip(seen, seen[1:]) if b < a]
    assert drops == [], f"traffic moved back: {drops} in {seen}"
    history = env.history("fraud")
    assert history.count("StepStarted") == 6 and history.count("StepCompleted") == 5


def test_a_delete_returns_in_seconds_with_or_without_the_operator(env: Env) -> None:
    env.create_md("one", {"model": V1})
    env.create_md("two", {"model": V1})
    for name in ("one", "two"):
        body = env.wait_phase(name, "Succeeded")
        assert not body["metadata"].get("finalizers"), body["metadata"].get("finalizers")
    # No finalizer: each deletion completes on its own (a finalizer would hold it for ever without an operator).
    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "one")
    wait_for("one gone", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "one") is None)
    wait_for("its children collected", lambda: env.kube.get(DEPLOYMENT, env.namespace, "one-stable") is None)
    env.operator.kill()  # uninstalled, or down
    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "two")
    wait_for("two gone without an operator", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "two") is None)


def test_the_finalizer_of_version_0_1_is_removed(env: Env) -> None:
    manifest = env.manifest("old", {"model": V1})
    manifest["metadata"]["finalizers"] = ["headway.dev/finalizer"]
    env.kube.create(MODEL_DEPLOYMENT, env.namespace, manifest)
    wait_for("the old finalizer removed", lambda: not (env.md("old")["metadata"].get("finalizers")))
    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "old")
    wait_for("old gone", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "old") is None, timeout=10)


def test_a_prometheus_url_the_operator_may_not_call_is_refused(env: Env) -> None:
    """Whoever may write a ModelDeployment cannot make the operator call an arbitrary address."""
    env.create_md("fraud", {"model": V1, "analysis": {"prometheus": {"url": "http://169.254.169.254/latest"},
                                                      "slos": [{"errorRate": {"max": 0.01}}]}})
    degraded = env.wait_condition("fraud", "Degraded", "True", reason="InvalidSpec")
    assert "spec.analysis.prometheus.url" in degraded["message"] and "--allowed-prometheus-url" in degraded["message"]
    assert env.status("fraud")["phase"] == "Failed"
    assert env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable") is None  # nothing is deployed from a refused spec


def test_deleting_the_namespace_mid_rollout_lets_it_go_and_the_operator_stays_calm(env: Env) -> None:
    """`kubectl delete namespace` during a canary: nothing of Headway's holds the namespace (it is
    Terminating while its objects go, then gone). Held a while by someone else's finalizer, writes into
    it are refused (403); the operator neither crashes nor logs errors for it, and a ModelDeployment
    of the same name in a new namespace of that name starts from nothing."""
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": TRAFFIC,
                            "rollout": {"steps": [{"canary": {"weight": 50, "duration": "1h"}}]}})
    env.wait_phase("fraud", "Succeeded")
    env.patch_spec("fraud", {"model": V2})
    wait_for("the canary", lambda: env.kube.get(DEPLOYMENT, env.namespace, "fraud-candidate"))
    env.kube.create(CONFIGMAP, env.namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    env.kube.delete(NAMESPACE_KIND, None, env.namespace)
    wait_for("the ModelDeployment and its children gone", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "fraud") is None
             and env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable") is None)
    namespace = env.kube.get(NAMESPACE_KIND, None, env.namespace)
    assert namespace is not None and namespace["status"]["phase"] == "Terminating"  # held by the ConfigMap
    with pytest.raises(ApiError) as refused:
        env.create_md("late", {"model": V1})
    assert refused.value.status == 403 and "is being terminated" in str(refused.value)
    env.kube.merge_patch(CONFIGMAP, env.namespace, "held", {"metadata": {"finalizers": None}})
    wait_for("the namespace gone", lambda: env.kube.get(NAMESPACE_KIND, None, env.namespace) is None, timeout=120)
    assert env.operator.proc is not None and env.operator.proc.poll() is None  # still running
    logs = env.operator.logs()
    assert not [line for line in logs.splitlines() if "Traceback" in line or "[ERROR" in line], logs[-6000:]

    env.kube.create(NAMESPACE_KIND, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env.namespace}})
    env.create_md("fraud", {"model": V2, "replicas": 1, "traffic": TRAFFIC})
    body = env.wait_phase("fraud", "Succeeded")
    assert body["status"]["stable"]["bento"] == V2["bento"]  # deployed as a first version: nothing of the old one
    assert [h["event"] for h in body["status"].get("history", [])] == [h["event"] for h in body["status"].get("history", [])
                                                                       if h["time"] >= body["metadata"]["creationTimestamp"]]
    assert "RolloutStarted" not in env.history("fraud") and env.kube.get(DEPLOYMENT, env.namespace, "fraud-candidate") is None
