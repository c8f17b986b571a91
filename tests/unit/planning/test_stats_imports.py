"""The operator's memory: scipy (about 100 MB resident) is loaded only when a statistic is computed.

Most ModelDeployments never run an analysis, and the operator must stay small with a
thousand of them; importing the operator must not pull in scipy (or numpy under it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OPERATOR = Path(__file__).resolve().parents[3] / "operator"
HEAVY = ("scipy", "numpy")


def loaded_after(statement: str) -> dict[str, bool]:
    """Which heavy modules a fresh interpreter holds after running ``statement``."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(OPERATOR)!r}); {statement}; "
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["headway.planning.verdicts", "headway.reconciler", "headway.handlers", "headway.cli"])
def test_importing_the_operator_does_not_load_scipy(module: str) -> None:
    assert loaded_after(f"import {module}") == {m: False for m in HEAVY}


def test_scipy_is_loaded_when_a_statistic_needs_it() -> None:
    statement = "from headway.planning import stats; assert stats.confidence_sequence(3, 1000, 0.05)[1] < 0.02"
    assert loaded_after(statement)["scipy"] is True
