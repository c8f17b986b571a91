"""A periodic safety resync of every ModelDeployment, without a finalizer on any of them.

kopf's timers (and daemons) put kopf's finalizer on every object they run for, so that
they can be stopped before the object goes: with the operator down or uninstalled,
`kubectl delete md` then blocks and the namespace stays Terminating. Headway needs no
cleanup outside the owner graph (garbage collection removes the children), so it keeps
its own schedule instead: every ModelDeployment seen by a watch event is woken at most
``interval`` seconds after it was last reconciled; a reconcile caused by an event pushes
its wake-up back; a deleted one is forgotten. First wake-ups are spread over the interval
so that a restart does not reconcile the whole fleet at once.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name


class Resync:
    def __init__(self, interval: float, run: Callable[[str, str], None], *, workers: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._run = run
        self._clock = clock
        self._due: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="headway-resync")
        self._thread = threading.Thread(target=self._loop, name="headway-resync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def touch(self, namespace: str, name: str) -> None:
        """It was just reconciled: wake it again one interval from now (spread on first sight)."""
        key = (namespace, name)
        with self._cond:
            first = key not in self._due
            due = self._clock() + self.interval * (random.uniform(0.5, 1.0) if first else 1.0)
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cond.notify_all()

    def forget(self, namespace: str, name: str) -> None:
        with self._cond:
            self._due.pop((namespace, name), None)

    def knows(self, namespace: str, name: str) -> bool:
        with self._cond:
            return (namespace, name) in self._due

    def next_due(self, namespace: str, name: str) -> float | None:
        with self._cond:
            return self._due.get((namespace, name))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    # Drop heap entries superseded by a later touch or a forget.
                    while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                        heapq.heappop(self._heap)
                    wait = self._heap[0][0] - self._clock() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                if self._stopped:
                    return
                due, key = heapq.heappop(self._heap)
                # Until the reconcile touches it again, it is due one interval later (a failed one retries then).
                self._due[key] = due + self.interval
                heapq.heappush(self._heap, (due + self.interval, key))
            self._pool.submit(self._safe_run, key)

    def _safe_run(self, key: Key) -> None:
        try:
            self._run(*key)
        except Exception:  # noqa: BLE001 - one object's failure must not stop the schedule
            log.exception("resync of %s/%s failed", *key)
