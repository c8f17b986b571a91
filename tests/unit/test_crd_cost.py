"""The generated CRD fits the CEL cost budget a real kube-apiserver (1.30+) enforces at registration.

The server estimates every ``x-kubernetes-validations`` rule's worst-case cost from the bounds
of what it touches, times how many times it can run (the lists and maps around it), and
refuses a rule over 10,000,000 or a schema over 100,000,000 in total. The estimator in
tests/support/celcost.py over-estimates on purpose; we keep to half of each limit so a small
difference between it and the server can never be the difference between accepted and refused.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from headway.sandbox.apiserver.crdschema import load_crd
from tests.support.celcost import (
    CRD_COST_LIMIT,
    MAX_REQUEST_SIZE_BYTES,
    PER_RULE_COST_LIMIT,
    CostEstimateError,
    decl_type,
    estimate_rule,
    estimate_schema,
    unbounded_nodes,
)

ROOT = Path(__file__).resolve().parents[2]
# Every CRD hack/gen_crds.py generates: each is checked here.
CRD_NAMES = ["modeldeployments.serving.headway.dev", "modelapprovals.serving.headway.dev", "rolloutrecords.serving.headway.dev"]
REFUSED_CRD_PATH = ROOT / "tests" / "manifests" / "refused-crd" / "first-version.yaml"

SAFETY = 0.5  # of each limit


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1, "one version: extend these tests when a second one comes"
    return versions[0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _costable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``oldSelf`` read as ``self`` in every rule, for the estimator.

    A transition rule's ``oldSelf`` has the same declared type as ``self`` (apiextensions-apiserver
    compiles both from the node's schema), so its cost estimate is the same as with ``self``; the
    estimator of tests/support/celcost.py knows only ``self``."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations") or []:
                rule["rule"] = re.sub(r"\boldSelf\b", "self", rule["rule"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


@pytest.fixture(scope="module", params=CRD_NAMES)
def schema(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _costable(_schema(load_crd(ROOT / "crds" / f"{request.param}.yaml")))


# --- our CRD -------------------------------------------------------------------------------


def test_every_list_map_and_string_of_the_spec_is_bounded(schema: dict[str, Any]) -> None:
    unbounded = unbounded_nodes(schema["properties"]["spec"], "spec")
    assert not unbounded, "unbounded in the spec (add max_length in operator/headway/api/ (the model that declares it)):\n  " + "\n  ".join(unbounded)


def test_no_cel_rules_under_status(schema: dict[str, Any]) -> None:
    """The operator writes status; rules there would only spend the budget."""
    if "status" not in schema["properties"]:
        return  # a CRD without status (ModelApproval)
    status_rules = [c.path for c in estimate_schema({"type": "object", "properties": {"status": schema["properties"]["status"]}})]
    assert status_rules == []


def test_each_rule_is_well_under_the_per_rule_limit(schema: dict[str, Any]) -> None:
    costs = estimate_schema(schema)
    assert costs, "no rules found: is the CRD generated?"
    report = "\n".join(c.describe() for c in sorted(costs, key=lambda c: -c.total))
    print(report)
    too_costly = [c for c in costs if c.total > SAFETY * PER_RULE_COST_LIMIT]
    assert not too_costly, f"rules over {SAFETY:.0%} of the per-rule limit:\n" + "\n".join(c.describe() for c in too_costly)
    unbounded = [c for c in costs if not c.bounded]
    assert not unbounded, "rules under an unbounded list or map:\n" + "\n".join(c.describe() for c in unbounded)


def test_the_sum_is_well_under_the_whole_schema_limit(schema: dict[str, Any]) -> None:
    costs = estimate_schema(schema)
    total = sum(c.total for c in costs)
    top = "\n".join(c.describe() for c in sorted(costs, key=lambda c: -c.total)[:5])
    print(f"total {total:,} = {100 * total / CRD_COST_LIMIT:.3f}% of {CRD_COST_LIMIT:,}")
    assert total <= SAFETY * CRD_COST_LIMIT, f"total {total:,} is over {SAFETY:.0%} of {CRD_COST_LIMIT:,}; the largest:\n{top}"


@pytest.mark.parametrize("name", CRD_NAMES)
def test_the_chart_ships_the_same_crd(name: str) -> None:
    chart_crd = ROOT / "charts" / "headway" / "crds" / f"{name}.yaml"
    assert chart_crd.read_text() == (ROOT / "crds" / f"{name}.yaml").read_text(), "run python hack/gen_crds.py"


def test_every_generated_crd_is_checked_here() -> None:
    assert sorted(p.stem for p in (ROOT / "crds").glob("*.yaml")) == sorted(CRD_NAMES)


def test_the_approval_crds_transition_rule_is_costed_like_self() -> None:
    """ModelApproval's immutability rule (self == oldSelf on spec): the estimator sees self == self,
    bounded by the spec's string bounds, and it is the CRD's only rule."""
    raw = _schema(load_crd(ROOT / "crds" / "modelapprovals.serving.headway.dev.yaml"))
    assert [r["rule"] for r in raw["properties"]["spec"]["x-kubernetes-validations"]] == ["self == oldSelf"]
    (cost,) = estimate_schema(_costable(raw))
    assert cost.path == "spec" and cost.rule == "self == self" and cost.bounded
    assert cost.total < 0.001 * PER_RULE_COST_LIMIT, cost.describe()
    assert unbounded_nodes(raw["properties"]["spec"], "spec") == []


# --- the estimator finds what the server found -------------------------------------------


def test_the_estimator_finds_at_least_what_a_real_server_refused_in_the_first_crd() -> None:
    """kube-apiserver v1.36 refused the first CRD: the env valueFrom rule at 5.6x the per-rule
    limit (four places) and the whole schema at 2.3x. A conservative estimate finds no less."""
    costs = estimate_schema(_schema(load_crd(REFUSED_CRD_PATH)))
    value_from = [c for c in costs if c.path.endswith("env[*].valueFrom")]
    assert sorted(c.path for c in value_from) == [
        "spec.experiment.variants[*].model.env[*].valueFrom",
        "spec.model.env[*].valueFrom",
        "status.previousModel.env[*].valueFrom",
        "status.stableModel.env[*].valueFrom",
    ]
    for c in value_from:
        assert c.total >= 5.6 * PER_RULE_COST_LIMIT, c.describe()
        # ... and not wildly more: the estimate stays useful (the server said 5.6x).
        assert c.total <= 8 * PER_RULE_COST_LIMIT, c.describe()
    over = [c for c in costs if c.total > PER_RULE_COST_LIMIT]
    assert {c.path for c in over} == {c.path for c in value_from}, "\n".join(c.describe() for c in over)
    total = sum(c.total for c in costs)
    assert 2.3 * CRD_COST_LIMIT <= total <= 3.5 * CRD_COST_LIMIT, f"total {total:,}"


def _list_of(items: dict[str, Any], **bounds: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"things": {"type": "array", "items": items, **bounds}}}


ONE_OF_TWO = {
    "type": "object",
    "properties": {"a": {"type": "string", "maxLength": 10}, "b": {"type": "string", "maxLength": 10}},
    "x-kubernetes-validations": [{"rule": "[has(self.a), has(self.b)].filter(x, x).size() == 1", "message": "one"}],
}


def test_an_unbounded_list_of_objects_with_a_rule_is_over_the_limit() -> None:
    costs = estimate_schema(_list_of(ONE_OF_TWO))
    (cost,) = costs
    assert not cost.bounded
    # {} is the smallest item: 3 MiB / 3 of them.
    assert cost.cardinality == MAX_REQUEST_SIZE_BYTES // 3
    assert cost.total > PER_RULE_COST_LIMIT, cost.describe()
    assert unbounded_nodes(_list_of(ONE_OF_TWO)) == ["things: list without maxItems"]


def test_the_same_list_bounded_is_cheap() -> None:
    (cost,) = estimate_schema(_list_of(ONE_OF_TWO, maxItems=100))
    assert cost.bounded and cost.cardinality == 100
    assert cost.total < 0.01 * PER_RULE_COST_LIMIT


def test_cardinalities_multiply_through_nested_lists_and_maps() -> None:
    inner = {"type": "object", "additionalProperties": ONE_OF_TWO, "maxProperties": 7}
    (cost,) = estimate_schema(_list_of(inner, maxItems=3))
    assert cost.cardinality == 21
    (cost,) = estimate_schema(_list_of({"type": "object", "additionalProperties": ONE_OF_TWO}, maxItems=3))
    assert not cost.bounded


def test_a_rule_over_an_unbounded_string_is_over_the_limit() -> None:
    schema = {
        "type": "object",
        "properties": {"names": {"type": "array", "maxItems": 100, "items": {"type": "string"}}},
        "x-kubernetes-validations": [{"rule": "self.names.all(n, n.matches('^[a-z]+$'))", "message": "lowercase"}],
    }
    (cost,) = estimate_schema(schema)
    assert cost.total > PER_RULE_COST_LIMIT, cost.describe()
    schema["properties"]["names"]["items"]["maxLength"] = 63
    (cost,) = estimate_schema(schema)
    assert cost.total < 0.01 * PER_RULE_COST_LIMIT, cost.describe()


def test_string_sizes_are_bytes_like_the_servers() -> None:
    assert decl_type({"type": "string", "maxLength": 63}).max_size == 252
    assert decl_type({"type": "string"}).max_size == MAX_REQUEST_SIZE_BYTES - 2
    assert decl_type({"type": "array", "items": {"type": "integer"}}).max_size == (MAX_REQUEST_SIZE_BYTES - 2) // 2


@pytest.mark.parametrize(
    ("rule", "at_least"),
    [
        ("true", 0),
        ("self.n > 1", 3),
        ("has(self.s)", 2),
        ("self.s == 'abc'", 3),  # 'abc' is the shorter side: ceil(3 * 0.1) = 1, plus self.s = 2
        ("self.l.all(x, x > 0)", 10 * 3),
        ("self.l.exists(x, self.l.exists(y, x == y))", 10 * 10 * 3),
        ("self.l.sum() == 3", 10),
    ],
)
def test_rule_costs_are_no_lower_than_cel_go_would_say(rule: str, at_least: int) -> None:
    self_type = decl_type(
        {
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "s": {"type": "string", "maxLength": 100},
                "l": {"type": "array", "maxItems": 10, "items": {"type": "integer"}},
            },
        }
    )
    assert estimate_rule(rule, self_type) >= at_least


def test_an_unknown_function_or_field_is_an_error_not_a_zero() -> None:
    self_type = decl_type({"type": "object", "properties": {"s": {"type": "string", "maxLength": 1}}})
    with pytest.raises(CostEstimateError, match="no cost model"):
        estimate_rule("self.s.frobnicate()", self_type)
    with pytest.raises(CostEstimateError, match="no field"):
        estimate_rule("has(self.t)", self_type)
