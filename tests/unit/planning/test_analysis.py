"""When the analysis measures, what window it judges, and how verdicts gate the rollout."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import BakeStatus, ModelDeploymentStatus, RolloutStatus
from headway.planning import analysis
from headway.planning.verdicts import Verdict

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
MODEL = {"bento": "fraud_scorer:2.0.0", "image": "registry.example.com/fraud:2"}


def spec(**analysis_fields: object) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({
        "model": MODEL, "rollout": {"steps": [{"canary": {"weight": 10, "duration": "5m"}}, {"pause": {}}]},
        "analysis": {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}], "failureLimit": 2, **analysis_fields},
    })


def running_step(step: int = 0, started: str = "2026-11-22T12:00:00Z") -> ModelDeploymentStatus:
    return ModelDeploymentStatus(rollout=RolloutStatus(revision="rev2", bento="fraud_scorer:2.0.0", step=step, step_started_at=started))


def verdict(result: str) -> Verdict:
    return Verdict(slo="errorRate", result=result, value=0.02, threshold=0.01, samples=500, baseline_value=0.001,  # type: ignore[arg-type]
                   statistic=40.0, p_value=0.001, reason=f"{result} for the test")


def test_a_running_canary_step_is_judged_against_stable_since_the_step_began() -> None:
    req = analysis.request(spec(), running_step(), T0 + timedelta(minutes=1))
    assert req is not None and req.purpose == "step" and req.revision == "rev2"
    assert req.window_start == T0 and req.targets == (("candidate", "stable"),)


@pytest.mark.parametrize("status", [
    ModelDeploymentStatus(),                                       # no rollout
    running_step(step=1),                                          # a pause step: nothing to judge
    running_step(started=None),                                    # the step has not started (no traffic yet)
    ModelDeploymentStatus(rollout=RolloutStatus(revision="r", bento="b", promoting=True, step_started_at="2026-11-22T12:00:00Z")),
])
def test_nothing_to_judge(status: ModelDeploymentStatus) -> None:
    assert analysis.request(spec(), status, T0) is None


def test_no_analysis_configured() -> None:
    plain = ModelDeploymentSpec.model_validate({"model": MODEL})
    assert analysis.request(plain, running_step(), T0) is None


def test_the_bake_judges_the_new_stable_alone() -> None:
    status = ModelDeploymentStatus(bake=BakeStatus(revision="rev2", bento="b", since="2026-11-22T12:00:00Z", until="2026-11-22T12:30:00Z"))
    req = analysis.request(spec(), status, T0 + timedelta(minutes=10))
    assert req is not None and req.purpose == "bake" and req.targets == (("stable", None),)
    assert analysis.request(spec(), status, T0 + timedelta(minutes=31)) is None


def test_measures_at_a_new_window_then_every_interval() -> None:
    cfg = spec().analysis
    assert cfg is not None
    req = analysis.request(spec(), running_step(), T0)
    assert req is not None
    assert not analysis.due(cfg, None, req, T0)  # a fresh window holds no scrapes yet
    assert analysis.due(cfg, None, req, T0 + timedelta(seconds=30))
    first = analysis.record(cfg, None, req, [("candidate", verdict("Inconclusive"))], None, T0 + timedelta(seconds=30))
    assert not analysis.due(cfg, first, req, T0 + timedelta(seconds=59))
    assert analysis.due(cfg, first, req, T0 + timedelta(seconds=60))
    next_step = analysis.request(spec(), running_step(started="2026-11-22T12:05:00Z"), T0 + timedelta(minutes=5))
    assert next_step is not None and not analysis.due(cfg, first, next_step, T0 + timedelta(minutes=5, seconds=1))
    assert analysis.due(cfg, first, next_step, T0 + timedelta(minutes=5, seconds=30))


def test_failure_limit_consecutive_fails_roll_back_with_the_evidence() -> None:
    cfg = spec().analysis
    req = analysis.request(spec(), running_step(), T0)
    assert cfg is not None and req is not None
    one = analysis.record(cfg, None, req, [("candidate", verdict("Fail"))], None, T0)
    gate = analysis.gate(cfg, one, req)
    assert (gate.result, gate.rollback, one.consecutive_failures) == ("Fail", False, 1)
    two = analysis.record(cfg, one, req, [("candidate", verdict("Fail"))], None, T0 + timedelta(seconds=30))
    gate = analysis.gate(cfg, two, req)
    assert gate.rollback and "failureLimit 2" in gate.message
    assert gate.evidence is not None and gate.evidence["verdicts"][0]["pValue"] == 0.001
    assert two.runs == 2


def test_a_pass_resets_the_failure_count() -> None:
    cfg = spec().analysis
    req = analysis.request(spec(), running_step(), T0)
    assert cfg is not None and req is not None
    status = analysis.record(cfg, None, req, [("candidate", verdict("Fail"))], None, T0)
    status = analysis.record(cfg, status, req, [("candidate", verdict("Pass"))], None, T0 + timedelta(seconds=30))
    status = analysis.record(cfg, status, req, [("candidate", verdict("Fail"))], None, T0 + timedelta(seconds=60))
    assert status.consecutive_failures == 1 and not analysis.gate(cfg, status, req).rollback


@pytest.mark.parametrize("error", [None, "connection refused"])
def test_failure_limit_counts_consecutive_fails_an_inconclusive_breaks_the_run(error: str | None) -> None:
    cfg = spec().analysis  # failureLimit 2
    req = analysis.request(spec(), running_step(), T0)
    assert cfg is not None and req is not None
    status = None
    for i, result in enumerate(["Fail", "Inconclusive", "Fail"]):
        status = analysis.record(cfg, status, req, [("candidate", verdict(result))], error if result == "Inconclusive" else None,
                                 T0 + timedelta(seconds=30 * i))
        assert not analysis.gate(cfg, status, req).rollback, f"rolled back after look {i + 1} ({result})"
    assert status is not None and status.consecutive_failures == 1 and status.consecutive_inconclusive == 0
    status = analysis.record(cfg, status, req, [("candidate", verdict("Fail"))], None, T0 + timedelta(seconds=90))
    assert status.consecutive_failures == 2 and analysis.gate(cfg, status, req).rollback


@pytest.mark.parametrize("on_inconclusive, rollback", [("hold", False), ("rollback", True)])
def test_too_many_inconclusive_measurements(on_inconclusive: str, rollback: bool) -> None:
    s = spec(inconclusiveLimit=3, onInconclusive=on_inconclusive)
    cfg, req = s.analysis, analysis.request(s, running_step(), T0)
    assert cfg is not None and req is not None
    status = None
    for i in range(3):
        status = analysis.record(cfg, status, req, [("candidate", verdict("Inconclusive"))], "connection refused", T0 + timedelta(seconds=30 * i))
    gate = analysis.gate(cfg, status, req)
    assert gate.result == "Inconclusive" and gate.rollback is rollback
    assert "3 inconclusive analyses in a row" in gate.message


def test_a_stale_measurement_does_not_gate_a_new_window() -> None:
    cfg = spec().analysis
    old = analysis.request(spec(), running_step(), T0)
    assert cfg is not None and old is not None
    passed = analysis.record(cfg, None, old, [("candidate", verdict("Pass"))], None, T0)
    new = analysis.request(spec(), running_step(started="2026-11-22T12:05:00Z"), T0 + timedelta(minutes=5))
    assert new is not None
    assert analysis.gate(cfg, passed, new).result == "Inconclusive"
