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


def _ratio_share(bound: float | None) -> bool:
    return bound is None or 0.0 <= bound <= 1.0


def _counts_over_window(promql: str | None) -> bool:
    return promql is None or ("{{window}}" in promql and "{{interval}}" not in promql)


class QuerySlo(ApiModel):
    """A custom objective in PromQL: a tested ratio of two counts, or an untested value.

    Its description in the CRD is ``Slo.query``'s; docs/verdicts.md ("Custom query SLOs")
    has the method. A ratio is a proportion: ``max: 0.02`` allows 2% of the denominator's
    events to be counted by the numerator; ``min: 0.9`` requires the numerator to be at
    least 90% of the denominator, i.e. at most 10% of it outside the numerator.
    """

    __cel__ = (
        Rule(
            "has(self.promql) != has(self.numerator)",
            "a query SLO sets either numerator and denominator (a ratio, tested) or promql (a value, untested)",
            None,
            lambda m: (m.promql is None) != (m.numerator is None),
        ),
        Rule(
            "!has(self.numerator) || has(self.denominator)",
            "a ratio needs a denominator: the count the numerator is a share of",
            ".denominator",
            lambda m: m.numerator is None or m.denominator is not None,
        ),
        Rule(
            "!has(self.denominator) || has(self.numerator)",
            "a denominator needs a numerator: the count that is a share of it",
            ".numerator",
            lambda m: m.denominator is None or m.numerator is not None,
        ),
        Rule("has(self.min) || has(self.max)", "a query SLO needs min, max or both", None, lambda m: m.min is not None or m.max is not None),
        Rule(
            "!has(self.numerator) || !has(self.min) || !has(self.max)",
            "a ratio SLO is one-sided: set min or max, not both (for a band, write two SLOs)",
            None,
            lambda m: m.numerator is None or m.min is None or m.max is None,
        ),
        Rule(
            "!has(self.numerator) || !has(self.min) || (self.min >= 0.0 && self.min <= 1.0)",
            "a ratio's min is a share between 0 and 1",
            ".min",
            lambda m: m.numerator is None or _ratio_share(m.min),
        ),
        Rule(
            "!has(self.numerator) || !has(self.max) || (self.max >= 0.0 && self.max <= 1.0)",
            "a ratio's max is a share between 0 and 1",
            ".max",
            lambda m: m.numerator is None or _ratio_share(m.max),
        ),
        Rule(
            "!has(self.numerator) || (self.numerator.contains('{{window}}') && !self.numerator.contains('{{interval}}'))",
            "the numerator counts over the analysis window: use a [{{window}}] range, not [{{interval}}]",
            ".numerator",
            lambda m: _counts_over_window(m.numerator),
        ),
        Rule(
            "!has(self.denominator) || (self.denominator.contains('{{window}}') && !self.denominator.contains('{{interval}}'))",
            "the denominator counts over the analysis window: use a [{{window}}] range, not [{{interval}}]",
            ".denominator",
            lambda m: _counts_over_window(m.denominator),
        ),
    )

    name: DnsLabel
    """Name of the SLO (shown in status and usable by experiment.decide)."""
    # Hand-written PromQL with sum/rate/histogram_quantile and a few selectors stays well
    # under 1 KiB; 4 KiB leaves room for long label matchers.
    numerator: str | None = Field(default=None, min_length=1, max_length=4096)
    """A ratio's numerator: one count over the analysis window, e.g.
    sum(increase(fraud_true_positives_total{variant="{{variant}}"}[{{window}}])). No result is
    missing data (Inconclusive), not zero: append `or vector(0)` when no series means none yet."""
    denominator: str | None = Field(default=None, min_length=1, max_length=4096)
    """A ratio's denominator: the count the numerator is a share of, over the same window (its
    events are the ratio's samples: minRequests applies to them)."""
    promql: str | None = Field(default=None, min_length=1, max_length=4096)
    """An untested value query returning one number: reported, and out of bounds it holds the
    rollout, but it never rolls back (no test of its noise). Prefer numerator/denominator."""
    min: float | None = None
    """Lowest acceptable value (for a ratio: a share in [0, 1]; the test is on 1 - ratio <= 1 - min)."""
    max: float | None = None
    """Highest acceptable value (for a ratio: a share in [0, 1])."""


class Slo(ApiModel):
    """One service-level objective: exactly one of errorRate, latency and query."""

    __cel__ = (exactly_one_of("each SLO sets exactly one of errorRate, latency and query", "errorRate", "latency", "query"),)

    error_rate: ErrorRateSlo | None = None
    """Error-rate objective."""
    latency: LatencySlo | None = None
    """Latency objective."""
    query: QuerySlo | None = None
    """Custom PromQL objective. A ratio (numerator and denominator: two counts over [{{window}}], e.g. failed
    and total, or true positives and predicted positives) is tested like the error rate: max bounds the
    numerator's share of the denominator, min its lowest share (tested as 1 - ratio <= 1 - min), against
    stable's counts over the same window. A value (promql) is untested: out of bounds it holds the rollout
    (Inconclusive, reason "untested") but never rolls back. Placeholders: {{variant}}, {{namespace}},
    {{name}}, {{window}} (the analysis window, e.g. 240s) and {{interval}} (spec.analysis.interval: refused
    as a range shorter than 2m, which holds fewer than 4 scrapes)."""


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
    revision: str = Field(default="revision", max_length=128)
    """Label holding the pod's revision (Headway's PodMonitor sets it): the version being judged is selected by
    it too, so pods of a replaced version still serving under the same variant are not counted as the new one's.
    Empty: series have no such label; select by variant only."""
    pod: str = Field(default="pod", min_length=1, max_length=128)
    """Label holding the pod's name: verdicts count evidence per pod and interval, so a burst of errors from one pod is not read as many independent failures. Series without it are counted per interval across pods."""


class Analysis(ApiModel):
    """How new versions are judged against SLOs measured in Prometheus: anytime-valid tests at every interval.
    The false-rollback budget is 5% for a whole rollout: a version that meets every tested SLO and is no worse
    than stable gets a Fail, at any measurement of any step or of the bake after its promotion, with
    probability at most 5% (the tests' evidence is carried from window to window in status.analysis; it
    assumes independent pods x intervals, or independent requests without per-pod series, and an analysis
    spec that does not change during the rollout). A step passes an SLO that is breached with probability at
    most 5%. After a breach the baseline shares, the step's window restarts once the baseline is back within
    the SLO (Event AnalysisRestarted). See docs/verdicts.md."""

    interval: Duration = "30s"
    """How often to measure."""
    prometheus: PrometheusSource | None = None
    """Metric source."""
    # An error rate, a latency or two and a few business queries: 16 is generous (each one
    # is a Prometheus query per variant per interval).
    slos: list[Slo] = Field(default_factory=list, max_length=16)
    """Objectives every new version must meet."""
    min_requests: int = Field(default=200, ge=1)
    """Below this many requests in a verdict's window the verdict is inconclusive, never a pass (for a ratio
    query SLO: this many events of its denominator)."""
    failure_limit: int = Field(default=2, ge=1, le=100)
    """Consecutive failed verdicts that roll the candidate back (during the bake: that may restore the previous
    version). The 5% false-rollback bound holds for any value, 1 included: each Fail is already shown at it."""
    inconclusive_limit: int = Field(default=10, ge=1, le=1000)
    """Consecutive inconclusive verdicts before onInconclusive applies."""
    on_inconclusive: Literal["hold", "rollback"] = "hold"
    """What too many inconclusive verdicts do: hold the rollout (phase Degraded) or roll back."""
    series_labels: SeriesLabels | None = None
    """Label names of the series that identify a variant (defaults: namespace, modeldeployment, variant)."""
