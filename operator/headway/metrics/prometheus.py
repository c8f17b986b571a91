"""Prometheus as a metric source, through prometheus-api-client.

Every count is ``increase()`` over the analysis window ending now, evaluated at one
instant, so candidate and baseline are measured over the same time. ``increase`` copes
with counter resets (pods restarting). What the queries select on is configurable
(``spec.analysis.seriesLabels``); the defaults are the labels the PodMonitor Headway
renders guarantees: ``namespace``, ``modeldeployment``, ``variant``.

BentoML's own metrics (``bentoml_service_request_total`` with ``http_response_code``,
and the ``bentoml_service_request_duration_seconds`` histogram) feed the built-in SLOs;
requests to the health and metrics endpoints are excluded.
"""

from __future__ import annotations

import math
import time
from typing import Any

from headway.api.spec import SeriesLabels
from headway.metrics.base import MetricsError, SeriesQuery
from headway.planning.verdicts import Histogram, RequestCounts, VariantData
from headway.telemetry import QUERY_ERRORS, QUERY_SECONDS

REQUESTS = "bentoml_service_request_total"
DURATION_BUCKETS = "bentoml_service_request_duration_seconds_bucket"
NOT_API = 'endpoint!~"/(livez|readyz|healthz|metrics|docs.json|schema.json)"'


def selector(labels: SeriesLabels, namespace: str, name: str, variant: str, extra: str = "") -> str:
    parts = [f'{labels.namespace}="{namespace}"', f'{labels.model_deployment}="{name}"', f'{labels.variant}="{variant}"', NOT_API]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


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

    def _scalar(self, promql: str, at: float) -> float | None:
        result = self._query(promql, at)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def fetch(self, query: SeriesQuery) -> VariantData:
        at = query.end.timestamp()
        window = f"{max(1, int((query.end - query.start).total_seconds()))}s"
        sel = selector(query.labels, query.namespace, query.name, query.variant)
        total = self._scalar(f"sum(increase({REQUESTS}{sel}[{window}]))", at)
        errors = None
        if total is not None:
            err_sel = selector(query.labels, query.namespace, query.name, query.variant, 'http_response_code=~"5.."')
            # No 5xx series means no 5xx answered yet: BentoML creates the series on the first one.
            errors = self._scalar(f"sum(increase({REQUESTS}{err_sel}[{window}]))", at) or 0.0
        latency = None
        if any(slo.latency for slo in query.slos):
            rows = self._query(f"sum by (le) (increase({DURATION_BUCKETS}{sel}[{window}]))", at)
            buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in rows if "le" in r["metric"])
            latency = Histogram(buckets=tuple(buckets)) if buckets else None
        queries: dict[str, float | None] = {}
        for slo in query.slos:
            if slo.query is not None:
                queries[slo.query.name] = self._scalar(render_query(slo.query.promql, query), at)
        return VariantData(requests=RequestCounts(total=total, errors=errors), latency=latency, queries=queries)
