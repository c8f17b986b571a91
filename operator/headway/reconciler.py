"""observe -> plan -> render -> apply: the one place all layers meet.

Each call reads the ModelDeployment fresh (so a stale watch event can't drive a
decision), plans from what it read, writes the children, then the status with the
resourceVersion it read (409 if anything changed meanwhile: nothing is lost, the next
reconcile decides again), then posts the Events for the decisions it wrote.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime, timezone

import headway
from headway.api.status import ConditionType, Phase
from headway.k8s.apply import Action, apply_children, patch_status, post_event
from headway.k8s.client import DEPLOYMENT, PDB, SERVICE, ApiError, Kind, Kube, register_kind
from headway.planning.conditions import EventIntent, set_condition
from headway.planning.naming import STABLE, Owner
from headway.planning.steady import Plan, parse_status, plan
from headway.rendering.workload import build_children

log = logging.getLogger(__name__)

MODEL_DEPLOYMENT = register_kind(Kind(headway.GROUP, headway.VERSION, headway.PLURAL, headway.KIND))
WORKLOAD_KINDS = (DEPLOYMENT, SERVICE, PDB)

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    """Serialise reconciles of one object within this process (watch events and timers overlap)."""
    with _locks_guard:
        return _locks[(namespace, name)]


def _with_conflicts(result: Plan, conflicts: list[Action], now: datetime, generation: int | None) -> Plan:
    """Children Headway may not overwrite make the ModelDeployment Degraded, named."""
    message = "; ".join(a.detail for a in conflicts)
    degraded = set_condition(result.status.conditions, ConditionType.DEGRADED, "True", "ChildConflict", message, now, generation)
    conditions = [degraded if c.type == ConditionType.DEGRADED else c for c in result.status.conditions]
    status = result.status.model_copy(update={"conditions": conditions, "phase": Phase.DEGRADED})
    return Plan(result.spec, result.workloads, status, [*result.events, EventIntent("Warning", "ChildConflict", message)])


def _action_events(actions: list[Action]) -> list[EventIntent]:
    return [EventIntent("Normal", a.verb.capitalize(), f"{a.kind} {a.name} {a.verb}") for a in actions if a.verb != "conflict"]


def reconcile(kube: Kube, namespace: str, name: str, now: datetime | None = None) -> Plan | None:
    """Bring one ModelDeployment's children and status in line with its spec."""
    with _lock(namespace, name):
        body = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone or going: garbage collection removes the children
        now = now or datetime.now(timezone.utc)
        meta = body["metadata"]
        owner = Owner(name=name, namespace=namespace, uid=meta["uid"])
        generation = meta.get("generation")
        previous = parse_status(body.get("status"))
        stable_live = kube.get(DEPLOYMENT, namespace, owner.variant_name(STABLE))
        result = plan(owner, body.get("spec") or {}, generation, previous, stable_live, now)

        actions: list[Action] = []
        if result.spec is not None and result.workloads is not None:
            actions = apply_children(kube, owner, build_children(owner, result.spec, result.workloads), WORKLOAD_KINDS)
        conflicts = [a for a in actions if a.verb == "conflict"]
        if conflicts:
            result = _with_conflicts(result, conflicts, now, generation)

        body.setdefault("apiVersion", MODEL_DEPLOYMENT.api_version)
        body.setdefault("kind", MODEL_DEPLOYMENT.kind)
        try:
            patch_status(kube, MODEL_DEPLOYMENT, body, result.status.dump())
        except ApiError as exc:
            if exc.status == 409:
                log.info("%s/%s changed while reconciling; deciding again on the next event", namespace, name)
                return None
            raise
        for event in [*_action_events(actions), *result.events]:
            post_event(kube, body, event, now)
        return result
