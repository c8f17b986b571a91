"""hack/bench_judge.py --quick runs, prints its table, and ends with the summary line on target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LAST_LINE = re.compile(r"detection_ratio=(\d+\.\d+) false_rollback=(\d+\.\d+) thin_promotions=(\d+)")


def test_quick_benchmark_meets_its_targets() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "bench_judge.py"), "--quick"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, check=True,
    )
    lines = run.stdout.strip().splitlines()
    assert any(line.startswith("| errors 1%->5% |") for line in lines)  # the table is there
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    detection_ratio, false_rollback, thin_promotions = float(match[1]), float(match[2]), int(match[3])
    assert detection_ratio >= 3
    assert false_rollback <= 0.01
    assert thin_promotions == 0
