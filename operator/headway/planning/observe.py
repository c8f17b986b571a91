"""Plan one reconcile of a ModelDeployment in steady state (one version, no rollout).

``plan()`` is pure: it takes the spec as written, the previous status, the live
Deployments and ``now``, and returns the children that should exist, the new status and
the Events to post. Every decision it makes is derived from those inputs, so a new
operator process that reads the same inputs decides the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import (
    Condition, ConditionType, HistoryEntry, ModelDeploymentStatus, Phase, ProblemStatus, TrafficStatus, VariantStatus,
)
from headway.planning.conditions import EventIntent, append_history, history_entry, set_condition
from headway.planning.naming import STABLE, Owner, VariantWorkload, revision_of
from headway.planning.validation import Problem, check_spec, ignored_fields, parse_spec

NEVER_SERVED = (None, Phase.PENDING, Phase.FAILED)


@dataclass(frozen=True)
class DeploymentState:
    """What a live Deployment says about its pods, read from its status."""

    exists: bool
    revision: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    available: bool = False
    complete: bool = False  # the rollout of the current template finished
    deadline_exceeded: bool = False
    message: str = ""


def observe_deployment(live: dict[str, Any] | None) -> DeploymentState:
    """Interpret a Deployment the way `kubectl rollout status` does."""
    if live is None:
        return DeploymentState(exists=False)
    meta, spec, status = live.get("metadata", {}), live.get("spec", {}), live.get("status") or {}
    want = spec.get("replicas", 1)
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    available_cond = conditions.get("Available", {})
    progressing = conditions.get("Progressing", {})
    observed = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    complete = (
        observed
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )
    return DeploymentState(
        exists=True,
        revision=meta.get("labels", {}).get("headway.dev/revision"),
        replicas=want,
        ready_replicas=status.get("readyReplicas", 0) or 0,
        available=available_cond.get("status") == "True" and (want == 0 or status.get("availableReplicas", 0) > 0),
        complete=bool(complete),
        deadline_exceeded=progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded",
        message=progressing.get("message") or available_cond.get("message") or "",
    )


@dataclass
class Plan:
    """The outcome of planning: the workloads to run (None: leave the children untouched),
    the parsed spec they come from, the new status and the Events to post."""

    spec: ModelDeploymentSpec | None
    workloads: list[VariantWorkload] | None
    status: ModelDeploymentStatus
    events: list[EventIntent] = field(default_factory=list)


def _problems_text(problems: list[Problem]) -> str:
    return "; ".join(str(p) for p in problems)


def stable_replicas(spec: ModelDeploymentSpec) -> int:
    return spec.replicas if spec.replicas is not None else 1


def plan(
    owner: Owner,
    raw_spec: dict[str, Any],
    generation: int | None,
    previous: ModelDeploymentStatus,
    stable_live: dict[str, Any] | None,
    now: datetime,
) -> Plan:
    spec, problems = parse_spec(raw_spec)
    if spec is not None:
        problems = check_spec(owner.name, spec)
    ignored = ignored_fields(raw_spec) if spec is not None else []
    state = observe_deployment(stable_live)
    events: list[EventIntent] = []
    history = list(previous.history)
    conditions: list[Condition] = []

    def cond(type_: str, status: Any, reason: str, message: str) -> None:
        conditions.append(set_condition(previous.conditions, type_, status, reason, message, now, generation))

    # The spec: invalid specs are reported and never applied.
    new_problems = [ProblemStatus(field=p.field, message=p.message) for p in problems]
    if problems and new_problems != previous.problems:
        events.append(EventIntent("Warning", "InvalidSpec", f"spec not applied, the running model is untouched: {_problems_text(problems)}"))
        history = append_history(history, history_entry(now, "SpecRejected", _problems_text(problems), evidence={"problems": [p.dump() for p in new_problems]}))
    elif not problems and previous.problems:
        events.append(EventIntent("Normal", "SpecValid", "the spec is valid again and is being applied"))
    ignored_paths = [path for path, _ in ignored]
    if ignored and ignored_paths != previous.ignored_fields:
        events.append(EventIntent("Warning", "FieldsNotActedOn", "; ".join(f"{p}: {why}" for p, why in ignored)))

    # Which version runs as stable: the spec's when valid, else whatever runs now.
    if spec is not None and not problems:
        workloads: list[VariantWorkload] | None = [VariantWorkload(STABLE, spec.model, stable_replicas(spec))]
        model = spec.model
        revision = revision_of(model)
        stable = VariantStatus(
            name=STABLE, bento=model.bento, image=model.image, revision=revision,
            deployment=owner.variant_name(STABLE), replicas=stable_replicas(spec),
        )
        if previous.stable is None or previous.stable.revision != revision:
            if previous.stable is None:
                message = f"deploying {model.bento} ({model.image})"
                history = append_history(history, history_entry(now, "Deployed", message, revision, model.bento))
            else:
                message = f"updating stable from {previous.stable.bento} ({previous.stable.revision}) to {model.bento} ({revision})"
                history = append_history(history, history_entry(now, "Updated", message, revision, model.bento))
            events.append(EventIntent("Normal", "Deploying", message))
    else:
        workloads = None
        stable = previous.stable
    rolled_to_desired = stable is not None and state.exists and state.revision == stable.revision

    if stable is not None:
        stable = stable.model_copy(update={
            "ready_replicas": state.ready_replicas if state.exists else 0,
            "available": state.available and rolled_to_desired and state.complete,
            "weight": 100,
        })

    # Phase and conditions from what the Deployment reports.
    never_served = previous.phase in NEVER_SERVED
    if not state.exists or stable is None:
        phase = Phase.FAILED if problems and stable is None else Phase.PENDING
        ready = ("False", "NotCreated", "the model server's Deployment does not exist yet")
        progressing = ("True", "Creating", "creating the model server")
    elif state.deadline_exceeded:
        phase = Phase.FAILED if never_served else Phase.DEGRADED
        ready = ("True", "Available", state.message) if state.available else ("False", "ProgressDeadlineExceeded", state.message)
        progressing = ("False", "ProgressDeadlineExceeded", state.message)
    elif not state.available:
        phase = Phase.PENDING if never_served else Phase.DEGRADED
        ready = ("False", "Unavailable", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready")
        progressing = ("True", "RollingOut", f"waiting for {stable.bento} to become available")
    elif not (state.complete and rolled_to_desired):
        phase = Phase.PROGRESSING
        ready = ("True", "Available", f"serving; rolling out {stable.bento}: {state.ready_replicas}/{state.replicas} ready")
        progressing = ("True", "RollingOut", f"rolling out {stable.bento}")
    else:
        phase = Phase.SUCCEEDED
        ready = ("True", "Available", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready")
        progressing = ("False", "Complete", f"{stable.bento} is rolled out")
    if problems and phase in (Phase.SUCCEEDED, Phase.PROGRESSING, Phase.PENDING) and stable is not None:
        phase = Phase.DEGRADED

    cond(ConditionType.READY, *ready)
    cond(ConditionType.PROGRESSING, *progressing)
    if problems:
        cond(ConditionType.DEGRADED, "True", "InvalidSpec", _problems_text(problems))
    elif phase in (Phase.DEGRADED, Phase.FAILED):
        cond(ConditionType.DEGRADED, "True", ready[1], ready[2])
    else:
        cond(ConditionType.DEGRADED, "False", "AsExpected", "")
    cond(ConditionType.SLOS_MET, "Unknown", "NoAnalysis", "no SLO analysis is performed by this operator version")
    if ignored:
        cond(ConditionType.SPEC_SUPPORTED, "False", "FieldsNotActedOn", "; ".join(f"{p}: {why}" for p, why in ignored))
    else:
        cond(ConditionType.SPEC_SUPPORTED, "True", "AllFieldsActedOn", "")

    if phase != previous.phase and previous.phase is not None:
        kind = "Warning" if phase in (Phase.DEGRADED, Phase.FAILED) else "Normal"
        events.append(EventIntent(kind, f"Phase{phase.value}", f"phase {previous.phase.value} -> {phase.value}: {ready[2]}"))

    status = ModelDeploymentStatus(
        observed_generation=generation,
        phase=phase,
        stable=stable,
        candidate=None,
        traffic=TrafficStatus(stable_weight=100, candidate_weight=0, mirror_percent=0),
        ready=f"{state.ready_replicas}/{state.replicas}" if state.exists else None,
        conditions=conditions,
        problems=new_problems,
        ignored_fields=ignored_paths,
        history=history,
    )
    return Plan(spec=spec if not problems else None, workloads=workloads, status=status, events=events)


def parse_status(raw: dict[str, Any] | None) -> ModelDeploymentStatus:
    """The previous status; anything unreadable is treated as absent rather than fatal."""
    try:
        return ModelDeploymentStatus.model_validate(raw or {})
    except ValueError:
        return ModelDeploymentStatus()


__all__ = ["DeploymentState", "HistoryEntry", "Plan", "observe_deployment", "parse_status", "plan"]
