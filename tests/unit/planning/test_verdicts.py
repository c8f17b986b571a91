"""Per-SLO verdicts from cumulative Prometheus counts: Pass only on evidence, never on silence."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from headway.api.analysis_spec import Slo
from headway.planning.comparison import VariantMetric, compare_variants, experiment_metric
from headway.planning.verdict_types import Histogram, RequestCounts, VariantData, Verdict, overall, slo_name
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


@pytest.mark.parametrize("value, base, served, result", [
    (0.95, None, 1000, "Pass"),
    (0.85, None, 1000, "Fail"),
    (math.nan, None, 1000, "Inconclusive"),
    (None, None, 1000, "Inconclusive"),
    (0.95, None, 100, "Inconclusive"),  # minRequests applies to queries too
    (0.85, 0.84, 1000, "Inconclusive"),  # baseline out of bounds too
    (0.85, 0.95, 1000, "Fail"),
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
