"""Headway's own resync: every known ModelDeployment is woken at least once an interval, none after it is gone."""

from __future__ import annotations

import threading
import time
from collections import Counter

from headway.handlers.resync import Resync


def wait_until(what: str, probe, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_each_known_object_is_woken_again_and_a_forgotten_one_never() -> None:
    calls: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    gone: set[tuple[str, str]] = set()
    resync: Resync

    def run(namespace: str, name: str) -> None:  # as the handlers do: touch after each reconcile, forget when gone
        with lock:
            calls[(namespace, name)] += 1
        if (namespace, name) in gone:
            resync.forget(namespace, name)
        else:
            resync.touch(namespace, name)

    resync = Resync(0.05, run, workers=2)
    resync.start()
    try:
        resync.touch("ml", "a")
        resync.touch("ml", "b")
        wait_until("both woken three times", lambda: calls[("ml", "a")] >= 3 and calls[("ml", "b")] >= 3)
        gone.add(("ml", "a"))
        resync.forget("ml", "a")
        assert not resync.knows("ml", "a") and resync.knows("ml", "b")
        with lock:
            after = calls[("ml", "a")]
        wait_until("b woken three more times", lambda: calls[("ml", "b")] >= after + 6)
        assert calls[("ml", "a")] <= after + 1  # at most the wake-up already under way when it was forgotten
    finally:
        resync.stop()


def test_a_failing_reconcile_does_not_stop_the_schedule() -> None:
    calls = Counter[str]()

    def run(namespace: str, name: str) -> None:
        calls[name] += 1
        raise RuntimeError("the API server is down")

    resync = Resync(0.05, run, workers=1)
    resync.start()
    try:
        resync.touch("ml", "a")
        wait_until("retried after failures", lambda: calls["a"] >= 3)
    finally:
        resync.stop()
