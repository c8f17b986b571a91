"""Verdicts: is the candidate meeting its SLOs? Pass, Fail or Inconclusive, with evidence.

Pure code: the reconciler queries Prometheus for *cumulative* counts over the analysis
window (``increase(...[<since the window began>])``) for the candidate and for the
stable baseline serving the same traffic at the same time, and passes them in. Every
verdict is a function of those counts alone, so an operator that dies between two looks
and restarts from status decides the same thing; no state is kept between looks.

How one SLO is judged (details and references in docs/verdicts.md and in
``headway.planning.stats``):

* Error rate and latency are both *proportions*: errors among requests, and requests
  slower than the SLO's ``max`` among requests (``p99 <= 250ms`` means "at most 1% of
  requests slower than 250 ms").
* **Absolute**: two anytime-valid tests against the allowed share ``q``. *Met* rejects
  ``rate >= q`` (the upper confidence bound is below ``q``); *breach* rejects
  ``rate <= q`` (the lower confidence bound is above ``q``). Their error probabilities
  hold over unlimited looks, so looking every 30 s for hours is safe.
* **Relative**: conditional on the total number of bad events (errors, slow requests)
  of candidate and baseline, the candidate's share is binomial with a success
  probability fixed by its share of the requests. A test of that share rejects "the
  candidate's rate is at most (1 + margin) x the baseline's" (Lindon et al., KDD 2022).
  A service-wide change that hits both variants alike cancels out.
* **Combining them**, in this order:
  1. missing or NaN data, or fewer than ``min_requests`` -> Inconclusive;
  2. *met* -> Pass: the SLO is the contract, and it is shown to hold;
  3. *relative* rejects -> Fail: the candidate is shown to be worse than stable;
  4. *breach* -> Fail, unless the baseline is breaching the same SLO over the same
     window (baseline drift: rolling back would not help) -> Inconclusive;
  5. otherwise Inconclusive: not enough evidence either way yet.
* Latency from histogram buckets: the SLO ``max`` rarely sits on a bucket bound, so the
  share above ``max`` is bracketed: requests above the next bound up are surely slower
  than ``max`` (breach is judged on them) and requests above the bound below include
  every request slower than ``max`` (met is judged on them). No interpolation inside a
  bucket is assumed. The relative latency test uses the bucket bound where the pooled
  (candidate + baseline) share of slower requests is nearest the percentile's share.
* False rollbacks: ``alpha`` is split over the SLOs and, within an SLO, between the
  breach and the relative test (Bonferroni), so the probability that a version meeting
  every SLO and no worse than stable gets even one Fail, over the whole analysis, is at
  most ``alpha``. A Pass of an SLO that is actually breached has probability <= alpha.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from headway.api.spec import LatencySlo, Slo
from headway.api.types import parse_duration
from headway.planning import stats

Result = Literal["Pass", "Fail", "Inconclusive"]
PASS: Result = "Pass"
FAIL: Result = "Fail"
INCONCLUSIVE: Result = "Inconclusive"

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.25  # relative tolerance: Kayenta's default "tolerance" is 0.25 too
TRAFFIC_SLO = "traffic"  # the implicit objective judged when a spec lists no SLOs


@dataclass(frozen=True)
class RequestCounts:
    """Requests and 5xx errors of one variant since the analysis window began (None: missing)."""

    total: float | None = None
    errors: float | None = None


@dataclass(frozen=True)
class Histogram:
    """Latency histogram since the window began: (upper bound ``le`` in s, cumulative count), +Inf included."""

    buckets: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class VariantData:
    """Everything measured for one variant over the analysis window.

    ``queries`` maps a query SLO's name to its value (None or NaN: missing). Pass
    ``VariantData()`` when Prometheus could not be reached: every verdict is Inconclusive.
    """

    requests: RequestCounts = field(default_factory=RequestCounts)
    latency: Histogram | None = None
    queries: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The judgement of one SLO at one look, with the evidence behind it.

    ``value``/``threshold``/``baseline_value`` are rates (errors per request; share of
    requests slower than the latency max, whose allowed share is 1 - percentile/100) or,
    for a query SLO, the query's values. ``statistic`` is the log e-value of the test
    that decided and ``p_value`` its anytime-valid p-value (min(1, 1/e)); ``ci_low`` /
    ``ci_high`` bound ``value`` at every look at once (breach / met test levels).
    """

    slo: str
    result: Result
    value: float | None
    threshold: float | None
    samples: int
    baseline_value: float | None
    statistic: float | None
    p_value: float | None
    reason: str
    ci_low: float | None = None
    ci_high: float | None = None

    def to_evidence(self) -> dict[str, Any]:
        """JSON-safe, camelCase: what goes into status history and Events."""
        return {
            "slo": self.slo,
            "result": self.result,
            "value": _json_number(self.value),
            "threshold": _json_number(self.threshold),
            "samples": self.samples,
            "baselineValue": _json_number(self.baseline_value),
            "statistic": _json_number(self.statistic),
            "pValue": _json_number(self.p_value),
            "ciLow": _json_number(self.ci_low),
            "ciHigh": _json_number(self.ci_high),
            "reason": self.reason,
        }


def _json_number(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def _number(x: float | None) -> float | None:
    """A usable measurement: finite and not negative; None for missing, NaN or nonsense."""
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0.0 else None


def _finite(x: float | None) -> float | None:
    """A finite number (negative allowed: query values), None for missing or NaN."""
    try:
        value = None if x is None else float(x)
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def slo_name(slo: Slo) -> str:
    """Stable name of an SLO in status: errorRate, latency-p99, or the query's name."""
    if slo.error_rate is not None:
        return "errorRate"
    if slo.latency is not None:
        return f"latency-p{slo.latency.percentile:g}"
    assert slo.query is not None
    return slo.query.name


def overall(verdicts: Sequence[Verdict]) -> Result:
    """Any Fail -> Fail; every verdict Pass -> Pass; else (or none at all) Inconclusive."""
    if any(v.result == FAIL for v in verdicts):
        return FAIL
    if verdicts and all(v.result == PASS for v in verdicts):
        return PASS
    return INCONCLUSIVE


@dataclass(frozen=True)
class _Levels:
    """Significance levels of one SLO's tests, fixed before any data is seen."""

    min_requests: int
    breach: float
    relative: float
    met: float
    margin: float
    compare: bool  # a baseline was given: run the relative test


def assess(
    slos: Sequence[Slo],
    candidate_data: VariantData | None,
    baseline_data: VariantData | None,
    min_requests: int,
    alpha: float = DEFAULT_ALPHA,
    *,
    margin: float = DEFAULT_MARGIN,
) -> list[Verdict]:
    """Judge every SLO of ``spec.analysis`` at one look; one Verdict per SLO, in order.

    ``baseline_data`` None means there is no baseline to compare with (e.g. the bake
    time after promotion): absolute checks only. A baseline given with missing series
    makes every non-Fail verdict Inconclusive. With no SLOs, one implicit ``traffic``
    verdict is returned: Pass once ``min_requests`` were served with usable counts and
    the candidate's error rate is not shown to exceed the baseline's; never an empty list.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be inside (0, 1), got {alpha}")
    candidate = candidate_data or VariantData()
    compare = baseline_data is not None
    per_slo = alpha / max(1, len(slos))
    levels = _Levels(
        min_requests=max(1, min_requests),
        breach=per_slo / 2 if compare else per_slo,
        relative=per_slo / 2,
        met=alpha,
        margin=margin,
        compare=compare,
    )
    if not slos:
        return [_assess_traffic(candidate, baseline_data, levels)]
    verdicts = []
    for slo in slos:
        name = slo_name(slo)
        if slo.error_rate is not None:
            verdicts.append(_assess_error_rate(name, slo.error_rate.max, candidate, baseline_data, levels))
        elif slo.latency is not None:
            verdicts.append(_assess_latency(name, slo.latency, candidate, baseline_data, levels))
        else:
            assert slo.query is not None
            verdicts.append(_assess_query(name, slo.query.min, slo.query.max, candidate, baseline_data, levels))
    return verdicts


def _inconclusive(name: str, reason: str, samples: float = 0.0, threshold: float | None = None) -> Verdict:
    return Verdict(name, INCONCLUSIVE, None, threshold, int(samples), None, None, None, reason)


def _requests(data: VariantData) -> float | None:
    """Requests served: the request counter, else the latency histogram's count."""
    total = _number(data.requests.total)
    if total is None and data.latency is not None:
        buckets = stats.clean_buckets(data.latency.buckets)
        total = stats.histogram_total(buckets) if buckets else None
    return total


def _error_counts(data: VariantData) -> tuple[float, float] | None:
    """(errors, requests), or None if missing or inconsistent (more errors than requests)."""
    total, errors = _number(data.requests.total), _number(data.requests.errors)
    if total is None or errors is None or errors > total * 1.01 + 1.0:
        return None
    return min(errors, total), total


@dataclass(frozen=True)
class _Proportion:
    """One SLO as a proportion: counts of bad events for the breach and met tests."""

    name: str
    allowed: float  # q: the allowed share of bad events
    requests: float  # candidate requests
    breach_events: float  # events surely bad (judged by the breach test)
    met_events: float  # events possibly bad (judged by the met test)
    relative: tuple[float, float, float, float] | None  # (cand events, cand requests, base events, base requests)
    baseline_rate: float | None  # baseline's rate of surely-bad events (for the drift rule)
    baseline_missing: bool
    unit: str  # how to describe an event in words


def _judge(p: _Proportion, levels: _Levels) -> Verdict:
    n, q = p.requests, p.allowed
    if n < levels.min_requests:
        return _inconclusive(p.name, f"{n:.0f} requests so far, fewer than minRequests {levels.min_requests}", n, q)
    low, high = stats.confidence_sequence(p.breach_events, n, levels.breach, levels.met)
    if p.met_events != p.breach_events:  # latency max between bucket bounds: two bounds
        high = stats.confidence_sequence(p.met_events, n, levels.breach, levels.met)[1]
    value = p.breach_events / n
    shown = f"{_pct(value)} {p.unit} in {n:.0f} requests (bounds {_pct(low)}-{_pct(high)}), allowed {_pct(q)}"
    base = "" if p.baseline_rate is None else f"; baseline {_pct(p.baseline_rate)}"

    def verdict(result: Result, log_e: float | None, why: str) -> Verdict:
        pv = None if log_e is None else stats.p_value(log_e)
        reason = f"{why}: {shown}{base}"
        return Verdict(p.name, result, value, q, int(n), p.baseline_rate, log_e, pv, reason, low, high)

    if q <= 0.0:  # max 0: any bad event breaches; none in minRequests requests meets it
        if p.breach_events > 0:
            return verdict(FAIL, None, "max is 0 and there are some")
        return verdict(PASS, None, "max is 0 and there are none")
    if q >= 1.0:
        return verdict(PASS, None, "max 100% always met")
    met = stats.log_evalue(p.met_events, n, q, "less")
    breach = stats.log_evalue(p.breach_events, n, q, "greater")
    worse = _relative(p, levels)
    if met >= stats.evidence_threshold(levels.met):
        if p.baseline_missing:
            return verdict(INCONCLUSIVE, None, "met, but the baseline's series are missing")
        note = " (though worse than baseline)" if worse is not None and worse[0] else ""
        return verdict(PASS, met, f"SLO shown to be met{note}")
    breached = breach >= stats.evidence_threshold(levels.breach)
    if worse is not None and worse[0]:
        also = ", and SLO shown to be breached" if breached else ""
        why = f"worse than baseline beyond the {levels.margin:.0%} margin (rate ratio {worse[2]:.2f}){also}"
        return verdict(FAIL, worse[1], why)
    if breached:
        if p.baseline_rate is not None and p.baseline_rate > q:
            why = "breached, but so is the baseline (service-wide); the candidate is not shown worse"
            return verdict(INCONCLUSIVE, None, why)
        return verdict(FAIL, breach, "SLO shown to be breached")
    return verdict(INCONCLUSIVE, None, "not enough evidence yet")


def _relative(p: _Proportion, levels: _Levels) -> tuple[bool, float, float] | None:
    """(candidate shown worse, log e-value, observed rate ratio), or None if no comparison."""
    if not levels.compare or p.relative is None:
        return None
    kc, nc, kb, nb = p.relative
    if nc <= 0 or nb <= 0 or kc + kb <= 0:
        return None
    theta0 = stats.null_share(nc, nb, levels.margin)
    log_e = stats.log_evalue(kc, kc + kb, theta0, "greater")
    ratio = (kc / nc) / (kb / nb) if kb > 0 else math.inf
    return log_e >= stats.evidence_threshold(levels.relative), log_e, ratio


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _assess_error_rate(
    name: str, max_rate: float, candidate: VariantData, baseline: VariantData | None, levels: _Levels
) -> Verdict:
    counts = _error_counts(candidate)
    if counts is None:
        return _inconclusive(name, "request/error counts missing, NaN or inconsistent", threshold=max_rate)
    errors, total = counts
    base = _error_counts(baseline) if baseline is not None else None
    base_usable = base is not None and base[1] >= levels.min_requests
    return _judge(
        _Proportion(
            name=name,
            allowed=max_rate,
            requests=total,
            breach_events=errors,
            met_events=errors,
            relative=None if base is None else (errors, total, base[0], base[1]),
            baseline_rate=base[0] / base[1] if base is not None and base_usable else None,
            baseline_missing=baseline is not None and base is None,
            unit="errors",
        ),
        levels,
    )


def _assess_latency(
    name: str, slo: LatencySlo, candidate: VariantData, baseline: VariantData | None, levels: _Levels
) -> Verdict:
    allowed = round(1.0 - slo.percentile / 100.0, 12)
    limit = parse_duration(slo.max).total_seconds()
    buckets = stats.clean_buckets(candidate.latency.buckets) if candidate.latency else None
    if buckets is None:
        return _inconclusive(name, "latency histogram missing, NaN or without a +Inf bucket", threshold=allowed)
    below, above = stats.bracketing_bounds(buckets, limit)
    total = stats.histogram_total(buckets)
    # Surely slower than max: above the next bound up (none: no request is surely slower).
    breach = stats.count_above(buckets, above) if above is not None else 0.0
    # Possibly slower than max: above the bound below (none: every request may be).
    met = stats.count_above(buckets, below) if below is not None else total
    base = stats.clean_buckets(baseline.latency.buckets) if baseline is not None and baseline.latency else None
    relative, base_rate = None, None
    if base is not None:
        base_total = stats.histogram_total(base)
        if above is not None and _has_bound(base, above) and base_total >= levels.min_requests:
            base_rate = stats.count_above(base, above) / base_total
        ref = _reference_bound(buckets, base, allowed)
        if ref is not None:
            relative = (stats.count_above(buckets, ref), total, stats.count_above(base, ref), base_total)
    unit = f"slower than {_bound_text(below, above, limit)}"
    missing = baseline is not None and base is None
    return _judge(_Proportion(name, allowed, total, breach, met, relative, base_rate, missing, unit), levels)


def _has_bound(buckets: stats.Buckets, bound: float) -> bool:
    return any(le == bound for le, _ in buckets)


def _bound_text(below: float | None, above: float | None, limit: float) -> str:
    if below == above:
        return f"{limit:g}s"
    return f"{limit:g}s (between bucket bounds {below or 0:g}s and {above if above is not None else math.inf:g}s)"


def _reference_bound(cand: stats.Buckets, base: stats.Buckets, allowed: float) -> float | None:
    """The shared finite bound where the pooled share of slower requests is nearest ``allowed``.

    Chosen from the pooled histogram, which under "no difference" does not depend on
    which variant served which request, so the choice does not bias the test.
    """
    pooled_total = stats.histogram_total(cand) + stats.histogram_total(base)
    if pooled_total <= 0:
        return None
    best, best_distance = None, math.inf
    for le, _ in cand:
        if le == math.inf or not _has_bound(base, le):
            continue
        share = (stats.count_above(cand, le) + stats.count_above(base, le)) / pooled_total
        if share <= 0:
            continue
        distance = abs(math.log(share / allowed))
        if distance < best_distance:
            best, best_distance = le, distance
    return best


def _assess_query(
    name: str,
    low: float | None,
    high: float | None,
    candidate: VariantData,
    baseline: VariantData | None,
    levels: _Levels,
) -> Verdict:
    """A custom query: one number, compared with min/max; no sampling model, so no test."""
    threshold = high if high is not None else low
    value = _finite(candidate.queries.get(name))
    served = _requests(candidate) or 0.0
    if value is None:
        return _inconclusive(name, "query returned no value (missing or NaN)", served, threshold)
    if served < levels.min_requests:
        why = f"{served:.0f} requests so far, fewer than minRequests {levels.min_requests}"
        return _inconclusive(name, why, served, threshold)
    base = _finite(baseline.queries.get(name)) if baseline is not None else None

    def outside(x: float) -> bool:
        return (high is not None and x > high) or (low is not None and x < low)

    bounds = f"min {'-' if low is None else f'{low:g}'}, max {'-' if high is None else f'{high:g}'}"
    text = f"value {value:g} ({bounds}) after {served:.0f} requests" + ("" if base is None else f"; baseline {base:g}")

    def verdict(result: Result, why: str) -> Verdict:
        return Verdict(name, result, value, threshold, int(served), base, None, None, f"{why}: {text}")

    if outside(value):
        if base is not None and outside(base):
            return verdict(INCONCLUSIVE, "outside bounds, but so is the baseline (service-wide)")
        return verdict(FAIL, "outside bounds")
    if baseline is not None and base is None:
        return verdict(INCONCLUSIVE, "within bounds, but the baseline's value is missing")
    return verdict(PASS, "within bounds")


def _assess_traffic(candidate: VariantData, baseline: VariantData | None, levels: _Levels) -> Verdict:
    """No SLOs: enough traffic served, and (with a baseline) errors not shown worse than stable's."""
    served = _requests(candidate)
    if served is None:
        return _inconclusive(TRAFFIC_SLO, "no request counts (missing or NaN)")
    if served < levels.min_requests:
        why = f"{served:.0f} requests so far, fewer than minRequests {levels.min_requests}"
        return _inconclusive(TRAFFIC_SLO, why, served)
    if baseline is None:
        return Verdict(TRAFFIC_SLO, PASS, None, None, int(served), None, None, None, "no SLOs: minRequests served")
    counts, base = _error_counts(candidate), _error_counts(baseline)
    if counts is None or base is None:
        return _inconclusive(TRAFFIC_SLO, "error counts of candidate or baseline missing: cannot compare", served)
    (errors, total), (base_errors, base_total) = counts, base
    rate, base_rate = errors / total, (base_errors / base_total if base_total > 0 else None)
    p = _Proportion(TRAFFIC_SLO, 1.0, total, errors, errors, (errors, total, base_errors, base_total), None, False, "errors")
    whole = _Levels(levels.min_requests, levels.met, levels.met, levels.met, levels.margin, True)  # the only test
    worse = _relative(p, whole)
    if worse is not None and worse[0]:
        why = f"no SLOs, but errors worse than baseline (rate ratio {worse[2]:.2f})"
        return Verdict(TRAFFIC_SLO, FAIL, rate, None, int(served), base_rate, worse[1], stats.p_value(worse[1]), why)
    why = "no SLOs: minRequests served, errors not shown worse than baseline"
    return Verdict(TRAFFIC_SLO, PASS, rate, None, int(served), base_rate, None, None, why)


# --- Experiments (A/B/n): a winner on one metric ------------------------------------------

ComparisonResult = Literal["Winner", "NoDifference", "Inconclusive"]


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
            "statistic": _json_number(self.statistic),
            "pValue": _json_number(self.p_value),
            "samples": dict(self.samples),
            "values": {k: _json_number(v) for k, v in self.values.items()},
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
    samples = {v.name: int(_number(v.samples) or 0) for v in variants}
    proportions = all(_number(v.events) is not None for v in variants)
    means = all(_number(v.mean) is not None and _number(v.variance) is not None for v in variants)
    values: dict[str, float | None] = {}
    for v in variants:
        n, k = _number(v.samples), _number(v.events)
        values[v.name] = (min(k, n) / n if proportions and n and k is not None else v.mean if means else None)

    def verdict(result: ComparisonResult, reason: str, test: str = "", winner: str | None = None,
                statistic: float | None = None, p: float | None = None) -> Comparison:
        return Comparison(metric, result, winner, statistic, p, samples, values, test, reason)

    if any(_number(v.samples) is None for v in variants) or not (proportions or means):
        return verdict("Inconclusive", "metric missing or NaN for some variant (a mean needs its variance)")
    short = [v.name for v in variants if samples[v.name] < min_samples]
    if short:
        return verdict("Inconclusive", f"waiting for minSamples {min_samples}: {', '.join(short)} below")
    ns = [float(_number(v.samples) or 0.0) for v in variants]
    if proportions:
        ks = [min(float(_number(v.events) or 0.0), n) for v, n in zip(variants, ns)]
        test = "two-proportion z-test, Bonferroni over pairs"

        def pair(i: int, j: int) -> tuple[float, float]:
            return stats.two_proportion_ztest(ks[i], ns[i], ks[j], ns[j])

        observed = [k / n for k, n in zip(ks, ns)]
    else:
        test = "Welch t-test, Bonferroni over pairs"
        ms = [float(v.mean or 0.0) for v in variants]
        vs = [float(v.variance or 0.0) for v in variants]

        def pair(i: int, j: int) -> tuple[float, float]:
            return stats.welch_ttest(ms[i], vs[i], ns[i], ms[j], vs[j], ns[j])

        observed = ms
    outcome = stats.best_arm(observed, pair, lower_is_better=lower_is_better, significance=significance)
    best = variants[outcome.best].name
    if outcome.wins:
        return verdict("Winner", f"{best} beats every other variant (p={outcome.p_value:.3g} < {significance})",
                       test, best, outcome.statistic, outcome.p_value)
    return verdict("NoDifference", f"best observed {best}, not significant (p={outcome.p_value:.3g} >= {significance})",
                   test, None, outcome.statistic, outcome.p_value)


def experiment_metric(name: str, data: VariantData, metric: str, slos: Sequence[Slo]) -> tuple[VariantMetric, bool]:
    """The arm's VariantMetric for ``Decide.metric``, and whether lower is better.

    ``errorRate``: errors among requests. ``latency`` (or a latency SLO's name): requests
    slower than the first latency SLO's max (its bucket bound, or the next one up).
    A query SLO's name: its value read as a per-request proportion (0-1) over the
    requests served; higher is better when the SLO only sets ``min``.
    """
    if metric == "errorRate":
        counts = _error_counts(data)
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
    raw = data.queries.get(metric)
    value = _number(raw)
    served = _requests(data)
    if value is None or served is None:
        return VariantMetric(name, None), lower_is_better
    if value <= 1.0:
        return VariantMetric(name, served, value * served), lower_is_better
    return VariantMetric(name, served, mean=value), lower_is_better
