"""Apply the planned children and status to the API server, and post Events.

Idempotent by construction: every child carries the hash of the object Headway rendered
(``headway.dev/spec-hash``); a child whose hash matches is not written at all, so a
reconcile with nothing changed writes nothing — also after an operator restart. A child
that changed is merge-patched with the resourceVersion it was read at, so a concurrent
writer makes the patch fail with 409 and the next reconcile starts from a fresh read.

Known limit: a hand edit of a child (kubectl edit) that leaves the hash annotation alone
is corrected at the next change of the ModelDeployment, not immediately.
"""

from __future__ import annotations

import copy
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headway.k8s.client import EVENT, ApiError, Kind, Kube, kind_of
from headway.planning.conditions import EventIntent, rfc3339
from headway.planning.naming import ANNOTATION_HASH, LABEL_MD, Owner, object_hash

log = logging.getLogger(__name__)

# Subtrees Headway owns outright: keys it no longer renders are removed there. Elsewhere
# (annotations, status, server-set fields) keys written by others are left alone.
OWNED_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("metadata", "labels"), ("spec", "template", "metadata", "labels"), ("spec", "template", "spec")),
    "Service": (("metadata", "labels"), ("spec", "selector")),
    "PodDisruptionBudget": (("metadata", "labels"), ("spec",)),
    "HTTPRoute": (("metadata", "labels"), ("spec",)),
    "VirtualService": (("metadata", "labels"), ("spec",)),
    "PodMonitor": (("metadata", "labels"), ("spec",)),
}


@dataclass(frozen=True)
class Action:
    verb: str  # created | updated | deleted | conflict
    kind: str
    name: str
    detail: str = ""


def removals(live: Any, desired: Any) -> Any:
    """A merge patch fragment that deletes (null) what live has and desired lacks."""
    if not isinstance(live, dict) or not isinstance(desired, dict):
        return desired
    out: dict[str, Any] = {}
    for key, value in desired.items():
        out[key] = removals(live.get(key), value)
    for key in live:
        if key not in desired:
            out[key] = None
    return out


def merge_patch_diff(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns old into new (lists are replaced whole)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch_diff(old[key], value)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def _get_path(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)  # type: ignore[assignment]
    return obj


def _set_path(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = value


def build_update_patch(live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The desired object as a merge patch, with removals inside the owned subtrees."""
    patch = copy.deepcopy(desired)
    for path in OWNED_PATHS.get(desired["kind"], ()):
        live_sub, desired_sub = _get_path(live, path), _get_path(desired, path)
        if isinstance(live_sub, dict) and isinstance(desired_sub, dict):
            _set_path(patch, path, removals(live_sub, desired_sub))
    patch["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    return patch


def with_hash(desired: dict[str, Any]) -> dict[str, Any]:
    stamped = copy.deepcopy(desired)
    stamped["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = object_hash(desired)
    return stamped


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []))


def apply_children(
    kube: Kube, owner: Owner, desired: list[dict[str, Any]], managed: tuple[Kind, ...], keep: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> list[Action]:
    """Create and update the desired children in order, then prune the owned ones that are
    neither desired nor to keep (kind, name); returns what was written.

    One LIST per managed kind (by the modeldeployment label) serves both the lookups and
    the pruning. An object of the same name without the label is not listed: creating it
    answers 409, and it is then read to tell a foreign object from a race.
    """
    live_by_kind = {kind.kind: {o["metadata"]["name"]: o for o in kube.list(kind, owner.namespace, f"{LABEL_MD}={owner.name}")}
                    for kind in managed}
    actions: list[Action] = []
    wanted: set[tuple[str, str]] = set()
    for obj in desired:
        kind = kind_of(obj)
        name = obj["metadata"]["name"]
        wanted.add((kind.kind, name))
        stamped = with_hash(obj)
        listed = live_by_kind.get(kind.kind)
        live = listed.get(name) if listed is not None else kube.get(kind, owner.namespace, name)
        if live is None:
            try:
                kube.create(kind, owner.namespace, stamped)
                actions.append(Action("created", kind.kind, name))
                continue
            except ApiError as exc:
                if exc.status != 409:
                    raise
                live = kube.get(kind, owner.namespace, name)
                if live is None:
                    raise
        if not owned_by(live, owner.uid):
            actions.append(Action("conflict", kind.kind, name, f"{kind.kind} {name} exists and is not owned by this ModelDeployment"))
        elif live["metadata"].get("annotations", {}).get(ANNOTATION_HASH) != stamped["metadata"]["annotations"][ANNOTATION_HASH]:
            kube.merge_patch(kind, owner.namespace, name, build_update_patch(live, stamped))
            actions.append(Action("updated", kind.kind, name))
    for kind in managed:
        for name, live in live_by_kind[kind.kind].items():
            if (kind.kind, name) not in wanted and (kind.kind, name) not in keep and owned_by(live, owner.uid):
                kube.delete(kind, owner.namespace, name, uid=live["metadata"].get("uid"))
                actions.append(Action("deleted", kind.kind, name))
    return actions


def patch_status(kube: Kube, kind: Kind, body: dict[str, Any], status: dict[str, Any]) -> bool:
    """Write status through the status subresource if it changed; False when unchanged.

    The patch carries the resourceVersion the decision was made from: if the object
    changed meanwhile, the API server answers 409 and nothing is written.
    """
    old = body.get("status") or {}
    if old == status:
        return False
    meta = body["metadata"]
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": merge_patch_diff(old, status)}
    kube.merge_patch(kind, meta["namespace"], meta["name"], patch, subresource="status")
    return True


_INSTANCE = socket.gethostname()


def post_event(kube: Kube, body: dict[str, Any], event: EventIntent, now: datetime) -> None:
    """Post a core/v1 Event about the object; failures are logged, never fatal."""
    meta = body["metadata"]
    stamp = rfc3339(now)
    manifest = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": "headway"},
        "reportingComponent": "headway.dev/operator",
        "reportingInstance": _INSTANCE,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        kube.create(EVENT, meta["namespace"], manifest)
    except ApiError as exc:
        log.warning("could not post event %s: %s", event.reason, exc)
