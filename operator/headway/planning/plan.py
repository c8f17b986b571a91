"""Plan one reconcile of a ModelDeployment: the whole decision, as data.

Pure, with ``now`` passed in and status the only memory. The pipeline:

1. ``decide(owner, obs, now)``: validate the spec, ``judge()`` the analysis (a measurement
   in the observation is recorded only if it answers the current request), and hand the
   decision to one strategy planner: invalid (freeze, nothing acts), steady, rollout
   (single.py) or experiment (experiment.py);
2. ``derive_status()`` (derive.py): phase, conditions and phase-change Events, from the
   decision and the problems found while rendering;
3. the plan says what it needs next: ``measure`` (a MeasureRequest with ``due_at``) and
   ``wake_at`` (the earliest moment its clock needs another look).

``plan()`` is 1 and 2 without render problems; a reconciler that renders the children
calls ``finish(plan, obs, render_problems, now)`` before writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import ModelDeploymentStatus, ProblemStatus
from headway.planning import controls as ctl
from headway.planning.analysis import Gate
from headway.planning.conditions import EventIntent, history_entry, parse_time, rfc3339
from headway.planning.derive import Decision, RenderProblem, derive_status
from headway.planning.experiment import plan_experiment
from headway.planning import monitoring
from headway.planning.measure import Judgement, MeasureRequest, judge, measure_request
from headway.planning.monitoring import MonitorRequest
from headway.planning.naming import Owner, VariantWorkload
from headway.planning.observe import Observation
from headway.planning.rollout import adopt_model_revisions, is_steady
from headway.planning.single import plan_rollout, plan_steady
from headway.planning.steps import analysed, duration
from headway.planning.strategy import DRAIN, Sections, StrategyResult, ignore_pending
from headway.planning.traffic_plan import TrafficPlan
from headway.planning.validation import (
    Problem, check_spec, ignored_fields, metrics_url_problems, parse_spec, scaler_metric_problems,
)
from headway.planning.verdicts import Verdict
from headway.planning.cost import max_replicas_cap


@dataclass
class Plan:
    """Workloads to run (None: leave every child untouched), traffic, status, Events, and what it needs next."""

    spec: ModelDeploymentSpec | None
    workloads: list[VariantWorkload] | None
    traffic: TrafficPlan | None
    status: ModelDeploymentStatus
    events: list[EventIntent] = field(default_factory=list)
    keep: tuple[str, ...] = ()  # variants whose children stay as they are (draining)
    measure: MeasureRequest | None = None  # the next measurement this object needs (due_at <= now: due now)
    monitor: MonitorRequest | None = None  # the next counts spec.monitoring needs (due_at <= now: due now)
    wake_at: datetime | None = None  # the earliest moment the plan's clock needs another look (None: only on change)
    verdicts: tuple[tuple[str, Verdict], ...] = ()  # recorded from the observation's measurement (telemetry)
    decision: Decision | None = None  # what status was derived from (finish() derives it again with render problems)


def decide(owner: Owner, obs: Observation, now: datetime, judgement: Judgement | None = None) -> Decision:
    """Everything but the phase and conditions. ``judgement`` None: judged from the observation."""
    spec, problems = parse_spec(obs.raw_spec)
    if spec is not None and (adopted := adopt_model_revisions(spec, obs.previous)) is not obs.previous:
        obs = replace(obs, previous=adopted)
    previous = obs.previous
    if spec is not None:
        problems = (check_spec(owner.name, spec) + metrics_url_problems(spec, obs.allowed_metrics_urls)
                    + scaler_metric_problems(spec, obs.default_metrics_url, obs.allowed_metrics_urls))
    ignored = ignored_fields(obs.raw_spec) if spec is not None else []
    if judgement is None:
        judgement = judge(owner, spec, previous, obs.measurement, now, obs.default_metrics_url, obs.allowed_metrics_urls)
    monitored = monitoring.assess(owner, spec if not problems else None, previous, obs.monitoring, now, obs.default_metrics_url)
    if spec is None or problems:
        strategy = _frozen(obs, now)
    elif spec.experiment is not None:
        strategy = plan_experiment(spec, obs, owner, judgement, now)
    elif is_steady(spec, previous):
        strategy = plan_steady(spec, obs, owner, now)
    else:
        # A shadow or canary step also waits for the prediction comparison (spec.monitoring.compare.gate).
        gate = monitoring.combine(judgement.gate or _unmeasured(spec, previous), monitoring.step_gate(spec, previous, monitored.status))
        strategy = plan_rollout(spec, obs, owner, gate, now)
    if spec is not None and not problems:
        _cap_to_budget(spec, obs, strategy)
    d = Decision(spec, problems, ignored, strategy, judgement, monitoring=monitored)
    d.events += judgement.events  # what the analysis did on its own (AnalysisRestarted)
    d.history += judgement.history
    _spec_notes(d, previous, now)
    _typos(d, obs, now)
    return d


def _unmeasured(spec: ModelDeploymentSpec, previous: ModelDeploymentStatus) -> Gate | None:
    """An analysed step with an analysis configured but no gate: paused, or resumed in this very
    reconcile (no analysis runs while paused). Its step may not end until it is measured."""
    rollout, steps = previous.rollout, (spec.rollout.steps if spec.rollout else [])
    if (spec.analysis is None or rollout is None or rollout.paused_at is None or rollout.promoting
            or rollout.step_started_at is None or rollout.step >= len(steps) or not analysed(steps[rollout.step])):
        return None
    return Gate("Inconclusive", "analysis: not measured in this step since it was paused")


def _cap_to_budget(spec: ModelDeploymentSpec, obs: Observation, strategy: StrategyResult) -> None:
    """spec.cost.enforce: every scaler's maxReplicas capped to what the monthly budget allows
    (never below its minReplicas: a budget never stops a model)."""
    if strategy.workloads is None:
        return
    cap = max_replicas_cap(spec, obs.prices, strategy.workloads, obs.live, strategy.keep)
    if cap is None:
        return
    def capped(w: VariantWorkload) -> VariantWorkload:
        if w.scaler is None:
            return w
        # Never below what it runs now: a rollout's candidate must not shrink the serving stable
        # (the projection may exceed the budget meanwhile, and WithinBudget says so).
        running = obs.live[w.variant].replicas if w.variant in obs.live and obs.live[w.variant].exists else 0
        top = max(w.scaler.min_replicas, running, min(w.scaler.max_replicas, cap))
        return replace(w, scaler=replace(w.scaler, max_replicas=min(top, w.scaler.max_replicas)))

    strategy.workloads = [capped(w) for w in strategy.workloads]


def _spec_notes(d: Decision, previous: ModelDeploymentStatus, now: datetime) -> None:
    """Events (and history) about the spec itself: rejected, valid again, fields not acted on."""
    new = [p.dump() for p in _problem_status(d.problems)]
    text = "; ".join(str(p) for p in d.problems)
    if d.problems and _problem_status(d.problems) != previous.problems:
        untouched = "the running model is untouched" if previous.stable is not None else "nothing is deployed until it is fixed"
        d.events.append(EventIntent("Warning", "InvalidSpec", f"spec not applied, {untouched}: {text}"))
        d.history.append(history_entry(now, "SpecRejected", text, evidence={"problems": new}))
    elif not d.problems and previous.problems:
        d.events.append(EventIntent("Normal", "SpecValid", "the spec is valid again and is being applied"))
    if d.ignored and [path for path, _ in d.ignored] != previous.ignored_fields:
        d.events.append(EventIntent("Warning", "FieldsNotActedOn", "; ".join(f"{p}: {why}" for p, why in d.ignored)))


def _problem_status(problems: list[Problem]) -> list[ProblemStatus]:
    return [ProblemStatus(field=p.field, message=p.message) for p in problems]


def _typos(d: Decision, obs: Observation, now: datetime) -> None:
    """``headway.dev/`` annotations that are no control: reported once, after the phase change."""
    typos = ctl.unknown(obs.annotations, obs.previous.controls)
    for name, value in typos.items():
        typo = ctl.unknown_message(name, value)
        d.late_events.append(EventIntent("Warning", "ControlIgnored", typo))
        d.late_history.append(history_entry(now, "ControlIgnored", typo))
    if typos:
        sections = d.strategy.sections
        d.strategy.sections = sections.but(controls={**sections.controls, **typos})


def _frozen(obs: Observation, now: datetime) -> StrategyResult:
    """An invalid spec: nothing acts; a rollout stands where it was and its step's clock stops."""
    previous = obs.previous
    result = StrategyResult(Sections.of(previous))
    rollout = previous.rollout
    if rollout is not None and rollout.paused_at is None and not rollout.promoting:
        result.sections = result.sections.but(rollout=rollout.model_copy(update={"paused_at": rfc3339(now)}))
    # A control left pending would act on whatever the fixed spec rolls out.
    ignored_now = ignore_pending(result, obs, "the spec is invalid; nothing acts until it is fixed", now)
    if ignored_now:
        result.sections = result.sections.but(controls={**previous.controls, **ignored_now}, deferred_controls=[])
    return result


def derive(owner: Owner, d: Decision, obs: Observation, render_problems: list[RenderProblem], now: datetime) -> Plan:
    """The plan of a decision: its status (derived once), what to measure next, when to look again."""
    status, events = derive_status(d, obs, render_problems, now)
    result = d.strategy
    measure = d.judgement.pending or measure_request(owner, d.spec, status, now, obs.default_metrics_url, obs.allowed_metrics_urls)
    monitor = monitoring.monitor_request(owner, d.spec if d.valid else None, status, now, obs.default_metrics_url)
    wake = wake_at(d.spec if d.valid else None, status, measure, now)
    if monitor is not None and monitor.due_at > now:
        wake = min(wake or monitor.due_at, monitor.due_at)
    return Plan(spec=d.spec if d.valid else None, workloads=result.workloads if d.valid else None,
                traffic=result.traffic if d.valid else None, status=status, events=events, keep=result.keep if d.valid else (),
                measure=measure, monitor=monitor, wake_at=wake, verdicts=d.judgement.verdicts, decision=d)


def plan(owner: Owner, obs: Observation, now: datetime, judgement: Judgement | None = None) -> Plan:
    """Decide and derive the status, with no render problems (see ``finish``)."""
    return derive(owner, decide(owner, obs, now, judgement), obs, [], now)


def finish(p: Plan, obs: Observation, render_problems: list[RenderProblem], now: datetime) -> Plan:
    """The plan whose status also accounts for what rendering found (nothing found: ``p`` itself).

    Render problems change only the phase, conditions and Events: what to measure and when
    to look again stay as planned."""
    if not render_problems or p.decision is None:
        return p
    status, events = derive_status(p.decision, obs, render_problems, now)
    return replace(p, status=status, events=events)


def wake_at(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, measure: MeasureRequest | None,
            now: datetime) -> datetime | None:
    """The earliest moment after ``now`` at which time alone changes the plan: a step's end,
    the end of a bake or a drain, the next measurement. Waiting for pods is event-driven."""
    times = [measure.due_at] if measure is not None else []
    rollout, steps = status.rollout, (spec.rollout.steps if spec is not None and spec.rollout else [])
    if rollout is not None and not rollout.promoting and rollout.paused_at is None and rollout.step_started_at and rollout.step < len(steps):
        length = duration(steps[rollout.step])
        if length is not None:
            times.append(parse_time(rollout.step_started_at) + length)
    if status.bake is not None:
        times.append(parse_time(status.bake.until))
    times += [parse_time(d.since) + DRAIN for d in status.draining]
    if status.rolled_back is not None:
        times.append(parse_time(status.rolled_back.at) + DRAIN)
    return min((t for t in times if t > now), default=None)


__all__ = [
    "DRAIN", "Decision", "Gate", "Judgement", "Observation", "Plan", "Problem", "RenderProblem", "decide", "derive",
    "finish", "plan", "wake_at",
]
