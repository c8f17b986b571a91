"""Cost and budgets: the arithmetic by hand, the WithinBudget condition and its Events, the
enforce cap, cost per 1,000 predictions from a measurement, and the rollout hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from headway.api.analysis_spec import SeriesLabels
from headway.api.serving import Autoscaling, Resources
from headway.api.spec import ModelDeploymentSpec, ModelSpec
from headway.api.status import CostStatus, ModelDeploymentStatus, VariantCost, VariantStatus
from headway.planning.cost import NO_PRICE_TABLE, Prices, assess_cost, cost_increase_hold, max_replicas_cap, pod_hourly
from headway.planning.derive import Decision, derive_status
from headway.planning.measure import Judgement, Measurement, MeasureRequest
from headway.planning.naming import CANDIDATE, STABLE, Owner, ScalerBounds, VariantWorkload, revision_of
from headway.planning.observe import DeploymentState, parse_status
from headway.planning.plan import Observation, plan
from headway.planning.strategy import Sections, StrategyResult
from headway.planning.verdict_types import RequestCounts, VariantData, Verdict

OWNER = Owner("fraud-scorer", "ml", "uid-1")
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
MODEL = {"bento": "fraud_scorer:3.2.0", "image": "registry.example.com/fraud-scorer:3.2.0"}
NEW_MODEL = {"bento": "fraud_scorer:3.3.0", "image": "registry.example.com/fraud-scorer:3.3.0"}
PRICES = Prices(vcpu_hour=0.05, gib_hour=0.01, gpu_hour=2.5, currency="EUR")
# One pod: 1 vCPU x 0.05 + 4 GiB x 0.01 = 0.05 + 0.04 = 0.09 EUR an hour; a month (730 h) of it is 65.70 EUR.
RESOURCES = {"requests": {"cpu": "1", "memory": "4Gi"}}
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 10, "metrics": [{"cpu": {"averageUtilization": 70}}]}


def spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": MODEL, "resources": RESOURCES, **fields})


def scaled(variant: str = STABLE, model: dict[str, str] = MODEL, lo: int = 2, hi: int = 10) -> VariantWorkload:
    # the version's autoscaling; ``hi`` below its maxReplicas is a budget cap the planner applied
    settings = Autoscaling.model_validate({**AUTOSCALING, "maxReplicas": max(hi, AUTOSCALING["maxReplicas"])})
    return VariantWorkload(variant, ModelSpec.model_validate(model), lo, ScalerBounds("hpa", lo, hi, settings))


def live(**replicas: int) -> dict[str, DeploymentState]:
    return {name: DeploymentState(exists=True, replicas=n) for name, n in replicas.items()}


# --- quantities and one pod's price -------------------------------------------------------

@pytest.mark.parametrize("resources, hourly", [
    ({"requests": {"cpu": "500m", "memory": "2Gi"}}, 0.5 * 0.05 + 2 * 0.01),  # 0.025 + 0.02 = 0.045
    ({"requests": {"cpu": "1.5", "memory": "512Mi"}}, 1.5 * 0.05 + 0.5 * 0.01),  # 0.075 + 0.005 = 0.08
    ({"requests": {"cpu": 2}, "limits": {"memory": "4Gi"}}, 2 * 0.05 + 4 * 0.01),  # no memory request: the limit
    ({"requests": {"cpu": "250m"}, "limits": {"cpu": "4", "memory": "1Gi"}}, 0.25 * 0.05 + 1 * 0.01),  # a request wins over a limit
    ({"requests": {"cpu": "1", "memory": "4Gi"}, "gpus": 2}, 0.05 + 0.04 + 2 * 2.5),  # GPUs: 5.09
    ({}, 0.0),  # nothing requested nor limited: nothing priced
])
def test_pod_hourly_prices_requests_then_limits(resources: dict[str, Any], hourly: float) -> None:
    assert float(pod_hourly(Resources.model_validate(resources), PRICES)) == pytest.approx(hourly, abs=1e-12)


def test_pod_hourly_is_exact() -> None:
    # 0.5 x 0.05 + 2 x 0.01 = 0.045 exactly, not 0.045000000000000005
    assert pod_hourly(Resources.model_validate({"requests": {"cpu": "500m", "memory": "2Gi"}}), PRICES) == Decimal("0.045")


def test_prices_stay_importable_from_the_operator_config() -> None:
    from headway import config
    assert config.Prices is Prices
    assert not Prices().configured and PRICES.configured


# --- status.cost of a steady model, through plan() ---------------------------------------

def steady(raw_spec: dict[str, Any], previous: ModelDeploymentStatus | None = None, prices: Prices | None = PRICES,
           replicas: int = 3) -> Any:
    states = {STABLE: DeploymentState(exists=True, revision=revision_of(ModelSpec.model_validate(MODEL)), replicas=replicas,
                                      ready_replicas=replicas, available_replicas=replicas, current_available=replicas,
                                      available=True, complete=True)}
    obs = Observation(raw_spec=raw_spec, generation=1, annotations={}, previous=previous or ModelDeploymentStatus(), live=states,
                      prices=prices)
    return plan(OWNER, obs, T0)


def test_fixed_replicas_cost_now_at_max_and_monthly() -> None:
    result = steady({"model": MODEL, "resources": RESOURCES, "replicas": 3})
    cost = result.status.cost
    # 3 pods x 0.09 = 0.27 an hour, now and at most; 0.27 x 730 = 197.10 a month.
    assert cost == CostStatus(currency="EUR", hourly=0.27, hourly_at_max=0.27, monthly_projected=197.1, monthly_at_max=197.1,
                              variants=[VariantCost(name=STABLE, replicas=3, hourly=0.27, hourly_at_max=0.27)])
    assert "WithinBudget" not in {c.type for c in result.status.conditions}  # no budget, no condition
    assert parse_status(result.status.dump()) == result.status


def test_budget_is_no_longer_reported_as_not_acted_on() -> None:
    result = steady({"model": MODEL, "resources": RESOURCES, "replicas": 3, "cost": {"monthlyBudget": 300}})
    assert "spec.cost.monthlyBudget" not in result.status.ignored_fields


def test_over_budget_condition_and_one_event_per_change() -> None:
    raw = {"model": MODEL, "resources": RESOURCES, "replicas": 3, "cost": {"monthlyBudget": 150}}
    first = steady(raw)
    condition = next(c for c in first.status.conditions if c.type == "WithinBudget")
    # 197.10 a month against 150: over by 47.10, 31% of the budget (47.1 / 150 = 0.314).
    assert (condition.status, condition.reason) == ("False", "OverBudget")
    assert "197.10 EUR" in condition.message and "150.00 EUR" in condition.message and "by 47.10 EUR (31%)" in condition.message
    assert "never scales serving below its replicas" in condition.message
    assert first.status.cost is not None and first.status.cost.over_budget_by == pytest.approx(47.1)
    assert first.status.cost.monthly_budget == 150.0
    assert [(e.type, e.reason) for e in first.events if "Budget" in e.reason] == [("Warning", "OverBudget")]
    assert parse_status(first.status.dump()) == first.status
    again = steady(raw, parse_status(first.status.dump()))
    assert [e for e in again.events if "Budget" in e.reason] == []  # not every reconcile
    assert again.status.conditions == first.status.conditions
    raised = steady({**raw, "cost": {"monthlyBudget": 200}}, parse_status(again.status.dump()))
    condition = next(c for c in raised.status.conditions if c.type == "WithinBudget")
    assert (condition.status, condition.reason) == ("True", "WithinBudget")
    assert "(2.90 EUR left)" in condition.message  # 200 - 197.10
    assert [(e.type, e.reason) for e in raised.events if "Budget" in e.reason] == [("Normal", "WithinBudget")]
    assert raised.status.cost is not None and raised.status.cost.over_budget_by is None


def test_without_a_price_table_no_cost_and_the_budget_is_unknown() -> None:
    for prices in (None, Prices()):
        result = steady({"model": MODEL, "resources": RESOURCES, "replicas": 3, "cost": {"monthlyBudget": 150}}, prices=prices)
        assert result.status.cost is None
        condition = next(c for c in result.status.conditions if c.type == "WithinBudget")
        assert (condition.status, condition.reason, condition.message) == ("Unknown", "NoPriceTable", NO_PRICE_TABLE)
        assert "prices.vcpuHour" in condition.message and "prices.currency" in condition.message
        assert not [e for e in result.events if "Budget" in e.reason]
    plain = steady({"model": MODEL, "resources": RESOURCES, "replicas": 3}, prices=None)
    assert plain.status.cost is None and "WithinBudget" not in {c.type for c in plain.status.conditions}


def test_an_invalid_spec_keeps_the_last_cost_and_condition() -> None:
    first = steady({"model": MODEL, "resources": RESOURCES, "replicas": 3, "cost": {"monthlyBudget": 150}})
    broken = steady({"model": MODEL, "resources": {"requests": {"cpu": "lots"}}, "replicas": 3, "cost": {"monthlyBudget": 1}},
                    parse_status(first.status.dump()))
    assert broken.status.problems
    assert broken.status.cost == first.status.cost
    assert [c for c in broken.status.conditions if c.type == "WithinBudget"] == [c for c in first.status.conditions if c.type == "WithinBudget"]


# --- scaled variants, budgets and enforce -------------------------------------------------

def test_scaled_variant_costs_its_replicas_now_and_its_max() -> None:
    cost, condition = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, [scaled()], live(stable=4), (), ModelDeploymentStatus(), None)
    assert condition is None and cost is not None
    # now 4 x 0.09 = 0.36 an hour (262.80 a month); at maxReplicas 10 x 0.09 = 0.90 an hour (657.00 a month)
    assert (cost.hourly, cost.hourly_at_max, cost.monthly_projected, cost.monthly_at_max) == (0.36, 0.9, 262.8, 657.0)


def test_over_budget_without_enforce_says_by_how_much() -> None:
    s = spec(autoscaling=AUTOSCALING, cost={"monthlyBudget": 500})
    cost, condition = assess_cost(s, PRICES, [scaled()], live(stable=4), (), ModelDeploymentStatus(), None)
    assert condition is not None and condition[:2] == ("False", "OverBudget")
    # 657.00 - 500.00 = 157.00, 31% (157 / 500 = 0.314)
    assert "657.00 EUR a month at maxReplicas (10 per variant) exceeds the monthly budget of 500.00 EUR by 157.00 EUR (31%)" in condition[2]
    assert "spec.cost.enforce" in condition[2]
    assert cost is not None and cost.over_budget_by == 157.0 and cost.capped_max_replicas is None
    assert max_replicas_cap(s, PRICES, [scaled()]) is None  # not enforced: nothing capped


def test_enforce_caps_max_replicas_to_what_fits() -> None:
    s = spec(autoscaling=AUTOSCALING, cost={"monthlyBudget": 500, "enforce": True})
    # a pod-month is 65.70: 500 / 65.70 = 7.6 pods, so 7 (7 x 65.70 = 459.90, 40.10 left)
    assert max_replicas_cap(s, PRICES, [scaled()]) == 7
    cost, condition = assess_cost(s, PRICES, [scaled()], live(stable=4), (), ModelDeploymentStatus(), None)
    assert cost is not None and cost.capped_max_replicas == 7 and cost.monthly_at_max == 459.9 and cost.over_budget_by is None
    assert condition is not None and condition[:2] == ("True", "WithinBudget")
    assert "capped from 10 to 7 per variant" in condition[2] and "(40.10 EUR left)" in condition[2]
    # the capacity planner may already have applied the cap: the answer is the same
    assert max_replicas_cap(s, PRICES, [scaled(hi=7)]) == 7


def test_enforce_cap_counts_every_scaled_and_fixed_variant() -> None:
    s = spec(autoscaling=AUTOSCALING, cost={"monthlyBudget": 500, "enforce": True})
    # stable and candidate each at N: 2N x 65.70 <= 500 gives N = 3 (6 pods: 394.20)
    assert max_replicas_cap(s, PRICES, [scaled(), scaled(CANDIDATE, NEW_MODEL)]) == 3
    # a candidate whose floor follows its traffic share (min 4) keeps it: N + 4 pods <= 7.6 gives N = 3
    assert max_replicas_cap(s, PRICES, [scaled(), scaled(CANDIDATE, NEW_MODEL, lo=4)]) == 3
    # a fixed variant of 2 pods (the previous version during a bake) and a draining variant of 1 pod: N <= 4.6
    fixed = VariantWorkload("previous", ModelSpec.model_validate(NEW_MODEL), 2)
    assert max_replicas_cap(s, PRICES, [scaled(), fixed], live(old=1), keep=("old",)) == 4


def test_enforce_never_caps_below_min_replicas() -> None:
    s = spec(autoscaling=AUTOSCALING, cost={"monthlyBudget": 100, "enforce": True})
    # even minReplicas 2 costs 2 x 65.70 = 131.40 > 100: capped at 2, and still over by 31.40 (31%)
    assert max_replicas_cap(s, PRICES, [scaled()]) == 2
    cost, condition = assess_cost(s, PRICES, [scaled()], live(stable=2), (), ModelDeploymentStatus(), None)
    assert cost is not None and cost.capped_max_replicas == 2 and cost.monthly_at_max == 131.4
    assert cost.over_budget_by == pytest.approx(31.4)
    assert condition is not None and condition[:2] == ("False", "OverBudget")
    assert "cannot be met without stopping the model, which a budget never does" in condition[2]
    assert "by 31.40 EUR (31%)" in condition[2]


def test_no_cap_without_a_price_table_or_a_scaler() -> None:
    s = spec(autoscaling=AUTOSCALING, cost={"monthlyBudget": 1, "enforce": True})
    assert max_replicas_cap(s, None, [scaled()]) is None
    assert max_replicas_cap(s, Prices(), [scaled()]) is None
    fixed = VariantWorkload(STABLE, ModelSpec.model_validate(MODEL), 3)
    assert max_replicas_cap(spec(replicas=3, cost={"monthlyBudget": 1, "enforce": True}), PRICES, [fixed]) is None


def test_a_variant_without_a_deployment_costs_nothing_now_and_one_going_away_nothing_at_max() -> None:
    cost, _ = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, [scaled(), scaled(CANDIDATE, NEW_MODEL)], live(stable=4, gone=2),
                          (), ModelDeploymentStatus(), None)
    assert cost is not None
    assert [(v.name, v.replicas, v.hourly, v.hourly_at_max) for v in cost.variants] == [
        (STABLE, 4, 0.36, 0.9), (CANDIDATE, 0, 0.0, 0.9), ("gone", 2, 0.18, 0.0)]


# --- cost per 1,000 predictions -----------------------------------------------------------

def measurement(candidate: float | None = 6000, stable: float | None = 36000, error: str | None = None) -> Measurement:
    request = MeasureRequest("ml", "fraud-scorer", "step", "rev", ((CANDIDATE, STABLE),), T0, (), SeriesLabels(), "1m", None, T0)
    data = {CANDIDATE: VariantData(RequestCounts(candidate, 0)), STABLE: VariantData(RequestCounts(stable, 0))}
    return Measurement(request, data, error, T0 + timedelta(minutes=30))


def rollout_status(candidate_model: dict[str, str] = NEW_MODEL, cost: CostStatus | None = None) -> ModelDeploymentStatus:
    def variant(name: str, model: dict[str, str]) -> VariantStatus:
        return VariantStatus(name=name, bento=model["bento"], image=model["image"], revision=revision_of(ModelSpec.model_validate(model)))
    return ModelDeploymentStatus(stable=variant(STABLE, MODEL), candidate=variant(CANDIDATE, candidate_model), cost=cost)


def test_per_thousand_predictions_from_the_measured_window() -> None:
    workloads = [scaled(), scaled(CANDIDATE, NEW_MODEL)]
    cost, _ = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, workloads, live(stable=4, candidate=1), (), rollout_status(),
                          measurement())
    assert cost is not None
    per_1k = {v.name: v.per_thousand_predictions for v in cost.variants}
    # window: 30 min. stable: 4 x 0.09 = 0.36/h, 0.18 over the window, 36,000 requests: 0.18 / 36 = 0.005
    # candidate: 1 x 0.09 = 0.09/h, 0.045 over the window, 6,000 requests: 0.045 / 6 = 0.0075
    assert per_1k == {STABLE: 0.005, CANDIDATE: 0.0075}
    # both: 0.225 / 42 = 0.00535714... (six significant digits)
    assert cost.per_thousand_predictions == 0.00535714
    status = rollout_status(cost=cost)
    assert parse_status(status.dump()) == status


def test_per_thousand_predictions_kept_for_the_same_revision_only() -> None:
    workloads = [scaled(), scaled(CANDIDATE, NEW_MODEL)]
    first, _ = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, workloads, live(stable=4, candidate=1), (), rollout_status(),
                           measurement())
    kept, _ = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, workloads, live(stable=5, candidate=1), (),
                          rollout_status(cost=first), None)
    assert kept is not None and {v.name: v.per_thousand_predictions for v in kept.variants} == {STABLE: 0.005, CANDIDATE: 0.0075}
    assert kept.per_thousand_predictions == 0.00535714 and kept.hourly == 0.54  # 6 x 0.09: the rest follows the replicas
    other = {"bento": "fraud_scorer:3.4.0", "image": "registry.example.com/fraud-scorer:3.4.0"}
    newer, _ = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, [scaled(), scaled(CANDIDATE, other)], live(stable=4, candidate=1),
                           (), rollout_status(cost=first), None)
    assert newer is not None and {v.name: v.per_thousand_predictions for v in newer.variants} == {STABLE: 0.005, CANDIDATE: None}


@pytest.mark.parametrize("m", [measurement(error="Prometheus gave no answer"), measurement(candidate=None, stable=0)])
def test_no_per_prediction_cost_without_usable_counts(m: Measurement) -> None:
    cost, _ = assess_cost(spec(autoscaling=AUTOSCALING), PRICES, [scaled(), scaled(CANDIDATE, NEW_MODEL)], live(stable=4, candidate=1),
                          (), rollout_status(), m)
    assert cost is not None and cost.per_thousand_predictions is None
    assert all(v.per_thousand_predictions is None for v in cost.variants)


def derived(judgement: Judgement, m: Measurement) -> ModelDeploymentStatus:
    s = spec(autoscaling=AUTOSCALING)
    previous = rollout_status()
    strategy = StrategyResult(Sections.of(previous), workloads=[scaled(), scaled(CANDIDATE, NEW_MODEL)])
    obs = Observation(raw_spec=s.dump(), generation=1, annotations={}, previous=previous, live=live(stable=4, candidate=1),
                      measurement=m, prices=PRICES)
    status, _ = derive_status(Decision(s, [], [], strategy, judgement), obs, [], T0 + timedelta(minutes=30))
    return status


def test_derive_uses_a_measurement_only_when_the_analysis_recorded_it() -> None:
    verdict = Verdict("traffic", "Inconclusive", None, None, 6000, None, None, None, "not enough requests")
    recorded = derived(Judgement(verdicts=((CANDIDATE, verdict),)), measurement())
    assert recorded.cost is not None and recorded.cost.per_thousand_predictions == 0.00535714
    ignored = derived(Judgement(), measurement())  # a stale measurement the analysis did not record
    assert ignored.cost is not None and ignored.cost.per_thousand_predictions is None


# --- the rollout hold ---------------------------------------------------------------------

def with_costs(candidate: float | None, stable: float | None) -> ModelDeploymentStatus:
    variants = [VariantCost(name=STABLE, replicas=4, hourly=0.36, hourly_at_max=0.9, per_thousand_predictions=stable),
                VariantCost(name=CANDIDATE, replicas=1, hourly=0.09, hourly_at_max=0.9, per_thousand_predictions=candidate)]
    return ModelDeploymentStatus(cost=CostStatus(currency="EUR", hourly=0.45, hourly_at_max=1.8, monthly_projected=328.5,
                                                 monthly_at_max=1314.0, variants=variants))


def test_a_candidate_raising_cost_per_prediction_beyond_max_increase_is_held() -> None:
    s = spec(autoscaling=AUTOSCALING, cost={"enforce": True, "maxIncrease": 20})
    message = cost_increase_hold(s, with_costs(0.0075, 0.005))
    # (0.0075 - 0.005) / 0.005 = 50% more, against a limit of 20%
    assert message is not None
    assert "0.0075 EUR" in message and "0.005 EUR" in message and "50.0% more" in message and "maxIncrease allows 20%" in message


@pytest.mark.parametrize("cost_spec, candidate, stable", [
    ({"enforce": True, "maxIncrease": 20}, 0.0059, 0.005),  # 18% more: within the limit
    ({"enforce": True, "maxIncrease": 20}, 0.004, 0.005),  # cheaper
    ({"enforce": False, "maxIncrease": 20}, 0.0075, 0.005),  # not enforced
    ({"enforce": True}, 0.0075, 0.005),  # no limit
    ({"enforce": True, "maxIncrease": 20}, None, 0.005),  # candidate not measured yet
    ({"enforce": True, "maxIncrease": 20}, 0.0075, None),  # stable not measured
])
def test_no_hold(cost_spec: dict[str, Any], candidate: float | None, stable: float | None) -> None:
    assert cost_increase_hold(spec(autoscaling=AUTOSCALING, cost=cost_spec), with_costs(candidate, stable)) is None
    assert cost_increase_hold(spec(autoscaling=AUTOSCALING, cost=cost_spec), ModelDeploymentStatus()) is None


def test_enforce_caps_every_scaler_through_plan() -> None:
    """Wired through plan(): the cap reaches the scalers."""
    from headway.planning.cost import Prices
    from tests.unit.planning.rollout_cases import canary, rollout_spec, running, at

    spec = {**rollout_spec("1.0.0", [canary(50, "1m")]), "replicas": None,
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 20, "metrics": [{"cpu": {"averageUtilization": 70}}]},
            "cost": {"monthlyBudget": 219, "enforce": True, "maxIncrease": 10}}
    cluster = running(spec, prices=Prices(vcpu_hour=0.04, gib_hour=0.005))
    result = cluster.reconcile(at(100))
    # one pod: 0.04 + 2 x 0.005 = 0.05/h = 36.5 a month; 219 a month fits 6 pods
    assert result.workloads is not None and [w.scaler.max_replicas for w in result.workloads if w.scaler] == [6]
    assert result.status.cost is not None and result.status.cost.capped_max_replicas == 6


def test_a_candidate_dearer_per_prediction_than_max_increase_holds_the_step() -> None:
    from headway.api.status import CostStatus, VariantCost
    from headway.planning.cost import Prices
    from tests.unit.planning.rollout_cases import at, canary, rollout_spec, running

    spec = {**rollout_spec("1.0.0", [canary(50, "1m"), canary(100, "1m")]),
            "resources": {"requests": {"cpu": "1"}}, "cost": {"enforce": True, "maxIncrease": 10}}
    cluster = running(spec, prices=Prices(vcpu_hour=0.04))
    cluster.set_model("2.0.0")
    cluster.reconcile(at(10))
    started = cluster.reconcile(at(11))
    assert started.status.rollout is not None and started.status.rollout.step == 0
    costs = [VariantCost(name="stable", replicas=4, hourly=0.16, hourly_at_max=0.16, per_thousand_predictions=0.002),
             VariantCost(name="candidate", replicas=2, hourly=0.08, hourly_at_max=0.08, per_thousand_predictions=0.003)]
    cluster.status = cluster.status.model_copy(update={"cost": CostStatus(
        currency="USD", hourly=0.24, hourly_at_max=0.24, monthly_projected=175.2, monthly_at_max=175.2, variants=costs)})
    held = cluster.reconcile(at(200))
    assert held.status.rollout is not None and held.status.rollout.step == 0  # the 1m step is over, but held
    message = next(c.message for c in held.status.conditions if c.type == "Progressing")
    assert "50.0% more" in message and "maxIncrease" in message and "promote-step" in message
    assert [e.reason for e in held.events].count("StepHeld") == 1  # said once, with evidence in history
    again = cluster.reconcile(at(300))
    assert again.status.rollout is not None and again.status.rollout.step == 0 and "StepHeld" not in [e.reason for e in again.events]


def test_the_budget_cap_never_shrinks_what_a_variant_runs_now() -> None:
    from dataclasses import replace as dc_replace

    from headway.planning.cost import Prices
    from tests.unit.planning.rollout_cases import at, rollout_spec, running

    spec = {**rollout_spec("1.0.0", []), "replicas": None, "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 20, "metrics": [{"cpu": {"averageUtilization": 70}}]},
            "cost": {"monthlyBudget": 219, "enforce": True}}
    cluster = running(spec, prices=Prices(vcpu_hour=0.04, gib_hour=0.005))
    cluster.live["stable"] = dc_replace(cluster.live["stable"], replicas=8, ready_replicas=8, available_replicas=8, current_available=8)
    result = cluster.reconcile(at(100))
    assert result.workloads is not None
    assert [w.scaler.max_replicas for w in result.workloads if w.scaler] == [8]  # the budget fits 6, but 8 run now
