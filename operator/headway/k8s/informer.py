"""Watch caches (informers): what a reconcile reads instead of asking the API server.

One ``Informer`` per (kind, namespace) lists the objects Headway manages (server-side label
selector ``app.kubernetes.io/managed-by=headway``) once, then follows a watch from that
list's resourceVersion, as client-go's reflector does:

- bookmarks (``allowWatchBookmarks``) keep the resourceVersion fresh while nothing changes, so
  a reconnect does not need a new list;
- the server ends a watch after ``timeoutSeconds`` (30-60 minutes, spread so that informers do
  not reconnect together): one request per informer per half hour at most while idle;
- ``410 Gone`` (the resourceVersion is too old) or a broken connection: list again, after a
  backoff, and report what changed meanwhile (deletions included).

Every change calls ``on_change(object)``; the caller maps it to the ModelDeployment to wake
(by its ``headway.dev/modeldeployment`` label). Objects are kept slimmed: ``managedFields``
(often half an object) and kubectl's last-applied annotation are dropped, since Headway
compares only the fields it renders; ``managedFields`` is kept only while Headway 0.1's
manager still owns fields that have to be handed over (see k8s/apply.py).

A kind the cluster does not serve (no HTTPRoute CRD, say) lists as 404: the informer reports
``served = False`` and sleeps until someone needs the kind again (``recheck()``, rate limited),
so a cluster without Istio costs nothing while idle. A kind removed while watched ends its
watch with 404 the same way.

Reads are served from memory under a lock; objects are never mutated after they are stored
(writers replace them), so callers get them without copying and must not change them.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

from headway.k8s.client import FIELD_MANAGER, ApiError, Kind, Kube
from headway.planning.naming import LABEL_MD
from headway.telemetry import CACHE_OBJECTS

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
LEGACY_MANAGERS = ("OpenAPI-Generator",)  # how the API server named Headway 0.1's writes (no fieldManager)


REPLICAS_MANAGERS = "headway.internal/replicasManagers"  # cache only: who owns a Deployment's spec.replicas


def replicas_managers(obj: Obj) -> list[str]:
    """The field managers owning ``spec.replicas`` (from managedFields, or as the cache kept them)."""
    meta = obj.get("metadata") or {}
    if REPLICAS_MANAGERS in meta:
        return list(meta[REPLICAS_MANAGERS])
    return [e.get("manager", "") for e in meta.get("managedFields") or []
            if "f:replicas" in ((e.get("fieldsV1") or {}).get("f:spec") or {})]


def legacy_entries(entries: list[dict[str, Any]]) -> list[int]:
    """The managedFields entries through which Headway 0.1 still owns fields its apply has not
    taken over (none once Headway has applied); k8s/apply.py hands them over."""
    if any(e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply" for e in entries):
        return []
    return [i for i, e in enumerate(entries)
            if e.get("manager") in LEGACY_MANAGERS and e.get("operation") == "Update" and not e.get("subresource")]


STATUS_READ = frozenset({"Deployment", "ModelDeployment", "ClusterKopfPeering", "KopfPeering"})  # kinds whose status is read


def _compact(value: Any) -> Any:
    """The same JSON value with its keys and short strings interned: a thousand Deployments
    share one copy of "metadata", "app.kubernetes.io/managed-by", "IfNotPresent"... (about half
    the memory of the cache)."""
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= 64:
        return sys.intern(value)
    return value


def slim(obj: Obj, kind: Kind) -> Obj:
    """The object as cached: typed (list items carry no apiVersion/kind), compact, without what
    Headway never reads (managedFields unless 0.1's must be handed over, kubectl's last-applied,
    the status of children other than Deployments)."""
    meta = dict(obj.get("metadata") or {})
    entries = meta.pop("managedFields", None) or []
    if entries and legacy_entries(entries):
        meta["managedFields"] = entries
    if kind.kind == "Deployment":
        meta[REPLICAS_MANAGERS] = replicas_managers({"metadata": {"managedFields": entries}})
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    kept = {k: v for k, v in obj.items() if k != "status" or kind.kind in STATUS_READ}
    return _compact({**kept, "apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta})


def newer(candidate: Obj, current: Obj | None) -> bool:
    """Whether ``candidate`` is at least as new as ``current`` (resourceVersions compare as
    integers on etcd-backed servers, which Kubernetes documents since 1.35; otherwise the
    later arrival wins)."""
    if current is None:
        return True
    a, b = candidate["metadata"].get("resourceVersion", ""), current["metadata"].get("resourceVersion", "")
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return True


def _rv(obj: Obj) -> int | None:
    version = str(obj["metadata"].get("resourceVersion", ""))
    return int(version) if version.isdigit() else None


class Store:
    """Objects of one kind by (namespace, name), indexed by a label's value.

    Deleted objects leave a tombstone (their uid, for ``TOMBSTONE_SECONDS``): a write-through
    of an object that was deleted meanwhile (its apply answered before the DELETED event came)
    is refused, so it cannot come back into the cache; a new object of the same name has
    another uid and is stored.
    """

    TOMBSTONE_SECONDS = 600.0

    def __init__(self, kind: Kind, index_label: str | None = None, index_of: Callable[[Obj], str | None] | None = None) -> None:
        self.kind = kind
        self._label = index_label
        self._index_of = index_of  # instead of a label: a value the object names (a ModelApproval's spec.modelDeployment)
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], Obj] = {}
        self._index: defaultdict[tuple[str, str], dict[str, Obj]] = defaultdict(dict)
        self._tombstones: OrderedDict[str, float] = OrderedDict()  # uid -> when deleted (monotonic)
        self._gauge = CACHE_OBJECTS.labels(kind.kind)

    def __len__(self) -> int:
        return len(self._objects)

    def _indexed(self, obj: Obj) -> tuple[str, str] | None:
        if self._index_of is not None:
            value = self._index_of(obj)
        elif self._label is None:
            return None
        else:
            value = (obj["metadata"].get("labels") or {}).get(self._label)
        return (obj["metadata"].get("namespace", ""), value) if value else None

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def by_index(self, namespace: str, value: str) -> dict[str, Obj]:
        with self._lock:
            return dict(self._index.get((namespace, value), {}))

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._objects)

    def put(self, obj: Obj, *, only_if_newer: bool = False) -> tuple[bool, Obj | None]:
        """Store (replacing): (stored, the object it replaced). With ``only_if_newer``, an object
        older than the stored one, or one that was deleted, is not stored."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self._lock:
            old = self._objects.get(key)
            if only_if_newer and (not newer(obj, old) or meta.get("uid") in self._tombstones):
                return False, old
            self._put(key, obj, old)
            return True, old

    def remove(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._remove((namespace, name))

    def replace(self, objects: list[Obj], namespace: str | None, version: str) -> list[Obj]:
        """A fresh list of ``namespace`` (None: all) at resourceVersion ``version``: store it and
        return the objects that went away. Entries newer than the list (a write-through that
        answered while the list was on its way) are kept."""
        listed = int(version) if version.isdigit() else None
        fresh = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects}
        with self._lock:
            gone = [self._objects[k] for k in list(self._objects)
                    if (namespace is None or k[0] == namespace) and k not in fresh
                    and not (listed is not None and (_rv(self._objects[k]) or 0) > listed)]
            for obj in gone:
                self._remove((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
            for obj in objects:
                key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                old = self._objects.get(key)
                if newer(obj, old):
                    self._put(key, obj, old)
        return gone

    def _put(self, key: tuple[str, str], obj: Obj, old: Obj | None) -> None:
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        at = self._indexed(obj)
        if at is not None:
            self._index[at][key[1]] = obj
        self._gauge.set(len(self._objects))

    def _remove(self, key: tuple[str, str]) -> Obj | None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._gauge.set(len(self._objects))
            self._unindex(key, old)
            uid = old["metadata"].get("uid")
            now = time.monotonic()
            if uid:
                self._tombstones[uid] = now
            while self._tombstones and next(iter(self._tombstones.values())) < now - self.TOMBSTONE_SECONDS:
                self._tombstones.popitem(last=False)
        return old

    def _unindex(self, key: tuple[str, str], old: Obj) -> None:
        at = self._indexed(old)
        if at is not None:
            bucket = self._index.get(at)
            if bucket is not None:
                bucket.pop(key[1], None)
                if not bucket:
                    del self._index[at]


class Informer:
    """List, then watch one kind in one namespace (None: the whole cluster) into a Store."""

    RECHECK_SECONDS = 60.0  # at most this often, a kind that is not served is looked for again (on demand)
    WANTED_SECONDS = 900.0  # and for this long after the last ModelDeployment that needed it asked (the safety resync asks again)

    def __init__(self, kube: Kube, store: Store, namespace: str | None, selector: str, on_change: Callable[[Obj], None],
                 *, watch_seconds: tuple[int, int] = (1800, 3600), on_served: Callable[[], None] | None = None,
                 on_deleted: Callable[[Obj], None] | None = None) -> None:
        self.kube, self.store, self.namespace, self.selector = kube, store, namespace, selector
        self._on_change = on_change
        self._on_served = on_served
        self._on_deleted = on_deleted
        self._watch_seconds = watch_seconds
        self.served: bool | None = None  # None until the first list answered
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._recheck = threading.Event()
        self._last_check = 0.0
        self._wanted_at = -self.WANTED_SECONDS  # nobody has needed it yet
        where = namespace or "all"
        self._thread = threading.Thread(target=self._run, name=f"informer-{store.kind.plural}-{where}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._recheck.set()

    def recheck(self) -> None:
        """Someone needs this kind: if it is not served, look again now (at most once a minute) and
        keep looking once a minute while it is wanted, so that a CRD installed meanwhile is found."""
        self._wanted_at = time.monotonic()
        if self.served is False and time.monotonic() - self._last_check >= self.RECHECK_SECONDS:
            self._recheck.set()

    def _wait_until_needed(self) -> None:
        wanted = time.monotonic() - self._wanted_at < self.WANTED_SECONDS
        self._recheck.wait(self.RECHECK_SECONDS if wanted else None)
        self._recheck.clear()

    def _run(self) -> None:
        backoff = 1.0
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                    if version is None:  # not served: wait until someone needs it
                        self._wait_until_needed()
                        continue
                started = time.monotonic()
                version, events = self._watch(version)  # the server ended the watch: go on from where it was
                if events == 0 and time.monotonic() - started < 1.0:
                    raise ConnectionError("the watch ended at once")  # a proxy closing it: back off, never spin
                backoff = 1.0
            except ApiError as exc:
                if exc.status in (404, 410) and backoff == 1.0:
                    version, backoff = None, 2.0  # too old, or the kind went away: list again at once (once)
                    continue
                version = None
                self._failed(backoff, exc)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:  # noqa: BLE001 - a dropped connection, a bad line: watch again from where it was
                self._failed(backoff, exc)
                backoff = min(backoff * 2, 30.0)

    def _failed(self, seconds: float, exc: Exception) -> None:
        if not self.synced.is_set():  # never block the others: this kind counts as not served until it lists
            log.error("cannot list %s in %s (%s): ModelDeployments that need it wait; retrying", self.store.kind.plural,
                      self.namespace or "all namespaces", exc)
            self.served = False
            self.synced.set()
        else:
            log.warning("watch of %s in %s failed, again in %.0fs: %s", self.store.kind.plural,
                        self.namespace or "all namespaces", seconds, exc)
        self._stop.wait(seconds)

    def _list(self) -> str | None:
        self._last_check = time.monotonic()
        try:
            body = self.kube.list_raw(self.store.kind, self.namespace, self.selector)
        except ApiError as exc:
            if exc.status != 404:
                raise
            self._set_served(False)
            return None
        items = [slim(o, self.store.kind) for o in body.get("items", [])]
        version = str(body.get("metadata", {}).get("resourceVersion", ""))
        gone = self.store.replace(items, self.namespace, version)
        self._set_served(True)
        for obj in gone:
            self._deleted(obj)
        for obj in [*items, *gone]:
            self._on_change(obj)
        return version

    def _set_served(self, served: bool) -> None:
        appeared = served and self.served is False
        if served != self.served:
            log.info("%s %s served: watching %s", self.store.kind.kind, "is" if served else "is not", self.namespace or "all namespaces")
        self.served = served
        self.synced.set()
        if appeared and self._on_served is not None:
            self._on_served()  # a CRD installed since: whoever waited for it looks again

    def _watch(self, version: str) -> tuple[str, int]:
        """Follow one watch until the server ends it: the last resourceVersion seen, and how many events came."""
        timeout = random.randint(*self._watch_seconds)
        events = 0
        for event in self.kube.watch(self.store.kind, self.namespace, self.selector, version, timeout):
            if self._stop.is_set():
                break
            events += 1
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 0), str(obj.get("reason", "")), str(obj.get("message", "")))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue  # only the resourceVersion: nothing changed
            obj = slim(obj, self.store.kind)
            if kind == "DELETED":
                old = self.store.remove(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                self._deleted(obj)
            else:
                _, old = self.store.put(obj, only_if_newer=True)
            self._on_change(obj)
            if old is not None and _parent(old) != _parent(obj):
                self._on_change(old)  # a label moved or removed: the former parent looks again too
        return version, events

    def _deleted(self, obj: Obj) -> None:
        if self._on_deleted is not None:
            self._on_deleted(obj)


def _parent(obj: Obj) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(LABEL_MD)
