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

The windows of one rollout (its steps, and the bake after its promotion) share one
false-rollback budget: the Fail tests' evidence is carried from window to window
(``carried``: what a window starts from; ``record`` writes it into status when the next
window is first measured, from the last look of the previous one, so it is counted once
whatever is measured again). After a shared incident (a breach the baseline shows too) the
window restarts once the baseline is back within the SLO (``record``; ``current`` moves the
requested window to the restart), and the incident's breach evidence is not carried. The
construction and its guarantee: docs/verdicts.md, "The false-rollback budget".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from headway.api.spec import Analysis, ModelDeploymentSpec
from headway.api.status import AnalysisStatus, CarriedEvidence, ExperimentDecision, IncidentStatus, ModelDeploymentStatus, SloVerdict
from headway.api.types import parse_duration
from headway.planning.conditions import parse_time, rfc3339
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE, revision_of
from headway.planning.steps import analysed
from headway.planning.proportions import stored_log
from headway.planning.stats import BET_FRACTIONS, log_add
from headway.planning.verdicts import Carried, Evidence, VariantData, Verdict, compare_variants, experiment_metric, overall


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

    purpose: Literal["step", "bake", "experiment", "steady"]  # steady: the stable's health (planning/health.py)
    revision: str
    window_start: datetime
    targets: tuple[tuple[str, str | None], ...]
    rollout: str | None = None  # when the rollout this window belongs to began (``current``)
    opened: datetime | None = None  # the step's or bake's own window start, when window_start is a restart


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


ROLLOUT_PURPOSES = ("step", "bake")
# The met test's share of alpha in a step's or bake's window after k restarts (they sum to 1): a
# window that never restarts keeps 7/8 of it; a restart gives a breaching version another chance
# to be shown "met", so each one is paid for. Hence at most 3 restarts per window.
MET_SHARES = (7 / 8, 1 / 16, 1 / 32, 1 / 32)
MAX_RESTARTS = len(MET_SHARES) - 1


def chain_weight(j: int) -> float:
    """Prior weight of the chain of bets that window j (0, 1, ...) of a rollout starts: 1/((j+1)(j+2)), summing to 1."""
    return 1.0 / ((j + 1) * (j + 2))


def chains_weight(j: int) -> float:
    """Total weight of the chains started by windows 0..j: 1 - 1/(j+2)."""
    return 1.0 - 1.0 / (j + 2)


def current(req: AnalysisRequest | None, status: ModelDeploymentStatus) -> AnalysisRequest | None:
    """``req`` as the rollout's analysis judges it now: the rollout it belongs to (a step's is
    status.rollout.startedAt; the bake continues the rollout it follows), and its window moved to
    the latest restart of that window (``record``). An experiment is judged as requested."""
    if req is None or req.purpose not in ROLLOUT_PURPOSES:
        return req
    last = status.analysis
    if req.purpose == "step":
        rollout = status.rollout.started_at if status.rollout is not None else None
    elif status.bake is not None and status.bake.rollout is not None:
        rollout = status.bake.rollout  # the rollout this bake follows, as recorded at its promotion
    else:  # a bake recorded before BakeStatus.rollout existed
        rollout = last.rollout if last is not None and last.revision == req.revision and last.purpose in ROLLOUT_PURPOSES else None
    req = replace(req, rollout=rollout)
    if (last is not None and last.revision == req.revision and last.purpose == req.purpose and last.rollout == rollout
            and last.window_opened == rfc3339(req.window_start) and last.window_start != last.window_opened):
        return replace(req, window_start=parse_time(last.window_start), opened=req.window_start)
    return req


@dataclass(frozen=True)
class _Window:
    """A window of a rollout before a look: its index, restarts, what it carries, its evidence and incidents so far."""

    windows: int
    restarts: int
    carried: tuple[CarriedEvidence, ...]
    evidence: tuple[CarriedEvidence, ...]
    incidents: tuple[IncidentStatus, ...]


def _same_rollout(previous: AnalysisStatus | None, req: AnalysisRequest) -> bool:
    return (previous is not None and req.purpose in ROLLOUT_PURPOSES and previous.purpose in ROLLOUT_PURPOSES
            and previous.revision == req.revision and previous.rollout == req.rollout)


def _opening(previous: AnalysisStatus | None, req: AnalysisRequest) -> _Window:
    """The window ``req`` judges, as status has it before this look.

    The same window: as recorded. The next window of the same rollout: the previous window's
    evidence at its last look is carried (``_fold``): each chain continues and the new window adds
    its own. Dropped (chains set to 0, which never inflates an e-value): breach evidence of a window
    where a shared incident was seen (it measured the incident, not the version), and every chain
    but the new one when the new window starts before the last look of the previous one (the bake
    judging the new stable alone again since its promotion: its units were counted already).
    Anything else (a new rollout, an experiment) starts with nothing carried."""
    if previous is not None and same_window(previous, req):
        return _Window(previous.windows, previous.restarts, tuple(previous.carried),
                       tuple(previous.evidence or previous.carried), tuple(previous.incidents))
    if previous is None or not _same_rollout(previous, req):
        return _Window(1, 0, (), (), ())
    j = previous.windows
    last = tuple(previous.evidence or previous.carried)
    if req.window_start < parse_time(previous.last_run):
        carried = tuple(e.model_copy(update={"log_wealth": [stored_log(math.log(chain_weight(j)))] * len(BET_FRACTIONS)}) for e in last)
    else:
        carried = _fold(last, j, drop_breach=bool(previous.incidents))
    return _Window(j + 1, 0, carried, carried, ())


def _fold(evidence: Sequence[CarriedEvidence], j: int, drop_breach: bool) -> tuple[CarriedEvidence, ...]:
    """What window j starts from: every chain so far continues, plus window j's own with weight v_j."""
    fresh = math.log(chain_weight(j))
    out = []
    for e in evidence:
        keep = len(e.log_wealth) == len(BET_FRACTIONS) and not (drop_breach and e.test == "breach")
        wealth = [stored_log(log_add(x, fresh)) for x in e.log_wealth] if keep else [stored_log(fresh)] * len(BET_FRACTIONS)
        out.append(e.model_copy(update={"log_wealth": wealth}))
    return tuple(out)


def carried(previous: AnalysisStatus | None, req: AnalysisRequest) -> Carried | None:
    """What the verdicts of ``req``'s window start from (``verdicts.assess(..., carried=...)``); None
    for an experiment, whose windows are judged on their own."""
    if req.purpose not in ROLLOUT_PURPOSES:
        return None
    w = _opening(previous, req)
    j = w.windows - 1
    return Carried(
        evidence=tuple(Evidence(e.slo, e.test, e.null, tuple(e.log_wealth)) for e in w.carried),
        log_all=math.log(chains_weight(j)), log_fresh=math.log(chain_weight(j)),
        met_share=MET_SHARES[min(w.restarts, MAX_RESTARTS)], set_aside=frozenset(i.slo for i in w.incidents), windows=w.windows,
    )


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

    For a step or the bake (one window of a rollout) it also records what the window carried in
    (``carried``: written at the window's first measurement from the previous window's last
    ``evidence``, then fixed), the Fail tests' ``evidence`` after this look (replacing the last
    look's), and the shared incidents seen in the window. When the baseline of every SLO with an
    incident is back within it (``_incident_over``), the window restarts after this look: the
    returned status has the new ``window_start``, and ``current`` asks for it from then on. The
    verdicts must have been judged with ``carried(previous, req)``.
    """
    result = overall([v for _, v in verdicts])
    same = same_window(previous, req)
    # Counters run across the windows of one revision (a step's Fail blocks the next step,
    # so failures cannot straddle a weight change unnoticed); a new revision starts at zero.
    carry = (previous is not None and previous.revision == req.revision and previous.purpose == req.purpose
             and (req.purpose not in ROLLOUT_PURPOSES or previous.rollout == req.rollout))
    failures = (previous.consecutive_failures if carry and previous else 0)
    inconclusive = (previous.consecutive_inconclusive if carry and previous else 0)
    if result == "Fail":
        failures, inconclusive = failures + 1, 0
    elif result == "Pass":
        failures, inconclusive = 0, 0
    else:  # Inconclusive: not a Fail, so the run of Fails is broken
        failures, inconclusive = 0, inconclusive + 1
    purpose = req.purpose
    if purpose == "steady":
        raise ValueError("the stable's health is recorded in status.health (planning/health.py), not as an analysis")
    status = AnalysisStatus(
        revision=req.revision, purpose=purpose, window_start=rfc3339(req.window_start), last_run=rfc3339(now),
        runs=(previous.runs + 1 if same and previous else 1), result=result,
        consecutive_failures=failures, consecutive_inconclusive=inconclusive,
        verdicts=[_verdict_status(variant, v) for variant, v in verdicts], error=error,
    )
    if req.purpose not in ROLLOUT_PURPOSES:
        return status
    w = _opening(previous, req)
    found = {(e.slo, e.test): e for e in w.evidence}
    for _, v in verdicts:  # this look's totals replace the last look's: a window measured again counts once
        for e in v.evidence:
            found[(e.slo, e.test)] = CarriedEvidence(slo=e.slo, test=e.test, null=e.null, log_wealth=list(e.log_wealth))
    seen = {i.slo for i in w.incidents}
    incidents = [*w.incidents, *(IncidentStatus(slo=v.slo, seen_at=rfc3339(now), value=v.value, baseline_value=v.baseline_value,
                                                baseline_recent=v.baseline_recent)
                                 for _, v in verdicts if v.shared and v.slo not in seen)]
    status = status.model_copy(update={
        "rollout": req.rollout, "window_opened": rfc3339(req.opened or req.window_start), "windows": w.windows,
        "restarts": w.restarts, "carried": list(w.carried), "evidence": list(found.values()), "incidents": incidents,
    })
    if _incident_over(status, verdicts, error):
        return _restart(status, now)
    return status


def _incident_over(status: AnalysisStatus, verdicts: Sequence[tuple[str, Verdict]], error: str | None) -> bool:
    """A window restarts only after the shared-incident rule fired in it (``incidents``), once the baseline
    of every SLO that fired is back within it over its recent intervals, at a look that is not a Fail,
    at most ``MAX_RESTARTS`` times per step or bake."""
    if not status.incidents or error is not None or status.result == "Fail" or status.restarts >= MAX_RESTARTS:
        return False
    recovered = {v.slo for _, v in verdicts if v.recovered}
    return all(i.slo in recovered for i in status.incidents)


def _restart(status: AnalysisStatus, now: datetime) -> AnalysisStatus:
    """The window restarts after this look: counts from the next second on, a new chain of bets, the
    incident's breach evidence dropped, the comparison with the baseline carried (a shared incident
    cancels out of it)."""
    at = now.replace(microsecond=0) + (timedelta(seconds=1) if now.microsecond else timedelta(0))
    carried = _fold(status.evidence, status.windows, drop_breach=True)
    return status.model_copy(update={
        "window_start": rfc3339(at), "runs": 0, "windows": status.windows + 1, "restarts": status.restarts + 1,
        "carried": list(carried), "evidence": list(carried), "incidents": [],
    })


def restart_evidence(previous: AnalysisStatus | None, req: AnalysisRequest, verdicts: Sequence[tuple[str, Verdict]],
                     status: AnalysisStatus) -> dict[str, Any] | None:
    """What an ``AnalysisRestarted`` Event and history entry say, if ``record`` restarted ``req``'s window
    (None if it did not): when the incident was seen, the baseline's recent rates, the breach evidence
    set aside, and what the restart spends."""
    if req.purpose not in ROLLOUT_PURPOSES or status.window_start == rfc3339(req.window_start):
        return None
    before = _opening(previous, req).incidents
    seen = {i.slo for i in before}
    incidents = [*(i.dump() for i in before),
                 *(IncidentStatus(slo=v.slo, seen_at=status.last_run, value=v.value, baseline_value=v.baseline_value,
                                  baseline_recent=v.baseline_recent).dump() for _, v in verdicts if v.shared and v.slo not in seen)]
    return {
        "restart": status.restarts, "maxRestarts": MAX_RESTARTS, "windowStart": rfc3339(req.window_start),
        "restartedAt": status.window_start, "windowOpened": status.window_opened, "incidents": incidents,
        "baselineRecent": {v.slo: v.baseline_recent for _, v in verdicts if v.baseline_recent is not None},
        "breachEvidenceDropped": {e.slo: round(e.log_e, 6) for _, v in verdicts for e in v.evidence if e.test == "breach"},
        "metAlphaShare": MET_SHARES[min(status.restarts, MAX_RESTARTS)], "chainWeight": chain_weight(status.windows - 1),
    }


def _verdict_status(variant: str, v: Verdict) -> SloVerdict:
    return SloVerdict(
        slo=v.slo, variant=variant, result=v.result, value=v.value, threshold=v.threshold, samples=v.samples,
        baseline_value=v.baseline_value, statistic=v.statistic, p_value=v.p_value, ci_low=v.ci_low, ci_high=v.ci_high,
        reason=v.reason, dispersion=v.dispersion, baseline_recent=v.baseline_recent, breach_unattributed=v.unattributed,
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
