"""PrometheusSource.fetch against a real Prometheus scraping real BentoML servers: slices.

Two candidate "pods" (one healthy, one answering 30% of calls with a 500) and their
per-pod, per-interval counts as the verdicts receive them (``VariantData.slices``): on
the grid anchored at the window's start, summing to the window's totals, the errors on
the pod that made them.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from headway.api.analysis_spec import SeriesLabels, Slo
from headway.metrics.base import SeriesQuery
from headway.metrics.prometheus import PrometheusSource
from headway.planning.verdicts import assess
from headway.sandbox.processes import BentoServer, Prometheus

pytestmark = [pytest.mark.realparts, pytest.mark.timeout(360)]
# Waits on Prometheus are bounded generously: on a loaded two-core CI machine (the sandbox's servers
# starting beside this test), a BentoML server's /metrics missed the 1 s scrape timeout for 30 s.
SCRAPES_SECONDS = 120

NAMESPACE, MD = "slices", "md"
SLOS = (Slo.model_validate({"errorRate": {"max": 0.05}}), Slo.model_validate({"latency": {"percentile": 99, "max": "250ms"}}))


def labels(variant: str, pod: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "modeldeployment": MD, "variant": variant, "revision": f"rev-{variant}", "pod": pod}


@pytest.fixture(scope="module")
def pods(prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BentoServer, BentoServer]]:
    base = tmp_path_factory.mktemp("slices")
    good = BentoServer({}, workdir=base / "good", label="good").spawn()
    bad = BentoServer({"HEADWAY_FAULT_ERROR_RATE": "0.3", "HEADWAY_FAULT_SEED": "3"}, workdir=base / "bad", label="bad").spawn()
    prometheus.set_targets([(good.host_port, labels("candidate", "md-candidate-a")),
                            (bad.host_port, labels("candidate", "md-candidate-b"))], group=NAMESPACE)
    try:
        good.wait_ready()
        bad.wait_ready()
        prometheus.wait_for_targets([good.host_port, bad.host_port], timeout=30)
        yield good, bad
    finally:
        good.stop()
        bad.stop()
        prometheus.clear_targets(NAMESPACE)


def send(server: BentoServer, n: int) -> list[int]:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda i: server.score([i % 5 / 2.0, 1.0]).status_code, range(n)))


def test_fetch_breaks_the_window_down_per_pod_and_interval(prometheus: Prometheus, pods: tuple[BentoServer, BentoServer]) -> None:
    good, bad = pods
    send(good, 2), send(bad, 2)  # the series exist (BentoML creates the 500 series at 0) ...
    sel = f'namespace="{NAMESPACE}",modeldeployment="{MD}",variant="candidate",endpoint="/score"'
    prometheus.wait_value(f"min(count_over_time(bentoml_service_request_total{{{sel}}}[1m]))", lambda v: v >= 3, timeout=SCRAPES_SECONDS)
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)  # ... and were scraped before the window
    time.sleep(max(0.0, (start - datetime.now(timezone.utc)).total_seconds()))
    sent_bad: list[int] = []
    for _ in range(4):  # ~8 s of traffic on both pods
        began = time.monotonic()
        send(good, 20)
        sent_bad += send(bad, 20)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - began)))
    scored = sum(v for (endpoint, _), v in bad.request_counts().items() if endpoint == "/score")
    prometheus.wait_value(f'sum(bentoml_service_request_total{{{sel},pod="md-candidate-b"}})', lambda v: v == scored, timeout=SCRAPES_SECONDS)
    time.sleep(2.5)  # and a grid point after that scrape
    end = datetime.now(timezone.utc)
    source = PrometheusSource(prometheus.url)
    data = source.fetch(SeriesQuery(NAMESPACE, MD, "candidate", start, end, SLOS, SeriesLabels(), "2s"))

    assert data.requests.total is not None and data.requests.errors is not None
    assert {s.pod for s in data.slices} == {"md-candidate-a", "md-candidate-b"}
    starts = sorted({s.start for s in data.slices})
    assert starts and all(abs(x / 2.0 - round(x / 2.0)) < 0.01 for x in starts), starts  # the 2 s grid from the start
    assert starts[-1] + 2.0 <= (end - start).total_seconds() + 1.0  # complete intervals only
    total = sum(s.requests.total or 0.0 for s in data.slices)
    assert 0.6 * data.requests.total <= total <= 1.4 * data.requests.total, (total, data.requests.total)
    per_pod = {pod: (sum(s.requests.errors or 0.0 for s in data.slices if s.pod == pod),
                     sum(s.requests.total or 0.0 for s in data.slices if s.pod == pod)) for pod in ("md-candidate-a", "md-candidate-b")}
    # Differences of the counters: every request of the window counted once, on its own pod.
    assert per_pod["md-candidate-a"] == (0.0, 80.0)
    assert per_pod["md-candidate-b"] == (float(sent_bad.count(500)), 80.0)
    assert sent_bad.count(500) > 0
    with_hist = [s for s in data.slices if s.latency is not None]
    assert with_hist and all(s.latency is not None and s.latency.buckets[-1][0] == float("inf") for s in with_hist)

    verdicts = assess(list(SLOS), data, None, 20)
    error_rate = verdicts[0]
    assert error_rate.dispersion is not None and error_rate.dispersion >= 1.0  # errors on one pod only: overdispersed
    assert "pod-intervals" in error_rate.reason
    evidence = error_rate.to_evidence()
    assert evidence["dispersion"] == pytest.approx(error_rate.dispersion, rel=1e-5)


def test_a_window_shorter_than_one_interval_has_no_slices(prometheus: Prometheus, pods: tuple[BentoServer, BentoServer]) -> None:
    end = datetime.now(timezone.utc)
    data = PrometheusSource(prometheus.url).fetch(
        SeriesQuery(NAMESPACE, MD, "candidate", end - timedelta(seconds=1), end, SLOS[:1], SeriesLabels(), "2s"))
    assert data.slices == ()
