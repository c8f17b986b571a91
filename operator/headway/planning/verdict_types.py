"""What verdicts are made of: the measurements they read and the judgement they return.

Shared by the per-SLO verdicts (``headway.planning.verdicts``), the anytime-valid
proportion tests behind them (``headway.planning.proportions``), latency from histograms
(``headway.planning.latency``) and experiments (``headway.planning.comparison``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from headway.api.analysis_spec import Slo
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
class Slice:
    """One pod over one analysis interval of the window: the unit clustered errors come in.

    ``start`` is seconds since the window began; ``requests``/``latency`` are that pod's
    increase over the interval (same semantics as the window's totals). A hiccup of one pod
    lands in one or two slices, a worse version in all of its slices."""

    pod: str
    start: float
    requests: RequestCounts = field(default_factory=RequestCounts)
    latency: Histogram | None = None


@dataclass(frozen=True)
class VariantData:
    """Everything measured for one variant over the analysis window.

    ``queries`` maps a query SLO's name to its value (None or NaN: missing). Pass
    ``VariantData()`` when Prometheus could not be reached: every verdict is Inconclusive.
    ``slices`` breaks the window's counts down per pod and interval (empty: not measured,
    requests are then treated as independent).
    """

    requests: RequestCounts = field(default_factory=RequestCounts)
    latency: Histogram | None = None
    queries: Mapping[str, float | None] = field(default_factory=dict)
    slices: tuple[Slice, ...] = ()
    # A ratio query SLO's name -> (numerator, denominator): its two counts over the window
    # (None or NaN: missing), judged as a proportion like the error rate.
    ratios: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)


Test = Literal["breach", "relative"]


@dataclass(frozen=True)
class Evidence:
    """One SLO's Fail test over a rollout: log wealth per bet fraction (``stats.BET_FRACTIONS``).

    ``null`` is what the wealth was bet against (breach: the allowed share q; relative: the margin):
    evidence against another null cannot be carried. The e-value is the mean over the bet
    fractions of exp(log_wealth) (``log_e``)."""

    slo: str
    test: Test
    null: float
    log_wealth: tuple[float, ...]

    @property
    def log_e(self) -> float:
        return stats.log_mean_exp(self.log_wealth)


@dataclass(frozen=True)
class Carried:
    """What the Fail tests of one window start from (``assess(..., carried=...)``): the rollout so far.

    Every window j of a rollout (its steps, the bake after its promotion, a restart after a shared
    incident) starts a new *chain* of bets with prior weight v_j = 1/((j+1)(j+2)) (they sum to 1),
    and every chain continues over all later windows; the e-value of a test is the weighted sum
    of its chains (docs/verdicts.md, "The false-rollback budget"). Chains get the same factors
    from the units of the current window, so one vector per test is enough: ``evidence`` holds,
    per (slo, test), log of the sum over the chains started so far (this window's included) of
    v_j x their wealth. ``log_all`` = log(v_0 + ... + v_J) is the start of a test with no
    evidence yet (its chains have seen nothing); ``log_fresh`` = log v_J is the start of a test
    whose earlier evidence cannot be used (bet against another null). ``met_share`` is the share
    of alpha the met test has in this window (restarts spend it); ``set_aside`` names the SLOs
    whose breach was shared with the baseline in this window: their breach test cannot fail
    until the window restarts. ``Carried()`` is a window on its own (one chain of weight 1)."""

    evidence: tuple[Evidence, ...] = ()
    log_all: float = 0.0
    log_fresh: float = 0.0
    met_share: float = 1.0
    set_aside: frozenset[str] = frozenset()
    windows: int = 1  # windows of the rollout so far, this one included

    def start(self, slo: str, test: Test, null: float) -> tuple[float, ...]:
        """The log wealth per bet fraction that ``test`` of ``slo`` starts this window with."""
        size = len(stats.BET_FRACTIONS)
        for e in self.evidence:
            if e.slo == slo and e.test == test:
                usable = math.isclose(e.null, null, rel_tol=1e-9, abs_tol=1e-12) and len(e.log_wealth) == size
                return e.log_wealth if usable else (self.log_fresh,) * size
        return (self.log_all,) * size


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
    # False for a value query SLO (promql): no test decided, so it may hold but never fail.
    tested: bool = True
    # With slices: the overdispersion of the candidate's counts across pods and intervals
    # (1: like independent requests); the met test counts samples / dispersion requests.
    dispersion: float | None = None
    # The Fail tests' evidence after this look (the window's units on top of what was carried
    # into it): what the next window of the rollout starts from.
    evidence: tuple[Evidence, ...] = ()
    # The shared-incident rule fired at this look: breach shown, and the baseline breaches too.
    shared: bool = False
    # The baseline's rate over its most recent intervals (with slices), and whether it is back
    # within the SLO there: what ends an incident (a window restarts only after ``shared``).
    baseline_recent: float | None = None
    recovered: bool = False
    # The breach is shown, but the baseline is not shown within the SLO (its bounds straddle the max):
    # not attributed to the candidate, so Inconclusive; a bake reports it (BakeBreach) without restoring.
    unattributed: bool = False

    def to_evidence(self) -> dict[str, Any]:
        """JSON-safe, camelCase: what goes into status history and Events."""
        return {
            "slo": self.slo,
            "result": self.result,
            "value": json_number(self.value),
            "threshold": json_number(self.threshold),
            "samples": self.samples,
            "baselineValue": json_number(self.baseline_value),
            "statistic": json_number(self.statistic),
            "pValue": json_number(self.p_value),
            "ciLow": json_number(self.ci_low),
            "ciHigh": json_number(self.ci_high),
            "reason": self.reason,
            **({} if self.dispersion is None else {
                "dispersion": json_number(self.dispersion),
                "effectiveSamples": json_number(self.samples / self.dispersion),
            }),
            **({} if self.baseline_recent is None else {"baselineRecent": json_number(self.baseline_recent)}),
            **({"sharedIncident": True} if self.shared else {}),
            **({"breachUnattributed": True} if self.unattributed else {}),
        }


def json_number(x: float | None) -> float | None:
    """A number as status shows it: six significant digits, None for missing or infinite."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def number(x: float | None) -> float | None:
    """A usable measurement: finite and not negative; None for missing, NaN or nonsense."""
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0.0 else None


def finite(x: float | None) -> float | None:
    """A finite number (negative allowed: query values), None for missing or NaN."""
    try:
        value = None if x is None else float(x)
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def slo_name(slo: Slo) -> str:
    """Stable name of an SLO in status: errorRate, latency-p99, or the query's name."""
    if slo.error_rate is not None:
        return "errorRate"
    if slo.latency is not None:
        return f"latency-p{slo.latency.percentile:g}"
    assert slo.query is not None
    return slo.query.name


def overall(verdicts: Sequence[Verdict]) -> Result:
    """Any tested Fail -> Fail; every verdict Pass -> Pass; else (or none at all) Inconclusive.

    An untested verdict (a value query SLO) never makes the look a Fail, so it can never count
    towards failureLimit: out of bounds it holds (Inconclusive) like missing data. (Its verdict
    is Inconclusive already; a Fail marked untested is held here too.)
    """
    if any(v.result == FAIL and v.tested for v in verdicts):
        return FAIL
    if verdicts and all(v.result == PASS for v in verdicts):
        return PASS
    return INCONCLUSIVE


def inconclusive(name: str, reason: str, samples: float = 0.0, threshold: float | None = None) -> Verdict:
    return Verdict(name, INCONCLUSIVE, None, threshold, int(samples), None, None, None, reason)


def requests_served(data: VariantData) -> float | None:
    """Requests served: the request counter, else the latency histogram's count."""
    total = number(data.requests.total)
    if total is None and data.latency is not None:
        buckets = stats.clean_buckets(data.latency.buckets)
        total = stats.histogram_total(buckets) if buckets else None
    return total


def error_counts(data: VariantData) -> tuple[float, float] | None:
    """(errors, requests), or None if missing or inconsistent (more errors than requests)."""
    return request_counts(data.requests)


def request_counts(requests: RequestCounts) -> tuple[float, float] | None:
    """(errors, requests) of a window or a slice, or None if missing or inconsistent."""
    total, errors = number(requests.total), number(requests.errors)
    if total is None or errors is None or errors > total * 1.01 + 1.0:
        return None
    return min(errors, total), total


def ratio_counts(data: VariantData, name: str) -> tuple[float, float] | None:
    """A ratio query SLO's (numerator, denominator), or None if missing, negative or
    inconsistent (numerator above denominator beyond increase()'s extrapolation slack)."""
    numerator, denominator = data.ratios.get(name, (None, None))
    k, n = number(numerator), number(denominator)
    if k is None or n is None or k > n * 1.01 + 1.0:
        return None
    return min(k, n), n
