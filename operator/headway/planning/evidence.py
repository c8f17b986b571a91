"""How far a rollout's Fail tests have gone towards a decision: the share of the way, in log terms.

Pure. The Fail tests (breach of the bound, worse than stable) are e-processes whose log wealth
the operator carries over the rollout in ``status.analysis.evidence`` (docs/verdicts.md, "The
false-rollback budget"). A test fails once its e-value reaches 1/alpha_test, so the share of the
way is ``log E / log(1/alpha_test)``: 0 at an e-value of 1 (or below), 1 at the boundary, 0.5 at
the square root of what a Fail needs. alpha_test is the operator's split of alpha within a rollout
(``verdicts.assess``): alpha / (2 x SLOs) for each of breach and relative; the no-SLO ``traffic``
check's only test has the met test's share of alpha.

Two readers: ``kubectl headway get`` (kubectl_plugin/evidence.py, the line under each SLO) and
the operator's ``headway_slo_evidence_ratio`` gauge (telemetry.py). They live here, below both,
so that the number a person reads in the terminal is the one the dashboard draws.
"""

from __future__ import annotations

from collections.abc import Iterable

from headway.api.status import AnalysisStatus, CarriedEvidence
from headway.planning import stats
from headway.planning.analysis import MAX_RESTARTS, MET_SHARES
from headway.planning.verdict_types import DEFAULT_ALPHA, TRAFFIC_SLO


def fail_level(slo: str, slos: int, analysis: AnalysisStatus) -> float:
    """alpha of one Fail test of ``slo``, as ``verdicts.assess`` splits it within a rollout."""
    if slo == TRAFFIC_SLO:
        return DEFAULT_ALPHA * MET_SHARES[min(analysis.restarts, MAX_RESTARTS)]
    return DEFAULT_ALPHA / max(1, slos) / 2


def progress(log_e: float, level: float) -> float:
    """The share of the way to a Fail, in log terms (0 below an e-value of 1, 1 at 1/level and above)."""
    return min(1.0, max(0.0, log_e / stats.evidence_threshold(level)))


def closest_fail(slo: str, evidence: Iterable[CarriedEvidence], level: float) -> tuple[float, CarriedEvidence] | None:
    """The Fail test of ``slo`` nearest to failing, with its progress."""
    best: tuple[float, CarriedEvidence] | None = None
    for e in evidence:
        if e.slo != slo or not e.log_wealth:
            continue
        share = progress(stats.log_mean_exp(e.log_wealth), level)
        if best is None or share > best[0]:
            best = (share, e)
    return best
