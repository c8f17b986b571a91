"""The rollout state machine: which version is stable, where the candidate stands.

Pure: the decision is a function of the spec, the previous status, what the stable and
candidate Deployments report, the pending kubectl controls, the analysis gate and
``now``. Its whole state is ``status.stableModel``, ``status.previousModel``,
``status.rollout`` and ``status.rolledBack``, so a process that dies at any line is
replaced by one that makes the same decision from the same status: a step is never
skipped or repeated and a promotion never happens twice (see docs/rollouts.md).

Life of a candidate (spec.model differs from status.stableModel):

    entering step k  --candidate ready at step k's size-->  step k running (traffic applied)
    step k running   --duration passed and gate Pass, or promote-step-->  entering step k+1
    last step done, or promote  -->  promoting: stable Deployment rolls to the candidate
    promoting        --stable available on the new revision-->  promoted (candidate removed)
    any time: abort, or the gate asks for rollback  -->  rolled back (candidate at 0 replicas)
    candidate unavailable while it had traffic  -->  hold (all traffic on stable, Degraded)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from headway.api.spec import ModelDeploymentSpec, ModelSpec, RolloutStep
from headway.api.status import (
    BakeStatus, HistoryEntry, ModelDeploymentStatus, Phase, RolledBackStatus, RolloutStatus, VariantStatus,
)
from headway.api.types import parse_duration
from headway.planning.conditions import EventIntent, history_entry, parse_time, rfc3339
from headway.planning.naming import CANDIDATE, STABLE, revision_of
from headway.planning.observe import DeploymentState, serving_pods


# PinPlan and TrafficPlan say *what* traffic should do, in planning's terms (variants); the
# reconciler translates them into traffic.base's Pin/Backend/Mirror (Services and ports). The
# likeness is deliberate: the planning layer may not import the traffic layer above it.
@dataclass(frozen=True)
class PinPlan:
    kind: Literal["header", "cookie"]
    name: str
    value: str
    variant: str


@dataclass(frozen=True)
class TrafficPlan:
    """What live traffic should do: weights per variant (sum 100), mirroring, pins."""

    weights: dict[str, int]
    mirror: tuple[str, int] | None = None  # (variant, percent)
    pins: tuple[PinPlan, ...] = ()


STABLE_ONLY = TrafficPlan(weights={STABLE: 100})


@dataclass(frozen=True)
class Gate:
    """The analysis verdict for the current step (None when no analysis is configured)."""

    result: Literal["Pass", "Fail", "Inconclusive"]
    message: str
    rollback: bool = False  # failureLimit reached (or inconclusive limit with onInconclusive: rollback)
    evidence: dict[str, Any] | None = None


@dataclass
class RolloutDecision:
    stable_model: ModelSpec
    previous_model: ModelSpec | None
    rollout: RolloutStatus | None
    rolled_back: RolledBackStatus | None
    candidate_model: ModelSpec | None  # run a candidate workload with this model
    candidate_share: int  # percent of traffic the candidate is sized for (0: scaled to zero)
    traffic: TrafficPlan
    phase: Phase | None  # None: steady, derived from the stable Deployment
    message: str = ""
    bake: BakeStatus | None = None
    handled: dict[str, str] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[EventIntent] = field(default_factory=list)


def step_traffic(steps: list[RolloutStep], k: int) -> TrafficPlan:
    """Traffic while step k runs; a pause keeps the traffic of the step before it."""
    for step in reversed(steps[: k + 1]):
        if step.canary is not None:
            w = step.canary.weight
            return TrafficPlan(weights={STABLE: 100 - w, CANDIDATE: w})
        if step.shadow is not None:
            return TrafficPlan(weights={STABLE: 100, CANDIDATE: 0}, mirror=(CANDIDATE, step.shadow.percent))
    return TrafficPlan(weights={STABLE: 100, CANDIDATE: 0})


def step_share(steps: list[RolloutStep], k: int) -> int:
    """Share of traffic (live or mirrored) the candidate must be sized for at step k."""
    plan = step_traffic(steps, min(k, len(steps) - 1)) if steps else STABLE_ONLY
    return max(plan.weights.get(CANDIDATE, 0), plan.mirror[1] if plan.mirror else 0)


def step_duration(step: RolloutStep) -> timedelta | None:
    part = step.shadow or step.canary or step.pause
    duration = getattr(part, "duration", None)
    return parse_duration(duration) if duration else None


def describe(step: RolloutStep, k: int, total: int) -> str:
    if step.canary:
        what = f"canary {step.canary.weight}%"
    elif step.shadow:
        what = f"shadow {step.shadow.percent}%"
    else:
        what = "pause" + (f" {step.pause.duration}" if step.pause and step.pause.duration else " (manual gate)")
    return f"step {k + 1}/{total}: {what}"


def replicas_for_share(total: int, share: int) -> int:
    """Replicas a variant needs for a share of the traffic the stable's `total` replicas carry."""
    return 0 if share <= 0 else max(1, math.ceil(total * share / 100))


def _parse_time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def decide(
    spec: ModelDeploymentSpec,
    previous: ModelDeploymentStatus,
    stable: DeploymentState,
    candidate: DeploymentState,
    controls: dict[str, str],
    paused: bool,
    gate: Gate | None,
    now: datetime,
) -> RolloutDecision:
    desired = spec.model
    drev = revision_of(desired)
    steps = list(spec.rollout.steps) if spec.rollout else []
    out = RolloutDecision(
        stable_model=previous.stable_model or desired, previous_model=previous.previous_model, rollout=previous.rollout,
        rolled_back=previous.rolled_back, candidate_model=None, candidate_share=0, traffic=STABLE_ONLY, phase=None,
        bake=previous.bake,
    )

    def record(event: str, message: str, kind: Literal["Normal", "Warning"] = "Normal", evidence: dict[str, Any] | None = None, rev: str = drev, bento: str = desired.bento) -> None:
        out.history.append(history_entry(now, event, message, rev, bento, evidence))
        out.events.append(EventIntent(kind, event, message))

    if previous.stable_model is None:
        record("Deployed", f"deploying {desired.bento} ({desired.image}) as the first version")
        return out
    srev = revision_of(out.stable_model)
    rollout = previous.rollout
    if out.bake is not None:
        baked = _bake(out, drev, gate, record, now)
        if baked is not None:
            return baked

    # A retry clears a rollback of the current spec.model; a new spec.model clears it too.
    if "retry" in controls and out.rolled_back is not None:
        out.handled["retry"] = controls["retry"]
        record("Retried", f"retrying {out.rolled_back.bento} after {out.rolled_back.reason}")
        out.rolled_back = None
    if out.rolled_back is not None and out.rolled_back.revision != drev:
        out.rolled_back = None

    if rollout is not None and rollout.promoting and rollout.revision == srev:
        return _promoting(out, spec, stable, controls, record, now, steps)

    if drev == srev:
        if rollout is not None:
            record("RolloutCancelled", f"spec.model is the stable {desired.bento} again: candidate {rollout.bento} removed", rev=rollout.revision, bento=rollout.bento)
            out.rollout = None
        out.rolled_back = None
        return out

    if out.rolled_back is not None:  # spec.model still names the rolled-back revision
        out.rollout = None
        out.candidate_model, out.candidate_share = desired, 0
        out.phase = Phase.ROLLED_BACK
        out.message = f"{desired.bento} was rolled back ({out.rolled_back.reason}); stable {out.stable_model.bento} serves. Change spec.model or retry."
        return out

    if not steps:  # no rollout steps: the new version replaces stable directly
        record("Updated", f"updating stable from {out.stable_model.bento} ({srev}) to {desired.bento} ({drev}): no rollout steps")
        out.previous_model, out.stable_model, out.rollout = out.stable_model, desired, None
        return out

    if rollout is None or rollout.revision != drev:
        if rollout is not None:
            record("CandidateReplaced", f"spec.model changed during the rollout: {rollout.bento} replaced by {desired.bento}; steps restart")
        else:
            record("RolloutStarted", f"rolling out {desired.bento} ({drev}) over stable {out.stable_model.bento}: {len(steps)} steps")
        rollout = RolloutStatus(revision=drev, bento=desired.bento, step=0, started_at=rfc3339(now))

    if "abort" in controls:
        out.handled["abort"] = controls["abort"]
        return _roll_back(out, desired, drev, "Aborted", f"aborted by a user at {describe(steps[min(rollout.step, len(steps) - 1)], rollout.step, len(steps))}", record, now)
    if gate is not None and gate.rollback:
        return _roll_back(out, desired, drev, "FailedAnalysis", gate.message, record, now, gate.evidence)
    total = spec.replicas if spec.replicas is not None else 1
    return _progress(out, rollout, steps, desired, candidate, controls, paused, gate, record, now, total, previous.controls,
                     previous.candidate)


def _roll_back(out: RolloutDecision, desired: ModelSpec, drev: str, reason: str, message: str, record: Any, now: datetime,
               evidence: dict[str, Any] | None = None) -> RolloutDecision:
    had = out.rollout is not None and out.rollout.step_started_at is not None
    out.rolled_back = RolledBackStatus(revision=drev, bento=desired.bento, reason=reason, message=message, at=rfc3339(now))
    out.rollout = None
    out.candidate_model, out.candidate_share = desired, 0
    out.traffic = STABLE_ONLY
    out.phase = Phase.ROLLED_BACK
    out.message = f"{desired.bento} rolled back ({reason}): {message}"
    record("RolledBack" if reason != "Aborted" else "Aborted", out.message, "Warning",
           {**_traffic_evidence(STABLE_ONLY), **({"analysis": evidence} if evidence else {}), "candidateHadTraffic": had})
    return out


def _progress(out: RolloutDecision, rollout: RolloutStatus, steps: list[RolloutStep], desired: ModelSpec,
              candidate: DeploymentState, controls: dict[str, str], paused: bool, gate: Gate | None, record: Any,
              now: datetime, total: int, handled_before: dict[str, str], previous_candidate: VariantStatus | None) -> RolloutDecision:
    out.candidate_model = desired
    started = _parse_time(rollout.step_started_at)

    # Pause freezes the clock; resuming shifts the step's start by the time it was paused for.
    if paused and rollout.paused_at is None and "promote" not in controls:
        rollout = rollout.model_copy(update={"paused_at": rfc3339(now)})
        record("Paused", f"rollout of {desired.bento} paused at {describe(steps[rollout.step], rollout.step, len(steps))}")
    elif not paused and rollout.paused_at is not None:
        paused_at = _parse_time(rollout.paused_at) or now
        if started is not None:
            started = started + (now - max(paused_at, started))
        rollout = rollout.model_copy(update={"paused_at": None, "step_started_at": rfc3339(started) if started else None})
        record("Resumed", f"rollout of {desired.bento} resumed")

    # The candidate can carry traffic: pods of this revision are available. (Not the Available
    # condition: while it scales up with maxUnavailable 0 that is False though its pods serve.)
    known = previous_candidate is not None and previous_candidate.revision == rollout.revision and previous_candidate.ready_replicas > 0
    pods = serving_pods(candidate, rollout.revision, known)
    serving = pods > 0

    if "promote" in controls:
        if serving:
            out.handled["promote"] = controls["promote"]
            return _start_promotion(out, rollout, desired, record, now, "promoted by a user", steps, total)
        if handled_before.get("promote-deferred") != controls["promote"]:  # say it once per request
            out.events.append(EventIntent("Warning", "PromoteDeferred", f"{desired.bento} is not available yet; promotion waits for it"))
            out.handled["promote-deferred"] = controls["promote"]

    manual = "promote-step" in controls
    while True:  # each pass either returns or moves to the next step
        k = rollout.step
        step = steps[k]
        out.candidate_share = step_share(steps, k)
        expected = replicas_for_share(total, out.candidate_share)
        where = describe(step, k, len(steps))

        if started is not None and not serving:  # it had traffic: pull it back and hold
            rollout = rollout.model_copy(update={"step_started_at": None, "hold_reason": "CandidateUnavailable"})
            record("CandidateUnavailable", f"{desired.bento} became unavailable at {where}: all traffic back on stable, holding", "Warning")
            started = None
        if started is None:
            carried = k > 0 and rollout.hold_reason is None  # the previous step's traffic is still applied
            if not serving and (carried or rollout.hold_reason is not None):
                if rollout.hold_reason is None:
                    rollout = rollout.model_copy(update={"hold_reason": "CandidateUnavailable"})
                    record("CandidateUnavailable", f"{desired.bento} became unavailable before {where}: all traffic back on stable, holding", "Warning")
                out.rollout, out.traffic = rollout, STABLE_ONLY
                out.phase, out.message = Phase.DEGRADED, f"holding: {desired.bento} is unavailable ({candidate.message or 'not ready'}); stable serves all traffic"
                return out
            previous_traffic = step_traffic(steps, k - 1) if carried else STABLE_ONLY
            if rollout.paused_at is not None:
                out.rollout, out.traffic = rollout, previous_traffic
                out.phase, out.message = Phase.PAUSED, f"paused before {where} (spec.paused or headway.dev/paused)"
                return out
            sized = candidate.observed and pods >= expected
            if not sized:
                out.rollout, out.traffic = rollout, previous_traffic
                if candidate.deadline_exceeded:
                    out.phase, out.message = Phase.DEGRADED, f"{desired.bento} ({desired.image}) does not become available ({candidate.message}); stable serves"
                else:
                    out.phase, out.message = Phase.PROGRESSING, f"waiting for {desired.bento} to be ready for {where} ({candidate.ready_replicas}/{expected} pods)"
                return out
            rollout = rollout.model_copy(update={"step_started_at": rfc3339(now), "hold_reason": None})
            started = now
            record("StepStarted", f"{desired.bento} {where}", evidence=_traffic_evidence(step_traffic(steps, k)))
        out.traffic = step_traffic(steps, k)
        out.rollout = rollout

        if rollout.paused_at is not None:
            out.phase, out.message = Phase.PAUSED, f"paused at {where} (spec.paused or headway.dev/paused)"
            return out
        duration = step_duration(step)
        elapsed = now - started
        time_done = duration is not None and elapsed >= duration
        needs_gate = step.pause is None and gate is not None
        if not manual and not time_done:
            if duration is None:
                out.phase, out.message = Phase.PAUSED, f"waiting at a manual gate ({where}): promote-step or promote to continue"
            else:
                # The end time, not the time left: status must not change just because time passes
                # (every status write is a watch event and another reconcile).
                ends = rfc3339(started + duration)
                out.phase, out.message = Phase.PROGRESSING, f"{where} until {ends}" + (f"; analysis: {gate.result}" if gate else "")
            return out
        if not manual and needs_gate and gate is not None and gate.result != "Pass":
            out.phase = Phase.PROGRESSING
            out.message = f"{where}: duration passed, waiting for a passing analysis ({gate.result}: {gate.message})"
            return out

        why = "passed by a user (promote-step)" if manual else "duration passed" + (" and analysis passed" if needs_gate else "")
        evidence = _traffic_evidence(step_traffic(steps, k))
        if gate is not None and needs_gate and gate.evidence:
            evidence["analysis"] = gate.evidence
        record("StepCompleted", f"{desired.bento} {where} completed: {why}", evidence=evidence)
        if manual:
            out.handled["promote-step"] = controls["promote-step"]
            manual = False  # one step per request
        if k + 1 >= len(steps):
            return _start_promotion(out, rollout, desired, record, now, "all steps completed", steps, total)
        rollout = rollout.model_copy(update={"step": k + 1, "step_started_at": None})
        started = None


def _traffic_evidence(plan: TrafficPlan) -> dict[str, Any]:
    evidence: dict[str, Any] = {"weights": dict(plan.weights)}
    if plan.mirror:
        evidence["mirror"] = {"variant": plan.mirror[0], "percent": plan.mirror[1]}
    return evidence


def _start_promotion(out: RolloutDecision, rollout: RolloutStatus, desired: ModelSpec, record: Any, now: datetime,
                     why: str, steps: list[RolloutStep], total: int) -> RolloutDecision:
    """Stable moves to the candidate's model; traffic stays as it is until stable is ready."""
    out.previous_model, out.stable_model = out.stable_model, desired
    out.rollout = rollout.model_copy(update={"promoting": True, "paused_at": None})
    out.candidate_model = desired
    out.candidate_share = step_share(steps, len(steps) - 1)
    out.traffic = step_traffic(steps, min(rollout.step, len(steps) - 1)) if rollout.step_started_at else STABLE_ONLY
    out.phase, out.message = Phase.PROMOTING, f"promoting {desired.bento}: 0/{total} stable replicas on the new version"
    record("PromotionStarted", f"promoting {desired.bento}: stable rolls to it ({why})", evidence=_traffic_evidence(out.traffic))
    return out


def _bake(out: RolloutDecision, drev: str, gate: Gate | None, record: Any, now: datetime) -> RolloutDecision | None:
    """After a promotion: a breach restores the previous version; the end of the bake drops it."""
    bake = out.bake
    assert bake is not None
    if drev != bake.revision or out.previous_model is None:
        out.bake = None  # spec.model moved on: a new rollout judges the next version
        return None
    if gate is not None and gate.rollback:
        restored = out.previous_model
        record("RolledBack", f"{bake.bento} breached its SLOs during the bake time: stable restored to {restored.bento}: {gate.message}",
               "Warning", gate.evidence, rev=bake.revision, bento=bake.bento)
        out.rolled_back = RolledBackStatus(revision=bake.revision, bento=bake.bento, reason="FailedBake", message=gate.message, at=rfc3339(now))
        out.stable_model, out.previous_model, out.bake = restored, None, None
        out.phase = Phase.ROLLED_BACK
        out.message = f"{bake.bento} rolled back after promotion (FailedBake): {gate.message}"
        return out
    if now >= parse_time(bake.until):
        record("BakeCompleted", f"{bake.bento} met its SLOs through the bake time; {out.previous_model.bento} removed", rev=bake.revision, bento=bake.bento)
        out.bake = None
        out.previous_model = None
        return out
    return None


def _promoting(out: RolloutDecision, spec: ModelDeploymentSpec, stable: DeploymentState, controls: dict[str, str],
               record: Any, now: datetime, steps: list[RolloutStep]) -> RolloutDecision:
    rollout = out.rollout
    assert rollout is not None
    model = out.stable_model
    for control in ("promote", "promote-step"):
        if control in controls:
            out.handled[control] = controls[control]
    if "abort" in controls and out.previous_model is not None:
        out.handled["abort"] = controls["abort"]
        out.stable_model, out.previous_model = out.previous_model, None
        return _roll_back(out, model, rollout.revision, "Aborted", "aborted by a user during promotion", record, now)
    total = spec.replicas if spec.replicas is not None else 1
    if stable.available and stable.complete and stable.revision == rollout.revision and stable.replicas >= total:
        record("Promoted", f"{model.bento} ({rollout.revision}) promoted to stable; candidate removed",
               evidence={**_traffic_evidence(STABLE_ONLY), "readyReplicas": stable.ready_replicas})
        out.rollout = None
        out.candidate_model, out.candidate_share, out.traffic = None, 0, STABLE_ONLY
        if spec.rollout and spec.rollout.bake_time and out.previous_model is not None:
            until = now + parse_duration(spec.rollout.bake_time)
            out.bake = BakeStatus(revision=rollout.revision, bento=model.bento, since=rfc3339(now), until=rfc3339(until))
            record("BakeStarted", f"baking {model.bento} until {rfc3339(until)}; {out.previous_model.bento} stays available")
        return out
    out.candidate_model = model
    out.candidate_share = step_share(steps, len(steps) - 1) if steps else 0
    out.traffic = step_traffic(steps, min(rollout.step, len(steps) - 1)) if steps and rollout.step_started_at else STABLE_ONLY
    on_new = stable.ready_replicas if stable.revision == rollout.revision else 0
    out.phase, out.message = Phase.PROMOTING, f"promoting {model.bento}: {on_new}/{total} stable replicas on the new version"
    return out
