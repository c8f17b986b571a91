"""The istio provider: golden VirtualServices, schema validity, and what it refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from headway.api.spec import Traffic
from headway.planning.traffic_plan import PinPlan
from headway.sandbox.apiserver.crdschema import load_crd, validate
from headway.traffic.gatewayapi import cookie_regex
from headway.traffic.istio import PROVIDER
from tests.unit.traffic.cases import CASES, OWNER, TRAFFIC, VIRTUALSERVICE_CRD, assert_golden, check, plan, render as render_with

ISTIO = TRAFFIC["istio"]
FQDN = "fraud-scorer-{}.ml.svc.cluster.local"


def render(case: str) -> list[dict[str, Any]]:
    return render_with(PROVIDER, CASES[case], ISTIO)


def http(case: str) -> list[dict[str, Any]]:
    return render(case)[0]["spec"]["http"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load_crd(VIRTUALSERVICE_CRD)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert check(PROVIDER, CASES[case], ISTIO) == []
    assert_golden("istio", case, render(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_virtualservice_is_valid_against_the_published_crd(case: str, crd: dict[str, Any]) -> None:
    (vs,) = render(case)
    assert validate(vs, crd, "v1") == []


# --- the schema validation is real: malformed VirtualServices are rejected ------------


def _weight_as_string(vs: dict[str, Any]) -> None:
    vs["spec"]["http"][-1]["route"][0]["weight"] = "95"


def _destination_without_host(vs: dict[str, Any]) -> None:
    del vs["spec"]["http"][-1]["route"][0]["destination"]["host"]


def _exact_and_regex(vs: dict[str, Any]) -> None:  # a oneOf in the schema
    vs["spec"]["http"][0]["match"][0]["headers"]["x-cohort"]["regex"] = ".*"


def _mirror_percentage_as_string(vs: dict[str, Any]) -> None:
    vs["spec"]["http"][-1]["mirrorPercentage"] = {"value": "fifty"}


def _port_out_of_range(vs: dict[str, Any]) -> None:
    vs["spec"]["http"][-1]["route"][0]["destination"]["port"]["number"] = -1


@pytest.mark.parametrize(
    ("breaks", "error"),
    [
        (_weight_as_string, "route[0].weight in body must be of type integer"),
        (_destination_without_host, "route[0].destination.host: Required value"),
        (_exact_and_regex, "must validate one and only one schema (oneOf)"),
        (_mirror_percentage_as_string, "mirrorPercentage.value in body must be of type number"),
        (_port_out_of_range, "port.number: Invalid value: -1"),
    ],
)
def test_the_schema_rejects_a_malformed_virtualservice(breaks: Any, error: str, crd: dict[str, Any]) -> None:
    vs = copy.deepcopy(render("experiment")[0])
    vs["spec"]["http"][-1]["mirrorPercentage"] = {"value": 50.0}
    vs["spec"]["http"][-1]["mirror"] = {"host": FQDN.format("control"), "port": {"number": 3000}}
    assert validate(vs, crd, "v1") == []
    breaks(vs)
    errors = validate(vs, crd, "v1")
    assert any(error in e for e in errors), errors


# --- what the VirtualService says ------------------------------------------------------


def test_metadata_and_settings() -> None:
    (vs,) = render("canary")
    assert (vs["apiVersion"], vs["kind"]) == ("networking.istio.io/v1", "VirtualService")
    assert (vs["metadata"]["name"], vs["metadata"]["namespace"]) == ("fraud-scorer", "ml")
    assert vs["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert vs["spec"]["hosts"] == ["fraud.ml.example.com"]
    assert vs["spec"]["gateways"] == ["gateways/inference"]


def test_mesh_only_without_gateways() -> None:
    traffic = Traffic.model_validate({"provider": "istio", "istio": {"hosts": ["fraud-scorer.ml.svc.cluster.local"]}})
    (vs,) = render_with(PROVIDER, CASES["steady"], traffic)
    assert "gateways" not in vs["spec"]


def test_weighted_destinations_are_service_fqdns_with_ports() -> None:
    (weighted,) = http("canary")
    assert weighted["route"] == [
        {"destination": {"host": FQDN.format("stable"), "port": {"number": 3000}}, "weight": 95},
        {"destination": {"host": FQDN.format("candidate"), "port": {"number": 3000}}, "weight": 5},
    ]


def test_shadow_mirrors_with_a_float_percentage_and_keeps_weight_0() -> None:
    (weighted,) = http("shadow")
    assert weighted["mirror"] == {"host": FQDN.format("candidate"), "port": {"number": 3000}}
    assert weighted["mirrorPercentage"] == {"value": 50.0}
    assert isinstance(weighted["mirrorPercentage"]["value"], float)
    assert [r["weight"] for r in weighted["route"]] == [100, 0]


def test_experiment_pins_come_first() -> None:
    header, cookie, weighted = http("experiment")
    assert header == {"name": "pin-1", "match": [{"headers": {"x-cohort": {"exact": "treatment-a"}}}], "route": [{"destination": {"host": FQDN.format("treatment-a"), "port": {"number": 3000}}}]}
    assert cookie["match"] == [{"headers": {"cookie": {"regex": cookie_regex("hw-variant", "treatment-b")}}}]
    assert "match" not in weighted and weighted["name"] == "weighted"


def test_header_names_are_lower_cased() -> None:
    pins = (PinPlan(kind="header", name="X-Cohort", value="beta", variant="stable"),)
    (vs,) = render_with(PROVIDER, plan({"stable": 100}, pins=pins), ISTIO)
    assert vs["spec"]["http"][0]["match"] == [{"headers": {"x-cohort": {"exact": "beta"}}}]


# --- what it refuses -----------------------------------------------------------------


def test_missing_settings_are_a_problem_and_render_refuses() -> None:
    for t in (Traffic.model_construct(provider="istio"), None):
        assert [p.field for p in check(PROVIDER, CASES["steady"], t)] == ["spec.traffic.istio"]
        with pytest.raises(ValueError, match="spec.traffic.istio"):
            render_with(PROVIDER, CASES["steady"], t)


def test_pseudo_headers_cannot_be_pinned_on() -> None:
    pins = (PinPlan(kind="header", name="Method", value="POST", variant="stable"),)
    assert [p.field for p in check(PROVIDER, plan({"stable": 100}, pins=pins), ISTIO)] == ["spec.experiment.match[0]"]
