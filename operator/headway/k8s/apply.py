"""Apply the planned children and status to the API server, and post Events.

Children are written with server-side apply (field manager ``headway``, see
``Kube.apply``): Headway owns exactly the fields it renders, a field it stops rendering is
removed, and fields that other managers own are left alone. An apply is sent only when
the child differs from what Headway renders:

- the ``headway.dev/spec-hash`` annotation differs (the rendering changed: the apply also
  removes fields no longer rendered), or
- a field Headway renders has another value live (a hand edit: ``kubectl edit``, a
  ``kubectl scale`` of a Deployment Headway sizes). The apply is forced, so the rendered
  value wins at the next reconcile, not at the next spec change.

So a reconcile with nothing changed writes nothing, also after an operator restart.
Server-set defaults (``imagePullPolicy``, ``protocol: TCP``, ...) and fields written by
others are extra fields in the live object and never count as differences; quantities are
compared by value (the API server writes ``0.5`` CPU back as ``500m``).

Two refinements keep this from looping on a real cluster:

- Headway remembers (in memory) the resourceVersion its own last apply of each child
  returned. While the child still has it, nobody wrote it since, so a difference is the
  server's own doing (a mutating admission webhook, a field an older CRD prunes) and
  applying again would change nothing: it is not re-applied.
- Upgrading from 0.1, which wrote children with create and merge patches and no field
  manager (the API server named it after the client's User-Agent, ``OpenAPI-Generator``):
  before its first apply, that manager's entry in ``managedFields`` is handed over to
  ``headway``'s apply (as client-go's ``csaupgrade`` does), so that a field 0.1 wrote and
  this version no longer renders is removed, not left co-owned forever.
"""

from __future__ import annotations

import copy
import logging
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from headway.k8s.cache import LiveChildren
from headway.k8s.informer import legacy_entries, replicas_managers
from headway.k8s.client import EVENT, FIELD_MANAGER, ApiError, Kind, Kube, kind_of
from headway.planning.conditions import EventIntent, rfc3339
from headway.planning.naming import ANNOTATION_HASH, LABEL_MD, Owner, object_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Action:
    verb: str  # created | updated | deleted | conflict
    kind: str
    name: str
    detail: str = ""


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


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i?|[mkunM]?)$")
_SUFFIX: dict[str, int | Decimal] = {"": 1, "m": Decimal("0.001"), "u": Decimal("0.000001"), "n": Decimal("0.000000001"), "k": 10**3, "M": 10**6,
           "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
           "Pi": 2**50, "Ei": 2**60}


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value ("500m" == "0.5" == 0.5), or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def _same_scalar(live: Any, desired: Any, quantities: bool) -> bool:
    if live == desired and type(live) is type(desired):
        return True
    if isinstance(live, bool) or isinstance(desired, bool):
        return False
    if isinstance(live, (int, str)) and isinstance(desired, (int, str)) and str(live) == str(desired):
        return True  # an int-or-string port (8080 vs "8080")
    return quantities and _quantity(live) is not None and _quantity(live) == _quantity(desired)


def _list_key(items: list[Any]) -> str | None:
    """Lists of uniquely named objects (containers, env, volumes, ...) are matched by name, as
    apply merges them; any other list (HTTPRoute parentRefs naming one Gateway twice, for two
    listeners) is compared item by item."""
    if items and all(isinstance(i, dict) and "name" in i for i in items) and len({i["name"] for i in items}) == len(items):
        return "name"
    return None


def _empty(value: Any) -> bool:
    return value in ("", [], {})


def covers(live: Any, desired: Any, quantities: bool = False) -> bool:
    """Whether every field of ``desired`` has the same value in ``live`` (which may have more).

    The API server drops empty strings and lists of ``omitempty`` fields, so an empty desired
    value is covered by an absent one; quantities (under ``requests``/``limits``) compare by value.
    """
    if live is None and _empty(desired):
        return True
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(covers(live.get(k), v, quantities or k in ("requests", "limits"))
                                              for k, v in desired.items() if v is not None)
    if isinstance(desired, list):
        if not isinstance(live, list):
            return False
        key = _list_key(desired)
        if key is not None and _list_key(live) == key:
            by_key = {item[key]: item for item in live}
            order = [item[key] for item in live if item[key] in {d[key] for d in desired}]
            return order == [d[key] for d in desired] and all(covers(by_key.get(d[key]), d, quantities) for d in desired)
        return len(live) == len(desired) and all(covers(lv, dv, quantities) for lv, dv in zip(live, desired))
    return _same_scalar(live, desired, quantities)


def uncovered(live: Any, desired: Any, path: str = "", quantities: bool = False) -> list[str]:
    """The paths of ``desired`` that ``live`` does not cover (for log lines: what an apply changes)."""
    if covers(live, desired, quantities):
        return []
    if isinstance(desired, dict) and isinstance(live, dict):
        return [p for k, v in desired.items() if v is not None
                for p in uncovered(live.get(k), v, f"{path}.{k}" if path else k, quantities or k in ("requests", "limits"))]
    return [path or "."]


def _changes(live: dict[str, Any], stamped: dict[str, Any]) -> str:
    paths = [p for p in uncovered(live, stamped) if p != f"metadata.annotations.{ANNOTATION_HASH}"]
    if _hands_over_replicas(live, stamped):
        paths.append("spec.replicas (no longer set: the variant's autoscaler owns it)")
    return ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "") if paths else "fields removed"


def with_hash(desired: dict[str, Any]) -> dict[str, Any]:
    stamped = copy.deepcopy(desired)
    stamped["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = object_hash(desired)
    return stamped


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []))


_applied: dict[str, str] = {}  # child uid -> the resourceVersion Headway's own last apply returned


def forget_applied(obj: dict[str, Any]) -> None:
    """A child is gone (deleted by anyone, or garbage-collected): drop what was remembered of it."""
    _applied.pop(obj.get("metadata", {}).get("uid", ""), None)


def needs_apply(live: dict[str, Any], stamped: dict[str, Any]) -> str | None:
    """Why the live child must be applied again (None: it is as rendered)."""
    if live["metadata"].get("annotations", {}).get(ANNOTATION_HASH) != stamped["metadata"]["annotations"][ANNOTATION_HASH]:
        return f"rendering changed: {_changes(live, stamped)}"
    if _applied.get(live["metadata"].get("uid", "")) == live["metadata"].get("resourceVersion"):
        return None  # nobody wrote it since our apply: what differs is the server's doing
    if not covers(live, stamped):
        return f"a rendered field was changed by another writer: {_changes(live, stamped)}"
    return None


def upgraded_managed_fields(live: dict[str, Any]) -> list[dict[str, Any]] | None:
    """0.1's field ownership handed over to Headway's apply; None when there is nothing to hand over."""
    entries = live["metadata"].get("managedFields") or []
    legacy = legacy_entries(entries)
    if not legacy:
        return None
    upgraded = [copy.deepcopy(e) for i, e in enumerate(entries) if i not in legacy[1:]]
    upgraded[legacy[0]].update(manager=FIELD_MANAGER, operation="Apply")
    return upgraded


@dataclass
class Writes:
    """What bringing the children in line takes: applies, deletions, and objects not ours."""

    applies: list[tuple[Kind, dict[str, Any], Action]]
    deletes: list[tuple[Kind, dict[str, Any], Action]]
    conflicts: list[Action]
    upgrades: list[tuple[Kind, dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)  # (kind, live, managedFields)
    handovers: list[tuple[Kind, dict[str, Any]]] = field(default_factory=list)  # replicas handed to a scaler

    def __bool__(self) -> bool:
        return bool(self.applies or self.deletes)


def plan_writes(
    kube: Kube, owner: Owner, desired: list[dict[str, Any]], live: LiveChildren, keep: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> Writes:
    """Compare the desired children with the live ones (reads only, no writes).

    A desired object that was not listed is read by name, so that an object of the same
    name that Headway does not own (no label, another owner) is reported as a conflict and
    never taken over. Owned children of a listed kind that are neither desired nor to keep
    (kind, name) are pruned.
    """
    writes = Writes([], [], [])
    wanted: set[tuple[str, str]] = set()
    for obj in desired:
        kind = kind_of(obj)
        name = obj["metadata"]["name"]
        wanted.add((kind.kind, name))
        stamped = with_hash(obj)
        current = live.get(kind.kind, {}).get(name) or kube.get(kind, owner.namespace, name)
        if current is not None and not owned_by(current, owner.uid):
            writes.conflicts.append(Action("conflict", kind.kind, name, f"{kind.kind} {name} exists and is not owned by this ModelDeployment"))
            continue
        why = "absent" if current is None else needs_apply(current, stamped)
        upgraded = upgraded_managed_fields(current) if current is not None else None
        if upgraded is not None:
            writes.upgrades.append((kind, current, upgraded))  # type: ignore[arg-type]
            why = "taking over the fields Headway 0.1 wrote"
        if current is not None and _hands_over_replicas(current, stamped):
            writes.handovers.append((kind, _replicas_only(current)))
            why = why or "spec.replicas handed over to the variant's autoscaler"
        if why is not None:
            writes.applies.append((kind, stamped, Action("created" if current is None else "updated", kind.kind, name, why)))
    for kind_name, objects in live.items():
        for name, current in objects.items():
            if (kind_name, name) not in wanted and (kind_name, name) not in keep and owned_by(current, owner.uid):
                writes.deletes.append((kind_of(current), current, Action("deleted", kind_name, name, "no longer rendered")))
    return writes


class Written(Protocol):
    """Told about each write's outcome (the watch cache stores it before the watch event arrives)."""

    def put(self, kind: Kind, obj: dict[str, Any]) -> None: ...

    def remove(self, kind: Kind, namespace: str, name: str) -> None: ...


HANDOVER_MANAGER = "headway-replicas-handover"
SCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")


def _hands_over_replicas(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Headway stops rendering a Deployment's replicas (an autoscaler now owns them) while its
    apply still owns the field: applying without it would remove it, resetting the Deployment
    to 1 replica until the autoscaler notices."""
    return (live.get("kind") == "Deployment" and "replicas" not in (desired.get("spec") or {})
            and "replicas" in (live.get("spec") or {}) and FIELD_MANAGER in replicas_managers(live))


def _replicas_only(live: dict[str, Any]) -> dict[str, Any]:
    """The hand-over: the current replica count, but at least 1 — a HorizontalPodAutoscaler does
    nothing for a Deployment at 0 (ScalingDisabled), so a variant that was scaled to 0 while it had
    nothing to carry would never get its pods back."""
    meta = live["metadata"]
    return {"apiVersion": live["apiVersion"], "kind": live["kind"],
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "spec": {"replicas": max(1, int(live["spec"]["replicas"]))}}


def apply_writes(kube: Kube, owner: Owner, writes: Writes, written: Written | None = None) -> list[Action]:
    """Carry out the writes in order (workloads before the route, pruning last).

    A Deployment whose replicas an autoscaler takes over is first applied with only its current
    replica count by a second field manager (``headway-replicas-handover``), as Kubernetes
    documents for handing a field to another owner; Headway's own apply then drops the field
    without resetting it, and the autoscaler's first scale takes it from there.
    """
    for kind, body in writes.handovers:
        kube.apply(kind, owner.namespace, body, field_manager=HANDOVER_MANAGER)
    # A variant that changes engine (HPA -> KEDA) loses its old scaler first: KEDA refuses a
    # ScaledObject whose target another HorizontalPodAutoscaler already scales.
    for kind, current, _ in writes.deletes:
        if kind.kind in SCALER_KINDS:
            _delete(kube, owner, kind, current, written)
    for kind, current, upgraded in writes.upgrades:
        meta = current["metadata"]
        kube.json_patch(kind, owner.namespace, meta["name"], [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "replace", "path": "/metadata/managedFields", "value": upgraded},
        ])
    for kind, stamped, _ in writes.applies:
        result = kube.apply(kind, owner.namespace, stamped)
        if result.get("metadata", {}).get("uid"):
            _applied[result["metadata"]["uid"]] = result["metadata"].get("resourceVersion", "")
            if written is not None:
                written.put(kind, result)
    for kind, current, _ in writes.deletes:
        if kind.kind not in SCALER_KINDS:  # (those went first)
            _delete(kube, owner, kind, current, written)
    return [a for _, _, a in writes.applies] + [a for _, _, a in writes.deletes]


def _delete(kube: Kube, owner: Owner, kind: Kind, current: dict[str, Any], written: Written | None) -> None:
    kube.delete(kind, owner.namespace, current["metadata"]["name"], uid=current["metadata"].get("uid"))
    _applied.pop(current["metadata"].get("uid", ""), None)
    if written is not None:
        written.remove(kind, owner.namespace, current["metadata"]["name"])


def patch_status(kube: Kube, kind: Kind, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
    """Write status through the status subresource if it changed: the object as stored, or
    None when unchanged (nothing sent).

    The patch carries the resourceVersion the decision was made from: if the object
    changed meanwhile, the API server answers 409 and nothing is written.
    """
    old = body.get("status") or {}
    if old == status:
        return None
    meta = body["metadata"]
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": merge_patch_diff(old, status)}
    stored = kube.merge_patch(kind, meta["namespace"], meta["name"], patch, subresource="status")
    _warn_if_pruned(kind, status, stored.get("status") or {})
    return stored


def confirm_fresh(kube: Kube, kind: Kind, body: dict[str, Any]) -> None:
    """409 unless the object is still at the resourceVersion that was read (writes nothing).

    Used before children are written from a status that did not change: another process
    (a second replica, a peer that was paused) may have decided and acted meanwhile.
    """
    meta = body["metadata"]
    kube.merge_patch(kind, meta["namespace"], meta["name"], {"metadata": {"resourceVersion": meta["resourceVersion"]}},
                     subresource="status")


_pruned_warned: set[str] = set()


def _missing(sent: Any, stored: Any, path: str = "status") -> list[str]:
    if not isinstance(sent, dict) or not isinstance(stored, dict):
        return []
    out = []
    for key, value in sent.items():
        if key not in stored:
            out.append(f"{path}.{key}")
        elif isinstance(value, dict):
            out += _missing(value, stored[key], f"{path}.{key}")
    return out


def _warn_if_pruned(kind: Kind, sent: dict[str, Any], stored: dict[str, Any]) -> None:
    """A status field the server dropped means its CRD is older than this operator (Helm does
    not upgrade CRDs): every reconcile would then rewrite status. Say so, once per field."""
    pruned = [p for p in _missing(sent, stored) if p not in _pruned_warned]
    if pruned:
        _pruned_warned.update(pruned)
        log.error("the API server dropped %s from the %s status: its CRD is older than this operator; apply crds/ "
                  "(helm upgrade does not update CRDs)", ", ".join(pruned), kind.kind)


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
