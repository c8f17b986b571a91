"""hack/bench_judge.py: whole simulated rollouts, decided by the operator's own planner.

These tests check the benchmark's shape and that its decisions are the operator's, not its
figures (those are the benchmark's output, reported in docs/verdicts.md).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from headway.planning import analysis

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "hack" / "bench_judge.py"
NUMBER = r"(\d+\.\d+|nan)"
LAST_LINE = re.compile(
    rf"detection_ratio_at_equal_fpr={NUMBER} false_rollback=(\d\.\d{{4}}) false_rollback_upper95=(\d\.\d{{4}}) thin_promotions=(\d+)"
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_judge", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_judge"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_one_row_per_scenario_and_ends_with_the_summary_line(bench: ModuleType) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=280,
                         cwd=ROOT, check=True)
    lines = run.stdout.strip().splitlines()
    skipped = bench.ratio_slo_support()
    for scenario in bench.GOOD:
        rows = [line for line in lines if line.startswith(f"| {scenario.name} |")]
        assert len(rows) == (0 if scenario.query and skipped else 1), scenario.name
    if skipped:
        assert any("query SLO scenario skipped" in line for line in lines)
    for name, _ in bench.REGRESSION_KINDS:
        assert len([line for line in lines if line.startswith(f"| {name} |")]) == len(bench.REGRESSION_RATES), name
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    assert 0.0 <= float(match[2]) <= float(match[3]) <= 1.0  # a rate, and its upper bound
    assert sum(bool(LAST_LINE.search(line)) for line in lines) == 1  # exactly one summary line, the last


def test_the_rollouts_are_decided_by_the_operators_analysis(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Replace the operator's analysis.record by one that counts every look as a failure: every
    rollout, good or not, must then be rolled back at its first look, and the output must say so."""
    args = ["--quick", "--workers", "0", "--good-seeds", "2", "--regression-seeds", "1",
            "--only", "independent,errors 1%->5% @25"]
    bench.main(args)
    honest = capsys.readouterr().out.strip().splitlines()[-1]
    original = analysis.record
    looks: list[Any] = []

    def failing(cfg: Any, previous: Any, req: Any, verdicts: Any, error: Any, now: Any) -> Any:
        status = original(cfg, previous, req, verdicts, error, now)
        looks.append(req)
        return status.model_copy(update={"consecutive_failures": cfg.failure_limit})

    monkeypatch.setattr(analysis, "record", failing)
    bench.main(args)
    rigged = capsys.readouterr().out.strip().splitlines()[-1]
    assert looks, "the benchmark never reached the operator's analysis.record"
    assert rigged != honest
    match = LAST_LINE.fullmatch(rigged)
    assert match and match[2] == "1.0000", rigged  # every good rollout rolled back


def test_increase_follows_prometheus_extrapolation_and_counter_resets(bench: ModuleType) -> None:
    """promql extrapolatedRate, on hand-checked cases (one column per series)."""
    t = np.arange(0.0, 301.0, 15.0)  # a counter growing 1/s, scraped every 15 s from t=0
    linear = np.tile(t[:, None], (1, bench.NCOLS))
    # Samples in (0, 300]: 285 seen, extrapolated 15 s to the start (where the counter is zero).
    assert bench.increase(t, linear, 0.0, 300.0)[0] == pytest.approx(300.0)
    # A series created at t=75 with value 3: extrapolated by half an interval only.
    late = linear.copy()
    late[:5] = np.nan
    late[5:] = np.arange(3.0, 3.0 + len(t) - 5)[:, None]
    assert bench.increase(t, late, 0.0, 300.0)[0] == pytest.approx(15.0 * 232.5 / 225.0)
    # A restart at t=150: the count before it is added back.
    reset = linear.copy()
    reset[10:] -= 150.0
    assert bench.increase(t, reset, 0.0, 300.0)[0] == pytest.approx((150 - 15 + 135) * 300 / 285)
    # Fewer than two samples in the range: no result.
    assert np.isnan(bench.increase(t, linear, 0.0, 14.0)[0])
    # The fast path (no reset in the range) agrees with the general one.
    assert bench.increase(t, late, 20.0, 250.0, False)[0] == pytest.approx(bench.increase(t, late, 20.0, 250.0)[0])
