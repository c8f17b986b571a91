"""ModelDeployment.spec.analysis: the SLOs new versions are judged against, and where their metrics are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from headway.api.base import ApiModel, Rule, exactly_one_of
from headway.api.types import DnsLabel, Duration


class ErrorRateSlo(ApiModel):
    """Share of requests answered with HTTP 5xx, from bentoml_service_request_total."""

    max: float = Field(ge=0, le=1)
    """Highest acceptable error rate, as a fraction (0.01 = 1%)."""


class LatencySlo(ApiModel):
    """A latency percentile, from bentoml_service_request_duration_seconds."""

    percentile: float = Field(gt=0, lt=100)
    """Percentile, e.g. 99."""
    max: Duration
    """Highest acceptable latency at that percentile, e.g. 250ms."""


class QuerySlo(ApiModel):
    """Any PromQL; {{variant}}, {{namespace}}, {{name}} and {{interval}} are filled in."""

    __cel__ = (Rule("has(self.min) || has(self.max)", "a query SLO needs min, max or both", None, lambda m: m.min is not None or m.max is not None),)

    name: DnsLabel
    """Name of the SLO (shown in status and usable by experiment.decide)."""
    # Hand-written PromQL with sum/rate/histogram_quantile and a few selectors stays well
    # under 1 KiB; 4 KiB leaves room for long label matchers.
    promql: str = Field(min_length=1, max_length=4096)
    """The query; it must return one value."""
    min: float | None = None
    """Lowest acceptable value."""
    max: float | None = None
    """Highest acceptable value."""


class Slo(ApiModel):
    """One service-level objective: exactly one of errorRate, latency and query."""

    __cel__ = (exactly_one_of("each SLO sets exactly one of errorRate, latency and query", "errorRate", "latency", "query"),)

    error_rate: ErrorRateSlo | None = None
    """Error-rate objective."""
    latency: LatencySlo | None = None
    """Latency objective."""
    query: QuerySlo | None = None
    """Custom PromQL objective."""


class PrometheusSource(ApiModel):
    """Where the metrics are."""

    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)  # the common URL limit
    """Prometheus base URL; the operator's --prometheus-url when unset."""


class SeriesLabels(ApiModel):
    """Names of the Prometheus labels that select one variant's series."""

    # Prometheus label names have no limit of their own; real ones are short identifiers.
    namespace: str = Field(default="namespace", min_length=1, max_length=128)
    """Label holding the Kubernetes namespace."""
    model_deployment: str = Field(default="modeldeployment", min_length=1, max_length=128)
    """Label holding the ModelDeployment's name."""
    variant: str = Field(default="variant", min_length=1, max_length=128)
    """Label holding the variant (stable, candidate, or an experiment variant's name)."""


class Analysis(ApiModel):
    """How new versions are judged against SLOs measured in Prometheus."""

    interval: Duration = "30s"
    """How often to measure."""
    prometheus: PrometheusSource | None = None
    """Metric source."""
    # An error rate, a latency or two and a few business queries: 16 is generous (each one
    # is a Prometheus query per variant per interval).
    slos: list[Slo] = Field(default_factory=list, max_length=16)
    """Objectives every new version must meet."""
    min_requests: int = Field(default=200, ge=1)
    """Below this many requests in a verdict's window the verdict is inconclusive, never a pass."""
    failure_limit: int = Field(default=2, ge=1, le=100)
    """Consecutive failed verdicts that roll the candidate back."""
    inconclusive_limit: int = Field(default=10, ge=1, le=1000)
    """Consecutive inconclusive verdicts before onInconclusive applies."""
    on_inconclusive: Literal["hold", "rollback"] = "hold"
    """What too many inconclusive verdicts do: hold the rollout (phase Degraded) or roll back."""
    series_labels: SeriesLabels | None = None
    """Label names of the series that identify a variant (defaults: namespace, modeldeployment, variant)."""
