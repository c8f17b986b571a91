"""What a reconcile reads: the ModelDeployment, its children, which kinds the cluster serves.

Two readers with one interface (``Reader``):

- ``Cache``, the operator's: watch caches (k8s/informer.py) for every child kind, and the
  ModelDeployments as kopf's watch delivers them (``put_model``). A reconcile in steady state
  reads only memory and sends no request. After its own writes the reconciler stores what the
  API server answered (``put``/``put_model``: only if not older than what the watch already
  delivered), so the next reconcile does not act on the state before its own write.
- ``LiveReader``, for tools and in-process tests: every read is an API request.

Decisions stay safe on a cache that lags: status is written with the resourceVersion it was
decided from (a stale read gets 409 and decides again), and children follow status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from headway.k8s.client import Kind, Kube
from headway.k8s.informer import Informer, Obj, Store, slim
from headway.planning.naming import LABEL_MD, MANAGED_BY, Owner

LiveChildren = dict[str, dict[str, dict[str, Any]]]  # kind -> name -> object
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


def kind_key(kind: Kind) -> str:
    """How served kinds are named to the pure layers: "group/Kind" ("apps/Deployment", "/Service")."""
    return f"{kind.group}/{kind.kind}"


class Reader(Protocol):
    def model(self, namespace: str, name: str) -> Obj | None: ...

    def children(self, owner: Owner, kinds: tuple[Kind, ...]) -> LiveChildren: ...

    def serves(self, kind: Kind) -> bool: ...

    def need(self, kind: Kind) -> None:
        """A ModelDeployment needs this kind, which is not served: look again (rate limited)."""

    def put_model(self, obj: Obj) -> None:
        """What the API server answered to a write of the ModelDeployment."""

    def put(self, kind: Kind, obj: Obj) -> None:
        """What the API server answered to a write of a child."""

    def remove(self, kind: Kind, namespace: str, name: str) -> None:
        """A child was deleted."""

    def approvals(self, namespace: str, name: str) -> list[Obj]:
        """The ModelApprovals naming this ModelDeployment (spec.governance); [] when their CRD is not served."""


class LiveReader:
    """Reads straight from the API server (one request per read)."""

    def __init__(self, kube: Kube, model_kind: Kind, approval_kind: Kind | None = None) -> None:
        self.kube, self.model_kind, self.approval_kind = kube, model_kind, approval_kind

    def model(self, namespace: str, name: str) -> Obj | None:
        body = self.kube.get(self.model_kind, namespace, name)
        return slim(body, self.model_kind) if body is not None else None

    def children(self, owner: Owner, kinds: tuple[Kind, ...]) -> LiveChildren:
        return {kind.kind: {o["metadata"]["name"]: o for o in self.kube.list(kind, owner.namespace, f"{LABEL_MD}={owner.name}")}
                for kind in kinds if self.kube.serves(kind)}

    def serves(self, kind: Kind) -> bool:
        return self.kube.serves(kind)

    def need(self, kind: Kind) -> None:
        self.kube.forget_discovery()

    def put_model(self, obj: Obj) -> None:
        pass  # nothing kept: the next read asks the server

    def put(self, kind: Kind, obj: Obj) -> None:
        pass

    def remove(self, kind: Kind, namespace: str, name: str) -> None:
        pass

    def approvals(self, namespace: str, name: str) -> list[Obj]:
        if self.approval_kind is None or not self.kube.serves(self.approval_kind):
            return []
        return [o for o in self.kube.list(self.approval_kind, namespace) if approval_target(o) == name]


def approval_target(obj: Obj) -> str | None:
    """The ModelDeployment a ModelApproval names."""
    value = (obj.get("spec") or {}).get("modelDeployment")
    return value if isinstance(value, str) else None


class Cache:
    """Watch caches of the children of every ModelDeployment in the served namespaces."""

    def __init__(self, kube: Kube, model_kind: Kind, kinds: tuple[Kind, ...], namespaces: tuple[str, ...],
                 on_change: Callable[[str, str], None], on_deleted: Callable[[Obj], None] | None = None,
                 approval_kind: Kind | None = None) -> None:
        self.models = Store(model_kind)
        self._on_change = on_change
        self._stores = {k.kind: Store(k, LABEL_MD) for k in kinds}
        self._informers: dict[str, list[Informer]] = {
            k.kind: [Informer(kube, self._stores[k.kind], ns, SELECTOR, self._changed, on_served=self._wake_all,
                              on_deleted=on_deleted)
                     for ns in (namespaces or (None,))]
            for k in kinds
        }
        # ModelApprovals are the approvers' objects (no label of ours): all of them, indexed by the
        # ModelDeployment they name; a new one queues that ModelDeployment.
        self._approvals = Store(approval_kind, index_of=approval_target) if approval_kind is not None else None
        if approval_kind is not None and self._approvals is not None:
            self._informers[approval_kind.kind] = [
                Informer(kube, self._approvals, ns, "", self._approval_changed, on_served=self._wake_all)
                for ns in (namespaces or (None,))]

    def start(self) -> None:
        for informers in self._informers.values():
            for informer in informers:
                informer.start()

    def stop(self) -> None:
        for informers in self._informers.values():
            for informer in informers:
                informer.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Whether every informer answered its first list (served or not) within ``timeout``."""
        return all(i.synced.wait(timeout) for informers in self._informers.values() for i in informers)

    def _changed(self, obj: Obj) -> None:
        meta = obj["metadata"]
        parent = (meta.get("labels") or {}).get(LABEL_MD)
        if parent:
            self._on_change(meta.get("namespace", ""), parent)

    def _approval_changed(self, obj: Obj) -> None:
        target = approval_target(obj)
        if target:
            self._on_change(obj["metadata"].get("namespace", ""), target)

    def _wake_all(self) -> None:
        for namespace, name in self.models.keys():
            self._on_change(namespace, name)

    # Reader
    def model(self, namespace: str, name: str) -> Obj | None:
        return self.models.get(namespace, name)

    def children(self, owner: Owner, kinds: tuple[Kind, ...]) -> LiveChildren:
        return {k.kind: self._stores[k.kind].by_index(owner.namespace, owner.name) for k in kinds if self.serves(k)}

    def approvals(self, namespace: str, name: str) -> list[Obj]:
        if self._approvals is None:
            return []
        return list(self._approvals.by_index(namespace, name).values())

    def serves(self, kind: Kind) -> bool:
        informers = self._informers.get(kind.kind) or []
        return bool(informers) and all(i.served for i in informers)

    def need(self, kind: Kind) -> None:
        for informer in self._informers.get(kind.kind) or []:
            informer.recheck()  # look again (rate limited); the waiters are woken when it appears

    # Writers: what the watch delivered, or what our own writes returned.
    def put_model(self, obj: Obj) -> None:
        self.models.put(slim(obj, self.models.kind), only_if_newer=True)

    def remove_model(self, namespace: str, name: str) -> None:
        self.models.remove(namespace, name)

    def put(self, kind: Kind, obj: Obj) -> None:
        store = self._stores.get(kind.kind)
        if store is not None and obj.get("metadata", {}).get("name"):
            store.put(slim(obj, kind), only_if_newer=True)

    def remove(self, kind: Kind, namespace: str, name: str) -> None:
        store = self._stores.get(kind.kind)
        if store is not None:
            store.remove(namespace, name)

    def sizes(self) -> dict[str, int]:
        sizes = {kind: len(store) for kind, store in self._stores.items()}
        if self._approvals is not None:
            sizes[self._approvals.kind.kind] = len(self._approvals)
        sizes[self.models.kind.kind] = len(self.models)
        return sizes
