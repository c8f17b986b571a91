"""Whether kopf's peering has paused this replica: Headway's own parts stand by with kopf.

With ``--peering`` several replicas run and kopf keeps exactly one active: every replica writes
a keep-alive (priority, lifetime, last seen) under its identity into the status of a peering
object — a ``ClusterKopfPeering`` when serving the whole cluster, a ``KopfPeering`` in each served
namespace otherwise — and a replica pauses while a live peer has a higher priority, or the same
one (a conflict: kopf pauses all of them). Paused, kopf stops its watch streams and handlers.

Headway's work queue, child informers, measurements and notifications run beside kopf, not
inside its handlers, so kopf's pause does not reach them: a paused replica went on reconciling
the ModelDeployments as kopf last delivered them (a stale spec), beside the active one. This
module watches the same peering objects and applies kopf's rule
(``kopf._core.engines.peering.process_peering_event``) to them, with the identity kopf is given
(``kopf.operator(identity=...)``: the config's). The Runtime reconciles only while it says
active, drops every ModelDeployment's pending work when it stands by, and lists them afresh
and queues them when it resumes (``Runtime.standing_by``).

A peering object that does not exist at startup pauses kopf (peering is mandatory with
``--peering``): the replica stands by until it does. One deleted later does not change kopf's
last decision (its keep-alives fail quietly), so neither does it change this one's. A peering
CRD that was not served when the operator started keeps kopf paused until a restart (it
discovers kinds once: scanning is off), and this replica stands by with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from headway.k8s.client import Kind, Kube
from headway.k8s.informer import Informer, Store

CLUSTER_PEERING = Kind("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
NAMESPACED_PEERING = Kind("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
DEFAULT_LIFETIME = 60  # seconds, kopf's Peer default when an entry names none


def _parse_time(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str):
        return now  # kopf: an entry without lastseen counts as seen now
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return now
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def blocking_peers(status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime) -> list[str]:
    """The live peers that pause a replica of ``identity`` and ``priority`` (kopf's rule): a higher
    priority, or the same one. Dead entries (last seen + lifetime in the past) and our own are ignored."""
    blocking = []
    for peer, info in (status or {}).items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        try:
            their_priority, lifetime = int(info.get("priority", 0)), int(info.get("lifetime", DEFAULT_LIFETIME))
        except (TypeError, ValueError):
            continue
        if _parse_time(info.get("lastseen"), now) + timedelta(seconds=lifetime) <= now:
            continue  # dead: kopf cleans it up
        if their_priority >= priority:
            blocking.append(f"{peer} (priority {their_priority}{', the same as ours' if their_priority == priority else ''})")
    return blocking


class Peering:
    """The peering objects of this replica, watched; ``standby_reason()`` says why kopf has paused it."""

    def __init__(self, kube: Kube, name: str, identity: str, priority: int, namespaces: tuple[str, ...],
                 on_change: Callable[[], None]) -> None:
        self.name, self.identity, self.priority = name, identity, priority
        self.kind = NAMESPACED_PEERING if namespaces else CLUSTER_PEERING
        self.namespaces: tuple[str | None, ...] = namespaces or (None,)
        self.store = Store(self.kind)
        self._informers = [Informer(kube, self.store, namespace, "", lambda _obj: on_change())
                           for namespace in self.namespaces]
        self._last: dict[str | None, str | None] = {}  # each peering object's last decision (called under the Runtime's lock)

    def start(self) -> None:
        for informer in self._informers:
            informer.start()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

    def standby_reason(self, now: datetime | None = None) -> str | None:
        """Why this replica stands by (None: it is the active one). Serving several namespaces, it stands
        by when any of their peering objects says so, as kopf pauses the whole operator then (one pause
        toggle per namespace, paused while any is on); once all are read, every object's decision is
        judged and kept."""
        now = now or datetime.now(timezone.utc)
        reasons = []
        for namespace, informer in zip(self.namespaces, self._informers):
            where = f"{self.kind.kind} {namespace + '/' if namespace else ''}{self.name}"
            if not informer.synced.is_set():
                return f"{where} not read yet"
            if informer.served is False:
                # Not looked for again: kopf discovers kinds once at startup (scanning is off), so it
                # stays paused until a restart when the peering CRD was missing then.
                return (f"{where} cannot be read: {self.kind.plural}.{self.kind.group} was not served when the operator "
                        f"started, or is not permitted (see the log); install kopf's peering CRDs and restart")
            peering = self.store.get(namespace or "", self.name)
            if peering is None:
                if namespace in self._last:  # deleted: kopf keeps its last decision (its keep-alives fail quietly)
                    reasons.append(self._last[namespace])
                else:
                    reasons.append(f"{where} does not exist (peering is mandatory with --peering)")
                continue
            blocking = blocking_peers(peering.get("status"), self.identity, self.priority, now)
            self._last[namespace] = (f"{where} lists live peers that take precedence over {self.identity} "
                                     f"(priority {self.priority}): " + ", ".join(blocking)) if blocking else None
            reasons.append(self._last[namespace])
        return next((reason for reason in reasons if reason is not None), None)
