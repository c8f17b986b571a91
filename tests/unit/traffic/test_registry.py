"""Choosing a provider, the capability table, the plan checks every provider runs, and route problems."""

from __future__ import annotations

import pytest

from headway.api.spec import ModelDeploymentSpec, Traffic
from headway.planning.capabilities import CAPABILITIES, OPTIONAL_KINDS, PODMONITOR, ROUTE_KINDS, SCALEDOBJECT, capabilities_of
from headway.planning.naming import VariantWorkload
from headway.planning.traffic_plan import PinPlan
from headway.traffic import gatewayapi, istio, none
from headway.traffic.base import ServicePort, TrafficProvider
from headway.traffic.registry import PROVIDERS, provider_for, render_route, route_problems, routable, services_for
from tests.unit.traffic.cases import CASES, LABELS, NAME, OWNER, PORT, TRAFFIC, check, plan, render, services

MODEL = {"bento": "fraud_scorer:v1", "image": "registry.example.com/fraud:v1"}
ALL_SERVED = frozenset(OPTIONAL_KINDS)


def test_no_traffic_means_none() -> None:
    assert provider_for(None) is none.PROVIDER


@pytest.mark.parametrize(("name", "provider"), [("gatewayApi", gatewayapi.PROVIDER), ("istio", istio.PROVIDER), ("none", none.PROVIDER)])
def test_the_named_provider(name: str, provider: TrafficProvider) -> None:
    traffic = TRAFFIC[name] or Traffic(provider="none")
    assert provider_for(traffic) is provider
    assert provider.name == name


def test_an_unknown_provider_is_an_error_never_a_fallback() -> None:
    with pytest.raises(ValueError, match=r"spec\.traffic\.provider.*'linkerd'"):
        provider_for(Traffic.model_construct(provider="linkerd"))
    with pytest.raises(ValueError, match=r"spec\.traffic\.provider.*'linkerd'"):
        capabilities_of(Traffic.model_construct(provider="linkerd"))


def test_every_provider_in_the_table_has_a_module_with_its_row() -> None:
    assert PROVIDERS.keys() == CAPABILITIES.keys()
    for name, provider in PROVIDERS.items():
        assert provider.capabilities is CAPABILITIES[name]


def test_route_kinds_cover_every_provider() -> None:
    assert set(ROUTE_KINDS) == {"gateway.networking.k8s.io/HTTPRoute", "networking.istio.io/VirtualService"}
    assert set(OPTIONAL_KINDS) == set(ROUTE_KINDS) | {PODMONITOR, SCALEDOBJECT}
    for provider in PROVIDERS.values():
        kinds = provider.capabilities.kinds
        for obj in render(provider, CASES["canary"], TRAFFIC[provider.name]):
            group = obj["apiVersion"].rpartition("/")[0]
            assert f"{group}/{obj['kind']}" in kinds


def test_the_reconciler_knows_every_optional_kind() -> None:
    from headway.k8s.client import kind_of
    from headway.reconciler import CRD_KINDS, PODMONITOR as PODMONITOR_KIND, ROUTE_KINDS as K8S_ROUTE_KINDS

    assert set(CRD_KINDS) == set(OPTIONAL_KINDS)
    assert {f"{k.group}/{k.kind}" for k in K8S_ROUTE_KINDS} == set(ROUTE_KINDS)
    assert f"{PODMONITOR_KIND.group}/{PODMONITOR_KIND.kind}" == PODMONITOR
    for provider in PROVIDERS.values():  # the API client writes what a provider renders
        for obj in render(provider, CASES["canary"], TRAFFIC[provider.name]):
            assert kind_of(obj) in K8S_ROUTE_KINDS


# --- every provider validates the plan itself ----------------------------------------

BAD_PLANS = {
    "weights sum to 90": (plan({"stable": 90, "candidate": 0}), None, "status.traffic"),
    "all weights zero": (plan({"stable": 0, "candidate": 0}), None, "status.traffic"),
    "weight over 100": (plan({"stable": 110, "candidate": -10}), None, "status.traffic"),
    "no backends": (plan({}), None, "status.traffic"),
    "bad port": (plan({"stable": 100}), {"stable": ServicePort(f"{NAME}-stable", 0)}, "status.traffic"),
    "bad service name": (plan({"stable": 100}), {"stable": ServicePort("Fraud_Scorer", PORT)}, "status.traffic"),
    "a shared service": (plan({"stable": 50, "candidate": 50}), {v: ServicePort(NAME, PORT) for v in ("stable", "candidate")}, "status.traffic"),
    "a variant without a service": (plan({"stable": 50, "candidate": 50}), {"stable": ServicePort(f"{NAME}-stable", PORT)}, "status.traffic"),
    "mirror to an unknown variant": (plan({"stable": 100}, mirror=("shadow", 50)), None, "spec.rollout.steps"),
    "mirror to a variant with live traffic": (plan({"stable": 95, "candidate": 5}, mirror=("candidate", 50)), None, "spec.rollout.steps"),
    "mirror percent 0": (plan({"stable": 100, "candidate": 0}, mirror=("candidate", 0)), None, "spec.rollout.steps"),
    "pin to an unknown variant": (plan({"stable": 100}, pins=(PinPlan("header", "x-cohort", "a", "treatment"),)), None, "spec.experiment.match[0]"),
    "empty header value": (plan({"stable": 100}, pins=(PinPlan("header", "x-cohort", "", "stable"),)), None, "spec.experiment.match[0]"),
    "header name not a token": (plan({"stable": 100}, pins=(PinPlan("header", "x cohort", "a", "stable"),)), None, "spec.experiment.match[0]"),
    "cookie value with a semicolon": (plan({"stable": 100}, pins=(PinPlan("cookie", "hw", "a;b", "stable"),)), None, "spec.experiment.match[0]"),
    "cookie name with =": (plan({"stable": 100}, pins=(PinPlan("cookie", "hw=x", "a", "stable"),)), None, "spec.experiment.match[0]"),
    "the same match twice": (
        plan({"stable": 100, "candidate": 0}, pins=(PinPlan("header", "X-Cohort", "a", "stable"), PinPlan("header", "x-cohort", "a", "candidate"))),
        None,
        "spec.experiment.match[1]",
    ),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("bad", sorted(BAD_PLANS))
def test_every_provider_refuses_an_inconsistent_plan(provider: str, bad: str) -> None:
    broken, broken_services, field = BAD_PLANS[bad]
    p = PROVIDERS[provider]
    fields = [problem.field for problem in check(p, broken, TRAFFIC[provider], broken_services)]
    assert field in fields
    if p.capabilities.kinds:  # a provider that renders objects refuses to render a refused plan
        with pytest.raises(ValueError):
            render(p, broken, TRAFFIC[provider], broken_services)


# --- route problems: known before any write, without I/O ------------------------------


def spec(traffic: dict[str, object] | None) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": MODEL, **({"traffic": traffic} if traffic else {})})


GATEWAY_SPEC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
ISTIO_SPEC = {"provider": "istio", "istio": {"hosts": ["fraud.ml.example.com"]}}


@pytest.mark.parametrize(("traffic", "kind", "group"), [
    (GATEWAY_SPEC, "HTTPRoute", "gateway.networking.k8s.io"), (ISTIO_SPEC, "VirtualService", "networking.istio.io"),
])
def test_a_route_kind_the_cluster_does_not_serve_is_a_problem(traffic: dict[str, object], kind: str, group: str) -> None:
    s, canary = spec(traffic), CASES["canary"]
    assert route_problems(s, canary, services(canary), ALL_SERVED) == []
    problems = route_problems(s, canary, services(canary), ALL_SERVED - {f"{group}/{kind}"})
    name = str(traffic["provider"])
    assert [str(p) for p in problems] == [
        f"spec.traffic.provider: {name} needs the {kind} CRD ({group}), which this cluster does not serve"
    ]


def test_provider_none_needs_no_crd_but_cannot_mirror() -> None:
    assert route_problems(spec(None), CASES["canary"], services(CASES["canary"]), frozenset()) == []
    problems = route_problems(spec(None), CASES["shadow"], services(CASES["shadow"]), frozenset())
    assert [p.field for p in problems] == ["spec.rollout.steps"]


def test_limits_come_before_crds() -> None:
    """As before: a plan the provider cannot express is reported alone, whatever is served."""
    pins = tuple(PinPlan("header", "x-cohort", f"c{i}", "stable") for i in range(16))
    many = plan({"stable": 100}, pins=pins)
    problems = route_problems(spec(GATEWAY_SPEC), many, services(many), frozenset())
    assert [p.field for p in problems] == ["spec.experiment.match"]


def test_variants_without_a_service_get_no_route() -> None:
    """Variants that run no workload are left out of the route, as the reconciler always did."""
    shadow = CASES["shadow-canary"]
    only = {v: s for v, s in services(shadow).items() if v != "shadow"}
    assert routable(shadow, only) == plan({"stable": 95, "candidate": 5})
    (route,) = render_route(OWNER, spec(GATEWAY_SPEC), shadow, only, LABELS)
    assert [r["name"] for r in route["spec"]["rules"][-1]["backendRefs"]] == [f"{NAME}-stable", f"{NAME}-candidate"]
    assert "filters" not in route["spec"]["rules"][-1]


def test_services_follow_the_workloads() -> None:
    s = spec(None)
    other = s.model.model_copy(update={"port": 8080})
    workloads = [VariantWorkload("stable", s.model, 3), VariantWorkload("candidate", other, 1)]
    assert services_for(OWNER, workloads) == {"stable": ServicePort(f"{NAME}-stable", 3000), "candidate": ServicePort(f"{NAME}-candidate", 8080)}
