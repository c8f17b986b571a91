"""The experiment planner: A/B/n arms with fixed weights, pins, and analysis per arm.

Each arm runs as its own workload (the control arm as the stable one). An arm gets its
weight only once its pods serve and while the analysis has not rolled it back; until
then its share goes to control. When the significance test names a winner and
``decide.promoteWinner`` is set, the winner is sized for all traffic first and gets it
once it can carry it. Arms removed from the spec drain (weight 0, deleted after DRAIN).
Capacity comes before traffic: each arm is sized (capacity.py) for the larger of its
share in the spec and the share it carries now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from headway.api.spec import ExperimentVariant, ModelDeploymentSpec
from headway.api.status import ExperimentDecision, Phase, VariantStatus
from headway.planning.analysis import failing_arms
from headway.planning.capacity import Capacity, Demand, capacity_of
from headway.planning.conditions import EventIntent
from headway.planning.measure import Judgement
from headway.planning.naming import STABLE, Owner, VariantWorkload, desired_version, revision_of, version_change
from headway.planning.observe import DeploymentState, Observation, serving_pods
from headway.planning.strategy import Sections, StrategyResult, drain, drain_events, ignore_pending, variant_status
from headway.planning.traffic_plan import PinPlan, TrafficPlan


@dataclass
class _Arms:
    """The arms of the experiment as planning goes: who is off, who serves, what they weigh."""

    spec: ModelDeploymentSpec
    variants: list[ExperimentVariant]
    control: ExperimentVariant
    states: dict[str, DeploymentState]
    capacity: Capacity
    off: set[str] = field(default_factory=set)  # rolled back by the analysis: weight 0, no pods
    serving: set[str] = field(default_factory=set)  # may carry traffic
    weights: dict[str, int] = field(default_factory=dict)  # by workload variant
    pins: tuple[PinPlan, ...] = ()

    def key(self, name: str) -> str:
        """The workload variant of an arm: the control arm runs as the stable workload."""
        return STABLE if name == self.control.name else name


def plan_experiment(spec: ModelDeploymentSpec, obs: Observation, owner: Owner, judgement: Judgement, now: datetime) -> StrategyResult:
    assert spec.experiment is not None
    previous = obs.previous
    result = StrategyResult(Sections.of(previous))
    variants = list(spec.experiment.variants)
    control = next(v for v in variants if v.model is None)
    arms = _Arms(spec, variants, control, {v.name: obs.live.get(STABLE if v.name == control.name else v.name, DeploymentState(exists=False))
                                           for v in variants}, capacity_of(spec, obs))
    suspended = _suspend(arms, obs, judgement, result, now)
    waiting = _route(arms, obs)
    decision, size = _decide(arms, judgement.decision, obs, result, now)
    workloads, statuses = _size(arms, owner, size)
    ignored_now = ignore_pending(result, obs, "this ModelDeployment runs an experiment: steer it through spec.experiment", now)
    result.message = _note_control(spec, obs, result, now)
    draining, result.keep = drain(previous, {v.name for v in variants}, owner, now)
    statuses += [s.model_copy(update={"weight": 0}) for s in previous.variants if s.name in result.keep]
    for v in statuses:
        was = next((p for p in previous.variants if p.name == v.name), None)
        if was is not None and was.weight != v.weight:
            result.events.append(EventIntent("Normal", "WeightChanged", f"variant {v.name}: {was.weight}% -> {v.weight}%"))
    result.events += drain_events(previous, draining)
    result.workloads, result.traffic = workloads, TrafficPlan(weights=arms.weights, pins=arms.pins)
    if waiting:
        result.phase, result.message = Phase.PROGRESSING, f"waiting for variants to become available: {', '.join(waiting)}"
    result.split = " ".join(f"{v.name}={v.weight}" for v in statuses)
    result.sections = result.sections.but(
        suspended_variants=suspended, experiment_decision=decision, controls={**previous.controls, **ignored_now},
        deferred_controls=[], stable_model=desired_version(spec), previous_model=previous.previous_model, rollout=None, rolled_back=None,
        variants=statuses, draining=draining, candidate=None,
        stable=next(v for v in statuses if v.deployment == owner.variant_name(STABLE)).model_copy(update={"name": STABLE}),
    )
    return result


def _suspend(arms: _Arms, obs: Observation, judgement: Judgement, result: StrategyResult, now: datetime) -> list[str]:
    """Arms the analysis rolled back stay at weight 0 until their model changes (``name@revision``)."""
    tag = {v.name: f"{v.name}@{revision_of(v.model)}" for v in arms.variants if v.model is not None}
    suspended = [t for t in obs.previous.suspended_variants if t in tag.values()]
    gate, status = judgement.gate, judgement.status
    if gate is not None and gate.rollback and status is not None and status.purpose == "experiment":
        for name in failing_arms(status):
            if name in tag and tag[name] not in suspended:
                suspended.append(tag[name])
                result.note(now, "RolledBack", f"experiment variant {name} rolled back: its traffic goes to {arms.control.name}: {gate.message}",
                            "Warning", evidence=gate.evidence)
    arms.off = {t.split("@", 1)[0] for t in suspended}
    return suspended


def _route(arms: _Arms, obs: Observation) -> list[str]:
    """Weights and pins: an arm serves once its pods do and it is not rolled back. Returns the arms still waiting."""
    assert arms.spec.experiment is not None
    previously = {p.name: p for p in obs.previous.variants}
    available = set()
    for v in arms.variants:
        rev = revision_of(v.model or desired_version(arms.spec))
        was = previously.get(v.name)
        if serving_pods(arms.states[v.name], rev, was is not None and was.revision == rev and was.ready_replicas > 0) > 0:
            available.add(v.name)  # its pods serve (even while it scales up: Available may be False then)
        arms.weights[arms.key(v.name)] = v.weight
    # A variant gets traffic only once it is available and not rolled back; else its share goes to control.
    arms.serving = {n for n in available if n not in arms.off} | {arms.control.name}
    for v in arms.variants:
        if v.name not in arms.serving:
            arms.weights[STABLE] += arms.weights[arms.key(v.name)]
            arms.weights[arms.key(v.name)] = 0
    arms.pins = tuple(
        PinPlan("header" if m.header else "cookie", (m.header or m.cookie).name, (m.header or m.cookie).value,  # type: ignore[union-attr]
                arms.key(m.variant))
        for m in arms.spec.experiment.match if m.variant in arms.serving
    )
    return [v.name for v in arms.variants if v.model is not None and v.name not in available and v.name not in arms.off]


def _decide(arms: _Arms, decision: ExperimentDecision | None, obs: Observation, result: StrategyResult, now: datetime
            ) -> tuple[ExperimentDecision | None, dict[str, int]]:
    """Record the significance test once it decides; a winner to promote gets capacity, then traffic."""
    assert arms.spec.experiment is not None
    before = obs.previous.experiment_decision
    if decision is not None and decision.decided_at is not None and (before is None or before.decided_at is None):
        result.note(now, "ExperimentDecided", f"{decision.metric}: {decision.result}" + (f", winner {decision.winner}" if decision.winner else "")
                    + f" (p={decision.p_value}): {decision.reason}", evidence=decision.dump())
    decide = arms.spec.experiment.decide
    size = {v.name: max(v.weight, arms.weights[arms.key(v.name)]) for v in arms.variants}
    names = {v.name for v in arms.variants}
    if (decision is not None and decision.result == "Winner" and decision.winner in arms.serving and decide is not None
            and decide.promote_winner and decision.winner in names):
        winner = decision.winner
        size[winner] = 100  # capacity first: traffic moves once the winner can carry it all
        if arms.states[winner].current_available >= arms.capacity.need(100):
            arms.weights = {k: 0 for k in arms.weights} | {arms.key(winner): 100}
            arms.pins = ()
            if not decision.promoted:
                decision = decision.model_copy(update={"promoted": True})
                result.note(now, "WinnerPromoted", f"all traffic to the winner {winner} (decide.promoteWinner); put its model in spec.model to make it stable")
    return decision, size


def _size(arms: _Arms, owner: Owner, size: dict[str, int]) -> tuple[list[VariantWorkload], list[VariantStatus]]:
    """Each arm sized for its share (control and pinned arms run at least one pod); rolled-back arms run none.

    With scalers each arm has its own, its floor its share of the control's current replicas
    (the control at least minReplicas); an arm with no live weight may idle at 0 (scaleToZero)."""
    assert arms.spec.experiment is not None
    pinned = {m.variant for m in arms.spec.experiment.match}
    demand = {v.name: Demand(0, fixed=True) if v.name in arms.off else
              Demand(size[v.name], floor=1 if v.name in pinned or v.model is None else 0, carries=arms.weights[arms.key(v.name)],
                     stable=v.model is None)
              for v in arms.variants}
    sizes = arms.capacity.sizes(demand)
    workloads, statuses = [], []
    for v in arms.variants:
        model, key, n = v.model or desired_version(arms.spec), arms.key(v.name), sizes[v.name]
        workloads.append(VariantWorkload(key, model, n.replicas, n.scaler))
        statuses.append(variant_status(v.name, model, arms.states[v.name], n.replicas, arms.weights[key], owner, key))
    return workloads, statuses


def _note_control(spec: ModelDeploymentSpec, obs: Observation, result: StrategyResult, now: datetime) -> str:
    """A new control model (the experiment's first deployment, or spec.model changed) is a decision."""
    assert spec.experiment is not None
    before, control = obs.previous.stable_model, desired_version(spec)
    if before is not None and revision_of(before) == revision_of(control):
        return ""
    event, words = ("Deployed", "deploying") if before is None else ("Updated", "control moves to")
    message = f"{words} {spec.model.bento}{version_change(before, control) if before is not None else ''} with an experiment of {len(spec.experiment.variants)} variants"
    result.note(now, event, message, revision=revision_of(control), bento=spec.model.bento)
    return message
