"""One pure ``derive_status()``: phase, conditions and phase-change Events, derived once.

Inputs: the observation (previous status, the stable Deployment), the decision (the spec's
validity and the strategy's result, with the analysis judgement), and the problems found
while rendering the children (a route that cannot be rendered, a child name taken by an
object this ModelDeployment does not own). The reconciler renders (pure) before it
derives the status, so nothing rewrites the status after it is decided.

Phase: the stable Deployment's own state (``_steady_phase``) unless the strategy
overrides it while stable is fine (Progressing, Paused, Promoting, Degraded, RolledBack);
an invalid spec makes it Degraded (Failed if nothing is deployed); a render problem makes
it Degraded (RolledBack and Failed stay).

ScalerAvailable (``scaler_condition``): present only with ``spec.autoscaling`` (a spec
without it has no such condition, so objects that do not autoscale keep the status they
had); False (KedaNotInstalled, with a Warning Event when it turns False) when KEDA is
needed and ``keda.sh/ScaledObject`` is not served: every variant then runs fixed at
minReplicas; True otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import (
    Condition, ConditionType, CostStatus, HealthStatus, HistoryEntry, ModelDeploymentStatus, Phase, ProblemStatus, TrafficStatus, VariantStatus,
)
from headway.planning import health as stable_health
from headway.planning.bake import describe_bake
from headway.planning.capacity import keda_missing
from headway.planning.conditions import EventIntent, append_history, set_condition
from headway.planning.cost import assess_cost, budget_events
from headway.planning.measure import Judgement
from headway.planning.monitoring import Assessment, condition_of
from headway.planning.naming import CANDIDATE, STABLE
from headway.planning.observe import DeploymentState, Observation
from headway.planning.strategy import StrategyResult
from headway.planning.validation import Problem

NEVER_SERVED = (None, Phase.PENDING, Phase.FAILED)
Status3 = Literal["True", "False", "Unknown"]
Triple = tuple[Status3, str, str]  # a condition's status, reason, message
RENDER_REASONS = ("ChildConflict", "RouteNotApplied", "ScalerNotApplied")  # by precedence: a conflict is reported before a route


@dataclass(frozen=True)
class RenderProblem:
    """Why a planned child cannot be written: ``ChildConflict``, ``RouteNotApplied`` or
    ``ScalerNotApplied`` (an autoscaler that could not scale: its variant keeps fixed replicas)."""

    reason: Literal["ChildConflict", "RouteNotApplied", "ScalerNotApplied"]
    message: str


@dataclass
class Decision:
    """Everything decided before the status: the spec's validity, the strategy's result, the analysis."""

    spec: ModelDeploymentSpec | None  # the spec, if it parsed (it may still have problems)
    problems: list[Problem]
    ignored: list[tuple[str, str]]  # fields not acted on: (path, why)
    strategy: StrategyResult
    judgement: Judgement
    events: list[EventIntent] = field(default_factory=list)  # about the spec itself, before the strategy's
    history: list[HistoryEntry] = field(default_factory=list)
    late_events: list[EventIntent] = field(default_factory=list)  # misspelt controls: after the phase change
    late_history: list[HistoryEntry] = field(default_factory=list)
    monitoring: Assessment | None = None  # spec.monitoring's status, DataDrift condition and Events (monitoring.py)

    @property
    def valid(self) -> bool:
        return self.spec is not None and not self.problems


def _steady_phase(previous: ModelDeploymentStatus, state: DeploymentState, stable: VariantStatus | None) -> tuple[Phase, Triple, Triple]:
    """Phase, Ready and Progressing of a ModelDeployment with one version, from its Deployment."""
    never_served = previous.phase in NEVER_SERVED
    rolled = stable is not None and state.revision == stable.revision
    if not state.exists or stable is None:
        return Phase.PENDING, ("False", "NotCreated", "the model server's Deployment does not exist yet"), ("True", "Creating", "creating the model server")
    if state.deadline_exceeded:
        why = f"{stable.bento} ({stable.image}) does not become available: {state.message or 'progress deadline exceeded'}"
        ready: Triple = ("True", "Available", f"serving the previous pods; {why}") if state.available else ("False", "ProgressDeadlineExceeded", why)
        return (Phase.FAILED if never_served else Phase.DEGRADED), ready, ("False", "ProgressDeadlineExceeded", why)
    if rolled and state.observed and not state.complete and state.current_available >= max(1, stable.replicas):
        # More replicas than its floor asked: an autoscaler scaling up (Available is False until the
        # new pods are ready, maxUnavailable being 0). It serves at least its floor: not degraded.
        return (Phase.SUCCEEDED, ("True", "Available", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready (scaling)"),
                ("False", "Complete", f"{stable.bento} is rolled out"))
    if not state.available:
        return ((Phase.PENDING if never_served else Phase.DEGRADED),
                ("False", "Unavailable", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready"),
                ("True", "RollingOut", f"waiting for {stable.bento} to become available"))
    if not (state.complete and rolled):
        return (Phase.PROGRESSING, ("True", "Available", f"serving; rolling out {stable.bento}: {state.ready_replicas}/{state.replicas} ready"),
                ("True", "RollingOut", f"rolling out {stable.bento}"))
    return (Phase.SUCCEEDED, ("True", "Available", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready"),
            ("False", "Complete", f"{stable.bento} is rolled out"))


@dataclass
class _Phase:
    phase: Phase
    ready: Triple
    progressing: Triple
    degraded: Triple
    message: str  # what the phase-change Event says


def _phase(d: Decision, obs: Observation, render: list[RenderProblem]) -> _Phase:
    previous, result = obs.previous, d.strategy
    stable = result.sections.stable
    phase, ready, progressing = _steady_phase(previous, obs.live.get(STABLE, DeploymentState(exists=False)), stable)
    text = "; ".join(str(p) for p in d.problems)
    message, override = result.message, result.phase
    if stable is None and d.problems:
        phase = Phase.FAILED
        ready = ("False", "InvalidSpec", "nothing is deployed: the spec is invalid")
        progressing = ("False", "InvalidSpec", "nothing is deployed until the spec is fixed")
    if override is not None and phase in (Phase.SUCCEEDED, Phase.PROGRESSING):
        phase = override
        if result.reason:  # the stable itself is degraded (a bake breach reported): nothing is in progress
            pass
        elif phase in (Phase.PROGRESSING, Phase.PROMOTING, Phase.PAUSED, Phase.AWAITING_APPROVAL, Phase.DEGRADED):
            progressing = ("True", phase.value, message)
        elif phase == Phase.ROLLED_BACK:
            progressing = ("False", "RolledBack", message)
    if d.problems and stable is not None and phase != Phase.FAILED:
        phase = Phase.DEGRADED
        message = f"the spec is invalid, nothing changes until it is fixed: {text}"
        frozen = result.sections.rollout
        if frozen is not None:  # a rollout stands where it was: say so, not "complete"
            where = f"step {frozen.step + 1}" if not frozen.promoting else "promotion"
            split = previous.traffic.split if previous.traffic is not None else ""
            progressing = ("True", "InvalidSpec", f"rollout of {frozen.bento} frozen at {where}" + (f" ({split})" if split else "")
                           + " until the spec is fixed; the step's clock is stopped")
    degraded: Triple
    if d.problems:
        degraded = ("True", "InvalidSpec", text)
    elif phase in (Phase.DEGRADED, Phase.FAILED):
        degraded = ("True", result.reason or (progressing[1] if override == Phase.DEGRADED else ready[1]), message or ready[2])
    elif phase == Phase.ROLLED_BACK:
        degraded = ("True", "RolledBack", message)
    else:
        degraded = ("False", "AsExpected", "")
    out = _Phase(phase, ready, progressing, degraded, message or ready[2])
    reason = next((r for r in RENDER_REASONS if any(p.reason == r for p in render)), None)
    if reason is not None:  # what cannot be applied makes it Degraded, naming why
        why = "; ".join(p.message for p in render if p.reason == reason)
        out.degraded, out.message = ("True", reason, why), why
        out.phase = phase if phase in (Phase.ROLLED_BACK, Phase.FAILED) else Phase.DEGRADED
    return out


def scaler_condition(spec: ModelDeploymentSpec | None, obs: Observation, problems: bool = False) -> Triple | None:
    """ScalerAvailable: absent without spec.autoscaling; False when KEDA is needed but not served
    (every variant then runs fixed at minReplicas); kept as it was while the spec does not parse."""
    if spec is None or problems:  # not acted on: what was true stays true
        old = next((c for c in obs.previous.conditions if c.type == ConditionType.SCALER_AVAILABLE), None)
        return (old.status, old.reason, old.message) if old is not None else None
    scaling = spec.autoscaling
    if scaling is None:
        return None
    if keda_missing(spec, obs.served):
        why = ("engine keda" if scaling.engine == "keda" else "scaleToZero" if scaling.scale_to_zero
               else "a requestsPerSecond or inFlight metric")
        return ("False", "KedaNotInstalled",
                f"spec.autoscaling needs KEDA ({why}) but this cluster does not serve keda.sh/ScaledObject: install KEDA "
                f"(https://keda.sh/docs/latest/deploy/), or scale on cpu or memory with engine hpa; until then every variant "
                f"runs fixed at minReplicas ({max(1, scaling.min_replicas)})")
    kind = "HorizontalPodAutoscaler" if scaling.chosen_engine == "hpa" else "KEDA ScaledObject"
    return ("True", "HpaAvailable" if scaling.chosen_engine == "hpa" else "KedaAvailable",
            f"each variant scales with its own {kind}, up to {scaling.max_replicas} replicas")


def _bake_slos(d: Decision, slos: Triple) -> Triple:
    """SLOsMet during a bake says what the new stable is compared with, and whether a breach was
    reported without a rollback (reason BreachReported)."""
    bake, judged = d.strategy.sections.bake, d.judgement.status
    if bake is None or judged is None or judged.purpose != "bake":
        return slos
    previous = d.strategy.sections.previous_model
    status, reason, message = slos
    if bake.breach_reported_at is not None:
        reason = "BreachReported"
    without = bool(d.spec and d.spec.rollout and d.spec.rollout.rollback_without_baseline)
    return status, reason, f"{describe_bake(bake, previous.bento if previous else None, without)}: {message}"


def derive_status(d: Decision, obs: Observation, render: list[RenderProblem], now: datetime
                  ) -> tuple[ModelDeploymentStatus, list[EventIntent]]:
    """The new status and every Event of this plan, in order."""
    previous, result = obs.previous, d.strategy
    p = _phase(d, obs, render)

    def cond(type_: str, c: Triple) -> Condition:
        return set_condition(previous.conditions, type_, c[0], c[1], c[2], now, obs.generation)

    gate = d.judgement.gate
    slos: Triple = ("Unknown", "NoAnalysis", "no SLO analysis is configured")
    kept = d.judgement.health or (stable_health.current(d.spec, previous, previous.health) if d.valid else previous.health)
    if gate is not None:
        slos = ({"Pass": "True", "Fail": "False", "Inconclusive": "Unknown"}[gate.result], gate.result, gate.message)  # type: ignore[assignment]
        slos = _bake_slos(d, slos)
    elif (kept is not None and d.spec is not None and d.spec.analysis is not None and d.strategy.sections.rollout is None
          and d.strategy.sections.bake is None and not stable_health.stale(d.spec, kept, now)):
        slos = _steady_slos(kept)  # nothing rolling out: the stable's own recent measurement
    supported: Triple = ("False", "FieldsNotActedOn", "; ".join(f"{f}: {why}" for f, why in d.ignored)) if d.ignored else ("True", "AllFieldsActedOn", "")
    conditions = [cond(ConditionType.READY, p.ready), cond(ConditionType.PROGRESSING, p.progressing), cond(ConditionType.DEGRADED, p.degraded),
                  cond(ConditionType.SLOS_MET, slos), cond(ConditionType.SPEC_SUPPORTED, supported)]
    scaler = scaler_condition(d.spec, obs, bool(d.problems))
    if scaler is not None:
        conditions.append(cond(ConditionType.SCALER_AVAILABLE, scaler))
    events = [*d.events, *result.events]
    if p.phase != previous.phase and previous.phase is not None:
        kind: Literal["Normal", "Warning"] = "Warning" if p.phase in (Phase.DEGRADED, Phase.FAILED, Phase.ROLLED_BACK) else "Normal"
        events.append(EventIntent(kind, f"Phase{p.phase.value}", f"phase {previous.phase.value} -> {p.phase.value}: {p.message}"))
    events += d.late_events
    was = next((c for c in previous.conditions if c.type == ConditionType.SCALER_AVAILABLE), None)
    if scaler is not None and scaler[0] == "False" and (was is None or was.status != "False"):
        events.append(EventIntent("Warning", scaler[1], scaler[2]))  # once, when it turns False
    cost, budget, budget_notes = _cost(d, obs, now)
    conditions += budget
    events += budget_notes
    monitored = d.monitoring
    if monitored is not None and d.valid:
        conditions += condition_of(previous.conditions, monitored, now, obs.generation)
        events += monitored.events
    else:  # an invalid spec changes nothing: the last check and its condition stay
        conditions += [c for c in previous.conditions if c.type == ConditionType.DATA_DRIFT]
    old = next((c for c in previous.conditions if c.type == ConditionType.DEGRADED), None)
    if p.degraded[1] in RENDER_REASONS and (old is None or old.reason != p.degraded[1] or old.message != p.degraded[2]):
        events.append(EventIntent("Warning", p.degraded[1], p.degraded[2]))  # one Warning per change
    history = previous.history
    for entry in [*d.history, *result.history, *d.late_history, *(monitored.history if monitored is not None and d.valid else ())]:
        history = append_history(history, entry)
    update: dict[str, Any] = {"cost": cost, "health": kept}
    if monitored is not None and d.valid:
        update["monitoring"] = monitored.status
    status = _status(d, obs, p.phase, conditions, history).model_copy(update=update)
    if d.valid:  # a promoted candidate's stable starts unmeasured
        status = status.model_copy(update={"health": stable_health.current(d.spec, status, kept)})
    done = stable_health.complete(d.spec if d.valid else None, status, now)
    complete = cond(ConditionType.DEPLOYMENT_COMPLETE, done)
    was_complete = next((c for c in previous.conditions if c.type == ConditionType.DEPLOYMENT_COMPLETE), None)
    if was_complete is not None and was_complete.status != complete.status and "True" in (was_complete.status, complete.status):
        events.append(EventIntent("Normal" if complete.status == "True" else "Warning",
                                  "DeploymentComplete" if complete.status == "True" else "DeploymentIncomplete", complete.message))
    return status.model_copy(update={"conditions": [*status.conditions, complete]}), events


def _steady_slos(health: HealthStatus) -> Triple:
    """SLOsMet when nothing rolls out: the stable's health window (planning/health.py)."""
    if health.error is not None:
        return "Unknown", "MetricsUnavailable", f"the stable's SLOs could not be measured: {health.error}"
    if health.missing:
        return "Unknown", "MetricsMissing", f"the stable has no series for {', '.join(health.missing)} since {health.window_start}"
    failed = [s.slo for s in health.slos if s.result == "Fail"]
    if failed:
        return "False", "Fail", f"the stable breaches {', '.join(failed)} over {health.window_start} to {health.checked_at}"
    passed = all(s.result == "Pass" for s in health.slos)
    return ("True" if passed else "Unknown", "Pass" if passed else "Inconclusive",
            f"the stable over {health.window_start} to {health.checked_at}: " + ", ".join(f"{s.slo} {s.result}" for s in health.slos))


def _cost(d: Decision, obs: Observation, now: datetime) -> tuple[CostStatus | None, list[Condition], list[EventIntent]]:
    """status.cost, the WithinBudget condition (none without a budget) and its Events (cost.py).

    An invalid spec changes nothing: the last cost and condition stay."""
    previous, workloads = obs.previous, d.strategy.workloads
    if not d.valid or d.spec is None or workloads is None:
        return previous.cost, [c for c in previous.conditions if c.type == ConditionType.WITHIN_BUDGET], []
    recorded = obs.measurement if d.judgement.verdicts else None  # only a measurement this plan recorded
    cost, budget = assess_cost(d.spec, obs.prices, workloads, obs.live, d.strategy.keep, previous, recorded)
    if budget is None:
        return cost, [], []
    condition = set_condition(previous.conditions, ConditionType.WITHIN_BUDGET, *budget, now, obs.generation)
    return cost, [condition], budget_events(previous.conditions, budget)


def _status(d: Decision, obs: Observation, phase: Phase, conditions: list[Condition], history: list[HistoryEntry]) -> ModelDeploymentStatus:
    previous, result, s = obs.previous, d.strategy, d.strategy.sections
    stable_state = obs.live.get(STABLE, DeploymentState(exists=False))
    traffic = previous.traffic
    if d.valid and result.traffic is not None:
        weights, mirror = result.traffic.weights, result.traffic.mirror
        traffic = TrafficStatus(stable_weight=weights.get(STABLE, 100), candidate_weight=weights.get(CANDIDATE, 0),
                                mirror_percent=mirror[1] if mirror else 0, split=result.split)
    return previous.model_copy(update={
        "stable_model": s.stable_model, "previous_model": s.previous_model, "rollout": s.rollout, "rolled_back": s.rolled_back,
        "bake": s.bake, "stable": s.stable, "candidate": s.candidate, "variants": s.variants, "draining": s.draining,
        "suspended_variants": s.suspended_variants, "experiment_decision": s.experiment_decision, "controls": s.controls,
        "deferred_controls": s.deferred_controls, "governance": s.governance,
        "observed_generation": obs.generation,
        "phase": phase,
        "traffic": traffic,
        "ready": f"{stable_state.ready_replicas}/{stable_state.replicas}" if stable_state.exists else None,
        "conditions": conditions,
        "problems": [ProblemStatus(field=p.field, message=p.message) for p in d.problems],
        "ignored_fields": [path for path, _ in d.ignored],
        "history": history,
        "analysis": d.judgement.status if d.judgement.status is not None else previous.analysis,
    })
