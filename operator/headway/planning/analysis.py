"""When to measure, what window to judge, and how verdicts gate a rollout — pure.

The analysis of a rollout step judges the candidate against stable over the window
since the step's traffic was applied (a weight change starts a new window, so counts
from a different split never mix); the bake after a promotion judges the new stable
against the previous version since that one got its share of the traffic (bake.py), and
alone while it has none. Which steps are analysed is the step table's ``analysed``
column (steps.py). Counts are cumulative over the window, so each measurement
stands on all the evidence so far and the verdicts stay valid however often one looks
(see planning/verdicts.py). What must survive a restart lives in ``status.analysis``:
the window, when it was last measured, and the consecutive failure/inconclusive counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from headway.api.spec import Analysis, ModelDeploymentSpec
from headway.api.status import AnalysisStatus, ExperimentDecision, ModelDeploymentStatus, SloVerdict
from headway.api.types import parse_duration
from headway.planning.conditions import parse_time, rfc3339
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE, revision_of
from headway.planning.steps import analysed
from headway.planning.verdicts import VariantData, Verdict, compare_variants, experiment_metric, overall


@dataclass(frozen=True)
class Gate:
    """The analysis verdict for the current step (None when no analysis is configured)."""

    result: Literal["Pass", "Fail", "Inconclusive"]
    message: str
    rollback: bool = False  # failureLimit reached (or inconclusive limit with onInconclusive: rollback)
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class AnalysisRequest:
    """What to judge now: a revision, over a window, as (variant, baseline or None) pairs."""

    purpose: Literal["step", "bake", "experiment"]
    revision: str
    window_start: datetime
    targets: tuple[tuple[str, str | None], ...]


def experiment_fingerprint(spec: ModelDeploymentSpec) -> str:
    """Identity of an experiment's arms: a new model for any arm starts a new window."""
    assert spec.experiment is not None
    arms = sorted((v.name, revision_of(v.model or spec.model)) for v in spec.experiment.variants)
    return hashlib.sha256(repr(arms).encode()).hexdigest()[:10]


def experiment_key(spec: ModelDeploymentSpec, name: str) -> str:
    """The variant label of an arm's series: the control arm runs as the stable workload."""
    assert spec.experiment is not None
    arm = next(v for v in spec.experiment.variants if v.name == name)
    return STABLE if arm.model is None else name


def request(spec: ModelDeploymentSpec | None, previous: ModelDeploymentStatus, now: datetime) -> AnalysisRequest | None:
    """The analysis the current state calls for, or None (nothing to judge right now)."""
    if spec is None or spec.analysis is None:
        return None
    if spec.experiment is not None:
        fingerprint = experiment_fingerprint(spec)
        last = previous.analysis
        start = parse_time(last.window_start) if last and last.purpose == "experiment" and last.revision == fingerprint else now
        arms = tuple((v.name, STABLE) for v in spec.experiment.variants if v.model is not None)
        return AnalysisRequest("experiment", fingerprint, start, arms)
    bake = previous.bake
    if bake is not None and now < parse_time(bake.until):
        if bake.baseline != "none" and bake.baseline_since is not None:  # the previous version serves its share
            return AnalysisRequest("bake", bake.revision, parse_time(bake.baseline_since), ((STABLE, PREVIOUS),))
        return AnalysisRequest("bake", bake.revision, parse_time(bake.since), ((STABLE, None),))
    rollout = previous.rollout
    steps = spec.rollout.steps if spec.rollout else []
    if (rollout is not None and not rollout.promoting and rollout.step_started_at and rollout.paused_at is None
            and rollout.step < len(steps) and analysed(steps[rollout.step]) and previous.rolled_back is None):
        return AnalysisRequest("step", rollout.revision, parse_time(rollout.step_started_at), ((CANDIDATE, STABLE),))
    return None


def same_window(status: AnalysisStatus | None, req: AnalysisRequest) -> bool:
    return (status is not None and status.revision == req.revision and status.purpose == req.purpose
            and status.window_start == rfc3339(req.window_start))


def due_at(analysis: Analysis, status: AnalysisStatus | None, req: AnalysisRequest) -> datetime:
    """When the next measurement of ``req`` is due: every analysis.interval, the first time one
    interval into the window (a window younger than that holds too few scrapes for increase()
    to see anything, and a certain Inconclusive would only count against inconclusiveLimit)."""
    interval = parse_duration(analysis.interval)
    first = req.window_start + interval
    if status is None or not same_window(status, req):
        return first
    return max(first, parse_time(status.last_run) + interval)


def due(analysis: Analysis, status: AnalysisStatus | None, req: AnalysisRequest, now: datetime) -> bool:
    """Whether a measurement of ``req`` is due at ``now`` (see ``due_at``)."""
    return now >= due_at(analysis, status, req)


def record(
    analysis: Analysis, previous: AnalysisStatus | None, req: AnalysisRequest,
    verdicts: Sequence[tuple[str, Verdict]], error: str | None, now: datetime,
) -> AnalysisStatus:
    """The analysis status after one measurement: verdicts, and the consecutive counters.

    ``consecutive_failures`` counts Fail results in a row: any other result (Pass or
    Inconclusive, including a measurement that could not be taken) ends the run, so
    ``failureLimit`` means consecutive Fails, as documented. ``consecutive_inconclusive``
    counts Inconclusive results in a row; a Pass or a Fail ends it.
    """
    result = overall([v for _, v in verdicts])
    same = same_window(previous, req)
    # Counters run across the windows of one revision (a step's Fail blocks the next step,
    # so failures cannot straddle a weight change unnoticed); a new revision starts at zero.
    carry = previous is not None and previous.revision == req.revision and previous.purpose == req.purpose
    failures = (previous.consecutive_failures if carry and previous else 0)
    inconclusive = (previous.consecutive_inconclusive if carry and previous else 0)
    if result == "Fail":
        failures, inconclusive = failures + 1, 0
    elif result == "Pass":
        failures, inconclusive = 0, 0
    else:  # Inconclusive: not a Fail, so the run of Fails is broken
        failures, inconclusive = 0, inconclusive + 1
    return AnalysisStatus(
        revision=req.revision, purpose=req.purpose, window_start=rfc3339(req.window_start), last_run=rfc3339(now),
        runs=(previous.runs + 1 if same and previous else 1), result=result,
        consecutive_failures=failures, consecutive_inconclusive=inconclusive,
        verdicts=[_verdict_status(variant, v) for variant, v in verdicts], error=error,
    )


def _verdict_status(variant: str, v: Verdict) -> SloVerdict:
    return SloVerdict(
        slo=v.slo, variant=variant, result=v.result, value=v.value, threshold=v.threshold, samples=v.samples,
        baseline_value=v.baseline_value, statistic=v.statistic, p_value=v.p_value, ci_low=v.ci_low, ci_high=v.ci_high,
        reason=v.reason,
    )


def gate(analysis: Analysis, status: AnalysisStatus | None, req: AnalysisRequest) -> Gate:
    """What the verdicts allow: advance (Pass), wait, or roll back."""
    if status is None or not same_window(status, req):
        return Gate("Inconclusive", "not measured yet in this window")
    summary = "; ".join(f"{v.variant} {v.slo}: {v.result} ({v.reason})" for v in status.verdicts) or status.error or ""
    if status.error:
        summary = f"metrics unavailable: {status.error}"
    evidence = status.dump()
    if status.consecutive_failures >= analysis.failure_limit:
        return Gate("Fail", f"{status.consecutive_failures} failed analyses in a row (failureLimit {analysis.failure_limit}): {summary}",
                    rollback=True, evidence=evidence)
    if status.consecutive_inconclusive >= analysis.inconclusive_limit:
        if analysis.on_inconclusive == "rollback":
            return Gate("Inconclusive", f"{status.consecutive_inconclusive} inconclusive analyses in a row (inconclusiveLimit {analysis.inconclusive_limit}, onInconclusive rollback): {summary}",
                        rollback=True, evidence=evidence)
        return Gate("Inconclusive", f"holding: {status.consecutive_inconclusive} inconclusive analyses in a row: {summary}", evidence=evidence)
    return Gate(status.result, summary, evidence=evidence)


def failing_arms(status: AnalysisStatus) -> list[str]:
    """Experiment arms whose latest verdicts include a Fail."""
    return sorted({v.variant for v in status.verdicts if v.result == "Fail"})


def decide_experiment(
    spec: ModelDeploymentSpec, previous: ExperimentDecision | None, data: dict[str, VariantData | None], now: datetime,
) -> ExperimentDecision | None:
    """The significance test between the arms, once every arm has decide.minSamples.

    A decision (Winner or NoDifference) is final for these arms: the test runs once, when
    the samples are there, so repeated looks cannot inflate its error rate; until then the
    latest attempt is recorded as Inconclusive.
    """
    if spec.experiment is None or spec.experiment.decide is None or spec.analysis is None:
        return None
    fingerprint = experiment_fingerprint(spec)
    if previous is not None and previous.revision == fingerprint and previous.decided_at is not None:
        return previous
    decide = spec.experiment.decide
    metrics = []
    lower_is_better = True
    for arm in spec.experiment.variants:
        arm_data = data.get(experiment_key(spec, arm.name)) or VariantData()
        metric, lower_is_better = experiment_metric(arm.name, arm_data, decide.metric, spec.analysis.slos)
        metrics.append(metric)
    result = compare_variants(metrics, decide.metric, lower_is_better=lower_is_better, significance=decide.significance,
                              min_samples=decide.min_samples)
    return ExperimentDecision(
        revision=fingerprint, metric=result.metric, result=result.result, winner=result.winner, p_value=result.p_value,
        statistic=result.statistic, test=result.test, samples=dict(result.samples), values=dict(result.values),
        reason=result.reason, decided_at=rfc3339(now) if result.result != "Inconclusive" else None,
    )
