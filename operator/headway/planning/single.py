"""The steady and rollout planners: a ModelDeployment with one model in spec.model.

Steady (nothing in flight) runs stable alone; a rollout adds a candidate sized for its
step, and after a promotion with a bake time the previous version stays available, sized
for its share as the bake's baseline (bake.py), and drains if it served live traffic.
Both go through the rollout state machine's decision (rollout.py) and differ only in
which decision: the steady one is a no-op that records the first deployment. The
kubectl controls are bound to the version rolling out (controls.py); an experiment
removed from the spec drains its variants here. With ``spec.autoscaling`` every variant but
the baking previous version (and a rolled-back candidate) gets its own scaler, bounded by
capacity.py from the rollout's state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import DrainingStatus
from headway.planning import controls as ctl
from headway.planning.analysis import Gate
from headway.planning.bake import Baseline
from headway.planning.capacity import Capacity, Demand, capacity_of, replica_ratio
from headway.planning.conditions import parse_time, rfc3339
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE, Owner, VariantWorkload, desired_version, revision_of
from headway.planning.observe import DeploymentState, Observation
from headway.planning.rollout import RolloutDecision, decide, steady_decision
from headway.planning.steps import comparing, mirror_only
from headway.planning.strategy import DRAIN, Sections, StrategyResult, drain, drain_events, split_of, variant_status


def plan_steady(spec: ModelDeploymentSpec, obs: Observation, owner: Owner, now: datetime) -> StrategyResult:
    """No rollout in progress: stable runs spec.model with all traffic."""
    return _assemble(spec, obs, owner, now, lambda controls: steady_decision(spec, obs.previous, now))


def plan_rollout(spec: ModelDeploymentSpec, obs: Observation, owner: Owner, gate: Gate | None, now: datetime) -> StrategyResult:
    """A candidate, a promotion, a bake or a rollback in flight: the state machine decides."""
    paused = spec.paused or ctl.paused_by_annotation(obs.annotations)

    def decision(controls: dict[str, str]) -> RolloutDecision:
        return decide(spec, obs.previous, _state(obs, STABLE), _state(obs, CANDIDATE), controls, paused, gate, now,
                      capacity_of(spec, obs, obs.previous.stable_model), _state(obs, PREVIOUS), obs.approvals)

    return _assemble(spec, obs, owner, now, decision)


def _state(obs: Observation, variant: str) -> DeploymentState:
    return obs.live.get(variant, DeploymentState(exists=False))


def _assemble(spec: ModelDeploymentSpec, obs: Observation, owner: Owner, now: datetime,
              decision: Callable[[dict[str, str]], RolloutDecision]) -> StrategyResult:
    previous = obs.previous
    pending = ctl.pending(obs.annotations, previous.controls)
    target = revision_of(desired_version(spec))
    active, skipped, bound = ctl.bind(pending, previous, target, spec.model.bento)
    d = decision(active)
    result = StrategyResult(Sections.of(previous), traffic=d.traffic, phase=d.phase, message=d.message, reason=d.reason,
                            history=list(d.history), events=list(d.events))
    in_progress = d.rollout is not None and d.rollout.revision == target
    deferred = ctl.settle(active, d.handled, skipped, bound, target, spec.model.bento, in_progress, d.rolled_back, rfc3339(now))
    for message in ctl.ignored_notes(skipped, pending):
        result.note(now, "ControlIgnored", message, "Warning")
    result.workloads = _workloads(spec, obs, capacity_of(spec, obs, d.stable_model, d.candidate_model), d, now)
    sizes = {w.variant: w.replicas for w in result.workloads}
    candidate = None
    if d.candidate_model is not None:
        candidate = variant_status(CANDIDATE, d.candidate_model, _state(obs, CANDIDATE), sizes[CANDIDATE],
                                   d.traffic.weights.get(CANDIDATE, 0), owner)
    # An experiment removed from the spec: its variants drain like removed variants.
    draining, result.keep = drain(previous, set(), owner, now)
    result.events += drain_events(previous, draining)
    if d.drain_previous and PREVIOUS not in result.keep:
        # The bake ended while the previous version served live traffic: it keeps its pods while the
        # data plane moves its share back to stable (requests in flight finish), then goes.
        draining = [*draining, DrainingStatus(variant=PREVIOUS, since=rfc3339(now))]
        result.keep = (*result.keep, PREVIOUS)
    result.sections = result.sections.but(
        stable_model=d.stable_model, previous_model=d.previous_model, rollout=d.rollout, rolled_back=d.rolled_back,
        candidate=candidate, bake=d.bake, deferred_controls=deferred, governance=d.governance,
        controls={**previous.controls, **d.handled, **{c: pending[c] for c in skipped}},
        draining=draining, variants=[v.model_copy(update={"weight": 0}) for v in previous.variants if v.name in result.keep],
        stable=variant_status(STABLE, d.stable_model, _state(obs, STABLE), sizes[STABLE], d.traffic.weights.get(STABLE, 100), owner),
    )
    result.split = split_of(d.traffic)
    return result


def _workloads(spec: ModelDeploymentSpec, obs: Observation, capacity: Capacity, d: RolloutDecision, now: datetime) -> list[VariantWorkload]:
    """Stable at full size, the candidate sized for its step, the baking previous version for its share.

    With scalers (capacity.py): stable holds its current replicas while an analysis compares
    the candidate against it and while a promotion replaces its pods; the candidate's floor
    follows its share of the stable's current replicas."""
    steps = list(spec.rollout.steps) if spec.rollout else []
    rollout = d.rollout
    hold = rollout is not None and (rollout.promoting or comparing(steps, rollout, spec.analysis is not None))
    demand = {STABLE: Demand(None, hold=hold)}
    if d.candidate_model is not None:
        floor = 0
        live = _state(obs, CANDIDATE)
        if d.rolled_back is not None and not replica_ratio(spec) and now - parse_time(d.rolled_back.at) < DRAIN:
            # Traffic has just moved off the candidate: let the data plane converge before
            # its pods go (requests in flight finish; no 5xx from a vanished backend).
            floor = live.replicas if live.exists else 0
        # No router: the split is the replica ratio (both variants' pods behind one Service);
        # stable shrinks only for the share the candidate already carries.
        carries = 0 if rollout and rollout.promoting else d.traffic.weights.get(CANDIDATE, 0)
        idle = rollout is not None and not rollout.promoting and carries == 0 and mirror_only(steps, rollout.step)
        demand[CANDIDATE] = Demand(d.candidate_share, floor=floor, carries=carries, mirror_only=idle,
                                   fixed=d.rolled_back is not None or rollout is None)
    if d.bake is not None and d.previous_model is not None:
        # During the bake the previous version stays available, sized for its share as the baseline
        # (bake.py) from the start (capacity before traffic), at least one pod; fixed, no scaler. It
        # carries nothing the stable gives up: without a router its pods join the stable's.
        demand[PREVIOUS] = Demand(Baseline.of(d.bake).share, floor=1, fixed=True)
    sizes = capacity.sizes(demand)
    models = {STABLE: d.stable_model, CANDIDATE: d.candidate_model, PREVIOUS: d.previous_model}
    return [VariantWorkload(v, models[v], n.replicas, n.scaler) for v, n in sizes.items()]  # type: ignore[arg-type]
