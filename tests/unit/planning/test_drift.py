"""Drift statistics: data drift against a reference profile, prediction drift between versions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from headway.api.profile import MISSING, OTHER, BinnedFeature
from headway.planning import drift

DECILES = BinnedFeature(kind="numeric", edges=tuple(float(e) for e in range(1, 10)), expected=(0.1,) * 10 + (0.0,),
                        samples=20_000)
UNIFORM = np.array(DECILES.expected)


def window(rng: np.random.Generator, p: np.ndarray, n: int, bins: tuple[str, ...], slices: int = 12,
           jitter: float | None = None) -> list[dict[str, float]]:
    """``n`` observations in ``slices`` slices; with ``jitter`` each slice draws its own shares from
    Dirichlet(jitter x p) (bursty traffic: the mean is p, the slices differ more than sampling allows)."""
    out = []
    for _ in range(slices):
        shares = p if jitter is None else rng.dirichlet(np.maximum(p, 1e-12) * jitter)
        out.append({b: float(c) for b, c in zip(bins, rng.multinomial(n // slices, shares / shares.sum()))})
    return out


def test_an_undrifted_stream_is_not_flagged() -> None:
    rng = np.random.default_rng(1)
    flagged = [drift.feature_drift("x", DECILES, window(rng, UNIFORM, 5000, DECILES.bins), min_effect=0.0).drifted
               for _ in range(100)]
    assert sum(flagged) <= 12  # alpha 5%: about 5 expected, 12 has probability ~0.3%


def test_a_shifted_stream_is_flagged_with_the_shifted_bin_on_top() -> None:
    rng = np.random.default_rng(2)
    p = UNIFORM.copy()
    p[3], p[7] = 0.25, 0.0  # mass moves from bin 7 to bin 3
    result = drift.feature_drift("x", DECILES, window(rng, p, 2000, DECILES.bins))
    assert result.drifted and result.result == "Drifted"
    assert result.p_value < 1e-10 and result.psi > 0.1 and result.psi > result.psi_critical
    assert {result.top[0].bin, result.top[1].bin} == {"3", "7"}
    assert "drifted" in result.message and "[3, 4)" in result.message


def test_a_small_significant_shift_is_not_drift_below_the_minimum_effect() -> None:
    rng = np.random.default_rng(3)
    p = UNIFORM.copy()
    p[0], p[1] = 0.13, 0.07  # PSI ~ 0.03
    slices = window(rng, p, 60_000, DECILES.bins)
    assert drift.feature_drift("x", DECILES, slices, min_effect=0.0).drifted
    small = drift.feature_drift("x", DECILES, slices)
    assert small.p_value < 0.05 and not small.drifted and small.psi < 0.1
    assert "minimum effect" in small.message


def test_holm_across_twenty_features() -> None:
    rng = np.random.default_rng(4)
    features = {f"f{i}": DECILES for i in range(20)}
    p = UNIFORM.copy()
    p[0], p[9] = 0.2, 0.0
    observed = {name: window(rng, p if name == "f7" else UNIFORM, 3000, DECILES.bins) for name in features}
    result = drift.data_drift(features, observed, min_effect=0.0)
    assert result.drifted == ("f7",)
    by_name = {f.feature: f for f in result.features}
    assert all(f.adjusted_p >= f.p_value for f in result.features)
    # the smallest p-value is multiplied by the family's size
    assert by_name["f7"].adjusted_p == pytest.approx(min(1.0, 20 * by_name["f7"].p_value))
    assert drift.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_holm_keeps_the_family_wise_rate() -> None:
    rng = np.random.default_rng(5)
    features = {f"f{i}": DECILES for i in range(20)}
    runs = 40
    any_flag = 0
    for _ in range(runs):
        observed = {name: window(rng, UNIFORM, 1000, DECILES.bins) for name in features}
        any_flag += bool(drift.data_drift(features, observed, min_effect=0.0).drifted)
    # unadjusted, 20 features at 5% flag at least one in 64% of runs; Holm: at most 5%
    assert any_flag <= 6


def test_insufficient_samples_are_not_judged_and_not_in_the_family() -> None:
    rng = np.random.default_rng(6)
    p = UNIFORM.copy()
    p[0], p[9] = 0.5, 0.0
    thin = drift.feature_drift("x", DECILES, window(rng, p, 120, DECILES.bins))
    assert thin.result == "Insufficient" and not thin.drifted and not thin.judged
    assert "120 samples" in thin.message
    result = drift.data_drift({"a": DECILES, "b": DECILES, "c": DECILES},
                              {"a": window(rng, p, 120, DECILES.bins), "b": window(rng, p, 3000, DECILES.bins)})
    assert result.insufficient == ("a", "c") and result.drifted == ("b",)
    b = result.features[1]
    assert b.adjusted_p == b.p_value  # a family of one


def test_overdispersed_undrifted_slices_are_not_flagged_because_phi_deflates() -> None:
    rng = np.random.default_rng(7)
    plain, deflated, phis = 0, 0, []
    for _ in range(40):
        slices = window(rng, UNIFORM, 24_000, DECILES.bins, slices=12, jitter=300.0)
        result = drift.feature_drift("x", DECILES, slices, min_effect=0.0)
        deflated += result.drifted
        phis.append(result.phi)
        # the same counts as if requests were independent: one slice, no dispersion
        pooled = {b: sum(s[b] for s in slices) for b in DECILES.bins}
        plain += drift.feature_drift("x", DECILES, [pooled], min_effect=0.0).drifted
    assert plain >= 25  # the naive test "proves" drift in most windows
    assert deflated <= 5
    assert 3.0 < float(np.median(phis)) < 12.0  # Dirichlet-multinomial: (2000 + 300) / 301 ~ 7.6


def test_a_bin_absent_from_the_reference_is_finite_and_flagged() -> None:
    rng = np.random.default_rng(8)
    feature = BinnedFeature(kind="categorical", categories=("a", "b", "c"), expected=(0.5, 0.3, 0.2, 0.0, 0.0),
                            samples=5000)
    p = np.array([0.45, 0.27, 0.18, 0.0, 0.10])  # 10% missing values, never seen in training
    result = drift.feature_drift("country", feature, window(rng, p, 2000, feature.bins))
    assert math.isfinite(result.statistic) and math.isfinite(result.psi) and math.isfinite(result.p_value)
    assert result.drifted and result.top[0].bin == MISSING and result.top[0].reference == 0.0
    # one stray observation in a bin the reference never saw is merged, not a proof of drift
    q = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
    slices = window(rng, q, 2000, feature.bins)
    slices[0][OTHER] = 1.0
    calm = drift.feature_drift("country", feature, slices)
    assert math.isfinite(calm.statistic) and calm.p_value > 0.01 and not calm.drifted


def test_rare_bins_are_merged_so_that_sparse_windows_keep_the_level() -> None:
    """27 rare categories (1.5% each) in windows of 220: expected counts of about 3. Unmerged, the
    G-test's chi-square approximation rejects an undrifted stream about twice as often as alpha."""
    categories = tuple(f"c{i}" for i in range(30))
    shares = np.array([0.3, 0.2, 0.1] + [0.4 / 27] * 27)
    rng = np.random.default_rng(16)
    runs, flagged = 300, 0
    for _ in range(runs):
        reference = rng.multinomial(2000, shares)
        feature = BinnedFeature(kind="categorical", categories=categories,
                                expected=(*(reference / 2000), 0.0, 0.0), samples=2000)
        counts = rng.multinomial(220, shares)
        result = drift.feature_drift("x", feature, [dict(zip(feature.bins, map(float, counts)))], min_effect=0.0)
        flagged += result.p_value < 0.05
        assert result.dof < 29
    assert flagged / runs <= 0.075


def test_fractional_counts_from_increase_are_accepted() -> None:
    rng = np.random.default_rng(9)
    slices = [{b: c * 1.037 for b, c in s.items()} for s in window(rng, UNIFORM, 3000, DECILES.bins)]
    slices[0]["not-a-bin"] = 50.0
    slices[1]["0"] = float("nan")
    result = drift.feature_drift("x", DECILES, slices)
    assert result.judged and math.isfinite(result.statistic)


# --- prediction drift ---------------------------------------------------------------------

CLASSES = ("cat", "dog", "bird", "fish")
P_CLASSES = np.array([0.4, 0.3, 0.2, 0.1])


def streams(rng: np.random.Generator, p: np.ndarray, q: np.ndarray, per_slice: int, slices: int
            ) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    return ([dict(zip(CLASSES, map(float, rng.multinomial(per_slice, p)))) for _ in range(slices)],
            [dict(zip(CLASSES, map(float, rng.multinomial(per_slice, q)))) for _ in range(slices)])


def test_sequential_alpha_decreases_and_sums_to_alpha() -> None:
    levels = [drift.look_alpha(0.05, k) for k in range(1, 10_001)]
    assert levels == sorted(levels, reverse=True)
    assert levels[0] == pytest.approx(0.05 * 6 / math.pi**2)
    assert sum(levels) < 0.05 and sum(levels) > 0.0499
    with pytest.raises(ValueError):
        drift.look_alpha(0.05, 0)


def test_the_same_difference_fails_at_an_early_look_but_not_a_late_one() -> None:
    rng = np.random.default_rng(10)
    q = np.array([0.47, 0.27, 0.17, 0.09])  # TV 0.07
    cand, stab = streams(rng, q, P_CLASSES, 400, 8)
    early = drift.prediction_drift(cand, stab, look=1, bound=0.0)
    late = drift.prediction_drift(cand, stab, look=300, bound=0.0)
    assert early.p_value == late.p_value and late.alpha_k < early.alpha_k
    assert early.result == "Fail" and late.result != "Fail"


def test_identical_versions_pass_with_enough_samples_only() -> None:
    rng = np.random.default_rng(11)
    few = drift.prediction_drift(*streams(rng, P_CLASSES, P_CLASSES, 15, 10), look=1)
    assert few.result == "Inconclusive" and "too few" in few.message
    many = drift.prediction_drift(*streams(rng, P_CLASSES, P_CLASSES, 800, 10), look=3)
    assert many.result == "Pass" and many.tv_upper < 0.1 and many.tv_distance <= many.tv_upper
    some = drift.prediction_drift(*streams(rng, P_CLASSES, P_CLASSES, 40, 10), look=1)
    assert some.result == "Inconclusive" and some.tv_upper >= 0.1  # 400 each: not enough to show TV < 0.1
    assert drift.prediction_drift(*streams(rng, P_CLASSES, P_CLASSES, 800, 10), look=3, bound=0.0).result != "Pass"


def test_a_shifted_candidate_fails_with_its_bins_on_top() -> None:
    rng = np.random.default_rng(12)
    q = np.array([0.2, 0.3, 0.2, 0.3])  # cat -> fish: TV 0.2
    result = drift.prediction_drift(*streams(rng, q, P_CLASSES, 400, 6), look=2)  # shown beyond the bound: ~900 needed
    assert result.result == "Fail" and result.tv_distance >= 0.1
    assert {result.top[0].bin, result.top[1].bin} == {"cat", "fish"}
    assert "differently" in result.message


def test_a_difference_below_the_bound_does_not_fail() -> None:
    rng = np.random.default_rng(13)
    q = np.array([0.43, 0.3, 0.2, 0.07])  # TV 0.03: real, shown, but within the bound
    result = drift.prediction_drift(*streams(rng, q, P_CLASSES, 5000, 10), look=1)
    assert result.p_value < result.alpha_k and result.result == "Pass"


def test_expected_shift_excludes_the_declared_bins() -> None:
    rng = np.random.default_rng(14)
    q = np.array([0.6, 0.2, 0.133333, 0.066667])  # more cats; the others keep their proportions
    cand, stab = streams(rng, q, P_CLASSES, 800, 10)
    assert drift.prediction_drift(cand, stab, look=1).result == "Fail"
    declared = drift.prediction_drift(cand, stab, look=1, expected_shift={"cat"})
    assert declared.result == "Pass" and declared.excluded == ("cat",)
    assert "ignoring declared cat" in declared.message
    # a shift among the undeclared bins is still seen
    r = np.array([0.6, 0.1, 0.233333, 0.066667])
    cand, stab = streams(rng, r, P_CLASSES, 800, 10)
    assert drift.prediction_drift(cand, stab, look=1, expected_shift={"cat"}).result == "Fail"


def test_bursty_disagreement_is_deflated_and_shared_bursts_cost_nothing() -> None:
    rng = np.random.default_rng(15)
    naive, deflated = 0, 0
    for _ in range(30):
        # both versions answer from each slice's own (jittered) mix, independently: same mean
        cand = [dict(zip(CLASSES, map(float, rng.multinomial(500, rng.dirichlet(P_CLASSES * 200))))) for _ in range(12)]
        stab = [dict(zip(CLASSES, map(float, rng.multinomial(500, rng.dirichlet(P_CLASSES * 200))))) for _ in range(12)]
        pooled = [{c: sum(s[c] for s in x) for c in CLASSES} for x in (cand, stab)]
        naive += drift.prediction_drift([pooled[0]], [pooled[1]], look=1, bound=0.0, min_slices=1).result == "Fail"
        deflated += drift.prediction_drift(cand, stab, look=1, bound=0.0).result == "Fail"
    assert naive >= 10 and deflated <= 3
    # traffic mix changing from slice to slice, seen alike by both versions: phi stays ~1
    shared = [rng.dirichlet(P_CLASSES * 20) for _ in range(12)]
    cand = [dict(zip(CLASSES, map(float, rng.multinomial(500, p)))) for p in shared]
    stab = [dict(zip(CLASSES, map(float, rng.multinomial(500, p)))) for p in shared]
    assert drift.prediction_drift(cand, stab, look=1).phi < 1.6


def test_one_slice_cannot_decide_because_its_dispersion_is_unknown() -> None:
    rng = np.random.default_rng(16)
    q = np.array([0.2, 0.3, 0.2, 0.3])
    cand, stab = streams(rng, q, P_CLASSES, 4000, 1)
    one = drift.prediction_drift(cand, stab, look=1)
    assert one.result == "Inconclusive" and one.slices == 1 and "too few slices" in one.message
    assert drift.prediction_drift(cand, stab, look=1, min_slices=1).result == "Fail"


def test_slices_must_share_the_time_grid() -> None:
    with pytest.raises(ValueError):
        drift.prediction_drift([{"a": 1.0}], [], look=1)


def test_importing_drift_does_not_load_scipy() -> None:
    import subprocess
    import sys
    from pathlib import Path

    operator = Path(__file__).resolve().parents[3] / "operator"
    code = (f"import sys; sys.path.insert(0, {str(operator)!r}); import headway.planning.drift; "
            "print('scipy' in sys.modules, 'numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"]
