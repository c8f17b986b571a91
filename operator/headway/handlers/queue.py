"""The work queue: which ModelDeployment to reconcile next, and when to look at one again.

As controller-runtime's workqueue: a key (namespace, name) is queued at most once, is
processed by one worker at a time (a change arriving meanwhile queues it again for after),
and can be scheduled for later. Nothing is reconciled on a fixed period:

- a change to a ModelDeployment or one of its children (watch events) queues it at once;
- each reconcile says when its plan's clock next needs a look (a step's end, the next
  analysis, the end of a bake or a drain) and ``schedule()`` replaces the key's wake-up with
  that time, or with the safety resync (``safety`` seconds, spread between half and all of it,
  so that the fleet does not wake together) when nothing is due sooner;
- a reconcile that failed is retried with a per-key exponential backoff (``retry()``).

Without kopf's timers there is no finalizer on any ModelDeployment: deleting one never waits
for the operator. A key that is gone is ``forget()``-ed.

Exported as controller-runtime's workqueue metrics are (``workqueue_depth``,
``workqueue_queue_duration_seconds``, ``workqueue_retries_total``): ``headway_queue_depth``
(keys waiting for a worker), ``headway_queue_wait_seconds`` (from being queued to being taken,
on the queue's clock) and ``headway_queue_retries_total``. Keys waiting for a scheduled wake-up
are not queued yet: a steady fleet has a depth of 0.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from headway.telemetry import QUEUE_DEPTH, QUEUE_RETRIES, QUEUE_WAIT_SECONDS

log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name


class WorkQueue:
    def __init__(self, run: Callable[[str, str], None], *, workers: int = 4, safety: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, ready: Callable[[], bool] = lambda: True) -> None:
        self._run = run
        self._clock = clock
        self._ready_check = ready  # workers wait until this is True (the caches have synced)
        self.safety = safety
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()  # queued again while being processed
        self._since: dict[Key, float] = {}  # when each queued key was queued (headway_queue_wait_seconds)
        self._wake: dict[Key, float] = {}  # the one scheduled wake-up per key
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._failures: dict[Key, int] = {}
        self._known: set[Key] = set()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"headway-worker-{i}", daemon=True) for i in range(workers)]
        self._timer = threading.Thread(target=self._timers, name="headway-wakeups", daemon=True)

    def start(self) -> None:
        self._timer.start()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            QUEUE_DEPTH.dec(len(self._queue))  # this queue's keys are no longer waiting (the gauge sums queues)
            self._queue.clear()
            self._queued.clear()
            self._since.clear()
            self._cond.notify_all()
        for thread in (self._timer, *self._threads):
            thread.join(timeout=5)

    def add(self, namespace: str, name: str) -> None:
        """Reconcile it as soon as a worker is free (once, however often it is added meanwhile)."""
        key = (namespace, name)
        with self._cond:
            self._known.add(key)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._enqueue(key)

    def _enqueue(self, key: Key) -> None:
        """Append a key that is not queued (the lock held)."""
        self._queued.add(key)
        self._queue.append(key)
        self._since[key] = self._clock()
        QUEUE_DEPTH.inc()
        self._cond.notify_all()

    def schedule(self, namespace: str, name: str, delay: float | None) -> None:
        """Its next look: in ``delay`` seconds, or at the safety resync when None (replaces the previous one)."""
        key = (namespace, name)
        if delay is None:
            delay = self.safety * random.uniform(0.5, 1.0)
        with self._cond:
            if key not in self._known:
                return
            due = self._clock() + max(0.0, delay)
            self._wake[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            if len(self._heap) > 2 * len(self._wake) + 64:  # superseded entries far in the future: drop them now
                self._heap = [(when, next(self._seq), k) for k, when in self._wake.items()]
                heapq.heapify(self._heap)
            self._cond.notify_all()

    def retry(self, namespace: str, name: str) -> None:
        """It failed: look again after a backoff that doubles per failure (1 s to 5 min)."""
        key = (namespace, name)
        QUEUE_RETRIES.inc()
        with self._cond:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
        self.schedule(namespace, name, min(300.0, 2.0 ** (failures - 1)))

    def succeeded(self, namespace: str, name: str) -> None:
        with self._cond:
            self._failures.pop((namespace, name), None)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._cond:
            self._known.discard(key)
            self._wake.pop(key, None)
            self._failures.pop(key, None)
            self._dirty.discard(key)

    def knows(self, namespace: str, name: str) -> bool:
        with self._cond:
            return (namespace, name) in self._known

    def next_wake(self, namespace: str, name: str) -> float | None:
        """Seconds until its scheduled wake-up (None: none scheduled)."""
        with self._cond:
            due = self._wake.get((namespace, name))
        return None if due is None else due - self._clock()

    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def _timers(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    while self._heap and self._wake.get(self._heap[0][2]) != self._heap[0][0]:
                        heapq.heappop(self._heap)  # superseded by a later schedule() or a forget()
                    wait = self._heap[0][0] - self._clock() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                if self._stopped:
                    return
                _, _, key = heapq.heappop(self._heap)
                del self._wake[key]
            self.add(*key)

    def _next(self) -> Key | None:
        with self._cond:
            while not self._stopped and not self._queue:
                self._cond.wait()
            if self._stopped:
                return None
            key = self._queue.popleft()
            self._queued.discard(key)
            self._processing.add(key)
            QUEUE_DEPTH.dec()
            QUEUE_WAIT_SECONDS.observe(max(0.0, self._clock() - self._since.pop(key)))
            return key

    def _done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key in self._known and key not in self._queued:
                    self._enqueue(key)

    def _work(self) -> None:
        while not self._ready_check():
            with self._cond:
                if self._stopped:
                    return
                self._cond.wait(timeout=0.1)
        while (key := self._next()) is not None:
            try:
                self._run(*key)
            except Exception:  # noqa: BLE001 - one object's failure must not stop the workers
                log.exception("reconcile of %s/%s failed", *key)
                self.retry(*key)
            finally:
                self._done(key)
