"""Experiments (A/B/n): is one arm better than every other on one metric?

A fixed-sample test, decided once (see ``compare_variants``), unlike the anytime-valid
SLO verdicts of ``headway.planning.verdicts``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from headway.api.analysis_spec import Slo
from headway.api.types import parse_duration
from headway.planning import stats
from headway.planning.verdict_types import (
    VariantData, error_counts, json_number, number, ratio_counts, requests_served, slo_name,
)

ComparisonResult = Literal["Winner", "NoDifference", "Inconclusive"]
PairTest = Callable[[int, int], tuple[float, float]]


@dataclass(frozen=True)
class VariantMetric:
    """One experiment arm's decision metric over the experiment so far.

    A proportion metric sets ``events`` (errors, slow requests, conversions) out of
    ``samples``; a mean metric sets ``mean`` and the per-sample ``variance``.
    """

    name: str
    samples: float | None
    events: float | None = None
    mean: float | None = None
    variance: float | None = None


@dataclass(frozen=True)
class Comparison:
    """The outcome of an experiment's significance test."""

    metric: str
    result: ComparisonResult
    winner: str | None
    statistic: float | None
    p_value: float | None
    samples: Mapping[str, int]
    values: Mapping[str, float | None]
    test: str
    reason: str

    def to_evidence(self) -> dict[str, Any]:
        """JSON-safe, camelCase."""
        return {
            "metric": self.metric,
            "result": self.result,
            "winner": self.winner,
            "statistic": json_number(self.statistic),
            "pValue": json_number(self.p_value),
            "samples": dict(self.samples),
            "values": {k: json_number(v) for k, v in self.values.items()},
            "test": self.test,
            "reason": self.reason,
        }


def compare_variants(
    variants: Sequence[VariantMetric],
    metric: str,
    *,
    lower_is_better: bool = True,
    significance: float = 0.05,
    min_samples: int = 1000,
) -> Comparison:
    """Is one arm better than every other on ``metric``? A fixed-sample test, decided once.

    Proportions: pooled two-proportion z-tests (for two arms the same as the chi-square
    test of the 2x2 table); means: Welch's t-tests. The observed best arm is tested
    against each other arm, Bonferroni-adjusted over all pairs.

    Peeking: this is *not* an anytime-valid test. The caller decides once, at the first
    look where every arm has ``min_samples``, records the Comparison in status, and
    never re-tests (a NoDifference is final for that experiment). Before that point it
    returns Inconclusive without running the test, so looks before minSamples cost no
    error probability; re-running it after the decision would.
    """
    if len(variants) < 2:
        raise ValueError("an experiment needs at least two variants")
    samples = {v.name: int(number(v.samples) or 0) for v in variants}
    proportions = all(number(v.events) is not None for v in variants)
    means = all(number(v.mean) is not None and number(v.variance) is not None for v in variants)
    values = _observed_values(variants, proportions, means)

    def verdict(result: ComparisonResult, reason: str, test: str = "", winner: str | None = None,
                statistic: float | None = None, p: float | None = None) -> Comparison:
        return Comparison(metric, result, winner, statistic, p, samples, values, test, reason)

    if any(number(v.samples) is None for v in variants) or not (proportions or means):
        return verdict("Inconclusive", "metric missing or NaN for some variant (a mean needs its variance)")
    short = [v.name for v in variants if samples[v.name] < min_samples]
    if short:
        return verdict("Inconclusive", f"waiting for minSamples {min_samples}: {', '.join(short)} below")
    test, observed, pair = _pair_test(variants, proportions)
    outcome = stats.best_arm(observed, pair, lower_is_better=lower_is_better, significance=significance)
    best = variants[outcome.best].name
    if outcome.wins:
        return verdict("Winner", f"{best} beats every other variant (p={outcome.p_value:.3g} < {significance})",
                       test, best, outcome.statistic, outcome.p_value)
    return verdict("NoDifference", f"best observed {best}, not significant (p={outcome.p_value:.3g} >= {significance})",
                   test, None, outcome.statistic, outcome.p_value)


def _observed_values(variants: Sequence[VariantMetric], proportions: bool, means: bool) -> dict[str, float | None]:
    """Each arm's observed value as status shows it: its proportion, or its mean."""
    values: dict[str, float | None] = {}
    for v in variants:
        n, k = number(v.samples), number(v.events)
        values[v.name] = (min(k, n) / n if proportions and n and k is not None else v.mean if means else None)
    return values


def _pair_test(variants: Sequence[VariantMetric], proportions: bool) -> tuple[str, list[float], PairTest]:
    """(the test's name, each arm's observed value, the two-sided test of arm i against arm j)."""
    ns = [float(number(v.samples) or 0.0) for v in variants]
    if proportions:
        ks = [min(float(number(v.events) or 0.0), n) for v, n in zip(variants, ns)]

        def z_test(i: int, j: int) -> tuple[float, float]:
            return stats.two_proportion_ztest(ks[i], ns[i], ks[j], ns[j])

        return "two-proportion z-test, Bonferroni over pairs", [k / n for k, n in zip(ks, ns)], z_test
    ms = [float(v.mean or 0.0) for v in variants]
    vs = [float(v.variance or 0.0) for v in variants]

    def t_test(i: int, j: int) -> tuple[float, float]:
        return stats.welch_ttest(ms[i], vs[i], ns[i], ms[j], vs[j], ns[j])

    return "Welch t-test, Bonferroni over pairs", ms, t_test


def experiment_metric(name: str, data: VariantData, metric: str, slos: Sequence[Slo]) -> tuple[VariantMetric, bool]:
    """The arm's VariantMetric for ``Decide.metric``, and whether lower is better.

    ``errorRate``: errors among requests. ``latency`` (or a latency SLO's name): requests
    slower than the first latency SLO's max (its bucket bound, or the next one up).
    A ratio query SLO's name: the numerator's events out of the denominator's (precision:
    true positives out of predicted positives), the same counts its verdict tests. A value
    query SLO's name: its value read as a per-request proportion (0-1) over the requests
    served, or as a mean when above 1. Higher is better when the SLO only sets ``min``.
    """
    if metric == "errorRate":
        counts = error_counts(data)
        return VariantMetric(name, counts[1] if counts else None, counts[0] if counts else None), True
    latency = [s.latency for s in slos if s.latency is not None and (metric == "latency" or slo_name(s) == metric)]
    if latency:
        buckets = stats.clean_buckets(data.latency.buckets) if data.latency else None
        if buckets is None:
            return VariantMetric(name, None), True
        limit = parse_duration(latency[0].max).total_seconds()
        below, above = stats.bracketing_bounds(buckets, limit)
        bound = above if above is not None else below
        slow = stats.count_above(buckets, bound) if bound is not None else None
        return VariantMetric(name, stats.histogram_total(buckets), slow), True
    query = next((s.query for s in slos if s.query is not None and s.query.name == metric), None)
    lower_is_better = not (query is not None and query.min is not None and query.max is None)
    if query is not None and query.numerator is not None:
        counts = ratio_counts(data, metric)
        return (VariantMetric(name, None) if counts is None else VariantMetric(name, counts[1], counts[0])), lower_is_better
    value = number(data.queries.get(metric))
    served = requests_served(data)
    if value is None or served is None:
        return VariantMetric(name, None), lower_is_better
    if value <= 1.0:
        return VariantMetric(name, served, value * served), lower_is_better
    return VariantMetric(name, served, mean=value), lower_is_better
