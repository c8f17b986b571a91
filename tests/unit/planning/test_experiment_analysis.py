"""Experiments under analysis: per-variant verdicts, a failing variant rolled back, the decide test."""

from __future__ import annotations

from typing import Any

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import AnalysisStatus, ExperimentDecision, ModelDeploymentStatus
from headway.planning import analysis
from headway.planning.measure import Judgement
from headway.planning.observe import Observation
from headway.planning.plan import plan
from headway.planning.rollout import Gate
from headway.planning.verdicts import RequestCounts, VariantData, Verdict
from tests.unit.planning.rollout_cases import OWNER, STABLE, at, deployment_state, model
from tests.unit.planning.test_experiment import experimenting, experiment_spec

S = STABLE


def with_analysis(spec: dict[str, Any], **decide: Any) -> dict[str, Any]:
    spec = {**spec, "analysis": {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}], "failureLimit": 2}}
    if decide:
        spec["experiment"] = {**spec["experiment"], "decide": decide}
    return spec


def fail(arm: str) -> Verdict:
    return Verdict(slo="errorRate", result="Fail", value=0.2, threshold=0.01, samples=900, baseline_value=0.001,
                   statistic=80.0, p_value=0.0001, reason="breach")


def test_each_arm_is_judged_against_control_over_one_window() -> None:
    spec = ModelDeploymentSpec.model_validate(with_analysis(experiment_spec()))
    req = analysis.request(spec, ModelDeploymentStatus(), at(0))
    assert req is not None and req.purpose == "experiment"
    assert req.targets == (("treatment", S), ("challenger", S))
    measured = analysis.record(spec.analysis, None, req, [], None, at(0))  # type: ignore[arg-type]
    later = analysis.request(spec, ModelDeploymentStatus(analysis=measured), at(600))
    assert later is not None and later.window_start == at(0)  # the window keeps growing
    changed = ModelDeploymentSpec.model_validate(with_analysis(experiment_spec()) | {})
    changed_exp = changed.model_copy(update={"experiment": changed.experiment.model_copy(update={  # type: ignore[union-attr]
        "variants": [v if v.name != "treatment" else v.model_copy(update={"model": ModelDeploymentSpec.model_validate({"model": model("2.1.0")}).model})
                     for v in changed.experiment.variants]})})  # type: ignore[union-attr]
    fresh = analysis.request(changed_exp, ModelDeploymentStatus(analysis=measured), at(600))
    assert fresh is not None and fresh.window_start == at(600)  # a new model for an arm: a new window


def test_a_failing_arm_is_rolled_back_to_control_and_stays_so() -> None:
    cluster = experimenting()
    cluster.spec = with_analysis(cluster.spec)
    spec = ModelDeploymentSpec.model_validate(cluster.spec)
    req = analysis.request(spec, cluster.status, at(20))
    assert req is not None
    status: AnalysisStatus | None = None
    for i in range(2):
        status = analysis.record(spec.analysis, status, req, [("treatment", fail("treatment"))], None, at(20 + 30 * i))  # type: ignore[arg-type]
    gate = analysis.gate(spec.analysis, status, req)  # type: ignore[arg-type]
    assert gate.rollback
    result = plan(OWNER, Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live)), at(80), Judgement(status=status, gate=gate))
    assert result.traffic.weights == {S: 80, "treatment": 0, "challenger": 20}
    assert all(p.variant != "treatment" for p in result.traffic.pins)
    assert result.status.suspended_variants and result.status.suspended_variants[0].startswith("treatment@")
    assert [e.reason for e in result.events if e.reason == "RolledBack"] == ["RolledBack"]
    assert result.status.history[-1].evidence == gate.evidence
    again = plan(OWNER, Observation(cluster.spec, 1, {}, result.status, dict(cluster.live)), at(200), Judgement(gate=Gate("Pass", "ok")))
    assert again.traffic.weights["treatment"] == 0 and "RolledBack" not in [e.reason for e in again.events]


def test_decide_runs_once_enough_samples_then_promotes_the_winner_when_asked() -> None:
    spec = ModelDeploymentSpec.model_validate(with_analysis(experiment_spec(), metric="errorRate", minSamples=1000, promoteWinner=True))
    thin = {S: VariantData(RequestCounts(500, 10)), "treatment": VariantData(RequestCounts(300, 1)), "challenger": VariantData(RequestCounts(200, 6))}
    early = analysis.decide_experiment(spec, None, thin, at(0))
    assert early is not None and early.result == "Inconclusive" and early.decided_at is None
    data = {S: VariantData(RequestCounts(50000, 1000)), "treatment": VariantData(RequestCounts(30000, 90)),
            "challenger": VariantData(RequestCounts(20000, 420))}
    decided = analysis.decide_experiment(spec, early, data, at(600))
    assert decided is not None and decided.result == "Winner" and decided.winner == "treatment"
    assert decided.p_value is not None and decided.p_value < 0.05 and decided.decided_at is not None
    assert analysis.decide_experiment(spec, decided, thin, at(900)) == decided  # final: not re-tested

    cluster = experimenting()
    cluster.spec = with_analysis(experiment_spec(), metric="errorRate", minSamples=1000, promoteWinner=True)
    growing = plan(OWNER, Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live)), at(600), Judgement(decision=decided))
    # Capacity first: the winner (2 pods for its 30%) is sized for all traffic before it gets it.
    assert growing.traffic.weights == {S: 50, "treatment": 30, "challenger": 20}
    assert [w.replicas for w in growing.workloads if w.variant == "treatment"] == [4]
    cluster.live["treatment"] = deployment_state(next(w for w in growing.workloads if w.variant == "treatment"))
    result = plan(OWNER, Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live)), at(600), Judgement(decision=decided))
    assert result.traffic.weights == {S: 0, "treatment": 100, "challenger": 0} and result.traffic.pins == ()
    assert result.status.experiment_decision is not None and result.status.experiment_decision.promoted
    assert [e.reason for e in result.events] == ["ExperimentDecided", "WinnerPromoted", "WeightChanged", "WeightChanged", "WeightChanged"]
    after = plan(OWNER, Observation(cluster.spec, 1, {}, result.status, dict(cluster.live)), at(700), Judgement(decision=result.status.experiment_decision))
    assert after.events == [] and after.traffic.weights["treatment"] == 100


def test_without_promote_winner_the_decision_is_only_recorded() -> None:
    cluster = experimenting()
    cluster.spec = with_analysis(experiment_spec(), metric="errorRate", minSamples=1000)
    decision = ExperimentDecision(revision="x", metric="errorRate", result="Winner", winner="treatment", p_value=0.001,
                                  decided_at="2026-11-22T12:10:00Z")
    result = plan(OWNER, Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live)), at(600), Judgement(decision=decision))
    assert result.traffic.weights == {S: 50, "treatment": 30, "challenger": 20}
    assert [e.reason for e in result.events] == ["ExperimentDecided"]
    assert result.status.experiment_decision == decision


def test_an_experiment_under_analysis_is_measured_one_interval_after_it_starts() -> None:
    cluster = experimenting()
    cluster.spec = with_analysis(experiment_spec())
    opened = plan(OWNER, Observation(cluster.spec, 1, {}, cluster.status, dict(cluster.live)), at(20))
    assert opened.status.analysis is not None and opened.status.analysis.purpose == "experiment"
    assert opened.measure is not None and opened.measure.due_at == at(50) and opened.wake_at == at(50)
    later = plan(OWNER, Observation(cluster.spec, 1, {}, opened.status, dict(cluster.live)), at(50))
    assert later.measure is not None and later.measure.due_at == at(50)  # due now: the runtime measures it
    assert later.measure.purpose == "experiment" and set(later.measure.variants) == {S, "treatment", "challenger"}
