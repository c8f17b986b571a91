#!/usr/bin/env python3
"""How often the bake restores the previous version, by baseline: the figures of docs/verdicts.md
("The bake and its baseline").

    python hack/bench_bake.py [--runs 300]

Each run is a 10-minute bake, a look every 30 s, 20 requests/s to the service, an error-rate
SLO of 1% (minRequests 200, failureLimit 2). Errors are binomial per look. The previous
version gets ``share``% of the requests mirrored (``mirror``) or serves ``share``% of them
(``weight``: the stable serves the rest); ``alone`` is a bake without a baseline that
restores on a breach (``bakeBaseline: {none: true}`` with ``rollbackWithoutBaseline``).
Every look goes through the operator's own ``assess`` -> ``analysis.record`` ->
``analysis.gate`` -> ``bake.restores``.

Two tables: shared incidents (both versions at the same error rate for the whole bake; a
restore is a false rollback), and regressions (the new stable worse than the previous
version; a restore is what should happen, and the median look it happened at).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

import numpy as np  # noqa: E402

from headway.api.spec import ModelDeploymentSpec  # noqa: E402
from headway.api.status import BakeStatus  # noqa: E402
from headway.planning import analysis  # noqa: E402
from headway.planning.bake import restores  # noqa: E402
from headway.planning.conditions import rfc3339  # noqa: E402
from headway.planning.naming import PREVIOUS, STABLE  # noqa: E402
from headway.planning.verdicts import RequestCounts, VariantData, assess  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RPS, LOOK, LOOKS = 20.0, 30, 20
SPEC = ModelDeploymentSpec.model_validate({
    "model": {"bento": "m:1", "image": "r/m:1"},
    "analysis": {"interval": f"{LOOK}s", "slos": [{"errorRate": {"max": 0.01}}], "minRequests": 200, "failureLimit": 2},
})
BASELINES = [("mirror", 10), ("mirror", 25), ("mirror", 50), ("mirror", 100), ("weight", 5), ("weight", 50), ("alone", 0)]
SHARED = [0.011, 0.012, 0.015, 0.02, 0.03, 0.06]
REGRESSIONS = [(0.04, 0.002), (0.02, 0.005)]


def bake_run(mode: str, share: int, p_stable: float, p_previous: float, seed: int) -> int | None:
    """The look (1-based) at which the previous version was restored, or None."""
    cfg = SPEC.analysis
    assert cfg is not None
    compared = mode != "alone"
    req = analysis.AnalysisRequest("bake", "rev", T0, ((STABLE, PREVIOUS if compared else None),))
    bake = BakeStatus(revision="rev", bento="m:2", since=rfc3339(T0), until=rfc3339(T0 + timedelta(seconds=LOOK * LOOKS)),
                      baseline=mode if compared else "none", baseline_percent=share, baseline_since=rfc3339(T0) if compared else None)
    fractions = (1.0, share / 100) if mode == "mirror" else ((100 - share) / 100, share / 100) if mode == "weight" else (1.0, 0.0)
    rng = np.random.default_rng(seed)
    n, k = [0.0, 0.0], [0.0, 0.0]
    status = None
    for look in range(1, LOOKS + 1):
        for i, (fraction, p) in enumerate(zip(fractions, (p_stable, p_previous))):
            served = rng.poisson(RPS * LOOK * fraction)
            n[i] += served
            k[i] += rng.binomial(served, p)
        base = VariantData(RequestCounts(n[1], k[1])) if compared else None
        verdicts = [(STABLE, v) for v in assess(cfg.slos, VariantData(RequestCounts(n[0], k[0])), base, cfg.min_requests)]
        status = analysis.record(cfg, status, req, verdicts, None, T0 + timedelta(seconds=LOOK * look))
        gate = analysis.gate(cfg, status, req)
        if gate.rollback and restores(gate, bake, rollback_without_baseline=not compared)[0]:
            return look
    return None


def name(mode: str, share: int) -> str:
    return "judged alone, restoring on a breach" if mode == "alone" else f"{mode} {share}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="runs per cell (default 300)")
    args = parser.parse_args()
    print("shared incident (both versions at the rate, the whole bake): previous version restored in")
    print("| baseline | " + " | ".join(f"{p:.1%}" for p in SHARED) + " |")
    print("|---|" + "---:|" * len(SHARED))
    for mode, share in BASELINES:
        cells = [sum(bake_run(mode, share, p, p, s) is not None for s in range(args.runs)) / args.runs for p in SHARED]
        print(f"| {name(mode, share)} | " + " | ".join(f"{c:.1%}" for c in cells) + " |", flush=True)
    print("\nregression (new stable / previous version): restored in, median look")
    print("| baseline | " + " | ".join(f"{a:.1%} vs {b:.1%}" for a, b in REGRESSIONS) + " |")
    print("|---|" + "---:|" * len(REGRESSIONS))
    for mode, share in BASELINES:
        cells = []
        for a, b in REGRESSIONS:
            looks = sorted(x for s in range(args.runs) if (x := bake_run(mode, share, a, b, s)) is not None)
            median = looks[len(looks) // 2] if looks else "-"
            cells.append(f"{len(looks) / args.runs:.0%}, look {median}")
        print(f"| {name(mode, share)} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
