"""Metrics as an input: what to measure and when, and what a measurement means for the plan.

Planning never calls Prometheus. It says what it needs (``MeasureRequest``: the targets,
the window, the SLOs, the URL, and ``due_at``), and a fetcher outside planning answers
with a ``Measurement`` that arrives in the next observation. ``judge()`` records a
measurement in the analysis status only when it answers the analysis the current state
calls for (same purpose, revision, targets and window start) and is newer than what
status already recorded; otherwise the gate comes from status as recorded. So a plan
made without a measurement gives the gate of the last one, and a late or repeated
measurement changes nothing.

A step's or bake's window is judged as one window of its rollout (``analysis.current``: the
rollout it belongs to, and the window moved to its latest restart): the verdicts continue the
Fail tests' evidence carried from the rollout's earlier windows (``analysis.carried``), and a
window that ``analysis.record`` restarts after a shared incident is reported by an
``AnalysisRestarted`` Event and history entry, with its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from headway.api.spec import ModelDeploymentSpec, SeriesLabels, Slo
from headway.api.status import AnalysisStatus, ExperimentDecision, HealthStatus, HistoryEntry, ModelDeploymentStatus
from headway.planning import analysis, health
from headway.planning.analysis import AnalysisRequest
from headway.planning.conditions import EventIntent, history_entry, parse_time, rfc3339
from headway.planning.naming import STABLE, Owner
from headway.planning.analysis import Gate
from headway.planning.validation import metrics_url_problems
from headway.planning.verdicts import VariantData, Verdict, assess

NO_URL = "no Prometheus URL: set spec.analysis.prometheus.url or the operator's --prometheus-url"


@dataclass(frozen=True)
class MeasureRequest:
    """One measurement the plan needs: cumulative series of each target over [window_start, now]."""

    namespace: str
    name: str  # the ModelDeployment
    purpose: Literal["step", "bake", "experiment", "steady"]
    revision: str
    targets: tuple[tuple[str, str | None], ...]  # (variant, baseline or None)
    window_start: datetime
    slos: tuple[Slo, ...]
    labels: SeriesLabels
    interval: str  # spec.analysis.interval, for {{interval}} in query SLOs
    url: str | None  # the Prometheus to ask (None: none configured, the measurement is an error)
    due_at: datetime

    @property
    def variants(self) -> tuple[str, ...]:
        """Every variant whose series the verdicts need, targets and baselines, once each."""
        return tuple(dict.fromkeys(v for pair in self.targets for v in pair if v))

    def revision_of(self, variant: str) -> str | None:
        """The revision whose series ``variant`` is measured from: the version judged (a step's candidate,
        a bake's new stable) is ``revision``; baselines and experiment arms are selected by variant only."""
        if self.purpose in ("step", "bake", "steady") and self.targets and variant == self.targets[0][0]:
            return self.revision
        return None

    def answers(self, req: AnalysisRequest) -> bool:
        return (self.purpose, self.revision, self.targets, self.window_start) == (req.purpose, req.revision, req.targets, req.window_start)


@dataclass(frozen=True)
class Measurement:
    """The answer to a MeasureRequest: data per variant, or why there is none."""

    request: MeasureRequest
    data: dict[str, VariantData | None]
    error: str | None
    taken_at: datetime  # the end of the measured window


@dataclass(frozen=True)
class Judgement:
    """What the analysis says for this plan (all None/empty when no analysis applies)."""

    status: AnalysisStatus | None = None  # status.analysis after this plan
    gate: Gate | None = None
    decision: ExperimentDecision | None = None  # the experiment's significance test
    verdicts: tuple[tuple[str, Verdict], ...] = ()  # recorded from a measurement in this plan
    pending: MeasureRequest | None = None  # due now and not answered yet: measure, then plan again
    events: tuple[EventIntent, ...] = ()  # what the analysis did on its own (AnalysisRestarted)
    history: tuple[HistoryEntry, ...] = ()
    health: HealthStatus | None = None  # status.health from a steady measurement recorded in this plan (None: kept as it was)

    @staticmethod
    def unjudged(previous: ModelDeploymentStatus) -> Judgement:
        return Judgement(previous.analysis, None, previous.experiment_decision)


def _measurable(spec: ModelDeploymentSpec | None, allowed: frozenset[str] | None) -> bool:
    """An analysis is configured and names a URL the operator may call (else it is a spec problem)."""
    return spec is not None and spec.analysis is not None and not metrics_url_problems(spec, allowed)


def measure_request(owner: Owner, spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: datetime,
                    default_url: str | None, allowed: frozenset[str] | None) -> MeasureRequest | None:
    """The measurement ``status`` calls for at ``now``, with when it is due; None: nothing to judge."""
    if spec is None or spec.analysis is None or not _measurable(spec, allowed):
        return None
    req = analysis.current(analysis.request(spec, status, now), status)
    cfg = spec.analysis
    if req is None:  # nothing rolling out: the stable's health (planning/health.py)
        req = health.request(spec, status, now)
        if req is None:
            return None
        due_at = health.due_at(spec, status.health, req)
    else:
        due_at = analysis.due_at(cfg, status.analysis, req)
    url = (cfg.prometheus.url if cfg.prometheus else None) or default_url
    return MeasureRequest(owner.namespace, owner.name, req.purpose, req.revision, req.targets, req.window_start,
                          tuple(cfg.slos), cfg.series_labels or SeriesLabels(), cfg.interval, url, due_at)


def _newer(measurement: Measurement, status: AnalysisStatus | None, req: AnalysisRequest) -> bool:
    if status is None or not analysis.same_window(status, req):
        return True
    return parse_time(rfc3339(measurement.taken_at)) > parse_time(status.last_run)


def judge(owner: Owner, spec: ModelDeploymentSpec | None, previous: ModelDeploymentStatus, measurement: Measurement | None,
          now: datetime, default_url: str | None, allowed: frozenset[str] | None) -> Judgement:
    """Record ``measurement`` if it answers the current analysis, and the gate that follows."""
    req = analysis.current(analysis.request(spec, previous, now), previous)
    if req is None and spec is not None and _measurable(spec, allowed):
        return _judge_health(owner, spec, previous, measurement, now, default_url, allowed)
    if req is None or spec is None or spec.analysis is None or not _measurable(spec, allowed):
        return Judgement.unjudged(previous)
    cfg = spec.analysis
    status, decision = previous.analysis, previous.experiment_decision
    if req.purpose == "experiment" and not analysis.same_window(status, req):
        # An experiment's window opens now and is recorded, so that its first measurement is due
        # one interval later (a window that restarts at every plan would never be due).
        status = AnalysisStatus(revision=req.revision, purpose="experiment", window_start=rfc3339(req.window_start),
                                last_run=rfc3339(req.window_start), result="Inconclusive")
    verdicts: tuple[tuple[str, Verdict], ...] = ()
    events: tuple[EventIntent, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    answered = measurement is not None and measurement.request.answers(req) and _newer(measurement, status, req)
    if answered and measurement is not None:
        ok = measurement.error is None
        data = measurement.data
        carried = analysis.carried(status, req)
        verdicts = tuple(
            (variant, verdict)
            for variant, baseline in req.targets
            for verdict in assess(cfg.slos, data.get(variant) if ok else None, data.get(baseline) if baseline and ok else None,
                                  cfg.min_requests, carried=carried)
        )
        before = status
        status = analysis.record(cfg, status, req, verdicts, measurement.error, measurement.taken_at)
        restarted = analysis.restart_evidence(before, req, verdicts, status)
        if restarted is not None:
            events, history = _restarted(previous, req, restarted, measurement.taken_at)
            req = replace(req, window_start=parse_time(status.window_start), opened=req.opened or req.window_start)
        if req.purpose == "experiment" and ok:
            decision = analysis.decide_experiment(spec, decision, data, measurement.taken_at)
    pending = None
    if not answered and analysis.due(cfg, status, req, now):
        pending = measure_request(owner, spec, previous, now, default_url, allowed)
    return Judgement(status, analysis.gate(cfg, status, req), decision, verdicts, pending, events, history)


def _judge_health(owner: Owner, spec: ModelDeploymentSpec, previous: ModelDeploymentStatus, measurement: Measurement | None,
                  now: datetime, default_url: str | None, allowed: frozenset[str] | None) -> Judgement:
    """Nothing rolling out: record a measurement of the stable's health window (never a gate)."""
    req = health.request(spec, previous, now)
    if req is None:
        return Judgement.unjudged(previous)
    kept = health.current(spec, previous, previous.health)
    answered = (measurement is not None and measurement.request.answers(req)
                and (kept is None or kept.window_start != rfc3339(req.window_start)
                     or parse_time(rfc3339(measurement.taken_at)) > parse_time(kept.checked_at)))
    recorded = None
    if answered and measurement is not None:
        recorded = health.assess_health(spec, req, measurement.data.get(STABLE), measurement.error, measurement.taken_at)
    pending = None
    if recorded is None and now >= health.due_at(spec, kept, req):
        pending = measure_request(owner, spec, previous, now, default_url, allowed)
    return Judgement(previous.analysis, None, previous.experiment_decision, pending=pending, health=recorded)


def _restarted(previous: ModelDeploymentStatus, req: AnalysisRequest, evidence: dict[str, Any],
               now: datetime) -> tuple[tuple[EventIntent, ...], tuple[HistoryEntry, ...]]:
    """The AnalysisRestarted Event and history entry: a window restarted after a shared incident ended."""
    bento = (previous.rollout.bento if req.purpose == "step" and previous.rollout is not None
             else previous.bake.bento if previous.bake is not None else None)
    incidents = evidence["incidents"]
    slos = ", ".join(sorted({i["slo"] for i in incidents}))
    since = min((i["seenAt"] for i in incidents), default="?")
    rates = ", ".join(f"{slo} {100 * r:.3g}%" for slo, r in sorted(evidence["baselineRecent"].items()))
    message = (f"the {req.purpose}'s analysis window restarts at {evidence['restartedAt']} (restart {evidence['restart']} of "
               f"{evidence['maxRestarts']}): a breach shared with the baseline ({slos}) was seen at {since}, and the baseline is "
               f"back within its SLOs over its recent intervals ({rates}); the incident's breach evidence is set aside, the "
               f"comparison with the baseline continues")
    return ((EventIntent("Normal", "AnalysisRestarted", message),),
            (history_entry(now, "AnalysisRestarted", message, req.revision, bento, dict(evidence)),))
