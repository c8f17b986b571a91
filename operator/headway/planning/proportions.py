"""One SLO judged as a proportion of bad events: the anytime-valid tests and how they combine.

The rules (met -> Pass; relative -> Fail; breach -> Fail unless the baseline breaches
too; else Inconclusive) are explained in ``headway.planning.verdicts``; the tests in
``headway.planning.stats``.

With slices (per pod and interval counts, ``VariantData.slices``) the evidence is counted in
units that absorb bursts of errors: the breach test bets once per pod-interval, the relative
test once per interval and group of pods (``interval_units``), and the met test deflates the
counts by the dispersion the slices show (``judge``, ``relative``). Without slices every
request is an independent coin.

Within a rollout the Fail tests continue the evidence of its earlier windows (``Carried``):
their log wealth per bet fraction starts from what was carried, and the verdict returns what
the next window starts from (``Verdict.evidence``). The shared-incident rule also looks at the
baseline's most recent intervals (``RECENT_INTERVALS``): a breach the baseline shows there is
shared too, and the same intervals say when the baseline is back within the SLO
(``Verdict.recovered``), which is what lets a window restart after an incident (analysis.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from headway.planning import stats
from headway.planning.verdict_types import (
    FAIL, INCONCLUSIVE, PASS, Carried, Evidence, Result, Slice, Test, Verdict, inconclusive, pct,
)

# One pod over one interval: (events surely bad, events possibly bad, requests).
Unit = tuple[float, float, float]
# One variant over one interval: (bad events, requests, pods serving).
IntervalCounts = tuple[float, float, float]

# The baseline's "recent" rate: over its last intervals, at least this many (2 minutes at the
# default 30 s) and at least minRequests requests.
RECENT_INTERVALS = 4
# Log wealths below this are stored as this (exp(-700) is 1e-304: nothing is lost).
LOG_FLOOR = -700.0
LOG_CAP = 1e6
PER_WINDOW = Carried()


@dataclass(frozen=True)
class Levels:
    """Significance levels of one SLO's tests, fixed before any data is seen."""

    min_requests: int
    breach: float
    relative: float
    met: float
    margin: float
    compare: bool  # a baseline was given: run the relative test


@dataclass(frozen=True)
class Proportion:
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
    # Per pod and interval, in time order (empty: no slices, requests count as independent).
    units: tuple[Unit, ...] = ()
    # Per interval and pod group, (candidate, baseline), for the relative test (empty: window totals).
    intervals: tuple[tuple[IntervalCounts, IntervalCounts], ...] = ()
    # The baseline's pod units per interval, in time order (None: an interval with unusable slices):
    # its recent rate, for the shared-incident rule and the end of an incident.
    baseline_intervals: tuple[tuple[Unit, ...] | None, ...] = ()
    # The baseline's (surely bad events, requests) over the window, when it served minRequests
    # (None: no baseline, or too few of its requests): its confidence bounds decide whether a
    # breach is the version's (the baseline shown within the SLO) or shared (shown breaching).
    baseline_counts: tuple[float, float] | None = None


def pod_units(slices: Sequence[Slice], count: Callable[[Slice], Unit | None]) -> tuple[Unit, ...]:
    """The slices as test units in time order (then by pod); unusable slices and idle pods left out."""
    units = (count(s) for s in sorted(slices, key=lambda s: (s.start, s.pod)))
    return tuple(u for u in units if u is not None and u[2] > 0)


def intervals_of(slices: Sequence[Slice], count: Callable[[Slice], Unit | None]) -> tuple[tuple[Unit, ...] | None, ...]:
    """A variant's pod units per interval, in time order; None for an interval where a slice is unusable."""
    groups: dict[float, list[Unit | None]] = {}
    for s in slices:
        groups.setdefault(round(s.start, 3), []).append(count(s))
    rows: list[tuple[Unit, ...] | None] = []
    for start in sorted(groups):
        units = groups[start]
        rows.append(None if any(u is None for u in units) else tuple(u for u in units if u is not None and u[2] > 0))
    return tuple(rows)


def recent_units(rows: Sequence[tuple[Unit, ...] | None], min_requests: int) -> tuple[Unit, ...] | None:
    """The pod units of the last intervals: at least ``RECENT_INTERVALS`` of them and ``min_requests``
    requests (reaching further back at low traffic). None: not enough intervals, or an unusable one."""
    units: list[Unit] = []
    for i, row in enumerate(reversed(rows)):
        if row is None:
            return None
        units.extend(row)
        if i + 1 >= RECENT_INTERVALS and sum(u[2] for u in units) >= min_requests:
            return tuple(units)
    return None


def interval_units(
    cand: Sequence[Slice], base: Sequence[Slice], count: Callable[[Slice], tuple[float, float] | None]
) -> tuple[tuple[IntervalCounts, IntervalCounts], ...]:
    """Units of the comparison with stable: (bad events, requests, effective pods) of each side.

    Per interval, in time order, the pods serving in it are paired into g = min(candidate pods,
    stable pods) disjoint groups (sorted by name, dealt round-robin): candidate group i against
    stable group i. Disjoint pods make the g units of an interval independent of each other
    (given independent pods), so a canary of four pods gives four units per interval where one
    pooled share would give one; each unit still compares both variants over the same seconds.
    An interval is left out when a variant has no usable slice in it, or any unusable one
    (what is missing does not depend on the errors, so leaving it out keeps the test valid).
    Effective pods: (sum n)^2 / sum n^2 over the group's requests (a pod that served only a
    few requests counts for little).
    """
    def by_interval(slices: Sequence[Slice]) -> dict[float, list[tuple[str, tuple[float, float] | None]]]:
        groups: dict[float, list[tuple[str, tuple[float, float] | None]]] = {}
        for s in slices:
            groups.setdefault(round(s.start, 3), []).append((s.pod, count(s)))
        return groups

    def side(rows: list[tuple[float, float]]) -> IntervalCounts:
        n = sum(r[1] for r in rows)
        return sum(r[0] for r in rows), n, n * n / sum(r[1] ** 2 for r in rows)

    cands, bases = by_interval(cand), by_interval(base)
    out: list[tuple[IntervalCounts, IntervalCounts]] = []
    for start in sorted(set(cands) & set(bases)):
        serving = []
        for rows in (cands[start], bases[start]):
            if any(r is None for _, r in rows):
                break
            serving.append([r for _, r in sorted(rows, key=lambda x: x[0]) if r is not None and r[1] > 0])
        if len(serving) < 2 or not serving[0] or not serving[1]:
            continue
        g = min(len(serving[0]), len(serving[1]))
        out.extend((side(serving[0][i::g]), side(serving[1][i::g])) for i in range(g))
    return tuple(out)


def judge(p: Proportion, levels: Levels, carried: Carried = PER_WINDOW) -> Verdict:
    """Pass, Fail or Inconclusive for one proportion, in the order the module doc gives.

    ``carried``: what the Fail tests start from in this window (the rollout's earlier windows);
    by default nothing (a window on its own)."""
    n, q = p.requests, p.allowed
    if n < levels.min_requests:
        return inconclusive(p.name, f"{n:.0f} requests so far, fewer than minRequests {levels.min_requests}", n, q)
    units = p.units
    # Met: the window's counts deflated by the dispersion the slices show (1 without slices).
    phi = stats.dispersion([u[1] for u in units], [u[2] for u in units])[0] if units else 1.0
    met_k, met_n = p.met_events / phi, n / phi
    if units:  # breach: bets per pod-interval
        low = stats.betting_lower_bound([u[0] for u in units], [u[2] for u in units], levels.breach)
        high = stats.confidence_sequence(met_k, met_n, levels.breach, levels.met)[1]
    else:
        low, high = stats.confidence_sequence(p.breach_events, n, levels.breach, levels.met)
        if p.met_events != p.breach_events:  # latency max between bucket bounds: two bounds
            high = stats.confidence_sequence(p.met_events, n, levels.breach, levels.met)[1]
    value = p.breach_events / n
    shown = f"{pct(value)} {p.unit} in {n:.0f} requests (bounds {pct(low)}-{pct(high)}), allowed {pct(q)}"
    base = "" if p.baseline_rate is None else f"; baseline {pct(p.baseline_rate)}"
    if units:
        shown += f"; {len(units)} pod-intervals, dispersion {phi:.3g} ({met_n:.0f} effective requests)"
        if p.intervals:
            shown += f", {len(p.intervals)} units compared with the baseline"
    if carried.windows > 1:
        shown += f"; evidence carried from {carried.windows - 1} earlier window{'s' if carried.windows > 2 else ''} of the rollout"
    recent = recent_units(p.baseline_intervals, levels.min_requests) if p.baseline_intervals else None
    recent_rate = sum(u[0] for u in recent) / sum(u[2] for u in recent) if recent else None
    if recent_rate is not None:
        base += f" (recently {pct(recent_rate)})"
    found: list[Evidence] = []

    def verdict(result: Result, log_e: float | None, why: str, shared: bool = False, unattributed: bool = False) -> Verdict:
        pv = None if log_e is None else stats.p_value(log_e)
        reason = f"{why}: {shown}{base}"
        return Verdict(p.name, result, value, q, int(n), p.baseline_rate, log_e, pv, reason, low, high,
                       dispersion=phi if units else None, evidence=tuple(found), shared=shared,
                       baseline_recent=recent_rate, recovered=recent_rate is not None and recent_rate <= q,
                       unattributed=unattributed)

    if q <= 0.0:  # max 0: any bad event breaches; none in minRequests requests meets it
        if p.breach_events > 0:
            return verdict(FAIL, None, "max is 0 and there are some")
        return verdict(PASS, None, "max is 0 and there are none")
    if q >= 1.0:
        return verdict(PASS, None, "max 100% always met")
    met = stats.log_evalue(met_k, met_n, q, "less")
    if units:
        window = stats.log_wealths([u[0] / (q * u[2]) for u in units])
    else:
        window = _flat(stats.log_evalue(p.breach_events, n, q, "greater"))
    found.append(_evidence(p.name, "breach", q, carried.start(p.name, "breach", q), window))
    breach = found[-1].log_e
    worse = relative(p, levels, carried)
    if worse is not None:
        found.append(worse[3])
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
    recently = recent is not None and stats.log_betting_evalue(
        [u[0] / (q * u[2]) for u in recent]) >= stats.evidence_threshold(levels.breach)
    base_state = "breaching" if recently else _baseline_state(p, levels, breached)
    if breached:
        if base_state == "breaching":
            where = "over its recent intervals" if recently else "over the window"
            why = f"breached, but so is the baseline ({where}: service-wide); the candidate is not shown worse"
            return verdict(INCONCLUSIVE, None, why, shared=True)
        if p.name in carried.set_aside:
            why = ("breached, but the baseline breached too earlier in this window (a shared incident): the breach "
                   "evidence is set aside until the window restarts")
            return verdict(INCONCLUSIVE, None, why)
        if base_state == "unknown":
            why = ("breached, but the baseline is not shown within the SLO (its own bounds reach above it): not yet "
                   "shown to be the candidate's")
            return verdict(INCONCLUSIVE, breach, why, unattributed=True)
        return verdict(FAIL, breach, "SLO shown to be breached")
    if base_state == "breaching":
        where = "over its recent intervals" if recently else "over the window"
        why = (f"not enough evidence yet, and the baseline breaches the SLO ({where}: a service-wide incident); "
               "the window restarts once the baseline is back within it")
        return verdict(INCONCLUSIVE, None, why, shared=True)
    return verdict(INCONCLUSIVE, None, "not enough evidence yet")


def _baseline_state(p: Proportion, levels: Levels, breached: bool) -> str | None:
    """Where the baseline's rate over the window stands against the SLO, at the breach test's level:
    "breaching" (its lower bound above ``allowed``), "within" (its upper bound at or below it), "unknown"
    (its bounds straddle it), or None (not compared: no baseline counts).

    With slices, the lower bound bets per pod-interval and the upper bound deflates the counts by the
    slices' dispersion, as for the candidate. Only what the caller needs is computed: "within" only
    after a breach (it decides between Fail and Inconclusive), "breaching" only above the SLO's point."""
    if p.baseline_counts is None or p.baseline_counts[1] <= 0:
        return None
    k, n = p.baseline_counts
    q = p.allowed
    units = [u for row in p.baseline_intervals if row for u in row]
    if k / n > q:
        if units:
            low = stats.betting_lower_bound([u[0] for u in units], [u[2] for u in units], levels.breach)
        else:
            low = stats.confidence_sequence(k, n, levels.breach)[0]
        if low > q:
            return "breaching"
    if not breached:
        return "unknown"
    phi = stats.dispersion([u[0] for u in units], [u[2] for u in units])[0] if units else 1.0
    high = stats.confidence_sequence(k / phi, n / phi, levels.breach)[1]
    return "within" if high <= q else "unknown"


def _flat(log_e: float) -> tuple[float, ...]:
    """A per-request mixture e-value as the factor of every bet fraction (it multiplies each chain alike)."""
    return (log_e,) * len(stats.BET_FRACTIONS)


def _evidence(slo: str, test: Test, null: float, start: Sequence[float], window: Sequence[float]) -> Evidence:
    return Evidence(slo, test, null, tuple(stored_log(a + b) for a, b in zip(start, window)))


def stored_log(x: float) -> float:
    """A log wealth as status keeps it (finite, for JSON): rounded *down* to 6 decimals, between
    ``LOG_FLOOR`` and ``LOG_CAP`` (an e-value of exp(-700) is 0; one of exp(1e6) rejects at any level)."""
    if math.isnan(x) or x <= LOG_FLOOR:
        return LOG_FLOOR
    if x >= LOG_CAP:
        return LOG_CAP
    return math.floor(x * 1e6) / 1e6


def relative(p: Proportion, levels: Levels, carried: Carried = PER_WINDOW) -> tuple[bool, float, float, Evidence] | None:
    """(candidate shown worse, log e-value, observed rate ratio, evidence after this look), or None if no comparison."""
    if not levels.compare or p.relative is None:
        return None
    kc, nc, kb, nb = p.relative
    if nc <= 0 or nb <= 0 or kc + kb <= 0:
        return None
    if p.intervals:  # bets per interval on the candidate's share of that interval's bad events
        ratios = (stats.share_ratio(cand, base, levels.margin) for cand, base in p.intervals)
        window = stats.log_wealths([r for r in ratios if r is not None])
    else:
        theta0 = stats.null_share(nc, nb, levels.margin)
        window = _flat(stats.log_evalue(kc, kc + kb, theta0, "greater"))
    evidence = _evidence(p.name, "relative", levels.margin, carried.start(p.name, "relative", levels.margin), window)
    log_e = evidence.log_e
    ratio = (kc / nc) / (kb / nb) if kb > 0 else math.inf
    return log_e >= stats.evidence_threshold(levels.relative), log_e, ratio, evidence
