"""Drift statistics on binned counts: pure functions, no I/O, no clock, no state.

Two questions, both asked of counts per bin of a reference profile (``headway.api.profile``):

- **data drift**: does one input feature (or the prediction) of the live traffic still follow
  the reference profile? (``feature_drift``, ``data_drift`` for many features with Holm)
- **prediction drift**: does the candidate answer like stable on the same traffic?
  (``prediction_drift``, a sequential test with alpha spending over looks)

The counts arrive as **slices**: one ``Mapping[bin name, count]`` per sub-interval of the
window (e.g. per analysis interval), as ``increase()`` returns them (floats; negative or NaN
counts are read as 0, names that are not bins are ignored).

Data drift: a two-sample test of homogeneity
--------------------------------------------
The reference is itself a finite sample: ``expected x samples`` counts. The window's counts
and the reference's form a 2 x k table; the G statistic (likelihood ratio) of homogeneity is
asymptotically chi-square with k - 1 dof. A bin whose reference share is 0 but which has
observations is an ordinary cell of that table (its expected count under the null is the
pooled share times each row's size, never 0), so there is no log(0) and no infinity.

*Small expected counts.* The chi-square approximation needs expected counts of about 5 or
more in every cell (Cochran). Bins whose smaller expected count (min row size x column
total / N) is below ``MIN_EXPECTED`` are merged, smallest first, into one pooled bin that is
itself at least that large. The merge depends only on the column totals, which the
conditional test of homogeneity holds fixed, so it does not bias the test.

*Overdispersion.* Requests are not independent draws: a client sends a batch of similar
rows, a campaign sends one kind of user for ten minutes. Counted one by one, such bursts
look like overwhelming evidence. The dispersion phi is Pearson's X^2 / dof of the window's
slices x bins table (how much more the slices differ from each other than multinomial
sampling allows; the quasi-likelihood dispersion of Wedderburn 1974, McCullagh & Nelder 1989
section 4.5; floored at 1, 1 with a single slice). The window's counts are divided by phi
(effective counts) before the G-test; when the reference is much larger than the window this
is exactly G / phi. Because phi is estimated, the p-value is that of the quasi-likelihood F
test, (G_eff / dof) against F(dof, dof of phi), which is more conservative than chi-square
with few slices and equal to it with many. Real change *within* the window also shows as
heterogeneity between slices and deflates the statistic: a shift that comes and goes inside
one window is treated as noise.

*Effect size.* With enough samples any test flags differences nobody cares about. A feature
is **drifted** only when its Holm-adjusted p-value is below alpha *and* its population
stability index (PSI, sum over bins of (o - r) ln(o / r), shares floored at ``PSI_FLOOR``)
is at least the user's ``min_effect`` (0.1 by default, the usual "moderate shift"; 0
disables). ``psi_critical`` is the PSI that chance alone reaches with probability alpha at
these sample sizes (PSI ~ (phi/n + 1/m) chi2(k-1) under the null): a PSI below it is noise.

*Many features.* Holm's step-down correction across the judged features keeps the chance of
flagging any undrifted feature at most alpha. Features with fewer than ``min_samples``
observations in the window (or reference samples) are not judged (``Insufficient``), never
drifted, and not counted in the family.

Prediction drift: a sequential two-sample test
-----------------------------------------------
Candidate and stable are counted on the same traffic over the same slices (the same time
grid; the mirror sends the same requests in a shadow step, the router the same traffic mix in
a canary). The test compares the two versions **within each slice** (a log-linear model of
slice x version x bin: G for the version x bin association given the slices, k - 1 dof), so
a change of the traffic mix over the window that hits both versions, or a traffic split that
changes between slices, cannot pass for a difference between versions. With a single slice it
is the ordinary two-sample G-test. The dispersion phi is the heterogeneity of the *difference*
between the versions across slices (Pearson's X^2 / dof of the model with a common
version x bin effect in every slice): bursts of traffic that both versions see alike cancel
in the difference and do not cost power, bursts of disagreement do.

The operator evaluates the test at looks k = 1, 2, ... during a step on the cumulative counts
and acts on the first decisive one. A fixed-level test repeated at every look rejects a true
null far more often than its level. Look k is therefore tested at

    alpha_k = alpha * 6 / (pi^2 k^2),   and   sum over k >= 1 of alpha_k = alpha,

so by the union bound the probability that identical versions are **ever** failed, over any
number of looks, is at most alpha (up to the chi-square approximation of each look's test).
The same alpha_k is used for the upper confidence bound that a Pass needs, so the chance of
ever passing a candidate whose true difference is at least the bound is at most alpha too.
Looks should be counted per step and spaced (every analysis interval): alpha_k falls as 1/k^2.

The effect is the **total variation distance** between the two binned distributions (half
the L1 distance: the largest share of traffic whose answer class/bin differs in
distribution). Its upper confidence bound: for every set A of bins, p(A) - q(A) is a
difference of two sample means of [0, 1] indicators, so by Hoeffding's inequality
P(p(A) - q(A) >= p^(A) - q^(A) + t) <= exp(-2 t^2 / (1/n + 1/m)); a union bound over the
2^k - 2 non-trivial sets (the Bretagnolle-Huber-Carol argument) gives, with probability at
least 1 - delta, TV(p, q) <= TV^ + sqrt((1/n + 1/m) / 2 * ln((2^k - 2) / delta)) for n and m
samples. It is distribution-free and needs no bootstrap; its price grows with the number of
bins k (about sqrt(k)). Overdispersion is accounted for by effective samples n / phi, m / phi
(exact for independent clusters of phi identical requests, an approximation otherwise).

- **Fail**: both versions have ``min_samples`` (and there are ``min_slices`` slices), the
  test rejects at alpha_k, and the TV distance is *shown* to reach ``bound``: its lower
  confidence bound at level alpha_k is at least ``bound`` (0: any shown difference fails);
- **Pass**: the same minimums, and the TV upper bound at level alpha_k is below ``bound``
  (never with bound 0);
- **Inconclusive** otherwise.

The Fail rule is the verdicts' "shown breached": with the *estimated* TV instead (TV^ >= bound,
which is biased upwards by about sqrt(k / n) while samples are few), a candidate whose true
distance is 0.05 under a bound of 0.1 failed in 4-9% of runs of hack/bench_drift.py — a
rollback of a version within its allowance. With the lower bound it never failed; the price
is samples: a 0.15 shift takes a median of ~4,000 predictions instead of ~400 (0.3: ~200).
The benchmark prints both rules.

``expected_shift`` names bins the user expects to change (a class the new model predicts
more often by design). They are removed from both versions before testing: a declared bin may
gain or lose any share, and what is tested is that the *other* bins keep their proportions
relative to each other (the conditional distributions on the undeclared bins; TV is theirs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from headway.api.profile import BinnedFeature

# numpy and scipy are imported inside the functions that use them (as in stats.py): importing
# the operator must not load them (tests/unit/planning/test_stats_imports.py).

Slice = Mapping[str, float]

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SAMPLES = 200
DEFAULT_MIN_EFFECT = 0.1  # PSI
DEFAULT_BOUND = 0.1  # TV distance
MIN_EXPECTED = 5.0  # smallest expected count of a cell of the test's table (Cochran)
MIN_EXPECTED_DISPERSION = 1.0  # per slice, for the dispersion's table (its mean is right even when sparse)
PSI_FLOOR = 1e-4  # shares below are read as this in PSI (a share of 0 would give infinity)
TOP_BINS = 3

DataResult = Literal["Drifted", "NoDrift", "Insufficient"]
PredictionResult = Literal["Pass", "Fail", "Inconclusive"]


@dataclass(frozen=True)
class BinShare:
    """One bin's share in the observed (candidate) stream and in the reference (stable)."""

    bin: str
    observed: float
    reference: float


@dataclass(frozen=True)
class FeatureDrift:
    """Data drift of one feature over one window (see the module docstring)."""

    feature: str
    result: DataResult
    statistic: float  # G of the window's effective counts (counts / phi) against the reference
    dof: int  # bins tested (after merging) - 1
    p_value: float  # quasi-likelihood F test (chi-square with a single slice); 1 when not judged
    adjusted_p: float  # Holm across the judged features (= p_value for a feature judged alone)
    phi: float  # dispersion of the window's slices (>= 1)
    phi_dof: int  # its degrees of freedom (0: one slice, phi = 1 assumed)
    samples: float  # observations in the window
    reference_samples: int
    psi: float
    psi_critical: float  # PSI that chance reaches with probability alpha at these sample sizes
    min_effect: float
    alpha: float
    top: tuple[BinShare, ...]  # bins contributing most to PSI, largest first
    message: str

    @property
    def drifted(self) -> bool:
        return self.result == "Drifted"

    @property
    def judged(self) -> bool:
        return self.result != "Insufficient"


@dataclass(frozen=True)
class DataDrift:
    """Data drift of many features, Holm-corrected."""

    features: tuple[FeatureDrift, ...]
    alpha: float
    message: str

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.drifted)

    @property
    def insufficient(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if not f.judged)


@dataclass(frozen=True)
class PredictionDrift:
    """Candidate against stable at one look of the sequential test (see the module docstring)."""

    result: PredictionResult
    statistic: float  # G of version x bin given the slices, deflated by phi
    dof: int
    p_value: float
    alpha_k: float  # the level of this look: alpha * 6 / (pi^2 look^2)
    look: int
    phi: float  # dispersion of the difference between the versions across slices (>= 1)
    phi_dof: int
    candidate_samples: float
    stable_samples: float
    tv_distance: float  # estimated total variation distance (on the undeclared bins)
    tv_upper: float  # its upper confidence bound at level alpha_k
    tv_lower: float  # its lower confidence bound at level alpha_k (Fail needs it at or above the bound)
    bound: float  # the user's bound on TV
    min_samples: int
    slices: int  # slices in which both versions were counted
    excluded: tuple[str, ...]  # bins declared as expected to change, removed before testing
    top: tuple[BinShare, ...]  # bins with the largest differences (observed: candidate, reference: stable)
    message: str


# --- small helpers ------------------------------------------------------------------------


def look_alpha(alpha: float, look: int) -> float:
    """The level of look ``look`` (1, 2, ...): alpha * 6 / (pi^2 look^2); they sum to alpha."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be inside (0, 1), got {alpha}")
    if look < 1:
        raise ValueError(f"looks are counted from 1, got {look}")
    return alpha * 6.0 / (math.pi**2 * look * look)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (in the input's order): reject where adjusted < alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _count(value: float) -> float:
    v = float(value)
    return v if math.isfinite(v) and v > 0.0 else 0.0


def _table(slices: Sequence[Slice], bins: Sequence[str]) -> Any:
    """Slices x bins counts (numpy array); unknown names ignored, negative/NaN as 0."""
    import numpy as np

    table = np.zeros((len(slices), len(bins)))
    index = {b: j for j, b in enumerate(bins)}
    for s, counts in enumerate(slices):
        for name, value in counts.items():
            j = index.get(name)
            if j is not None:
                table[s, j] += _count(value)
    return table


def _merge_groups(column_totals: Any, scale: float, threshold: float) -> list[list[int]]:
    """Bins grouped so that every group's smallest expected count (scale x total) is >= threshold.

    Empty bins are dropped; the bins below the threshold are pooled, smallest first, with the
    next smallest until the pool reaches it. Depends on the column totals only.
    """
    order = sorted((j for j in range(len(column_totals)) if column_totals[j] > 0), key=lambda j: float(column_totals[j]))
    pool: list[int] = []
    pool_total = 0.0
    singles: list[list[int]] = []
    for j in order:
        total = float(column_totals[j])
        if scale * total < threshold or (pool and scale * pool_total < threshold):
            pool.append(j)
            pool_total += total
        else:
            singles.append([j])
    return ([pool] if pool else []) + singles


def _merge(table: Any, groups: list[list[int]]) -> Any:
    import numpy as np

    if not groups:
        return np.zeros(table.shape[:-1] + (0,))
    return np.stack([table[..., g].sum(axis=-1) for g in groups], axis=-1)


def _xlogy_sum(observed: Any, expected: Any) -> float:
    """sum O ln(O / E) over cells with O > 0."""
    import numpy as np

    mask = observed > 0
    return float(np.sum(observed[mask] * np.log(observed[mask] / expected[mask])))


def _g_two_sample(a: Any, b: Any) -> float:
    """G of homogeneity of two count vectors over the same bins (every column total > 0)."""
    import numpy as np

    table = np.vstack([a, b])
    rows, cols, total = table.sum(axis=1), table.sum(axis=0), table.sum()
    expected = np.outer(rows, cols) / total
    return max(0.0, 2.0 * _xlogy_sum(table, expected))


def slice_dispersion(table: Any) -> tuple[float, int]:
    """(phi, dof): Pearson's X^2 / dof of a slices x bins count table, floored at 1.

    Slices and bins with no counts are left out, and bins whose expected count in a typical
    (median) slice is below 1 are pooled. (1, 0) when fewer than two slices or bins remain.
    """
    import numpy as np

    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0]
    if t.shape[0] < 2:
        return 1.0, 0
    total = t.sum()
    scale = float(np.median(t.sum(axis=1))) / total
    t = _merge(t, _merge_groups(t.sum(axis=0), scale, MIN_EXPECTED_DISPERSION))
    if t.shape[1] < 2:
        return 1.0, 0
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / total
    chi2 = float(np.sum((t - expected) ** 2 / expected))
    dof = (t.shape[0] - 1) * (t.shape[1] - 1)
    return max(1.0, chi2 / dof), dof


def _p_value(statistic: float, dof: int, phi_dof: int) -> float:
    from scipy import special  # the distributions' functions without scipy.stats' overhead

    if dof < 1:
        return 1.0
    if phi_dof >= 1:
        return float(special.fdtrc(dof, phi_dof, statistic / dof))
    return float(special.chdtrc(dof, statistic))


def _psi_terms(observed: Any, reference: Any) -> Any:
    import numpy as np

    o, r = np.maximum(observed, PSI_FLOOR), np.maximum(reference, PSI_FLOOR)
    terms = (o - r) * np.log(o / r)
    return np.where((observed > 0) | (reference > 0), terms, 0.0)


def _top(bins: Sequence[str], observed: Any, reference: Any, weights: Any) -> tuple[BinShare, ...]:
    order = sorted(range(len(bins)), key=lambda j: -float(weights[j]))
    return tuple(BinShare(bins[j], float(observed[j]), float(reference[j])) for j in order[:TOP_BINS] if weights[j] > 0)


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _shares(top: tuple[BinShare, ...], describe: Any, left: str, right: str) -> str:
    return "; ".join(f"{describe(b.bin)} {_pct(b.observed)} {left} vs {_pct(b.reference)} {right}" for b in top)


# --- data drift ---------------------------------------------------------------------------


def _dispersion_words(phi: float, phi_dof: int, dof: int) -> str:
    """The dispersion as measured, or why it is 1 (floored, not measurable from one slice, nothing to test)."""
    if dof == 0:
        return "dispersion not measured"
    if phi_dof == 0:
        return "dispersion 1 (one slice: not measured)"
    return f"dispersion {phi:.3g}" if phi > 1.0 else "dispersion 1 (no burstier than independent requests)"


def _test_words(dof: int, phi_dof: int) -> str:
    """Which distribution the p-value comes from, so a reader can check it from the figures."""
    if dof == 0:
        return "no test: too few observations per bin"
    return f"chi-square, {dof} dof" if phi_dof == 0 else f"F({dof}, {phi_dof}): the dispersion is estimated"


def feature_drift(
    name: str,
    feature: BinnedFeature,
    slices: Sequence[Slice],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_effect: float = DEFAULT_MIN_EFFECT,
) -> FeatureDrift:
    """Data drift of one feature: the window's ``slices`` against the profile's reference.

    Judged alone (``adjusted_p == p_value``); ``data_drift`` judges many with Holm.
    """
    import numpy as np
    from scipy import special

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be inside (0, 1), got {alpha}")
    bins = feature.bins
    table = _table(slices, bins)
    observed = table.sum(axis=0)
    n = float(observed.sum())
    m = int(feature.samples)
    reference_share = np.asarray(feature.expected, dtype=float)
    if n < min_samples or m < min_samples or n <= 0:
        short = f"{n:.0f} samples in the window" if n < min_samples or n <= 0 else f"{m} reference samples"
        return FeatureDrift(name, "Insufficient", 0.0, 0, 1.0, 1.0, 1.0, 0, n, m, 0.0, 0.0, min_effect, alpha, (),
                            f"{name}: not judged, {short} (at least {min_samples} needed)")
    phi, phi_dof = slice_dispersion(table)
    share = observed / n
    effective = observed / phi
    reference = reference_share * m
    n_eff = n / phi
    groups = _merge_groups(effective + reference, min(n_eff, float(m)) / (n_eff + m), MIN_EXPECTED)
    dof = len(groups) - 1
    statistic = _g_two_sample(_merge(effective, groups), _merge(reference, groups)) if dof >= 1 else 0.0
    p = _p_value(statistic, dof, phi_dof)
    terms = _psi_terms(share, reference_share)
    psi = float(terms.sum())
    k = int(np.count_nonzero((share > 0) | (reference_share > 0)))
    psi_critical = float(special.chdtri(k - 1, alpha)) * (phi / n + 1.0 / m) if k >= 2 else 0.0
    top = _top(bins, share, reference_share, terms)
    result = FeatureDrift(name, "NoDrift", statistic, dof, p, p, phi, phi_dof, n, m, psi, psi_critical,
                          min_effect, alpha, top, "")
    return _judge(result, feature)


def _judge(f: FeatureDrift, feature: BinnedFeature) -> FeatureDrift:
    """Decide and word a judged feature from its (adjusted) p-value and PSI."""
    significant = f.adjusted_p < f.alpha
    large = f.psi >= f.min_effect
    result: DataResult = "Drifted" if significant and large else "NoDrift"
    adjusted = "" if f.adjusted_p == f.p_value else f" (Holm {f.adjusted_p:.3g})"
    evidence = (f"G {f.statistic:.4g} on {f.dof} dof, {_dispersion_words(f.phi, f.phi_dof, f.dof)}, p {f.p_value:.3g} ({_test_words(f.dof, f.phi_dof)}){adjusted}, "
                f"PSI {f.psi:.3g} (noise level {f.psi_critical:.3g}), {f.samples:.0f} samples vs {f.reference_samples} reference")
    if result == "Drifted":
        head = f"{f.feature}: drifted"
    elif significant:
        head = f"{f.feature}: no drift beyond the minimum effect (PSI {f.psi:.3g} < {f.min_effect:g})"
    else:
        head = f"{f.feature}: no drift shown"
    most = _shares(f.top, feature.describe, "now", "reference")
    message = f"{head}: {evidence}" + (f"; most changed: {most}" if most and result == "Drifted" else "")
    return dataclasses.replace(f, result=result, message=message)


def data_drift(
    features: Mapping[str, BinnedFeature],
    observed: Mapping[str, Sequence[Slice]],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_effect: float = DEFAULT_MIN_EFFECT,
) -> DataDrift:
    """Data drift of every feature in ``features`` (a profile's), Holm-corrected at ``alpha``.

    ``observed[name]`` is the window's slices for that feature; a feature without any is
    ``Insufficient``. Only judged features form Holm's family.
    """
    single = {name: feature_drift(name, feature, observed.get(name, ()), alpha=alpha, min_samples=min_samples,
                                  min_effect=min_effect) for name, feature in features.items()}
    judged = [name for name, f in single.items() if f.judged]
    adjusted = dict(zip(judged, holm([single[name].p_value for name in judged])))
    results = tuple(_judge(dataclasses.replace(f, adjusted_p=adjusted[name]), features[name]) if f.judged else f
                    for name, f in single.items())
    drifted = [f.feature for f in results if f.drifted]
    if drifted:
        message = f"{len(drifted)} of {len(judged)} judged features drifted: {', '.join(drifted)}"
    else:
        message = f"no drift shown in {len(judged)} judged features"
    skipped = len(results) - len(judged)
    if skipped:
        message += f" ({skipped} not judged: too few samples)"
    return DataDrift(results, alpha, message)


# --- prediction drift ---------------------------------------------------------------------


def _ipf_common_effect(t: Any, iterations: int = 100) -> Any:
    """Fitted counts of slice x version x bin with no three-way interaction (margins SJ, VJ, SV)."""
    import numpy as np

    mu = np.ones_like(t)
    sj, vj, sv = t.sum(axis=1), t.sum(axis=0), t.sum(axis=2)

    def ratio(target: Any, fitted: Any) -> Any:
        return np.divide(target, fitted, out=np.zeros_like(target), where=fitted > 0)

    for _ in range(iterations):
        before = mu
        mu = mu * ratio(sj, mu.sum(axis=1))[:, None, :]
        mu = mu * ratio(vj, mu.sum(axis=0))[None, :, :]
        mu = mu * ratio(sv, mu.sum(axis=2))[:, :, None]
        if np.max(np.abs(mu - before)) < 1e-7 * max(1.0, float(t.sum())) / t.size:
            break
    return mu


def tv_margin(n: float, m: float, bins: int, delta: float) -> float:
    """Half-width t of the TV distance's confidence bounds (level 1 - delta each side) for n and m samples.

    sqrt((1/n + 1/m) / 2 * ln((2^bins - 2) / delta)): Hoeffding for each set of bins, union over
    the 2^bins - 2 non-trivial sets (module docstring). 0 with fewer than two bins (TV is 0), inf
    without samples.
    """
    if bins < 2:
        return 0.0
    if n <= 0 or m <= 0:
        return math.inf
    log_sets = bins * math.log(2.0) + math.log1p(-(2.0 ** (1 - bins)))
    return math.sqrt((1.0 / n + 1.0 / m) / 2.0 * (log_sets - math.log(delta)))


def tv_upper_bound(tv: float, n: float, m: float, bins: int, delta: float) -> float:
    """Upper confidence bound (level 1 - delta) on the TV distance of two multinomials over ``bins`` bins."""
    return min(1.0, tv + tv_margin(n, m, bins, delta))


def prediction_drift(
    candidate: Sequence[Slice],
    stable: Sequence[Slice],
    *,
    look: int,
    bins: Sequence[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    bound: float = DEFAULT_BOUND,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_slices: int = 2,
    expected_shift: Collection[str] = (),
) -> PredictionDrift:
    """The candidate's prediction distribution against stable's at look ``look`` (1, 2, ...).

    ``candidate[i]`` and ``stable[i]`` are the two versions' counts per bin over the same
    slice i (same time grid; cumulative over the step: every look sees all slices so far).
    ``bins`` are the profile's prediction bins (default: every name seen). Tested at
    alpha_k = alpha * 6 / (pi^2 look^2): the probability that identical versions are ever
    failed, over all looks, is at most alpha (union bound; sum of alpha_k = alpha); likewise
    for ever passing a candidate whose TV distance from stable is at least ``bound``.
    A decision also needs ``min_slices`` slices with both versions: with one, the dispersion
    cannot be estimated (phi = 1 is assumed), and bursty traffic would pass for a difference.
    """
    import numpy as np

    if len(candidate) != len(stable):
        raise ValueError(f"candidate has {len(candidate)} slices, stable {len(stable)}: they must share the time grid")
    if bound < 0.0:
        raise ValueError(f"bound must be >= 0, got {bound}")
    alpha_k = look_alpha(alpha, look)
    names = list(bins) if bins is not None else sorted({b for s in (*candidate, *stable) for b in s})
    excluded = tuple(b for b in names if b in set(expected_shift))
    kept = [b for b in names if b not in set(expected_shift)]
    table = np.stack([_table(candidate, kept), _table(stable, kept)], axis=1) if kept else np.zeros((len(candidate), 2, 0))
    if table.shape[0] == 0:
        table = np.zeros((0, 2, len(kept)))
    # slices where both versions were counted: a version's absence says nothing about its answers
    sv = table.sum(axis=2)
    table = table[(sv[:, 0] > 0) & (sv[:, 1] > 0)]
    pooled = table.sum(axis=0)
    nc, ns = float(pooled[0].sum()), float(pooled[1].sum())
    cand_share = pooled[0] / nc if nc > 0 else np.zeros(len(kept))
    stab_share = pooled[1] / ns if ns > 0 else np.zeros(len(kept))
    diff = np.abs(cand_share - stab_share)
    tv = float(diff.sum() / 2.0)
    top = _top(kept, cand_share, stab_share, diff)

    statistic, dof, p, phi, phi_dof = 0.0, 0, 1.0, 1.0, 0
    if nc > 0 and ns > 0:
        groups = _merge_groups(pooled.sum(axis=0), min(nc, ns) / (nc + ns), MIN_EXPECTED)
        merged = _merge(table, groups)
        dof = len(groups) - 1
        if dof >= 1:
            totals = merged.sum(axis=(1, 2))
            null = merged.sum(axis=2)[:, :, None] * merged.sum(axis=1)[:, None, :] / totals[:, None, None]
            common = _ipf_common_effect(merged)
            g = max(0.0, 2.0 * _xlogy_sum(merged, null) - 2.0 * _xlogy_sum(merged, common))
            slices_used = merged.shape[0]
            if slices_used >= 2:
                mask = common > 0
                pearson = float(np.sum((merged[mask] - common[mask]) ** 2 / common[mask]))
                phi_dof = (slices_used - 1) * dof
                phi = max(1.0, pearson / phi_dof)
            statistic = g / phi
            p = _p_value(statistic, dof, phi_dof)
    margin = tv_margin(nc / phi, ns / phi, len(kept), alpha_k)
    tv_upper, tv_lower = min(1.0, tv + margin), max(0.0, tv - margin)

    slices = int(table.shape[0])
    enough = nc >= min_samples and ns >= min_samples and slices >= min_slices
    result: PredictionResult
    if enough and p < alpha_k and (tv_lower >= bound if bound > 0 else True):
        result = "Fail"
    elif enough and tv_upper < bound:
        result = "Pass"
    else:
        result = "Inconclusive"
    ignoring = f", ignoring declared {', '.join(excluded)}" if excluded else ""
    evidence = (f"TV distance {tv:.3g} (between {tv_lower:.3g} and {tv_upper:.3g}, allowed {bound:g}), G {statistic:.4g} on {dof} dof, "
                f"{_dispersion_words(phi, phi_dof, dof)}, p {p:.3g} ({_test_words(dof, phi_dof)})"
                + (f" vs {alpha_k:.3g} at look {look}, " if enough else ", ") +
                f"{nc:.0f} candidate vs {ns:.0f} stable predictions over {slices} slices{ignoring}")
    if result == "Fail":
        head = "candidate answers differently from stable"
    elif result == "Pass":
        head = "candidate answers like stable"
    elif not enough and slices < min_slices:
        head = f"too few slices to compare ({slices}, at least {min_slices}: the dispersion is unknown)"
    elif not enough:
        head = f"too few predictions to compare (at least {min_samples} each)"
    else:
        head = "not yet shown to answer like stable"
    most = "; ".join(f"{b.bin} {_pct(b.observed)} vs {_pct(b.reference)}" for b in top)
    message = f"{head}: {evidence}" + (f"; most changed: {most}" if most and result == "Fail" else "")
    return PredictionDrift(result, statistic, dof, p, alpha_k, look, phi, phi_dof, nc, ns, tv, tv_upper, tv_lower, bound,
                           min_samples, slices, excluded, top, message)
