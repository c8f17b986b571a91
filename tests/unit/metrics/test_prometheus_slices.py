"""Slices from Prometheus: per pod and interval counts, as differences of the counters on a fixed grid."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from headway.api.analysis_spec import SeriesLabels, Slo
from headway.metrics.base import MetricsError, SeriesQuery
from headway.metrics.prometheus import MAX_SLICES, PrometheusSource, slice_seconds

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
ERRORS = Slo.model_validate({"errorRate": {"max": 0.01}})
P99 = Slo.model_validate({"latency": {"percentile": 99, "max": "250ms"}})


class FakeClient:
    """Instant queries answer 100 requests, 1 error; range queries the counters' values given per pod."""

    def __init__(self, series: dict[str, list[tuple[dict[str, str], list[float | None]]]]) -> None:
        self.series = series  # needle in the query -> [(labels, value at each grid point or None)]
        self.ranges: list[tuple[str, datetime, datetime, str]] = []

    def custom_query(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        value = 1.0 if "5.." in query else 100.0
        if "_bucket" in query:
            return [{"metric": {"le": le}, "value": [params["time"], "100"]} for le in ("0.25", "+Inf")]
        return [{"metric": {}, "value": [params["time"], str(value)]}]

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str,
                           params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.ranges.append((query, start_time, end_time, step))
        origin, dt = round(start_time.timestamp()), float(step)
        for needle, rows in self.series.items():
            if needle in query:
                return [{"metric": labels, "values": [[origin + i * dt, str(v)] for i, v in enumerate(values) if v is not None]}
                        for labels, values in rows]
        return []


def source(client: FakeClient) -> PrometheusSource:
    src = PrometheusSource.__new__(PrometheusSource)
    src.url, src._timeout, src._client = "http://prometheus:9090", 5.0, client  # type: ignore[assignment]
    return src


def query(seconds: float, slos: tuple[Slo, ...] = (ERRORS,), labels: SeriesLabels | None = None, interval: str = "30s") -> SeriesQuery:
    return SeriesQuery("ml", "fraud", "candidate", T0, T0 + timedelta(seconds=seconds), slos, labels or SeriesLabels(), interval)


def test_slices_are_counter_differences_per_pod_on_the_window_grid() -> None:
    client = FakeClient({
        '5.."})': [({"pod": "b"}, [3.0, 3.0, 9.0, 1.0, 1.0])],  # b restarts in the third interval
        "request_total{": [
            ({"pod": "a"}, [1000.0, 1100.0, 1190.0, 1300.0, 1400.0]),
            ({"pod": "b"}, [500.0, 600.0, 700.0, 50.0, 150.0]),
            ({"pod": "c"}, [None, None, 40.0, 140.0, math.nan]),  # a new pod; then a NaN point
        ],
    })
    data = source(client).fetch(query(130))  # 4 whole intervals of 30 s in 130 s
    by_key = {(s.pod, s.start): (s.requests.total, s.requests.errors) for s in data.slices}
    assert by_key == {
        ("a", 0.0): (100.0, 0.0), ("a", 30.0): (90.0, 0.0), ("a", 60.0): (110.0, 0.0), ("a", 90.0): (100.0, 0.0),
        ("b", 0.0): (100.0, 0.0), ("b", 30.0): (100.0, 6.0), ("b", 60.0): (50.0, 1.0), ("b", 90.0): (100.0, 0.0),
        ("c", 30.0): (40.0, 0.0), ("c", 60.0): (100.0, 0.0),
    }
    assert [s.start for s in data.slices] == sorted(s.start for s in data.slices)  # in time order
    (promql, start, end, step), *_ = client.ranges
    assert promql.startswith("sum by (pod) (bentoml_service_request_total{") and "increase" not in promql
    assert (start, end, step) == (T0, T0 + timedelta(seconds=120), "30")  # whole intervals only
    assert data.requests.total == 100.0  # the window's totals are still increase() over the window


def test_latency_slices_and_the_pod_label_from_series_labels() -> None:
    client = FakeClient({
        "_bucket": [({"kubernetes_pod_name": "a", "le": "0.25"}, [90.0, 180.0, 275.0]),
                    ({"kubernetes_pod_name": "a", "le": "+Inf"}, [100.0, 200.0, 300.0])],
        "request_total{": [({"kubernetes_pod_name": "a"}, [100.0, 200.0, 300.0])],
    })
    labels = SeriesLabels(pod="kubernetes_pod_name")
    data = source(client).fetch(query(60, (ERRORS, P99), labels))
    assert [(s.pod, s.start, s.latency.buckets if s.latency else None) for s in data.slices] == [
        ("a", 0.0, ((0.25, 90.0), (math.inf, 100.0))), ("a", 30.0, ((0.25, 95.0), (math.inf, 100.0)))]
    assert all("sum by (kubernetes_pod_name" in q for q, *_ in client.ranges)


@pytest.mark.parametrize("window, interval, step", [
    (3600, 30, 30), (MAX_SLICES * 30, 30, 30), (MAX_SLICES * 30 + 1, 30, 60), (24 * 3600, 30, 120), (24 * 3600 + 30, 30, 240), (10, 0.5, 1),
])
def test_slice_length_bounds_the_points(window: float, interval: float, step: float) -> None:
    assert slice_seconds(window, interval) == step
    assert window / step <= MAX_SLICES


def test_a_long_window_asks_for_at_most_max_slices_points() -> None:
    client = FakeClient({})
    source(client).fetch(query(24 * 3600))
    _, start, end, step = client.ranges[0]
    assert (end - start).total_seconds() / float(step) <= MAX_SLICES


def test_no_whole_interval_no_slices_and_no_range_query() -> None:
    client = FakeClient({})
    assert source(client).fetch(query(20)).slices == ()
    assert client.ranges == []


def test_a_failing_range_query_is_a_failed_measurement() -> None:
    class Broken(FakeClient):
        def custom_query_range(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            raise ConnectionError("refused")

    with pytest.raises(MetricsError, match="refused"):
        source(Broken({})).fetch(query(120))


class RecordingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__({})
        self.instant: list[str] = []

    def custom_query(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.instant.append(query)
        return super().custom_query(query, params)


def test_the_judged_version_is_selected_by_its_revision_and_the_baseline_by_variant() -> None:
    """A candidate that replaces a rolled-back one: the old candidate's pods may still serve under
    variant="candidate" until the new pods are ready; only the judged revision's series are its."""
    from headway.planning.measure import MeasureRequest
    from headway.reconciler import fetch_measurement

    for purpose, targets, judged in (("step", (("candidate", "stable"),), "candidate"), ("bake", (("stable", "previous"),), "stable")):
        req = MeasureRequest("ml", "fraud", purpose, "abc123", targets, T0, (ERRORS,), SeriesLabels(), "30s",  # type: ignore[arg-type]
                             "http://prometheus:9090", T0)
        client = RecordingClient()
        fetch_measurement(req, source(client), T0 + timedelta(seconds=90))
        queries = client.instant + [q for q, *_ in client.ranges]
        judged_queries = [q for q in queries if f'variant="{judged}"' in q]
        baseline_queries = [q for q in queries if f'variant="{targets[0][1]}"' in q]
        assert judged_queries and baseline_queries
        assert all('revision="abc123"' in q for q in judged_queries), judged_queries
        assert not any("revision=" in q for q in baseline_queries), baseline_queries
    # Series without a revision label (seriesLabels.revision empty): selected by variant only.
    q = query(90, labels=SeriesLabels(revision=""))
    client = RecordingClient()
    source(client).fetch(SeriesQuery(q.namespace, q.name, q.variant, q.start, q.end, q.slos, q.labels, q.interval, "abc123"))
    assert client.instant and not any("revision" in x for x in client.instant)
