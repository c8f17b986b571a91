"""The gatewayApi provider: golden HTTPRoutes, schema validity, and what it refuses."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from headway.api.spec import Traffic
from headway.planning.traffic_plan import PinPlan
from headway.sandbox.apiserver.crdschema import load_crd, validate
from headway.traffic.gatewayapi import PROVIDER, cookie_regex
from tests.unit.traffic.cases import CASES, HTTPROUTE_CRDS, LABELS, OWNER, TRAFFIC, assert_golden, check, plan, render as render_with, services

GATEWAY = TRAFFIC["gatewayApi"]


def render(case: str) -> list[dict[str, Any]]:
    return render_with(PROVIDER, CASES[case], GATEWAY)


def rules(case: str) -> list[dict[str, Any]]:
    return render(case)[0]["spec"]["rules"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=sorted(HTTPROUTE_CRDS))
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_crd(HTTPROUTE_CRDS[request.param])


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert check(PROVIDER, CASES[case], GATEWAY) == []
    assert_golden("gatewayApi", case, render(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_route_is_valid_against_the_published_crd(case: str, crd: dict[str, Any]) -> None:
    (route,) = render(case)
    assert validate(route, crd, "v1") == []


# --- the schema validation is real: malformed routes are rejected -------------------


def _shadow_route() -> dict[str, Any]:
    return copy.deepcopy(render("shadow")[0])


def _mirror(route: dict[str, Any]) -> dict[str, Any]:
    return route["spec"]["rules"][-1]["filters"][0]["requestMirror"]  # type: ignore[no-any-return]


def _percent_101(route: dict[str, Any]) -> None:
    _mirror(route)["percent"] = 101


def _weight_minus_1(route: dict[str, Any]) -> None:
    route["spec"]["rules"][-1]["backendRefs"][0]["weight"] = -1


def _percent_and_fraction(route: dict[str, Any]) -> None:  # a CEL rule, not a structural one
    _mirror(route)["fraction"] = {"numerator": 1, "denominator": 2}


def _service_ref_without_port(route: dict[str, Any]) -> None:  # a CEL rule
    del route["spec"]["rules"][-1]["backendRefs"][0]["port"]


def _mirror_type_mismatch(route: dict[str, Any]) -> None:  # a CEL rule
    route["spec"]["rules"][-1]["filters"][0]["type"] = "URLRewrite"


def _bad_hostname(route: dict[str, Any]) -> None:
    route["spec"]["hostnames"] = ["Fraud.Example.com"]


def _seventeen_rules(route: dict[str, Any]) -> None:
    route["spec"]["rules"] = route["spec"]["rules"] * 17


@pytest.mark.parametrize(
    ("breaks", "error"),
    [
        (_percent_101, "requestMirror.percent: Invalid value: 101"),
        (_weight_minus_1, "backendRefs[0].weight: Invalid value: -1"),
        (_percent_and_fraction, "Only one of percent or fraction may be specified"),
        (_service_ref_without_port, "Must have port for Service reference"),
        (_mirror_type_mismatch, "filter.requestMirror must be nil if the filter.type is not RequestMirror"),
        (_bad_hostname, "spec.hostnames[0]: Invalid value"),
        (_seventeen_rules, "spec.rules: Too many: 17"),
    ],
)
def test_the_schema_rejects_a_malformed_route(breaks: Any, error: str, crd: dict[str, Any]) -> None:
    route = _shadow_route()
    assert validate(route, crd, "v1") == []
    breaks(route)
    errors = validate(route, crd, "v1")
    assert any(error in e for e in errors), errors


# --- what the route says -------------------------------------------------------------


def test_metadata_names_the_route_after_the_model_deployment() -> None:
    (route,) = render("canary")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    meta = route["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fraud-scorer", "ml")
    assert meta["labels"] == LABELS
    assert meta["ownerReferences"] == [OWNER.reference()]
    labels = dict(LABELS)
    (route,) = PROVIDER.render(OWNER, CASES["canary"], services(CASES["canary"]), labels, GATEWAY)
    assert route["metadata"]["labels"] is not labels  # a copy, not an alias


def test_weight_0_backends_are_kept_with_weight_0() -> None:
    (default,) = rules("shadow")
    assert [(r["name"], r["weight"]) for r in default["backendRefs"]] == [("fraud-scorer-stable", 100), ("fraud-scorer-candidate", 0)]


def test_shadow_mirrors_on_the_default_rule() -> None:
    (default,) = rules("shadow")
    assert default["filters"] == [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "fraud-scorer-candidate", "port": 3000}, "percent": 50}}
    ]


def test_mirroring_everything_leaves_percent_out() -> None:
    route = render_with(PROVIDER, plan({"stable": 100, "candidate": 0}, mirror=("candidate", 100)), GATEWAY)[0]
    assert route["spec"]["rules"][-1]["filters"][0]["requestMirror"] == {"backendRef": {"name": "fraud-scorer-candidate", "port": 3000}}


def test_pins_come_first_in_order_with_one_backend_and_no_mirror() -> None:
    pins = (
        PinPlan(kind="header", name="x-cohort", value="a", variant="stable"),
        PinPlan(kind="cookie", name="hw", value="b", variant="stable"),
    )
    route = render_with(PROVIDER, plan({"stable": 100, "shadow": 0}, mirror=("shadow", 10), pins=pins), GATEWAY)[0]
    pinned, pinned_cookie, default = route["spec"]["rules"]
    assert pinned["matches"][0]["headers"] == [{"type": "Exact", "name": "x-cohort", "value": "a"}]
    assert pinned_cookie["matches"][0]["headers"][0]["name"] == "Cookie"
    for rule in (pinned, pinned_cookie):
        assert rule["backendRefs"] == [{"name": "fraud-scorer-stable", "port": 3000}]
        assert "filters" not in rule
    assert "filters" in default and "headers" not in default["matches"][0]


def test_experiment_rules() -> None:
    header, cookie, default = rules("experiment")
    assert header["backendRefs"] == [{"name": "fraud-scorer-treatment-a", "port": 3000}]
    assert cookie["matches"][0]["headers"] == [{"type": "RegularExpression", "name": "Cookie", "value": cookie_regex("hw-variant", "treatment-b")}]
    assert cookie["backendRefs"] == [{"name": "fraud-scorer-treatment-b", "port": 3000}]
    assert [r["weight"] for r in default["backendRefs"]] == [50, 30, 20]


def test_settings_reach_the_route() -> None:
    traffic = Traffic.model_validate(
        {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "gw", "sectionName": "https", "port": 443}], "pathPrefix": "/v1/score"}}
    )
    (route,) = render_with(PROVIDER, CASES["experiment"], traffic)
    assert route["spec"]["parentRefs"] == [{"name": "gw", "sectionName": "https", "port": 443}]
    assert "hostnames" not in route["spec"]
    assert all(r["matches"][0]["path"] == {"type": "PathPrefix", "value": "/v1/score"} for r in route["spec"]["rules"])


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ("hw-variant=treatment-b", True),
        ("a=1; hw-variant=treatment-b", True),
        ("a=1; hw-variant=treatment-b; c=2", True),
        ("hw-variant=treatment-b;c=2", True),
        ("xhw-variant=treatment-b", False),
        ("hw-variant=treatment-b2", False),
        ("hw-variant=treatment-", False),
        ("a=hw-variant=treatment-b", False),
        ("hw-variant=control; other=treatment-b", False),
    ],
)
def test_cookie_regex_matches_the_cookie_among_others(header: str, matches: bool) -> None:
    regex = cookie_regex("hw-variant", "treatment-b")
    # Anchored: full-match (Envoy) and search semantics agree.
    assert bool(re.fullmatch(regex, header)) is matches
    assert bool(re.search(regex, header)) is matches


def test_cookie_regex_escapes_special_characters() -> None:
    regex = cookie_regex("v", "1.0+a(b)")
    assert regex == r"^(.*; *)?v=1\.0\+a\(b\)(;.*)?$"
    assert re.fullmatch(regex, "v=1.0+a(b)") and not re.fullmatch(regex, "v=1x0+a(b)")


# --- what it refuses -----------------------------------------------------------------


def test_missing_settings_are_a_problem_and_render_refuses() -> None:
    traffic = Traffic.model_construct(provider="gatewayApi")
    for t in (traffic, None):
        assert [p.field for p in check(PROVIDER, CASES["steady"], t)] == ["spec.traffic.gatewayApi"]
        with pytest.raises(ValueError, match="spec.traffic.gatewayApi"):
            render_with(PROVIDER, CASES["steady"], t)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"pathPrefix": "/a//b"}, "spec.traffic.gatewayApi.pathPrefix"),
        ({"pathPrefix": "/a/.."}, "spec.traffic.gatewayApi.pathPrefix"),
        ({"pathPrefix": "/a b"}, "spec.traffic.gatewayApi.pathPrefix"),
        ({"hostnames": ["ok.example.com", "Not_A.Host"]}, "spec.traffic.gatewayApi.hostnames[1]"),
    ],
)
def test_settings_the_gateway_api_would_reject_are_problems(settings: dict[str, Any], field: str) -> None:
    traffic = Traffic.model_validate({"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "gw"}], **settings}})
    assert [p.field for p in check(PROVIDER, CASES["steady"], traffic)] == [field]


def test_at_most_15_pins_fit_in_an_httproute() -> None:
    pins = tuple(PinPlan(kind="header", name="x-cohort", value=f"c{i}", variant="stable") for i in range(16))
    problems = check(PROVIDER, plan({"stable": 100}, pins=pins[:15]), GATEWAY)
    assert problems == []
    problems = check(PROVIDER, plan({"stable": 100}, pins=pins), GATEWAY)
    assert [p.field for p in problems] == ["spec.experiment.match"]


def test_at_most_16_backend_refs_fit_in_a_rule() -> None:
    weights = {f"v{i}": 0 for i in range(17)} | {"v0": 100}
    assert [p.field for p in check(PROVIDER, plan(weights), GATEWAY)] == ["status.traffic"]
    del weights["v16"]
    assert check(PROVIDER, plan(weights), GATEWAY) == []
