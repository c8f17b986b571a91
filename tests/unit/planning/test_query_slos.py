"""Query SLOs: a ratio of two counts is tested like the error rate; a value query is untested and never rolls back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from headway.api.spec import ModelDeploymentSpec, SeriesLabels, Slo
from headway.metrics.base import SeriesQuery
from headway.metrics.prometheus import PrometheusSource
from headway.planning import analysis
from headway.planning.comparison import VariantMetric, experiment_metric
from headway.planning.validation import check_spec, parse_spec
from headway.planning.verdict_types import FAIL, INCONCLUSIVE, PASS, RequestCounts, VariantData, Verdict, overall
from headway.planning.verdicts import assess

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
MODEL = {"bento": "fraud_scorer:2.0.0", "image": "registry.example.com/fraud:2"}
FAILED = 'sum(increase(scoring_failures_total{variant="{{variant}}"}[{{window}}]))'
SCORED = 'sum(increase(scored_total{variant="{{variant}}"}[{{window}}]))'
TRUE_POSITIVES = 'sum(increase(confirmed_flags_total{variant="{{variant}}"}[{{window}}]))'
FLAGGED = 'sum(increase(labelled_flags_total{variant="{{variant}}"}[{{window}}]))'


def ratio_slo(name: str, numerator: str, denominator: str, **bound: float) -> Slo:
    return Slo.model_validate({"query": {"name": name, "numerator": numerator, "denominator": denominator, **bound}})


FAILED_SHARE = ratio_slo("failed-share", FAILED, SCORED, max=0.02)  # at most 2% of scorings fail
PRECISION = ratio_slo("precision", TRUE_POSITIVES, FLAGGED, min=0.9)  # at least 90% of flags are frauds
VALUE = Slo.model_validate({"query": {"name": "approval-rate", "promql": "x", "min": 0.3}})
ERRORS_2PCT = Slo.model_validate({"errorRate": {"max": 0.02}})


def counts(name: str, numerator: float | None, denominator: float | None, served: float = 100_000) -> VariantData:
    return VariantData(RequestCounts(served, 0), ratios={name: (numerator, denominator)})


def one(slo: Slo, cand: VariantData, base: VariantData | None = None, min_requests: int = 200) -> Verdict:
    (verdict,) = assess([slo], cand, base, min_requests)
    return verdict


# --- ratios: the proportion test, on the denominator's events ----------------------------------


@pytest.mark.parametrize("cand, base, result, words", [
    # Thin data: too few denominator events (minRequests counts them, not the requests served) ...
    (counts("failed-share", 1, 150), None, INCONCLUSIVE, "fewer than minRequests 200"),
    # ... or enough of them but not enough evidence either way (1.7% against 2%).
    (counts("failed-share", 5, 300), None, INCONCLUSIVE, "not enough evidence"),
    (counts("failed-share", 10, 5000), None, PASS, "shown to be met"),
    (counts("failed-share", 300, 5000), None, FAIL, "shown to be breached"),
    # Stable breaches just as much over the same window: service-wide, rolling back would not help.
    (counts("failed-share", 300, 5000), counts("failed-share", 2700, 45000), INCONCLUSIVE, "so is the baseline"),
    # Worse than stable beyond the margin: Fail even when stable breaches too.
    (counts("failed-share", 600, 5000), counts("failed-share", 2700, 45000), FAIL, "worse than baseline"),
    # Missing, NaN or inconsistent counts are never a Pass.
    (counts("failed-share", None, 5000), None, INCONCLUSIVE, "numerator returned no value"),
    (counts("failed-share", float("nan"), float("nan")), None, INCONCLUSIVE, "numerator and denominator returned no value"),
    (VariantData(RequestCounts(5000, 0)), None, INCONCLUSIVE, "returned no value"),
    (counts("failed-share", 900, 500), None, INCONCLUSIVE, "numerator above denominator"),
    (counts("failed-share", 10, 5000), counts("failed-share", None, 45000), INCONCLUSIVE, "baseline's series are missing"),
])
def test_ratio_with_max(cand: VariantData, base: VariantData | None, result: str, words: str) -> None:
    verdict = one(FAILED_SHARE, cand, base)
    assert (verdict.result, verdict.tested) == (result, True), verdict.reason
    assert words in verdict.reason


def test_minrequests_counts_the_denominator_not_the_requests_served() -> None:
    verdict = one(FAILED_SHARE, counts("failed-share", 0, 150, served=1_000_000))
    assert verdict.result == INCONCLUSIVE and verdict.samples == 150


def test_a_max_ratio_is_judged_exactly_like_the_error_rate() -> None:
    """Same counts, same test: failed/scored with max 0.02 is errors/requests with errorRate max 0.02."""
    for k, n, kb, nb in [(10, 5000, 90, 45000), (300, 5000, 900, 45000), (5, 300, 50, 2700), (600, 5000, 2700, 45000)]:
        as_ratio = one(FAILED_SHARE, counts("failed-share", k, n), counts("failed-share", kb, nb))
        as_errors = one(ERRORS_2PCT, VariantData(RequestCounts(n, k)), VariantData(RequestCounts(nb, kb)))
        fields = ("result", "value", "threshold", "samples", "baseline_value", "statistic", "p_value", "ci_low", "ci_high")
        assert [getattr(as_ratio, f) for f in fields] == [getattr(as_errors, f) for f in fields]


@pytest.mark.parametrize("tp, flagged, base, result, words", [
    (40, 45, None, INCONCLUSIVE, "fewer than minRequests"),
    (270, 300, None, INCONCLUSIVE, "not enough evidence"),  # exactly 90%
    (4900, 5000, None, PASS, "shown to be met"),  # 98% precision
    (4000, 5000, None, FAIL, "shown to be breached"),  # 80% precision
    (4000, 5000, (36000, 45000), INCONCLUSIVE, "so is the baseline"),  # stable is at 80% too
    (4000, 5000, (44000, 45000), FAIL, "worse than baseline"),  # stable at 97.8%: the candidate is worse
    (4900, 5000, (44500, 45000), PASS, "shown to be met"),
])
def test_ratio_with_min_is_the_share_outside_the_numerator(
    tp: float, flagged: float, base: tuple[float, float] | None, result: str, words: str,
) -> None:
    """precision >= 0.9 is tested as "at most 10% of flags are false alarms": the same test, mirrored."""
    baseline = None if base is None else counts("precision", *base)
    verdict = one(PRECISION, counts("precision", tp, flagged), baseline)
    assert verdict.result == result, verdict.reason
    assert words in verdict.reason
    # Reported in the ratio's own terms: value and bounds are precisions, the threshold is min.
    assert verdict.threshold == 0.9
    if verdict.value is not None:
        assert verdict.value == pytest.approx(tp / flagged)
        assert verdict.ci_low is not None and verdict.ci_high is not None
        assert 0.0 <= verdict.ci_low <= verdict.value <= verdict.ci_high <= 1.0
        assert "min 0.9" in verdict.reason
    if base is not None and verdict.baseline_value is not None:
        assert verdict.baseline_value == pytest.approx(base[0] / base[1])


def test_min_mirrors_max_on_the_complement() -> None:
    """ratio >= 0.9 on (tp, n) decides exactly as (n - tp)/n <= 0.1: same statistic, mirrored bounds."""
    mirror = ratio_slo("precision", FAILED, SCORED, max=0.1)
    for tp, n, tpb, nb in [(4900, 5000, 44000, 45000), (4000, 5000, 44000, 45000), (4500, 5000, 40500, 45000)]:
        low = one(PRECISION, counts("precision", tp, n), counts("precision", tpb, nb))
        high = one(mirror, counts("precision", n - tp, n), counts("precision", nb - tpb, nb))
        assert (low.result, low.samples) == (high.result, high.samples)
        assert low.statistic == pytest.approx(high.statistic) and low.p_value == pytest.approx(high.p_value)  # 1 - 0.9 != 0.1
        assert low.value == pytest.approx(1 - high.value)  # type: ignore[operator]
        assert low.ci_low == pytest.approx(1 - high.ci_high) and low.ci_high == pytest.approx(1 - high.ci_low)  # type: ignore[operator]


def _false_fails(slo: Slo, good: float, base_good: float | None, runs: int, looks: int) -> float:
    """Share of runs with any Fail when the candidate sits exactly at the bound, looked at every 30 s."""
    assert slo.query is not None
    name = slo.query.name
    rng = np.random.default_rng(7)
    fails = 0
    for _ in range(runs):
        n, n_b = rng.poisson(100, looks).cumsum(), rng.poisson(900, looks).cumsum()
        k = rng.binomial(np.diff(n, prepend=0), good).cumsum()
        k_b = rng.binomial(np.diff(n_b, prepend=0), base_good or 0.0).cumsum()
        for t in range(looks):
            base = None if base_good is None else counts(name, float(k_b[t]), float(n_b[t]))
            if overall(assess([slo], counts(name, float(k[t]), float(n[t])), base, 200)) == FAIL:
                fails += 1
                break
    return fails / runs


@pytest.mark.parametrize("slo, good, base_good", [
    (PRECISION, 0.9, None),  # precision exactly at min: the breach test's worst case
    (PRECISION, 0.9, 0.92),  # at min and at the relative margin: a miss rate of 10% against stable's 8% is +25%
    (FAILED_SHARE, 0.02, None),
])
def test_looking_every_interval_at_a_ratio_at_its_bound_rarely_fails(slo: Slo, good: float, base_good: float | None) -> None:
    # 100 runs x 40 looks; the verdicts' alpha is 0.05 over all looks (a threshold check fails ~half of them).
    assert _false_fails(slo, good, base_good, runs=100, looks=40) <= 0.05


# --- untested value queries: reported, may hold, never roll back ---------------------------------


def value(x: float | None, served: float = 5000) -> VariantData:
    return VariantData(RequestCounts(served, 0), queries={"approval-rate": x})


@pytest.mark.parametrize("cand, base, result, words", [
    (value(0.35), None, PASS, "within bounds"),
    (value(0.25), None, INCONCLUSIVE, "outside bounds: holding"),
    (value(0.25), value(0.4, 45000), INCONCLUSIVE, "outside bounds: holding"),
    (value(0.25), value(0.2, 45000), INCONCLUSIVE, "so is the baseline"),
    (value(None), None, INCONCLUSIVE, "no value"),
    (value(0.35, served=100), None, INCONCLUSIVE, "fewer than minRequests"),
])
def test_a_value_query_is_untested_and_never_fails(cand: VariantData, base: VariantData | None, result: str, words: str) -> None:
    verdict = one(VALUE, cand, base)
    assert (verdict.result, verdict.tested) == (result, False), verdict.reason
    assert verdict.reason.startswith("untested") and words in verdict.reason
    assert verdict.statistic is None and verdict.p_value is None  # no test decided


def _v(result: str, tested: bool = True) -> Verdict:
    return Verdict("x", result, None, None, 0, None, None, None, "", tested=tested)  # type: ignore[arg-type]


@pytest.mark.parametrize("verdicts, expected", [
    ([_v(PASS), _v(PASS, tested=False)], PASS),
    ([_v(PASS), _v(INCONCLUSIVE, tested=False)], INCONCLUSIVE),  # an untested query out of bounds holds
    ([_v(PASS), _v(FAIL, tested=False)], INCONCLUSIVE),  # even one marked Fail: it cannot fail the look alone
    ([_v(FAIL), _v(PASS, tested=False)], FAIL),  # a tested SLO's Fail is a Fail
    ([_v(FAIL), _v(FAIL, tested=False)], FAIL),
    ([_v(INCONCLUSIVE), _v(FAIL, tested=False)], INCONCLUSIVE),
])
def test_overall_never_fails_on_untested_verdicts_alone(verdicts: list[Verdict], expected: str) -> None:
    assert overall(verdicts) == expected


def spec_with(*slos: dict[str, Any], **analysis_fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({
        "model": MODEL, "rollout": {"steps": [{"canary": {"weight": 10, "duration": "5m"}}]},
        "analysis": {"interval": "30s", "slos": list(slos), "failureLimit": 2, **analysis_fields},
    })


def test_an_untested_query_out_of_bounds_holds_the_rollout_but_never_rolls_it_back() -> None:
    spec = spec_with({"errorRate": {"max": 0.01}}, {"query": {"name": "approval-rate", "promql": "x", "min": 0.3}})
    assert spec.analysis is not None
    req = analysis.AnalysisRequest("step", "rev2", T0, (("candidate", "stable"),))
    status = None
    for look in range(1, 9):  # errors shown fine, the value query far out of bounds at every look
        cand = VariantData(RequestCounts(5000.0 * look, 0.0), queries={"approval-rate": 0.05})
        base = VariantData(RequestCounts(45000.0 * look, 90.0 * look), queries={"approval-rate": 0.4})
        verdicts = [("candidate", v) for v in assess(spec.analysis.slos, cand, base, spec.analysis.min_requests)]
        status = analysis.record(spec.analysis, status, req, verdicts, None, T0 + timedelta(seconds=30 * look))
        gate = analysis.gate(spec.analysis, status, req)
        assert gate.result == INCONCLUSIVE and not gate.rollback, gate.message
        assert status.consecutive_failures == 0
    assert status is not None
    held = next(v for v in status.verdicts if v.slo == "approval-rate")
    assert held.result == INCONCLUSIVE and held.reason.startswith("untested")
    # The same look with the error rate shown breached too is a Fail: a tested SLO failed.
    cand = VariantData(RequestCounts(5000.0, 500.0), queries={"approval-rate": 0.05})
    assert overall(assess(spec.analysis.slos, cand, None, 200)) == FAIL


# --- {{interval}} ranges that hold a handful of scrapes are refused -------------------------------


def problems_of(*slos: dict[str, Any], interval: str = "30s") -> dict[str, str]:
    raw = {"model": MODEL, "analysis": {"interval": interval, "slos": list(slos)}}
    parsed, problems = parse_spec(raw)
    if parsed is not None:
        problems = check_spec("fraud-scorer", parsed)
    return {p.field: p.message for p in problems}


def value_query(promql: str) -> dict[str, Any]:
    return {"query": {"name": "approval-rate", "promql": promql, "min": 0.3}}


@pytest.mark.parametrize("promql, interval", [
    ('sum(rate(approvals_total{variant="{{variant}}"}[{{interval}}]))', "30s"),  # the README's old example
    ("sum(rate(a[{{interval}}])) / sum(rate(b[{{interval}}]))", "1m"),
    ("max_over_time(sum(rate(a[1m]))[ {{interval}} :15s])", "90s"),  # a subquery's range
])
def test_an_interval_range_too_short_to_hold_enough_scrapes_is_refused(promql: str, interval: str) -> None:
    problems = problems_of({"errorRate": {"max": 0.01}}, value_query(promql), interval=interval)
    message = problems["spec.analysis.slos[1].query.promql"]
    assert "scrapes" in message and "[{{window}}]" in message and "at least 2m" in message
    assert f"only {interval} of data" in message


@pytest.mark.parametrize("promql, interval", [
    ("sum(rate(a[{{interval}}]))", "2m"),  # 4 scrapes at 30 s
    ("sum(rate(a[{{interval}}]))", "5m"),
    ("sum(increase(a[{{window}}])) / sum(increase(b[{{window}}]))", "30s"),  # the analysis window
    ("sum(rate(a[5m] offset {{interval}}))", "30s"),  # not a range over the interval
])
def test_longer_ranges_and_the_window_are_accepted(promql: str, interval: str) -> None:
    assert problems_of(value_query(promql), interval=interval) == {}


def test_a_ratio_must_count_over_the_window_and_names_the_field() -> None:
    over_interval = {"query": {"name": "failed-share", "numerator": FAILED.replace("{{window}}", "{{interval}}"),
                               "denominator": SCORED, "max": 0.02}}
    assert "spec.analysis.slos[0].query.numerator" in problems_of(over_interval, interval="5m")
    fixed = {"query": {"name": "failed-share", "numerator": FAILED, "denominator": SCORED.replace("{{window}}", "1h"),
                       "max": 0.02}}
    assert "[{{window}}]" in problems_of(fixed)["spec.analysis.slos[0].query.denominator"]
    both = {"query": {"name": "precision", "numerator": TRUE_POSITIVES, "denominator": FLAGGED, "min": 0.3, "max": 0.9}}
    assert "one-sided" in problems_of(both)["spec.analysis.slos[0].query"]
    assert problems_of({"query": {"name": "precision", "numerator": TRUE_POSITIVES, "denominator": FLAGGED, "min": 0.9}}) == {}


# --- experiments read ratios as proportions ------------------------------------------------------


def test_experiment_metric_reads_a_ratio_as_its_counts() -> None:
    data = counts("precision", 930, 1000)
    assert experiment_metric("a", data, "precision", [PRECISION]) == (VariantMetric("a", 1000, 930), False)
    data = counts("failed-share", 12, 4000)
    assert experiment_metric("a", data, "failed-share", [FAILED_SHARE]) == (VariantMetric("a", 4000, 12), True)
    assert experiment_metric("a", counts("precision", None, 1000), "precision", [PRECISION]) == (VariantMetric("a", None), False)


# --- fetching: two counts per ratio over the window ----------------------------------------------


class _FakeClient:
    def __init__(self, answers: dict[str, float | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def custom_query(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked.append(query)
        for needle, answer in self.answers.items():
            if needle in query:
                return [] if answer is None else [{"metric": {}, "value": [params["time"], str(answer)]}]
        return [{"metric": {}, "value": [params["time"], "0"]}]

    def custom_query_range(self, query: str, **params: Any) -> list[dict[str, Any]]:
        return []  # the per-pod slices: none here (this test is about the ratio queries)


def test_fetch_evaluates_numerator_and_denominator_over_the_window() -> None:
    source = PrometheusSource.__new__(PrometheusSource)
    client = _FakeClient({"confirmed_flags_total": 930.0, "labelled_flags_total": 1000.0, "approvals": 0.42,
                          "scoring_failures_total": None})
    source.url, source._timeout, source._client = "http://prometheus:9090", 5.0, client  # type: ignore[assignment]
    slos = (PRECISION, FAILED_SHARE, Slo.model_validate({"query": {"name": "approval-rate", "promql": "approvals[{{window}}]", "max": 1}}))
    query = SeriesQuery("ml", "fraud-scorer", "candidate", T0, T0 + timedelta(seconds=240), slos, SeriesLabels(), "30s")
    data = source.fetch(query)
    assert data.ratios["precision"] == (930.0, 1000.0)
    assert data.ratios["failed-share"][0] is None  # no series: missing, not zero
    assert data.queries == {"approval-rate": 0.42}
    asked = [q for q in client.asked if "confirmed_flags" in q or "labelled_flags" in q]
    assert asked == [TRUE_POSITIVES.replace("{{variant}}", "candidate").replace("{{window}}", "240s"),
                     FLAGGED.replace("{{variant}}", "candidate").replace("{{window}}", "240s")]


def test_the_readme_analysis_example_is_a_tested_ratio_and_a_valid_spec() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## SLO analysis and automatic rollback"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    example = yaml.safe_load(block[:block.index("```")])
    spec, problems = parse_spec({"model": MODEL, **example["spec"]})
    assert spec is not None and spec.analysis is not None, problems
    assert check_spec("fraud-scorer", spec) == []
    queries = [s.query for s in spec.analysis.slos if s.query is not None]
    assert queries and all(q.numerator is not None and "{{window}}" in q.numerator for q in queries)
