"""The one small interface a metric source implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from headway.api.spec import SeriesLabels, Slo
from headway.planning.verdicts import VariantData


@dataclass(frozen=True)
class SeriesQuery:
    """Cumulative counts of one variant over [start, end]."""

    namespace: str
    name: str  # the ModelDeployment
    variant: str
    start: datetime
    end: datetime
    slos: tuple[Slo, ...]
    labels: SeriesLabels
    interval: str  # spec.analysis.interval, for {{interval}} in query SLOs
    revision: str | None = None  # select only this revision's series (the version judged); None: any


@dataclass(frozen=True)
class BinnedQuery:
    """The recorder's bin counts of one variant over [start, end], in ``slices`` equal slices."""

    namespace: str
    name: str  # the ModelDeployment
    variant: str
    start: datetime
    end: datetime
    slices: int
    labels: SeriesLabels
    features: frozenset[str]  # the features wanted (empty: none)
    prediction: bool  # the prediction's counts too
    revision: str | None = None
    sketch: bool = False  # the agreement sketch's counts too (series "sketch", bins "<bucket><sign>": headway.api.sketch)


# {"feature:<name>", "prediction" or "sketch": [{bin: count} per slice, oldest first]}
BinnedCounts = dict[str, list[dict[str, float]]]


class MetricsError(Exception):
    """The source could not be read (unreachable, bad query, ...)."""


class MetricSource(Protocol):
    def fetch(self, query: SeriesQuery) -> VariantData:
        """Counts for the query's variant; raises MetricsError when the source can't answer."""
        ...

    def binned(self, query: BinnedQuery) -> BinnedCounts:
        """The recorder's bin counts per slice; raises MetricsError when the source can't answer."""
        ...
