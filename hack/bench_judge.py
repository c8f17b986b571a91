#!/usr/bin/env python3
"""Replay simulated request streams through Headway's verdicts and a Flagger-style judge.

    python hack/bench_judge.py          # full run (~20 seeds per cell)
    python hack/bench_judge.py --quick  # a few seeds, for the unit test

Both judges see the same simulated seconds of traffic (Poisson arrivals, Bernoulli
errors, lognormal latency binned into BentoML's default histogram buckets) for the
candidate and for the stable baseline (9x the candidate's traffic: a 10% canary).

Flagger-style judge, as Flagger's scheduler does it (docs "Deployment Strategies",
pkg/controller/scheduler.go, scheduler_metrics.go): every interval (60 s) compute the
error rate and the histogram_quantile(0.99) latency over the last interval; a value
beyond its threshold, or "no values found" (no requests: NaN), is a failed check and
holds the weight; threshold (5) failed checks roll back; stepWeight 10 up to maxWeight
50 means 5 passing checks, then promotion. There is no minimum request count: a
window of 3 requests with no error passes. We stop its clock at the failed check that
reaches the threshold (its scheduler rolls back one interval later: in its favour).

Headway: ``assess`` every 30 s on counts cumulative since the analysis began;
failureLimit (2) consecutive Fail verdicts roll back; promotion on a Pass after the
steps' minimum duration (300 s, the same as Flagger's shortest promotion); otherwise it
holds, up to the horizon.

Figures: candidate requests and seconds until a regression is rolled back (median over
seeds). When a judge never detects it (it promotes the regression, or holds it to the
horizon) its requests to detect are all the candidate requests of the simulated stream
(the 4 h horizon): the regression was never caught. The same rule applies to both
judges; the alternative (counting only the requests seen until the promotion, which
rewards promoting early) is printed too. detection_ratio is the median over all
regression cells (scenario x traffic) of Flagger's median requests to detect divided by
Headway's. false_rollback is Headway's share of rollbacks over all good-version runs;
thin_promotions counts Headway promotions decided on fewer than minRequests requests.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from headway.api.spec import Slo  # noqa: E402
from headway.planning.stats import bucket_quantile  # noqa: E402
from headway.planning.verdicts import FAIL, PASS, Histogram, RequestCounts, VariantData, assess, overall  # noqa: E402

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf)  # BentoML default
BASELINE_FACTOR = 9.0  # stable serves 9x the candidate's traffic (canary weight 10%)
HORIZON = 4 * 3600  # seconds simulated per run
MIN_REQUESTS = 200  # Analysis.minRequests default
FAILURE_LIMIT = 2  # Analysis.failureLimit default
HEADWAY_INTERVAL, HEADWAY_MIN_DURATION = 30, 300
FLAGGER_INTERVAL, FLAGGER_THRESHOLD, FLAGGER_STEPS = 60, 5, 5  # interval 1m, threshold 5, maxWeight 50 / stepWeight 10
LATENCY_MAX = 0.25  # p99 <= 250 ms, a bucket bound
MEDIAN_LATENCY = 0.060
Z99 = float(sps.norm.ppf(0.99))


@dataclass(frozen=True)
class Scenario:
    name: str
    regression: bool
    base_error: float
    cand_error: float
    error_max: float
    base_p99: float = 0.180
    cand_p99: float = 0.180
    spike: tuple[int, int, float] | None = None  # service-wide error rate for [start, end) seconds


SCENARIOS = (
    Scenario("errors 1%->5%", True, 0.01, 0.05, 0.02),
    Scenario("errors 0.5%->3%", True, 0.005, 0.03, 0.01),
    Scenario("errors 1%->2%", True, 0.01, 0.02, 0.02),
    Scenario("p99 +50% (180->270ms)", True, 0.01, 0.01, 0.02, cand_p99=0.270),
    Scenario("good (same as stable)", False, 0.01, 0.01, 0.02),
    Scenario("good, service-wide 5% spike", False, 0.01, 0.01, 0.02, spike=(120, 720, 0.05)),
)
TRAFFIC = (0.2, 1.0, 5.0, 20.0, 100.0)  # candidate requests per second


def bin_probabilities(p99: float) -> np.ndarray:
    """Share of requests in each histogram bucket for lognormal latency with the given p99."""
    sigma = math.log(p99 / MEDIAN_LATENCY) / Z99
    cdf = [sps.lognorm.cdf(le, sigma, scale=MEDIAN_LATENCY) if le != math.inf else 1.0 for le in BUCKETS]
    return np.diff(np.concatenate([[0.0], cdf]))


Stream = tuple[np.ndarray, np.ndarray, np.ndarray]  # per-second requests, errors, latency-bucket counts


def simulate(rate: float, error: np.ndarray, p99: float, rng: np.random.Generator) -> Stream:
    """Per-second requests, errors and latency-bucket counts (not cumulative)."""
    n = rng.poisson(rate, size=HORIZON)
    errors = rng.binomial(n, error)
    bins = rng.multinomial(n, bin_probabilities(p99))
    return n, errors, bins


@dataclass(frozen=True)
class Outcome:
    decision: str  # rollback | promote | hold
    seconds: int
    requests: int  # candidate requests seen until the decision
    stream_requests: int  # candidate requests in the whole simulated stream


def run_headway(slos: list[Slo], cand: Stream, base: Stream) -> Outcome:
    n, e, b = cand
    bn, be, bb = base
    cum = [np.concatenate([[0], np.cumsum(x)]) for x in (n, e, bn, be)]
    cum_b = [np.vstack([np.zeros((1, len(BUCKETS))), np.cumsum(x, axis=0)]) for x in (b, bb)]
    fails = 0
    for t in range(HEADWAY_INTERVAL, HORIZON + 1, HEADWAY_INTERVAL):
        c_data = VariantData(RequestCounts(cum[0][t], cum[1][t]), Histogram(tuple(zip(BUCKETS, np.cumsum(cum_b[0][t])))))
        b_data = VariantData(RequestCounts(cum[2][t], cum[3][t]), Histogram(tuple(zip(BUCKETS, np.cumsum(cum_b[1][t])))))
        result = overall(assess(slos, c_data, b_data, MIN_REQUESTS))
        fails = fails + 1 if result == FAIL else 0
        if fails >= FAILURE_LIMIT:
            return Outcome("rollback", t, int(cum[0][t]), int(cum[0][HORIZON]))
        if result == PASS and t >= HEADWAY_MIN_DURATION:
            return Outcome("promote", t, int(cum[0][t]), int(cum[0][HORIZON]))
    return Outcome("hold", HORIZON, int(cum[0][HORIZON]), int(cum[0][HORIZON]))


def run_flagger(scenario: Scenario, cand: Stream) -> Outcome:
    n, e, b = cand
    failed = passed = 0
    for tick in range(1, HORIZON // FLAGGER_INTERVAL + 1):
        t = tick * FLAGGER_INTERVAL
        window = slice(t - FLAGGER_INTERVAL, t)
        requests, errors = n[window].sum(), e[window].sum()
        ok = True
        if requests == 0:  # sum(rate(...)) / sum(rate(...)) is NaN: "no values found", a failed check
            ok = False
        elif 100.0 * (1.0 - errors / requests) < 100.0 * (1.0 - scenario.error_max):
            ok = False
        else:
            p99 = bucket_quantile(tuple(zip(BUCKETS, np.cumsum(b[window].sum(axis=0)).tolist())), 0.99)
            ok = p99 is not None and p99 <= LATENCY_MAX
        if ok:
            passed += 1
            if passed >= FLAGGER_STEPS:
                return Outcome("promote", t, int(n[:t].sum()), int(n.sum()))
        else:
            failed += 1
            if failed >= FLAGGER_THRESHOLD:
                return Outcome("rollback", t, int(n[:t].sum()), int(n.sum()))
    return Outcome("hold", HORIZON, int(n.sum()), int(n.sum()))


def run_one(args: tuple[int, int, int]) -> tuple[int, int, int, Outcome, Outcome]:
    si, ti, seed = args
    scenario, rate = SCENARIOS[si], TRAFFIC[ti]
    rng = np.random.default_rng(np.random.SeedSequence([si, ti, seed, 20221]))
    base_error = np.full(HORIZON, scenario.base_error)
    cand_error = np.full(HORIZON, scenario.cand_error)
    if scenario.spike is not None:
        start, end, level = scenario.spike
        base_error[start:end] = level
        cand_error[start:end] = level
    cand = simulate(rate, cand_error, scenario.cand_p99, rng)
    base = simulate(rate * BASELINE_FACTOR, base_error, scenario.base_p99, rng)
    slos = [
        Slo.model_validate({"errorRate": {"max": scenario.error_max}}),
        Slo.model_validate({"latency": {"percentile": 99, "max": f"{int(LATENCY_MAX * 1000)}ms"}}),
    ]
    return si, ti, seed, run_flagger(scenario, cand), run_headway(slos, cand, base)


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds per cell instead of 20 (for tests)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    opts = parser.parse_args()
    seeds = opts.seeds or (4 if opts.quick else 20)
    jobs = [(si, ti, s) for si in range(len(SCENARIOS)) for ti in range(len(TRAFFIC)) for s in range(seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=opts.workers) as pool:
        results = list(pool.map(run_one, jobs, chunksize=4))
    cells: Cells = {}
    for si, ti, _, flagger, headway in results:
        cells.setdefault((si, ti), []).append((flagger, headway))
    print(
        f"# {seeds} seeds per cell, {HORIZON // 3600} h horizon, stable serves {BASELINE_FACTOR:g}x the candidate's "
        f"traffic; {time.perf_counter() - started:.0f} s"
    )
    ratios, ratios_at_promotion = report_regressions(cells)
    good_runs, false_rollbacks, thin = report_good_versions(cells)
    print(
        "Median ratio if a miss counted only the requests seen until the promotion (or horizon): "
        f"{_median(ratios_at_promotion):.2f}"
    )
    print()
    print(f"detection_ratio={_median(ratios):.2f} false_rollback={false_rollbacks / good_runs:.4f} thin_promotions={thin}")
    return 0


Cells = dict[tuple[int, int], list[tuple[Outcome, Outcome]]]


def report_regressions(cells: Cells) -> tuple[list[float], list[float]]:
    """Print the regression table; return per-cell ratios (misses as the whole stream / at promotion)."""
    print()
    print("## Regressions: candidate requests (and seconds) until rollback, median over seeds")
    print()
    print(f"A miss (the regression promoted, or held to the horizon) counts all requests of the {HORIZON // 3600} h stream.")
    print()
    print(
        "| scenario | req/s | Flagger requests | Flagger s | Flagger missed "
        "| Headway requests | Headway s | Headway missed | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, at_promotion = [], []
    for si, scenario in enumerate(SCENARIOS):
        if not scenario.regression:
            continue
        for ti, rate in enumerate(TRAFFIC):
            runs = cells[(si, ti)]
            f_req = _median([_to_detect(f) for f, _ in runs])
            h_req = _median([_to_detect(h) for _, h in runs])
            f_sec = _median([f.seconds for f, _ in runs if f.decision == "rollback"])
            h_sec = _median([h.seconds for _, h in runs if h.decision == "rollback"])
            ratios.append(f_req / h_req)
            at_promotion.append(_median([f.requests for f, _ in runs]) / _median([h.requests for _, h in runs]))
            print(
                f"| {scenario.name} | {rate:g} | {f_req:.0f} | {_fmt(f_sec)} | {_missed(runs, 0)} "
                f"| {h_req:.0f} | {_fmt(h_sec)} | {_missed(runs, 1)} | {f_req / h_req:.1f} |"
            )
    return ratios, at_promotion


def report_good_versions(cells: Cells) -> tuple[int, int, int]:
    """Print the good-version table; return (runs, Headway rollbacks, Headway thin promotions)."""
    print()
    print("## Good versions: rollbacks (false), promotions on fewer than minRequests requests (thin), time to promote")
    print()
    print(
        "| scenario | req/s | Flagger rollbacks | Flagger thin | Flagger s to promote "
        "| Headway rollbacks | Headway thin | Headway held to horizon | Headway s to promote |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    totals = {"runs": 0, "f_rb": 0, "f_thin": 0, "h_rb": 0, "h_thin": 0}
    for si, scenario in enumerate(SCENARIOS):
        if scenario.regression:
            continue
        for ti, rate in enumerate(TRAFFIC):
            runs = cells[(si, ti)]
            row = {
                "runs": len(runs),
                "f_rb": sum(f.decision == "rollback" for f, _ in runs),
                "f_thin": sum(f.decision == "promote" and f.requests < MIN_REQUESTS for f, _ in runs),
                "h_rb": sum(h.decision == "rollback" for _, h in runs),
                "h_thin": sum(h.decision == "promote" and h.requests < MIN_REQUESTS for _, h in runs),
            }
            for key, value in row.items():
                totals[key] += value
            h_hold = sum(h.decision == "hold" for _, h in runs)
            f_promote = _median([f.seconds for f, _ in runs if f.decision == "promote"])
            h_promote = _median([h.seconds for _, h in runs if h.decision == "promote"])
            print(
                f"| {scenario.name} | {rate:g} | {row['f_rb']}/{len(runs)} | {row['f_thin']} | {_fmt(f_promote)} "
                f"| {row['h_rb']}/{len(runs)} | {row['h_thin']} | {h_hold} | {_fmt(h_promote)} |"
            )
    print()
    print(
        f"Good-version runs: {totals['runs']}. Flagger-style: {totals['f_rb']} false rollbacks, "
        f"{totals['f_thin']} thin promotions. Headway: {totals['h_rb']} false rollbacks, {totals['h_thin']} thin promotions."
    )
    return totals["runs"], totals["h_rb"], totals["h_thin"]


def _to_detect(outcome: Outcome) -> float:
    """Candidate requests until rollback; a miss counts every request of the simulated stream."""
    return outcome.requests if outcome.decision == "rollback" else outcome.stream_requests


def _missed(runs: list[tuple[Outcome, Outcome]], judge: int) -> str:
    missed = sum(r[judge].decision != "rollback" for r in runs)
    promoted = sum(r[judge].decision == "promote" for r in runs)
    return f"{missed}/{len(runs)}" + (f" ({promoted} promoted)" if promoted else "")


def _fmt(x: float, digits: int = 0) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
