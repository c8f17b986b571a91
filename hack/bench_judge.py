#!/usr/bin/env python3
"""Whole rollouts, simulated down to Prometheus samples, judged by the operator's own planner.

    python hack/bench_judge.py           # full run: 300 rollouts per good scenario, 25 per regression cell
    python hack/bench_judge.py --quick   # 2 per good scenario, 1 per regression cell, 1 h horizon (the unit test)
    python hack/bench_judge.py --operator /tmp/head/operator   # judge another operator tree (e.g. `git archive`d)

A full run is about 3,300 CPU-seconds with the verdicts of commit ebe315b (about 28 min on two
free cores); the verdict code's cost per look over the window's pod-intervals is most of it.

What drives it (nothing of the judgement is re-implemented here)
---------------------------------------------------------------
Every decision comes from ``headway.planning.plan.plan()``, the function the reconciler
calls: spec validation, ``measure.judge`` (which calls ``analysis.request``,
``verdicts.assess``, ``analysis.record`` and ``analysis.gate``), the rollout state machine
(``rollout.decide`` through ``single.plan_rollout``: the step table of steps.py, capacity,
promotion, the bake and its rollback), and ``measure_request``/``wake_at`` (when the next
measurement is due, when the step or bake ends). Status is the only memory between two
plans, exactly as in the operator. The threshold judge goes through the same planner: its
Gate is handed to ``plan(..., judgement=Judgement(gate=...))`` instead of Headway's, its
window and target come from ``analysis.request`` and its p99 from ``stats.bucket_quantile``
(histogram_quantile), so the two judges differ only in the gate.

What the benchmark replicates (the world around the operator, not the operator)
------------------------------------------------------------------------------
* the cluster: Deployments follow the plan's workloads; a new candidate pod is ready 15-45 s
  after it is asked for, the stable Deployment's rolling update to a promoted version
  completes 30-60 s after it starts; ``DeploymentState`` is what the API server would say;
* the data plane: the plan's weights split the service's traffic, equally among the ready
  pods of a variant;
* BentoML's metrics, per pod: ``bentoml_service_request_total`` per ``http_response_code``
  (200 and 500) and ``bentoml_service_request_duration_seconds`` with BentoML's default
  buckets, per code; a series exists from its first event (prometheus_client creates labelled
  children lazily, so a pod's 5xx series appears with its first error); a pod restart resets
  its counters (about one per pod per 4 h); a business counter pair for the query SLO;
* Prometheus: each pod scraped every 15 s at its own offset with +-0.5 s jitter (1% of scrapes
  lost), and ``increase()`` computed as promql/functions.go ``extrapolatedRate`` does it:
  samples in (t - range, t], counter-reset correction, extrapolation to the range's edges
  when the first/last sample is within 1.1 average intervals of them (else half an
  interval), the start extrapolation capped where the counter would reach zero;
* the fetcher (metrics/prometheus.py): ``sum(increase(...[<window>s]))`` at the look's time,
  total None when no series answered, 5xx ``or 0``, ``sum by (le)`` for the histogram, a
  ratio SLO's numerator and denominator (numerator written ``... or vector(0)``), plus the
  per-pod, per-interval breakdown as ``VariantData.slices`` (``sum by (pod)(increase(...
  [interval]))`` at every interval boundary of the window);
* the reconciler's loop: a plan at every measurement's ``due_at`` (with the measurement),
  at ``wake_at``, at every cluster event (a pod ready, a rolling update done), and one
  second after a plan that changed the rollout's state (its status write's watch event);
  for the threshold judge, also after every check that changed its gate;
* the threshold judge (Flagger's: every interval the candidate's error rate, p99 and query
  ratio over the last interval against the SLO's max; "no values" fails the check and holds
  the step; N failed checks, counted over the whole rollout and the bake, roll back). One run
  with N unbounded gives its outcome for every N (a rollout is the same for every N up to its
  N-th failed check). N is calibrated to the smallest value whose worst good-scenario
  false-rollback rate is no higher than Headway's; the N matching Headway's rate over all
  good rollouts, and the ratio it gives, are printed too.

The rollout: 4 stable pods; canary 10% (1 pod) for 5m, 25% (1 pod) for 5m, 50% (2 pods) for
5m, promotion, bake 15m; analysis with the operator's defaults (interval, minRequests,
failureLimit, alpha) and SLOs errorRate max 1% and p99 <= 250ms unless a scenario says
otherwise. A run ends at a rollback, at the bake's end (promoted), or at the 2 h horizon.

Figures. ``false_rollback``: share of good-version rollouts rolled back (in a step or the
bake), worst scenario; its bound is the Clopper-Pearson 95% interval's upper end.
Requests to detect a regression: requests served by the new version until the rollback; a
regression never rolled back by the horizon is charged every request the new version would
serve until it (at 100% once promoted). ``detection_ratio_at_equal_fpr``: median over the
regression cells of the threshold judge's median requests to detect / Headway's.
``thin_promotions``: Headway promotions whose last step window had fewer than minRequests
candidate requests.
"""

from __future__ import annotations

import argparse
import functools
import math
import resource
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent


def _operator_root() -> Path:
    """The operator source root to benchmark: ``--operator DIR`` (e.g. an exported commit), else this tree's."""
    for i, arg in enumerate(sys.argv):
        if arg == "--operator" and i + 1 < len(sys.argv):
            return Path(sys.argv[i + 1]).resolve()
        if arg.startswith("--operator="):
            return Path(arg.split("=", 1)[1]).resolve()
    return ROOT / "operator"


OPERATOR = _operator_root()
sys.path.insert(0, str(OPERATOR))

from headway.api.analysis_spec import Analysis, QuerySlo  # noqa: E402
from headway.api.spec import ModelDeploymentSpec, ModelSpec  # noqa: E402
from headway.api.status import ModelDeploymentStatus  # noqa: E402
from headway.api.types import parse_duration  # noqa: E402
from headway.planning import analysis as hw_analysis  # noqa: E402
from headway.planning import plan as hw_plan  # noqa: E402
from headway.planning.analysis import Gate  # noqa: E402
from headway.planning.measure import Judgement, Measurement, MeasureRequest  # noqa: E402
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE, Owner, revision_of  # noqa: E402
from headway.planning.observe import DeploymentState, Observation  # noqa: E402
from headway.planning.stats import bucket_quantile, clean_buckets  # noqa: E402
from headway.planning.verdicts import Histogram, RequestCounts, VariantData  # noqa: E402

try:  # the per-pod, per-interval breakdown (verdict_types.Slice)
    from headway.planning.verdict_types import Slice
except ImportError:  # pragma: no cover - an operator without slices
    Slice = None  # type: ignore[assignment,misc]

# --- the rollout under test --------------------------------------------------------------

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf)  # BentoML's default
REPLICAS = 4
STEP_PLAN = ((10, "5m"), (25, "5m"), (50, "5m"))  # canary weight %, duration
STEPS = tuple({"canary": {"weight": weight, "duration": length}} for weight, length in STEP_PLAN)
BAKE_TIME = "15m"
DEFAULTS = Analysis()  # interval, minRequests, failureLimit: what a spec that does not set them gets
INTERVAL = int(parse_duration(DEFAULTS.interval).total_seconds())
MIN_REQUESTS = DEFAULTS.min_requests
LATENCY_MAX = 0.25  # p99 <= 250ms: a bucket bound
HORIZON = 2 * 3600  # seconds after the new version is applied (--quick: 1 h)
WARMUP = 600  # the world runs this long before the rollout (stable serving, scraped)
OLD = {"bento": "scorer:1.0.0", "image": "registry.example.com/scorer:1.0.0"}
NEW = {"bento": "scorer:2.0.0", "image": "registry.example.com/scorer:2.0.0"}
OLD_REV, NEW_REV = revision_of(ModelSpec.model_validate(OLD)), revision_of(ModelSpec.model_validate(NEW))
OWNER = Owner("scorer", "ml", "uid-1")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
QUERY_NAME = "fraud-flags"

# --- the world ------------------------------------------------------------------------------

FAILURE_CAP = 100  # a threshold-judge run stops at this many failed checks (it would roll back for any N up to it)
SCRAPE = 15.0
SCRAPE_JITTER = 0.5
SCRAPE_LOSS = 0.01
RESTART_EVERY = 4 * 3600.0  # mean seconds between restarts of one pod
CANDIDATE_START = (15.0, 45.0)  # seconds from asked-for to ready
ROLLING_UPDATE = (30.0, 60.0)
MEDIAN_LATENCY = 0.060
LATENCY_INCIDENT = 2.2  # a shared latency incident multiplies every latency (p99 180 -> ~400 ms)
HICCUP_EVERY, HICCUP_SECONDS, HICCUP_ERROR = 1800.0, 10.0, 0.5  # per pod: one 10 s hiccup at 50% errors per 30 min
INCIDENT_SECONDS, INCIDENT_ERROR = 600.0, 0.05
BURST_EVERY, BURST_SECONDS, BURST_FACTOR, BURST_ERRORS = 600.0, (20.0, 120.0), (2.0, 5.0), 2.5
Z99 = float(sps.norm.ppf(0.99))

# Columns of one pod's samples: request counter per code, histogram buckets per code, business counters.
C_OK, C_ERR = 0, 1
C_OK_B, C_ERR_B = 2, 2 + len(BUCKETS)
C_BIZ, C_BIZ_FAIL = 2 + 2 * len(BUCKETS), 3 + 2 * len(BUCKETS)
NCOLS = C_BIZ_FAIL + 1
GROUPS = (  # series created together (one labelled child of a metric): their columns
    np.array([C_OK, *range(C_OK_B, C_OK_B + len(BUCKETS))]),
    np.array([C_ERR, *range(C_ERR_B, C_ERR_B + len(BUCKETS))]),
    np.array([C_BIZ]),
    np.array([C_BIZ_FAIL]),
)
GROUP_OF = (C_OK, C_ERR, C_BIZ, C_BIZ_FAIL)  # the counter whose first event creates each group
GROUP_OF_COLUMN = np.zeros(NCOLS, dtype=int)
for _g, _cols in enumerate(GROUPS):
    GROUP_OF_COLUMN[_cols] = _g


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    regression: bool
    error_max: float = 0.01
    stable_error: float = 0.0048  # the mean error rate of the hiccup scenario, here independent
    candidate_error: float | None = None  # None: same as stable
    candidate_p99: float | None = None
    rate: tuple[float, float] = (20.0, 200.0)  # service requests/s, log-uniform per rollout
    hiccups: bool = False
    incident: str | None = None  # step-errors | bake-errors | step-latency
    uneven: bool = False
    query: bool = False

    @property
    def canary_rate(self) -> str:
        lo, hi = (r * STEP_PLAN[0][0] / 100 for r in self.rate)
        return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


GOOD = (
    Scenario("independent", "independent errors, same rate as stable", False),
    Scenario("hiccups", "pod hiccups (10 s at 50% errors, one per pod per 30 min; mean 0.48%)", False,
             stable_error=0.002, hiccups=True),
    Scenario("incident-step", "shared incident in a step (5% errors, 10 min)", False, incident="step-errors"),
    Scenario("incident-bake", "shared incident in the bake (5% errors, 10 min)", False, incident="bake-errors"),
    Scenario("latency-step", "shared latency incident in a step (p99 ~400 ms, 10 min)", False, incident="step-latency"),
    Scenario("low-traffic", "low traffic (0.2-1 req/s at 10%; 0.1% errors)", False, stable_error=0.001, rate=(2.0, 10.0)),
    # Bursts carry about a third of the requests at 2.5x the error rate: 0.47% errors per request overall.
    Scenario("uneven", "uneven traffic (bursts x2-5 with 2.5x errors, diurnal swing; mean 0.47%)", False,
             stable_error=0.0032, uneven=True),
    Scenario("query", "query SLO failed/total (2%, max 5%)", False, query=True),
)
REGRESSION_KINDS = (
    ("errors 1%->5%", {"stable_error": 0.01, "candidate_error": 0.05, "error_max": 0.02}),
    ("errors 0.5%->3%", {"stable_error": 0.005, "candidate_error": 0.03, "error_max": 0.01}),
    ("errors 1%->2%", {"stable_error": 0.01, "candidate_error": 0.02, "error_max": 0.02}),
    ("p99 +50% (180->270ms)", {"candidate_p99": 0.270}),
)
REGRESSION_RATES = (10.0, 50.0, 250.0)  # service requests/s: the canary gets 1, 5, 25 at 10%
REGRESSIONS = tuple(
    Scenario(f"{name} @{rate * 0.1:g}", name, True, rate=(rate, rate), **params)  # type: ignore[arg-type]
    for name, params in REGRESSION_KINDS for rate in REGRESSION_RATES
)
SCENARIOS = GOOD + REGRESSIONS
BUSINESS_FAILED, BUSINESS_MAX = 0.02, 0.05


def ratio_slo_support() -> str | None:
    """None if ratio query SLOs can be judged; else why the query scenario is skipped."""
    if not {"numerator", "denominator"} <= set(QuerySlo.model_fields):
        return "headway.api.analysis_spec.QuerySlo has no numerator/denominator yet"
    if "ratios" not in VariantData.__dataclass_fields__:
        return "VariantData has no `ratios` to carry a ratio SLO's counts"
    return None


def raw_spec(scn: Scenario, model: dict[str, str]) -> dict[str, Any]:
    slos: list[dict[str, Any]] = [{"errorRate": {"max": scn.error_max}},
                                  {"latency": {"percentile": 99, "max": f"{LATENCY_MAX * 1000:g}ms"}}]
    if scn.query:
        sel = 'modeldeployment="{{name}}",variant="{{variant}}"'
        slos.append({"query": {
            "name": QUERY_NAME, "max": BUSINESS_MAX,
            "numerator": f"sum(increase(fraud_predictions_failed_total{{{sel}}}[{{{{window}}}}])) or vector(0)",
            "denominator": f"sum(increase(fraud_predictions_total{{{sel}}}[{{{{window}}}}]))",
        }})
    return {
        "model": model, "replicas": REPLICAS,
        "rollout": {"steps": list(STEPS), "bakeTime": BAKE_TIME},
        "traffic": {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference"}]}},
        "analysis": {"prometheus": {"url": "http://prometheus.monitoring:9090"}, "slos": slos},
    }


@functools.lru_cache(maxsize=None)
def latency_bins(p99: float, scale: float = 1.0) -> np.ndarray:
    """Share of requests per histogram bucket: lognormal latency, median 60 ms x scale."""
    sigma = math.log(p99 / MEDIAN_LATENCY) / Z99
    cdf = np.array([sps.lognorm.cdf(le, sigma, scale=MEDIAN_LATENCY * scale) if le != math.inf else 1.0 for le in BUCKETS])
    return np.diff(np.concatenate([[0.0], cdf]))


def at(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


def seconds(when: datetime) -> float:
    return (when - T0).total_seconds()


# --- Prometheus ------------------------------------------------------------------------------


def increase(times: np.ndarray, values: np.ndarray, start: float, end: float, resets: bool = True) -> np.ndarray:
    """``increase(x[end - start])`` evaluated at ``end``, for every column (one series each).

    promql/functions.go ``extrapolatedRate``: samples in (start, end]; fewer than two -> no
    result (NaN); the difference plus counter-reset corrections, extrapolated to the range's
    edges when the first/last sample is within 1.1 average sample intervals of them (else by
    half an interval), the start capped where the counter would have been zero. A NaN value
    is "no sample of that series at that scrape" (not created yet, or gone). ``resets`` False
    promises no counter reset in the range (a series, once created, then has a sample at every
    scrape and never decreases): the same result, computed faster."""
    lo, hi = np.searchsorted(times, start, side="right"), np.searchsorted(times, end, side="right")
    out = np.full(values.shape[1], np.nan)
    if hi - lo < 2:
        return out
    t, v = times[lo:hi], values[lo:hi]
    k = len(t)
    cols = np.arange(v.shape[1])
    if resets:
        valid = ~np.isnan(v)
        count = valid.sum(axis=0)
        first = valid.argmax(axis=0)
        last = k - 1 - valid[::-1].argmax(axis=0)
        vv = np.where(valid, v, 0.0)
        filled = np.take_along_axis(vv, np.maximum.accumulate(np.where(valid, np.arange(k)[:, None], 0), axis=0), axis=0)
        corrections = np.where(valid[1:] & (vv[1:] < filled[:-1]), filled[:-1], 0.0).sum(axis=0)
        v_first = vv[first, cols]
        result = vv[last, cols] - v_first + corrections
    else:  # one column per group tells when the group's series appeared
        created = ~np.isnan(v[:, GROUP_OF])
        count = created.sum(axis=0)[GROUP_OF_COLUMN]
        first = created.argmax(axis=0)[GROUP_OF_COLUMN]
        last = np.full(v.shape[1], k - 1)
        v_first = v[first, cols]
        result = v[-1] - v_first
    usable = count >= 2
    if not usable.any():
        return out
    t_first, t_last = t[first], t[last]
    sampled = t_last - t_first
    avg = sampled / np.maximum(count - 1, 1)
    to_start, to_end = t_first - start, end - t_last
    to_start = np.where(to_start >= 1.1 * avg, avg / 2, to_start)
    to_zero = np.where((result > 0) & (v_first >= 0), sampled * v_first / np.where(result > 0, result, 1.0), np.inf)
    to_start = np.minimum(to_start, to_zero)
    to_end = np.where(to_end >= 1.1 * avg, avg / 2, to_end)
    ok = usable & (sampled > 0)
    factor = (sampled + to_start + to_end) / np.where(sampled > 0, sampled, 1.0)
    out[ok] = (result * factor)[ok]
    return out


class Pod:
    """One model-server pod: its traffic share, its counters, and what Prometheus scraped of them."""

    def __init__(self, world: World, name: str, variant: str, version: str, asked: float, ready_at: float,
                 history: float = 0.0) -> None:
        self.name, self.variant, self.version = name, variant, version
        self.ready_at, self.removed_at = ready_at, math.inf
        self.share = 0.0
        self.clock = asked
        self.served = 0.0  # requests served (not reset by restarts): what a rollback's cost counts
        # The pod's own environment (hiccups, restarts, scrape times), the same for both judges.
        self.rng = rng = np.random.default_rng(np.random.SeedSequence([world.seed, 3, zlib.crc32(name.encode())]))
        scn = world.scn
        new = version == "new"
        error = (scn.candidate_error if new and scn.candidate_error is not None else scn.stable_error)
        p99 = scn.candidate_p99 if new and scn.candidate_p99 is not None else 0.180
        self.bins = np.vstack([latency_bins(p99), latency_bins(p99, LATENCY_INCIDENT)])
        p = error * world.load_errors + world.shared_errors
        if scn.hiccups:
            hiccup = np.zeros(world.length)
            starts = np.cumsum(rng.exponential(HICCUP_EVERY, size=int(world.length / HICCUP_EVERY * 3) + 8))
            for s in starts[starts < world.length]:
                hiccup[int(s):int(s + HICCUP_SECONDS)] = HICCUP_ERROR
            p = p + hiccup
        p = np.clip(p, 0.0, 1.0)
        lam = world.traffic
        rates = np.vstack([lam * (1 - p), lam * p, lam * (1 - p) * world.slow, lam * BUSINESS_FAILED])
        self.rates = rates
        self.cum = np.hstack([np.zeros((4, 1)), np.cumsum(rates, axis=1)])
        restarts = np.cumsum(rng.exponential(RESTART_EVERY, size=4)) + asked
        self.restarts = [float(r) for r in restarts if r < world.horizon]
        # Prometheus scrapes the target at its own offset every 15 s (with jitter; some scrapes lost).
        nominal = np.arange(ready_at + rng.uniform(0.0, SCRAPE), world.horizon + SCRAPE, SCRAPE)
        scrapes = nominal + rng.uniform(-SCRAPE_JITTER, SCRAPE_JITTER, size=len(nominal))
        self.scrapes = scrapes[rng.random(len(nominal)) >= SCRAPE_LOSS]
        self.next = 0  # index of the next scrape
        self.query = scn.query
        cap = int((world.horizon - max(-WARMUP, ready_at)) / SCRAPE) + 8
        self.times = np.empty(cap)
        self.values = np.full((cap, NCOLS), np.nan)
        self.n = 0
        self.counts = np.zeros(NCOLS)
        self.exists = np.zeros(len(GROUPS), dtype=bool)
        if history > 0:  # a long-running pod: counters already high, every series created
            mean = history * float(lam[0]) / REPLICAS
            e = mean * float(p[0])
            self.counts[C_OK], self.counts[C_ERR] = mean - e, e
            self.counts[C_OK_B:C_OK_B + len(BUCKETS)] = np.cumsum(self.bins[0]) * (mean - e)
            self.counts[C_ERR_B:C_ERR_B + len(BUCKETS)] = np.cumsum(self.bins[0]) * e
            self.counts[C_BIZ], self.counts[C_BIZ_FAIL] = mean, mean * BUSINESS_FAILED
            self.exists[:] = True
        self.world = world

    def _integral(self, x: np.ndarray) -> np.ndarray:
        """Cumulative (requests ok, errors, ok in a latency incident, business failures) at times x."""
        pos = np.clip(x + WARMUP, 0.0, self.world.length - 1e-9)
        i = pos.astype(int)
        return self.cum[:, i] + (pos - i) * self.rates[:, i]

    def advance(self, to: float, rng: np.random.Generator) -> None:
        """Serve traffic up to ``to`` at the current share, scraping on the way."""
        if to <= self.clock:
            return
        end = min(to, self.removed_at)
        first = self.next
        self.next = int(np.searchsorted(self.scrapes, to, side="right"))
        scrape_times = self.scrapes[first:self.next]
        if end < to:
            scrape_times = scrape_times[scrape_times <= end]
        restarts = [r for r in self.restarts if self.clock < r <= end]
        # Points in time order: (time, kind) with kind 0 a restart, 1 a scrape, 2 the end.
        points = sorted([(r, 0) for r in restarts] + [(t, 1) for t in scrape_times] + [(end, 2)]) if restarts else None
        times = np.append(scrape_times, end) if points is None else np.array([t for t, _ in points])
        n = len(times)
        inc = np.zeros((n, NCOLS))
        if self.share > 0.0 and end > self.clock:
            edges = np.concatenate(([self.clock], np.minimum(times, end)))
            mean = np.maximum(np.diff(self._integral(edges), axis=1), 0.0) * self.share
            ok = rng.poisson(mean[0])
            err = rng.poisson(mean[1])
            slow = np.divide(mean[2], mean[0], out=np.zeros_like(mean[0]), where=mean[0] > 0)
            pvals = (1 - slow)[:, None] * self.bins[0] + slow[:, None] * self.bins[1]
            inc[:, C_OK], inc[:, C_ERR] = ok, err
            inc[:, C_OK_B:C_OK_B + len(BUCKETS)] = np.cumsum(rng.multinomial(ok, pvals), axis=1)
            if err.any():
                inc[:, C_ERR_B:C_ERR_B + len(BUCKETS)] = np.cumsum(rng.multinomial(err, pvals), axis=1)
            if self.query:
                inc[:, C_BIZ] = ok + err
                inc[:, C_BIZ_FAIL] = rng.binomial(ok + err, BUSINESS_FAILED)
            self.served += float(ok.sum() + err.sum())
        if points is not None:  # rare: one point at a time, counters from zero at a restart
            for j, (when, kind) in enumerate(points):
                self.counts += inc[j]
                self.exists |= self.counts[list(GROUP_OF)] > 0
                if kind == 0:  # a new process: counters from zero, series created again by their first event
                    self.counts[:] = 0.0
                    self.exists[:] = False
                elif kind == 1:
                    self._record(when, self.counts[None, :], self.exists[None, :])
        else:
            cum = self.counts + np.cumsum(inc, axis=0)
            exists = self.exists | (cum[:, list(GROUP_OF)] > 0)
            if len(scrape_times):
                k = len(scrape_times)
                self._record(scrape_times, cum[:k], exists[:k])
            self.counts, self.exists = cum[-1].copy(), exists[-1].copy()
        self.clock = max(self.clock, end)

    def _record(self, when: Any, rows: np.ndarray, exists: np.ndarray) -> None:
        """Scraped samples: a series not created yet (or since a restart) has no sample (NaN)."""
        k = len(rows)
        self.values[self.n:self.n + k] = np.where(exists[:, GROUP_OF_COLUMN], rows, np.nan)
        self.times[self.n:self.n + k] = when
        self.n += k

    def increase(self, start: float, end: float) -> np.ndarray:
        if self.n < 2 or self.times[self.n - 1] <= start or self.ready_at > end:
            return np.full(NCOLS, np.nan)
        resets = any(start - 2 * SCRAPE < r <= end for r in self.restarts)
        return increase(self.times[:self.n], self.values[:self.n], start, end, resets)


class World:
    """The cluster, the data plane, BentoML and Prometheus around one ModelDeployment."""

    def __init__(self, scn: Scenario, seed: int, judge: str, horizon: int) -> None:
        self.scn, self.seed, self.horizon = scn, seed, horizon
        self.env = np.random.default_rng(np.random.SeedSequence([seed, 1]))  # same world for both judges
        self.draw = np.random.default_rng(np.random.SeedSequence([seed, 2, 0 if judge == "headway" else 1]))
        self.length = horizon + WARMUP + 120
        lo, hi = scn.rate
        base = math.exp(self.env.uniform(math.log(lo), math.log(hi)))
        t = np.arange(self.length) - WARMUP
        traffic = np.full(self.length, base)
        self.load_errors = np.ones(self.length)
        if scn.uneven:
            traffic *= 1.0 + 0.5 * np.sin(2 * np.pi * (t / (4 * 3600.0) + self.env.uniform()))
            starts = np.cumsum(self.env.exponential(BURST_EVERY, size=64)) - WARMUP
            for s in starts[starts < horizon]:
                i, n = int(s + WARMUP), int(self.env.uniform(*BURST_SECONDS))
                traffic[i:i + n] *= self.env.uniform(*BURST_FACTOR)
                self.load_errors[i:i + n] = BURST_ERRORS
        self.traffic = traffic
        self.base_rate = base
        self.shared_errors = np.zeros(self.length)
        self.slow = np.zeros(self.length)
        self.bake_incident = self.env.uniform(60.0, 300.0)  # seconds into the bake
        if scn.incident in ("step-errors", "step-latency"):
            start = int(self.env.uniform(60.0, 600.0)) + WARMUP
            target = self.shared_errors if scn.incident == "step-errors" else self.slow
            target[start:start + int(INCIDENT_SECONDS)] = INCIDENT_ERROR if scn.incident == "step-errors" else 1.0
        self.pods: list[Pod] = [
            Pod(self, f"scorer-{i}", STABLE, "old", -WARMUP, -WARMUP, history=self.env.uniform(3600, 86400))
            for i in range(REPLICAS)
        ]
        self.weights: dict[str, int] = {STABLE: 100}
        self.stable_rev = OLD_REV
        self.update_done: float | None = None  # the stable rolling update completes then
        self.candidate_want = 0
        self.candidate_seq = 0
        self.previous = False
        self._reshare(-WARMUP)

    # the cluster ---------------------------------------------------------------------------

    def alive(self, variant: str, now: float) -> list[Pod]:
        return [p for p in self.pods if p.variant == variant and p.removed_at > now]

    def ready(self, variant: str, now: float) -> list[Pod]:
        return [p for p in self.alive(variant, now) if p.ready_at <= now]

    def settle(self, now: float) -> None:
        """Cluster events due by ``now``: pods become ready; a finished rolling update replaces the stable pods."""
        if self.update_done is not None and self.update_done <= now:
            for pod in self.pods:
                pod.advance(now, self.draw)
            for pod in self.alive(STABLE, now):
                if pod.version == "old":
                    pod.removed_at = now
            if self.scn.incident == "bake-errors":
                start = int(now + self.bake_incident) + WARMUP
                self.shared_errors[start:start + int(INCIDENT_SECONDS)] = INCIDENT_ERROR
            for i in range(REPLICAS):
                self.pods.append(Pod(self, f"scorer-v2-{i}", STABLE, "new", now, now))
            self.update_done = None
        self._reshare(now)

    def next_event(self, now: float) -> float:
        times = [p.ready_at for p in self.pods if p.ready_at > now and p.removed_at > now]
        if self.update_done is not None and self.update_done > now:
            times.append(self.update_done)
        return math.ceil(min(times)) if times else math.inf

    def apply(self, p: hw_plan.Plan, now: float) -> None:
        """The plan's workloads and traffic, as the cluster and the gateway would follow them."""
        workloads = {w.variant: w for w in p.workloads or []}
        stable = workloads.get(STABLE)
        if stable is not None and revision_of(stable.model) != self.stable_rev:
            self.stable_rev = revision_of(stable.model)
            self.update_done = now + self.env.uniform(*ROLLING_UPDATE)
        cand = workloads.get(CANDIDATE)
        want = cand.replicas if cand is not None else 0
        alive = self.alive(CANDIDATE, now)
        for _ in range(want - len(alive)):
            ready = now + self.env.uniform(*CANDIDATE_START)
            self.pods.append(Pod(self, f"scorer-canary-{self.candidate_seq}", CANDIDATE, "new", now, ready))
            self.candidate_seq += 1
        for pod in sorted(alive, key=lambda q: q.ready_at, reverse=True)[:max(0, len(alive) - want)]:
            pod.removed_at = now
        self.candidate_want = want
        self.previous = PREVIOUS in workloads
        if p.traffic is not None:
            self.weights = dict(p.traffic.weights)
        self._reshare(now)

    def _reshare(self, now: float) -> None:
        """Each ready pod's share of the service's traffic. Pods are simulated lazily: one whose
        share changes is first brought up to ``now`` at its old share."""
        shares = dict.fromkeys(self.pods, 0.0)
        for variant, weight in self.weights.items():
            ready = self.ready(variant, now)
            for pod in ready:
                shares[pod] = weight / 100.0 / len(ready)
        for pod, share in shares.items():
            if share != pod.share:
                pod.advance(now, self.draw)
                pod.share = share

    def live(self, now: float) -> dict[str, DeploymentState]:
        n_stable = len(self.ready(STABLE, now))
        updating = self.update_done is not None
        live = {STABLE: DeploymentState(True, self.stable_rev, True, REPLICAS, n_stable, n_stable,
                                        0 if updating else n_stable, n_stable > 0, not updating)}
        if self.candidate_want or self.alive(CANDIDATE, now):
            ready = len(self.ready(CANDIDATE, now))
            live[CANDIDATE] = DeploymentState(True, NEW_REV, True, self.candidate_want, ready, ready, ready,
                                              ready > 0 or self.candidate_want == 0, ready == self.candidate_want)
        if self.previous:
            live[PREVIOUS] = DeploymentState(True, OLD_REV, True, 1, 1, 1, 1, True, True)
        return live

    def served(self, variant: str | None, now: float) -> float:
        """Requests served by ``variant``'s pods (None: by the new version's) up to ``now``."""
        total = 0.0
        for pod in self.pods:
            if (pod.variant == variant) if variant is not None else pod.version == "new":
                pod.advance(now, self.draw)
                total += pod.served
        return total

    # Prometheus and the fetcher --------------------------------------------------------------

    def series(self, variant: str, start: float, end: float) -> list[tuple[Pod, np.ndarray]]:
        """Each of ``variant``'s pods' increase over (start, end], as Prometheus answers at ``end``."""
        pods = [p for p in self.pods if p.variant == variant and p.ready_at < end and p.removed_at > start]
        for pod in pods:
            pod.advance(end, self.draw)
        return [(p, p.increase(start, end)) for p in pods]

    def slices(self, variant: str, start: float, end: float, cache: dict[Any, Any]) -> tuple[Any, ...]:
        """Per pod and interval: ``sum by (pod) (increase(...[interval]))`` at each interval's end."""
        if Slice is None:
            return ()
        out = []
        k = 0
        while start + k * INTERVAL < end:
            a, b = start + k * INTERVAL, min(end, start + (k + 1) * INTERVAL)
            key = (variant, a, b)
            if key not in cache:
                cache[key] = tuple(
                    Slice(pod=pod.name, start=a - start, requests=requests, latency=latency)
                    for pod, inc in self.series(variant, a, b)
                    for requests, latency, _ in [_counts([inc])] if requests.total is not None
                )
            out.extend(cache[key])
            k += 1
        return tuple(out)

    def variant_data(self, variant: str, start: float, end: float, cache: dict[Any, Any]) -> VariantData:
        requests, latency, ratio = _counts([inc for _, inc in self.series(variant, start, end)])
        extra: dict[str, Any] = {}
        if self.scn.query:
            extra["ratios"] = {QUERY_NAME: ratio}
        if Slice is not None:
            extra["slices"] = self.slices(variant, start, end, cache)
        return VariantData(requests=requests, latency=latency, **extra)


def _counts(incs: Sequence[np.ndarray]) -> tuple[RequestCounts, Histogram | None, tuple[float | None, float | None]]:
    """What the fetcher's sum(increase(...)) queries return for these series' increases."""
    if not incs:
        return RequestCounts(None, None), None, (None, None)
    m = incs[0] if len(incs) == 1 else np.vstack(incs)
    present = ~np.isnan(m)
    if m.ndim == 2:
        present = present.any(axis=0)
        m = np.nansum(m, axis=0)
    else:
        m = np.where(present, m, 0.0)
    requests = float(m[C_OK] + m[C_ERR]) if present[C_OK] or present[C_ERR] else None
    le_sum = m[C_OK_B:C_OK_B + len(BUCKETS)] + m[C_ERR_B:C_ERR_B + len(BUCKETS)]
    le_present = present[C_OK_B:C_OK_B + len(BUCKETS)] | present[C_ERR_B:C_ERR_B + len(BUCKETS)]
    buckets = tuple((le, float(c)) for le, c, ok in zip(BUCKETS, le_sum, le_present) if ok)
    return (RequestCounts(requests, float(m[C_ERR]) if requests is not None else None),
            Histogram(buckets) if buckets else None,
            (float(m[C_BIZ_FAIL]), float(m[C_BIZ]) if present[C_BIZ] else None))


# --- the threshold judge -----------------------------------------------------------------------


class ThresholdJudge:
    """Flagger's analysis: every interval each metric over the last interval against its threshold.

    A failed check (a value over its threshold, or no value) holds the step; the failed checks
    are only recorded here (their count over the whole rollout decides the rollback for any N
    afterwards: the rollout is the same for every N up to its N-th failed check)."""

    def __init__(self, scn: Scenario, spec: ModelDeploymentSpec) -> None:
        self.scn, self.spec = scn, spec
        self.window: tuple[str, str, datetime] | None = None
        self.checked = 0  # checks done in this window
        self.last: str = "Inconclusive"
        self.failures: list[tuple[float, float, str]] = []  # (time, new-version requests, purpose)

    def next_check(self, status: ModelDeploymentStatus, now: float) -> float:
        req = hw_analysis.request(self.spec, status, at(now))
        if req is None:
            return math.inf
        start = seconds(req.window_start)
        done = self.checked if self.window == (req.purpose, req.revision, req.window_start) else 0
        return start + (done + 1) * INTERVAL

    def gate(self, world: World, status: ModelDeploymentStatus, now: float) -> Gate | None:
        req = hw_analysis.request(self.spec, status, at(now))
        if req is None:
            return None
        key = (req.purpose, req.revision, req.window_start)
        if key != self.window:
            self.window, self.checked, self.last = key, 0, "Inconclusive"
        start = seconds(req.window_start)
        due = start + (self.checked + 1) * INTERVAL
        if now >= due:
            self.checked = int((now - start) // INTERVAL)
            ok = self.check(world, req.targets[0][0], now)
            self.last = "Pass" if ok else "Fail"
            if not ok:
                self.failures.append((now, world.served(None, now), req.purpose))
        return Gate(self.last, f"threshold check: {self.last}")  # type: ignore[arg-type]

    def check(self, world: World, variant: str, now: float) -> bool:
        incs = [inc for _, inc in world.series(variant, now - INTERVAL, now)]
        requests, latency, (failed, total) = _counts(incs)
        if not requests.total:  # "no values found": NaN error rate
            return False
        if (requests.errors or 0.0) / requests.total > self.scn.error_max:
            return False
        buckets = clean_buckets(latency.buckets) if latency is not None else None
        p99 = bucket_quantile(buckets, 0.99) if buckets else None
        if p99 is None or p99 > LATENCY_MAX:
            return False
        if self.scn.query:
            if not total or failed is None or failed / total > BUSINESS_MAX:
                return False
        return True


# --- one rollout ------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    judge: str
    decision: str = "hold"  # rollback | promote | hold (at the horizon)
    seconds: float = 0.0
    bad_requests: float = 0.0  # new-version requests until the decision
    bad_to_horizon: float = 0.0  # ... until the horizon (a regression never rolled back)
    where: str = ""
    thin: bool = False
    promoted_at: float | None = None
    failures: list[tuple[float, float, str]] = field(default_factory=list)  # threshold judge's failed checks
    capped: bool = False  # stopped at FAILURE_CAP failed checks


_STEADY: dict[str, ModelDeploymentStatus] = {}


def steady_status(scn: Scenario) -> ModelDeploymentStatus:
    """The status of the old version running alone, from the planner itself."""
    if scn.key not in _STEADY:
        raw = raw_spec(scn, OLD)
        status = ModelDeploymentStatus()
        up = DeploymentState(True, OLD_REV, True, REPLICAS, REPLICAS, REPLICAS, REPLICAS, True, True)
        for t, live in ((-WARMUP - 60, {}), (-WARMUP, {STABLE: up})):
            status = hw_plan.plan(OWNER, Observation(raw, 1, {}, status, live), at(t)).status
        _STEADY[scn.key] = status
    return _STEADY[scn.key]


Job = tuple[int, int, str, int]  # scenario index, seed, judge, horizon (s)


def run(job: Job) -> Outcome:
    """One rollout of scenario ``SCENARIOS[index]``, seed ``rep``, judged by ``judge``, until ``horizon``."""
    index, rep, judge, horizon = job
    scn = SCENARIOS[index]
    world = World(scn, index * 100_003 + rep, judge, horizon)
    raw = raw_spec(scn, NEW)
    spec = ModelDeploymentSpec.model_validate(raw)
    threshold = ThresholdJudge(scn, spec) if judge == "threshold" else None
    status = steady_status(scn)
    out = Outcome(scn.key, judge, seconds=horizon)
    cache: dict[Any, Any] = {}
    pending: MeasureRequest | None = None
    step_start: tuple[float, float] | None = None  # (time, candidate requests served then)
    now = 0.0
    plan_at = 0.0  # the next plan: a measurement due, wake_at, a cluster event, a status write's watch event
    last_gate: str | None = None
    while now <= horizon and not (threshold is not None and len(threshold.failures) >= FAILURE_CAP):
        world.settle(now)
        measurement = None
        judgement = None
        if pending is not None and seconds(pending.due_at) <= now:
            data: dict[str, VariantData | None] = {
                v: world.variant_data(v, seconds(pending.window_start), now, cache) for v in pending.variants}
            measurement = Measurement(pending, data, None, at(now))
        if threshold is not None:
            gate = threshold.gate(world, status, now)
            judgement = Judgement(gate=gate)
            # Between plans the planner's decision changes only with time (wake_at) or with its
            # inputs: a threshold check that leaves the gate as it was needs no plan.
            result = None if gate is None else gate.result
            if now < plan_at and result == last_gate:
                now = _next(now, plan_at, threshold.next_check(status, now))
                continue
            last_gate = result
        p = hw_plan.plan(OWNER, Observation(raw, 2, {}, status, world.live(now), measurement=measurement), at(now), judgement)
        before, status = status, p.status
        if status.rolled_back is not None:
            out.decision, out.seconds, out.bad_requests = "rollback", now, world.served(None, now)
            out.where = "bake" if status.rolled_back.reason == "FailedBake" else f"step {(before.rollout.step + 1) if before.rollout else '?'}"
            break
        if before.bake is not None and status.bake is None:
            out.decision, out.seconds, out.bad_requests = "promote", now, world.served(None, now)
            break
        rollout = status.rollout
        if rollout is not None and rollout.step_started_at and (before.rollout is None or before.rollout.step_started_at != rollout.step_started_at):
            step_start = (now, world.served(CANDIDATE, now))
        if rollout is not None and rollout.promoting and not (before.rollout and before.rollout.promoting):
            out.promoted_at = now
            out.thin = step_start is not None and world.served(CANDIDATE, now) - step_start[1] < MIN_REQUESTS
        world.apply(p, now)
        changed = (before.rollout, before.bake, before.phase) != (status.rollout, status.bake, status.phase)
        pending = p.measure if threshold is None else None
        times = [now + 1 if changed else math.inf, world.next_event(now)]
        if p.wake_at is not None:
            times.append(seconds(p.wake_at))
        if pending is not None:
            times.append(max(seconds(pending.due_at), now + (1 if measurement is not None else 0)))
        plan_at = min(times)
        now = _next(now, plan_at, threshold.next_check(status, now) if threshold is not None else math.inf)
    if threshold is not None:
        out.failures = [f for f in threshold.failures if f[0] <= out.seconds]
        out.capped = len(out.failures) >= FAILURE_CAP
    served_to_end = world.served(None, min(now, horizon)) if out.decision != "rollback" else out.bad_requests
    if out.decision == "promote":  # from now on the new version serves everything until the horizon
        world_rate = world.traffic[int(out.seconds + WARMUP):horizon + WARMUP].sum()
        out.bad_to_horizon = served_to_end + float(world_rate)
    else:
        out.bad_to_horizon = served_to_end
    if out.decision == "hold":
        out.bad_requests = served_to_end
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _next(now: float, *times: float) -> float:
    """The next whole second at which something is due (at least one second on)."""
    nxt = min(times)
    return max(now + 1, math.ceil(nxt)) if nxt > now else now + 1


# --- figures ------------------------------------------------------------------------------------


def clopper_pearson_upper(k: int, n: int) -> float:
    """Upper end of the two-sided 95% Clopper-Pearson interval of k successes in n."""
    if n == 0:
        return 1.0
    return 1.0 if k >= n else float(sps.beta.ppf(0.975, k + 1, n - k))


def threshold_outcome(o: Outcome, n: int) -> tuple[str, float, float]:
    """(decision, seconds, requests to detect) of the threshold judge with threshold ``n``."""
    if len(o.failures) >= n or o.capped:  # a capped run is taken to reach any N at its last failed check
        t, bad, _ = o.failures[min(n, len(o.failures)) - 1]
        return "rollback", t, bad
    return o.decision, o.seconds, o.bad_to_horizon


def to_detect(o: Outcome) -> float:
    return o.bad_requests if o.decision == "rollback" else o.bad_to_horizon


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def _fmt(x: float, digits: int = 0) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


Results = dict[tuple[str, str], list[Outcome]]


def calibrate(results: Results, good: Sequence[Scenario], target: float, pooled: bool = False) -> int:
    """The smallest threshold N whose false-rollback rate on the good scenarios is at most ``target``:
    the worst scenario's rate (or, ``pooled``, the rate over all good rollouts)."""
    runs = [results[(s.key, "threshold")] for s in good]
    most = max((len(o.failures) for r in runs for o in r), default=0)
    for n in range(1, most + 2):
        if pooled:
            rate = sum(threshold_outcome(o, n)[0] == "rollback" for r in runs for o in r) / max(1, sum(map(len, runs)))
        else:
            rate = max((_rate_at(r, n) for r in runs), default=0.0)
        if rate <= target:
            return n
    return most + 1


def detection(results: Results, s: Scenario, n: int) -> tuple[float, float, float, float, str, str]:
    """Median requests and minutes to detect, Headway then the threshold judge at N, and their misses."""
    hw, th = results[(s.key, "headway")], [threshold_outcome(o, n) for o in results[(s.key, "threshold")]]
    return (_median([to_detect(o) for o in hw]), _median([r[2] for r in th]),
            _median([o.seconds / 60 for o in hw if o.decision == "rollback"]),
            _median([r[1] / 60 for r in th if r[0] == "rollback"]),
            _missed([o.decision for o in hw]), _missed([r[0] for r in th]))


def report(results: Results, good: Sequence[Scenario], regressions: Sequence[Scenario], horizon: int) -> str:
    """Print the tables; return the summary line."""
    headway_runs = [results[(s.key, "headway")] for s in good]
    worst = max((_rate(r) for r in headway_runs), default=0.0)
    pooled = sum(o.decision == "rollback" for r in headway_runs for o in r) / max(1, sum(map(len, headway_runs)))
    n_worst = calibrate(results, good, worst)
    n_pooled = calibrate(results, good, pooled, pooled=True)
    print()
    print("## Good versions (must not be rolled back)")
    print()
    print(f"| scenario | rollouts | Headway false rollbacks | rate | 95% upper | in steps / bake | held at {horizon / 3600:g} h "
          f"| median min to promote | thin | threshold judge (N={n_worst}) false rollbacks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    uppers = []
    for s in good:
        runs = results[(s.key, "headway")]
        k = sum(o.decision == "rollback" for o in runs)
        upper = clopper_pearson_upper(k, len(runs))
        uppers.append(upper)
        in_bake = sum(o.decision == "rollback" and o.where == "bake" for o in runs)
        held = sum(o.decision == "hold" for o in runs)
        promote = _median([o.promoted_at / 60 for o in runs if o.decision == "promote" and o.promoted_at is not None])
        thin = sum(o.thin for o in runs)
        thr = sum(threshold_outcome(o, n_worst)[0] == "rollback" for o in results[(s.key, "threshold")])
        print(f"| {s.name} | {len(runs)} | {k} | {k / len(runs):.4f} | {upper:.4f} | {k - in_bake} / {in_bake} | {held} "
              f"| {_fmt(promote, 1)} | {thin} | {thr}/{len(results[(s.key, 'threshold')])} |")
    print()
    print("## Regressions (must be rolled back): new-version requests and minutes until rollback, median over rollouts")
    print()
    print(f"A regression not rolled back by the horizon is charged every request it would serve until {horizon / 3600:g} h.")
    print()
    print(f"| scenario | canary req/s | rollouts | Headway requests | Headway min | Headway missed "
          f"| threshold (N={n_worst}) requests | threshold min | threshold missed | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, ratios_pooled = [], []
    for s in regressions:
        h_req, t_req, h_min, t_min, h_miss, t_miss = detection(results, s, n_worst)
        ratio = t_req / h_req if h_req > 0 else math.nan
        ratios.append(ratio)
        ratios_pooled.append(detection(results, s, n_pooled)[1] / h_req if h_req > 0 else math.nan)
        print(f"| {s.name} | {s.canary_rate} | {len(results[(s.key, 'headway')])} | {h_req:.0f} | {_fmt(h_min, 1)} | {h_miss} "
              f"| {t_req:.0f} | {_fmt(t_min, 1)} | {t_miss} | {ratio:.2f} |")
    thin_total = sum(o.thin for (_, judge), runs in results.items() if judge == "headway" for o in runs)
    thin_threshold = sum(o.thin for (_, judge), runs in results.items() if judge == "threshold" for o in runs)
    most = max((len(o.failures) for s in good for o in results[(s.key, "threshold")]), default=0)
    curve = ", ".join(f"N={n}: {max((_rate_at(results[(s.key, 'threshold')], n) for s in good), default=0.0):.3f}"
                      for n in sorted({1, 2, 5, 10, 20, 30, 40, 60, n_worst, n_pooled}) if n <= most + 1)
    print()
    print(f"Threshold judge calibration. Worst good-scenario false-rollback rate by N: {curve}. Headway's worst "
          f"{worst:.4f} -> N={n_worst} (the table). Matching the rate over all good rollouts instead (Headway "
          f"{pooled:.4f}) gives N={n_pooled} and a median detection ratio of {_median(ratios_pooled):.2f}. "
          f"Thin promotions: Headway {thin_total}, threshold judge {thin_threshold}.")
    return (f"detection_ratio_at_equal_fpr={_median(ratios):.2f} false_rollback={worst:.4f} "
            f"false_rollback_upper95={max(uppers, default=1.0):.4f} thin_promotions={thin_total}")


def _rate(runs: Sequence[Outcome]) -> float:
    return sum(o.decision == "rollback" for o in runs) / len(runs) if runs else 0.0


def _rate_at(runs: Sequence[Outcome], n: int) -> float:
    return sum(threshold_outcome(o, n)[0] == "rollback" for o in runs) / len(runs) if runs else 0.0


def _missed(decisions: Sequence[str]) -> str:
    missed = sum(d != "rollback" for d in decisions)
    promoted = sum(d == "promote" for d in decisions)
    return f"{missed}/{len(decisions)}" + (f" ({promoted} promoted)" if promoted else "")


def main(argv: Sequence[str] | None = None, run_one: Callable[[Job], Outcome] = run) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seeds per scenario (for tests)")
    parser.add_argument("--good-seeds", type=int, default=None, help="rollouts per good scenario (default 300)")
    parser.add_argument("--regression-seeds", type=int, default=None, help="rollouts per regression cell (default 25)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: run in this process)")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (default: all)")
    parser.add_argument("--operator", default=str(OPERATOR), help="operator source root to benchmark (default: this tree's)")
    opts = parser.parse_args(argv)
    good_seeds = opts.good_seeds or (2 if opts.quick else 300)
    reg_seeds = opts.regression_seeds or (1 if opts.quick else 25)
    only = {k.strip() for k in opts.only.split(",") if k.strip()}
    skip = ratio_slo_support()
    chosen = [i for i, s in enumerate(SCENARIOS) if (not only or s.key in only) and not (s.query and skip)]
    horizon = 3600 if opts.quick else HORIZON
    jobs = [(i, rep, judge, horizon) for i in chosen for rep in range(reg_seeds if SCENARIOS[i].regression else good_seeds)
            for judge in ("headway", "threshold")]
    started, cpu = time.perf_counter(), _cpu_seconds()
    if opts.workers > 0:
        with ProcessPoolExecutor(max_workers=opts.workers) as pool:
            outcomes = list(pool.map(run_one, jobs, chunksize=4))
    else:
        outcomes = [run_one(job) for job in jobs]
    results: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        results.setdefault((o.scenario, o.judge), []).append(o)
    good = [SCENARIOS[i] for i in chosen if not SCENARIOS[i].regression]
    regressions = [SCENARIOS[i] for i in chosen if SCENARIOS[i].regression]
    print(f"# {len(jobs) // 2} rollouts x 2 judges ({good_seeds} per good scenario, {reg_seeds} per regression cell): "
          f"{time.perf_counter() - started:.0f} s, {_cpu_seconds() - cpu:.0f} CPU-s in {max(opts.workers, 1)} process(es)")
    print(f"# rollout: {' -> '.join(f'{weight}% {length}' for weight, length in STEP_PLAN)}, "
          f"bake {BAKE_TIME}; {REPLICAS} stable pods; interval {DEFAULTS.interval}, minRequests {MIN_REQUESTS}, "
          f"failureLimit {DEFAULTS.failure_limit}")
    if Slice is None:
        print("# note: this operator has no verdict_types.Slice: no per-pod slices passed")
    if any(s.query for s in SCENARIOS if not only or s.key in only) and skip:
        print(f"# note: query SLO scenario skipped: {skip}")
    line = report(results, good, regressions, horizon)
    print()
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
