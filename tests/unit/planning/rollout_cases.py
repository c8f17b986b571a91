"""Shared helpers for the rollout and experiment plan tests: specs, simulated Deployments, a
small simulated cluster that feeds each plan's status back in as the next ``previous``.

Everything is pure: time is passed in, Deployments are ``DeploymentState`` values built from
the workloads the previous plan asked for (as if the Deployment controller had converged).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from headway.api.spec import ModelSpec
from headway.api.status import HistoryEntry, ModelDeploymentStatus
from headway.planning.conditions import EventIntent
from headway.planning.governance import ObservedApproval
from headway.planning.naming import CANDIDATE, STABLE, Owner, ScalerBounds, VariantWorkload, revision_of
from headway.planning.observe import DeploymentState, parse_status
from headway.planning.measure import Judgement, Measurement
from headway.planning.observe import Observation
from headway.planning.plan import Plan, plan
from headway.planning.rollout import Gate, replicas_for_share
from headway.planning.cost import Prices

OWNER = Owner("fraud-scorer", "ml", "uid-1")
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}


def model(version: str) -> dict[str, Any]:
    return {"bento": f"fraud_scorer:{version}", "image": f"registry.example.com/fraud-scorer:{version}"}


def rev(version: str) -> str:
    return revision_of(ModelSpec.model_validate(model(version)))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    """``at(seconds)`` as status writes it (RFC 3339)."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


# Rollout steps, as users write them.
def shadow(percent: int, duration: str) -> dict[str, Any]:
    return {"shadow": {"percent": percent, "duration": duration}}


def canary(weight: int, duration: str) -> dict[str, Any]:
    return {"canary": {"weight": weight, "duration": duration}}


def pause(duration: str | None = None) -> dict[str, Any]:
    return {"pause": {"duration": duration} if duration else {}}


# The rollout: shadow 50% 1m -> canary 10% 2m -> manual gate -> canary 50% 1m.
STEPS = [shadow(50, "1m"), canary(10, "2m"), pause(), canary(50, "1m")]


def rollout_spec(version: str, steps: list[dict[str, Any]] | None = None, *, replicas: int = 4,
                 traffic: dict[str, Any] | None = GATEWAY, paused: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": model(version), "replicas": replicas, "rollout": {"steps": STEPS if steps is None else steps}}
    if traffic is not None:
        spec["traffic"] = traffic
    if paused:
        spec["paused"] = True
    return spec


def deployment_state(workload: VariantWorkload | None, ready: int | None = None, *, revision: str | None = None,
                     replicas: int | None = None, deadline: bool = False) -> DeploymentState:
    """What the Deployment of ``workload`` reports once its controller has acted.

    By default it runs the workload's revision at the workload's size with every replica
    ready: available and complete. ``ready`` fewer than the size means "not yet" (0 ready:
    unavailable); ``revision``/``replicas`` describe a Deployment still on another template.
    """
    if workload is None:
        return DeploymentState(exists=False)
    want = workload.replicas if replicas is None else replicas
    ready = want if ready is None else ready
    return DeploymentState(
        exists=True, revision=revision or revision_of(workload.model), replicas=want, ready_replicas=ready, available_replicas=ready, current_available=ready,
        available=ready > 0 or want == 0, complete=ready == want and not deadline, deadline_exceeded=deadline,
        message=f"{ready}/{want} replicas ready",
    )


# A simulated autoscaler: (variant, its scaler's bounds, its Deployment as it is) -> the replicas it sets.
Autoscaler = Callable[[str, ScalerBounds, DeploymentState | None], int]


def keep_replicas(variant: str, bounds: ScalerBounds, live: DeploymentState | None) -> int:
    """An autoscaler that leaves the replicas where they are (a new Deployment: at the floor)."""
    return live.replicas if live is not None and live.exists else bounds.min_replicas


def workload_of(result: Plan, variant: str) -> VariantWorkload | None:
    return next((w for w in result.workloads or [] if w.variant == variant), None)


def replicas_of(result: Plan, variant: str) -> int | None:
    w = workload_of(result, variant)
    return None if w is None else w.replicas


def step_label(entry: HistoryEntry) -> str:
    """``StepStarted 2/4``, ``Promoted``: a history entry named by its event and step."""
    found = re.search(r"step (\d+/\d+)", entry.message)
    return f"{entry.event} {found.group(1)}" if found and entry.event.startswith("Step") else entry.event


def new_entries(before: ModelDeploymentStatus, after: ModelDeploymentStatus) -> list[HistoryEntry]:
    return after.history[len(before.history):]


@dataclass
class Cluster:
    """One ModelDeployment and its Deployments; each reconcile commits status the way the API would.

    ``reconcile`` plans from the committed status, round-trips the new status through its
    wire form (status alone must carry the state), then lets the Deployments converge on
    the planned workloads, except the variants in ``broken`` (0 ready) or ``frozen`` (left as
    they were). A workload with a scaler converges on the replicas ``autoscaler`` chooses,
    within its bounds (Headway never sets them).
    """

    spec: dict[str, Any]
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    live: dict[str, DeploymentState] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    frozen: set[str] = field(default_factory=set)
    events: list[EventIntent] = field(default_factory=list)
    last: Plan | None = None
    seen: dict[str, DeploymentState] = field(default_factory=dict)  # what the last committed plan observed
    served: frozenset[str] = frozenset()  # optional kinds the cluster serves ("keda.sh/ScaledObject")
    metrics_url: str | None = None  # the operator's --prometheus-url
    prices: Prices | None = None  # the operator's price table
    autoscaler: Autoscaler = keep_replicas
    approvals: tuple[ObservedApproval, ...] = ()  # the ModelApprovals of this ModelDeployment (spec.governance)

    def observed(self) -> Observation:
        return Observation(raw_spec=self.spec, generation=1, annotations=dict(self.annotations), previous=self.status,
                           live=dict(self.live), served=self.served, default_metrics_url=self.metrics_url, prices=self.prices,
                           approvals=self.approvals)

    def plan(self, now: datetime, gate: Gate | None = None) -> Plan:
        """Plan without committing anything (a dry run, or a run that dies before writing status).

        ``gate`` stands for what the analysis concluded (None: no analysis)."""
        return plan(OWNER, self.observed(), now, Judgement(gate=gate))

    def plan_measured(self, now: datetime, measurement: Measurement | None) -> Plan:
        """Plan as the reconciler does with an analysis: the gate is judged from ``measurement`` (the
        answer to a MeasureRequest a previous plan asked for, or None) and the status recorded so far."""
        return plan(OWNER, replace(self.observed(), measurement=measurement), now)

    def commit(self, result: Plan) -> Plan:
        self.status = parse_status(result.status.dump())
        assert self.status == result.status, "status does not survive its wire form"
        self.events += result.events
        self.last = result
        return result

    def converge(self, result: Plan) -> None:
        if result.workloads is None:
            return
        live = {}
        for w in result.workloads:
            if w.variant in self.frozen and w.variant in self.live:
                live[w.variant] = self.live[w.variant]
            else:
                scaled = None
                if w.scaler is not None:
                    chosen = self.autoscaler(w.variant, w.scaler, self.live.get(w.variant))
                    scaled = min(max(chosen, w.scaler.min_replicas), w.scaler.max_replicas)
                live[w.variant] = deployment_state(w, 0 if w.variant in self.broken else None, replicas=scaled)
        for variant in result.keep:
            if variant in self.live:
                live[variant] = self.live[variant]
        self.live = live

    def half_apply(self, result: Plan) -> None:
        """The children of ``result`` were applied a moment ago; their controllers have not caught up.

        A Deployment whose template or size changed reports the new spec, is not complete,
        and keeps the pods (and availability) it had; a new one has no pod ready yet; one
        that is no longer planned is gone.
        """
        if result.workloads is None:
            return
        live = {}
        for w in result.workloads:
            old, new = self.live.get(w.variant), deployment_state(w)
            if old is None or not old.exists:
                live[w.variant] = deployment_state(w, 0)
            elif (old.revision, old.replicas) == (new.revision, new.replicas):
                live[w.variant] = old
            else:
                live[w.variant] = replace(new, ready_replicas=old.ready_replicas, available_replicas=old.available_replicas,
                                          observed=False, current_available=0,
                                          available=old.available, complete=False)
        for variant in result.keep:
            if variant in self.live:
                live[variant] = self.live[variant]
        self.live = live

    def reconcile(self, now: datetime, gate: Gate | None = None) -> Plan:
        self.seen = dict(self.live)
        result = self.commit(self.plan(now, gate))
        self.converge(result)
        return result

    def annotate(self, control: str, value: str | None) -> None:
        key = "headway.dev/" + control
        if value is None:
            self.annotations.pop(key, None)
        else:
            self.annotations[key] = value

    def set_model(self, version: str) -> None:
        self.spec = {**self.spec, "model": model(version)}

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def running(spec: dict[str, Any], version: str = "1.0.0", now: datetime = T0, **options: Any) -> Cluster:
    """A cluster whose first version (``version``) is deployed and available; ``spec`` is applied next.

    ``options``: more fields of the Cluster (served, metrics_url, autoscaler)."""
    cluster = Cluster(spec={**spec, "model": model(version)}, **options)
    cluster.reconcile(now)
    cluster.reconcile(now)
    assert cluster.status.phase == "Succeeded", cluster.status.phase
    cluster.spec = spec
    cluster.events.clear()
    return cluster


def labels(entries: list[HistoryEntry]) -> list[str]:
    return [step_label(e) for e in entries]


def assert_routes_only_to_ready(seen: dict[str, DeploymentState], result: Plan, total: int) -> None:
    """The candidate gets live or mirrored traffic only if, as observed, it can carry that share."""
    assert result.traffic is not None
    weights, mirror = result.traffic.weights, result.traffic.mirror
    assert sum(weights.values()) == 100, weights
    share = max(weights.get(CANDIDATE, 0), mirror[1] if mirror else 0)
    if share == 0:
        return
    workload = workload_of(result, CANDIDATE)
    assert workload is not None, "traffic to a candidate that is not planned"
    state = seen.get(CANDIDATE, DeploymentState(exists=False))
    need = replicas_for_share(total, share)
    assert state.exists and state.available and state.revision == revision_of(workload.model), (share, state)
    assert state.ready_replicas >= need, f"{share}% of traffic sent to {state.ready_replicas} ready candidate replicas (needs {need})"


__all__ = [
    "CANDIDATE", "GATEWAY", "OWNER", "STABLE", "STEPS", "T0", "Autoscaler", "Cluster", "assert_routes_only_to_ready", "at", "canary",
    "deployment_state", "keep_replicas", "labels", "model", "new_entries", "pause", "replicas_of", "rev", "rollout_spec", "running",
    "shadow", "step_label", "ts", "workload_of",
]
