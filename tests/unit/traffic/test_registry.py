"""Choosing a provider, the kinds for cleanup, and the intent checks every provider runs."""

from __future__ import annotations

import dataclasses

import pytest

from headway.api.spec import Traffic
from headway.traffic import gatewayapi, istio, none
from headway.traffic.base import Pin, RouteIntent, TrafficProvider
from headway.traffic.registry import ALL_KINDS, PROVIDERS, provider_for
from tests.unit.traffic.cases import CASES, TRAFFIC, backend, intent, mirror


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


def test_all_kinds_cover_every_provider() -> None:
    assert {(k.group, k.version, k.plural, k.kind) for k in ALL_KINDS} == {
        ("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
        ("networking.istio.io", "v1", "virtualservices", "VirtualService"),
    }
    for provider in PROVIDERS.values():
        assert set(provider.kinds) <= set(ALL_KINDS)
        for obj in provider.render(CASES["canary"], TRAFFIC[provider.name]):
            assert any(obj["apiVersion"] == f"{k.group}/{k.version}" and obj["kind"] == k.kind for k in provider.kinds)


# --- every provider validates the intent itself ----------------------------------------

STABLE, CANDIDATE = backend("stable", 100), backend("candidate", 0)
BAD_INTENTS: dict[str, tuple[RouteIntent, str]] = {
    "weights sum to 90": (intent(backend("stable", 90), backend("candidate", 0)), "status.traffic"),
    "all weights zero": (intent(backend("stable", 0), backend("candidate", 0)), "status.traffic"),
    "weight over 100": (intent(backend("stable", 110), backend("candidate", -10)), "status.traffic"),
    "no backends": (intent(), "status.traffic"),
    "variant twice": (intent(backend("stable", 50), backend("stable", 50)), "status.traffic"),
    "bad port": (intent(dataclasses.replace(STABLE, port=0)), "status.traffic"),
    "bad service name": (intent(dataclasses.replace(STABLE, service="Fraud_Scorer")), "status.traffic"),
    "mirror to an unknown variant": (intent(STABLE, mirror=mirror("shadow", 50)), "spec.rollout.steps"),
    "mirror to a variant with live traffic": (intent(backend("stable", 95), backend("candidate", 5), mirror=mirror("candidate", 50)), "spec.rollout.steps"),
    "mirror percent 0": (intent(STABLE, CANDIDATE, mirror=mirror("candidate", 0)), "spec.rollout.steps"),
    "mirror to another service": (intent(STABLE, CANDIDATE, mirror=dataclasses.replace(mirror("candidate", 50), service="elsewhere")), "spec.rollout.steps"),
    "pin to an unknown variant": (intent(STABLE, pins=(Pin("header", "x-cohort", "a", "treatment"),)), "spec.experiment.match[0]"),
    "empty header value": (intent(STABLE, pins=(Pin("header", "x-cohort", "", "stable"),)), "spec.experiment.match[0]"),
    "header name not a token": (intent(STABLE, pins=(Pin("header", "x cohort", "a", "stable"),)), "spec.experiment.match[0]"),
    "cookie value with a semicolon": (intent(STABLE, pins=(Pin("cookie", "hw", "a;b", "stable"),)), "spec.experiment.match[0]"),
    "cookie name with =": (intent(STABLE, pins=(Pin("cookie", "hw=x", "a", "stable"),)), "spec.experiment.match[0]"),
    "the same match twice": (
        intent(STABLE, CANDIDATE, pins=(Pin("header", "X-Cohort", "a", "stable"), Pin("header", "x-cohort", "a", "candidate"))),
        "spec.experiment.match[1]",
    ),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("bad", sorted(BAD_INTENTS))
def test_every_provider_refuses_an_inconsistent_intent(provider: str, bad: str) -> None:
    broken, field = BAD_INTENTS[bad]
    p = PROVIDERS[provider]
    fields = [problem.field for problem in p.check(broken, TRAFFIC[provider])]
    assert field in fields
    if p.kinds:  # a provider that renders objects refuses to render a refused intent
        with pytest.raises(ValueError):
            p.render(broken, TRAFFIC[provider])
