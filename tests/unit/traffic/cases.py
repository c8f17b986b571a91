"""Route intents shared by the provider tests, and the golden-manifest helper.

Regenerate the golden files with ``HEADWAY_UPDATE_GOLDEN=1`` and review the diff: they
must read like manifests a Gateway API or Istio user would write by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headway.api.spec import Traffic
from headway.traffic.base import Backend, Mirror, Pin, RouteIntent
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"
SCHEMAS = Path("/work/shared/schemas")
HTTPROUTE_CRDS = {
    "standard": SCHEMAS / "gateway-api/standard_gateway.networking.k8s.io_httproutes.yaml",
    "experimental": SCHEMAS / "gateway-api/experimental_gateway.networking.k8s.io_httproutes.yaml",
}
VIRTUALSERVICE_CRD = SCHEMAS / "istio/virtualservices.networking.istio.io.yaml"

NAME, NAMESPACE, PORT = "fraud-scorer", "ml", 3000
OWNER: dict[str, Any] = {
    "apiVersion": "serving.headway.dev/v1alpha1",
    "kind": "ModelDeployment",
    "name": NAME,
    "uid": "2f9c0a3e-5b1d-4c7e-9a61-3d8e4f0b7c21",
    "controller": True,
    "blockOwnerDeletion": True,
}
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


def backend(variant: str, weight: int) -> Backend:
    return Backend(variant=variant, service=f"{NAME}-{variant}", port=PORT, weight=weight)


def mirror(variant: str, percent: int) -> Mirror:
    return Mirror(variant=variant, service=f"{NAME}-{variant}", port=PORT, percent=percent)


def intent(*backends: Backend, mirror: Mirror | None = None, pins: tuple[Pin, ...] = ()) -> RouteIntent:
    return RouteIntent(name=NAME, namespace=NAMESPACE, labels=dict(LABELS), owner=dict(OWNER), backends=backends, mirror=mirror, pins=pins)


CASES: dict[str, RouteIntent] = {
    # Steady state: the stable version takes everything.
    "steady": intent(backend("stable", 100)),
    # Canary step at 5%.
    "canary": intent(backend("stable", 95), backend("candidate", 5)),
    # Shadow step: the candidate gets no live traffic, a copy of half of it.
    "shadow": intent(backend("stable", 100), backend("candidate", 0), mirror=mirror("candidate", 50)),
    # Both at once: a canary at 5% while a separate shadow variant gets copies of half the
    # traffic (a mirror target must not take live traffic itself: it would get duplicates).
    "shadow-canary": intent(backend("stable", 95), backend("candidate", 5), backend("shadow", 0), mirror=mirror("shadow", 50)),
    # A/B/n experiment, 50/30/20, with a header pin and a cookie pin.
    "experiment": intent(
        backend("control", 50),
        backend("treatment-a", 30),
        backend("treatment-b", 20),
        pins=(
            Pin(kind="header", name="x-cohort", value="treatment-a", variant="treatment-a"),
            Pin(kind="cookie", name="hw-variant", value="treatment-b", variant="treatment-b"),
        ),
    ),
}


def assert_golden(provider: str, case: str, objects: list[dict[str, Any]]) -> None:
    """Compare rendered objects with golden/<provider>/<case>.yaml (HEADWAY_UPDATE_GOLDEN=1 rewrites it)."""
    golden.assert_golden(objects, GOLDEN / provider / f"{case}.yaml")
