"""Autoscaling per variant, cost and budgets, end to end (issue 9).

An autoscaler is simulated by writing a Deployment's replicas as the HPA controller's field
manager would (the emulator runs no HPA controller; on a real cluster the HPA does it): Headway
must never write them back, size the candidate's floor from the stable's current replicas, and
keep capacity through a promotion.
"""

from __future__ import annotations

from typing import Any

import pytest

from headway.k8s.client import DEPLOYMENT, Kind
from tests.e2e.harness import HTTPROUTE, IMAGE, IMAGE_V2, Env, wait_for

pytestmark = pytest.mark.e2e

HPA = Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
TRAFFIC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 10, "metrics": [{"cpu": {"averageUtilization": 70}}],
               "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}}}
RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}}  # utilisation targets are percent of these
HPA_CONTROLLER = "horizontal-pod-autoscaler"  # the field manager of the scaler's writes, as a real HPA's


@pytest.fixture(autouse=True)
def gateway_api(env: Env) -> None:
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")


def hpa(env: Env, variant: str) -> dict[str, Any] | None:
    return env.kube.get(HPA, env.namespace, f"fraud-{variant}")


def replicas(env: Env, variant: str) -> int | None:
    dep = env.kube.get(DEPLOYMENT, env.namespace, f"fraud-{variant}")
    return None if dep is None else dep["spec"].get("replicas")


def autoscale(env: Env, variant: str, count: int) -> None:
    """What an HPA does: set the Deployment's replicas, as its own field manager."""
    env.kube.merge_patch(DEPLOYMENT, env.namespace, f"fraud-{variant}", {"spec": {"replicas": count}}, field_manager=HPA_CONTROLLER)


def test_each_variant_scales_on_its_own_and_headway_never_fights_the_autoscaler(env: Env) -> None:
    env.create_md("fraud", {"model": V1, "traffic": TRAFFIC, "autoscaling": AUTOSCALING, "resources": RESOURCES,
                            "rollout": {"steps": [{"canary": {"weight": 25, "duration": "1h"}}, {"canary": {"weight": 50, "duration": "1h"}}]}})
    stable_hpa = wait_for("the stable's HPA", lambda: hpa(env, "stable"))
    assert stable_hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-stable"}
    assert (stable_hpa["spec"]["minReplicas"], stable_hpa["spec"]["maxReplicas"]) == (2, 10)
    assert stable_hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    env.wait_phase("fraud", "Succeeded")
    supported = env.condition("fraud", "SpecSupported")
    assert supported is not None and supported["status"] == "True", supported

    autoscale(env, "stable", 4)
    env.reconciled_again("fraud")
    assert replicas(env, "stable") == 4, "Headway wrote the replicas its autoscaler owns"

    # A rollout: the candidate gets its own HPA, its floor sized for its share of the stable's 4.
    env.patch_spec("fraud", {"model": V2})
    wait_for("canary 25%", lambda: env.route_split("fraud")[0].get("fraud-candidate") == 25)
    candidate_hpa = wait_for("the candidate's HPA", lambda: hpa(env, "candidate"))
    assert candidate_hpa["spec"]["minReplicas"] == 1 and candidate_hpa["spec"]["maxReplicas"] == 10  # ceil(25% x 4)

    autoscale(env, "stable", 8)  # load grows: the stable scales up, the candidate's floor follows
    wait_for("the candidate's floor to follow", lambda: (hpa(env, "candidate") or {}).get("spec", {}).get("minReplicas") == 2)
    assert replicas(env, "stable") == 8

    autoscale(env, "candidate", 3)
    env.annotate("fraud", "headway.dev/promote", "now")
    body = env.wait_history("fraud", "Promoted")
    assert body["stable"]["bento"] == "fraud_scorer:3.3.0"
    env.wait_phase("fraud", "Succeeded")
    assert replicas(env, "stable") == 8, "capacity was not kept through the promotion"
    wait_for("the candidate's HPA to go", lambda: hpa(env, "candidate") is None)


def test_a_change_to_autoscaling_is_canaried_like_a_model_change(env: Env) -> None:
    steps = {"steps": [{"canary": {"weight": 50, "duration": "1h"}}]}
    env.create_md("fraud", {"model": V1, "traffic": TRAFFIC, "autoscaling": AUTOSCALING, "resources": RESOURCES, "rollout": steps})
    env.wait_phase("fraud", "Succeeded")
    autoscale(env, "stable", 4)
    env.patch_spec("fraud", {"autoscaling": {**AUTOSCALING, "maxReplicas": 6}})  # same model, a lower ceiling
    status = env.wait_history("fraud", "RolloutStarted")
    started = next(h for h in status["history"] if h["event"] == "RolloutStarted")
    assert "spec.autoscaling: hpa 2-10 replicas on cpu 70% -> hpa 2-6 replicas on cpu 70%" in started["message"]
    candidate_hpa = wait_for("the candidate's HPA", lambda: hpa(env, "candidate"))
    assert (candidate_hpa["spec"]["minReplicas"], candidate_hpa["spec"]["maxReplicas"]) == (2, 6)  # ceil(50% x 4), the new ceiling
    autoscale(env, "candidate", 2)  # its HPA brings it to its floor (the emulator runs no HPA controller)
    wait_for("canary 50%", lambda: env.route_split("fraud")[0].get("fraud-candidate") == 50)
    stable_hpa = hpa(env, "stable")
    assert stable_hpa is not None and stable_hpa["spec"]["maxReplicas"] == 10, "the stable's scaler changed before promotion"
    env.annotate("fraud", "headway.dev/promote", "now")
    env.wait_history("fraud", "Promoted")
    wait_for("the stable's HPA to take the new ceiling", lambda: (hpa(env, "stable") or {}).get("spec", {}).get("maxReplicas") == 6)
    wait_for("the candidate's HPA to go", lambda: hpa(env, "candidate") is None)


def test_switching_from_fixed_replicas_to_autoscaling_keeps_the_running_replicas(env: Env) -> None:
    env.create_md("fraud", {"model": V1, "traffic": TRAFFIC, "replicas": 3, "resources": RESOURCES})
    env.wait_phase("fraud", "Succeeded")
    assert replicas(env, "stable") == 3
    env.patch_spec("fraud", {"replicas": None, "autoscaling": AUTOSCALING})
    wait_for("the stable's HPA", lambda: hpa(env, "stable"))
    env.reconciled_again("fraud")
    assert replicas(env, "stable") == 3  # not reset to 1 when Headway stopped rendering it


def test_cost_labels_on_every_pod_and_a_budget_breach_says_by_how_much(env: Env) -> None:
    env.operator.kill()
    env.operator.extra_args = ["--price-vcpu-hour", "0.04", "--price-gib-hour", "0.005", "--currency", "EUR"]
    env.operator.start()
    env.create_md("fraud", {
        "model": V1, "traffic": TRAFFIC, "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "autoscaling": {**AUTOSCALING, "maxReplicas": 20},
        "cost": {"labels": {"team": "fraud", "cost-center": "cc-42"}, "monthlyBudget": 100},
    })
    env.wait_phase("fraud", "Succeeded")
    over = env.wait_condition("fraud", "WithinBudget", "False", "OverBudget")
    # 20 pods x (1 vCPU x 0.04 + 2 GiB x 0.005) = 1.00 EUR/h -> 730 EUR a month at maxReplicas.
    assert "730" in over["message"] and "EUR" in over["message"] and "100" in over["message"], over
    cost = env.status("fraud")["cost"]
    assert cost["currency"] == "EUR" and cost["monthlyAtMax"] == pytest.approx(730.0) and cost["overBudgetBy"] == pytest.approx(630.0)
    env.wait_events("fraud", "OverBudget")
    for dep in env.kube.list(DEPLOYMENT, env.namespace, "headway.dev/modeldeployment=fraud"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert labels["team"] == "fraud" and labels["cost-center"] == "cc-42", dep["metadata"]["name"]
    assert env.operator.metric("headway_cost_hourly", 'cost_center="cc-42"') > 0
