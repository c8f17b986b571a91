"""Statistics for verdicts: pure functions over counts, no I/O, no state.

Anytime-valid tests of a binomial proportion
--------------------------------------------
The operator looks at a canary every ``interval`` for as long as the rollout lasts, and
acts on the first look that shows a breach. A fixed-sample test (z, chi-square,
Mann-Whitney) applied at every look rejects a true null far more often than its level
(peeking). The tests here are *e-processes*: nonnegative supermartingales under the null,
so by Ville's inequality

    P( there is any look n at which E_n >= 1/alpha ) <= alpha

however many looks there are and whenever they happen (Robbins 1970; Howard, Ramdas,
McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
Ann. Statist. 2021; Lindon, Sanden & Shirikian, "Rapid regression detection in software
deployments through sequential testing", KDD 2022).

The e-process is a *beta-binomial mixture likelihood ratio* (a conjugate mixture
martingale). To test ``H0: theta <= theta0`` against ``theta > theta0`` with ``k``
events in ``n`` trials::

    E_n = integral over theta > theta0 of  (theta/theta0)^k ((1-theta)/(1-theta0))^(n-k)  pi(theta) d theta

with ``pi`` a Beta prior truncated to ``theta > theta0``. Each integrand is a product of
per-trial factors whose expectation is <= 1 whenever the true rate is <= theta0, so
``E_n`` is a supermartingale under every point of the composite null. The integral has
a closed form (incomplete beta functions), and depends only on the cumulative counts
``(k, n)``: looking at the same counts twice gives the same answer, the order of the
trials does not matter, and nothing needs to be remembered between looks. Counts may be
fractional (Prometheus' ``increase()`` extrapolates); the formulas accept them.

The prior is centred on ``theta0`` with ``min(a, b) = 1`` (one pseudo-observation of the
rarer outcome), so its spread is about ``theta0`` itself: tuned to detect changes of the
order of 100% relative, the size of regressions a canary is for. A mixture of three
spreads (x1, x10, x100 more concentrated) keeps power for smaller changes on large
traffic at the cost of a factor 3 in the threshold.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# scipy is imported inside the functions that use it, not here: it costs ~100 MB of
# memory, and most ModelDeployments never run an analysis (the operator has to stay
# small with a thousand of them). Everything else in this module is pure Python.

Side = Literal["greater", "less"]

# Spreads of the mixing prior: pseudo-observations of the rarer outcome (see module doc).
PRIOR_SCALES: tuple[float, ...] = (1.0, 10.0, 100.0)
_LOG_WEIGHT = -math.log(len(PRIOR_SCALES))


def _prior(theta0: float, scale: float) -> tuple[float, float]:
    """Beta(a, b) with mean theta0 and min(a, b) = scale."""
    if theta0 <= 0.5:
        return scale, scale * (1.0 - theta0) / theta0
    return scale * theta0 / (1.0 - theta0), scale


def _betaln(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_tail(a: float, b: float, theta0: float, side: Side) -> float:
    """log P(theta > theta0) (side greater) or log P(theta < theta0) under Beta(a, b)."""
    from scipy import special

    mass = float(special.betaincc(a, b, theta0) if side == "greater" else special.betainc(a, b, theta0))
    return math.log(mass) if mass > 0.0 else -math.inf


def _counts(successes: float, trials: float) -> tuple[float, float]:
    k = min(max(float(successes), 0.0), float(trials))
    return k, float(trials) - k


def _log_evalue(k: float, f: float, theta0: float, side: Side) -> float:
    log_null = k * math.log(theta0) + f * math.log1p(-theta0)
    terms = []
    for scale in PRIOR_SCALES:
        a, b = _prior(theta0, scale)
        log_marginal = _betaln(a + k, b + f) - _betaln(a, b)
        log_mass = _log_tail(a + k, b + f, theta0, side) - _log_tail(a, b, theta0, side)
        terms.append(log_marginal + log_mass - log_null)
    top = max(terms)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(t - top) for t in terms)) + _LOG_WEIGHT


def log_evalue(successes: float, trials: float, theta0: float, side: Side) -> float:
    """Natural log of the mixture e-value against ``theta <= theta0`` (side ``greater``)
    or ``theta >= theta0`` (side ``less``), after ``successes`` events in ``trials``.

    Reject the null at level alpha once ``log_evalue >= log(1/alpha)``; the probability
    that this ever happens under the null is at most alpha, over unlimited looks.
    """
    if not 0.0 < theta0 < 1.0:
        raise ValueError(f"theta0 must be inside (0, 1), got {theta0}")
    if trials <= 0:
        return 0.0
    k, f = _counts(successes, trials)
    return _log_evalue(k, f, theta0, side)


def p_value(log_e: float) -> float:
    """The anytime-valid p-value of an e-value: min(1, 1/E)."""
    return 1.0 if log_e <= 0.0 else math.exp(-log_e)


def evidence_threshold(alpha: float) -> float:
    """log(1/alpha): the log e-value a test must reach to reject at level alpha."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be inside (0, 1), got {alpha}")
    return -math.log(alpha)


_EPS = 1e-9


def confidence_sequence(
    successes: float, trials: float, alpha: float, alpha_high: float | None = None
) -> tuple[float, float]:
    """Anytime-valid confidence bounds for a proportion, holding at every look at once.

    The lower bound is the largest theta0 that the ``greater`` test rejects at level
    ``alpha``; the upper bound the smallest theta0 that the ``less`` test rejects at
    level ``alpha_high`` (default ``alpha``). Hence ``low > max`` is the same statement
    as "the breach test rejects at alpha" and ``high < max`` as "the met test rejects at
    alpha_high". With both levels alpha/2 they form a (1 - alpha) confidence sequence.
    """
    if trials <= 0:
        return 0.0, 1.0
    k, f = _counts(successes, trials)
    estimate = min(max(k / trials, 2 * _EPS), 1.0 - 2 * _EPS)
    low = _boundary(k, f, evidence_threshold(alpha), "greater", estimate)
    high = _boundary(k, f, evidence_threshold(alpha if alpha_high is None else alpha_high), "less", estimate)
    return low, high


def _boundary(k: float, f: float, level: float, side: Side, estimate: float) -> float:
    """theta0 where the ``side`` test stops rejecting, found by Brent's method on the logit scale."""
    from scipy import optimize, special

    edge = _EPS if side == "greater" else 1.0 - _EPS

    def excess(logit_theta: float) -> float:
        return _log_evalue(k, f, float(special.expit(logit_theta)), side) - level

    far, near = float(special.logit(edge)), float(special.logit(estimate))
    if excess(far) < 0.0:  # even the most extreme theta0 is not rejected
        return 0.0 if side == "greater" else 1.0
    if excess(near) >= 0.0:  # cannot happen for a proper mixture; be safe
        return estimate
    root = optimize.brentq(excess, min(far, near), max(far, near), xtol=1e-4)
    return float(special.expit(root))


# --- Evidence in slices: errors that come in bursts -----------------------------------------
# The mixture above treats every request as an independent coin. Errors are not always like
# that: a pod that fails for ten seconds produces dozens of errors at once, and counted one by
# one they look like overwhelming proof. Evidence is then counted per *slice* (one pod over one
# analysis interval, or one interval for the comparison with stable), each slice giving one
# factor that is linear in its bad events (testing by betting: Shafer, "Testing by betting",
# JRSS A 2021; Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
# betting", JRSS B 2024). For a slice, R = observed bad events / the most the null allows
# (e.g. errors / (q x requests)); the factor 1 + b (R - 1) with a fixed fraction b in [0, 1)
# is positive and, when the null's conditional expectation E[R | earlier slices] <= 1 holds,
# has expectation <= 1. The product over slices is then a nonnegative supermartingale and
# Ville's inequality applies, *whatever the requests inside a slice do* (a pod down for the
# whole interval included): the guarantee needs independence only between slices, not between
# requests. The price: one slice can multiply the evidence by at most R, so a Fail needs at
# least log(1/alpha) / log(R) slices (three for a 5x regression at alpha 1.25%).

# Fractions of the evidence bet on each slice; the e-value is the average of the wealths of
# these constant bets (a mixture over b, which costs log(len) in the threshold). Small b for
# small effects over many slices, large b for large ones over few.
BET_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95)


def log_betting_evalue(ratios: Sequence[float]) -> float:
    """Natural log of the betting e-value after slices with ``ratios`` R_i, in time order.

    R_i >= 0 is slice i's bad events divided by the most the null allows it (under the null
    E[R_i | earlier slices] <= 1). The e-value is the mean over ``BET_FRACTIONS`` b of
    prod_i (1 + b (R_i - 1)); reject at level alpha once it reaches 1/alpha.
    """
    import numpy as np

    r = np.asarray(ratios, dtype=float)
    return _log_wealth(r[np.isfinite(r)])


def log_wealths(ratios: Sequence[float]) -> tuple[float, ...]:
    """Per bet fraction b (``BET_FRACTIONS``): log prod_i (1 + b (R_i - 1)), the wealth of one constant bet.

    ``log_mean_exp`` of these is ``log_betting_evalue(ratios)``. Kept apart so that the wealth of
    each bet can be carried from one analysis window to the next (docs/verdicts.md, "The
    false-rollback budget"): multiplying each bet's wealth by the next units' factors is the same
    bet over one longer sequence of units.
    """
    import numpy as np

    r = np.asarray(ratios, dtype=float)
    r = np.maximum(r[np.isfinite(r)], 0.0)
    if r.size == 0:
        return (0.0,) * len(BET_FRACTIONS)
    bets = np.asarray(BET_FRACTIONS)
    return tuple(float(x) for x in np.log1p(bets[:, None] * (r[None, :] - 1.0)).sum(axis=1))


def log_mean_exp(values: Sequence[float]) -> float:
    """log(mean(exp(v))): the log e-value of a mixture (with equal weights) of e-values given as logs."""
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values)) - math.log(len(values))


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b))."""
    top = max(a, b)
    if top == -math.inf:
        return -math.inf
    return top + math.log1p(math.exp(min(a, b) - top))


def _log_wealth(ratios: Any) -> float:
    import numpy as np

    if ratios.size == 0:
        return 0.0
    bets = np.asarray(BET_FRACTIONS)
    log_wealth = np.log1p(bets[:, None] * (np.maximum(ratios, 0.0)[None, :] - 1.0)).sum(axis=1)
    top = float(log_wealth.max())
    return top + math.log(float(np.exp(log_wealth - top).sum())) - math.log(len(bets))


def betting_lower_bound(events: Sequence[float], sizes: Sequence[float], alpha: float) -> float:
    """The largest rate q0 that the slice test of "rate <= q0" rejects at ``alpha`` (0 if none).

    The slices' ratios are events_i / (q0 sizes_i); the e-value falls as q0 rises, so the
    rejected rates are an interval (0, bound): an anytime-valid lower confidence bound under
    the same assumption as the test (independent slices, whatever happens inside one).
    """
    import numpy as np
    from scipy import optimize

    k, n = np.asarray(events, dtype=float), np.asarray(sizes, dtype=float)
    used = n > 0
    rates = np.clip(k[used], 0.0, n[used]) / n[used]
    if rates.size == 0 or rates.sum() <= 0:
        return 0.0
    level = evidence_threshold(alpha)

    def excess(log_q0: float) -> float:
        return _log_wealth(rates / math.exp(log_q0)) - level

    low, high = math.log(_EPS), math.log(1.0 - _EPS)
    if excess(low) < 0.0:
        return 0.0
    if excess(high) >= 0.0:
        return 1.0 - _EPS
    return math.exp(optimize.brentq(excess, low, high, xtol=1e-4))


def dispersion(events: Sequence[float], sizes: Sequence[float]) -> tuple[float, int]:
    """(phi, degrees of freedom): Pearson's X^2 / df of the slices' counts around their pooled rate.

    phi ~ 1 when requests are independent coins, larger when bad events come in bursts (the
    quasi-binomial dispersion, Wedderburn 1974; McCullagh & Nelder 1989, 4.5.1). Never below
    1; 1 with fewer than two slices or no bad event at all.
    """
    pairs = [(min(max(float(k), 0.0), float(n)), float(n)) for k, n in zip(events, sizes) if n > 0]
    df = len(pairs) - 1
    total_k, total_n = sum(k for k, _ in pairs), sum(n for _, n in pairs)
    if df < 1 or total_k <= 0 or total_k >= total_n:
        return 1.0, max(df, 0)
    p = total_k / total_n
    chi2 = sum((k - n * p) ** 2 / (n * p * (1.0 - p)) for k, n in pairs)
    return max(1.0, chi2 / df), df


def null_share(candidate_exposure: float, baseline_exposure: float, margin: float) -> float:
    """Share of events the candidate may have under ``rate_c <= (1 + margin) * rate_b``.

    Conditional on the total number of events, the candidate's events are binomial with
    success probability ``r c / (r c + 1 - r)``, where ``r`` is the candidate's share of
    the exposure (requests) and ``c = rate_c / rate_b``. A common change of rate over time
    (baseline drift) cancels in this ratio as long as the traffic split is steady.
    """
    total = candidate_exposure + baseline_exposure
    if candidate_exposure <= 0 or baseline_exposure <= 0:
        raise ValueError("both exposures must be positive")
    r = candidate_exposure / total
    return r * (1.0 + margin) / (r * (1.0 + margin) + (1.0 - r))


def share_ratio(cand: tuple[float, float, float], base: tuple[float, float, float], margin: float) -> float | None:
    """One interval of the comparison with stable, as a betting ratio (None: no bad event, no traffic).

    ``cand``/``base`` are (bad events, requests, pods) of each variant over the interval. The
    candidate's share of the interval's bad events, divided by the share it may have under
    "its rate is at most (1 + margin) x stable's" (``null_share``). Each candidate event weighs
    w = max(1, stable's requests per pod / candidate's requests per pod): with equal pods (w = 1)
    this is the share of Lindon et al., exact for independent requests given the interval's
    total; when the candidate's pods are lighter, a burst of one pod (a hiccup) makes the same
    *share of that pod's requests* fail whichever variant it hits, and weighing by pods keeps
    such a burst as likely to be the candidate's as its share of pods says. (For independent
    requests the weighted share's expectation is still at most the null share: the share is
    concave in the candidate's count when w >= 1.)
    """
    kc, nc, pc = cand
    kb, nb, pb = base
    if nc <= 0 or nb <= 0 or pc <= 0 or pb <= 0:
        return None
    kc, kb = min(max(kc, 0.0), nc), min(max(kb, 0.0), nb)
    if kc + kb <= 0:
        return None
    w = max(1.0, (nb / pb) / (nc / pc))
    share = w * kc / (w * kc + kb)
    return share / null_share(w * nc, nb, margin)


def two_proportion_ztest(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float]:
    """Pooled two-proportion z-test, two-sided: (z, p). z > 0 when the first rate is higher."""
    from scipy import stats
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples must be non-empty")
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 0.0, 1.0
    z = (p1 - p2) / math.sqrt(var)
    return z, float(2.0 * stats.norm.sf(abs(z)))


def welch_ttest(mean1: float, var1: float, n1: float, mean2: float, var2: float, n2: float) -> tuple[float, float]:
    """Welch's t-test from summary statistics, two-sided: (t, p). t > 0 when mean1 > mean2."""
    from scipy import stats
    if n1 < 2 or n2 < 2:
        raise ValueError("each sample needs at least two observations")
    se2 = var1 / n1 + var2 / n2
    if se2 <= 0.0:
        return 0.0, 1.0
    t = (mean1 - mean2) / math.sqrt(se2)
    dof = se2**2 / ((var1 / n1) ** 2 / (n1 - 1) + (var2 / n2) ** 2 / (n2 - 1))
    return t, float(2.0 * stats.t.sf(abs(t), dof))


# --- Prometheus histograms --------------------------------------------------------------
# A histogram arrives as cumulative bucket counts: (le, requests with latency <= le),
# with le = +Inf counting every request. Counts come from increase() over the analysis
# window, so each bucket is extrapolated separately and may be slightly non-monotone.

Buckets = tuple[tuple[float, float], ...]


def clean_buckets(buckets: tuple[tuple[float, float | None], ...]) -> Buckets | None:
    """Sorted, monotone cumulative buckets, or None if the histogram is unusable.

    Memoised (a look re-reads every pod-interval slice of its window, and those repeat from
    look to look); a histogram given as lists is cleaned without the memo.

    Unusable: empty, no +Inf bucket (the total is unknown), a missing/NaN/negative count,
    or a NaN bound. Small decreases between adjacent buckets (per-bucket extrapolation of
    increase()) are repaired with a running maximum.
    """
    try:
        return _clean_buckets(buckets)
    except TypeError:  # unhashable (lists): the same cleaning, unmemoised
        return _clean_buckets.__wrapped__(buckets)


@functools.lru_cache(maxsize=8192)
def _clean_buckets(buckets: tuple[tuple[float, float | None], ...]) -> Buckets | None:
    if not buckets:
        return None
    rows: list[tuple[float, float]] = []
    for le, count in buckets:
        if count is None or le is None:
            return None
        le_f, count_f = float(le), float(count)
        if math.isnan(le_f) or math.isnan(count_f) or math.isinf(count_f) or count_f < 0:
            return None
        rows.append((le_f, count_f))
    rows.sort()
    if rows[-1][0] != math.inf or len({le for le, _ in rows}) != len(rows):
        return None
    running = 0.0
    out = []
    for le, count in rows:
        running = max(running, count)
        out.append((le, running))
    return tuple(out)


def histogram_total(buckets: Buckets) -> float:
    """Requests counted by the histogram: its +Inf bucket."""
    return buckets[-1][1]


def count_above(buckets: Buckets, bound: float) -> float:
    """Requests slower than ``bound``, which must be one of the bucket bounds."""
    for le, count in buckets:
        if le == bound:
            return histogram_total(buckets) - count
    raise ValueError(f"{bound} is not a bucket bound")


def bracketing_bounds(buckets: Buckets, value: float) -> tuple[float | None, float | None]:
    """The largest finite bound <= value and the smallest finite bound >= value (None if none)."""
    finite = [le for le, _ in buckets if le != math.inf]
    below = [le for le in finite if le <= value]
    above = [le for le in finite if le >= value]
    return (below[-1] if below else None), (above[0] if above else None)


def bucket_quantile(buckets: Buckets, q: float) -> float | None:
    """The q-quantile as Prometheus' histogram_quantile() estimates it (linear in a bucket).

    Shown to people only; verdicts never decide on it (its error is the bucket width).
    """
    total = histogram_total(buckets)
    if total <= 0 or not 0.0 <= q <= 1.0:
        return None
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return lower_le
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return lower_le


# --- Experiments: one decision at a fixed sample size -------------------------------------


@dataclass(frozen=True)
class BestArm:
    """The observed best arm, and whether it beats every other arm significantly."""

    best: int  # index of the observed best arm
    wins: bool  # significantly better than every other arm (Bonferroni over all pairs)
    statistic: float  # z or t of its weakest comparison (positive: best is better)
    p_value: float  # Bonferroni-adjusted two-sided p-value of that comparison


def best_arm(
    values: Sequence[float],
    pair_test: Callable[[int, int], tuple[float, float]],
    *,
    lower_is_better: bool,
    significance: float,
) -> BestArm:
    """Pick the best arm and test it against each other arm.

    ``pair_test(i, j)`` returns a two-sided (statistic, p) with statistic > 0 when arm i's
    value is higher. The best arm is chosen from the data, so every comparison is
    adjusted for all k(k-1)/2 pairs it could have been (Bonferroni): the probability
    of naming a winner among arms that are all equal is at most ``significance``.
    """
    k = len(values)
    if k < 2:
        raise ValueError("need at least two arms")
    order = sorted(range(k), key=lambda i: values[i], reverse=not lower_is_better)
    best = order[0]
    pairs = k * (k - 1) / 2
    worst_p, worst_stat = 0.0, math.inf
    for other in order[1:]:
        stat, p = pair_test(best, other)
        oriented = -stat if lower_is_better else stat
        adjusted = min(1.0, p * pairs)
        if adjusted >= worst_p:
            worst_p, worst_stat = adjusted, oriented
    wins = worst_p < significance and worst_stat > 0
    return BestArm(best, wins, worst_stat, worst_p)
