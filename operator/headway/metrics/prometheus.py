"""Prometheus as a metric source, through prometheus-api-client.

Every count is ``increase()`` over the analysis window ending now, evaluated at one
instant, so candidate and baseline are measured over the same time. ``increase`` copes
with counter resets (pods restarting). What the queries select on is configurable
(``spec.analysis.seriesLabels``); the defaults are the labels the PodMonitor Headway
renders guarantees: ``namespace``, ``modeldeployment``, ``variant``, and for the version being
judged (a step's candidate, a bake's new stable) ``revision``: when a candidate replaces one
that was rolled back, the old candidate's pods may serve until the new ones are ready, under
the same ``variant``; their requests are not the new version's.

BentoML's own metrics (``bentoml_service_request_total`` with ``http_response_code``,
and the ``bentoml_service_request_duration_seconds`` histogram) feed the built-in SLOs;
requests to the health and metrics endpoints are excluded.

Besides the window's totals, ``fetch`` breaks the same counts down into *slices*: per pod
(``seriesLabels.pod``) and per analysis interval since the window began, from one range
query per series of the counters' values (``sum by (pod) (...)``, step = interval,
anchored at the window's start so every look sees the same grid), differenced per pod
(``PrometheusSource.slices``). The verdicts count evidence in these units, so a pod that
fails for a few seconds is one bad slice, not hundreds of independent failures. A window
longer than ``MAX_SLICES`` intervals is cut into slices of 2, 4, ... intervals (merged
slices are still valid units), which bounds the points per series.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import Any

from headway.api.sketch import SKETCH_METRIC
from headway.api.spec import SeriesLabels
from headway.api.types import parse_duration
from headway.metrics.base import BinnedCounts, BinnedQuery, MetricsError, SeriesQuery
from headway.planning.verdicts import Histogram, RequestCounts, Slice, VariantData
from headway.telemetry import QUERY_ERRORS, QUERY_SECONDS

REQUESTS = "bentoml_service_request_total"
FEATURES = "headway_feature_observations_total"  # the recorder's (headway.monitoring.recorder)
PREDICTIONS = "headway_prediction_observations_total"
DURATION_BUCKETS = "bentoml_service_request_duration_seconds_bucket"
NOT_API = 'endpoint!~"/(livez|readyz|healthz|metrics|docs.json|schema.json)"'
# Points per pod and series in a slice query: 6 h of 30 s intervals (Prometheus refuses 11,000).
MAX_SLICES = 720


def selector(labels: SeriesLabels, namespace: str, name: str, variant: str, extra: str = "", revision: str | None = None) -> str:
    parts = [f'{labels.namespace}="{namespace}"', f'{labels.model_deployment}="{name}"', f'{labels.variant}="{variant}"', NOT_API]
    if revision and labels.revision:  # the judged version only: not a replaced version's pods still terminating
        parts.insert(3, f'{labels.revision}="{revision}"')
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def slice_seconds(window_seconds: float, interval_seconds: float) -> float:
    """Length of one slice: the analysis interval, doubled until the window holds at most MAX_SLICES."""
    step = max(1.0, interval_seconds)
    while window_seconds / step > MAX_SLICES:
        step *= 2.0
    return step


def render_query(promql: str, query: SeriesQuery) -> str:
    window = f"{max(1, int((query.end - query.start).total_seconds()))}s"
    for key, value in (("variant", query.variant), ("namespace", query.namespace), ("name", query.name),
                       ("interval", query.interval), ("window", window)):
        promql = promql.replace("{{" + key + "}}", value)
    return promql


class PrometheusSource:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        # A client-side timeout: a silent network must not hang a reconcile (the "timeout"
        # query parameter only bounds evaluation on the server). TLS is verified. Imported
        # here: only operators whose ModelDeployments run an analysis need the client.
        from prometheus_api_client import PrometheusConnect

        self._client = PrometheusConnect(url=url, timeout=(3, timeout))  # type: ignore[arg-type]
        self._timeout = timeout

    def _query(self, promql: str, at: float) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            result = self._client.custom_query(query=promql, params={"time": at, "timeout": f"{max(1, int(self._timeout))}s"})
        except Exception as exc:  # connection refused, HTTP errors, bad queries: all "can't read"
            QUERY_ERRORS.inc()
            raise MetricsError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        finally:
            QUERY_SECONDS.observe(time.perf_counter() - started)
        return list(result)

    def _range(self, promql: str, start: datetime, end: datetime, step: float) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            result = self._client.custom_query_range(query=promql, start_time=start, end_time=end, step=f"{step:g}",
                                                     params={"timeout": f"{max(1, int(self._timeout))}s"})
        except Exception as exc:  # as in _query: all "can't read"
            QUERY_ERRORS.inc()
            raise MetricsError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        finally:
            QUERY_SECONDS.observe(time.perf_counter() - started)
        return list(result)

    def increments(self, promql: str, labels: tuple[str, ...], start: datetime, last: datetime, step: float
                   ) -> dict[tuple[str, ...], dict[float, float]]:
        """A counter query's increase per slice: {label values: {slice start (s since ``start``): increase}}.

        The query's values at start, start + step, ..., last, differenced per series; a drop is a
        counter reset (a restarted pod), counted from zero like ``increase()`` does; a series new in
        a slice started at zero. Query counters per pod (``sum by (pod, ...)``) so that one pod's
        reset is not read as a drop of the sum."""
        origin = float(round(start.timestamp()))  # the client asks from a whole second
        out: dict[tuple[str, ...], dict[float, float]] = {}
        for row in self._range(promql, start, last, step):
            values = sorted((round(float(at) - origin, 3), float(v)) for at, v in row.get("values", []))
            known = {round(at / step): value for at, value in values}
            series = out.setdefault(tuple(row["metric"].get(label, "") for label in labels), {})
            for index, value in known.items():
                if index < 1 or math.isnan(value):
                    continue
                before = known.get(index - 1, 0.0)  # a series new in this slice started at zero
                if math.isnan(before):
                    continue
                series[round((index - 1) * step, 3)] = value - before if value >= before else value
        return out

    def binned(self, query: BinnedQuery) -> BinnedCounts:
        """The recorder's counts per slice of the window: {series: [{bin: count} per slice]}.

        ``query.slices`` equal slices of [start, end] (complete ones only), per pod differenced
        (see ``increments``) and summed over pods. Series: ``feature:<name>`` for each feature
        counter, ``prediction`` for the prediction counter, ``sketch`` for the agreement sketch (bins
        ``"<bucket><sign>"``, headway.api.sketch)."""
        step = max(1.0, (query.end - query.start).total_seconds() / query.slices)
        last = query.start + timedelta(seconds=step * query.slices)
        sel = selector(query.labels, query.namespace, query.name, query.variant, revision=query.revision)
        pod = query.labels.pod
        counts: dict[str, dict[int, dict[str, float]]] = {}

        def add(series: str, begin: float, bin_name: str, value: float) -> None:
            slot = counts.setdefault(series, {}).setdefault(round(begin / step), {})
            slot[bin_name] = slot.get(bin_name, 0.0) + value

        if query.features:
            for (_, feature, bin_name), per_slice in self.increments(
                    f"sum by ({pod}, feature, bin) ({FEATURES}{sel})", (pod, "feature", "bin"), query.start, last, step).items():
                if feature in query.features:
                    for begin, value in per_slice.items():
                        add(f"feature:{feature}", begin, bin_name, value)
        if query.prediction:
            for (_, bin_name), per_slice in self.increments(
                    f"sum by ({pod}, bin) ({PREDICTIONS}{sel})", (pod, "bin"), query.start, last, step).items():
                for begin, value in per_slice.items():
                    add("prediction", begin, bin_name, value)
        if query.sketch:
            for (_, bucket, sign), per_slice in self.increments(
                    f"sum by ({pod}, bucket, sign) ({SKETCH_METRIC}{sel})", (pod, "bucket", "sign"), query.start, last, step).items():
                for begin, value in per_slice.items():
                    add("sketch", begin, f"{bucket}{sign}", value)  # as headway.api.sketch.cell_key names a cell
        return {series: [slots.get(i, {}) for i in range(query.slices)] for series, slots in counts.items()}

    def slices(self, query: SeriesQuery, with_latency: bool) -> tuple[Slice, ...]:
        """Per pod and interval counts since the window began (empty if the window is shorter than one).

        The counters' values at start, start + step, ... (one range query per series), and each
        slice the difference between two consecutive points per pod; a drop is a counter reset
        (a restarted pod), counted from zero like ``increase()`` does. Unlike
        ``increase(x[step])`` at each point, which sees only the samples inside each step and
        loses the increments between two steps (half of them with two scrapes per interval, as
        the PodMonitor scrapes), differences count every increment once and extrapolate nothing.
        Complete intervals only, on the same grid at every look.
        """
        span = (query.end - query.start).total_seconds()
        step = slice_seconds(span, parse_duration(query.interval).total_seconds())
        count = int(span // step)
        if count < 1:
            return ()
        last = query.start + timedelta(seconds=step * count)
        pod = query.labels.pod
        sel = selector(query.labels, query.namespace, query.name, query.variant, revision=query.revision)
        err_sel = selector(query.labels, query.namespace, query.name, query.variant, 'http_response_code=~"5.."', query.revision)

        def increments(promql: str, *labels: str) -> dict[tuple[str, ...], dict[float, float]]:
            return self.increments(promql, labels, query.start, last, step)

        totals = increments(f"sum by ({pod}) ({REQUESTS}{sel})", pod)
        # A pod with no 5xx series has answered no 5xx (BentoML creates it on the first one).
        errors = increments(f"sum by ({pod}) ({REQUESTS}{err_sel})", pod)
        buckets: dict[tuple[str, float], list[tuple[float, float]]] = {}
        if with_latency:
            for (name, le), series in increments(f"sum by ({pod}, le) ({DURATION_BUCKETS}{sel})", pod, "le").items():
                for begin, value in series.items():
                    buckets.setdefault((name, begin), []).append((float(le), value))
        keys = {(name, begin) for (name,), series in totals.items() for begin in series} | set(buckets)
        return tuple(
            Slice(
                pod=name, start=begin,
                requests=RequestCounts(total=totals.get((name,), {}).get(begin),
                                       errors=errors.get((name,), {}).get(begin, 0.0) if (name,) in totals else None),
                latency=Histogram(tuple(sorted(buckets[(name, begin)]))) if (name, begin) in buckets else None,
            )
            for name, begin in sorted(keys, key=lambda k: (k[1], k[0]))
        )

    def _scalar(self, promql: str, at: float) -> float | None:
        result = self._query(promql, at)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def fetch(self, query: SeriesQuery) -> VariantData:
        at = query.end.timestamp()
        window = f"{max(1, int((query.end - query.start).total_seconds()))}s"
        sel = selector(query.labels, query.namespace, query.name, query.variant, revision=query.revision)
        total = self._scalar(f"sum(increase({REQUESTS}{sel}[{window}]))", at)
        errors = None
        if total is not None:
            err_sel = selector(query.labels, query.namespace, query.name, query.variant, 'http_response_code=~"5.."', query.revision)
            # No 5xx series means no 5xx answered yet: BentoML creates the series on the first one.
            errors = self._scalar(f"sum(increase({REQUESTS}{err_sel}[{window}]))", at) or 0.0
        latency = None
        if any(slo.latency for slo in query.slos):
            rows = self._query(f"sum by (le) (increase({DURATION_BUCKETS}{sel}[{window}]))", at)
            buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in rows if "le" in r["metric"])
            latency = Histogram(buckets=tuple(buckets)) if buckets else None
        slices = self.slices(query, latency is not None) if total is not None or latency is not None else ()
        queries: dict[str, float | None] = {}
        ratios: dict[str, tuple[float | None, float | None]] = {}
        for slo in query.slos:
            q = slo.query
            if q is not None and q.numerator is not None and q.denominator is not None:  # a ratio: two counts
                ratios[q.name] = (self._scalar(render_query(q.numerator, query), at),
                                  self._scalar(render_query(q.denominator, query), at))
            elif q is not None and q.promql is not None:  # an untested value
                queries[q.name] = self._scalar(render_query(q.promql, query), at)
        return VariantData(requests=RequestCounts(total=total, errors=errors), latency=latency, queries=queries,
                           ratios=ratios, slices=slices)
