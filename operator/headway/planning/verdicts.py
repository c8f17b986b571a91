"""Verdicts: is the candidate meeting its SLOs? Pass, Fail or Inconclusive, with evidence.

Pure code: the reconciler queries Prometheus for *cumulative* counts over the analysis
window (``increase(...[<since the window began>])``) for the candidate and for the
stable baseline serving the same traffic at the same time, and passes them in. Every
verdict is a function of those counts and of what status carries from the rollout's
earlier windows (``carried``, fixed for the window), so an operator that dies between two
looks and restarts from status decides the same thing; nothing else is kept between looks.

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
     window or over its most recent intervals (baseline drift, a shared incident: rolling
     back would not help) -> Inconclusive;
  5. otherwise Inconclusive: not enough evidence either way yet.
* Latency from histogram buckets (``headway.planning.latency``): the SLO ``max`` rarely
  sits on a bucket bound, so the share above ``max`` is bracketed: requests above the next bound up are surely slower
  than ``max`` (breach is judged on them) and requests above the bound below include
  every request slower than ``max`` (met is judged on them). No interpolation inside a
  bucket is assumed. The relative latency test uses the bucket bound where the pooled
  (candidate + baseline) share of slower requests is nearest the percentile's share.
* Bursts of errors (a pod failing for a few seconds): with ``VariantData.slices`` (per pod
  and interval counts) the breach and relative tests bet once per unit (pod-interval;
  interval and group of pods) instead of once per request, so their guarantee needs
  independent units, not independent requests, and one burst is one bad unit; the met test
  deflates the counts by the dispersion the slices show (``headway.planning.proportions``,
  ``headway.planning.stats``, docs/verdicts.md "Errors come in bursts").
* False rollbacks, the guarantee: ``alpha`` is split over the SLOs and, within an SLO,
  equally between the breach and the relative test (Bonferroni). Judged with ``carried``
  (``analysis.carried``: the windows of one rollout, i.e. its steps and the bake after its
  promotion), each Fail test is one e-process over the whole rollout: every window starts a
  chain of bets with prior weight 1/((j+1)(j+2)) that continues over the later windows, so
  the probability that a version within every SLO's null (and no worse than stable) gets
  even one Fail, at any look of any window of the rollout, is at most ``alpha``. A window
  judged alone (``carried`` None: an experiment, a caller judging one window) has ``alpha``
  for that window only. A step passes an SLO that is actually breached with probability <=
  alpha (the met test gets a share of alpha per restart of its window, the shares summing
  to 1). After a breach shared with the baseline the window restarts once the baseline is
  back within the SLO (``analysis.record``), and that breach evidence is never carried.
  Assumptions (independent units, an unchanged spec.analysis): docs/verdicts.md, "The
  false-rollback budget" and "Shared incidents end".
Where the parts live: measurements and ``Verdict`` in ``headway.planning.verdict_types``,
the tests of one proportion and how they combine in ``headway.planning.proportions``,
latency in ``headway.planning.latency``, experiments (a winner between arms) in
``headway.planning.comparison``. This module judges a whole ``spec.analysis`` and
re-exports the names callers use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from headway.api.analysis_spec import QuerySlo, Slo
from headway.planning import stats
from headway.planning.comparison import Comparison, ComparisonResult, VariantMetric, compare_variants, experiment_metric
from headway.planning.latency import assess_latency
from headway.planning.proportions import PER_WINDOW, Levels, Proportion, interval_units, intervals_of, judge, pod_units, relative
from headway.planning.verdict_types import (
    DEFAULT_ALPHA, DEFAULT_MARGIN, FAIL, INCONCLUSIVE, PASS, TRAFFIC_SLO, Carried, Evidence, Histogram, RequestCounts, Result,
    Slice, VariantData, Verdict, error_counts, finite, inconclusive, overall, ratio_counts, request_counts, requests_served,
    slo_name,
)

__all__ = [
    "DEFAULT_ALPHA", "DEFAULT_MARGIN", "FAIL", "INCONCLUSIVE", "PASS", "TRAFFIC_SLO", "Carried", "Comparison",
    "ComparisonResult", "Evidence", "Histogram", "RequestCounts", "Result", "Slice", "VariantData", "VariantMetric", "Verdict",
    "assess", "compare_variants", "experiment_metric", "overall", "slo_name",
]


def assess(
    slos: Sequence[Slo],
    candidate_data: VariantData | None,
    baseline_data: VariantData | None,
    min_requests: int,
    alpha: float = DEFAULT_ALPHA,
    *,
    margin: float = DEFAULT_MARGIN,
    carried: Carried | None = None,
) -> list[Verdict]:
    """Judge every SLO of ``spec.analysis`` at one look; one Verdict per SLO, in order.

    ``baseline_data`` None means there is no baseline to compare with (e.g. the bake
    time after promotion): absolute checks only. A baseline given with missing series
    makes every non-Fail verdict Inconclusive. With no SLOs, one implicit ``traffic``
    verdict is returned: Pass once ``min_requests`` were served with usable counts and
    the candidate's error rate is not shown to exceed the baseline's; never an empty list.

    ``carried`` None judges this window on its own: alpha holds for it (the breach test gets the
    relative test's share when there is no baseline). With ``carried`` (``analysis.carried``: one
    window of a rollout) the Fail tests continue the rollout's evidence and alpha holds for the
    whole rollout: the split is then fixed whatever the window (breach and relative alpha/(2 x
    SLOs) each, with or without a baseline), and the met test gets ``carried.met_share`` of alpha.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be inside (0, 1), got {alpha}")
    candidate = candidate_data or VariantData()
    compare = baseline_data is not None
    per_slo = alpha / max(1, len(slos))
    levels = Levels(
        min_requests=max(1, min_requests),
        breach=per_slo / 2 if compare or carried is not None else per_slo,
        relative=per_slo / 2,
        met=alpha * (carried.met_share if carried is not None else 1.0),
        margin=margin,
        compare=compare,
    )
    prior = carried if carried is not None else PER_WINDOW
    if not slos:
        return [_assess_traffic(candidate, baseline_data, levels, prior)]
    verdicts = []
    for slo in slos:
        name = slo_name(slo)
        if slo.error_rate is not None:
            verdicts.append(_assess_error_rate(name, slo.error_rate.max, candidate, baseline_data, levels, prior))
        elif slo.latency is not None:
            verdicts.append(assess_latency(name, slo.latency, candidate, baseline_data, levels, prior))
        else:
            assert slo.query is not None
            verdicts.append(_assess_query(name, slo.query, candidate, baseline_data, levels, prior))
    return verdicts


def _assess_error_rate(
    name: str, max_rate: float, candidate: VariantData, baseline: VariantData | None, levels: Levels, carried: Carried
) -> Verdict:
    counts = error_counts(candidate)
    if counts is None:
        return inconclusive(name, "request/error counts missing, NaN or inconsistent", threshold=max_rate)
    errors, total = counts
    base = error_counts(baseline) if baseline is not None else None
    base_usable = base is not None and base[1] >= levels.min_requests
    return judge(
        Proportion(
            name=name,
            allowed=max_rate,
            requests=total,
            breach_events=errors,
            met_events=errors,
            relative=None if base is None else (errors, total, base[0], base[1]),
            baseline_rate=base[0] / base[1] if base is not None and base_usable else None,
            baseline_counts=base if base is not None and base_usable else None,
            baseline_missing=baseline is not None and base is None,
            unit="errors",
            units=pod_units(candidate.slices, _slice_errors),
            intervals=() if baseline is None else interval_units(candidate.slices, baseline.slices, _slice_error_pair),
            baseline_intervals=() if baseline is None else intervals_of(baseline.slices, _slice_errors),
        ),
        levels,
        carried,
    )


def _slice_errors(s: Slice) -> tuple[float, float, float] | None:
    counts = request_counts(s.requests)
    return None if counts is None else (counts[0], counts[0], counts[1])


def _slice_error_pair(s: Slice) -> tuple[float, float] | None:
    return request_counts(s.requests)


def _assess_query(name: str, slo: QuerySlo, candidate: VariantData, baseline: VariantData | None, levels: Levels,
                  carried: Carried) -> Verdict:
    """A custom query: a ratio is a proportion, tested like the error rate; a value is untested."""
    if slo.numerator is not None:
        return _assess_ratio(name, slo, candidate, baseline, levels, carried)
    return _assess_value(name, slo.min, slo.max, candidate, baseline, levels)


def _assess_ratio(name: str, slo: QuerySlo, candidate: VariantData, baseline: VariantData | None, levels: Levels,
                  carried: Carried) -> Verdict:
    """numerator / denominator over the window, judged by the proportion test (``judge``).

    The bad events are the numerator's with ``max`` (allowed share ``max``), and the
    denominator's events outside the numerator with ``min`` (allowed share ``1 - min``):
    "ratio >= min" is exactly "1 - ratio <= 1 - min", so met, breach and the relative test
    apply unchanged, and "worse than stable" means a lower ratio. The denominator's events
    are the samples (minRequests counts them). The verdict is reported in the ratio's
    terms: value, threshold, baseline value and bounds are ratios, compared with ``min``.
    """
    at_least = slo.min is not None
    bound = slo.min if slo.min is not None else slo.max
    assert bound is not None  # a ratio sets exactly one of min and max (CRD rule)
    allowed = 1.0 - bound if at_least else bound

    def bad(counts: tuple[float, float]) -> tuple[float, float]:
        numerator, denominator = counts
        return (max(0.0, denominator - numerator) if at_least else numerator), denominator

    raw = candidate.ratios.get(name, (None, None))
    counts = ratio_counts(candidate, name)
    if counts is None:
        missing = [part for part, x in zip(("numerator", "denominator"), raw) if finite(x) is None]
        why = f"{' and '.join(missing)} returned no value (missing or NaN)" if missing else "counts negative or numerator above denominator"
        return inconclusive(name, f"ratio {why}", 0.0, bound)
    events, n = bad(counts)
    base = ratio_counts(baseline, name) if baseline is not None else None
    base_events, base_n = bad(base) if base is not None else (0.0, 0.0)
    verdict = judge(
        Proportion(
            name=name,
            allowed=allowed,
            requests=n,
            breach_events=events,
            met_events=events,
            relative=None if base is None else (events, n, base_events, base_n),
            baseline_rate=base_events / base_n if base is not None and base_n >= levels.min_requests else None,
            baseline_counts=(base_events, base_n) if base is not None and base_n >= levels.min_requests else None,
            baseline_missing=baseline is not None and base is None,
            unit="outside the numerator" if at_least else "counted by the numerator",
        ),
        levels,
        carried,
    )
    # judge() calls the samples "requests": say what they are here.
    shown = f"ratio {counts[0] / n:.4g} = {counts[0]:.0f}/{n:.0f}" if n > 0 else f"ratio -, denominator {n:.0f}"
    reason = f"{verdict.reason}; {shown}, {'min' if at_least else 'max'} {bound:g}"
    if not at_least:
        return replace(verdict, reason=reason)

    def flip(x: float | None) -> float | None:
        return None if x is None else 1.0 - x

    return replace(verdict, value=flip(verdict.value), threshold=bound, baseline_value=flip(verdict.baseline_value),
                   ci_low=flip(verdict.ci_high), ci_high=flip(verdict.ci_low), reason=reason)


def _assess_value(
    name: str,
    low: float | None,
    high: float | None,
    candidate: VariantData,
    baseline: VariantData | None,
    levels: Levels,
) -> Verdict:
    """A value query: one number compared with min/max, no sampling model, so *untested*.

    Within bounds -> Pass; out of bounds -> Inconclusive (it holds the rollout, and the
    reason says why), never Fail: a number with no test behind it cannot tell noise from a
    regression, so it may block a promotion but never roll back (``overall``).
    """
    threshold = high if high is not None else low
    value = finite(candidate.queries.get(name))
    served = requests_served(candidate) or 0.0
    if value is None:
        return replace(inconclusive(name, "untested query returned no value (missing or NaN)", served, threshold), tested=False)
    if served < levels.min_requests:
        why = f"untested query: {served:.0f} requests so far, fewer than minRequests {levels.min_requests}"
        return replace(inconclusive(name, why, served, threshold), tested=False)
    base = finite(baseline.queries.get(name)) if baseline is not None else None

    def outside(x: float) -> bool:
        return (high is not None and x > high) or (low is not None and x < low)

    bounds = f"min {'-' if low is None else f'{low:g}'}, max {'-' if high is None else f'{high:g}'}"
    text = f"value {value:g} ({bounds}) after {served:.0f} requests" + ("" if base is None else f"; baseline {base:g}")

    def verdict(result: Result, why: str) -> Verdict:
        return Verdict(name, result, value, threshold, int(served), base, None, None, f"untested query {why}: {text}", tested=False)

    if outside(value):
        if base is not None and outside(base):
            return verdict(INCONCLUSIVE, "outside bounds, but so is the baseline (service-wide)")
        return verdict(INCONCLUSIVE, "outside bounds: holding (an untested value never rolls back; "
                                     "write it as numerator/denominator to test it)")
    if baseline is not None and base is None:
        return verdict(INCONCLUSIVE, "within bounds, but the baseline's value is missing")
    return verdict(PASS, "within bounds")


def _assess_traffic(candidate: VariantData, baseline: VariantData | None, levels: Levels, carried: Carried) -> Verdict:
    """No SLOs: enough traffic served, and (with a baseline) errors not shown worse than stable's."""
    served = requests_served(candidate)
    if served is None:
        return inconclusive(TRAFFIC_SLO, "no request counts (missing or NaN)")
    if served < levels.min_requests:
        why = f"{served:.0f} requests so far, fewer than minRequests {levels.min_requests}"
        return inconclusive(TRAFFIC_SLO, why, served)
    if baseline is None:
        return Verdict(TRAFFIC_SLO, PASS, None, None, int(served), None, None, None, "no SLOs: minRequests served")
    counts, base = error_counts(candidate), error_counts(baseline)
    if counts is None or base is None:
        return inconclusive(TRAFFIC_SLO, "error counts of candidate or baseline missing: cannot compare", served)
    (errors, total), (base_errors, base_total) = counts, base
    rate, base_rate = errors / total, (base_errors / base_total if base_total >= levels.min_requests else None)
    p = Proportion(TRAFFIC_SLO, 1.0, total, errors, errors, (errors, total, base_errors, base_total), None, False, "errors",
                   intervals=interval_units(candidate.slices, baseline.slices, _slice_error_pair))
    whole = Levels(levels.min_requests, levels.met, levels.met, levels.met, levels.margin, True)  # the only test
    worse = relative(p, whole, carried)
    found = () if worse is None else (worse[3],)
    if worse is not None and worse[0]:
        why = f"no SLOs, but errors worse than baseline (rate ratio {worse[2]:.2f})"
        return Verdict(TRAFFIC_SLO, FAIL, rate, None, int(served), base_rate, worse[1], stats.p_value(worse[1]), why, evidence=found)
    why = "no SLOs: minRequests served, errors not shown worse than baseline"
    return Verdict(TRAFFIC_SLO, PASS, rate, None, int(served), base_rate, None, None, why, evidence=found)
