"""The work queue: a change is reconciled once, by one worker at a time; a wake-up comes when the
plan asked for it, not on a fixed period; a failure is retried with backoff; a deleted object is
never woken again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from headway.handlers.queue import WorkQueue


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.active: set[tuple[str, str]] = set()
        self.overlaps = 0

    def count(self, key: tuple[str, str]) -> int:
        with self.lock:
            return self.calls[key]


def test_changes_during_a_reconcile_queue_it_once_more_and_never_run_it_twice_at_once() -> None:
    rec = Recorder()
    release = threading.Event()

    def run(namespace: str, name: str) -> None:
        with rec.lock:
            if (namespace, name) in rec.active:
                rec.overlaps += 1
            rec.active.add((namespace, name))
            rec.calls[(namespace, name)] += 1
        release.wait()
        with rec.lock:
            rec.active.discard((namespace, name))

    queue = WorkQueue(run, workers=3)
    queue.start()
    try:
        queue.add("ml", "a")
        wait_until("first reconcile started", lambda: rec.count(("ml", "a")) == 1)
        for _ in range(5):  # five watch events while it runs
            queue.add("ml", "a")
        release.set()
        wait_until("one more reconcile", lambda: rec.count(("ml", "a")) == 2)
        wait_until("queue drained", lambda: queue.depth() == 0)
        assert rec.overlaps == 0
    finally:
        release.set()
        queue.stop()
    assert rec.count(("ml", "a")) == 2  # the five events were folded into one reconcile


def test_a_wake_up_replaces_the_previous_one_and_nothing_runs_without_one() -> None:
    rec = Recorder()
    now = [0.0]
    queue = WorkQueue(lambda ns, n: rec.calls.update([(ns, n)]), workers=1, clock=lambda: now[0], safety=600)
    queue.start()
    try:
        queue.add("ml", "a")
        wait_until("first reconcile", lambda: rec.count(("ml", "a")) == 1)
        queue.schedule("ml", "a", 30.0)
        queue.schedule("ml", "a", 5.0)  # the plan's clock changed: the later wake-up is replaced
        next_wake = queue.next_wake("ml", "a")
        assert next_wake is not None and 4.9 < next_wake <= 5.0
        now[0] = 4.0
        with queue._cond:
            queue._cond.notify_all()
        time.sleep(0.05)  # nothing may run before its time: give the timer thread a chance to misbehave
        assert rec.count(("ml", "a")) == 1
        now[0] = 5.0
        with queue._cond:
            queue._cond.notify_all()
        wait_until("woken at 5 s", lambda: rec.count(("ml", "a")) == 2)
        assert queue.next_wake("ml", "a") is None  # the 30 s wake-up was superseded
    finally:
        queue.stop()


def test_the_safety_resync_is_spread_over_half_to_all_of_its_interval() -> None:
    queue = WorkQueue(lambda ns, n: None, workers=1, clock=lambda: 0.0, safety=600)
    for i in range(50):
        queue.add("ml", f"m{i}")
        queue.schedule("ml", f"m{i}", None)
    wakes = [queue.next_wake("ml", f"m{i}") or 0.0 for i in range(50)]
    assert all(300 <= w <= 600 for w in wakes)
    assert max(wakes) - min(wakes) > 60  # not all at once


def test_a_failing_reconcile_is_retried_with_backoff_and_a_forgotten_one_never_again() -> None:
    rec = Recorder()

    def run(namespace: str, name: str) -> None:
        with rec.lock:
            rec.calls[(namespace, name)] += 1
        raise RuntimeError("the API server is down")

    queue = WorkQueue(run, workers=1)
    queue.start()
    try:
        queue.add("ml", "a")
        wait_until("retried once (after 1 s)", lambda: rec.count(("ml", "a")) >= 2)
        # The second failure waits 2 s: doubling (the first waited 1 s).
        wait_until("the second backoff", lambda: (queue.next_wake("ml", "a") or 0.0) > 1.0)
        assert (queue.next_wake("ml", "a") or 0.0) <= 2.0
        queue.forget("ml", "a")
        assert queue.next_wake("ml", "a") is None and not queue.knows("ml", "a")
        queue.schedule("ml", "a", 0.0)  # a late schedule of a deleted object is ignored
        assert queue.next_wake("ml", "a") is None
    finally:
        queue.stop()
