"""End to end: the real operator process against an API server (emulator or real cluster).

What a platform engineer does with one ModelDeployment — create, change the image, break
the spec, delete — and what they must see; plus an operator crash in steady state.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.k8s.client import DEPLOYMENT, SERVICE
from headway.planning.naming import STABLE, Owner, VariantWorkload
from headway.rendering.workload import build_children
from tests.e2e.harness import IMAGE, IMAGE_V2, Env, wait_for

pytestmark = pytest.mark.e2e

SPEC: dict[str, Any] = {
    "model": {"bento": "fraud_scorer:3.2.0", "image": IMAGE, "env": [{"name": "LOG_LEVEL", "value": "info"}]},
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "replicas": 2,
    "cost": {"labels": {"team": "risk", "cost-center": "cc-1234"}},
}


def is_subset(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where actual lacks or differs from expected (a real server adds defaults; that's fine)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        return [d for k, v in expected.items() for d in is_subset(v, actual.get(k), f"{path}.{k}")]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in is_subset(e, a, f"{path}[{i}]")]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]




def settled(env: Env, name: str, replicas: int) -> dict[str, Any] | None:
    """The ModelDeployment once its stable Deployment is rolled out and status shows it (else None)."""
    body = env.md(name)
    status = body.get("status") or {}
    deployment = env.kube.get(DEPLOYMENT, env.namespace, f"{name}-stable") or {}
    rolled_out = (deployment.get("status") or {}).get("observedGeneration") == deployment.get("metadata", {}).get("generation") \
        and (deployment.get("status") or {}).get("availableReplicas") == replicas
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {}).get("status") == "True"
    shown = status.get("phase") == "Succeeded" and status.get("ready") == f"{replicas}/{replicas}" and ready \
        and status.get("observedGeneration") == body["metadata"]["generation"]
    return body if rolled_out and shown else None


def rendered(env: Env, name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    parsed = ModelDeploymentSpec.model_validate(spec)
    owner = Owner(name, env.namespace, env.md(name)["metadata"]["uid"])
    return build_children(owner, parsed, [VariantWorkload(STABLE, parsed.model, parsed.replicas or 1)])


def test_create_gives_children_exactly_as_specified(env: Env) -> None:
    env.create_md("fraud", SPEC)
    env.wait_condition("fraud", "Ready", "True")
    body = env.wait_phase("fraud", "Succeeded")

    children = env.children("fraud")
    assert set(children) == {
        ("Deployment", "fraud-stable"), ("Service", "fraud-stable"), ("Service", "fraud"), ("PodDisruptionBudget", "fraud-stable"),
    }
    for want in rendered(env, "fraud", SPEC):
        live = children[(want["kind"], want["metadata"]["name"])]
        assert is_subset(want, live) == [], f"{want['kind']} {want['metadata']['name']} differs"
        assert live["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]

    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["stable"]["bento"] == "fraud_scorer:3.2.0" and status["stable"]["image"] == IMAGE
    assert status["stable"]["readyReplicas"] == 2 and status["ready"] == "2/2"
    assert status["stable"]["revision"] == children[("Deployment", "fraud-stable")]["metadata"]["labels"]["headway.dev/revision"]
    assert [h["event"] for h in status["history"]] == ["Deployed"]
    env.wait_events("fraud", "Deployed", "Created")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_wait_for_ready(env: Env) -> None:
    env.create_md("fraud", SPEC)
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(env.kubeconfig), "-n", env.namespace, "wait", "--for=condition=Ready",
         "modeldeployment/fraud", "--timeout=60s"],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "condition met" in result.stdout


def test_image_change_rolls_the_deployment(env: Env) -> None:
    env.create_md("fraud", SPEC)
    env.wait_phase("fraud", "Succeeded")
    before = env.children("fraud")[("Deployment", "fraud-stable")]

    env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}})
    after = wait_for(
        "the Deployment to run the new image",
        lambda: (d := env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable"))
        and d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V2 and d,
    )
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # updated in place, not recreated
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    assert after["spec"]["template"]["metadata"]["labels"]["headway.dev/revision"] != before["spec"]["template"]["metadata"]["labels"]["headway.dev/revision"]
    assert after["metadata"]["labels"]["app.kubernetes.io/version"] == "3.3.0"

    body = wait_for("status to show the new stable", lambda: (b := env.wait_phase("fraud", "Succeeded"))["status"]["stable"]["bento"] == "fraud_scorer:3.3.0" and b)
    assert body["status"]["stable"]["available"] is True
    assert [h["event"] for h in body["status"]["history"]] == ["Deployed", "Updated"]


def test_invalid_spec_is_reported_and_children_are_untouched(env: Env) -> None:
    env.create_md("fraud", SPEC)
    env.wait_phase("fraud", "Succeeded")
    before = {key: obj["metadata"]["resourceVersion"] for key, obj in env.children("fraud").items()}

    # The schema cannot tell a bad image reference or an unparsable quantity: the operator can.
    env.patch_spec("fraud", {"model": {"image": "Registry.Example.com/Fraud Scorer:3.3.0"}, "resources": {"requests": {"cpu": "lots"}}})
    degraded = env.wait_condition("fraud", "Degraded", "True", "InvalidSpec")
    assert "spec.model.image" in degraded["message"] and "spec.resources.requests.cpu" in degraded["message"]
    body = env.wait_phase("fraud", "Degraded")
    assert {p["field"] for p in body["status"]["problems"]} == {"spec.model.image", "spec.resources.requests.cpu"}
    assert env.condition("fraud", "Ready")["status"] == "True"  # the running version still serves
    assert body["status"]["stable"]["image"] == IMAGE
    wait_for("an InvalidSpec event", lambda: "InvalidSpec" in env.event_reasons("fraud"))
    env.reconciled_again("fraud")  # looked at again: still untouched, still one event
    assert {key: obj["metadata"]["resourceVersion"] for key, obj in env.children("fraud").items()} == before
    assert env.event_reasons("fraud").count("InvalidSpec") == 1

    env.patch_spec("fraud", {"model": {"image": IMAGE}, "resources": {"requests": {"cpu": "100m"}}})
    env.wait_condition("fraud", "Degraded", "False")
    env.wait_phase("fraud", "Succeeded")


def test_unavailable_model_is_not_ready(env: Env) -> None:
    env.create_md("broken", {**SPEC, "model": {"bento": "fraud_scorer:0.0.1", "image": "registry.example.com/does-not-exist:1"}})
    ready = env.wait_condition("broken", "Ready", "False", "Unavailable")
    assert "0/2" in ready["message"]
    assert env.md("broken")["status"]["phase"] == "Pending"


def test_every_field_is_acted_on_and_a_budget_without_prices_says_what_is_missing(env: Env) -> None:
    env.create_md("fraud", {**SPEC, "cost": {"labels": {"team": "risk"}, "monthlyBudget": 2500}})
    env.wait_phase("fraud", "Succeeded")
    supported = env.wait_condition("fraud", "SpecSupported", "True")
    assert env.md("fraud")["status"].get("ignoredFields", []) == [], supported
    budget = env.wait_condition("fraud", "WithinBudget", "Unknown", "NoPriceTable")
    assert "prices.vcpuHour" in budget["message"]  # what to set in the chart
    assert "cost" not in env.md("fraud")["status"]  # no price table: no cost to show


def test_scaling_down_to_one_replica_removes_the_pdb(env: Env) -> None:
    env.create_md("fraud", SPEC)
    wait_for("the PDB", lambda: ("PodDisruptionBudget", "fraud-stable") in env.children("fraud"))
    env.patch_spec("fraud", {"replicas": 1, "cost": {"labels": {"cost-center": None}}})  # merge patch: null deletes
    wait_for("the PDB to go", lambda: ("PodDisruptionBudget", "fraud-stable") not in env.children("fraud"))
    deployment = env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable")
    assert deployment["spec"]["replicas"] == 1
    assert "cost-center" not in deployment["metadata"]["labels"]  # removed cost labels leave the children
    assert "cost-center" not in deployment["spec"]["template"]["metadata"]["labels"]


def test_foreign_object_with_the_same_name_is_not_overwritten(env: Env) -> None:
    foreign = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "fraud", "namespace": env.namespace},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
    }
    env.kube.create(SERVICE, env.namespace, foreign)
    env.create_md("fraud", SPEC)
    cond = env.wait_condition("fraud", "Degraded", "True", "ChildConflict")
    assert "Service fraud exists and is not owned" in cond["message"]
    service = [o for k, o in env.children("fraud").items() if k == ("Service", "fraud")]
    assert service == []  # the legacy Service kept its own labels and selector


def test_delete_removes_every_child(env: Env) -> None:
    env.create_md("fraud", SPEC)
    env.wait_phase("fraud", "Succeeded")
    assert len(env.children("fraud")) == 4
    from headway.reconciler import MODEL_DEPLOYMENT

    env.kube.delete(MODEL_DEPLOYMENT, env.namespace, "fraud")
    wait_for("the ModelDeployment to go", lambda: env.kube.get(MODEL_DEPLOYMENT, env.namespace, "fraud") is None)
    wait_for("its children to be garbage-collected", lambda: env.children("fraud") == {})


def test_operator_restart_makes_no_duplicate_writes(env: Env) -> None:
    env.create_md("fraud", SPEC)
    wait_for("the last status write to land", lambda: settled(env, "fraud", 2))
    children = {key: obj["metadata"]["resourceVersion"] for key, obj in env.children("fraud").items()}
    md_version = env.md("fraud")["metadata"]["resourceVersion"]
    events = len(env.events("fraud"))

    env.operator.kill()
    env.operator.start()
    # The new operator's first look at the object (with no periodic resync, later ones need a reason).
    wait_for("the new operator to reconcile", lambda: env.operator.metric("headway_reconciles_total", 'outcome="ok"') >= 1)

    assert {key: obj["metadata"]["resourceVersion"] for key, obj in env.children("fraud").items()} == children
    assert env.md("fraud")["metadata"]["resourceVersion"] == md_version
    assert len(env.events("fraud")) == events
