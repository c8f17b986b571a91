#!/usr/bin/env python3
"""Per-request agreement from the sign sketch (headway.planning.agreement): estimate, interval, coverage.

    python hack/bench_agreement.py           # full run: about 2 min on two free cores
    python hack/bench_agreement.py --quick   # a fifth of the runs

Every estimate comes from ``headway.planning.agreement.sketch_agreement``; what is simulated
here is the traffic, the mirror, the two recorders' counters and Prometheus' scrapes:

* requests arrive as a Poisson process; the stable answers one of five classes (40/25/15/12/8%),
  the candidate the same class with probability ``agreement``, else another one at random;
* the mirror copies every request to the candidate ``20 ms + Exp(20 ms)`` later and loses a
  share ``loss`` of them (a shadow that fails or times out records nothing);
* each request's bucket and its signs are independent uniform draws (what the keyed hash of
  headway.api.sketch gives: tests/unit/planning/test_agreement.py checks the real hash), the
  sign the same on both sides when the answers are;
* each side's counters are scraped every ``scrape`` seconds at its own random phase; a slice
  boundary reads each side's last scrape before it (as a range query does), so requests near
  a boundary fall in different slices on the two sides. Requests start ``3 scrapes`` before
  the window, so its edges cut traffic in flight too.

Three settings: ``sandbox`` (40 requests/s, 4 slices of 10 s, 1 s scrapes: the real-parts test),
``cluster`` (20 requests/s, 20 slices of 60 s, 15 s scrapes: the defaults' slices with the
default 5m interval), and the sandbox with a candidate that answers the mirror only 6 s into
the window (what the real-parts test saw: its server still starting when the step began, the
mirrored copies of those seconds lost). The truth is the agreement among the requests both versions counted in
the window. Coverage is the share of runs whose interval (95%) holds the truth, with the lower
end of its Clopper-Pearson 95% interval; "reported" the share of runs where an agreement was
reported at all (not refused as unshared ids).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "operator"))

from headway.api.sketch import cell_key  # noqa: E402
from headway.planning.agreement import sketch_agreement  # noqa: E402

CLASSES = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
ALPHA = 0.05


@dataclass(frozen=True)
class Setting:
    name: str
    rate: float  # requests per second
    slice_s: float
    slices: int
    scrape: float
    late: float = 0.0  # seconds into the window before the candidate answers mirrored requests


SANDBOX = Setting("sandbox", 40.0, 10.0, 4, 1.0)
CLUSTER = Setting("cluster", 20.0, 60.0, 20, 15.0)
LATE = Setting("sandbox, candidate serving 6 s late", 40.0, 10.0, 4, 1.0, late=6.0)


def simulate(seed: int, setting: Setting, agreement: float, loss: float, buckets: int, shared: bool = True
             ) -> tuple[list[dict[str, float]], list[dict[str, float]], float]:
    """(candidate slices, stable slices, true agreement) of one window."""
    rng = np.random.default_rng(seed)
    margin = 3 * setting.scrape
    span = setting.slices * setting.slice_s
    n = int(rng.poisson(setting.rate * (span + 2 * margin)))
    at = rng.uniform(-margin, span + margin, n)
    y_s = rng.choice(len(CLASSES), size=n, p=CLASSES)
    same = rng.random(n) < agreement
    y_c = np.where(same, y_s, (y_s + rng.integers(1, len(CLASSES), n)) % len(CLASSES))
    seen_c = (rng.random(n) >= loss) & (at >= setting.late)
    bucket_s = rng.integers(0, buckets, n)
    sign_s = rng.integers(0, 2, n)
    bucket_c = bucket_s if shared else rng.integers(0, buckets, n)
    sign_c = np.where(same & shared, sign_s, rng.integers(0, 2, n))

    def slice_of(recorded: np.ndarray) -> np.ndarray:
        phase = rng.uniform(0, setting.scrape)
        bounds = np.array([math.floor((k * setting.slice_s - phase) / setting.scrape) * setting.scrape + phase
                           for k in range(setting.slices + 1)])
        return np.searchsorted(bounds, recorded, side="left") - 1  # bounds[j] < recorded <= bounds[j + 1]

    slice_s = slice_of(at + rng.exponential(0.002, n))
    slice_c = slice_of(at + 0.02 + rng.exponential(0.02, n))
    in_s = (slice_s >= 0) & (slice_s < setting.slices)
    in_c = (slice_c >= 0) & (slice_c < setting.slices) & seen_c

    def counts(mask: np.ndarray, slices: np.ndarray, buckets_: np.ndarray, signs: np.ndarray) -> list[dict[str, float]]:
        cells = np.zeros((setting.slices, buckets, 2))
        np.add.at(cells, (slices[mask], buckets_[mask], signs[mask]), 1)
        return [{cell_key(b, "+-"[g]): float(cells[t, b, g]) for b in range(buckets) for g in (0, 1) if cells[t, b, g]}
                for t in range(setting.slices)]

    both = in_s & in_c
    truth = float(np.mean(y_c[both] == y_s[both])) if both.any() else 1.0
    return counts(in_c, slice_c, bucket_c, sign_c), counts(in_s, slice_s, bucket_s, sign_s), truth


@dataclass(frozen=True)
class Run:
    reported: bool
    estimate: float
    low: float
    high: float
    truth: float
    groups: int


def one(args: tuple[int, Setting, float, float, int, bool, str]) -> Run:
    seed, setting, agreement, loss, buckets, shared, rule = args
    candidate, stable, truth = simulate(seed, setting, agreement, loss, buckets, shared)
    if rule == "ours":
        a = sketch_agreement(candidate, stable, alpha=ALPHA, buckets=buckets)
    elif rule == "one group":
        a = sketch_agreement(candidate, stable, alpha=ALPHA, buckets=buckets, groups=1)
    elif rule == "every slice":
        a = sketch_agreement(candidate, stable, alpha=ALPHA, buckets=buckets, groups=setting.slices)
    else:  # "own variance": the grouping whose own interval is narrowest (biased: see agreement.py)
        options = [sketch_agreement(candidate, stable, alpha=ALPHA, buckets=buckets, groups=g)
                   for g in sorted({1, 2, 4, 8, 16, setting.slices}) if g <= setting.slices]
        measured = [o for o in options if o.agreement is not None]
        a = min(measured, key=lambda o: (o.high or 0) - (o.low or 0)) if measured else options[0]
    if a.agreement is None or a.low is None or a.high is None:
        return Run(False, math.nan, math.nan, math.nan, truth, 0)
    return Run(True, a.agreement, a.low, a.high, truth, a.groups)


def clopper_pearson_low(k: int, n: int, level: float = 0.95) -> float:
    return 0.0 if k == 0 else float(beta.ppf((1 - level) / 2, k, n - k + 1))


def summarize(runs: Sequence[Run]) -> dict[str, str]:
    done = [r for r in runs if r.reported]
    out = {"reported": f"{len(done)}/{len(runs)}"}
    if not done:
        return {**out, "bias": "-", "rmse": "-", "width": "-", "coverage": "-", "groups": "-"}
    errors = [r.estimate - r.truth for r in done]
    covered = sum(r.low <= r.truth <= r.high for r in done)
    return {**out,
            "bias": f"{statistics.fmean(errors):+.4f}",
            "rmse": f"{math.sqrt(statistics.fmean(e * e for e in errors)):.4f}",
            "width": f"{statistics.fmean(r.high - r.low for r in done):.3f}",
            "coverage": f"{covered / len(done):.3f} (≥ {clopper_pearson_low(covered, len(done)):.3f})",
            "groups": f"{statistics.median(r.groups for r in done):g}"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a fifth of the runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args(argv)
    runs = 60 if options.quick else 300
    started = time.perf_counter()
    keys: list[str] = []

    with ProcessPoolExecutor(options.workers) as pool:
        def batch(setting: Setting, agreement: float, loss: float, buckets: int = 64, shared: bool = True, rule: str = "ours"
                  ) -> dict[str, str]:
            seeds = range(1000 * len(keys), 1000 * len(keys) + runs)
            keys.append(f"{setting.name}/{agreement}/{loss}/{buckets}/{shared}/{rule}")
            return summarize(list(pool.map(one, [(s, setting, agreement, loss, buckets, shared, rule) for s in seeds],
                                           chunksize=10)))

        print(f"### Estimate and interval (B = 64, 95%; {runs} windows per row)\n")
        print("| setting | true agreement | mirror loss | reported | bias | RMSE | mean width | coverage (CP low) | groups (median) |")
        print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
        coverages: list[float] = []
        biases: list[float] = []
        for setting in (SANDBOX, CLUSTER, LATE):
            for agreement in (1.0, 0.99, 0.9, 0.7, 0.5):
                for loss in ((0.0, 0.1) if setting is not LATE else (0.0,)):
                    s = batch(setting, agreement, loss)
                    print(f"| {setting.name} | {agreement} | {loss:.0%} | {s['reported']} | {s['bias']} | {s['rmse']} | "
                          f"{s['width']} | {s['coverage']} | {s['groups']} |")
                    coverages.append(float(s["coverage"].split()[0]))
                    biases.append(abs(float(s["bias"])))
        figures = {"worst_coverage": f"{min(coverages):.3f}", "largest_abs_bias": f"{max(biases):.4f}"}

        print("\n### Buckets: B (2B series per pod), cluster setting, no loss\n")
        print("| B | true agreement | bias | RMSE | mean width | coverage (CP low) |")
        print("|---:|---:|---:|---:|---:|---|")
        for buckets in (16, 64, 256):
            for agreement in (0.99, 0.9, 0.7):
                s = batch(CLUSTER, agreement, 0.0, buckets)
                print(f"| {buckets} | {agreement} | {s['bias']} | {s['rmse']} | {s['width']} | {s['coverage']} |")

        print("\n### Grouping the slices (B = 64, no loss)\n")
        print("| setting | true agreement | rule | bias | RMSE | mean width | coverage (CP low) |")
        print("|---|---:|---|---:|---:|---:|---|")
        for setting in (SANDBOX, CLUSTER, LATE):
            for agreement in ((0.99, 0.9, 0.5) if setting is not LATE else (1.0, 0.7)):
                for rule in ("ours", "one group", "every slice", "own variance"):
                    s = batch(setting, agreement, 0.0, rule=rule)
                    print(f"| {setting.name} | {agreement} | {rule} | {s['bias']} | {s['rmse']} | {s['width']} | {s['coverage']} |")
                    if setting is CLUSTER and agreement == 0.5:
                        figures[f"cluster_a0.5_{rule.replace(' ', '_')}_width"] = s["width"]

        print("\n### Request ids not shared (each version records its own ids): never reported\n")
        print("| setting | true agreement | reported |")
        print("|---|---:|---:|")
        unshared = 0
        for setting in (SANDBOX, CLUSTER):
            for agreement in (1.0, 0.5):
                s = batch(setting, agreement, 0.0, shared=False)
                print(f"| {setting.name} | {agreement} | {s['reported']} |")
                unshared += int(s["reported"].split("/")[0])
        figures["unshared_reported"] = f"{unshared}/{4 * runs}"

    print("\n```")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    print("```")
    print(f"\n{runs} windows per row, {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
