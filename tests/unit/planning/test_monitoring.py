"""spec.monitoring in the plan: when counts are asked for, what status, conditions and Events say,
and the prediction comparison's gate on a step."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from headway.api.profile import BinnedFeature, ReferenceProfile
from headway.api.status import ModelDeploymentStatus, Phase
from headway.planning import monitoring
from headway.planning.monitoring import MonitorResult, monitor_request
from headway.planning.naming import CANDIDATE, STABLE
from headway.planning.observe import observe_deployment, parse_status
from headway.planning.plan import Observation, Plan, plan
from tests.unit.planning.test_plan_steady import MODEL, OWNER, deployment

EVERY = timedelta(minutes=5)
# Each ModelDeployment's grid is offset by a hash of its uid (a fleet's checks are spread out).
POINT = monitoring._grid(datetime(2026, 11, 22, 12, 0, 30, tzinfo=timezone.utc), EVERY, monitoring._origin(OWNER, EVERY))
T0 = POINT + timedelta(seconds=30)  # 30 s past a grid point
MONITORING = {"profile": {"configMap": "fraud-profile"}, "window": "1h", "interval": "5m"}
SPEC = {"model": MODEL, "replicas": 2, "monitoring": MONITORING}
AMOUNT = BinnedFeature(kind="numeric", edges=(10.0, 100.0), expected=(0.3, 0.5, 0.2, 0.0), samples=20_000)
COUNTRY = BinnedFeature(kind="categorical", categories=("US", "DE"), expected=(0.6, 0.3, 0.1, 0.0), samples=20_000)
LABEL = BinnedFeature(kind="categorical", categories=("legit", "fraud"), expected=(0.97, 0.03, 0.0, 0.0), samples=20_000)
PROFILE = ReferenceProfile(features={"amount": AMOUNT, "country": COUNTRY}, prediction=LABEL)


def slices(feature: BinnedFeature, shares: tuple[float, ...], n: int, count: int = 12, seed: int = 1) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [dict(zip(feature.bins, map(float, rng.multinomial(n // count, shares)))) for _ in range(count)]


def drift_counts(amount: tuple[float, ...] = AMOUNT.expected, n: int = 6000) -> dict[str, Any]:
    return {"drift": {"feature:amount": slices(AMOUNT, amount, n), "feature:country": slices(COUNTRY, COUNTRY.expected, n, seed=2),
                      "prediction": slices(LABEL, LABEL.expected, n, seed=3)}}


def steady(previous: ModelDeploymentStatus, now: datetime, result: MonitorResult | None = None, spec: dict[str, Any] = SPEC) -> Plan:
    obs = Observation(raw_spec=spec, generation=1, annotations={}, previous=previous,
                      live={STABLE: observe_deployment(deployment(2))}, monitoring=result, default_metrics_url="http://prometheus:9090")
    return plan(OWNER, obs, now)


def serving() -> ModelDeploymentStatus:
    first = steady(ModelDeploymentStatus(phase=Phase.PENDING), T0)
    return parse_status(first.status.dump())


def answered(p: Plan, counts: dict[str, Any], profile: ReferenceProfile | None = PROFILE, error: str | None = None) -> MonitorResult:
    assert p.monitor is not None
    return MonitorResult(p.monitor, profile, counts, error, p.monitor.due_at + timedelta(seconds=2))


def condition(status: ModelDeploymentStatus) -> tuple[str, str, str]:
    c = next(c for c in status.conditions if c.type == "DataDrift")
    return c.status, c.reason, c.message


def test_counts_are_asked_for_on_the_interval_grid_over_the_last_window() -> None:
    status = serving()
    p = steady(status, T0 + timedelta(seconds=5))
    assert p.monitor is not None and p.monitor.drift is not None
    assert (p.monitor.drift.start, p.monitor.drift.end, p.monitor.drift.slices) == (POINT - timedelta(hours=1), POINT, 60)
    assert p.monitor.due_at == POINT and p.monitor.profile.config_map == "fraud-profile"
    assert condition(p.status)[:2] == ("Unknown", "NotChecked")
    # The same request at every reconcile of the interval: the measurer fetches it once.
    assert steady(status, T0 + timedelta(minutes=2)).monitor == p.monitor


def test_a_drifted_feature_sets_data_drift_with_its_evidence_then_clears() -> None:
    status = serving()
    p = steady(status, T0)
    shifted = steady(status, T0 + timedelta(seconds=3), answered(p, drift_counts(amount=(0.1, 0.4, 0.5, 0.0))))
    assert condition(shifted.status)[:2] == ("True", "Drifted")
    assert "amount" in condition(shifted.status)[2] and shifted.status.monitoring is not None
    assert shifted.status.monitoring.drifted == ["amount"]
    amount = next(f for f in shifted.status.monitoring.features if f.feature == "amount")
    assert amount.result == "Drifted" and amount.psi is not None and amount.psi > 0.1 and amount.samples == 6000
    assert amount.top_bins[0].bin == "[100, +inf)" and amount.top_bins[0].observed > amount.top_bins[0].expected
    assert {f.feature: f.result for f in shifted.status.monitoring.features} == {
        "amount": "Drifted", "country": "NoDrift", "prediction": "NoDrift"}
    assert [e.reason for e in shifted.events] == ["DataDrift"]
    assert shifted.status.history[-1].event == "DataDrift" and shifted.status.history[-1].evidence is not None

    # Checked for this grid point: nothing more is asked until the next one, and a replan posts nothing.
    again = steady(parse_status(shifted.status.dump()), T0 + timedelta(minutes=1), answered(p, drift_counts(amount=(0.1, 0.4, 0.5, 0.0))))
    assert again.events == [] and again.monitor is not None and again.monitor.drift is None
    assert again.monitor.due_at == POINT + EVERY and again.wake_at == again.monitor.due_at

    later = steady(parse_status(shifted.status.dump()), T0 + timedelta(minutes=5))
    calm = steady(parse_status(shifted.status.dump()), T0 + timedelta(minutes=5, seconds=3), answered(later, drift_counts()))
    assert condition(calm.status)[:2] == ("False", "NoDrift")
    assert [e.reason for e in calm.events] == ["DataDriftCleared"]


def test_too_few_samples_are_not_judged() -> None:
    status = serving()
    p = steady(status, T0)
    thin = steady(status, T0 + timedelta(seconds=3), answered(p, drift_counts(amount=(0.1, 0.4, 0.5, 0.0), n=120)))
    assert condition(thin.status)[:2] == ("Unknown", "InsufficientData")
    assert thin.events == []


def test_a_missing_profile_is_reported_once_and_retried_on_the_next_interval() -> None:
    status = serving()
    p = steady(status, T0)
    failed = steady(status, T0 + timedelta(seconds=3), answered(p, {}, None, "ConfigMap ml/fraud-profile does not exist"))
    assert condition(failed.status) == ("Unknown", "CheckFailed", "ConfigMap ml/fraud-profile does not exist")
    assert [(e.type, e.reason) for e in failed.events] == [("Warning", "MonitoringFailed")]
    stored = parse_status(failed.status.dump())
    assert steady(stored, T0 + timedelta(minutes=1)).monitor.drift is None  # type: ignore[union-attr]
    retry = steady(stored, T0 + timedelta(minutes=5))
    again = steady(stored, T0 + timedelta(minutes=5, seconds=3), answered(retry, {}, None, "ConfigMap ml/fraud-profile does not exist"))
    assert again.events == []  # the same error: no second Event
    fixed = steady(stored, T0 + timedelta(minutes=5, seconds=3), answered(retry, drift_counts()))
    assert [e.reason for e in fixed.events] == ["MonitoringRecovered"] and condition(fixed.status)[:2] == ("False", "NoDrift")


def test_unknown_watched_features_are_named_once() -> None:
    spec = {**SPEC, "monitoring": {**MONITORING, "features": ["amount", "age"]}}
    status = parse_status(steady(ModelDeploymentStatus(phase=Phase.PENDING), T0, spec=spec).status.dump())
    p = steady(status, T0, spec=spec)
    result = steady(status, T0 + timedelta(seconds=3), answered(p, drift_counts()), spec=spec)
    assert result.status.monitoring is not None and result.status.monitoring.error is None
    assert result.status.monitoring.missing_features == ["age"]
    assert [f.feature for f in result.status.monitoring.features] == ["amount", "prediction"]
    assert [e.reason for e in result.events] == ["MonitoringFeaturesMissing"] and "age not in the profile" in result.events[0].message
    stored = parse_status(result.status.dump())
    later = steady(stored, T0 + EVERY, spec=spec)
    again = steady(stored, T0 + EVERY + timedelta(seconds=3), answered(later, drift_counts()), spec=spec)
    assert again.events == []  # not at every check


# -- the prediction comparison during a rollout ----------------------------------------------------
NEW = {"bento": "fraud_scorer:3.3.0", "image": "registry.example.com/fraud-scorer:3.3.0"}
COMPARE_SPEC = {"model": NEW, "replicas": 2, "traffic": {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "gw"}]}},
                "rollout": {"steps": [{"shadow": {"percent": 100, "duration": "30m"}}]},
                "monitoring": {**MONITORING, "compare": {"maxDifference": 0.05, "gate": True}}}


def shadowing() -> tuple[ModelDeploymentStatus, dict[str, Any]]:
    """A rollout in its shadow step, the candidate ready (planned until the step has started)."""
    status = serving()
    live = {STABLE: observe_deployment(deployment(2)), CANDIDATE: observe_deployment(deployment(2, revision="x"))}
    now = T0
    for _ in range(4):
        from headway.planning.naming import revision_of
        from headway.api.spec import ModelSpec
        live[CANDIDATE] = observe_deployment(deployment(2, revision=revision_of(ModelSpec.model_validate(NEW))))
        p = plan(OWNER, Observation(raw_spec=COMPARE_SPEC, generation=2, annotations={}, previous=status, live=live,
                                    default_metrics_url="http://prometheus:9090"), now)
        status = parse_status(p.status.dump())
        now += timedelta(seconds=1)
    assert status.rollout is not None and status.rollout.step_started_at is not None, status.phase
    return status, live


def compare(status: ModelDeploymentStatus, live: dict[str, Any], now: datetime, result: MonitorResult | None = None) -> Plan:
    return plan(OWNER, Observation(raw_spec=COMPARE_SPEC, generation=2, annotations={}, previous=status, live=live, monitoring=result,
                                   default_metrics_url="http://prometheus:9090"), now)


def prediction_counts(candidate: tuple[float, ...], n: int, slices_: int) -> dict[str, Any]:
    return {"candidate": {"prediction": slices(LABEL, candidate, n, slices_, seed=5)},
            "stable": {"prediction": slices(LABEL, LABEL.expected, n, slices_, seed=6)}}


def test_shifted_predictions_roll_the_candidate_back_with_the_comparison_as_evidence() -> None:
    status, live = shadowing()
    assert status.rollout is not None and status.rollout.step_started_at is not None
    started = datetime.fromisoformat(status.rollout.step_started_at.replace("Z", "+00:00"))
    waiting = compare(status, live, started + timedelta(minutes=4))
    assert waiting.monitor is not None and waiting.monitor.compare is None  # no complete interval yet
    assert waiting.status.phase == Phase.PROGRESSING
    at = started + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    assert p.monitor is not None and p.monitor.compare is not None
    candidate, stable = p.monitor.compare
    assert (candidate.start, candidate.end, candidate.slices) == (started, started + timedelta(minutes=10), 10)
    assert (stable.variant, stable.start, stable.end) == ("stable", started, started + timedelta(minutes=10))
    result = MonitorResult(p.monitor, PROFILE, {**drift_counts(), **prediction_counts((0.80, 0.20, 0.0, 0.0), 20_000, 10)}, None, at)
    judged = compare(status, live, at + timedelta(seconds=2), result)
    assert judged.status.monitoring is not None and judged.status.monitoring.prediction is not None
    assert judged.status.monitoring.prediction.result == "Fail" and judged.status.monitoring.prediction.look == 1
    assert judged.status.phase == Phase.ROLLED_BACK
    assert judged.status.rolled_back is not None and judged.status.rolled_back.reason == "FailedAnalysis"
    rolled = next(h for h in judged.status.history if h.event == "RolledBack")
    assert rolled.evidence is not None and rolled.evidence["analysis"]["predictions"]["result"] == "Fail"
    assert "PredictionsDiffer" in [e.reason for e in judged.events]


def test_a_step_waits_for_the_comparison_to_pass() -> None:
    status, live = shadowing()
    assert status.rollout is not None and status.rollout.step_started_at is not None
    started = datetime.fromisoformat(status.rollout.step_started_at.replace("Z", "+00:00"))
    end = started + timedelta(minutes=30, seconds=1)
    p = compare(status, live, end)
    progressing = next(c for c in p.status.conditions if c.type == "Progressing")
    assert p.status.phase == Phase.PROGRESSING and "waiting for a passing analysis" in progressing.message
    assert "predictions: not compared yet in this step" in progressing.message
    result = MonitorResult(p.monitor, PROFILE, prediction_counts(LABEL.expected, 60_000, 30), None, end)  # type: ignore[arg-type]
    passed = compare(status, live, end + timedelta(seconds=2), result)
    assert passed.status.monitoring is not None and passed.status.monitoring.prediction is not None
    assert passed.status.monitoring.prediction.result == "Pass", passed.status.monitoring.prediction.message
    assert "PredictionsAgree" in [e.reason for e in passed.events]
    assert passed.status.phase == Phase.PROMOTING or (passed.status.rollout is not None and passed.status.rollout.promoting)


def test_without_monitoring_nothing_is_asked() -> None:
    status = serving()
    p = steady(status, T0, spec={"model": MODEL, "replicas": 2})
    assert p.monitor is None and all(c.type != "DataDrift" for c in p.status.conditions)
    assert monitor_request(OWNER, None, status, T0, None) is None


def test_a_window_shorter_than_the_interval_is_named_and_the_model_keeps_serving() -> None:
    status = serving()
    spec = {**SPEC, "monitoring": {**MONITORING, "window": "1m"}}
    p = steady(status, T0, spec=spec)
    assert [(problem.field, problem.message.split(":")[0]) for problem in p.status.problems] == [
        ("spec.monitoring.window", "1m is shorter than spec.monitoring.interval (5m)")]
    assert p.monitor is None and p.spec is None  # nothing acts on an invalid spec
    assert p.status.stable is not None and p.status.stable.revision == status.stable.revision  # type: ignore[union-attr]


def test_drift_that_goes_on_is_not_announced_at_every_check() -> None:
    status = serving()
    first = steady(status, T0, answered(steady(status, T0), drift_counts(amount=(0.1, 0.4, 0.5, 0.0))))
    assert [e.reason for e in first.events] == ["DataDrift"]
    stored = parse_status(first.status.dump())
    later = steady(stored, T0 + timedelta(minutes=5))
    again = steady(stored, T0 + timedelta(minutes=5, seconds=3), answered(later, drift_counts(amount=(0.12, 0.38, 0.5, 0.0), n=9000)))
    assert condition(again.status)[:2] == ("True", "Drifted") and again.events == []
    assert [h.event for h in again.status.history].count("DataDrift") == 1


# -- what the review found: odd data, late answers, pauses, replaced candidates ---------------------
def started_at(status: ModelDeploymentStatus) -> datetime:
    assert status.rollout is not None and status.rollout.step_started_at is not None
    return datetime.fromisoformat(status.rollout.step_started_at.replace("Z", "+00:00"))


def test_a_version_without_prediction_series_is_inconclusive_not_a_crash() -> None:
    """The old stable has no recorder yet (added with this version): no series for it in Prometheus."""
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    only_candidate = {"candidate": prediction_counts(LABEL.expected, 20_000, 10)["candidate"], "stable": {}}
    judged = compare(status, live, at + timedelta(seconds=2), MonitorResult(p.monitor, PROFILE, only_candidate, None, at))  # type: ignore[arg-type]
    assert judged.status.monitoring is not None and judged.status.monitoring.prediction is not None
    assert judged.status.monitoring.prediction.result == "Inconclusive" and judged.status.monitoring.prediction.stable_samples == 0
    assert judged.status.phase == Phase.PROGRESSING


def test_a_failed_check_clears_the_last_results_and_says_check_failed() -> None:
    status = serving()
    good = steady(status, T0 + timedelta(seconds=3), answered(steady(status, T0), drift_counts(amount=(0.1, 0.4, 0.5, 0.0))))
    stored = parse_status(good.status.dump())
    later = steady(stored, T0 + EVERY)
    failed = steady(stored, T0 + EVERY + timedelta(seconds=3), answered(later, {}, PROFILE, "http://prometheus:9090: ConnectionError"))
    assert condition(failed.status)[:2] == ("Unknown", "CheckFailed")
    assert failed.status.monitoring is not None and failed.status.monitoring.features == []
    assert failed.status.monitoring.drifted == ["amount"]  # the last judged set: drift that goes on is not announced again
    stored = parse_status(failed.status.dump())
    after = steady(stored, T0 + 2 * EVERY)
    again = steady(stored, T0 + 2 * EVERY + timedelta(seconds=3), answered(after, drift_counts(amount=(0.1, 0.4, 0.5, 0.0))))
    assert condition(again.status)[:2] == ("True", "Drifted") and [e.reason for e in again.events] == ["MonitoringRecovered"]


def test_an_answer_for_an_earlier_grid_point_is_still_recorded() -> None:
    """A fetch that outlasts its interval: its answer is newer than status holds, so it counts."""
    status = serving()
    p = steady(status, T0)
    late = steady(status, T0 + EVERY + timedelta(minutes=2), answered(p, drift_counts()))
    assert late.status.monitoring is not None and late.status.monitoring.checked_at is not None
    assert condition(late.status)[:2] == ("False", "NoDrift")
    assert late.monitor is not None and late.monitor.drift is not None and late.monitor.drift.end == POINT + EVERY  # the next one


def test_no_comparison_while_paused_and_looks_count_over_the_rollout() -> None:
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    judged = compare(status, live, at + timedelta(seconds=2),
                     MonitorResult(p.monitor, PROFILE, prediction_counts(LABEL.expected, 600, 10), None, at))  # type: ignore[arg-type]
    stored = parse_status(judged.status.dump())
    assert stored.monitoring is not None and stored.monitoring.prediction is not None and stored.monitoring.prediction.look == 1
    paused = plan(OWNER, Observation(raw_spec={**COMPARE_SPEC, "paused": True}, generation=3, annotations={}, previous=stored, live=live,
                                     default_metrics_url="http://prometheus:9090"), at + timedelta(minutes=5))
    assert paused.monitor is not None and paused.monitor.compare is None  # nothing compared while paused
    assert paused.status.monitoring is not None and paused.status.monitoring.prediction is not None  # the looks so far are kept
    resumed_status = parse_status(paused.status.dump())
    resumed = plan(OWNER, Observation(raw_spec=COMPARE_SPEC, generation=4, annotations={}, previous=resumed_status, live=live,
                                      default_metrics_url="http://prometheus:9090"), at + timedelta(minutes=6))
    resumed_status = parse_status(resumed.status.dump())
    again = started_at(resumed_status) + timedelta(minutes=5, seconds=1)
    q = compare(resumed_status, live, again)
    assert q.monitor is not None and q.monitor.compare is not None
    looked = compare(resumed_status, live, again + timedelta(seconds=2),
                     MonitorResult(q.monitor, PROFILE, prediction_counts(LABEL.expected, 600, q.monitor.compare[0].slices), None, again))
    assert looked.status.monitoring is not None and looked.status.monitoring.prediction is not None
    assert looked.status.monitoring.prediction.look == 2  # the level is spent over the whole rollout, pause or not
    assert looked.status.monitoring.prediction.since == resumed_status.rollout.step_started_at  # type: ignore[union-attr]


def test_a_fail_recorded_for_a_replaced_candidate_rolls_nothing_back() -> None:
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    result = MonitorResult(p.monitor, PROFILE, prediction_counts((0.5, 0.5, 0.0, 0.0), 20_000, 10), None, at)  # type: ignore[arg-type]
    newer = {**COMPARE_SPEC, "model": {"bento": "fraud_scorer:3.4.0", "image": "registry.example.com/fraud-scorer:3.4.0"}}
    replaced = plan(OWNER, Observation(raw_spec=newer, generation=3, annotations={}, previous=status, live=live, monitoring=result,
                                       default_metrics_url="http://prometheus:9090"), at + timedelta(seconds=2))
    assert replaced.status.phase != Phase.ROLLED_BACK and replaced.status.rolled_back is None


def test_a_first_comparison_that_fails_to_fetch_is_recorded_and_retried_at_the_next_interval() -> None:
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    failed = compare(status, live, at + timedelta(seconds=2), MonitorResult(p.monitor, PROFILE, {}, "Prometheus: timeout", at))  # type: ignore[arg-type]
    assert failed.status.monitoring is not None and failed.status.monitoring.prediction is not None
    prediction = failed.status.monitoring.prediction
    assert prediction.result == "Inconclusive" and prediction.look == 0 and "Prometheus: timeout" in prediction.message
    stored = parse_status(failed.status.dump())
    assert compare(stored, live, at + timedelta(minutes=1)).monitor.compare is None  # type: ignore[union-attr]
    assert compare(stored, live, at + EVERY).monitor.compare is not None  # type: ignore[union-attr]


def test_the_profiles_configmap_never_leaks_into_status() -> None:
    from headway.api.monitoring_spec import ProfileReference
    from headway.reconciler import MonitoringError, read_profile

    class Kube:
        def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
            return {"data": {"profile.json": '{"version": 1, "features": {"x": "password=hunter2"}}', "db-password": "hunter2"}}

    for key in ("profile.json", "other"):
        try:
            read_profile(Kube(), "ml", ProfileReference(config_map="app-config", key=key))  # type: ignore[arg-type]
        except MonitoringError as exc:
            assert "hunter2" not in str(exc) and "db-password" not in str(exc), str(exc)
            assert "ConfigMap ml/app-config" in str(exc)
        else:
            raise AssertionError("not a profile")


def test_looks_that_cannot_decide_spend_no_level() -> None:
    """Too few predictions: Inconclusive, and the next look that can decide is tested at alpha_1."""
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    thin = compare(status, live, at + timedelta(seconds=2),
                   MonitorResult(p.monitor, PROFILE, prediction_counts(LABEL.expected, 50, 10), None, at))  # type: ignore[arg-type]
    assert thin.status.monitoring.prediction.look == 0  # type: ignore[union-attr]
    assert "too few predictions" in thin.status.monitoring.prediction.message  # type: ignore[union-attr]
    stored = parse_status(thin.status.dump())
    later = at + EVERY
    q = compare(stored, live, later)
    decided = compare(stored, live, later + timedelta(seconds=2),
                      MonitorResult(q.monitor, PROFILE, prediction_counts((0.5, 0.5, 0.0, 0.0), 20_000, q.monitor.compare[0].slices),  # type: ignore[union-attr]
                                    None, later))
    prediction = decided.status.monitoring.prediction  # type: ignore[union-attr]
    assert prediction.look == 1 and prediction.result == "Fail"  # type: ignore[union-attr]
    assert abs(prediction.alpha - 0.01 * 6 / 3.141592653589793 ** 2) < 1e-12  # type: ignore[union-attr]


def test_a_comparison_does_not_clear_the_drift_checks_error() -> None:
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    assert p.monitor is not None and p.monitor.drift is not None and p.monitor.compare is not None
    failed = compare(status, live, at + timedelta(seconds=2), MonitorResult(p.monitor, PROFILE, {}, "Prometheus: timeout", at))
    stored = parse_status(failed.status.dump())
    compare_only = replace_request(p.monitor, drift=None)
    ok = compare(stored, live, at + timedelta(seconds=3),
                 MonitorResult(compare_only, PROFILE, prediction_counts(LABEL.expected, 600, 10), None, at))
    assert ok.status.monitoring is not None and ok.status.monitoring.error == "Prometheus: timeout"
    assert condition(ok.status)[:2] == ("Unknown", "CheckFailed") and "MonitoringRecovered" not in [e.reason for e in ok.events]


def replace_request(request: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(request, **changes)


def test_resuming_a_paused_rollout_does_not_end_its_step_ungated() -> None:
    """Held at the step's end for want of a Pass, paused, resumed: the step does not end on resuming."""
    status, live = shadowing()
    end = started_at(status) + timedelta(minutes=30, seconds=1)
    held = parse_status(compare(status, live, end).status.dump())
    paused = plan(OWNER, Observation(raw_spec={**COMPARE_SPEC, "paused": True}, generation=3, annotations={}, previous=held, live=live,
                                     default_metrics_url="http://prometheus:9090"), end + timedelta(minutes=1))
    resumed = plan(OWNER, Observation(raw_spec=COMPARE_SPEC, generation=4, annotations={}, previous=parse_status(paused.status.dump()),
                                      live=live, default_metrics_url="http://prometheus:9090"), end + timedelta(minutes=11))
    assert "StepCompleted" not in [e.reason for e in resumed.events] and resumed.status.phase == Phase.PROGRESSING


def test_resuming_does_not_end_an_analysed_step_without_its_analysis() -> None:
    """The same for the SLO analysis: no analysis runs while paused, so its gate is missing on the
    reconcile that resumes; the step must not end on it."""
    spec = {**{k: v for k, v in COMPARE_SPEC.items() if k != "monitoring"},
            "analysis": {"interval": "30s", "slos": [{"errorRate": {"max": 0.05}}]}}

    def step(previous: ModelDeploymentStatus, now: datetime, raw: dict[str, Any] = spec) -> Plan:
        return plan(OWNER, Observation(raw_spec=raw, generation=2, annotations={}, previous=previous, live=live,
                                       default_metrics_url="http://prometheus:9090"), now)

    status, live = shadowing()
    running_status = status
    for _ in range(3):  # the same rollout under the analysed spec
        running_status = parse_status(step(running_status, started_at(status) + timedelta(seconds=5)).status.dump())
    end = started_at(running_status) + timedelta(minutes=30, seconds=1)
    held = parse_status(step(running_status, end).status.dump())
    assert "StepCompleted" not in [h.event for h in held.history]
    paused = parse_status(step(held, end + timedelta(minutes=1), {**spec, "paused": True}).status.dump())
    resumed = step(paused, end + timedelta(minutes=11))
    assert "StepCompleted" not in [e.reason for e in resumed.events], [e.reason for e in resumed.events]


def test_a_pass_holds_for_the_later_steps_of_the_rollout() -> None:
    """Shown to answer like stable in one step: the next step (a new window, looks still counted)
    needs no new Pass; a shown difference there would still fail it."""
    status, live = shadowing()
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = compare(status, live, at)
    passed = compare(status, live, at + timedelta(seconds=2),
                     MonitorResult(p.monitor, PROFILE, prediction_counts(LABEL.expected, 60_000, 10), None, at))  # type: ignore[arg-type]
    prediction = passed.status.monitoring.prediction  # type: ignore[union-attr]
    assert prediction is not None and prediction.result == "Pass" and prediction.passed
    spec = passed.spec
    later = parse_status(passed.status.dump())
    assert later.rollout is not None
    next_step = later.model_copy(update={"rollout": later.rollout.model_copy(update={"step_started_at": "2030-01-01T00:00:00Z"})})
    gate = monitoring.step_gate(spec, next_step, later.monitoring)
    assert gate is not None and gate.result == "Pass" and "shown to answer like stable in this rollout" in gate.message
