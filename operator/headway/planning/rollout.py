"""The rollout state machine: which version is stable, where the candidate stands.

Pure: the decision is a function of the spec, the previous status, what the stable and
candidate Deployments report, the pending kubectl controls, the analysis gate and
``now``. Its whole state is ``status.stableModel``, ``status.previousModel``,
``status.rollout`` and ``status.rolledBack``, so a process that dies at any line is
replaced by one that makes the same decision from the same status: a step is never
skipped or repeated and a promotion never happens twice (see docs/rollouts.md). What a
step does (traffic, analysis, how it ends) is the step table's (steps.py); how many pods
a share needs is capacity's (capacity.py).

Life of a candidate (spec.model differs from status.stableModel):

    entering step k  --candidate ready at step k's size-->  step k running (traffic applied)
    step k running   --duration passed and gate Pass, or promote-step-->  entering step k+1
    last step done, or promote  -->  promoting: stable Deployment rolls to the candidate
    promoting        --stable available on the new revision-->  promoted (candidate removed)
    any time: abort, or the gate asks for rollback  -->  rolled back (candidate at 0 replicas)
    candidate unavailable while it had traffic  -->  hold (all traffic on stable, Degraded)

After a promotion with a bake time (``_bake``; what the baseline is and what a breach does
is bake.py's): the previous version, sized for its share, gets it once it is available, and
the analysis compares the new stable with it until the bake ends. A breach shown against it
restores it; a breach not compared with it is reported (Degraded) and restores it only with
``rollbackWithoutBaseline``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from headway.api.spec import ModelDeploymentSpec, RolloutStep
from headway.api.governance_spec import STAGES, Stage
from headway.api.status import (
    AnalysisStatus, BakeStatus, GovernanceStatus, HistoryEntry, ModelDeploymentStatus, Phase, RolledBackStatus, RolloutStatus, VariantStatus, VersionSpec,
)
from headway.api.types import parse_duration
from headway.planning.analysis import Gate
from headway.planning.bake import Baseline, describe_bake, resolve, restores, unattributed_breaches
from headway.planning.capacity import Capacity, fixed_capacity, replicas_for_share
from headway.planning.conditions import EventIntent, history_entry, parse_time, rfc3339
from headway.planning import governance as gov
from headway.planning.governance import ObservedApproval
from headway.planning.naming import desired_version, revision_of, version_change
from headway.planning.observe import DeploymentState, serving_pods
from headway.planning.steps import analysed, describe, duration, mirror_only, step_share, step_traffic
from headway.planning.traffic_plan import STABLE_ONLY, PinPlan, TrafficPlan
from headway.planning.cost import cost_increase_hold

step_duration = duration  # the name the step table's clock had before


@dataclass
class RolloutDecision:
    stable_model: VersionSpec
    previous_model: VersionSpec | None
    rollout: RolloutStatus | None
    rolled_back: RolledBackStatus | None
    candidate_model: VersionSpec | None  # run a candidate workload with this version
    candidate_share: int  # percent of traffic the candidate is sized for (0: scaled to zero)
    traffic: TrafficPlan
    phase: Phase | None  # None: steady, derived from the stable Deployment
    message: str = ""
    bake: BakeStatus | None = None
    drain_previous: bool = False  # the bake ended while the previous version served live traffic: drain it
    reason: str = ""  # with phase Degraded: why the stable itself is degraded (BakeBreach), nothing in progress
    handled: dict[str, str] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[EventIntent] = field(default_factory=list)
    governance: GovernanceStatus | None = None  # spec.governance applied to the candidate (status.governance)


@dataclass
class _Run:
    """One decision in the making: its inputs, and the decision it builds."""

    out: RolloutDecision
    desired: VersionSpec
    steps: list[RolloutStep]
    controls: dict[str, str]
    gate: Gate | None
    capacity: Capacity
    now: datetime
    cost_hold: str | None = None  # spec.cost.maxIncrease exceeded: steps do not advance on their own
    held_before: bool = False  # the hold of this step was already recorded
    spec: ModelDeploymentSpec | None = None
    approvals: tuple[ObservedApproval, ...] = ()
    history: tuple[HistoryEntry, ...] = ()  # status.history before this decision (the evidence approvers see)

    @property
    def drev(self) -> str:
        return revision_of(self.desired)

    @property
    def total(self) -> int:
        return self.capacity.total

    def need(self, k: int) -> int:
        """Ready candidate replicas step k's share needs before it gets it (capacity before traffic)."""
        return self.capacity.need(step_share(self.steps, k), mirror_only(self.steps, k))

    def lost(self, pods: int, k: int) -> bool:
        """The candidate has no pod serving while step k needs one (an idle scaled-to-zero shadow needs none)."""
        return pods == 0 and (not self.capacity.scaled or self.need(k) > 0)

    def record(self, event: str, message: str, kind: Literal["Normal", "Warning"] = "Normal", evidence: dict[str, Any] | None = None,
               rev: str | None = None, bento: str | None = None) -> None:
        self.out.history.append(history_entry(self.now, event, message, rev or self.drev, bento or self.desired.bento, evidence))
        self.out.events.append(EventIntent(kind, event, message))

    def where(self, k: int) -> str:
        return describe(self.steps[k], k, len(self.steps))

    def handle(self, control: str) -> None:
        self.out.handled[control] = self.controls[control]

    @property
    def first_canary(self) -> int | None:
        """The first step that gives the candidate live traffic (BeforeFirstCanary waits before it)."""
        return next((k for k, s in enumerate(self.steps) if s.canary is not None and s.canary.weight > 0), None)

    def approved(self, stages: tuple[Stage, ...], where: str, rollout: RolloutStatus | None) -> bool:
        """Whether spec.governance lets the rollout cross ``stages`` now. Reaching a stage that needs
        approvals freezes the evidence shown to approvers (status.governance, written ahead of any
        approval) and records AwaitingApproval; enough approvals of this revision with that evidence's
        digest record Approved. False: the rollout waits (phase AwaitingApproval, who is missing)."""
        policy = self.spec.governance if self.spec is not None else None
        status = self.out.governance
        if policy is None or status is None or not stages:
            return True
        if not gov.requirements(policy, [s for s in stages if s not in status.approved_stages]):
            return True
        if (status.stage == "BeforePromotion" and status.evidence_digest is not None and "BeforePromotion" not in stages
                and "BeforePromotion" not in status.approved_stages):
            # Evidence frozen for promotion (a promote asked) covers the canary stage too: never go back to
            # freezing other evidence under the approvers (each re-freeze would void their approvals).
            stages = STAGES
        needed = gov.requirements(policy, [s for s in stages if s not in status.approved_stages])
        stage = stages[-1]
        if status.stage != stage or status.evidence_digest is None:
            evidence = gov.normalized(self._evidence(stage, where, rollout))
            status = status.model_copy(update={"stage": stage, "since": rfc3339(self.now), "evidence": evidence,
                                               "evidence_digest": gov.digest(evidence)})
            waiting = gov.count(needed, self.approvals, self.drev, status.evidence_digest or "").missing
            self.record("AwaitingApproval", f"{self.desired.bento} waits for approvals {_stage_words(stage)} ({where}): "
                        f"{gov.describe_missing(waiting)}; evidence digest {status.evidence_digest}",
                        evidence={"stage": stage, "evidenceDigest": status.evidence_digest,
                                  "waitingFor": [n.dump() for n in waiting]})
        counted = gov.count(needed, self.approvals, self.drev, status.evidence_digest or "")
        if counted.satisfied:
            records = [a.record(stage) for a in counted.counted]
            self.out.governance = status.model_copy(update={
                "approved_stages": [*status.approved_stages, *(s for s in stages if s not in status.approved_stages)],
                "waiting_for": [], "approvals": [*status.approvals, *records][-40:]})
            who = ", ".join(f"{a.approver} ({a.role})" for a in counted.counted)
            self.record("Approved", f"{self.desired.bento} approved {_stage_words(stage)} by {who}",
                        evidence={"stage": stage, "evidenceDigest": status.evidence_digest,
                                  "approvals": [r.dump() for r in records]})
            return True
        self.out.governance = status.model_copy(update={"waiting_for": list(counted.missing)})
        self.out.phase = Phase.AWAITING_APPROVAL
        self.out.message = (f"{self.desired.bento} waits for approvals {_stage_words(stage)} ({where}): needs "
                            f"{gov.describe_missing(counted.missing)} with evidence digest {status.evidence_digest}")
        return False

    def _evidence(self, stage: str, where: str, rollout: RolloutStatus | None) -> dict[str, Any]:
        """What approvers are shown: the candidate against stable, where the rollout stands, the
        last analysis and what the steps so far recorded."""
        stable = self.out.stable_model
        evidence: dict[str, Any] = {
            "stage": stage, "since": rfc3339(self.now), "at": where,
            "candidate": {"bento": self.desired.bento, "image": self.desired.image, "revision": self.drev},
            "stable": {"bento": stable.bento, "image": stable.image, "revision": revision_of(stable)},
        }
        if rollout is not None and rollout.started_at:
            evidence["steps"] = [{"time": h.time, "event": h.event, "message": h.message} for h in self.history
                                 if h.revision == self.drev and h.event in ("StepCompleted", "StepStarted")
                                 and h.time >= rollout.started_at]
        if self.gate is not None and self.gate.evidence:
            evidence["analysis"] = self.gate.evidence
        return evidence


def steady_decision(spec: ModelDeploymentSpec, previous: ModelDeploymentStatus, now: datetime) -> RolloutDecision:
    """No rollout in progress: stable runs spec.model (the first version is deployed here)."""
    desired = desired_version(spec)
    out = RolloutDecision(stable_model=previous.stable_model or desired, previous_model=previous.previous_model, rollout=None,
                          rolled_back=None, candidate_model=None, candidate_share=0, traffic=STABLE_ONLY, phase=None)
    if spec.governance is not None:
        out.governance = _stable_record(previous)
    if previous.stable_model is None:
        _Run(out, desired, [], {}, None, fixed_capacity(spec), now).record("Deployed", f"deploying {spec.model.bento} ({spec.model.image}) as the first version")
    return out


def _stable_record(previous: ModelDeploymentStatus) -> GovernanceStatus | None:
    """status.governance when nothing is rolling out: the approvals of the stable's own revision (what
    promoted it), never a cancelled or rejected candidate's (a later rollout of it starts afresh)."""
    g = previous.governance
    stable = previous.stable_model
    return g if g is not None and stable is not None and g.revision == revision_of(stable) else None


def adopt_model_revisions(spec: ModelDeploymentSpec, previous: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """Status written before autoscaling was part of a version names versions by their model alone.

    With ``spec.autoscaling`` set, a rolled-back or deferred-control revision equal to the hash
    of ``spec.model`` alone can only be such a name for the version the spec asks for (a version
    with autoscaling never hashes like its bare model): it is read as that version, so an upgrade
    does not retry a rolled-back model. A rollout in progress and a bake are not renamed: they
    ran the version without the scaler, which the spec's version replaces (a rollout of it)."""
    if spec.autoscaling is None:
        return previous
    old, new = revision_of(spec.model), revision_of(desired_version(spec))
    update: dict[str, Any] = {}
    if previous.rolled_back is not None and previous.rolled_back.revision == old:
        update["rolled_back"] = previous.rolled_back.model_copy(update={"revision": new})
    if any(c.revision == old for c in previous.deferred_controls):
        update["deferred_controls"] = [c.model_copy(update={"revision": new}) if c.revision == old else c for c in previous.deferred_controls]
    return previous.model_copy(update=update) if update else previous


def is_steady(spec: ModelDeploymentSpec, previous: ModelDeploymentStatus) -> bool:
    """Nothing in flight: a first version, or the spec's version (spec.model with spec.autoscaling) is
    stable with no rollout, bake or rollback recorded."""
    if previous.stable_model is None:
        return True
    return (revision_of(desired_version(spec)) == revision_of(previous.stable_model) and previous.rollout is None
            and previous.bake is None and previous.rolled_back is None)


def decide(spec: ModelDeploymentSpec, previous: ModelDeploymentStatus, stable: DeploymentState, candidate: DeploymentState,
           controls: dict[str, str], paused: bool, gate: Gate | None, now: datetime, capacity: Capacity | None = None,
           previous_state: DeploymentState | None = None, approvals: tuple[ObservedApproval, ...] = ()) -> RolloutDecision:
    """``capacity`` None: fixed replicas (spec.replicas). ``previous_state``: the previous version's
    Deployment during a bake (None: none observed)."""
    if previous.stable_model is None:
        return steady_decision(spec, previous, now)
    steps = list(spec.rollout.steps) if spec.rollout else []
    out = RolloutDecision(
        stable_model=previous.stable_model, previous_model=previous.previous_model, rollout=previous.rollout,
        rolled_back=previous.rolled_back, candidate_model=None, candidate_share=0, traffic=STABLE_ONLY, phase=None,
        bake=previous.bake, governance=_stable_record(previous) if spec.governance is not None else None,
    )
    step = previous.rollout.step if previous.rollout is not None else None
    desired = desired_version(spec)
    held_before = any(h.event == "StepHeld" and h.revision == revision_of(desired) and (h.evidence or {}).get("step") == step
                      for h in previous.history[-20:])
    run = _Run(out, desired, steps, controls, gate, capacity or fixed_capacity(spec), now, cost_increase_hold(spec, previous),
               held_before, spec, approvals, tuple(previous.history))
    if out.bake is not None and _bake(run, spec, previous_state or DeploymentState(exists=False), previous.analysis) is not None:
        return out
    if spec.governance is not None and run.drev != revision_of(out.stable_model):
        # The rollout this revision's approvals belong to: the one in progress, or the one rolled back.
        if previous.rollout is not None and previous.rollout.revision == run.drev:
            began = previous.rollout.started_at
        elif previous.rolled_back is not None and previous.rolled_back.revision == run.drev and previous.governance is not None:
            began = previous.governance.rollout
        else:
            began = None
        out.governance = gov.start(spec.governance, previous.governance, run.drev, began)
    # A retry clears a rollback of the current spec.model; a new spec.model clears it too.
    if "retry" in controls and out.rolled_back is not None:
        run.handle("retry")
        run.record("Retried", f"retrying {out.rolled_back.bento} after {out.rolled_back.reason}")
        out.rolled_back = None
        if out.governance is not None:
            out.governance = out.governance.model_copy(update={"rejected": None})
    if out.rolled_back is not None and out.rolled_back.revision != run.drev:
        out.rolled_back = None
    rollout = previous.rollout
    if rollout is not None and rollout.promoting and rollout.revision == revision_of(out.stable_model):
        return _promoting(run, spec, stable)
    return _candidate(run, previous, candidate, paused)


def _candidate(run: _Run, previous: ModelDeploymentStatus, candidate: DeploymentState, paused: bool) -> RolloutDecision:
    """spec.model against stable: cancelled, rolled back, replaced directly, or rolling out."""
    out, desired, drev, steps = run.out, run.desired, run.drev, run.steps
    rollout = previous.rollout
    srev = revision_of(out.stable_model)
    if drev == srev:
        if rollout is not None:
            run.record("RolloutCancelled", f"the spec asks for the stable version of {desired.bento} again: candidate {rollout.bento} removed",
                       rev=rollout.revision, bento=rollout.bento)
            out.rollout = None
        out.rolled_back = None
        return out
    if out.rolled_back is not None:  # spec.model still names the rolled-back revision
        out.rollout = None
        out.candidate_model, out.candidate_share = desired, 0
        out.phase = Phase.ROLLED_BACK
        out.message = f"{desired.bento} was rolled back ({out.rolled_back.reason}); stable {out.stable_model.bento} serves. Change spec.model (or spec.autoscaling) or retry."
        return out
    if not steps:  # no rollout steps: the new version replaces stable directly
        if (rejected := _rejection(run, None)) is not None:
            return rejected
        if not run.approved(STAGES, "before it replaces stable (no rollout steps)", None):
            out.rollout = None
            return out
        run.record("Updated", f"updating stable from {out.stable_model.bento} ({srev}) to {desired.bento} ({drev}){version_change(out.stable_model, desired)}: no rollout steps")
        out.previous_model, out.stable_model, out.rollout = out.stable_model, desired, None
        return out
    if rollout is None or rollout.revision != drev:
        if rollout is not None:
            run.record("CandidateReplaced", f"the spec changed during the rollout: {rollout.bento} ({rollout.revision}) replaced by {desired.bento} ({drev}); steps restart")
        else:
            run.record("RolloutStarted", f"rolling out {desired.bento} ({drev}) over stable {out.stable_model.bento}{version_change(out.stable_model, desired)}: {len(steps)} step{'' if len(steps) == 1 else 's'}")
        rollout = RolloutStatus(revision=drev, bento=desired.bento, step=0, started_at=rfc3339(run.now))
        if out.governance is not None and run.spec is not None and run.spec.governance is not None:
            out.governance = gov.start(run.spec.governance, None, drev, rollout.started_at)  # nothing approved yet
    if (rejected := _rejection(run, rollout)) is not None:
        return rejected
    if "abort" in run.controls:
        run.handle("abort")
        return _roll_back(run, desired, "Aborted", f"aborted by a user at {run.where(min(rollout.step, len(steps) - 1))}")
    if run.gate is not None and run.gate.rollback:
        return _roll_back(run, desired, "FailedAnalysis", run.gate.message, run.gate.evidence)
    return _progress(run, rollout, candidate, paused, previous.controls, previous.candidate)


def _rejected(run: _Run, started: str | None, revision: str) -> tuple[str, dict[str, Any]] | None:
    """A ModelApproval rejecting ``revision`` made during its rollout (begun at ``started``; a retry, or
    the revision coming back later, starts a new one: rejections before it are history; None: no
    rollout steps, any rejection), recorded in status.governance: (the message, the approval)."""
    if run.out.governance is None:
        return None
    found = gov.rejection([a for a in run.approvals if started is None or a.created >= started], revision)
    if found is None:
        return None
    record = found.record(run.out.governance.stage)
    run.out.governance = run.out.governance.model_copy(update={"rejected": record, "waiting_for": []})
    comment = f": {found.comment}" if found.comment else ""
    return f"rejected by {found.approver} ({found.role}, ModelApproval {found.name}){comment}", record.dump()


def _rejection(run: _Run, rollout: RolloutStatus | None) -> RolloutDecision | None:
    """A rejection of the candidate during its rollout aborts it, with the approver and comment as evidence."""
    found = _rejected(run, rollout.started_at if rollout is not None else None, run.drev)
    if found is None:
        return None
    return _roll_back(run, run.desired, "Rejected", found[0], approval=found[1])


def _roll_back(run: _Run, desired: VersionSpec, reason: str, message: str, evidence: dict[str, Any] | None = None,
               approval: dict[str, Any] | None = None) -> RolloutDecision:
    out = run.out
    if out.governance is not None:  # a retry is a new rollout: its stages need approvals again
        out.governance = out.governance.model_copy(update={
            "stage": None, "since": None, "evidence": None, "evidence_digest": None, "waiting_for": [], "approved_stages": []})
    had = out.rollout is not None and out.rollout.step_started_at is not None
    out.rolled_back = RolledBackStatus(revision=revision_of(desired), bento=desired.bento, reason=reason, message=message, at=rfc3339(run.now))
    out.rollout = None
    out.candidate_model, out.candidate_share = desired, 0
    out.traffic = STABLE_ONLY
    out.phase = Phase.ROLLED_BACK
    out.message = f"{desired.bento} rolled back ({reason}): {message}"
    run.record("RolledBack" if reason not in ("Aborted", "Rejected") else reason, out.message, "Warning",
               {**_traffic_evidence(STABLE_ONLY), **({"analysis": evidence} if evidence else {}),
                **({"approval": approval} if approval else {}), "candidateHadTraffic": had})
    return out


def _clock(run: _Run, rollout: RolloutStatus, paused: bool) -> tuple[RolloutStatus, datetime | None]:
    """Pause freezes the step's clock; resuming shifts the step's start by the time it was paused for."""
    started = parse_time(rollout.step_started_at) if rollout.step_started_at else None
    if paused and rollout.paused_at is None and "promote" not in run.controls:
        rollout = rollout.model_copy(update={"paused_at": rfc3339(run.now)})
        run.record("Paused", f"rollout of {run.desired.bento} paused at {run.where(rollout.step)}")
    elif not paused and rollout.paused_at is not None:
        paused_at = parse_time(rollout.paused_at)
        if started is not None:
            started = started + (run.now - max(paused_at, started))
        rollout = rollout.model_copy(update={"paused_at": None, "step_started_at": rfc3339(started) if started else None})
        run.record("Resumed", f"rollout of {run.desired.bento} resumed")
    return rollout, started


def _progress(run: _Run, rollout: RolloutStatus, candidate: DeploymentState, paused: bool, handled_before: dict[str, str],
              previous_candidate: VariantStatus | None) -> RolloutDecision:
    out = run.out
    out.candidate_model = run.desired
    rollout, started = _clock(run, rollout, paused)
    # The candidate can carry traffic: pods of this revision are available. (Not the Available
    # condition: while it scales up with maxUnavailable 0 that is False though its pods serve.)
    known = previous_candidate is not None and previous_candidate.revision == rollout.revision and previous_candidate.ready_replicas > 0
    pods = serving_pods(candidate, rollout.revision, known)
    if "promote" in run.controls:
        if pods > 0 and run.approved(STAGES, f"promote asked at {run.where(min(rollout.step, len(run.steps) - 1))}", rollout):
            run.handle("promote")
            return _start_promotion(run, rollout, "promoted by a user")
        if pods > 0:  # approvals missing: the rollout holds where it is (its analysis still runs) until they come
            out.rollout, out.candidate_share = rollout, step_share(run.steps, rollout.step)
            carried = rollout.step > 0 and rollout.hold_reason is None
            out.traffic = (step_traffic(run.steps, rollout.step) if started is not None
                           else step_traffic(run.steps, rollout.step - 1) if carried else STABLE_ONLY)
            return out
        if handled_before.get("promote-deferred") != run.controls["promote"]:  # say it once per request
            out.events.append(EventIntent("Warning", "PromoteDeferred", f"{run.desired.bento} is not available yet; promotion waits for it"))
            out.handled["promote-deferred"] = run.controls["promote"]
    return _steps(run, rollout, started, candidate, pods, "promote-step" in run.controls)


def _steps(run: _Run, rollout: RolloutStatus, started: datetime | None, candidate: DeploymentState, pods: int,
           manual: bool) -> RolloutDecision:
    out = run.out
    while True:  # each pass either returns or moves to the next step
        out.candidate_share = step_share(run.steps, rollout.step)
        k = rollout.step
        if _live(run.steps, k) and not run.approved(("BeforeFirstCanary",), f"before {run.where(k)}", rollout):
            # No live traffic before BeforeFirstCanary's approvals, whatever led here (the first step is a
            # canary, the steps were edited mid-rollout): a shadow before it keeps mirroring; a step that
            # already ran is entered again once approved.
            carried = k > 0 and rollout.hold_reason is None and not _live(run.steps, k - 1)
            out.traffic = step_traffic(run.steps, k - 1) if carried else STABLE_ONLY
            out.rollout = rollout.model_copy(update={"step_started_at": None}) if started is not None else rollout
            return out
        if started is None or run.lost(pods, rollout.step):
            entered = _enter_step(run, rollout, started, candidate, pods)
            if entered is None:
                return out
            rollout, started = entered, run.now
        out.traffic = step_traffic(run.steps, rollout.step)
        out.rollout = rollout
        if not _step_done(run, rollout, started, manual):
            return out
        if manual:
            run.handle("promote-step")
            manual = False  # one step per request
        if rollout.step + 1 >= len(run.steps):
            return _start_promotion(run, rollout, "all steps completed")
        rollout = rollout.model_copy(update={"step": rollout.step + 1, "step_started_at": None})
        started = None


def _enter_step(run: _Run, rollout: RolloutStatus, started: datetime | None, candidate: DeploymentState, pods: int) -> RolloutStatus | None:
    """Start step k once the candidate is sized for it (the rollout entering it), or hold/wait (None)."""
    out, desired, k = run.out, run.desired, rollout.step
    where = run.where(k)
    if started is not None:  # it had traffic and lost its pods: pull it back and hold
        rollout = rollout.model_copy(update={"step_started_at": None, "hold_reason": "CandidateUnavailable"})
        run.record("CandidateUnavailable", f"{desired.bento} became unavailable at {where}: all traffic back on stable, holding", "Warning")
    carried = k > 0 and rollout.hold_reason is None  # the previous step's traffic is still applied
    if run.lost(pods, k) and (carried or rollout.hold_reason is not None):
        if rollout.hold_reason is None:
            rollout = rollout.model_copy(update={"hold_reason": "CandidateUnavailable"})
            run.record("CandidateUnavailable", f"{desired.bento} became unavailable before {where}: all traffic back on stable, holding", "Warning")
        out.rollout, out.traffic = rollout, STABLE_ONLY
        out.phase, out.message = Phase.DEGRADED, f"holding: {desired.bento} is unavailable ({candidate.message or 'not ready'}); stable serves all traffic"
        return None
    out.rollout, out.traffic = rollout, step_traffic(run.steps, k - 1) if carried else STABLE_ONLY
    if rollout.paused_at is not None:
        out.phase, out.message = Phase.PAUSED, f"paused before {where} (spec.paused or headway.dev/paused)"
        return None
    expected = run.need(k)
    if not (candidate.observed and pods >= expected and (candidate.exists or not run.capacity.scaled)):
        if candidate.deadline_exceeded:
            out.phase, out.message = Phase.DEGRADED, f"{desired.bento} ({desired.image}) does not become available ({candidate.message}); stable serves"
        else:
            floor = f"; its scaler's floor is {expected}, capacity before traffic" if run.capacity.scaled else ""
            out.phase, out.message = Phase.PROGRESSING, f"waiting for {desired.bento} to be ready for {where} ({candidate.ready_replicas}/{expected} pods{floor})"
        return None
    run.record("StepStarted", f"{desired.bento} {where}", evidence=_traffic_evidence(step_traffic(run.steps, k)))
    return rollout.model_copy(update={"step_started_at": rfc3339(run.now), "hold_reason": None})


def _step_done(run: _Run, rollout: RolloutStatus, started: datetime, manual: bool) -> bool:
    """Whether the running step ends now (recorded as StepCompleted); else say what it waits for."""
    out, gate, k = run.out, run.gate, rollout.step
    step, where = run.steps[k], run.where(k)
    if rollout.paused_at is not None:
        out.phase, out.message = Phase.PAUSED, f"paused at {where} (spec.paused or headway.dev/paused)"
        return False
    length = duration(step)
    time_done = length is not None and run.now - started >= length
    needs_gate = analysed(step) and gate is not None
    if not manual and not time_done:
        if length is None:
            out.phase, out.message = Phase.PAUSED, f"waiting at a manual gate ({where}): promote-step or promote to continue"
        else:
            # The end time, not the time left: status must not change just because time passes
            # (every status write is a watch event and another reconcile).
            ends = rfc3339(started + length)
            out.phase, out.message = Phase.PROGRESSING, f"{where} until {ends}" + (f"; analysis: {gate.result}" if gate else "")
        return False
    if not manual and needs_gate and gate is not None and gate.result != "Pass":
        out.phase = Phase.PROGRESSING
        out.message = f"{where}: duration passed, waiting for a passing analysis ({gate.result}: {gate.message})"
        return False
    if not manual and run.cost_hold is not None:  # the budget's rule: a user may still pass the step (promote-step)
        out.phase, out.message = Phase.PROGRESSING, f"{where}: duration passed, {run.cost_hold}"
        if not run.held_before:  # said once per step, with its evidence, not at every reconcile
            run.record("StepHeld", f"{run.desired.bento} {where} {run.cost_hold}", "Warning", {"step": k, "reason": "CostIncrease"})
        return False
    last = k + 1 >= len(run.steps)
    if not run.approved(gov.stages_crossed(run.first_canary, k + 1, last), f"{where} done", rollout):
        return False
    why = "passed by a user (promote-step)" if manual else "duration passed" + (" and analysis passed" if needs_gate else "")
    evidence = _traffic_evidence(step_traffic(run.steps, k))
    if gate is not None and needs_gate and gate.evidence:
        evidence["analysis"] = gate.evidence
    run.record("StepCompleted", f"{run.desired.bento} {where} completed: {why}", evidence=evidence)
    return True


def _live(steps: list[RolloutStep], k: int) -> bool:
    """Step k gives the candidate live traffic (a canary weight above 0)."""
    step = steps[k] if 0 <= k < len(steps) else None
    return step is not None and step.canary is not None and step.canary.weight > 0


def _stage_words(stage: str) -> str:
    return "before its first canary step" if stage == "BeforeFirstCanary" else "before promotion"


def _traffic_evidence(plan: TrafficPlan) -> dict[str, Any]:
    evidence: dict[str, Any] = {"weights": dict(plan.weights)}
    if plan.mirror:
        evidence["mirror"] = {"variant": plan.mirror[0], "percent": plan.mirror[1]}
    return evidence


def _start_promotion(run: _Run, rollout: RolloutStatus, why: str) -> RolloutDecision:
    """Stable moves to the candidate's model; traffic stays as it is until stable is ready."""
    out, desired, steps = run.out, run.desired, run.steps
    out.previous_model, out.stable_model = out.stable_model, desired
    out.rollout = rollout.model_copy(update={"promoting": True, "paused_at": None})
    out.candidate_model = desired
    out.candidate_share = step_share(steps, len(steps) - 1)
    out.traffic = step_traffic(steps, min(rollout.step, len(steps) - 1)) if rollout.step_started_at else STABLE_ONLY
    out.phase, out.message = Phase.PROMOTING, f"promoting {desired.bento}: 0/{run.total} stable replicas on the new version"
    run.record("PromotionStarted", f"promoting {desired.bento}: stable rolls to it ({why})", evidence=_traffic_evidence(out.traffic))
    return out


def _bake(run: _Run, spec: ModelDeploymentSpec, previous_state: DeploymentState, judged: AnalysisStatus | None) -> RolloutDecision | None:
    """After a promotion: the previous version fed its share, judged against; a breach shown against it
    restores it, one not compared with it is reported; the end of the bake drops it, with the bake's
    last verdicts (``judged``: status.analysis) as evidence (None: carry on).

    The end and the gate are decided on the bake as status recorded it (the gate judged that window),
    before the baseline's pods are looked at: a retry after the children of the decision were applied
    (the previous version already gone) decides the same."""
    out, gate, now = run.out, run.gate, run.now
    bake = out.bake
    assert bake is not None
    if run.drev != bake.revision or out.previous_model is None:
        out.bake = None  # spec.model moved on: a new rollout judges the next version
        return None
    previous = out.previous_model
    live = bake.baseline == "weight" and bake.baseline_since is not None  # the previous version served live traffic
    rollback_without = spec.rollout.rollback_without_baseline if spec.rollout else False
    context = describe_bake(bake, previous.bento, rollback_without)
    if now >= parse_time(bake.until):
        evidence: dict[str, Any] = {"baseline": _baseline_evidence(bake, previous)}
        if judged is not None and judged.purpose == "bake" and judged.revision == bake.revision:
            evidence["analysis"] = judged.dump()
            last = f"{context}; last analysis {judged.result}"
        else:
            last = f"{context}; never measured" if spec.analysis is not None else "not judged: no spec.analysis"
        reported = "; a breach was reported and not rolled back" if bake.breach_reported_at else ""
        run.record("BakeCompleted", f"{bake.bento} baked until {bake.until}: {last}{reported}; {previous.bento} removed",
                   evidence=evidence, rev=bake.revision, bento=bake.bento)
        out.drain_previous = live
        out.bake, out.previous_model, out.traffic = None, None, STABLE_ONLY
        return out
    # (A bake an older operator started has no rollout start to date rejections by: none is applied to it.)
    rejected = _rejected(run, bake.rollout, bake.revision) if bake.rollout is not None else None
    if rejected is not None:  # an approver said no after promotion: the bake is part of the rollout
        message, approval = rejected
        run.record("Rejected", f"{bake.bento} {message}, during the bake: stable restored to {previous.bento}", "Warning",
                   {**_traffic_evidence(STABLE_ONLY), "approval": approval, "baseline": _baseline_evidence(bake, previous)},
                   rev=bake.revision, bento=bake.bento)
        return _restore_previous(run, bake, previous, live, "Rejected", f"{message}, during the bake",
                                 f"{bake.bento} rolled back after promotion (Rejected): {message}")
    breach = gate is not None and gate.rollback
    if gate is not None and breach:
        restore, why = restores(gate, bake, rollback_without)
        if restore:
            shown = {**_traffic_evidence(STABLE_ONLY), "analysis": gate.evidence, "baseline": _baseline_evidence(bake, previous)}
            run.record("RolledBack", f"{bake.bento} breached its SLOs during the bake ({why}): stable restored to {previous.bento}: {gate.message}",
                       "Warning", shown, rev=bake.revision, bento=bake.bento)
            return _restore_previous(run, bake, previous, live, "FailedBake", f"{context}; {why}: {gate.message}",
                                     f"{bake.bento} rolled back after promotion (FailedBake, {why}): {gate.message}")
        what = "breached its SLOs" if gate.result == "Fail" else f"reached the inconclusive limit ({gate.result})"
        report = f"{bake.bento} {what} during the bake and was not rolled back ({why}); it keeps serving"
        hint = "" if not restores(gate, bake, True)[0] else (
            ": spec.rollout.rollbackWithoutBaseline: true restores the previous version on such breaches")
        if bake.breach_reported_at is None:  # once per run of failing looks, with its evidence
            run.record("BakeBreach", f"{report}{hint}; {gate.message}", "Warning",
                       {"analysis": gate.evidence, "baseline": _baseline_evidence(bake, previous), "rolledBack": False},
                       rev=bake.revision, bento=bake.bento)
            bake = bake.model_copy(update={"breach_reported_at": rfc3339(now)})
        out.phase, out.reason, out.message = Phase.DEGRADED, "BakeBreach", f"{report}{hint}"
    elif gate is not None and (unattributed := unattributed_breaches(gate)):
        names = ", ".join(v.slo for v in unattributed)
        report = (f"{bake.bento} breached {names} during the bake and was not rolled back (the previous version is not "
                  "shown within the SLO over the same window: too few of its requests to tell a shared incident); it keeps serving")
        if bake.breach_reported_at is None:
            run.record("BakeBreach", f"{report}; {gate.message}", "Warning",
                       {"analysis": gate.evidence, "baseline": _baseline_evidence(bake, previous), "rolledBack": False},
                       rev=bake.revision, bento=bake.bento)
            bake = bake.model_copy(update={"breach_reported_at": rfc3339(now)})
        out.phase, out.reason, out.message = Phase.DEGRADED, "BakeBreach", report
    elif gate is not None and bake.breach_reported_at is not None:  # the analysis no longer asks for a rollback
        bake = bake.model_copy(update={"breach_reported_at": None})
    out.bake = _feed_baseline(run, bake, resolve(spec), previous_state)
    return None


def _restore_previous(run: _Run, bake: BakeStatus, previous: VersionSpec, live: bool, reason: str, why: str,
                      message: str) -> RolloutDecision:
    """The bake ends with the previous version stable again (a breach shown, or a rejection)."""
    out = run.out
    out.rolled_back = RolledBackStatus(revision=bake.revision, bento=bake.bento, reason=reason, message=why, at=rfc3339(run.now))
    out.stable_model, out.previous_model, out.bake, out.traffic = previous, None, None, STABLE_ONLY
    out.drain_previous = live
    out.phase, out.message = Phase.ROLLED_BACK, message
    return out


def _feed_baseline(run: _Run, bake: BakeStatus, wanted: Baseline, state: DeploymentState) -> BakeStatus:
    """The previous version gets its share once it has the pods for it (capacity before traffic), loses it
    when it loses its pods, and the spec's baseline replaces the recorded one (the comparison restarts)."""
    out, now = run.out, run.now
    previous = out.previous_model
    assert previous is not None
    recorded = Baseline.of(bake)
    if recorded != wanted:
        if recorded.fed and bake.baseline_since is not None:
            run.record("BakeBaselineChanged", f"the bake's baseline changed during the bake of {bake.bento} (spec.rollout.bakeBaseline, "
                       f"spec.traffic.provider or spec.analysis): "
                       f"{recorded.describe()} -> {wanted.describe()}; the comparison restarts",
                       evidence={**_traffic_evidence(STABLE_ONLY), "baseline": wanted.evidence(previous.bento)},
                       rev=bake.revision, bento=bake.bento)
        bake = bake.model_copy(update={"baseline": wanted.mode, "baseline_percent": wanted.share, "baseline_since": None})
    if not wanted.fed:
        return bake
    pods = serving_pods(state, revision_of(previous), bake.baseline_since is not None)
    if bake.baseline_since is not None:
        if pods > 0:
            out.traffic = wanted.traffic()
            return bake
        run.record("BakeBaselineUnavailable", f"{previous.bento} has no available pod: its share of the traffic goes back "
                   f"to stable, and {bake.bento} is judged alone until it is back", "Warning",
                   evidence={**_traffic_evidence(STABLE_ONLY), "baseline": wanted.evidence(previous.bento)}, rev=bake.revision,
                   bento=bake.bento)
        return bake.model_copy(update={"baseline_since": None})
    need = max(1, replicas_for_share(run.total, wanted.share))
    if state.observed and pods >= need:
        out.traffic = wanted.traffic()
        run.record("BakeBaselineStarted", f"{previous.bento} gets {wanted.describe()}: the bake compares {bake.bento} with it "
                   f"until {bake.until}", evidence={**_traffic_evidence(out.traffic), "baseline": wanted.evidence(previous.bento)},
                   rev=bake.revision, bento=bake.bento)
        return bake.model_copy(update={"baseline_since": rfc3339(now)})
    return bake  # its pods are not available yet: the new stable is judged alone meanwhile


def _baseline_evidence(bake: BakeStatus, previous: VersionSpec) -> dict[str, Any]:
    out = Baseline.of(bake).evidence(previous.bento)
    out["since"] = bake.baseline_since
    return out


def _promoting(run: _Run, spec: ModelDeploymentSpec, stable: DeploymentState) -> RolloutDecision:
    out, steps, total = run.out, run.steps, run.total
    rollout = out.rollout
    assert rollout is not None
    model = out.stable_model
    for control in ("promote", "promote-step"):
        if control in run.controls:
            run.handle(control)
    if "abort" in run.controls and out.previous_model is not None:
        run.handle("abort")
        out.stable_model, out.previous_model = out.previous_model, None
        return _roll_back(run, model, "Aborted", "aborted by a user during promotion")
    rejected = (_rejected(run, rollout.started_at, rollout.revision)
                if out.previous_model is not None and rollout.started_at is not None else None)
    if rejected is not None and out.previous_model is not None:  # an approver said no while stable rolled to it
        out.stable_model, out.previous_model = out.previous_model, None
        return _roll_back(run, model, "Rejected", f"{rejected[0]} (during promotion)", approval=rejected[1])
    if stable.available and stable.complete and stable.revision == rollout.revision and stable.replicas >= total:
        run.record("Promoted", f"{model.bento} ({rollout.revision}) promoted to stable; candidate removed",
                   evidence={**_traffic_evidence(STABLE_ONLY), "readyReplicas": stable.ready_replicas})
        out.rollout = None
        out.candidate_model, out.candidate_share, out.traffic = None, 0, STABLE_ONLY
        if spec.rollout and spec.rollout.bake_time and out.previous_model is not None:
            until = run.now + parse_duration(spec.rollout.bake_time)
            baseline = resolve(spec)
            out.bake = BakeStatus(revision=rollout.revision, bento=model.bento, since=rfc3339(run.now), until=rfc3339(until),
                                  rollout=rollout.started_at,
                                  baseline=baseline.mode, baseline_percent=baseline.share)
            prev = out.previous_model.bento
            if spec.analysis is None:
                how = "nothing judges it (no spec.analysis)"
            elif baseline.fed:
                how = f"it is compared with {prev} on {baseline.describe()} once {prev} is available"
            elif spec.rollout.rollback_without_baseline:
                how = "it is judged alone (no baseline): a breach restores the previous version (rollbackWithoutBaseline)"
            else:
                how = "it is judged alone (no baseline): a breach is reported, not rolled back"
            run.record("BakeStarted", f"baking {model.bento} until {rfc3339(until)}; {prev} stays available and {how}",
                       evidence={"until": rfc3339(until), "baseline": baseline.evidence(prev)})
        return out
    out.candidate_model = model
    out.candidate_share = step_share(steps, len(steps) - 1) if steps else 0
    out.traffic = step_traffic(steps, min(rollout.step, len(steps) - 1)) if steps and rollout.step_started_at else STABLE_ONLY
    on_new = stable.ready_replicas if stable.revision == rollout.revision else 0
    out.phase, out.message = Phase.PROMOTING, f"promoting {model.bento}: {on_new}/{total} stable replicas on the new version"
    return out


__all__ = [
    "STABLE_ONLY", "Gate", "PinPlan", "RolloutDecision", "TrafficPlan", "decide", "describe", "is_steady", "replicas_for_share",
    "steady_decision", "step_duration", "step_share", "step_traffic",
]
