"""Each SLO's verdict as a person reads it: the value against its bound, and how far the evidence has gone.

Pure. Users of Argo Rollouts asked to see *why* an analysis failed, not only that it did
(argoproj/argo-rollouts#2276, #1251, #2658): here every SLO shows its measured value with its
anytime-valid bounds against the SLO's bound, and the two tests that can end the step:

* **towards Fail**: the Fail tests (breach of the bound, worse than stable) are e-processes
  whose log wealth the operator carries over the rollout in ``status.analysis.evidence``
  (docs/verdicts.md, "The false-rollback budget"). A test fails once its e-value reaches
  1/alpha_test, so the share of the way is ``log E / log(1/alpha_test)`` (in log terms: 50% is
  the square root of what a Fail needs). alpha_test is the operator's split of alpha
  (``verdicts.assess``): alpha / (2 x SLOs) for each of breach and relative within a rollout;
  the no-SLO ``traffic`` check has the met test's share of alpha.
* **towards Pass**: the met test passes once the upper confidence bound (``ciHigh``) is at or
  below the bound (the lower bound for a ratio with ``min``); the line says where it stands.

The share of the way to a Fail (``fail_level``, ``progress``, ``closest_fail``) is computed in
``headway.planning.evidence``, where the operator's ``headway_slo_evidence_ratio`` gauge reads it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from headway.api.analysis_spec import Slo
from headway.api.status import AnalysisStatus, SloVerdict
from headway.planning import stats
from headway.planning.evidence import closest_fail, fail_level, progress
from headway.planning.verdict_types import DEFAULT_MARGIN, TRAFFIC_SLO, pct, slo_name

__all__ = ["Shown", "closest_fail", "e_value", "fail_level", "progress", "show", "spec_slo"]

TESTS = {"breach": "breach of the bound", "relative": f"worse than the baseline by more than {DEFAULT_MARGIN:.0%}"}


@dataclass(frozen=True)
class Shown:
    """One SLO's verdict in words: ``measured`` for the INFO column, ``evidence`` for the line under it."""

    measured: str
    evidence: str


def e_value(log_e: float) -> str:
    return f"{math.exp(log_e):.3g}" if log_e < 690 else f"e^{log_e:.0f}"


def show(v: SloVerdict, slo: Slo | None, slos: int, analysis: AnalysisStatus) -> Shown:
    kind = _Kind.of(v.slo, slo)
    measured = _measured(v, kind)
    if v.value is None and v.result != "Pass":
        return Shown(measured, "")
    parts = []
    level = fail_level(v.slo, slos, analysis)
    if v.result == "Fail" and v.statistic is not None:
        p = f", p={v.p_value:.2g}" if v.p_value is not None else ""
        parts.append(f"Fail shown: e-value {e_value(v.statistic)} reached {1 / level:.3g}{p}")
    elif analysis.purpose != "experiment" and kind.tested and v.result != "Pass":
        found = closest_fail(v.slo, list(analysis.evidence), level)
        if found is not None:
            share, e = found
            log_e = stats.log_mean_exp(e.log_wealth)
            parts.append(f"towards Fail {share:.0%} (e-value {e_value(log_e)} of {1 / level:.3g}: {TESTS[e.test]})")
    if kind.bound is not None and v.threshold is not None and kind.tested:
        edge = v.ci_low if kind.at_least else v.ci_high
        word = "lower" if kind.at_least else "upper"
        cmp = ">=" if kind.at_least else "<="
        if v.result == "Pass":
            parts.append(f"Pass shown: {word} bound {kind.fmt(edge)} {cmp} {kind.fmt(v.threshold)}" if edge is not None else "Pass")
        elif edge is not None and v.result != "Fail":
            parts.append(f"towards Pass: {word} bound {kind.fmt(edge)}, needs {cmp} {kind.fmt(v.threshold)}")
    if v.breach_unattributed:
        parts.append("breach not attributed: the baseline is not shown within the SLO")
    return Shown(measured, "; ".join(parts))


@dataclass(frozen=True)
class _Kind:
    """How an SLO's numbers read: rates as percentages, ratios and values as numbers."""

    rate: bool
    tested: bool
    bound: str | None  # "max", "min" or None (the traffic check)
    what: str

    @property
    def at_least(self) -> bool:
        return self.bound == "min"

    def fmt(self, x: float | None) -> str:
        if x is None:
            return "-"
        return pct(x) if self.rate else f"{x:.4g}"

    @staticmethod
    def of(name: str, slo: Slo | None) -> _Kind:
        if name == TRAFFIC_SLO:
            return _Kind(True, True, None, "errors")
        if slo is None or slo.error_rate is not None:
            return _Kind(True, True, "max", "errors")
        if slo.latency is not None:
            return _Kind(True, True, "max", f"slower than {slo.latency.max}")
        assert slo.query is not None
        if slo.query.numerator is not None:
            return _Kind(False, True, "min" if slo.query.min is not None else "max", "ratio")
        return _Kind(False, False, "max" if slo.query.max is not None else "min", "value")


def _measured(v: SloVerdict, kind: _Kind) -> str:
    if v.value is None:
        return v.reason
    value = f"{kind.fmt(v.value)} {kind.what}" if kind.rate else f"{kind.what} {kind.fmt(v.value)}"
    if v.ci_low is not None and v.ci_high is not None:
        value += f" ({kind.fmt(v.ci_low)}-{kind.fmt(v.ci_high)})"
    if kind.bound is not None and v.threshold is not None:
        value += f", {'allowed' if kind.rate and kind.bound == 'max' else kind.bound} {kind.fmt(v.threshold)}"
    value += f"; {v.samples} {'requests' if kind.rate else 'samples'}"
    if v.baseline_value is not None:
        value += f"; baseline {kind.fmt(v.baseline_value)}"
    if not kind.tested:
        value += " (untested)"
    return value


def spec_slo(name: str, slos: list[Slo]) -> Slo | None:
    return next((s for s in slos if slo_name(s) == name), None)
