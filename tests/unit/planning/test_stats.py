"""The statistics under the verdicts: anytime-valid tests, confidence sequences, histograms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from headway.planning import stats

ALPHA = 0.05
LEVEL = -math.log(ALPHA)


@pytest.mark.parametrize("k, n, theta0, side, rejects", [
    (2, 150, 0.01, "greater", False),  # 1.3% observed: no proof of a breach of 1%
    (3, 150, 0.01, "greater", False),
    (30, 500, 0.01, "greater", True),  # 6% in 500: a clear breach
    (100, 2000, 0.02, "greater", True),
    (0, 1000, 0.01, "less", True),  # no error in 1000: shown below 1%
    (5, 5000, 0.01, "less", True),
    (5, 100, 0.01, "less", False),
    (1, 100, 0.01, "less", False),  # 100 requests cannot show a rate below 1%
    (0, 0, 0.01, "greater", False),  # no data, no evidence
])
def test_mixture_test_decisions(k: float, n: float, theta0: float, side: stats.Side, rejects: bool) -> None:
    assert (stats.log_evalue(k, n, theta0, side) >= LEVEL) is rejects


def test_evalue_grows_with_evidence() -> None:
    values = [stats.log_evalue(k, 1000, 0.01, "greater") for k in (5, 10, 20, 40, 80)]
    assert values == sorted(values)
    assert stats.log_evalue(0, 0, 0.01, "greater") == 0.0


def test_fractional_counts_from_increase_are_accepted() -> None:
    a = stats.log_evalue(29.6, 499.7, 0.01, "greater")
    b = stats.log_evalue(30, 500, 0.01, "greater")
    assert math.isfinite(a) and abs(a - b) < 1.0


@pytest.mark.parametrize("theta0", [0.0, 1.0, -0.1, 1.5])
def test_theta0_must_be_a_proper_rate(theta0: float) -> None:
    with pytest.raises(ValueError):
        stats.log_evalue(1, 10, theta0, "greater")


@pytest.mark.parametrize("log_e, p", [(0.0, 1.0), (-3.0, 1.0), (math.log(20), 0.05), (math.log(1000), 0.001)])
def test_p_value_is_inverse_evalue(log_e: float, p: float) -> None:
    assert stats.p_value(log_e) == pytest.approx(p)


@pytest.mark.parametrize("k, n", [(0, 200), (2, 150), (30, 1500), (500, 1000), (1000, 1000), (12.5, 300.2)])
def test_confidence_sequence_brackets_estimate_and_matches_tests(k: float, n: float) -> None:
    low, high = stats.confidence_sequence(k, n, ALPHA)
    assert 0.0 <= low <= k / n <= high <= 1.0
    # The bounds invert the one-sided tests: just outside them the tests reject.
    if low > 1e-6:
        assert stats.log_evalue(k, n, low * 0.98, "greater") >= LEVEL
        assert stats.log_evalue(k, n, min(low * 1.02, 0.999999), "greater") < LEVEL
    if high < 1 - 1e-6:
        assert stats.log_evalue(k, n, min(high * 1.02, 0.999999), "less") >= LEVEL
        assert stats.log_evalue(k, n, high * 0.98, "less") < LEVEL


def test_confidence_sequence_narrows_and_is_wider_than_a_fixed_sample_interval() -> None:
    widths = [np.subtract(*stats.confidence_sequence(0.02 * n, n, ALPHA)[::-1]) for n in (500, 5000, 50000)]
    assert widths == sorted(widths, reverse=True)
    low, high = stats.confidence_sequence(100, 5000, ALPHA)
    clopper = sps.binomtest(100, 5000).proportion_ci(0.95)
    assert low < clopper.low and high > clopper.high  # the price of valid peeking
    assert stats.confidence_sequence(0, 0, ALPHA) == (0.0, 1.0)


def _ever_rejects(rng: np.random.Generator, rate: float, theta0: float, side: stats.Side,
                  runs: int, looks: int, per_look: int) -> float:
    """Share of runs in which the test rejects at any of ``looks`` looks (the peeking error)."""
    events = rng.binomial(per_look, rate, size=(runs, looks)).cumsum(axis=1)
    trials = per_look * np.arange(1, looks + 1)
    hits = 0
    for row in events:
        hits += any(stats.log_evalue(float(k), float(n), theta0, side) >= LEVEL for k, n in zip(row, trials))
    return hits / runs


@pytest.mark.parametrize("rate, theta0, side", [
    (0.01, 0.01, "greater"),  # on the boundary of the null: the hardest case
    (0.008, 0.01, "greater"),  # inside the composite null
    (0.02, 0.02, "less"),
])
def test_false_rejections_over_many_looks_stay_below_alpha(rate: float, theta0: float, side: stats.Side) -> None:
    rng = np.random.default_rng(7)
    assert _ever_rejects(rng, rate, theta0, side, runs=300, looks=60, per_look=100) <= ALPHA


def test_fixed_sample_test_at_every_look_would_not() -> None:
    """The reason for all of this: a z-test applied at each of 60 looks rejects far too often."""
    rng = np.random.default_rng(7)
    events = rng.binomial(100, 0.01, size=(300, 60)).cumsum(axis=1)
    trials = 100 * np.arange(1, 61)
    z = (events / trials - 0.01) / np.sqrt(0.01 * 0.99 / trials)
    assert (z > sps.norm.isf(ALPHA)).any(axis=1).mean() > 2 * ALPHA


def test_conditional_share_test_is_immune_to_common_drift() -> None:
    """Both variants' error rate moves with time; the candidate has a steady 10% of traffic."""
    rng = np.random.default_rng(11)
    looks, hits = 40, 0
    drift = 0.01 * (1 + 4 * (np.arange(looks) % 10 >= 7))  # 1%, spiking to 5% now and then
    for _ in range(300):
        cand_n = rng.poisson(100, looks)
        base_n = rng.poisson(900, looks)
        cand_e, base_e = rng.binomial(cand_n, drift).cumsum(), rng.binomial(base_n, drift).cumsum()
        cand_n, base_n = cand_n.cumsum(), base_n.cumsum()
        for kc, kb, nc, nb in zip(cand_e, base_e, cand_n, base_n):
            if kc + kb > 0:
                theta0 = stats.null_share(float(nc), float(nb), 0.0)  # no margin: the strictest null
                if stats.log_evalue(float(kc), float(kc + kb), theta0, "greater") >= LEVEL:
                    hits += 1
                    break
    assert hits / 300 <= ALPHA


@pytest.mark.parametrize("nc, nb, margin, share", [
    (100, 100, 0.0, 0.5), (100, 900, 0.0, 0.1), (100, 900, 0.25, 0.125 / 1.025), (500, 500, 1.0, 2 / 3),
])
def test_null_share(nc: float, nb: float, margin: float, share: float) -> None:
    assert stats.null_share(nc, nb, margin) == pytest.approx(share)


def test_two_proportion_ztest_matches_chi_square() -> None:
    z, p = stats.two_proportion_ztest(50, 1000, 30, 1000)
    chi2, p_chi, _, _ = sps.chi2_contingency([[50, 950], [30, 970]], correction=False)
    assert z > 0 and z**2 == pytest.approx(chi2) and p == pytest.approx(p_chi)


def test_welch_ttest_matches_scipy() -> None:
    t, p = stats.welch_ttest(1.2, 0.5, 400, 1.1, 0.8, 300)
    ref = sps.ttest_ind_from_stats(1.2, math.sqrt(0.5), 400, 1.1, math.sqrt(0.8), 300, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("values, events, expect_win", [
    ([0.05, 0.02], [(50, 1000), (20, 1000)], True),
    ([0.03, 0.03], [(30, 1000), (30, 1000)], False),
    ([0.05, 0.02, 0.021], [(50, 1000), (20, 1000), (21, 1000)], False),  # 2nd and 3rd are tied
    ([0.05, 0.02, 0.08], [(500, 10000), (200, 10000), (800, 10000)], True),
])
def test_best_arm(values: list[float], events: list[tuple[int, int]], expect_win: bool) -> None:
    def pair(i: int, j: int) -> tuple[float, float]:
        return stats.two_proportion_ztest(events[i][0], events[i][1], events[j][0], events[j][1])

    outcome = stats.best_arm(values, pair, lower_is_better=True, significance=0.05)
    assert outcome.best == values.index(min(values))
    assert outcome.wins is expect_win


INF = math.inf


@pytest.mark.parametrize("raw, clean", [
    (((0.1, 5.0), (INF, 10.0), (0.5, 9.0)), ((0.1, 5.0), (0.5, 9.0), (INF, 10.0))),  # unsorted
    (((0.1, 5.2), (0.5, 5.0), (INF, 10.0)), ((0.1, 5.2), (0.5, 5.2), (INF, 10.0))),  # extrapolation dip
    (((0.1, 5.0), (0.5, 9.0)), None),  # no +Inf: the total is unknown
    (((0.1, math.nan), (INF, 10.0)), None),
    (((0.1, None), (INF, 10.0)), None),
    (((0.1, -1.0), (INF, 10.0)), None),
    ((), None),
])
def test_clean_buckets(raw: tuple[tuple[float, float | None], ...], clean: stats.Buckets | None) -> None:
    assert stats.clean_buckets(raw) == clean


def test_counts_from_cumulative_buckets() -> None:
    buckets = ((0.1, 80.0), (0.25, 95.0), (0.5, 99.0), (INF, 100.0))
    assert stats.histogram_total(buckets) == 100.0
    assert [stats.count_above(buckets, b) for b in (0.1, 0.25, 0.5)] == [20.0, 5.0, 1.0]
    with pytest.raises(ValueError):
        stats.count_above(buckets, 0.3)
    assert stats.bracketing_bounds(buckets, 0.25) == (0.25, 0.25)
    assert stats.bracketing_bounds(buckets, 0.3) == (0.25, 0.5)
    assert stats.bracketing_bounds(buckets, 0.05) == (None, 0.1)
    assert stats.bracketing_bounds(buckets, 2.0) == (0.5, None)


@pytest.mark.parametrize("q, expected", [
    (0.5, 0.1 * 50 / 80),  # inside the first bucket: interpolated from 0
    (0.9, 0.1 + 0.15 * 10 / 15),
    (0.995, 0.5),  # in the +Inf bucket: Prometheus returns the largest finite bound
])
def test_bucket_quantile_like_prometheus(q: float, expected: float) -> None:
    buckets = ((0.1, 80.0), (0.25, 95.0), (0.5, 99.0), (INF, 100.0))
    assert stats.bucket_quantile(buckets, q) == pytest.approx(expected)
    assert stats.bucket_quantile(((0.1, 0.0), (INF, 0.0)), 0.99) is None


# --- evidence in slices: bursts of errors ---------------------------------------------------------


def test_betting_evalue_basics() -> None:
    assert stats.log_betting_evalue([]) == 0.0
    assert stats.log_betting_evalue([1.0] * 50) == pytest.approx(0.0)  # exactly what the null allows: no evidence
    assert stats.log_betting_evalue([0.5] * 10) < 0.0
    more = [stats.log_betting_evalue([r] * 5) for r in (1.5, 2.0, 4.0, 8.0)]
    assert more == sorted(more) and more[-1] >= LEVEL
    # One slice can multiply the evidence by at most its ratio: a single burst proves nothing.
    assert stats.log_betting_evalue([100.0]) < math.log(100.0)
    assert stats.log_betting_evalue([math.nan, 2.0]) == stats.log_betting_evalue([2.0])


def _bursts(rng: np.random.Generator, runs: int, slices: int, n: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors that come all at once: a slice fails entirely with probability q, else not at all."""
    return n * (rng.random((runs, slices)) < q), np.full((runs, slices), float(n))


def test_slice_test_holds_alpha_whatever_happens_inside_a_slice() -> None:
    """Mean rate exactly q, every error in a burst: the per-request test is fooled, the slice test is not."""
    rng = np.random.default_rng(5)
    k, n = _bursts(rng, runs=400, slices=60, n=150, q=0.01)
    slice_test = request_test = 0
    for row_k, row_n in zip(k, n):
        ratios = (row_k / (0.01 * row_n)).tolist()
        slice_test += any(stats.log_betting_evalue(ratios[: t + 1]) >= LEVEL for t in range(len(ratios)))
        cum_k, cum_n = row_k.cumsum(), row_n.cumsum()
        request_test += any(stats.log_evalue(float(a), float(b), 0.01, "greater") >= LEVEL
                            for a, b in zip(cum_k, cum_n) if a > 0)
    assert slice_test / 400 <= ALPHA
    assert request_test / 400 > 5 * ALPHA  # the old evidence: one burst "proves" a breach


def test_slice_test_detects_a_uniform_regression() -> None:
    rng = np.random.default_rng(6)
    k = rng.binomial(600, 0.05, size=(40, 12))  # 5% against 2%, 600 requests per slice
    first = [next((t + 1 for t in range(12) if stats.log_betting_evalue((row[: t + 1] / (0.02 * 600)).tolist()) >= LEVEL), None) for row in k]
    assert all(f is not None and f <= 6 for f in first)


@pytest.mark.parametrize("rate", [0.002, 0.02, 0.2])
def test_betting_lower_bound_inverts_the_test(rate: float) -> None:
    rng = np.random.default_rng(8)
    n = np.full(20, 500.0)
    k = rng.binomial(500, rate, 20).astype(float)
    low = stats.betting_lower_bound(k.tolist(), n.tolist(), ALPHA)
    assert 0.0 < low < k.sum() / n.sum()
    assert stats.log_betting_evalue((k / (low * 0.98 * n)).tolist()) >= LEVEL
    assert stats.log_betting_evalue((k / (low * 1.02 * n)).tolist()) < LEVEL
    assert stats.betting_lower_bound([0.0, 0.0], [100.0, 100.0], ALPHA) == 0.0
    assert stats.betting_lower_bound([], [], ALPHA) == 0.0


def test_dispersion_tells_bursts_from_independent_requests() -> None:
    rng = np.random.default_rng(9)
    n = np.full(60, 300.0)
    phi, df = stats.dispersion(rng.binomial(300, 0.01, 60).tolist(), n.tolist())
    assert df == 59 and 1.0 <= phi < 1.5
    bursty = rng.binomial(300, 0.002, 60).astype(float)
    bursty[[7, 33]] += 100  # two pods down for a third of an interval
    assert stats.dispersion(bursty.tolist(), n.tolist())[0] > 20
    assert stats.dispersion([5.0], [100.0]) == (1.0, 0)  # one slice: no spread to measure
    assert stats.dispersion([0.0, 0.0], [100.0, 100.0]) == (1.0, 1)


def test_share_ratio() -> None:
    # Equal pods: the candidate's share of the interval's bad events over Lindon's null share.
    r = stats.share_ratio((10.0, 1000.0, 1.0), (90.0, 9000.0, 9.0), 0.25)
    assert r == pytest.approx(0.1 / stats.null_share(1000.0, 9000.0, 0.25))
    # Lighter candidate pods (1 of 4 pods, 10% of the requests): its events weigh 3x.
    w = 3.0
    r = stats.share_ratio((10.0, 1000.0, 1.0), (30.0, 9000.0, 3.0), 0.0)
    assert r == pytest.approx((w * 10 / (w * 10 + 30)) / stats.null_share(w * 1000.0, 9000.0, 0.0))
    assert stats.share_ratio((0.0, 1000.0, 1.0), (0.0, 9000.0, 9.0), 0.25) is None  # no bad event: no bet
    assert stats.share_ratio((1.0, 0.0, 0.0), (0.0, 9000.0, 9.0), 0.25) is None


@pytest.mark.parametrize("cand_pod_rps, base_pods, base_pod_rps", [(5, 9, 5), (5, 3, 15)])
def test_share_test_holds_alpha_when_pods_hiccup(cand_pod_rps: float, base_pods: int, base_pod_rps: float) -> None:
    """A good version: every pod (1 candidate, the stable's) fails a third of an interval now and then.

    Each interval's share of bad events is one bet: a candidate hiccup is one unit of evidence,
    as likely as its share of pods says; the pooled per-request test reads it as proof."""
    rng = np.random.default_rng(10)
    runs, intervals, hiccup, p = 300, 60, 0.03, 0.003
    slice_fails = request_fails = 0
    for _ in range(runs):
        nc = rng.poisson(cand_pod_rps * 30, intervals).astype(float)
        nb = rng.poisson(base_pod_rps * 30, (intervals, base_pods)).astype(float)
        down_c = rng.random(intervals) < hiccup
        down_b = rng.random((intervals, base_pods)) < hiccup
        kc = rng.binomial(nc.astype(int), np.where(down_c, 0.33, p)).astype(float)
        kb = rng.binomial(nb.astype(int), np.where(down_b, 0.33, p)).sum(axis=1).astype(float)
        ratios = [stats.share_ratio((a, b, 1.0), (c, d.sum(), float(base_pods)), 0.25) for a, b, c, d in zip(kc, nc, kb, nb)]
        path = [stats.log_betting_evalue([r for r in ratios[: t + 1] if r is not None]) for t in range(intervals)]
        slice_fails += max(path) >= LEVEL
        ckc, cnc, ckb, cnb = kc.cumsum(), nc.cumsum(), kb.cumsum(), nb.sum(axis=1).cumsum()
        request_fails += any(stats.log_evalue(a, a + c, stats.null_share(b, d, 0.25), "greater") >= LEVEL
                             for a, b, c, d in zip(ckc, cnc, ckb, cnb) if a + c > 0)
    assert slice_fails / runs <= ALPHA
    assert request_fails / runs > 4 * ALPHA
