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

import functools
import math
from collections.abc import Sequence

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
    relative, base_rate, ref, base_counts = None, None, None, None
    if base is not None:
        base_total = stats.histogram_total(base)
        if above is not None and _has_bound(base, above) and base_total >= levels.min_requests:
            base_counts = (stats.count_above(base, above), base_total)
            base_rate = base_counts[0] / base_total
        ref = _reference_bound(buckets, base, allowed)
        if ref is not None:
            relative = (stats.count_above(buckets, ref), total, stats.count_above(base, ref), base_total)
    unit = f"slower than {_bound_text(below, above, limit)}"
    missing = baseline is not None and base is None

    needed = [x for x in (below, above, ref) if x is not None]
    seen: dict[int, dict[float, float] | None] = {}

    def counts(s: Slice) -> dict[float, float] | None:
        """The slice's requests slower than each bound the SLO needs (``inf``: all), once per slice."""
        key = id(s)
        if key not in seen:
            seen[key] = None if s.latency is None else _slice_counts(s.latency.buckets, needed)
        return seen[key]

    def slice_unit(s: Slice) -> tuple[float, float, float] | None:
        c = counts(s)
        if c is None or any(x is not None and x not in c for x in (below, above)):
            return None
        n = c[math.inf]
        return (c[above] if above is not None else 0.0), (c[below] if below is not None else n), n

    def slice_pair(s: Slice) -> tuple[float, float] | None:
        c = None if ref is None else counts(s)
        return None if c is None or ref is None or ref not in c else (c[ref], c[math.inf])

    intervals = () if ref is None or baseline is None else interval_units(candidate.slices, baseline.slices, slice_pair)
    recent = () if baseline is None else intervals_of(baseline.slices, slice_unit)
    return judge(Proportion(name, allowed, total, breach, met, relative, base_rate, missing, unit,
                            units=pod_units(candidate.slices, slice_unit), intervals=intervals, baseline_intervals=recent,
                            baseline_counts=base_counts),
                 levels, carried)


def _slice_counts(buckets: tuple[tuple[float, float], ...], bounds: Sequence[float]) -> dict[float, float] | None:
    """One slice's requests slower than each of ``bounds`` its histogram holds, and its total
    (key ``inf``); None if the histogram is unusable."""
    try:
        return _memo_counts(buckets, tuple(bounds))
    except TypeError:  # an unhashable histogram (lists)
        return _memo_counts.__wrapped__(buckets, tuple(bounds))


@functools.lru_cache(maxsize=8192)
def _memo_counts(buckets: tuple[tuple[float, float], ...], bounds: tuple[float, ...]) -> dict[float, float] | None:
    b = stats.clean_buckets(buckets)
    if b is None:
        return None
    total = stats.histogram_total(b)
    cumulative = dict(b)
    return {**{x: total - cumulative[x] for x in bounds if x in cumulative}, math.inf: total}


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
