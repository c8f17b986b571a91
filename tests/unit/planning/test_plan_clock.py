"""What a plan needs next (wake_at, measure), measurements as input, and render problems derived once."""

from __future__ import annotations

from datetime import timedelta

from headway.planning.measure import Measurement
from headway.planning.observe import Observation
from headway.planning.plan import RenderProblem, finish, plan
from headway.planning.verdicts import RequestCounts, VariantData
from tests.unit.planning.rollout_cases import OWNER, Cluster, at, canary, rollout_spec, running

ANALYSIS = {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}], "failureLimit": 1}


def test_a_running_step_wakes_at_its_end() -> None:
    cluster = running(rollout_spec("1.0.0", [canary(10, "3s"), canary(50, "1m")]))
    cluster.set_model("2.0.0")
    cluster.reconcile(at(10))
    started = cluster.reconcile(at(11))
    assert started.status.rollout is not None and started.status.rollout.step_started_at
    assert started.wake_at == at(11) + timedelta(seconds=3)
    assert cluster.reconcile(at(14)).status.rollout.step == 1  # type: ignore[union-attr]


def test_steady_needs_no_wake_up() -> None:
    cluster = running(rollout_spec("1.0.0"))
    assert cluster.reconcile(at(100)).wake_at is None


def _analysed() -> Cluster:
    cluster = running({**rollout_spec("1.0.0", [canary(10, "10m")]), "analysis": ANALYSIS})
    cluster.set_model("2.0.0")
    cluster.reconcile(at(10))
    cluster.reconcile(at(11))
    return cluster


def test_a_due_measurement_is_requested_and_recorded_once() -> None:
    cluster = _analysed()
    obs = Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live))
    early = plan(OWNER, obs, at(20))
    assert early.measure is not None and early.measure.due_at == at(41) and early.wake_at == at(41)
    due = plan(OWNER, obs, at(41))
    assert due.measure is not None and due.measure.due_at <= at(41)
    bad = {"stable": VariantData(RequestCounts(10000, 10)), "candidate": VariantData(RequestCounts(10000, 900))}
    measured = Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live), measurement=Measurement(due.measure, bad, None, at(41)))
    result = plan(OWNER, measured, at(41))
    assert result.verdicts and result.status.rolled_back is not None  # failureLimit 1: rolled back
    assert result.status.analysis is not None and result.status.analysis.runs == 1
    # The same measurement again (status already recorded it) changes nothing.
    again = plan(OWNER, Observation(cluster.spec, 1, {}, result.status, dict(cluster.live), measurement=measured.measurement), at(42))
    assert again.verdicts == ()


def test_a_persisting_render_problem_is_reported_once_and_does_not_churn_status() -> None:
    cluster = running(rollout_spec("1.0.0"))
    problem = [RenderProblem("RouteNotApplied", "spec.traffic.provider: needs the HTTPRoute CRD")]
    obs = Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live))
    first = finish(plan(OWNER, obs, at(100)), obs, problem, at(100))
    assert first.status.phase == "Degraded"
    assert [e.reason for e in first.events] == ["PhaseDegraded", "RouteNotApplied"]
    degraded = next(c for c in first.status.conditions if c.type == "Degraded")
    assert (degraded.reason, degraded.message) == ("RouteNotApplied", problem[0].message)
    obs2 = Observation(cluster.spec, 1, {}, first.status, dict(cluster.live))
    second = finish(plan(OWNER, obs2, at(200)), obs2, problem, at(200))
    assert second.events == [] and second.status == first.status
