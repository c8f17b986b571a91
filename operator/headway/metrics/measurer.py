"""Measurements off the reconcile path.

A reconcile never waits for Prometheus. When a plan needs a measurement (an analysis is
due), the reconciler asks ``Measurer.want(key, request, fetch)``: the fetch runs on a small
pool of threads and, when it ends (answer, error or timeout), its result is kept for the key
and ``on_done(key)`` wakes that ModelDeployment, whose next plan reads the result as part of
its observation. So a slow or dead Prometheus delays only the verdicts that depend on it; an
abort, a rollback on an earlier verdict, a step of another ModelDeployment go on at once.

- One measurement per key at a time; asking again for the same request while it runs, or
  after it answered, does nothing (the answer is kept until a different request is made).
- ``timeout`` bounds how long a result may take: a fetch still running after it is reported
  as an error ("no answer within N s", Inconclusive for the planner, never a Pass); its
  thread's late answer is dropped. The Prometheus client has its own request timeout too.
- ``forget(key)`` drops a deleted ModelDeployment's results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from headway.telemetry import MEASUREMENTS

log = logging.getLogger(__name__)

Key = tuple[str, str]
R = TypeVar("R")


@dataclass
class _Slot(Generic[R]):
    request: object
    started: float
    result: R | None = None
    done: bool = False


class Measurer(Generic[R]):
    def __init__(self, on_done: Callable[[Key], None], *, workers: int = 4, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_done = on_done
        self.timeout = timeout
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="headway-measure")
        self._lock = threading.Lock()
        self._slots: dict[Key, _Slot[R]] = {}
        self._timers: dict[Key, threading.Timer] = {}

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def latest(self, key: Key, request: object | None = None) -> R | None:
        """The result kept for the key (only if it answers ``request``, when given)."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or not slot.done or (request is not None and slot.request != request):
                return None
            return slot.result

    def running(self, key: Key) -> bool:
        with self._lock:
            slot = self._slots.get(key)
            return slot is not None and not slot.done

    def want(self, key: Key, request: object, fetch: Callable[[], R], on_timeout: Callable[[], R]) -> bool:
        """Start measuring ``request`` for ``key`` unless it runs or has answered; True if started."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and slot.request == request:
                return False
            new: _Slot[R] = _Slot(request, self._clock())
            self._slots[key] = new
            timer = threading.Timer(self.timeout, self._expire, args=(key, new, on_timeout))
            timer.daemon = True
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = timer
        future = self._pool.submit(fetch)
        future.add_done_callback(lambda f: self._finish(key, new, f))
        timer.start()
        MEASUREMENTS.labels("started").inc()
        return True

    def forget(self, key: Key) -> None:
        with self._lock:
            self._slots.pop(key, None)
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _settle(self, key: Key, slot: _Slot[R], result: R, outcome: str) -> None:
        with self._lock:
            if self._slots.get(key) is not slot or slot.done:
                return  # superseded, forgotten, or already timed out
            slot.result, slot.done = result, True
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        MEASUREMENTS.labels(outcome).inc()
        self._on_done(key)

    def _finish(self, key: Key, slot: _Slot[R], future: Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning("measurement for %s/%s failed: %s", *key, exc)
            return  # fetch functions turn expected failures into results; the timeout reports this one
        self._settle(key, slot, future.result(), "answered")

    def _expire(self, key: Key, slot: _Slot[R], on_timeout: Callable[[], R]) -> None:
        log.warning("measurement for %s/%s gave no answer within %.0f s", key[0], key[1], self.timeout)
        self._settle(key, slot, on_timeout(), "timeout")
