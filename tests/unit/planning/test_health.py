"""DeploymentComplete: the stable measured in steady state — running, monitored, performant, governed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from headway.api.status import Condition
from headway.planning.measure import Measurement
from headway.planning.verdict_types import RequestCounts, VariantData
from tests.unit.planning.rollout_cases import Cluster, at, canary, rollout_spec, running

ANALYSIS = {"prometheus": {"url": "http://prometheus.monitoring:9090"}, "interval": "30s", "minRequests": 100,
            "slos": [{"errorRate": {"max": 0.01}}]}


def spec(**extra: Any) -> dict[str, Any]:
    return {**rollout_spec("1.0.0", [canary(50, "1m")]), "analysis": ANALYSIS, **extra}


def complete(c: Cluster) -> Condition:
    return next(x for x in c.status.conditions if x.type == "DeploymentComplete")


def answer(c: Cluster, t: float, data: VariantData | None, error: str | None = None) -> None:
    """The operator's next look at ``t``: the measurement the last plan asked for, answered with ``data``."""
    assert c.last is not None and c.last.measure is not None and c.last.measure.purpose == "steady"
    req = c.last.measure
    c.commit(c.plan_measured(at(t), Measurement(req, {"stable": data} if data is not None else {}, error, at(t))))


def healthy(total: float = 5000, errors: float = 0) -> VariantData:
    return VariantData(requests=RequestCounts(total=total, errors=errors))


def test_a_steady_stable_is_measured_and_complete_when_its_series_flow_within_the_slos() -> None:
    c = running(spec())
    c.reconcile(at(40))
    assert (complete(c).status, complete(c).reason) == ("Unknown", "NotMeasured")
    assert c.last is not None and c.last.measure is not None and c.last.measure.due_at <= at(40)
    answer(c, 41, healthy())
    cond = complete(c)
    assert (cond.status, cond.reason) == ("True", "Complete"), cond.message
    health = c.status.health
    assert health is not None and health.missing == [] and health.slos[0].present and health.slos[0].samples == 5000
    assert next(x for x in c.status.conditions if x.type == "SLOsMet").status == "True"
    assert c.status.analysis is None  # the rollout's analysis is not overwritten by health checks
    # The next look within the same window asks for nothing; the next window is due when it ends
    # (each ModelDeployment's grid is offset within the interval, so they do not all query at once).
    req = c.last.measure if c.last is not None else None
    assert req is not None and req.due_at == req.window_start + timedelta(seconds=2 * 5 * 30) and at(41) < req.due_at <= at(41 + 150)


def test_metrics_that_stop_flowing_turn_it_false_with_an_event() -> None:
    c = running(spec())
    c.reconcile(at(40))
    answer(c, 41, healthy())
    c.reconcile(at(200))  # the next window (5 x 30s) has ended
    answer(c, 201, VariantData())  # the scrape stopped: no series over the window
    cond = complete(c)
    assert (cond.status, cond.reason) == ("False", "MetricsMissing") and "errorRate" in cond.message
    assert [e.reason for e in c.events if e.reason.startswith("Deployment")] == ["DeploymentComplete", "DeploymentIncomplete"]
    c.reconcile(at(360))
    answer(c, 361, healthy())
    assert complete(c).status == "True"


def test_a_breach_shown_over_the_window_turns_it_false_and_nothing_rolls_back() -> None:
    c = running(spec())
    c.reconcile(at(40))
    answer(c, 41, healthy(5000, 400))
    cond = complete(c)
    assert (cond.status, cond.reason) == ("False", "SLOsBreached") and "errorRate" in cond.message
    assert c.status.phase == "Succeeded" and c.status.rolled_back is None


def test_an_unreachable_prometheus_is_unknown_not_false() -> None:
    c = running(spec())
    c.reconcile(at(40))
    answer(c, 41, None, error="connection refused")
    assert (complete(c).status, complete(c).reason) == ("Unknown", "MetricsUnavailable")


def test_without_slos_it_is_never_complete_and_nothing_is_measured() -> None:
    c = running(rollout_spec("1.0.0"))
    c.reconcile(at(40))
    assert (complete(c).status, complete(c).reason) == ("False", "NotMonitored")
    assert c.last is not None and c.last.measure is None


def test_a_rollout_makes_it_false_and_the_new_stable_is_measured_afresh() -> None:
    c = running(spec())
    c.reconcile(at(40))
    answer(c, 41, healthy())
    c.set_model("2.0.0")
    c.reconcile(at(50))
    assert (complete(c).status, complete(c).reason) == ("False", "Progressing")
    assert c.last is not None and (c.last.measure is None or c.last.measure.purpose != "steady")  # no health check mid-rollout
