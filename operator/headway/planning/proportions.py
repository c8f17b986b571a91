"""One SLO judged as a proportion of bad events: the anytime-valid tests and how they combine.

The rules (met -> Pass; relative -> Fail; breach -> Fail unless the baseline breaches
too; else Inconclusive) are explained in ``headway.planning.verdicts``; the tests in
``headway.planning.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from headway.planning import stats
from headway.planning.verdict_types import FAIL, INCONCLUSIVE, PASS, Result, Verdict, inconclusive, pct


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


def judge(p: Proportion, levels: Levels) -> Verdict:
    """Pass, Fail or Inconclusive for one proportion, in the order the module doc gives."""
    n, q = p.requests, p.allowed
    if n < levels.min_requests:
        return inconclusive(p.name, f"{n:.0f} requests so far, fewer than minRequests {levels.min_requests}", n, q)
    low, high = stats.confidence_sequence(p.breach_events, n, levels.breach, levels.met)
    if p.met_events != p.breach_events:  # latency max between bucket bounds: two bounds
        high = stats.confidence_sequence(p.met_events, n, levels.breach, levels.met)[1]
    value = p.breach_events / n
    shown = f"{pct(value)} {p.unit} in {n:.0f} requests (bounds {pct(low)}-{pct(high)}), allowed {pct(q)}"
    base = "" if p.baseline_rate is None else f"; baseline {pct(p.baseline_rate)}"

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
    worse = relative(p, levels)
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


def relative(p: Proportion, levels: Levels) -> tuple[bool, float, float] | None:
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
