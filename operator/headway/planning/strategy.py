"""What every strategy planner returns, and the helpers they share.

A strategy planner (steady.py, rollout_plan.py, experiment.py) turns the spec and the
observation into a ``StrategyResult``: the workloads (variant, model, replicas), the
traffic, the status sections the strategy owns (``Sections``), a phase override with its
message, and the history entries and Events of its decisions. Phase, conditions and the
phase-change Event are not a strategy's business: ``derive_status()`` (derive.py)
computes them for every strategy alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from headway.api.spec import ModelSpec
from headway.api.status import (
    BakeStatus, DeferredControl, DrainingStatus, ExperimentDecision, GovernanceStatus, HistoryEntry, ModelDeploymentStatus, Phase, RolledBackStatus,
    RolloutStatus, VariantStatus,
)
from headway.planning import controls as ctl
from headway.planning.conditions import EventIntent, history_entry, parse_time, rfc3339
from headway.planning.naming import STABLE, Owner, VariantWorkload, revision_of
from headway.planning.observe import DeploymentState, Observation
from headway.planning.traffic_plan import TrafficPlan

DRAIN = timedelta(seconds=10)  # a removed variant keeps running this long after its weight went to 0


@dataclass(frozen=True)
class Sections:
    """The status sections strategies own; ``of(previous)`` keeps them as they were."""

    stable_model: ModelSpec | None
    previous_model: ModelSpec | None
    rollout: RolloutStatus | None
    rolled_back: RolledBackStatus | None
    bake: BakeStatus | None
    stable: VariantStatus | None
    candidate: VariantStatus | None
    variants: list[VariantStatus]
    draining: list[DrainingStatus]
    suspended_variants: list[str]
    experiment_decision: ExperimentDecision | None
    controls: dict[str, str]
    deferred_controls: list[DeferredControl]
    governance: GovernanceStatus | None

    @staticmethod
    def of(previous: ModelDeploymentStatus) -> Sections:
        return Sections(
            stable_model=previous.stable_model, previous_model=previous.previous_model, rollout=previous.rollout,
            rolled_back=previous.rolled_back, bake=previous.bake, stable=previous.stable, candidate=previous.candidate,
            variants=previous.variants, draining=previous.draining, suspended_variants=previous.suspended_variants,
            experiment_decision=previous.experiment_decision, controls=previous.controls,
            deferred_controls=previous.deferred_controls, governance=previous.governance,
        )

    def but(self, **changes: object) -> Sections:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass
class StrategyResult:
    """One strategy's decision. ``workloads`` None: leave every child as it is (invalid spec)."""

    sections: Sections
    workloads: list[VariantWorkload] | None = None
    traffic: TrafficPlan | None = None
    keep: tuple[str, ...] = ()  # variants whose children stay as they are (draining)
    phase: Phase | None = None  # None: derived from the stable Deployment
    message: str = ""
    reason: str = ""  # with phase Degraded: the stable itself is degraded for this reason (BakeBreach), nothing in progress
    split: str = ""  # every variant's live share in one line (kubectl get's TRAFFIC column)
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[EventIntent] = field(default_factory=list)

    def note(self, now: datetime, event: str, message: str, kind: Literal["Normal", "Warning"] = "Normal",
             revision: str | None = None, bento: str | None = None, evidence: dict[str, object] | None = None) -> None:
        """A decision: one history entry and one Event."""
        self.history.append(history_entry(now, event, message, revision, bento, evidence))
        self.events.append(EventIntent(kind, event, message))


def variant_status(name: str, model: ModelSpec, state: DeploymentState, replicas: int, weight: int, owner: Owner,
                   workload_variant: str | None = None) -> VariantStatus:
    rev = revision_of(model)
    return VariantStatus(
        name=name, bento=model.bento, image=model.image, revision=rev, deployment=owner.variant_name(workload_variant or name),
        replicas=replicas, ready_replicas=state.ready_replicas if state.exists else 0,
        available=state.exists and state.available and state.complete and state.revision == rev, weight=weight,
    )


def drain(previous: ModelDeploymentStatus, current: set[str], owner: Owner, now: datetime) -> tuple[list[DrainingStatus], tuple[str, ...]]:
    """Variants no longer in the spec: no traffic at once, deleted after DRAIN."""
    since = {d.variant: d.since for d in previous.draining}
    names = [v.name for v in previous.variants if v.deployment != owner.variant_name(STABLE)] + list(since)
    draining = []
    for name in dict.fromkeys(names):
        if name in current:
            continue
        started = since.get(name, rfc3339(now))
        if now - parse_time(started) < DRAIN:
            draining.append(DrainingStatus(variant=name, since=started))
    return draining, tuple(d.variant for d in draining)


def drain_events(previous: ModelDeploymentStatus, draining: list[DrainingStatus]) -> list[EventIntent]:
    """One Event per variant that starts draining."""
    before = {d.variant for d in previous.draining}
    return [EventIntent("Normal", "VariantDraining", f"variant {d.variant} removed from the experiment: weight 0, deleted after {int(DRAIN.total_seconds())}s")
            for d in draining if d.variant not in before]


def ignore_pending(result: StrategyResult, obs: Observation, why: str, now: datetime) -> dict[str, str]:
    """Every pending control reported as ignored for one reason; returns what was ignored."""
    pending = ctl.pending(obs.annotations, obs.previous.controls)
    for message in ctl.ignored_notes({c: why for c in pending}, pending):
        result.note(now, "ControlIgnored", message, "Warning")
    return pending


def split_of(traffic: TrafficPlan) -> str:
    text = " ".join(f"{variant}={weight}" for variant, weight in traffic.weights.items())
    if traffic.mirror:
        text += f" (mirror {traffic.mirror[1]}% to {traffic.mirror[0]})"
    return text
