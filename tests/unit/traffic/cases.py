"""Traffic plans shared by the provider tests, and the golden-manifest helper.

Regenerate the golden files with ``HEADWAY_UPDATE_GOLDEN=1`` and review the diff: they
must read like manifests a Gateway API or Istio user would write by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headway.api.spec import Traffic
from headway.planning.naming import Owner
from headway.planning.traffic_plan import PinPlan, TrafficPlan, previous_traffic
from headway.traffic.base import Problem, ServicePort, Services, TrafficProvider
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"
SCHEMAS = Path("/work/shared/schemas")
HTTPROUTE_CRDS = {
    "standard": SCHEMAS / "gateway-api/standard_gateway.networking.k8s.io_httproutes.yaml",
    "experimental": SCHEMAS / "gateway-api/experimental_gateway.networking.k8s.io_httproutes.yaml",
}
VIRTUALSERVICE_CRD = SCHEMAS / "istio/virtualservices.networking.istio.io.yaml"

NAME, NAMESPACE, PORT = "fraud-scorer", "ml", 3000
OWNER = Owner(name=NAME, namespace=NAMESPACE, uid="2f9c0a3e-5b1d-4c7e-9a61-3d8e4f0b7c21")
LABELS = {
    "team": "risk",
    "app.kubernetes.io/name": "fraud_scorer",
    "app.kubernetes.io/instance": NAME,
    "app.kubernetes.io/component": "model-server",
    "app.kubernetes.io/managed-by": "headway",
    "headway.dev/modeldeployment": NAME,
}

TRAFFIC: dict[str, Traffic | None] = {
    "gatewayApi": Traffic.model_validate(
        {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}], "hostnames": ["fraud.ml.example.com"]}}
    ),
    "istio": Traffic.model_validate({"provider": "istio", "istio": {"hosts": ["fraud.ml.example.com"], "gateways": ["gateways/inference"]}}),
    "none": None,
}


def services(plan: TrafficPlan) -> dict[str, ServicePort]:
    """Every variant of the plan behind its own Service ``<name>-<variant>`` on PORT."""
    return {v: ServicePort(f"{NAME}-{v}", PORT) for v in plan.weights}


def plan(weights: dict[str, int], mirror: tuple[str, int] | None = None, pins: tuple[PinPlan, ...] = ()) -> TrafficPlan:
    return TrafficPlan(weights=weights, mirror=mirror, pins=pins)


def render(provider: TrafficProvider, traffic_plan: TrafficPlan, traffic: Traffic | None,
           services_: Services | None = None) -> list[dict[str, Any]]:
    return provider.render(OWNER, traffic_plan, services(traffic_plan) if services_ is None else services_, dict(LABELS), traffic)


def check(provider: TrafficProvider, traffic_plan: TrafficPlan, traffic: Traffic | None, services_: Services | None = None) -> list[Problem]:
    return provider.check(traffic_plan, services(traffic_plan) if services_ is None else services_, traffic)


CASES: dict[str, TrafficPlan] = {
    # Steady state: the stable version takes everything.
    "steady": plan({"stable": 100}),
    # Canary step at 5%.
    "canary": plan({"stable": 95, "candidate": 5}),
    # Shadow step: the candidate gets no live traffic, a copy of half of it.
    "shadow": plan({"stable": 100, "candidate": 0}, mirror=("candidate", 50)),
    # Both at once: a canary at 5% while a separate shadow variant gets copies of half the
    # traffic (a mirror target must not take live traffic itself: it would get duplicates).
    "shadow-canary": plan({"stable": 95, "candidate": 5, "shadow": 0}, mirror=("shadow", 50)),
    # The bake's baseline, as the planner builds it (planning/bake.py): the previous version gets a
    # copy of 10% of the requests (the default where the provider can mirror) ...
    "bake-mirror": previous_traffic("mirror", 10),
    # ... or serves 5% of live traffic (the default without a mirroring provider; any weight up to 50).
    "bake-weight": previous_traffic("weight", 5),
    # A/B/n experiment, 50/30/20, with a header pin and a cookie pin.
    "experiment": plan(
        {"control": 50, "treatment-a": 30, "treatment-b": 20},
        pins=(
            PinPlan(kind="header", name="x-cohort", value="treatment-a", variant="treatment-a"),
            PinPlan(kind="cookie", name="hw-variant", value="treatment-b", variant="treatment-b"),
        ),
    ),
}


def assert_golden(provider: str, case: str, objects: list[dict[str, Any]]) -> None:
    """Compare rendered objects with golden/<provider>/<case>.yaml (HEADWAY_UPDATE_GOLDEN=1 rewrites it)."""
    golden.assert_golden(objects, GOLDEN / provider / f"{case}.yaml")
