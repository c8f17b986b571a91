"""A latency SLO judged from Prometheus histogram buckets.

The SLO ``max`` rarely sits on a bucket bound, so the share above ``max`` is bracketed:
requests above the next bound up are surely slower than ``max`` (breach is judged on
them) and requests above the bound below include every request slower than ``max`` (met
is judged on them). No interpolation inside a bucket is assumed. The relative test uses
the bucket bound where the pooled (candidate + baseline) share of slower requests is
nearest the percentile's share. With slices, each pod-interval's own histogram gives its
units (``headway.planning.proportions``).
"""

from __future__ import annotations

import math

from headway.api.analysis_spec import LatencySlo
from headway.api.types import parse_duration
from headway.planning import stats
from headway.planning.proportions import PER_WINDOW, Levels, Proportion, interval_units, intervals_of, judge, pod_units
from headway.planning.verdict_types import Carried, Slice, VariantData, Verdict, inconclusive


def assess_latency(name: str, slo: LatencySlo, candidate: VariantData, baseline: VariantData | None, levels: Levels,
                   carried: Carried = PER_WINDOW) -> Verdict:
    allowed = round(1.0 - slo.percentile / 100.0, 12)
    limit = parse_duration(slo.max).total_seconds()
    buckets = stats.clean_buckets(candidate.latency.buckets) if candidate.latency else None
    if buckets is None:
        return inconclusive(name, "latency histogram missing, NaN or without a +Inf bucket", threshold=allowed)
    below, above = stats.bracketing_bounds(buckets, limit)
    total = stats.histogram_total(buckets)
    # Surely slower than max: above the next bound up (none: no request is surely slower).
    breach = stats.count_above(buckets, above) if above is not None else 0.0
    # Possibly slower than max: above the bound below (none: every request may be).
    met = stats.count_above(buckets, below) if below is not None else total
    base = stats.clean_buckets(baseline.latency.buckets) if baseline is not None and baseline.latency else None
    relative, base_rate, ref = None, None, None
    if base is not None:
        base_total = stats.histogram_total(base)
        if above is not None and _has_bound(base, above) and base_total >= levels.min_requests:
            base_rate = stats.count_above(base, above) / base_total
        ref = _reference_bound(buckets, base, allowed)
        if ref is not None:
            relative = (stats.count_above(buckets, ref), total, stats.count_above(base, ref), base_total)
    unit = f"slower than {_bound_text(below, above, limit)}"
    missing = baseline is not None and base is None

    def slice_unit(s: Slice) -> tuple[float, float, float] | None:
        b = _slice_buckets(s, [x for x in (below, above) if x is not None])
        if b is None:
            return None
        n = stats.histogram_total(b)
        surely = stats.count_above(b, above) if above is not None else 0.0
        return surely, (stats.count_above(b, below) if below is not None else n), n

    def slice_pair(s: Slice) -> tuple[float, float] | None:
        b = None if ref is None else _slice_buckets(s, [ref])
        return None if b is None or ref is None else (stats.count_above(b, ref), stats.histogram_total(b))

    intervals = () if ref is None or baseline is None else interval_units(candidate.slices, baseline.slices, slice_pair)
    recent = () if baseline is None else intervals_of(baseline.slices, slice_unit)
    return judge(Proportion(name, allowed, total, breach, met, relative, base_rate, missing, unit,
                            units=pod_units(candidate.slices, slice_unit), intervals=intervals, baseline_intervals=recent),
                 levels, carried)


def _slice_buckets(s: Slice, bounds: list[float]) -> stats.Buckets | None:
    """One slice's histogram, if usable and holding the bucket bounds the SLO needs."""
    b = stats.clean_buckets(s.latency.buckets) if s.latency is not None else None
    return b if b is not None and all(_has_bound(b, x) for x in bounds) else None


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
