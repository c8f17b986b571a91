#!/usr/bin/env python3
"""Drift statistics (headway.planning.drift): false alarms on undrifted streams, samples needed to flag shifts.

    python hack/bench_drift.py           # full run: about 2 min on two free cores
    python hack/bench_drift.py --quick   # a tenth of the runs (under 30 s)
    python hack/bench_drift.py --workers 1

Every decision comes from ``headway.planning.drift`` (``feature_drift``, ``data_drift``,
``prediction_drift``); what is simulated here is the traffic and the reference profile.

Data drift. A feature is a standard normal binned on the deciles of a reference sample of
10,000 values (the profile ``headway profile`` would build: edges = sample deciles, expected =
sample shares), or a categorical feature with five categories (shares 35/25/20/12/8%). A new
reference sample is drawn in every run: the profile's own sampling noise is part of the null.
A window is 12 slices (e.g. 12 analysis intervals) of equal size. Traffic:

* ``independent``: every value an independent draw (multinomial slices);
* ``bursty``: each slice draws its own bin shares from Dirichlet(c x p) with c = 200 (a slice
  of 1,000 values then varies like 1,000 / (1 + (1000 - 1) / 201) ~ 170 independent ones:
  batches of similar requests), mean p: undrifted on average, but far from multinomial.

False alarms: share of windows in which any feature is flagged (one feature, or 20 with Holm),
for the test alone (``min_effect`` 0) and with the default minimum effect (PSI >= 0.1); the
naive test is the same G-test with every request independent (the window's counts pooled into
one slice: no dispersion) and Holm. Bounds are the upper end of the two-sided 95%
Clopper-Pearson interval.

Samples to flag: fresh windows of each size on a grid (200 x 1.25^i observations), each judged
once as the operator judges a window; "median" is the smallest size at which half of the windows
are flagged, "p90" the smallest at which 90% are (so 90% of the time that many suffice); "never"
when the grid's end (or, for PSI >= 0.1, 20,000 with none flagged: the true PSI is below 0.1)
is reached first. (Re-testing one growing window at every size would be peeking: it flags
undrifted streams too.) With bursty traffic the 12 slices' own random shares stay random
however large the window: the effective sample stops growing near 12 x 200 and small shifts may
never be flagged, which is the honest answer (those slices cannot tell a shift from a burst).

Prediction drift. Five classes (40/25/15/12/8%). A look every analysis interval, each adding a
slice of 100 predictions per version; the test runs on the cumulative slices at looks 1..L.
False Fail: identical versions, share of runs failed at any look (the step would roll back),
ours (alpha_k = alpha 6 / (pi^2 k^2), dispersion) with the default bound 0.1 and with bound 0
(any shown difference), against a naive G-test at fixed alpha 0.05 at every look (bound 0, and
bound 0.1 on the estimated TV), with independent answers and with bursty disagreement (each
version's slice shares drawn independently from Dirichlet(200 p): same mean, slices differ).
Samples to decide: a candidate that moves ``tv`` of the first class's share to the last;
predictions per version until the first Fail or Pass (the step ends there). The strict rule
(Fail only when the TV lower confidence bound at alpha_k reaches the bound, "shown beyond the
bound" as the verdicts' breach test) is counted alongside: how often and after how many
predictions it would have failed the candidate.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from headway.api.profile import BinnedFeature  # noqa: E402
from headway.planning import drift  # noqa: E402

ALPHA = 0.05
REFERENCE_SAMPLES = 10_000
SLICES = 12
BURST_CONCENTRATION = 200.0
CATEGORIES = ("a", "b", "c", "d", "e")
CATEGORY_SHARES = np.array([0.35, 0.25, 0.20, 0.12, 0.08])
CLASSES = ("c0", "c1", "c2", "c3", "c4")
CLASS_SHARES = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
PER_LOOK = 100  # predictions per version per look
GRID = [int(round(200 * 1.25**i)) for i in range(40) if 200 * 1.25**i <= 600_000]


@dataclass(frozen=True)
class Job:
    section: str  # "alarm", "flag", "sequential"
    traffic: str
    size: int  # window size (alarm) or number of features
    features: int
    shift: str  # for "flag": normal:0.25 / cat:+0.05; for "sequential": tv as text
    runs: int
    looks: int = 0
    index: int = 0  # which chunk of the cell


def seed_of(job: Job) -> int:
    return zlib.crc32(repr(job).encode())


# --- the world ------------------------------------------------------------------------------


def normal_reference(rng: np.random.Generator) -> tuple[BinnedFeature, np.ndarray]:
    """A decile profile from a reference sample, and the true bin probabilities (bins 0-9, missing)."""
    sample = rng.standard_normal(REFERENCE_SAMPLES)
    edges = np.quantile(sample, np.arange(1, 10) / 10)
    counts = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=10)
    expected = counts / counts.sum()
    feature = BinnedFeature(kind="numeric", edges=tuple(float(e) for e in edges),
                            expected=(*(float(x) for x in expected), 0.0), samples=REFERENCE_SAMPLES)
    return feature, edges


def normal_probs(edges: np.ndarray, shift: float) -> np.ndarray:
    cdf = sps.norm.cdf(np.concatenate([[-np.inf], edges, [np.inf]]) - shift)
    return np.append(np.diff(cdf), 0.0)


def categorical_reference(rng: np.random.Generator) -> BinnedFeature:
    counts = rng.multinomial(REFERENCE_SAMPLES, CATEGORY_SHARES)
    return BinnedFeature(kind="categorical", categories=CATEGORIES,
                         expected=(*(float(c) / REFERENCE_SAMPLES for c in counts), 0.0, 0.0),
                         samples=REFERENCE_SAMPLES)


def categorical_probs(change: float) -> np.ndarray:
    """The first category's share raised by ``change``, the others scaled down in proportion."""
    p = CATEGORY_SHARES * (1 - CATEGORY_SHARES[0] - change) / (1 - CATEGORY_SHARES[0])
    p[0] = CATEGORY_SHARES[0] + change
    return np.append(p, [0.0, 0.0])


def slice_shares(rng: np.random.Generator, p: np.ndarray, traffic: str, slices: int) -> np.ndarray:
    if traffic == "independent":
        return np.tile(p, (slices, 1))
    return np.stack([rng.dirichlet(np.maximum(p, 1e-12) * BURST_CONCENTRATION) for _ in range(slices)])


def draw(rng: np.random.Generator, shares: np.ndarray, per_slice: int) -> np.ndarray:
    return np.stack([rng.multinomial(per_slice, s / s.sum()) for s in shares]).astype(float)


def as_slices(table: np.ndarray, bins: Sequence[str]) -> list[dict[str, float]]:
    return [dict(zip(bins, row.tolist())) for row in table]


# --- data drift: false alarms ---------------------------------------------------------------


def run_alarm(job: Job) -> dict[str, Any]:
    rng = np.random.default_rng(seed_of(job))
    ours = default = naive = 0
    phis: list[float] = []
    for _ in range(job.runs):
        features: dict[str, BinnedFeature] = {}
        observed: dict[str, list[dict[str, float]]] = {}
        pooled: dict[str, list[dict[str, float]]] = {}
        for f in range(job.features):
            feature, edges = normal_reference(rng)
            table = draw(rng, slice_shares(rng, normal_probs(edges, 0.0), job.traffic, SLICES), job.size // SLICES)
            features[f"f{f}"] = feature
            observed[f"f{f}"] = as_slices(table, feature.bins)
            pooled[f"f{f}"] = as_slices(table.sum(axis=0, keepdims=True), feature.bins)
        result = drift.data_drift(features, observed, alpha=ALPHA, min_effect=0.0)
        ours += bool(result.drifted)
        default += any(f.drifted and f.psi >= drift.DEFAULT_MIN_EFFECT for f in result.features)
        naive += bool(drift.data_drift(features, pooled, alpha=ALPHA, min_effect=0.0).drifted)
        phis.extend(f.phi for f in result.features)
    return {"ours": ours, "default": default, "naive": naive, "runs": job.runs, "phi": phis}


# --- data drift: samples to flag ------------------------------------------------------------


def run_flag(job: Job) -> dict[str, Any]:
    """Share of fresh windows of each size flagged (test alone; with PSI >= 0.1), along the grid."""
    rng = np.random.default_rng(seed_of(job))
    kind, amount = job.shift.split(":")
    shares_any: dict[int, float] = {}
    shares_default: dict[int, float] = {}
    for n in GRID:
        flagged_any = flagged_default = 0
        for _ in range(job.runs):
            if kind == "normal":
                feature, edges = normal_reference(rng)
                p = normal_probs(edges, float(amount))
            else:
                feature = categorical_reference(rng)
                p = categorical_probs(float(amount))
            sizes = np.full(SLICES, n // SLICES)
            sizes[: n % SLICES] += 1
            shares = slice_shares(rng, p, job.traffic, SLICES)
            table = np.stack([rng.multinomial(size, sh / sh.sum()) for size, sh in zip(sizes, shares)]).astype(float)
            result = drift.feature_drift("x", feature, as_slices(table, feature.bins), alpha=ALPHA, min_effect=0.0)
            if result.adjusted_p < ALPHA:
                flagged_any += 1
                flagged_default += result.psi >= drift.DEFAULT_MIN_EFFECT
        shares_any[n], shares_default[n] = flagged_any / job.runs, flagged_default / job.runs
        done_any = shares_any[n] >= 0.9
        # the PSI criterion: done when 90% flagged, or hopeless (none flagged in large windows: true PSI < 0.1)
        done_default = shares_default[n] >= 0.9 or (n >= 20_000 and shares_default[n] == 0.0)
        if done_any and done_default:
            break
    return {"any": shares_any, "default": shares_default, "runs": job.runs}


def window_for(shares: dict[int, float], level: float) -> float:
    """The smallest grid size at which at least ``level`` of the windows were flagged (inf: none)."""
    return next((n for n in sorted(shares) if shares[n] >= level), math.inf)


# --- prediction drift -----------------------------------------------------------------------


def naive_p(cand: np.ndarray, stab: np.ndarray) -> float:
    """Two-sample G-test, every prediction independent, chi-square (no merging: few classes, many counts)."""
    table = np.vstack([cand, stab])
    table = table[:, table.sum(axis=0) > 0]
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    mask = table > 0
    g = 2.0 * float(np.sum(table[mask] * np.log(table[mask] / expected[mask])))
    return float(special.chdtrc(table.shape[1] - 1, g))


def run_sequential(job: Job) -> dict[str, Any]:
    rng = np.random.default_rng(seed_of(job))
    tv = float(job.shift)
    q = CLASS_SHARES.copy()
    q[0] -= tv
    q[-1] += tv
    out: dict[str, list[float]] = {k: [] for k in ("fail", "fail0", "pass", "lower", "naive", "naive_bound", "decided", "result")}
    identical = tv == 0.0
    for _ in range(job.runs):
        cand_shares = slice_shares(rng, q, job.traffic, job.looks)
        stab_shares = slice_shares(rng, CLASS_SHARES, job.traffic, job.looks)
        cand = draw(rng, cand_shares, PER_LOOK)
        stab = draw(rng, stab_shares, PER_LOOK)
        first = {k: math.inf for k in ("fail", "fail0", "pass", "lower", "naive", "naive_bound")}
        decided, result = math.inf, "Inconclusive"
        for k in range(1, job.looks + 1):
            n = k * PER_LOOK
            c, s = cand[:k].sum(axis=0), stab[:k].sum(axis=0)
            if first["naive"] == math.inf and naive_p(c, s) < ALPHA:
                first["naive"] = n
            if first["naive_bound"] == math.inf and naive_p(c, s) < ALPHA and 0.5 * np.abs(c / c.sum() - s / s.sum()).sum() >= 0.1:
                first["naive_bound"] = n
            if identical:  # every look: a false Fail at any of them counts
                needed = math.inf in (first["fail"], first["fail0"], first["pass"], first["lower"])
            else:  # until the step's decision, the bound-0 test's first rejection, the strict rule's Fail
                needed = decided == math.inf or first["fail0"] == math.inf or first["lower"] == math.inf
            if needed:
                r = drift.prediction_drift(as_slices(cand[:k], CLASSES), as_slices(stab[:k], CLASSES), look=k,
                                           bins=CLASSES, alpha=ALPHA)
                decides = r.slices >= 2 and min(r.candidate_samples, r.stable_samples) >= r.min_samples
                if decides and r.p_value < r.alpha_k and first["fail0"] == math.inf:
                    first["fail0"] = n
                if r.result == "Fail" and first["fail"] == math.inf:
                    first["fail"] = n
                if decides and r.p_value < r.alpha_k and r.tv_lower >= r.bound and first["lower"] == math.inf:
                    first["lower"] = n
                if r.result == "Pass" and first["pass"] == math.inf:
                    first["pass"] = n
                if r.result != "Inconclusive" and decided == math.inf:
                    decided, result = n, r.result
            elif first["naive"] < math.inf and first["naive_bound"] < math.inf:
                break
        for key, value in first.items():
            out[key].append(value)
        out["decided"].append(decided)
        out["result"].append(1.0 if result == "Fail" else 0.0 if result == "Pass" else 0.5)
    return out


def run(job: Job) -> tuple[Job, dict[str, Any]]:
    if job.section == "alarm":
        return job, run_alarm(job)
    if job.section == "flag":
        return job, run_flag(job)
    return job, run_sequential(job)


# --- figures --------------------------------------------------------------------------------


def clopper_pearson_upper(k: int, n: int) -> float:
    """Upper end of the two-sided 95% Clopper-Pearson interval of k successes in n."""
    if n == 0:
        return 1.0
    return 1.0 if k >= n else float(sps.beta.ppf(0.975, k + 1, n - k))


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)]


def fmt_n(value: float) -> str:
    return "never" if value == math.inf else "-" if math.isnan(value) else f"{value:,.0f}"


def rate(k: int, n: int) -> str:
    return f"{k}/{n} = {k / n:.3f} (≤ {clopper_pearson_upper(k, n):.3f})" if n else "-"


def jobs_for(quick: bool) -> list[Job]:
    scale = 0.1 if quick else 1.0
    jobs: list[Job] = []

    def add(base: Job, runs: int) -> None:
        runs = max(2, int(runs * scale))
        chunk = 20 if base.section == "sequential" else 50  # the longest jobs in small pieces: the pool stays busy
        for i, start in enumerate(range(0, runs, chunk)):
            jobs.append(Job(base.section, base.traffic, base.size, base.features, base.shift, min(chunk, runs - start),
                            base.looks, i))

    sizes = (500, 2000, 10_000, 50_000)
    for traffic in ("independent", "bursty"):
        for n in sizes:
            add(Job("alarm", traffic, n, 1, "", 0), 500)
            add(Job("alarm", traffic, n, 20, "", 0), 60)
    for traffic in ("independent", "bursty"):
        for shift in ("normal:0.1", "normal:0.25", "normal:0.5", "cat:0.05", "cat:0.1"):
            jobs.append(Job("flag", traffic, 0, 1, shift, max(10, int(100 * scale))))
    looks = 40 if quick else 80
    for traffic in ("independent", "bursty"):
        add(Job("sequential", traffic, 0, 1, "0.0", 0, looks), 200)
    for tv in ("0.05", "0.15", "0.2", "0.3"):
        add(Job("sequential", "independent", 0, 1, tv, 0, looks), 100)
    return jobs


def merge(results: list[tuple[Job, dict[str, Any]]]) -> dict[Job, dict[str, Any]]:
    cells: dict[Job, dict[str, Any]] = {}
    for job, res in results:
        key = Job(job.section, job.traffic, job.size, job.features, job.shift, 0, job.looks, 0)
        cell = cells.setdefault(key, {})
        for name, value in res.items():
            if isinstance(value, dict):
                cell[name] = value
            elif isinstance(value, list):
                cell.setdefault(name, []).extend(value)
            else:
                cell[name] = cell.get(name, 0) + value
    return cells


def report(cells: dict[Job, dict[str, Any]], looks: int) -> str:
    summary: dict[str, str] = {}
    print("## Data drift: false alarms on undrifted streams (alpha 0.05; any feature flagged; Holm over features)")
    print()
    print("| traffic | window | features | ours, test alone | ours, PSI >= 0.1 too | naive G (no dispersion) | median phi |")
    print("|---|---:|---:|---|---|---|---:|")
    worst_ours = worst_default = worst_naive_bursty = 0.0
    worst_upper = 0.0
    for key, c in sorted(((k, v) for k, v in cells.items() if k.section == "alarm"),
                         key=lambda kv: (kv[0].traffic != "independent", kv[0].features, kv[0].size)):
        runs = c["runs"]
        print(f"| {key.traffic} | {key.size:,} | {key.features} | {rate(c['ours'], runs)} | {rate(c['default'], runs)} "
              f"| {rate(c['naive'], runs)} | {statistics.median(c['phi']):.2f} |")
        if c["ours"] / runs > worst_ours or (c["ours"] / runs == worst_ours and clopper_pearson_upper(c["ours"], runs) > worst_upper):
            worst_ours, worst_upper = c["ours"] / runs, clopper_pearson_upper(c["ours"], runs)
        worst_default = max(worst_default, c["default"] / runs)
        if key.traffic == "bursty":
            worst_naive_bursty = max(worst_naive_bursty, c["naive"] / runs)
    summary["dd_false_alarm_worst"] = f"{worst_ours:.3f}"
    summary["dd_false_alarm_upper95"] = f"{worst_upper:.3f}"
    summary["dd_false_alarm_default_worst"] = f"{worst_default:.3f}"
    summary["dd_naive_bursty_false_alarm_worst"] = f"{worst_naive_bursty:.3f}"

    print()
    print("## Data drift: observations in the window needed to flag a shift (12 slices, reference 10,000, alpha 0.05)")
    print()
    print(f"Fresh windows of each size on the grid 200 x 1.25^i (up to {GRID[-1]:,}); median: the smallest size at which half "
          f"of them are flagged, p90: 90%. PSI of the true shift in brackets (deciles: normal; 5 categories: cat).")
    print()
    print("| traffic | shift | windows per size | test alone: median | p90 | with PSI >= 0.1: median | p90 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key, c in sorted(((k, v) for k, v in cells.items() if k.section == "flag"),
                         key=lambda kv: (kv[0].traffic != "independent", kv[0].shift)):
        kind, amount = key.shift.split(":")
        if kind == "normal":
            edges = sps.norm.ppf(np.arange(1, 10) / 10)
            p, q = normal_probs(edges, 0.0), normal_probs(edges, float(amount))
            label = f"normal mean +{amount} sd"
        else:
            p, q = categorical_probs(0.0), categorical_probs(float(amount))
            label = f"category share +{float(amount) * 100:g} pp"
        psi = float(drift._psi_terms(q, p).sum())
        med, p90 = window_for(c["any"], 0.5), window_for(c["any"], 0.9)
        dmed, dp90 = window_for(c["default"], 0.5), window_for(c["default"], 0.9)
        print(f"| {key.traffic} | {label} (PSI {psi:.3f}) | {c['runs']} | {fmt_n(med)} | {fmt_n(p90)} | {fmt_n(dmed)} | {fmt_n(dp90)} |")
        tag = key.shift.replace("normal:", "sd").replace("cat:", "cat")
        summary[f"dd_{'ind' if key.traffic == 'independent' else 'bursty'}_n_{tag}_median"] = fmt_n(med).replace(",", "")

    print()
    print(f"## Prediction drift: sequential test over {looks} looks of {PER_LOOK} predictions per version (alpha 0.05, bound TV 0.1)")
    print()
    print("False Fail: identical versions, share of runs failed at any look.")
    print()
    print("| answers | runs | ours (bound 0.1) | ours, bound 0 (any difference) | naive fixed 0.05, bound 0 | naive fixed 0.05, TV >= 0.1 "
          "| predictions to Pass: median | p90 |")
    print("|---|---:|---|---|---|---|---:|---:|")
    seq = {k: v for k, v in cells.items() if k.section == "sequential"}
    for key, c in sorted(((k, v) for k, v in seq.items() if float(k.shift) == 0.0), key=lambda kv: kv[0].traffic != "independent"):
        runs = len(c["fail"])
        count = {k: sum(v < math.inf for v in c[k]) for k in ("fail", "fail0", "naive", "naive_bound")}
        print(f"| {key.traffic} | {runs} | {rate(count['fail'], runs)} | {rate(count['fail0'], runs)} | {rate(count['naive'], runs)} "
              f"| {rate(count['naive_bound'], runs)} | {fmt_n(quantile(c['pass'], 0.5))} | {fmt_n(quantile(c['pass'], 0.9))} |")
        tag = "ind" if key.traffic == "independent" else "bursty"
        summary[f"pd_{tag}_false_fail"] = f"{count['fail0'] / runs:.3f}"
        summary[f"pd_{tag}_naive_false_fail"] = f"{count['naive'] / runs:.3f}"
        if key.traffic == "independent":
            summary["pd_samples_to_pass_median"] = fmt_n(quantile(c["pass"], 0.5)).replace(",", "")
    print()
    print("Shifted candidates (independent answers): the step's decision (first Fail or Pass) and predictions per version until it.")
    print()
    print("| TV shift | runs | Fail | Pass | undecided | to decide: median | p90 | strict rule (tv_lower >= 0.1): Fail | median "
          "| ours bound 0: to reject, median | naive fixed 0.05 TV >= 0.1: median |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, c in sorted(((k, v) for k, v in seq.items() if float(k.shift) > 0.0), key=lambda kv: float(kv[0].shift)):
        runs = len(c["result"])
        fails = sum(r == 1.0 for r in c["result"])
        passes = sum(r == 0.0 for r in c["result"])
        print(f"| {key.shift} | {runs} | {fails} | {passes} | {runs - fails - passes} | {fmt_n(quantile(c['decided'], 0.5))} "
              f"| {fmt_n(quantile(c['decided'], 0.9))} | {sum(v < math.inf for v in c['lower'])} | {fmt_n(quantile(c['lower'], 0.5))} "
              f"| {fmt_n(quantile(c['fail0'], 0.5))} | {fmt_n(quantile(c['naive_bound'], 0.5))} |")
        summary[f"pd_tv{key.shift}_fail_share"] = f"{fails / runs:.2f}"
        summary[f"pd_tv{key.shift}_to_decide_median"] = fmt_n(quantile(c["decided"], 0.5)).replace(",", "")
        summary[f"pd_tv{key.shift}_strict_fail_share"] = f"{sum(v < math.inf for v in c['lower']) / runs:.2f}"
    return " ".join(f"{k}={v}" for k, v in summary.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the runs, 40 looks")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    jobs = jobs_for(args.quick)
    started = time.perf_counter()
    # the longest jobs first, so that the pool's last worker does not run alone
    order = sorted(jobs, key=lambda j: (j.section != "sequential", j.section != "flag", -j.size))
    if args.workers <= 1:
        results = [run(j) for j in order]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(run, order))
    looks = 40 if args.quick else 80
    print(f"# bench_drift: {len(jobs)} jobs on {args.workers} workers{' (quick)' if args.quick else ''}")
    print()
    line = report(merge(results), looks)
    print()
    print(f"# {time.perf_counter() - started:.0f} s")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
