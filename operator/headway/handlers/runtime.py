"""The operator's moving parts, wired once at startup: caches, work queue, measurements.

- ``Cache`` (k8s/cache.py): the ModelDeployments as kopf's watch delivers them, and watch
  caches of every child kind. A child's change queues its ModelDeployment.
- ``WorkQueue`` (handlers/queue.py): one reconcile per key at a time; wake-ups exactly when a
  plan's clock needs them; a safety resync every ``--resync-seconds`` (default 10 minutes,
  spread), which reads only the caches.
- ``Measurer`` (metrics/measurer.py): metric queries on their own threads with a timeout; an
  answer queues its ModelDeployment.
- ``Notifier`` (notify.py; only with notification sinks): deliveries on their own threads, with
  retries; a finished one queues its ModelDeployment, whose next status write records it.
- ``Peering`` (k8s/peering.py; only with ``--peering``): while kopf's peering pauses this replica,
  nothing is reconciled and every ModelDeployment's pending work is dropped (kopf stops
  delivering them, so the cached objects go stale); when it resumes, they are listed afresh
  and every one is queued (``standing_by``).

``run(namespace, name)`` is the one thing workers do: reconcile from the caches, then schedule
the next look the plan asked for.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from headway.config import OperatorConfig
from headway.handlers.queue import WorkQueue
from headway.k8s.apply import forget_applied
from headway.k8s.cache import Cache
from headway.k8s.client import ApiError, Kube
from headway.k8s.informer import slim
from headway.k8s.peering import Peering
from headway.k8s.records import ROLLOUT_RECORD
from headway.metrics.measurer import Measurer
from headway.notify import build_notifier
from headway.planning.measure import Measurement
from headway.planning.monitoring import MonitorResult
from headway.reconciler import CHILD_KINDS, MODEL_APPROVAL, MODEL_DEPLOYMENT, Conflict, forget, reconcile
from headway.telemetry import RECONCILE_SECONDS, RECONCILES, forget_model

log = logging.getLogger("headway")
MIN_WAKE_SECONDS = 1.0


class Runtime:
    def __init__(self, kube: Kube, config: OperatorConfig, *, workers: int = 4) -> None:
        self.kube, self.config = kube, config
        self.queue = WorkQueue(self.run, workers=workers, safety=config.resync_seconds, ready=self._synced)
        # RolloutRecords are watched like children (labelled with their ModelDeployment), never pruned as such.
        records = (ROLLOUT_RECORD,) if config.rollout_records > 0 else ()
        self.cache = Cache(kube, MODEL_DEPLOYMENT, CHILD_KINDS + records, config.namespaces, self.queue.add, on_deleted=forget_applied,
                           approval_kind=MODEL_APPROVAL)
        self.measurer: Measurer[Measurement] = Measurer(lambda key: self.queue.add(*key), workers=workers,
                                                        timeout=config.measure_timeout_seconds)
        # spec.monitoring's counts (drift, prediction comparison): their own slots, the same wake-up.
        self.monitor: Measurer[MonitorResult] = Measurer(lambda key: self.queue.add(*key), workers=2,
                                                         timeout=config.measure_timeout_seconds)
        # Notifications (none without sinks): a finished delivery wakes its ModelDeployment, whose next write records it.
        self.notifier = build_notifier(kube, config.notifications, lambda key: self.queue.add(*key))
        self._ready = False
        self._ready_lock = threading.Lock()
        self.peering = (Peering(kube, config.peering, config.identity, config.priority, config.namespaces, self._peering_changed)
                        if config.peering else None)
        self._standby: str | None = None  # why this replica stands by (None: active)
        self._standby_known = False
        self._standby_lock = threading.Lock()

    def start(self) -> None:
        if self.peering is not None:
            self.peering.start()
        self.cache.start()
        self.queue.start()

    def stop(self) -> None:
        if self.peering is not None:
            self.peering.stop()
        self.queue.stop()
        self.measurer.stop()
        self.monitor.stop()
        if self.notifier is not None:
            self.notifier.stop()
        self.cache.stop()

    def _synced(self) -> bool:
        """Workers start once every child cache has answered its first list (else a reconcile
        would see no children and write them all again)."""
        if not self._ready and self.cache.wait_synced(0.5):
            with self._ready_lock:
                if self._ready:
                    return True
                self._ready = True
            log.info("watch caches synced: %s", ", ".join(f"{k}={n}" for k, n in sorted(self.cache.sizes().items())))
        return self._ready

    def _peering_changed(self) -> None:
        self.standing_by()

    def standing_by(self) -> str | None:
        """Why kopf's peering has paused this replica (None: it is active; always None without peering).

        Worked out and acted on under one lock, so that a worker and the peering watch never act on
        opposite views. Standing by: every ModelDeployment's pending work is dropped (wake-ups,
        measurements, notifications; the cache keeps the objects). Resuming: the ModelDeployments
        are listed afresh (kopf lists them too, but its events may come after ours, and a
        reconcile must not act on a spec that changed while this replica stood by), then queued."""
        if self.peering is None:
            return None
        with self._standby_lock:
            reason = self.peering.standby_reason()
            if self._standby_known and (reason is None) == (self._standby is None):
                self._standby = reason
                return reason
            self._standby, self._standby_known = reason, True
            if reason is not None:
                log.info("standing by: %s; kopf has paused this replica, which reconciles nothing until they are gone", reason)
                for namespace, name in self.cache.models.keys():
                    self._drop_work(namespace, name)
            else:
                log.info("active: no live peer in %s %s takes precedence over %s (priority %d); reconciling",
                         self.peering.kind.kind, self.peering.name, self.peering.identity, self.peering.priority)
                try:
                    self._list_models()
                finally:  # whatever the list did, every ModelDeployment is looked at again
                    for namespace, name in self.cache.models.keys():
                        self.queue.add(namespace, name)
            return reason

    def _list_models(self) -> None:
        """The ModelDeployments as the API server has them now (those deleted meanwhile are forgotten)."""
        for namespace in self.config.namespaces or (None,):
            try:
                body = self.kube.list_raw(MODEL_DEPLOYMENT, namespace)
            except Exception as exc:  # noqa: BLE001 - an API error or a broken connection: kopf's own list on resume brings them too
                log.warning("could not list ModelDeployments in %s on resuming: %s", namespace or "all namespaces", exc)
                continue
            items = [slim(item, MODEL_DEPLOYMENT) for item in body.get("items", [])]
            for obj in self.cache.models.replace(items, namespace, str(body.get("metadata", {}).get("resourceVersion", ""))):
                self.gone(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def model_event(self, type_: str, body: dict[str, Any]) -> None:
        """kopf's watch of ModelDeployments: keep the cache current and queue the object."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace or not name:
            return
        if type_ == "DELETED":
            self.gone(namespace, name)
            return
        self.cache.put_model(body)
        self.queue.add(namespace, name)

    def gone(self, namespace: str, name: str) -> None:
        self.cache.remove_model(namespace, name)
        self._drop_work(namespace, name)

    def _drop_work(self, namespace: str, name: str) -> None:
        """Forget what this replica does for a ModelDeployment (its object stays in the cache)."""
        self.queue.forget(namespace, name)
        self.measurer.forget((namespace, name))
        self.monitor.forget((namespace, name))
        if self.notifier is not None:
            self.notifier.forget((namespace, name))
        forget(namespace, name)
        forget_model(namespace, name)  # its weights, SLO gauges, rollbacks, cost and drift series

    def run(self, namespace: str, name: str) -> None:
        """Reconcile one ModelDeployment and schedule its next look (nothing while standing by)."""
        if self.standing_by() is not None:
            return  # queued again when this replica resumes
        outcome = "ok"
        now = datetime.now(timezone.utc)
        with RECONCILE_SECONDS.time():
            try:
                result = reconcile(self.kube, namespace, name, now=now, prometheus_url=self.config.prometheus_url,
                                   allowed_prometheus_urls=self.config.allowed_prometheus_urls, prices=self.config.prices,
                                   reader=self.cache, measurer=self.measurer, monitor=self.monitor, notifier=self.notifier,
                                   rollout_records=self.config.rollout_records)
            except Conflict:
                RECONCILES.labels("conflict").inc()
                self.queue.retry(namespace, name)  # its watch event (the newer object) usually queues it sooner
                return
            except ApiError as exc:
                RECONCILES.labels("error").inc()
                log.warning("reconcile of %s/%s failed, retrying with backoff: %s", namespace, name, exc)
                self.queue.retry(namespace, name)
                return
        if result is None:  # gone or being deleted
            self.gone(namespace, name)
            return
        if not self.queue.knows(namespace, name):  # deleted while it ran: what this reconcile exported goes too
            forget_model(namespace, name)
        RECONCILES.labels(outcome).inc()
        self.queue.succeeded(namespace, name)
        wake_at = result.wake_at
        # A time already past means "as soon as possible", but never a busy loop: a measurement
        # in flight wakes it on its own when it answers.
        self.queue.schedule(namespace, name, None if wake_at is None else max(MIN_WAKE_SECONDS, (wake_at - now).total_seconds()))
