"""Per-SLO verdicts from cumulative Prometheus counts: Pass only on evidence, never on silence."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from headway.api.analysis_spec import Slo
from headway.planning.comparison import VariantMetric, compare_variants, experiment_metric
from headway.planning.verdict_types import Histogram, RequestCounts, Slice, VariantData, Verdict, overall, slo_name
from headway.planning.proportions import interval_units
from headway.planning.verdicts import assess

INF = math.inf
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)  # BentoML defaults

ERRORS_1PCT = Slo.model_validate({"errorRate": {"max": 0.01}})
ERRORS_2PCT = Slo.model_validate({"errorRate": {"max": 0.02}})
P99_250MS = Slo.model_validate({"latency": {"percentile": 99, "max": "250ms"}})
P99_300MS = Slo.model_validate({"latency": {"percentile": 99, "max": "300ms"}})
QUERY = Slo.model_validate({"query": {"name": "accuracy", "promql": "x", "min": 0.9}})


def errors(errors: float | None, total: float | None) -> VariantData:
    return VariantData(RequestCounts(total=total, errors=errors))


def latency(total: float, above: dict[float, float], *, errs: float = 0.0) -> VariantData:
    """A histogram with ``total`` requests where ``above[le]`` is the share slower than ``le``."""
    buckets = []
    for le in BOUNDS:
        share_above = max([s for b, s in above.items() if b >= le], default=0.0) if le != INF else 0.0
        share_above = max(share_above, 0.5 if le < 0.05 else 0.0)  # some mass at short latencies
        buckets.append((le, total * (1.0 - share_above)))
    return VariantData(RequestCounts(total, errs), Histogram(tuple(buckets)))


def one(slo: Slo, cand: VariantData | None, base: VariantData | None = None, min_requests: int = 200) -> Verdict:
    (verdict,) = assess([slo], cand, base, min_requests)
    return verdict


# --- error rate ----------------------------------------------------------------------------


E1, E2 = ERRORS_1PCT, ERRORS_2PCT


@pytest.mark.parametrize("slo, cand, base, min_requests, result, words", [
    # 2 errors in 150 requests is 1.3%, but it does not prove a breach of 1%.
    (E1, errors(2, 150), None, 100, "Inconclusive", "not enough evidence"),
    (E1, errors(2, 150), None, 200, "Inconclusive", "fewer than minRequests"),
    # Thin data is inconclusive however bad it looks, and however good.
    (E1, errors(50, 100), None, 200, "Inconclusive", "fewer than minRequests"),
    (E1, errors(0, 199), None, 200, "Inconclusive", "fewer than minRequests"),
    # Missing, NaN, nonsense: never a Pass.
    (E1, errors(None, 5000), None, 200, "Inconclusive", "missing"),
    (E1, errors(math.nan, 5000), None, 200, "Inconclusive", "missing"),
    (E1, errors(5, math.nan), None, 200, "Inconclusive", "missing"),
    (E1, errors(900, 500), None, 200, "Inconclusive", "inconsistent"),
    (E1, None, None, 200, "Inconclusive", "missing"),  # Prometheus unreachable
    # Clear breach, clear pass.
    (E1, errors(100, 2000), None, 200, "Fail", "breached"),
    (E1, errors(5, 5000), None, 200, "Pass", "met"),
    (E1, errors(5, 5000), errors(45, 45000), 200, "Pass", "met"),
    # Baseline drift: everyone is at 5% right now -> not the candidate's fault.
    (E1, errors(250, 5000), errors(2250, 45000), 200, "Inconclusive", "so is the baseline"),
    # ... but twice as bad as a drifting baseline is the candidate's fault.
    (E1, errors(500, 5000), errors(2250, 45000), 200, "Fail", "worse than baseline"),
    # At the max, so the absolute test cannot tell, but clearly worse than stable -> Fail.
    (E2, errors(100, 5000), errors(450, 45000), 200, "Fail", "worse than baseline"),
    # A breach the baseline could share: its rate looks within (0.8%), but 2 errors in 250 requests do
    # not show it, so the breach is not yet shown to be the candidate's (the relative test still runs) ...
    (E1, errors(100, 2000), errors(2, 250), 200, "Inconclusive", "baseline is not shown within the SLO"),
    # ... while the same rate over 45,000 requests shows it: the breach is the candidate's.
    (E1, errors(100, 2000), errors(360, 45000), 200, "Fail", "breached"),
    # A baseline shown breaching (lower bound above the max) while the candidate's own evidence is
    # thin: a shared incident (the window will restart once the baseline is back within the SLO).
    (E1, errors(3, 300), errors(2250, 45000), 200, "Inconclusive", "the baseline breaches the SLO"),
    # A baseline that was asked for but is missing blocks a Pass, not a Fail.
    (E1, errors(5, 5000), errors(None, None), 200, "Inconclusive", "baseline's series are missing"),
    (E1, errors(100, 2000), errors(None, None), 200, "Fail", "breached"),
])
def test_error_rate(
    slo: Slo, cand: VariantData | None, base: VariantData | None, min_requests: int, result: str, words: str
) -> None:
    verdict = one(slo, cand, base, min_requests)
    assert verdict.result == result, verdict.reason
    assert words in verdict.reason
    assert verdict.slo == "errorRate"


def test_fail_and_pass_carry_their_evidence() -> None:
    fail = one(ERRORS_1PCT, errors(100, 2000))
    assert fail.value == pytest.approx(0.05) and fail.threshold == 0.01 and fail.samples == 2000
    assert fail.p_value is not None and fail.p_value < 0.05 and fail.statistic is not None and fail.statistic > 0
    assert fail.ci_low is not None and fail.ci_low > 0.01
    good = one(ERRORS_1PCT, errors(5, 5000), errors(45, 45000))
    assert good.p_value is not None and good.p_value < 0.05
    assert good.ci_high is not None and good.ci_high < 0.01 and good.baseline_value == pytest.approx(0.001)
    thin = one(ERRORS_1PCT, errors(50, 100))
    assert thin.p_value is None and thin.statistic is None


def test_evidence_is_json_with_camel_case_keys() -> None:
    for verdict in assess([ERRORS_1PCT, P99_250MS, QUERY], errors(100, 2000), errors(math.nan, None), 200):
        evidence = verdict.to_evidence()
        json.dumps(evidence, allow_nan=False)
        assert {"slo", "result", "value", "threshold", "samples", "baselineValue", "statistic", "pValue", "reason"} <= set(evidence)


# --- latency from histogram buckets ---------------------------------------------------------


@pytest.mark.parametrize("slo, cand, base, result, words", [
    (P99_250MS, latency(4000, {0.25: 0.03}), None, "Fail", "breached"),
    (P99_250MS, latency(4000, {0.25: 0.001}), None, "Pass", "met"),
    (P99_250MS, latency(150, {0.25: 0.001}), None, "Inconclusive", "fewer than minRequests"),
    # 300ms lies between the 0.25 and 0.5 bounds: 2% above 0.25 s and 0.1% above 0.5 s
    # says nothing about the share above 300 ms -> no verdict, and the reason says why.
    (P99_300MS, latency(20000, {0.25: 0.02, 0.5: 0.001}), None, "Inconclusive", "between bucket bounds"),
    (P99_300MS, latency(20000, {0.25: 0.05, 0.5: 0.03}), None, "Fail", "breached"),
    (P99_300MS, latency(20000, {0.25: 0.001}), None, "Pass", "met"),
    # p99 moved up against a baseline at the same time, under the absolute test's radar.
    (P99_250MS, latency(5000, {0.1: 0.13, 0.25: 0.013}), latency(45000, {0.1: 0.08, 0.25: 0.002}), "Fail", "worse than baseline"),
    # Everyone slow right now: not the candidate's fault.
    (P99_250MS, latency(5000, {0.25: 0.03}), latency(45000, {0.25: 0.03}), "Inconclusive", "so is the baseline"),
    (P99_250MS, VariantData(RequestCounts(5000, 0)), None, "Inconclusive", "histogram missing"),
    (P99_250MS, VariantData(latency=Histogram(((0.25, 10.0), (0.5, 20.0)))), None, "Inconclusive", "+Inf"),
])
def test_latency(slo: Slo, cand: VariantData, base: VariantData | None, result: str, words: str) -> None:
    verdict = one(slo, cand, base)
    assert verdict.result == result, verdict.reason
    assert words in verdict.reason
    assert verdict.slo == "latency-p99"


def test_counters_from_histograms() -> None:
    """Unsorted, slightly non-monotone buckets (per-bucket increase()) still give counts."""
    buckets = ((INF, 3000.0), (0.25, 2990.5), (0.1, 2991.0), (0.5, 2999.0), (0.05, 1500.0))
    verdict = one(P99_250MS, VariantData(latency=Histogram(buckets)))
    assert verdict.samples == 3000
    assert verdict.value == pytest.approx(9.0 / 3000)  # above 0.25 s, after repairing the dip
    # With no request counter, a query SLO takes the traffic from the histogram's +Inf bucket.
    query = one(QUERY, VariantData(latency=Histogram(buckets), queries={"accuracy": 0.95}))
    assert query.result == "Pass" and query.samples == 3000


# --- custom queries and no SLOs -----------------------------------------------------------------


@pytest.mark.parametrize("value, base, served, result", [  # a value query is untested: it holds, never fails
    (0.95, None, 1000, "Pass"),
    (0.85, None, 1000, "Inconclusive"),
    (math.nan, None, 1000, "Inconclusive"),
    (None, None, 1000, "Inconclusive"),
    (0.95, None, 100, "Inconclusive"),  # minRequests applies to queries too
    (0.85, 0.84, 1000, "Inconclusive"),  # baseline out of bounds too
    (0.85, 0.95, 1000, "Inconclusive"),
])
def test_query(value: float | None, base: float | None, served: float, result: str) -> None:
    cand = VariantData(RequestCounts(served, 0), queries={"accuracy": value})
    baseline = None if base is None else VariantData(RequestCounts(served * 9, 0), queries={"accuracy": base})
    assert one(QUERY, cand, baseline).result == result


@pytest.mark.parametrize("cand, base, result", [
    (errors(0, 100), None, "Inconclusive"),
    (errors(0, 500), None, "Pass"),
    (errors(None, None), None, "Inconclusive"),
    (errors(5, 500), errors(45, 4500), "Pass"),
    (errors(100, 2000), errors(45, 4500), "Fail"),
    (errors(5, 500), errors(None, None), "Inconclusive"),
])
def test_no_slos_judges_traffic_and_errors_against_baseline(cand: VariantData, base: VariantData | None, result: str) -> None:
    verdicts = assess([], cand, base, 200)
    assert [v.slo for v in verdicts] == ["traffic"]
    assert overall(verdicts) == result


@pytest.mark.parametrize("results, expected", [
    ([], "Inconclusive"),
    (["Pass"], "Pass"),
    (["Pass", "Pass"], "Pass"),
    (["Pass", "Inconclusive"], "Inconclusive"),
    (["Inconclusive", "Fail"], "Fail"),
    (["Pass", "Fail"], "Fail"),
])
def test_overall(results: list[str], expected: str) -> None:
    verdicts = [Verdict("x", r, None, None, 0, None, None, None, "") for r in results]  # type: ignore[arg-type]
    assert overall(verdicts) == expected


def test_slo_names() -> None:
    assert [slo_name(s) for s in (ERRORS_1PCT, P99_250MS, QUERY)] == ["errorRate", "latency-p99", "accuracy"]
    assert slo_name(Slo.model_validate({"latency": {"percentile": 99.9, "max": "1s"}})) == "latency-p99.9"


def test_max_zero_means_no_errors_at_all() -> None:
    zero = Slo.model_validate({"errorRate": {"max": 0}})
    assert one(zero, errors(0, 500)).result == "Pass"
    assert one(zero, errors(1, 500)).result == "Fail"


# --- peeking: a good version looked at every interval for hours --------------------------------


def _fail_rate(cand_rate: float, base_rate: float | None, max_rate: float, runs: int, looks: int) -> float:
    rng = np.random.default_rng(2022)
    slos = [Slo.model_validate({"errorRate": {"max": max_rate}})]
    fails = 0
    for _ in range(runs):
        per_look, per_look_b = rng.poisson(150, looks), rng.poisson(1350, looks)  # 5 + 45 req/s, 30 s looks
        n, e = per_look.cumsum(), rng.binomial(per_look, cand_rate).cumsum()
        n_b, e_b = per_look_b.cumsum(), rng.binomial(per_look_b, base_rate or 0.0).cumsum()
        for t in range(looks):
            base = None if base_rate is None else errors(float(e_b[t]), float(n_b[t]))
            if overall(assess(slos, errors(float(e[t]), float(n[t])), base, 200)) == "Fail":
                fails += 1
                break
    return fails / runs


@pytest.mark.parametrize("cand_rate, base_rate, max_rate", [
    (0.01, None, 0.01),  # exactly at the max, no baseline: the breach test's worst case
    (0.0125, 0.01, 0.0125),  # at the max and at the relative margin (+25%): worst case for both tests
    (0.01, 0.01, 0.02),  # a good version, identical to stable
])
def test_false_fail_rate_over_many_looks_stays_below_alpha(cand_rate: float, base_rate: float | None, max_rate: float) -> None:
    # 100 runs x 40 looks (every 30 s for 20 min, 6000 requests); alpha is 0.05.
    assert _fail_rate(cand_rate, base_rate, max_rate, runs=100, looks=40) <= 0.05


@pytest.mark.parametrize("cand_rate, base_rate, max_rate", [
    (0.03, None, 0.01),  # 3x the max
    (0.02, 0.01, 0.02),  # 2x stable, at the max: only the relative test can tell
])
def test_the_same_looks_catch_real_regressions(cand_rate: float, base_rate: float | None, max_rate: float) -> None:
    assert _fail_rate(cand_rate, base_rate, max_rate, runs=40, looks=40) >= 0.9


# --- experiments -------------------------------------------------------------------------------


@pytest.mark.parametrize("arms, lower, result, winner", [
    ([VariantMetric("a", 2000, 100), VariantMetric("b", 2000, 50)], True, "Winner", "b"),
    ([VariantMetric("a", 2000, 100), VariantMetric("b", 2000, 50)], False, "Winner", "a"),
    ([VariantMetric("a", 2000, 60), VariantMetric("b", 2000, 58)], True, "NoDifference", None),
    ([VariantMetric("a", 500, 100), VariantMetric("b", 2000, 50)], True, "Inconclusive", None),  # below minSamples
    ([VariantMetric("a", 2000, None), VariantMetric("b", 2000, 50)], True, "Inconclusive", None),
    ([VariantMetric("a", 2000, 100), VariantMetric("b", 2000, 40), VariantMetric("c", 2000, 42)], True, "NoDifference", None),
    ([VariantMetric("a", 5000, mean=0.31, variance=0.04), VariantMetric("b", 5000, mean=0.30, variance=0.04)], True, "Winner", "b"),
])
def test_compare_variants(arms: list[VariantMetric], lower: bool, result: str, winner: str | None) -> None:
    comparison = compare_variants(arms, "errorRate", lower_is_better=lower, min_samples=1000)
    assert comparison.result == result, comparison.reason
    assert comparison.winner == winner
    evidence: dict[str, Any] = comparison.to_evidence()
    json.dumps(evidence, allow_nan=False)
    if result != "Inconclusive":
        assert comparison.p_value is not None and comparison.statistic is not None


def test_experiment_metric_from_prometheus_data() -> None:
    data = latency(4000, {0.25: 0.02}, errs=40)
    assert experiment_metric("a", data, "errorRate", []) == (VariantMetric("a", 4000, 40), True)
    slow, lower = experiment_metric("a", data, "latency", [P99_250MS])
    assert slow.samples == 4000 and slow.events == pytest.approx(80) and lower
    query, lower = experiment_metric("a", VariantData(RequestCounts(1000, 0), queries={"accuracy": 0.93}), "accuracy", [QUERY])
    assert query.events == pytest.approx(930) and not lower  # only a min: higher is better


# --- correlated errors: slices per pod and interval -------------------------------------------------


def _pods(rng: np.random.Generator, intervals: int, pods: int, rps: float, rate: float | np.ndarray,
          hiccups_per_hour: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(errors, requests) per interval (30 s) and pod; a hiccup fails every request of a pod for 10 s."""
    n = rng.poisson(rps * 30, (intervals, pods))
    down = np.zeros((intervals, pods))
    for pod in range(pods):
        for start in rng.uniform(-10, intervals * 30, rng.poisson(hiccups_per_hour * (intervals * 30 + 10) / 3600)):
            for t in range(max(0, int(start // 30)), min(intervals, int((start + 10) // 30) + 1)):
                down[t, pod] += max(0.0, min(start + 10, 30 * t + 30) - max(start, 30 * t)) / 30
    hit = rng.binomial(n, np.minimum(down, 1.0))
    base_rate = np.broadcast_to(np.asarray(rate, dtype=float).reshape(-1, 1) if np.ndim(rate) else rate, (intervals, pods))
    return (hit + rng.binomial(n - hit, base_rate)).astype(float), n.astype(float)


class Variant:
    """One variant's slices, so that the data of every look is a prefix (as Prometheus gives it)."""

    def __init__(self, k: np.ndarray, n: np.ndarray, name: str) -> None:
        self.k, self.n, self.pods = k, n, n.shape[1]
        self.slices = tuple(Slice(f"{name}-{p}", 30.0 * t, RequestCounts(n[t, p], k[t, p]))
                            for t in range(n.shape[0]) for p in range(n.shape[1]))

    def at(self, looks: int, slices: bool = True) -> VariantData:
        totals = RequestCounts(float(self.n[:looks].sum()), float(self.k[:looks].sum()))
        return VariantData(totals, slices=self.slices[: looks * self.pods] if slices else ())


def _first_fail(cand: Variant, base: Variant, slos: list[Slo], looks: int, slices: bool = True) -> int | None:
    for t in range(1, looks + 1):
        if overall(assess(slos, cand.at(t, slices), base.at(t, slices), 200)) == "Fail":
            return t
    return None


def test_a_good_version_whose_pods_hiccup_is_not_failed() -> None:
    """Every pod (1 candidate, 9 stable) fails for 10 s about every 20 minutes; 0.5% errors otherwise,
    1.3% on average against a 2% max. Counted request by request, one candidate hiccup is proof
    that it is worse than stable; counted per pod and interval it is one bad slice."""
    rng = np.random.default_rng(31)
    runs, looks, old, new = 50, 40, 0, 0
    for _ in range(runs):
        cand = Variant(*_pods(rng, looks, 1, 5, 0.005, hiccups_per_hour=3), "c")
        base = Variant(*_pods(rng, looks, 9, 5, 0.005, hiccups_per_hour=3), "s")
        old += _first_fail(cand, base, [ERRORS_2PCT], looks, slices=False) is not None
        new += _first_fail(cand, base, [ERRORS_2PCT], looks) is not None
    assert new / runs <= 0.05  # alpha, over 40 looks
    assert old / runs >= 0.3


def test_a_hiccup_of_a_one_pod_canary_is_not_proof() -> None:
    """The first interval of a one-pod canary: a third of its 600 requests failed at once."""
    cand = VariantData(RequestCounts(600, 200), slices=(Slice("c-0", 0.0, RequestCounts(600, 200)),))
    stable = tuple(Slice(f"s-{p}", 0.0, RequestCounts(600, 3)) for p in range(9))
    base = VariantData(RequestCounts(5400, 27), slices=stable)
    assert one(ERRORS_2PCT, replace(cand, slices=()), replace(base, slices=())).result == "Fail"  # as independent requests
    verdict = one(ERRORS_2PCT, cand, base)
    assert verdict.result == "Inconclusive", verdict.reason
    assert "1 pod-intervals" in verdict.reason and "1 units compared" in verdict.reason
    # Three clean intervals later it is still no proof of anything (nor shown met: 200 errors in 2400).
    later = (*cand.slices, *(Slice("c-0", 30.0 * t, RequestCounts(600, 3)) for t in (1, 2, 3)))
    later_base = (*stable, *(Slice(f"s-{p}", 30.0 * t, RequestCounts(600, 3)) for t in (1, 2, 3) for p in range(9)))
    verdict = one(ERRORS_2PCT, VariantData(RequestCounts(2400, 209), slices=later), VariantData(RequestCounts(21600, 108), slices=later_base))
    assert verdict.result != "Fail", verdict.reason
    assert verdict.dispersion is not None and verdict.dispersion > 10


def test_a_shared_incident_is_not_failed() -> None:
    """Every pod of both variants at 5% errors for ten minutes (max 1%): the service, not the candidate."""
    rng = np.random.default_rng(32)
    rate = np.where((np.arange(40) >= 4) & (np.arange(40) < 24), 0.05, 0.005)
    for _ in range(10):
        cand = Variant(*_pods(rng, 40, 1, 20, rate), "c")
        base = Variant(*_pods(rng, 40, 9, 20, rate), "s")
        assert _first_fail(cand, base, [ERRORS_1PCT], 40) is None


@pytest.mark.parametrize("rps, within", [(5, 10), (20, 8), (100, 8)])
def test_a_uniform_regression_still_fails_quickly(rps: float, within: int) -> None:
    """1% -> 5% on every slice (max 2%): a few intervals, where independent requests took one or two."""
    rng = np.random.default_rng(33)
    for _ in range(10):
        cand = Variant(*_pods(rng, within, 1, rps, 0.05), "c")
        base = Variant(*_pods(rng, within, 9, rps, 0.01), "s")
        first = _first_fail(cand, base, [ERRORS_2PCT], within)
        assert first is not None and first <= within - 1  # failureLimit 2: rolled back by `within`


def test_more_candidate_pods_more_units() -> None:
    """Four candidate pods: four pod-intervals per interval, so a regression shows sooner."""
    rng = np.random.default_rng(34)
    one_pod = Variant(*_pods(rng, 8, 1, 40, 0.05), "c")
    four_pods = Variant(*_pods(rng, 8, 4, 10, 0.05), "c")
    base = Variant(*_pods(rng, 8, 9, 40, 0.01), "s")
    breach_only = [Slo.model_validate({"errorRate": {"max": 0.02}})]
    first_one = _first_fail(one_pod, Variant(base.k, base.n, "s"), breach_only, 8)
    first_four = _first_fail(four_pods, base, breach_only, 8)
    assert first_one is not None and first_four is not None and first_four < first_one


def test_without_slices_the_verdict_is_as_before() -> None:
    cand, base = errors(100, 5000), errors(450, 45000)
    before = one(ERRORS_2PCT, cand, base)
    assert before.dispersion is None and "pod-intervals" not in before.reason
    assert before.result == "Fail" and "dispersion" not in before.to_evidence()


def test_slice_evidence_is_reported() -> None:
    slices = tuple(Slice("c-0", 30.0 * t, RequestCounts(1000, 60)) for t in range(8))
    base = tuple(Slice(f"s-{p}", 30.0 * t, RequestCounts(1000, 10)) for t in range(8) for p in range(9))
    verdict = one(ERRORS_2PCT, VariantData(RequestCounts(8000, 480), slices=slices), VariantData(RequestCounts(72000, 720), slices=base))
    assert verdict.result == "Fail"
    assert verdict.ci_low is not None and 0.02 < verdict.ci_low < 0.06  # from the slices' bets
    evidence = verdict.to_evidence()
    json.dumps(evidence, allow_nan=False)
    assert evidence["dispersion"] == 1.0 and evidence["effectiveSamples"] == 8000
    assert "8 pod-intervals, dispersion 1 (8000 effective requests), 8 units compared" in verdict.reason


def test_latency_slices() -> None:
    """A pod slow for one interval is one bad slice; slower everywhere is a regression."""
    def hist(total: float, slow: float) -> Histogram:
        return latency(total, {0.25: slow}).latency or Histogram()

    def variant(shares: list[list[float]], name: str) -> VariantData:
        slices = tuple(Slice(f"{name}-{p}", 30.0 * t, RequestCounts(1000, 0), hist(1000, s))
                       for t, row in enumerate(shares) for p, s in enumerate(row))
        total = 1000.0 * len(slices)
        slow = sum(s for row in shares for s in row) * 1000.0
        return VariantData(RequestCounts(total, 0), Histogram(((0.25, total - slow), (INF, total))), slices=slices)

    base = variant([[0.005] * 9] * 6, "s")
    burst = variant([[0.4]] + [[0.005]] * 5, "c")  # one slow interval
    assert one(P99_250MS, burst, base).result != "Fail"
    assert one(P99_250MS, replace(burst, slices=()), replace(base, slices=())).result == "Fail"
    slower = variant([[0.03]] * 6, "c")  # 3% slower than 250 ms in every interval
    verdict = one(P99_250MS, slower, base)
    assert verdict.result == "Fail" and verdict.dispersion is not None


def test_comparison_units_pair_disjoint_groups_of_pods() -> None:
    def counts(s: Slice) -> tuple[float, float] | None:
        return None if s.requests.total is None else (s.requests.errors or 0.0, s.requests.total)

    cand = [Slice(f"c-{p}", 0.0, RequestCounts(100, p)) for p in range(4)]
    base = [Slice(f"s-{p}", 0.0, RequestCounts(100, 1)) for p in range(9)]
    units = interval_units(cand, base, counts)
    assert len(units) == 4  # min(4 candidate pods, 9 stable pods) groups
    assert [u[0] for u in units] == [(0.0, 100.0, 1.0), (1.0, 100.0, 1.0), (2.0, 100.0, 1.0), (3.0, 100.0, 1.0)]
    assert sorted(u[1][1] for u in units) == [200.0, 200.0, 200.0, 300.0] and sum(u[1][0] for u in units) == 9.0
    # A pod whose counts are unusable in an interval leaves that interval out; idle pods do not count.
    later = [Slice("c-0", 30.0, RequestCounts(None, None)), Slice("c-0", 60.0, RequestCounts(100, 1)), Slice("c-1", 60.0, RequestCounts(0, 0))]
    more_base = [Slice("s-0", 30.0, RequestCounts(100, 1)), Slice("s-0", 60.0, RequestCounts(100, 1))]
    assert interval_units(later, more_base, counts) == (((1.0, 100.0, 1.0), (1.0, 100.0, 1.0)),)
