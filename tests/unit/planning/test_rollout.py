"""Whole rollouts driven through ``plan()``: steps, controls, safety, crash-safety.

Every reconcile plans from the status the previous one wrote (round-tripped through its
wire form, so the status alone carries the state) and from what the Deployments report;
``Cluster`` (rollout_cases.py) lets the Deployments converge on the planned workloads
between reconciles unless a test says otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dataclasses import replace

import pytest

from headway.api.status import Phase
from headway.planning.naming import VariantWorkload
from headway.planning.observe import DeploymentState
from headway.planning.plan import DRAIN
from headway.planning.rollout import Gate, replicas_for_share

from tests.unit.planning.rollout_cases import (
    CANDIDATE, STABLE, Cluster, assert_routes_only_to_ready, at, canary, deployment_state, labels,
    model, new_entries, pause, replicas_of, rev, rollout_spec, running, shadow, ts, workload_of,
)

S, C = STABLE, CANDIDATE
TOTAL = 4  # stable replicas in every spec here

# The labels the issue's rollout writes to history, in order, exactly once each.
ISSUE_ROLLOUT = [
    "RolloutStarted",
    "StepStarted 1/4", "StepCompleted 1/4",
    "StepStarted 2/4", "StepCompleted 2/4",
    "StepStarted 3/4", "StepCompleted 3/4",
    "StepStarted 4/4", "StepCompleted 4/4",
    "PromotionStarted", "Promoted",
]


def cond(result: Any, type_: str) -> tuple[str, str]:
    c = next(c for c in result.status.conditions if c.type == type_)
    return c.status, c.reason


def started_at(result: Any) -> str | None:
    return result.status.rollout.step_started_at if result.status.rollout else None


def non_phase(events: list[Any]) -> list[str]:
    return [e.reason for e in events if not e.reason.startswith("Phase")]


# --- the issue's rollout, reconcile by reconcile ---------------------------------------

def new_model(c: Cluster) -> None:
    c.set_model("2.0.0")


def pass_gate(c: Cluster) -> None:
    c.annotate("promote-step", "gate-1")


def stable_rolling(c: Cluster) -> None:
    """The stable Deployment moves to 2.0.0: 2 of 4 new pods ready, the old ones still serve."""
    c.live[S] = deployment_state(workload_of(c.last, S), ready=2)


@dataclass(frozen=True)
class Tick:
    t: int  # seconds since T0
    do: Callable[[Cluster], None] | None
    phase: Phase | None  # None: not asserted here (see the test named in the note)
    step: int | None  # status.rollout.step (None: no rollout)
    started: int | None  # status.rollout.stepStartedAt, seconds since T0
    weights: dict[str, int]
    mirror: int | None
    candidate: int | None  # candidate replicas (None: no candidate workload)
    stable: tuple[str, int]  # stable workload: version, replicas
    history: tuple[str, ...]
    note: str


P, PA, PR, OK = Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.SUCCEEDED
OLD, NEW = ("1.0.0", TOTAL), ("2.0.0", TOTAL)
JOURNEY = (
    Tick(60, new_model, P, 0, None, {S: 100}, None, 2, OLD, ("RolloutStarted",), "candidate created for shadow 50% of 4: 2 replicas, no traffic yet"),
    Tick(70, None, P, 0, 70, {S: 100, C: 0}, 50, 2, OLD, ("StepStarted 1/4",), "candidate 2/2 available: mirror 50%, users never see it"),
    Tick(129, None, P, 0, 70, {S: 100, C: 0}, 50, 2, OLD, (), "59s of 1m: no advance"),
    Tick(130, None, P, 1, 130, {S: 90, C: 10}, None, 1, OLD, ("StepCompleted 1/4", "StepStarted 2/4"),
         "1m passed: canary 10% needs fewer pods than shadow 50%: it starts at once, the candidate shrinks with it"),
    Tick(140, None, P, 1, 130, {S: 90, C: 10}, None, 1, OLD, (), "candidate 1/1: 10% live"),
    Tick(249, None, P, 1, 130, {S: 90, C: 10}, None, 1, OLD, (), "1m59s of 2m: no advance"),
    Tick(250, None, PA, 2, 250, {S: 90, C: 10}, None, 1, OLD, ("StepCompleted 2/4", "StepStarted 3/4"),
         "same size: the manual gate starts at once, keeping canary 10%, and says Paused at once"),
    Tick(1000, None, PA, 2, 250, {S: 90, C: 10}, None, 1, OLD, (), "a manual gate waits however long"),
    Tick(1010, pass_gate, P, 3, None, {S: 90, C: 10}, None, 2, OLD, ("StepCompleted 3/4",), "promote-step: resize for canary 50%, 10% kept meanwhile"),
    Tick(1020, None, P, 3, 1020, {S: 50, C: 50}, None, 2, OLD, ("StepStarted 4/4",), "candidate 2/2: 50% live"),
    Tick(1079, None, P, 3, 1020, {S: 50, C: 50}, None, 2, OLD, (), "59s of 1m: no advance"),
    Tick(1080, None, PR, 3, 1020, {S: 50, C: 50}, None, 2, NEW, ("StepCompleted 4/4", "PromotionStarted"),
         "last step done: stable rolls to 2.0.0 at full size, the candidate keeps serving its 50%"),
    Tick(1090, stable_rolling, PR, 3, 1020, {S: 50, C: 50}, None, 2, NEW, (), "stable 2/4 on 2.0.0: still promoting"),
    Tick(1100, None, OK, None, None, {S: 100}, None, None, NEW, ("Promoted",), "stable 4/4 on 2.0.0: 100% stable, candidate removed"),
    Tick(1110, None, OK, None, None, {S: 100}, None, None, NEW, (), "steady"),
)


def issue_cluster() -> Cluster:
    return running(rollout_spec("1.0.0"))


def check_tick(tick: Tick, before: Cluster | Any, result: Any) -> None:
    where = f"t={tick.t}: {tick.note}"
    status = result.status
    if tick.phase is not None:
        assert status.phase == tick.phase, where
    assert (status.rollout.step if status.rollout else None) == tick.step, where
    assert started_at(result) == (ts(tick.started) if tick.started is not None else None), where
    assert result.traffic.weights == tick.weights, where
    assert (result.traffic.mirror[1] if result.traffic.mirror else None) == tick.mirror, where
    if tick.mirror:
        assert result.traffic.mirror[0] == C, where
    assert replicas_of(result, C) == tick.candidate, where
    stable = workload_of(result, S)
    assert (stable.model.bento.split(":")[1], stable.replicas) == tick.stable, where
    if tick.candidate is not None:
        assert workload_of(result, C).model.bento == "fraud_scorer:2.0.0", where
    assert tuple(labels(new_entries(before, status))) == tick.history, where
    # Status mirrors the plan: the split applied, the candidate's size and share.
    assert (status.traffic.stable_weight, status.traffic.candidate_weight, status.traffic.mirror_percent) == (
        tick.weights.get(S, 0), tick.weights.get(C, 0), tick.mirror or 0), where
    if tick.candidate is None:
        assert status.candidate is None, where
    else:
        assert (status.candidate.replicas, status.candidate.weight, status.candidate.revision) == (
            tick.candidate, tick.weights.get(C, 0), rev("2.0.0")), where


def walk(cluster: Cluster, ticks: tuple[Tick, ...] = JOURNEY) -> list[Any]:
    results = []
    for tick in ticks:
        if tick.do:
            tick.do(cluster)
        before = cluster.status
        result = cluster.reconcile(at(tick.t))
        check_tick(tick, before, result)
        assert_routes_only_to_ready(cluster.seen, result, TOTAL)
        # One Event per decision: the Events are exactly the history entries (plus phase changes).
        assert non_phase(result.events) == [e.event for e in new_entries(before, result.status)], f"t={tick.t}"
        results.append(result)
    return results


def test_the_issue_rollout_reconcile_by_reconcile() -> None:
    cluster = issue_cluster()
    walk(cluster)
    status = cluster.status
    assert labels(status.history) == ["Deployed", *ISSUE_ROLLOUT]
    assert [e.reason for e in cluster.events if e.reason.startswith("Phase")] == [
        "PhaseProgressing", "PhasePaused", "PhaseProgressing", "PhasePromoting", "PhaseSucceeded"]
    assert status.stable_model.bento == "fraud_scorer:2.0.0" and status.stable.revision == rev("2.0.0")
    assert status.previous_model.bento == "fraud_scorer:1.0.0"
    assert status.rollout is None and status.candidate is None and status.rolled_back is None
    assert status.controls == {"promote-step": "gate-1"}
    # History: timestamps of the decisions, weights of every step started.
    by_label = {label: e for label, e in zip(labels(status.history), status.history)}
    assert by_label["RolloutStarted"].time == ts(60) and by_label["Promoted"].time == ts(1100)
    assert by_label["StepStarted 1/4"].evidence == {"weights": {S: 100, C: 0}, "mirror": {"variant": C, "percent": 50}}
    assert by_label["StepStarted 3/4"].evidence == {"weights": {S: 90, C: 10}}
    assert by_label["StepStarted 4/4"].evidence == {"weights": {S: 50, C: 50}}
    assert all(e.revision == rev("2.0.0") for e in status.history[1:])
    assert cond(cluster.last, "Ready") == ("True", "Available") and cond(cluster.last, "Progressing") == ("False", "Complete")


def test_the_old_stable_serves_until_the_new_stable_is_available() -> None:
    """Promotion never lowers capacity: stable keeps its size, the candidate stays until stable is rolled."""
    cluster = issue_cluster()
    results = walk(cluster)
    promoting = [r for t, r in zip(JOURNEY, results) if t.phase == PR]
    assert promoting and all(replicas_of(r, S) == TOTAL and replicas_of(r, C) == 2 for r in promoting)
    assert all(replicas_of(r, S) >= TOTAL for r in results)


# --- fixed points: the same reconcile again changes nothing ----------------------------

FIXED_POINT_BUGS = {
    130: "BUG: rollout.decide ignores the candidate's size: from the same observation (candidate complete at the "
         "shadow step's 2 replicas) the next reconcile starts canary 10% on a Deployment not yet resized to 1",
    260: "BUG: rollout._progress reports Progressing when a step completes and the next one (a manual gate) starts in "
         "the same reconcile; the next reconcile flips it to Paused (PhasePaused)",
    1010: "BUG: rollout.decide ignores the candidate's size: the same observation (candidate complete at 1 replica) "
          "starts canary 50% before the candidate is resized to 2",
    1080: "BUG: the Progressing message flips from 'stable rolls to it' to 'promoting fraud_scorer:2.0.0: 4/4 stable "
          "replicas on the new version' while the stable Deployment still reports 1.0.0 (rollout._promoting counts "
          "stable.ready_replicas without checking stable.revision)",
}


@pytest.mark.parametrize("index", [
    pytest.param(i, id=f"t={t.t}")
    for i, t in enumerate(JOURNEY)
])
def test_every_reconcile_of_the_rollout_is_a_fixed_point(index: int) -> None:
    """Reconciling again at the same ``now`` from the status just written and the same observation is a no-op."""
    cluster = issue_cluster()
    walk(cluster, JOURNEY[:index])
    tick = JOURNEY[index]
    if tick.do:
        tick.do(cluster)
    first = cluster.commit(cluster.plan(at(tick.t)))
    again = cluster.plan(at(tick.t))
    assert again.events == []
    assert again.status == first.status
    assert (again.workloads, again.traffic) == (first.workloads, first.traffic)


def test_entering_a_manual_gate_says_paused_at_once() -> None:
    cluster = issue_cluster()
    results = walk(cluster, JOURNEY[:7])
    assert JOURNEY[6].t == 250
    assert results[-1].status.phase == Phase.PAUSED
    assert cond(results[-1], "Progressing") == ("True", "Paused")


# --- crash-safety: the operator dies after applying children, before writing status ----

def drive_with_crashes(mode: str) -> Cluster:
    """Run JOURNEY where every reconcile is done twice from the same previous status.

    replay: same observation, same now; later: same observation, 5 s later; applied: the
    first attempt's children were applied and converged; half-applied: applied, but the
    Deployment controllers have not caught up yet. Only the second attempt writes status.
    """
    cluster = issue_cluster()
    for tick in JOURNEY:
        if tick.do:
            tick.do(cluster)
        before = cluster.status
        first = cluster.plan(at(tick.t))
        if mode == "replay":
            second = cluster.plan(at(tick.t))
            assert second == first, f"t={tick.t}: not deterministic"
        else:
            if mode == "applied":
                cluster.converge(first)
            elif mode == "half-applied":
                cluster.half_apply(first)
            second = cluster.plan(at(tick.t + 5))
        # Compatible: the second attempt makes the first one's decisions, possibly one more.
        a, b = labels(new_entries(before, first.status)), labels(new_entries(before, second.status))
        assert b[: len(a)] == a, f"t={tick.t}: crashed attempt decided {a}, the retry {b}"
        cluster.commit(second)
        cluster.converge(second)
    return cluster


@pytest.mark.parametrize("mode", [
    "replay", "later", "applied",
    pytest.param("half-applied"),
])
def test_a_crash_before_the_status_write_skips_or_repeats_nothing(mode: str) -> None:
    cluster = drive_with_crashes(mode)
    committed = labels(cluster.status.history)
    assert committed == ["Deployed", *ISSUE_ROLLOUT]
    counts = Counter(e.reason for e in cluster.events)
    assert counts["PromotionStarted"] == 1 and counts["Promoted"] == 1
    assert cluster.status.stable_model.bento == "fraud_scorer:2.0.0" and cluster.status.rollout is None


def test_a_crash_during_promotion_does_not_promote_twice() -> None:
    """The retry of the Promoted decision, with the candidate already deleted, decides Promoted once."""
    cluster = issue_cluster()
    walk(cluster, JOURNEY[:-2])
    assert cluster.status.phase == Phase.PROMOTING
    first = cluster.plan(at(1100))
    cluster.converge(first)  # candidate deleted, stable at 2.0.0: then the process dies
    second = cluster.commit(cluster.plan(at(1101)))
    assert second.status.phase == Phase.SUCCEEDED and second.status.candidate is None
    assert non_phase(second.events) == ["Promoted"]
    cluster.converge(second)
    third = cluster.reconcile(at(1102))
    assert third.events == [] and labels(cluster.status.history).count("Promoted") == 1
    assert labels(cluster.status.history).count("PromotionStarted") == 1


# --- the first version, and the candidate's readiness gate -----------------------------

def test_the_first_version_goes_straight_to_stable() -> None:
    cluster = Cluster(spec=rollout_spec("1.0.0"))
    first = cluster.reconcile(at(0))
    assert first.status.phase == Phase.PENDING
    assert [w.variant for w in first.workloads] == [S] and first.workloads[0].replicas == TOTAL
    assert first.traffic.weights == {S: 100} and first.traffic.mirror is None
    assert first.status.rollout is None and first.status.candidate is None
    assert first.status.stable_model.bento == "fraud_scorer:1.0.0"
    assert labels(first.status.history) == ["Deployed"] and [e.reason for e in first.events] == ["Deployed"]
    second = cluster.reconcile(at(10))
    assert second.status.phase == Phase.SUCCEEDED and second.status.rollout is None
    assert labels(second.status.history) == ["Deployed"]


def entering_step_one() -> Cluster:
    """The issue's rollout has just started: the candidate is wanted at 2 replicas for shadow 50%."""
    cluster = issue_cluster()
    cluster.set_model("2.0.0")
    cluster.reconcile(at(60))
    return cluster


def no_deployment(_: VariantWorkload) -> DeploymentState:
    return DeploymentState(exists=False)


SIZE_BUG = ("BUG: rollout.decide never compares the candidate's replicas/ready_replicas with the step's size "
            "(replicas_for_share(total, step_share)); 'available and complete' at any size starts the step: ")


@pytest.mark.parametrize("candidate, traffic, phase", [
    pytest.param(no_deployment, False, P, id="not created yet"),
    pytest.param(lambda w: deployment_state(w, 0), False, P, id="0 of 2 ready"),
    pytest.param(lambda w: deployment_state(w, 1), False, P, id="1 of 2 ready: available, not complete"),
    pytest.param(lambda w: deployment_state(w, revision=rev("1.5.0")), False, P, id="complete, but another revision"),
    pytest.param(lambda w: deployment_state(w, 0, deadline=True), False, Phase.DEGRADED, id="progress deadline exceeded"),
    pytest.param(lambda w: deployment_state(w, replicas=1), False, P, id="complete at 1 replica, the step needs 2"),
    pytest.param(lambda w: deployment_state(w, replicas=0), False, P, id="complete at 0 replicas"),
    pytest.param(deployment_state, True, P, id="2 of 2 ready at the step's size"),
])
def test_the_candidate_gets_traffic_only_when_available_and_complete_at_the_steps_size(
        candidate: Callable[[VariantWorkload], DeploymentState], traffic: bool, phase: Phase) -> None:
    cluster = entering_step_one()
    cluster.live[C] = candidate(workload_of(cluster.last, C))
    result = cluster.reconcile(at(70))
    assert result.status.phase == phase
    assert replicas_of(result, C) == 2
    if traffic:
        assert result.traffic.mirror == (C, 50) and started_at(result) == ts(70)
        assert result.status.history[-1].event == "StepStarted"
    else:
        assert_routes_only_to_ready(cluster.seen, result, TOTAL)
        assert started_at(result) is None and "StepStarted" not in [e.reason for e in result.events]
        assert result.traffic.weights == {S: 100} and result.traffic.mirror is None


def test_the_candidate_is_never_shrunk_below_the_traffic_it_still_carries() -> None:
    cluster = issue_cluster()
    for tick, result in zip(JOURNEY, walk(cluster)):
        share = max(result.traffic.weights.get(C, 0), result.traffic.mirror[1] if result.traffic.mirror else 0)
        if share and result.status.rollout is not None:
            assert replicas_of(result, C) >= replicas_for_share(TOTAL, share), f"t={tick.t}: {tick.note}"


# --- durations, pause and resume -------------------------------------------------------

def canary_running() -> Cluster:
    """canary 10% for 2m, started at t=70, then canary 50%."""
    cluster = running(rollout_spec("2.0.0", [canary(10, "2m"), canary(50, "1m")]))
    cluster.reconcile(at(60))
    cluster.reconcile(at(70))
    assert cluster.status.rollout.step_started_at == ts(70) and cluster.last.traffic.weights == {S: 90, C: 10}
    return cluster


@pytest.mark.parametrize("elapsed, advanced", [(0, False), (60, False), (119, False), (120, True), (3600, True)])
def test_a_step_advances_only_once_its_duration_has_passed(elapsed: int, advanced: bool) -> None:
    cluster = canary_running()
    result = cluster.reconcile(at(70 + elapsed))
    assert result.status.rollout.step == (1 if advanced else 0)
    if advanced:
        assert result.status.history[-1].event == "StepCompleted" and result.status.history[-1].time == ts(70 + elapsed)
        assert "duration passed" in result.status.history[-1].message
    else:
        assert result.events == [] and result.traffic.weights == {S: 90, C: 10}
        assert f"until {ts(190)}" in next(c.message for c in result.status.conditions if c.type == "Progressing")


def test_time_passing_alone_changes_no_status() -> None:
    """Every status write is a watch event and another reconcile: waiting out a step writes nothing."""
    cluster = canary_running()
    first = cluster.reconcile(at(100)).status
    assert cluster.reconcile(at(150)).status == first


def set_paused(how: str, value: bool) -> Callable[[Cluster], None]:
    def apply(c: Cluster) -> None:
        if how == "spec":
            c.spec = {**c.spec, "paused": value}
        else:
            c.annotate("paused", "true" if value else None)
    return apply


@pytest.mark.parametrize("how", ["spec", "annotation"])
def test_paused_time_does_not_count_towards_a_step(how: str) -> None:
    cluster = canary_running()
    set_paused(how, True)(cluster)
    paused = cluster.reconcile(at(100))  # 30 s of the 2 min done
    assert paused.status.phase == Phase.PAUSED and paused.status.rollout.paused_at == ts(100)
    assert paused.status.history[-1].event == "Paused" and non_phase(paused.events) == ["Paused"]
    while_paused = cluster.reconcile(at(1000))  # long past the 2 min: frozen
    assert while_paused.status.rollout.step == 0 and while_paused.traffic.weights == {S: 90, C: 10}
    assert while_paused.events == [] and while_paused.status.phase == Phase.PAUSED
    set_paused(how, False)(cluster)
    resumed = cluster.reconcile(at(1300))  # paused for 1200 s: the step's start moves from 70 to 1270
    assert resumed.status.phase == Phase.PROGRESSING and resumed.status.rollout.paused_at is None
    assert resumed.status.rollout.step_started_at == ts(1270)
    assert non_phase(resumed.events) == ["Resumed"]
    assert cluster.reconcile(at(1389)).status.rollout.step == 0  # 30 s + 89 s
    assert cluster.reconcile(at(1390)).status.rollout.step == 1  # 30 s + 90 s = 2 min


def paused_before_the_step_started() -> Cluster:
    """canary 25% for 1m; paused (annotation) at t=60 while the candidate is still starting."""
    cluster = running(rollout_spec("2.0.0", [canary(25, "1m")]))
    cluster.broken = {C}
    cluster.annotate("paused", "true")
    cluster.reconcile(at(60))
    assert cluster.status.rollout.paused_at == ts(60) and cluster.status.history[-1].event == "Paused"
    cluster.broken = set()
    cluster.live[C] = deployment_state(workload_of(cluster.last, C))  # the candidate becomes ready meanwhile
    return cluster


def test_a_rollout_paused_while_its_candidate_starts_says_paused() -> None:
    cluster = running(rollout_spec("2.0.0", [canary(25, "1m")]))
    cluster.broken = {C}
    cluster.annotate("paused", "true")
    assert cluster.reconcile(at(60)).status.phase == Phase.PAUSED


def test_a_paused_rollout_does_not_start_its_next_step() -> None:
    cluster = paused_before_the_step_started()
    frozen = cluster.reconcile(at(600))
    assert "StepStarted" not in [e.reason for e in frozen.events]
    assert frozen.traffic.weights == {S: 100}, "traffic stays as it is while paused"


def test_resuming_never_puts_the_steps_clock_in_the_future() -> None:
    cluster = paused_before_the_step_started()
    cluster.reconcile(at(600))
    cluster.annotate("paused", None)
    resumed = cluster.reconcile(at(1200))
    assert resumed.status.rollout.step_started_at is not None and resumed.status.rollout.step_started_at <= ts(1200)
    assert cluster.reconcile(at(1260)).status.phase == Phase.PROMOTING, "1m after resuming, the 1m step is done"


# --- controls from kubectl --------------------------------------------------------------

def at_the_gate() -> Cluster:
    cluster = issue_cluster()
    walk(cluster, JOURNEY[:8])
    assert cluster.status.phase == Phase.PAUSED and cluster.status.rollout.step == 2
    return cluster


def test_promote_step_passes_the_gate_once_per_value() -> None:
    cluster = at_the_gate()
    cluster.annotate("promote-step", "a")
    passed = cluster.reconcile(at(1010))
    assert passed.status.rollout.step == 3 and passed.status.controls["promote-step"] == "a"
    assert "passed by a user (promote-step)" in passed.status.history[-1].message
    ready = cluster.reconcile(at(1020))
    assert labels(new_entries(passed.status, ready.status)) == ["StepStarted 4/4"]
    same = cluster.reconcile(at(1030))  # the same value again: canary 50% is not skipped
    assert same.status.rollout.step == 3 and same.events == []
    cluster.annotate("promote-step", "b")  # a new value acts again
    again = cluster.reconcile(at(1040))
    assert labels(new_entries(same.status, again.status)) == ["StepCompleted 4/4", "PromotionStarted"]
    assert again.status.controls["promote-step"] == "b"


def test_promote_skips_every_remaining_step() -> None:
    cluster = issue_cluster()
    walk(cluster, JOURNEY[:2])  # shadow running
    cluster.annotate("promote", "now")
    result = cluster.reconcile(at(80))
    assert result.status.phase == Phase.PROMOTING and result.status.rollout.promoting
    assert non_phase(result.events) == ["PromotionStarted"] and result.status.controls == {"promote": "now"}
    assert result.status.history[-1].event == "PromotionStarted" and "promoted by a user" in result.status.history[-1].message
    assert workload_of(result, S).model.bento == "fraud_scorer:2.0.0" and replicas_of(result, S) == TOTAL
    assert result.traffic.mirror == (C, 50)  # unchanged until stable is rolled
    done = cluster.reconcile(at(90))
    assert done.status.phase == Phase.SUCCEEDED and done.status.stable_model.bento == "fraud_scorer:2.0.0"
    assert labels(done.status.history)[1:] == ["RolloutStarted", "StepStarted 1/4", "PromotionStarted", "Promoted"]
    assert cluster.reconcile(at(100)).events == []  # the same value never acts again


def promote_before_ready() -> tuple[Cluster, Any]:
    """A promote given while the candidate 2.0.0 has no pod ready: it waits."""
    cluster = running(rollout_spec("2.0.0"))
    cluster.broken = {C}
    cluster.reconcile(at(60))
    cluster.annotate("promote", "p")
    return cluster, cluster.reconcile(at(70))


def test_a_deferred_promote_is_announced_once() -> None:
    cluster, first = promote_before_ready()
    assert [e.reason for e in first.events] == ["PromoteDeferred"]
    assert cluster.reconcile(at(70)).events == []


def abort_at_canary() -> tuple[Cluster, Any]:
    cluster = canary_running()
    cluster.annotate("abort", "a1")
    return cluster, cluster.reconcile(at(100))


def test_abort_puts_all_traffic_on_stable_and_scales_the_candidate_to_zero() -> None:
    cluster, aborted = abort_at_canary()
    status = aborted.status
    assert status.phase == Phase.ROLLED_BACK and status.rollout is None
    assert aborted.traffic.weights == {S: 100} and aborted.traffic.mirror is None
    # Traffic leaves the candidate at once; its pods go after DRAIN (the data plane converges first).
    assert replicas_of(aborted, C) == 1 and replicas_of(aborted, S) == TOTAL
    assert replicas_of(cluster.reconcile(at(100) + DRAIN), C) == 0
    assert workload_of(aborted, S).model.bento == "fraud_scorer:1.0.0"
    assert (status.rolled_back.reason, status.rolled_back.revision, status.rolled_back.at) == ("Aborted", rev("2.0.0"), ts(100))
    assert "step 1/2: canary 10%" in status.rolled_back.message
    assert status.history[-1].event == "Aborted" and [e.reason for e in aborted.events] == ["Aborted", "PhaseRolledBack"]
    assert aborted.events[0].type == "Warning"
    assert cond(aborted, "Degraded") == ("True", "RolledBack") and cond(aborted, "Ready") == ("True", "Available")
    assert status.controls == {"abort": "a1"}
    for minutes in range(1, 60):  # not retried while spec.model is unchanged
        later = cluster.reconcile(at(100 + 60 * minutes))
        assert later.events == [] and later.status.rolled_back == status.rolled_back and later.status.rollout is None
        assert later.status.phase == Phase.ROLLED_BACK and later.traffic.weights == {S: 100} and replicas_of(later, C) == 0
    assert labels(cluster.status.history).count("RolloutStarted") == 1


def test_abort_during_promotion_puts_stable_back_on_the_previous_model() -> None:
    cluster = issue_cluster()
    walk(cluster, JOURNEY[:-2])  # promoting, stable 2 of 4 on 2.0.0
    cluster.annotate("abort", "x")
    aborted = cluster.reconcile(at(1095))
    status = aborted.status
    assert status.phase == Phase.ROLLED_BACK and status.rollout is None
    assert status.stable_model.bento == "fraud_scorer:1.0.0" and status.previous_model is None
    assert workload_of(aborted, S).model.bento == "fraud_scorer:1.0.0" and replicas_of(aborted, S) == TOTAL
    assert aborted.traffic.weights == {S: 100} and replicas_of(aborted, C) == 2  # drained first
    assert (status.rolled_back.reason, status.rolled_back.revision) == ("Aborted", rev("2.0.0"))
    assert labels(status.history)[-2:] == ["PromotionStarted", "Aborted"]
    assert cluster.reconcile(at(1200)).events == [] and "Promoted" not in labels(cluster.status.history)


@pytest.mark.parametrize("control", ["promote", "promote-step", "abort"])
def test_controls_do_nothing_to_a_rolled_back_revision(control: str) -> None:
    cluster, aborted = abort_at_canary()
    cluster.annotate(control, "later")
    result = cluster.reconcile(at(200))
    assert result.status.phase == Phase.ROLLED_BACK
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "ControlIgnored")]
    assert "was rolled back; set headway.dev/retry" in result.events[0].message
    assert result.status.history[-1].event == "ControlIgnored"
    assert result.status.controls[control] == "later"  # consumed: it will not act on a later rollout
    assert cluster.reconcile(at(210)).events == []  # reported once


def steady_with_stale(control: str, value: str = "1764000000") -> Cluster:
    """Version 1 serves; a control is set while nothing rolls out; the operator sees it."""
    cluster = running(rollout_spec("1.0.0", [canary(10, "2m"), pause(), canary(50, "1m")]))
    cluster.annotate(control, value)
    ignored = cluster.reconcile(at(10))
    assert [(e.type, e.reason) for e in ignored.events] == [("Warning", "ControlIgnored")], ignored.events
    assert f"headway.dev/{control}={value} ignored" in ignored.events[0].message
    assert ignored.status.controls[control] == value and ignored.status.history[-1].event == "ControlIgnored"
    assert cluster.reconcile(at(20)).events == []  # reported once
    return cluster


@pytest.mark.parametrize("control", ["promote", "promote-step", "abort", "retry"])
def test_a_control_set_while_nothing_rolls_out_never_acts_on_a_later_rollout(control: str) -> None:
    cluster = steady_with_stale(control)
    cluster.set_model("2.0.0")  # days later, git changes spec.model
    started = cluster.reconcile(at(86400))
    assert non_phase(started.events) == ["RolloutStarted"]
    assert started.status.rollout is not None and not started.status.rollout.promoting and started.status.rolled_back is None
    canary = cluster.reconcile(at(86410))
    assert canary.traffic.weights == {S: 90, C: 10} and canary.status.rollout.step == 0
    gate = cluster.reconcile(at(86410 + 120))
    assert gate.status.phase == Phase.PAUSED and gate.status.rollout.step == 1  # the manual gate holds


def test_a_control_naming_another_version_is_ignored() -> None:
    cluster = canary_running()
    cluster.annotate("promote", "fraud_scorer:9.9.9")
    result = cluster.reconcile(at(80))
    assert [e.reason for e in result.events] == ["ControlIgnored"]
    assert "names fraud_scorer:9.9.9, but spec.model is fraud_scorer:2.0.0" in result.events[0].message
    assert result.status.rollout.step == 0 and not result.status.rollout.promoting


def test_a_control_naming_an_earlier_revision_is_ignored() -> None:
    cluster = canary_running()
    cluster.annotate("abort", rev("1.0.0"))  # the stable's revision, not the candidate's
    result = cluster.reconcile(at(80))
    assert [e.reason for e in result.events] == ["ControlIgnored"] and result.status.rollout is not None


@pytest.mark.parametrize("value", ["2026-11-29T04:58:12+00:00", "Sun Nov 29 04:58:12 UTC 2026", "1764392292"])
def test_a_timestamp_with_colons_names_no_version(value: str) -> None:
    cluster = canary_running()
    cluster.annotate("promote", value)
    assert cluster.reconcile(at(80)).status.rollout.promoting


def test_a_control_set_while_the_spec_is_invalid_never_acts_on_the_fixed_one() -> None:
    cluster = running(rollout_spec("1.0.0", [canary(10, "2m"), pause(), canary(50, "1m")]))
    cluster.spec = {**cluster.spec, "replicas": -1}
    cluster.annotate("promote", "p")
    invalid = cluster.reconcile(at(10))
    assert {"ControlIgnored", "InvalidSpec"} <= {e.reason for e in invalid.events}
    assert "the spec is invalid" in next(e.message for e in invalid.events if e.reason == "ControlIgnored")
    cluster.spec = {**cluster.spec, "replicas": 4, "model": model("2.0.0")}  # fixed, with a new version
    cluster.reconcile(at(20))
    result = cluster.reconcile(at(30))
    assert result.status.rollout is not None and not result.status.rollout.promoting and result.traffic.weights == {S: 90, C: 10}


@pytest.mark.parametrize("value", ["fraud_scorer:2.0.0", rev("2.0.0")])
def test_a_control_naming_the_version_rolling_out_acts(value: str) -> None:
    cluster = canary_running()
    cluster.annotate("promote", value)
    result = cluster.reconcile(at(80))
    assert result.status.rollout.promoting and "PromotionStarted" in [e.reason for e in result.events]


def test_a_deferred_promote_waits_for_its_candidate_only() -> None:
    """A promote given while 2.0.0 is not ready is bound to 2.0.0: it never promotes 3.0.0."""
    cluster, deferred = promote_before_ready()
    assert [e.reason for e in deferred.events] == ["PromoteDeferred"]
    assert [(d.control, d.value, d.revision) for d in deferred.status.deferred_controls] == [("promote", "p", rev("2.0.0"))]
    cluster.set_model("3.0.0")  # 2.0.0 is replaced before it ever became ready
    cluster.broken = set()
    replaced = cluster.reconcile(at(80))
    assert "ControlIgnored" in [e.reason for e in replaced.events] and replaced.status.deferred_controls == []
    assert "which is no longer rolling out" in next(e.message for e in replaced.events if e.reason == "ControlIgnored")
    for t in (90, 100, 110):
        result = cluster.reconcile(at(t))
        assert not result.status.rollout.promoting and "PromotionStarted" not in [e.reason for e in result.events]


def test_a_deferred_promote_acts_once_its_candidate_is_ready() -> None:
    cluster, _ = promote_before_ready()
    cluster.broken = set()
    cluster.reconcile(at(80))  # the candidate's pods come up
    promoted = cluster.reconcile(at(90))
    assert promoted.status.rollout.promoting and promoted.status.deferred_controls == []
    assert promoted.status.controls["promote"] == "p"


def test_retry_restarts_the_rollout_from_step_zero() -> None:
    cluster, aborted = abort_at_canary()
    cluster.annotate("retry", "r1")
    retried = cluster.reconcile(at(200))
    assert retried.status.rolled_back is None and retried.status.phase == Phase.PROGRESSING
    assert retried.status.rollout.step == 0 and retried.status.rollout.started_at == ts(200)
    assert labels(new_entries(aborted.status, retried.status))[:2] == ["Retried", "RolloutStarted"]
    assert replicas_of(retried, C) == 1 and retried.status.controls == {"abort": "a1", "retry": "r1"}
    # The same abort value does not abort the new attempt; a new value does.
    assert cluster.reconcile(at(210)).status.phase == Phase.PROGRESSING
    cluster.annotate("abort", "a2")
    assert cluster.reconcile(at(220)).status.rolled_back.reason == "Aborted"
    cluster.annotate("retry", "r1")
    assert cluster.reconcile(at(230)).status.phase == Phase.ROLLED_BACK  # the old retry value: no retry
    cluster.annotate("retry", "r2")
    assert cluster.reconcile(at(240)).status.phase == Phase.PROGRESSING


def test_retry_sends_no_traffic_to_a_candidate_still_at_zero_replicas() -> None:
    cluster, _ = abort_at_canary()
    cluster.reconcile(at(100) + DRAIN)
    assert cluster.live[C].replicas == 0 and cluster.live[C].available
    cluster.annotate("retry", "r1")
    retried = cluster.reconcile(at(200))
    assert_routes_only_to_ready(cluster.seen, retried, TOTAL)


def test_a_new_model_after_a_rollback_starts_a_new_rollout() -> None:
    cluster, _ = abort_at_canary()
    cluster.set_model("3.0.0")
    result = cluster.reconcile(at(200))
    assert result.status.rolled_back is None and result.status.phase == Phase.PROGRESSING
    assert result.status.rollout.revision == rev("3.0.0") and result.status.rollout.step == 0
    assert result.status.history[-1].event == "RolloutStarted" and result.status.history[-1].bento == "fraud_scorer:3.0.0"
    assert workload_of(result, C).model.bento == "fraud_scorer:3.0.0" and result.traffic.weights == {S: 100}


# --- spec.model edited during a rollout ------------------------------------------------

def test_a_new_model_mid_rollout_replaces_the_candidate_and_restarts_the_steps() -> None:
    cluster = canary_running()
    cluster.set_model("3.0.0")
    replaced = cluster.reconcile(at(100))
    assert non_phase(replaced.events) == ["CandidateReplaced"]
    assert replaced.status.history[-1].event == "CandidateReplaced" and "fraud_scorer:3.0.0" in replaced.status.history[-1].message
    assert replaced.status.rollout.revision == rev("3.0.0") and replaced.status.rollout.step == 0
    assert replaced.status.rollout.step_started_at is None
    assert workload_of(replaced, C).model.bento == "fraud_scorer:3.0.0"
    assert replaced.traffic.weights == {S: 100}, "the 2.0.0 pods lose their 10% at once"
    restarted = cluster.reconcile(at(110))
    assert restarted.status.rollout.step_started_at == ts(110) and restarted.traffic.weights == {S: 90, C: 10}
    assert restarted.status.candidate.revision == rev("3.0.0")


def test_reverting_the_model_mid_rollout_cancels_it() -> None:
    cluster = canary_running()
    cluster.set_model("1.0.0")
    cancelled = cluster.reconcile(at(100))
    assert cancelled.status.history[-1].event == "RolloutCancelled"
    assert cancelled.status.rollout is None and cancelled.status.candidate is None
    assert [w.variant for w in cancelled.workloads] == [S] and cancelled.traffic.weights == {S: 100}
    assert cancelled.status.phase == Phase.SUCCEEDED and cancelled.status.stable_model.bento == "fraud_scorer:1.0.0"
    assert cluster.reconcile(at(110)).events == []


# --- the candidate fails mid-rollout ---------------------------------------------------

def test_an_unavailable_candidate_holds_the_rollout_on_stable_then_restarts_the_step() -> None:
    cluster = canary_running()
    cluster.broken = {C}
    cluster.live[C] = deployment_state(workload_of(cluster.last, C), 0)
    held = cluster.reconcile(at(100))
    assert held.traffic.weights == {S: 100} and held.status.phase == Phase.DEGRADED
    assert held.status.rollout.hold_reason == "CandidateUnavailable" and held.status.rollout.step_started_at is None
    assert held.status.history[-1].event == "CandidateUnavailable" and held.events[0].type == "Warning"
    assert cond(held, "Degraded")[0] == "True" and cond(held, "Ready") == ("True", "Available")
    assert replicas_of(held, C) == 1, "the candidate keeps its size to recover"
    still = cluster.reconcile(at(1000))  # far past the 2 min: holds, no new Events
    assert still.status.rollout.step == 0 and still.events == [] and still.traffic.weights == {S: 100}
    cluster.broken = set()
    cluster.live[C] = deployment_state(workload_of(cluster.last, C))
    back = cluster.reconcile(at(1010))
    assert back.traffic.weights == {S: 90, C: 10} and back.status.phase == Phase.PROGRESSING
    assert back.status.rollout.step_started_at == ts(1010) and back.status.rollout.hold_reason is None
    assert labels(new_entries(still.status, back.status)) == ["StepStarted 1/2"]
    assert cluster.reconcile(at(1129)).status.rollout.step == 0  # the step's clock restarted
    assert cluster.reconcile(at(1130)).status.rollout.step == 1


def test_a_candidate_failing_between_steps_also_holds_as_degraded() -> None:
    cluster = canary_running()
    cluster.reconcile(at(190))  # canary 10% done: resizing for canary 50%, 10% kept meanwhile
    assert cluster.status.rollout.step == 1 and cluster.last.traffic.weights == {S: 90, C: 10}
    cluster.frozen = {C}
    cluster.live[C] = deployment_state(workload_of(cluster.last, C), 0)
    down = cluster.reconcile(at(200))
    assert down.traffic.weights == {S: 100}
    assert down.status.phase == Phase.DEGRADED
    assert "CandidateUnavailable" in [e.reason for e in down.events]


def test_a_candidate_scaling_up_keeps_its_traffic_though_the_available_condition_drops() -> None:
    """With maxUnavailable 0, a Deployment scaling 1 -> 2 reports Available=False (1 < 2 - 0)
    while its one pod still serves: that is not unavailability, and no reason to hold."""
    cluster = canary_running()
    cluster.reconcile(at(190))  # canary 10% done: the candidate grows for canary 50%
    assert cluster.status.rollout.step == 1 and cluster.last.traffic.weights == {S: 90, C: 10}
    cluster.frozen = {C}
    scaling = deployment_state(workload_of(cluster.last, C), 1)
    cluster.live[C] = DeploymentState(**{**scaling.__dict__, "available": False, "complete": False})
    growing = cluster.reconcile(at(195))
    assert growing.traffic.weights == {S: 90, C: 10} and growing.status.phase == Phase.PROGRESSING
    assert "CandidateUnavailable" not in [e.reason for e in growing.events]


def test_a_resize_not_yet_seen_by_the_controller_is_not_unavailability() -> None:
    """Right after Headway resizes the candidate, its Deployment's status is the previous one
    (observedGeneration behind): the pods it counts still serve this revision."""
    cluster = canary_running()
    resized = replace(cluster.live[C], replicas=2, observed=False, current_available=0, complete=False)
    cluster.live[C] = resized
    result = cluster.reconcile(at(100))
    assert result.traffic.weights == {S: 90, C: 10} and "CandidateUnavailable" not in [e.reason for e in result.events]


def test_pods_of_a_replaced_candidate_do_not_count_for_the_new_one() -> None:
    """spec.model changes mid-rollout: the candidate Deployment's label names the new revision at
    once, but until its new pods are available only the old ones serve (maxUnavailable 0)."""
    cluster = canary_running()
    cluster.set_model("3.0.0")
    replaced = cluster.reconcile(at(100))
    assert "CandidateReplaced" in [e.reason for e in replaced.events]
    old_pods_only = replace(deployment_state(workload_of(replaced, C)), current_available=0, complete=False)
    cluster.live[C] = old_pods_only  # available 1 (the old pod), updated 0
    waiting = cluster.reconcile(at(110))
    assert waiting.traffic.weights == {S: 100} and waiting.status.rollout.step_started_at is None


# --- the analysis gate ------------------------------------------------------------------

@pytest.mark.parametrize("result, advances, slos_met", [
    ("Inconclusive", False, "Unknown"),
    ("Fail", False, "False"),
    ("Pass", True, "True"),
])
def test_the_gate_must_pass_for_a_step_to_advance(result: str, advances: bool, slos_met: str) -> None:
    cluster = canary_running()
    gate = Gate(result, f"analysis: {result}", evidence={"errorRate": {"value": 0.001, "verdict": result}})  # type: ignore[arg-type]
    early = cluster.reconcile(at(100), gate)
    assert early.status.rollout.step == 0, "the duration comes first"
    after = cluster.reconcile(at(190), gate)
    assert cond(after, "SLOsMet")[0] == slos_met
    assert after.status.rollout.step == (1 if advances else 0)
    if advances:
        entry = after.status.history[-1]
        assert entry.event == "StepCompleted" and "analysis passed" in entry.message and entry.evidence["analysis"] == gate.evidence
    else:
        assert after.events == [] and after.status.phase == Phase.PROGRESSING and after.traffic.weights == {S: 90, C: 10}
        assert "waiting for a passing analysis" in next(c.message for c in after.status.conditions if c.type == "Progressing")
        assert cluster.reconcile(at(3600), gate).status.rollout.step == 0


def test_a_gate_asking_for_rollback_rolls_back_with_its_evidence() -> None:
    cluster = canary_running()
    evidence = {"errorRate": {"value": 0.05, "threshold": 0.01, "samples": 900, "verdict": "Fail"}}
    gate = Gate("Fail", "error rate 5% > 1% (2 failures)", rollback=True, evidence=evidence)
    result = cluster.reconcile(at(100), gate)
    status = result.status
    assert status.phase == Phase.ROLLED_BACK and result.traffic.weights == {S: 100} and replicas_of(result, C) == 1
    assert replicas_of(cluster.reconcile(at(100) + DRAIN), C) == 0  # after the drain
    assert (status.rolled_back.reason, status.rolled_back.message) == ("FailedAnalysis", gate.message)
    entry = status.history[-1]
    assert (entry.event, entry.evidence["analysis"], entry.revision) == ("RolledBack", evidence, rev("2.0.0"))
    assert entry.evidence["weights"] == {S: 100}
    assert "FailedAnalysis" in entry.message and result.events[0].type == "Warning"
    for gate_now in (None, Gate("Pass", "ok")):  # a later verdict does not resurrect it
        assert cluster.reconcile(at(200), gate_now).status.phase == Phase.ROLLED_BACK
    assert labels(cluster.status.history).count("RolledBack") == 1


# --- provider none: the canary weight is a replica ratio -------------------------------

def none_rollout() -> Cluster:
    return running(rollout_spec("1.0.0", [canary(25, "1m"), canary(50, "1m")], traffic=None))


def test_without_a_router_the_canary_weight_is_a_replica_ratio() -> None:
    """Documented approximation: both variants' pods sit behind one Service, so weight = share of pods."""
    cluster = none_rollout()
    cluster.set_model("2.0.0")
    entering = cluster.reconcile(at(60))
    assert (replicas_of(entering, S), replicas_of(entering, C)) == (4, 1), "no weight yet: stable keeps all 4"
    quarter = cluster.reconcile(at(70))
    assert quarter.traffic.weights == {S: 75, C: 25}, "status still says the intended weights"
    assert (replicas_of(quarter, S), replicas_of(quarter, C)) == (3, 1)  # 1 of 4 pods = 25%
    cluster.reconcile(at(130))
    half = cluster.reconcile(at(140))
    assert half.traffic.weights == {S: 50, C: 50} and (replicas_of(half, S), replicas_of(half, C)) == (2, 2)
    assert replicas_of(half, S) + replicas_of(half, C) == TOTAL


def test_without_a_router_a_small_weight_is_rounded_up_to_one_pod() -> None:
    cluster = running(rollout_spec("1.0.0", [canary(10, "1m")], traffic=None))
    cluster.set_model("2.0.0")
    cluster.reconcile(at(60))
    result = cluster.reconcile(at(70))
    assert result.traffic.weights == {S: 90, C: 10}
    assert (replicas_of(result, S), replicas_of(result, C)) == (3, 1)  # really 25%: the smallest share is 1/4


def test_without_a_router_resizing_for_the_next_step_keeps_the_current_ratio() -> None:
    cluster = none_rollout()
    cluster.set_model("2.0.0")
    cluster.reconcile(at(60))
    cluster.reconcile(at(70))
    resizing = cluster.reconcile(at(130))
    assert resizing.status.rollout.step == 1 and resizing.traffic.weights == {S: 75, C: 25}
    assert replicas_of(resizing, C) == 2
    assert replicas_of(resizing, S) == 3


def test_without_a_router_promotion_keeps_capacity() -> None:
    cluster = none_rollout()
    cluster.set_model("2.0.0")
    for t in (60, 70, 130, 140, 200):
        cluster.reconcile(at(t))
    assert cluster.status.phase == Phase.PROMOTING
    promoted = cluster.reconcile(at(210))
    assert promoted.status.history[-1].event == "Promoted"
    assert cluster.seen[S].ready_replicas >= TOTAL, "candidate removed while stable had fewer than 4 pods ready"


# --- history and Events ----------------------------------------------------------------

def issue_history() -> list[Any]:
    cluster = issue_cluster()
    walk(cluster)
    return cluster.status.history


def aborted_history() -> list[Any]:
    return abort_at_canary()[1].status.history


def rolled_back_history() -> list[Any]:
    cluster = canary_running()
    return cluster.reconcile(at(100), Gate("Fail", "bad", rollback=True, evidence={"errorRate": 0.5})).status.history


@pytest.mark.parametrize("event, history", [
    pytest.param("StepStarted", issue_history, id="StepStarted"),
    *[pytest.param(event, fn, id=event)
      for event, fn, where in (
          ("PromotionStarted", issue_history, "_start_promotion"),
          ("Promoted", issue_history, "_promoting (evidence is readyReplicas only)"),
          ("Aborted", aborted_history, "_roll_back"),
          ("RolledBack", rolled_back_history, "_roll_back (only the gate's evidence)"),
      )],
])
def test_history_of_steps_promotions_and_aborts_carries_weights_and_time(event: str, history: Callable[[], list[Any]]) -> None:
    entries = [e for e in history() if e.event == event]
    assert entries
    for entry in entries:
        assert entry.time.endswith("Z") and entry.revision == rev("2.0.0")
        assert entry.evidence is not None and "weights" in entry.evidence


def test_history_stays_bounded_through_many_rollouts() -> None:
    cluster = canary_running()
    for i in range(30):
        cluster.set_model(f"3.{i}.0")
        cluster.reconcile(at(200 + i))
    history = cluster.status.history
    assert len(history) == 20
    assert history[-1].event == "CandidateReplaced" and history[-1].bento == "fraud_scorer:3.29.0"
    assert [e.time for e in history] == sorted(e.time for e in history)


@pytest.mark.parametrize("spec", [
    rollout_spec("1.0.0"),
    rollout_spec("1.0.0", [canary(25, "1m")], traffic=None),
    rollout_spec("1.0.0", [shadow(100, "15m"), canary(5, "5m"), pause("10m"), pause()]),
])
def test_the_specs_used_here_are_valid_and_fully_acted_on(spec: dict[str, Any]) -> None:
    result = Cluster(spec=spec).reconcile(at(0))
    assert result.status.problems == [] and result.status.ignored_fields == [] and result.workloads is not None


def test_an_invalid_spec_freezes_the_rollout_and_its_clock() -> None:
    cluster = canary_running()  # canary 10% for 2m, started at t=70
    good = cluster.spec
    cluster.spec = {**good, "replicas": -1}
    frozen = cluster.reconcile(at(100))
    progressing = next(c for c in frozen.status.conditions if c.type == "Progressing")
    assert frozen.status.phase == Phase.DEGRADED and frozen.workloads is None  # nothing touched
    assert progressing.reason == "InvalidSpec" and "frozen at step 1 (stable=90 candidate=10)" in progressing.message
    phase_event = next(e for e in frozen.events if e.reason == "PhaseDegraded")
    assert "the spec is invalid" in phase_event.message and "spec.replicas" in phase_event.message
    cluster.reconcile(at(500))
    cluster.spec = good  # fixed 400 s later: 90 s of the step are left
    assert cluster.reconcile(at(600)).status.rollout.step == 0
    assert cluster.reconcile(at(680)).status.rollout.step == 0
    assert cluster.reconcile(at(700)).status.rollout.step == 1


def test_a_misspelt_control_is_reported_once() -> None:
    cluster = at_the_gate()
    cluster.annotate("promote_step", "1")
    result = cluster.reconcile(at(1010))
    [event] = [e for e in result.events if e.reason == "ControlIgnored"]
    assert event.message == "headway.dev/promote_step=1 ignored: not a Headway control (did you mean headway.dev/promote-step?)"
    assert result.status.phase == Phase.PAUSED  # the gate holds
    assert cluster.reconcile(at(1020)).events == []


def test_escalation_annotations_are_not_reported_as_misspelt_controls() -> None:
    """headway.dev/owner, escalation, runbook and pager are read by `headway plan`, not controls."""
    cluster = running(rollout_spec("1.0.0", [canary(10, "2m")]))
    for name in ("owner", "escalation", "runbook", "pager"):
        cluster.annotate(name, "ml-platform@example.com")
    cluster.annotate("ownr", "x")  # a real typo is still reported
    result = cluster.reconcile(at(10))
    assert [(e.reason, e.message.split(" ignored")[0]) for e in result.events] == [("ControlIgnored", "headway.dev/ownr=x")]
