"""The none provider: no route object, and problems for what needs a proxy."""

from __future__ import annotations

import pytest

from headway.planning.capabilities import CAPABILITIES
from headway.traffic.none import PROVIDER
from tests.unit.traffic.cases import CASES, TRAFFIC, assert_golden, check, render

NO_TRAFFIC = TRAFFIC["none"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert_golden("none", case, render(PROVIDER, CASES[case], NO_TRAFFIC))


@pytest.mark.parametrize("case", ["steady", "canary", "bake-weight"])
def test_a_weighted_split_is_fine(case: str) -> None:
    assert check(PROVIDER, CASES[case], NO_TRAFFIC) == []


@pytest.mark.parametrize("case", ["shadow", "shadow-canary", "bake-mirror"])
def test_shadow_is_a_problem(case: str) -> None:
    problems = check(PROVIDER, CASES[case], NO_TRAFFIC)
    assert [(p.field, p.message) for p in problems] == [
        ("spec.rollout.steps", "shadow needs a traffic provider that can mirror (gatewayApi or istio); provider none cannot")
    ]


def test_pins_are_a_problem() -> None:
    problems = check(PROVIDER, CASES["experiment"], NO_TRAFFIC)
    assert [(p.field, p.message) for p in problems] == [
        ("spec.experiment.match",
         "header and cookie matches need a traffic provider that can route by request (gatewayApi or istio); provider none cannot")
    ]


def test_no_kinds_and_a_replica_split() -> None:
    assert PROVIDER.name == "none" and PROVIDER.capabilities is CAPABILITIES["none"]
    caps = PROVIDER.capabilities
    assert caps.kinds == () and caps.split == "replicas" and not caps.by_route
    assert not caps.mirror and not caps.pins
