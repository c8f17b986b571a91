"""Measurements run beside the reconciles: a slow Prometheus never holds up another decision."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from headway.metrics.measurer import Measurer


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_hung_prometheus_delays_only_its_own_verdict_and_times_out_as_an_error() -> None:
    woken: list[tuple[str, str]] = []
    hang = threading.Event()
    measurer: Measurer[str] = Measurer(woken.append, workers=2, timeout=0.5)
    try:
        started = time.monotonic()
        assert measurer.want(("ml", "slow"), "window-1", lambda: (hang.wait(30), "late answer")[1], lambda: "error: no answer")
        assert time.monotonic() - started < 10  # the caller (a reconcile) does not wait for the 30 s hang
        assert measurer.want(("ml", "fast"), "window-1", lambda: "answer", lambda: "error: no answer")
        wait_until("the fast one answered", lambda: measurer.latest(("ml", "fast")) == "answer")
        assert measurer.running(("ml", "slow"))
        wait_until("the slow one timed out", lambda: measurer.latest(("ml", "slow")) == "error: no answer")
        assert ("ml", "fast") in woken and ("ml", "slow") in woken
        hang.set()
        time.sleep(0.05)  # the hung fetch's late answer arrives now and must be dropped
        assert measurer.latest(("ml", "slow")) == "error: no answer"
    finally:
        hang.set()
        measurer.stop()


def test_the_same_request_is_measured_once_and_a_new_one_replaces_the_answer() -> None:
    calls: list[str] = []
    measurer: Measurer[str] = Measurer(lambda key: None, workers=1, timeout=5)
    try:
        def fetch(window: str) -> Callable[[], str]:
            return lambda: (calls.append(window), f"answer for {window}")[1]

        assert measurer.want(("ml", "a"), "w1", fetch("w1"), lambda: "timeout")
        wait_until("answered", lambda: measurer.latest(("ml", "a"), "w1") is not None)
        assert not measurer.want(("ml", "a"), "w1", fetch("w1"), lambda: "timeout")  # answered already: kept
        assert measurer.latest(("ml", "a"), "w2") is None  # an answer to another request is not this one's
        assert measurer.want(("ml", "a"), "w2", fetch("w2"), lambda: "timeout")
        wait_until("new answer", lambda: measurer.latest(("ml", "a")) == "answer for w2")
        assert calls == ["w1", "w2"]
        measurer.forget(("ml", "a"))
        assert measurer.latest(("ml", "a")) is None
    finally:
        measurer.stop()
