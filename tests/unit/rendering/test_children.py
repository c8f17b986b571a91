"""render_children is pure: what the cluster serves is an argument, not a discovery call."""

from __future__ import annotations

from typing import Any

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import ModelDeploymentStatus
from headway.planning.capabilities import HTTPROUTE, OPTIONAL_KINDS, PODMONITOR
from headway.planning.naming import Owner, VariantWorkload
from headway.planning.plan import Plan
from headway.planning.traffic_plan import TrafficPlan
from headway.reconciler import render_children

OWNER = Owner(name="fraud", namespace="ml", uid="uid-fraud")
MODEL = {"bento": "fraud_scorer:v1", "image": "registry.example.com/fraud:v1"}
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
ANALYSIS = {"slos": [{"errorRate": {"max": 0.01}}]}
ALL = frozenset(OPTIONAL_KINDS)


def plan(traffic: dict[str, Any] | None = GATEWAY, analysis: dict[str, Any] | None = ANALYSIS,
         split: TrafficPlan | None = None) -> Plan:
    raw: dict[str, Any] = {"model": MODEL, **({"traffic": traffic} if traffic else {}), **({"analysis": analysis} if analysis else {})}
    spec = ModelDeploymentSpec.model_validate(raw)
    workloads = [VariantWorkload("stable", spec.model, 2), VariantWorkload("candidate", spec.model, 1)]
    split = split or TrafficPlan(weights={"stable": 95, "candidate": 5})
    return Plan(spec=spec, workloads=workloads, traffic=split, status=ModelDeploymentStatus())


def kinds(children: list[dict[str, Any]]) -> list[str]:
    return [c["kind"] for c in children]


def test_everything_served_renders_the_route_and_the_podmonitor() -> None:
    children, keep, problems = render_children(OWNER, plan(), ALL)
    assert problems == []
    assert kinds(children).count("HTTPRoute") == 1 and kinds(children).count("PodMonitor") == 1
    assert keep == set()


def test_no_podmonitor_unless_served() -> None:
    children, _, problems = render_children(OWNER, plan(), ALL - {PODMONITOR})
    assert problems == [] and "PodMonitor" not in kinds(children) and "HTTPRoute" in kinds(children)


def test_a_route_crd_not_served_is_a_problem_and_the_serving_route_is_kept() -> None:
    children, keep, problems = render_children(OWNER, plan(), ALL - {HTTPROUTE})
    assert problems == [
        "spec.traffic.provider: gatewayApi needs the HTTPRoute CRD (gateway.networking.k8s.io), which this cluster does not serve"
    ]
    assert "HTTPRoute" not in kinds(children)
    assert {("HTTPRoute", "fraud"), ("VirtualService", "fraud")} <= keep


def test_provider_none_renders_no_route_and_needs_no_crd() -> None:
    children, _, problems = render_children(OWNER, plan(traffic=None, analysis=None), frozenset())
    assert problems == []
    assert set(kinds(children)) == {"Deployment", "Service", "PodDisruptionBudget"}


def test_a_plan_the_provider_cannot_express_is_a_route_problem() -> None:
    shadow = TrafficPlan(weights={"stable": 100, "candidate": 0}, mirror=("candidate", 10))
    _, _, problems = render_children(OWNER, plan(traffic=None, analysis=None, split=shadow), ALL)
    assert problems == ["spec.rollout.steps: shadow needs a traffic provider that can mirror (gatewayApi or istio); provider none cannot"]
