"""The bake after a promotion: what the new stable is compared with, and what a breach does.

After a promotion with ``spec.rollout.bakeTime`` the previous version stays available until
the bake ends, and it is the bake's **baseline**: it is fed a share of the requests
(``spec.rollout.bakeBaseline``) and the analysis judges the new stable against it exactly
as a step judges a candidate against stable (``analysis.request``: targets
``(stable, previous)``), with the same verdicts (planning/verdicts.py): the relative test
("stable shown worse than the previous version") and the shared-breach rule (a breach the
previous version shows too over the same window is Inconclusive). An incident the whole
service shares therefore never restores the old version.

The baseline, resolved once per plan from the spec (``resolve``):

==========================  ===================================================  ==========================
``bakeBaseline``            traffic while the bake runs                          the previous version runs
==========================  ===================================================  ==========================
``{mirror: M}``             stable 100%, M% of requests mirrored to previous     ceil(M% of stable's pods)
``{weight: W}``             previous W% of live traffic, stable the rest         ceil(W% of stable's pods)
``{none: true}``            stable 100%                                          1 pod, no traffic
omitted                     mirror 100 where the provider can mirror, else       as above
                            weight 5 (provider none: the replica ratio)
==========================  ===================================================  ==========================

Without ``spec.analysis`` nothing judges, so there is no baseline. The previous version is
sized for its share from the start of the bake (capacity before traffic) and gets the share
once its pods are available (``BakeStatus.baselineSince``, where the comparison's window
starts); until then, or if it loses its pods, the new stable is judged alone.

What a breach does during the bake (``restores``):

- a Fail shown against a measured baseline (the previous version served at least
  ``minRequests`` in the window: the verdict carries its ``baselineValue``) restores the
  previous version (``rolledBack.reason: FailedBake``), with the verdicts as evidence;
- a breach not compared with the previous version (no baseline, the previous version not
  serving its share yet, or too few of its requests so far) is *reported*: a Warning Event
  and a history entry ``BakeBreach`` with the verdicts, phase ``Degraded`` (condition
  Degraded reason BakeBreach, SLOsMet reason BreachReported); the new stable keeps serving,
  unless ``spec.rollout.rollbackWithoutBaseline`` asks to restore the previous version then;
- a breach of the new stable while the previous version is not shown within the SLO (its
  confidence bounds straddle the max: too few of its requests to tell whether the breach is
  shared) is Inconclusive (``breachUnattributed``) and reported like an uncompared breach
  (``BakeBreach``, phase Degraded), never restored: a thin baseline cannot restore the old
  version on a shared incident, nor hide a breach;
- an inconclusive limit (``onInconclusive: rollback``) never restores a compared previous
  version: a breach both versions share is Inconclusive by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import BakeStatus, SloVerdict
from headway.planning.analysis import Gate
from headway.planning.capabilities import capabilities_of
from headway.planning.naming import PREVIOUS, STABLE
from headway.planning.traffic_plan import STABLE_ONLY, TrafficPlan, previous_traffic

# Where the provider can mirror: every request, the previous version sized like the stable (the same
# requests at the same per-pod load, and a baseline as large as what it judges: a thin baseline's
# confidence bounds straddle the max for long, so a breach is reported rather than restored until it
# tells; docs/verdicts.md has the figures).
DEFAULT_MIRROR = 100
# Where it cannot (provider none): 5% of live traffic, i.e. the replica ratio of one pod for up to 20
# stable pods, the pod the previous version always kept behind the ModelDeployment's Service.
DEFAULT_WEIGHT = 5
Mode = Literal["mirror", "weight", "none"]


@dataclass(frozen=True)
class Baseline:
    """How the previous version is fed during the bake: mirrored requests, a live weight, or nothing."""

    mode: Mode
    percent: int = 0

    @property
    def fed(self) -> bool:
        return self.mode != "none"

    @property
    def share(self) -> int:
        """Percent of the traffic (live or mirrored) the previous version is sized for."""
        return self.percent if self.fed else 0

    @property
    def live(self) -> bool:
        """Users' requests are answered by the previous version (a weight)."""
        return self.mode == "weight"

    def traffic(self) -> TrafficPlan:
        """The traffic while the previous version serves its share."""
        return STABLE_ONLY if self.mode == "none" else previous_traffic(self.mode, self.percent)

    def describe(self) -> str:
        if self.mode == "mirror":
            return f"{self.percent}% of requests mirrored to it"
        if self.mode == "weight":
            return f"{self.percent}% of live traffic"
        return "no baseline"

    def evidence(self, bento: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "percent": self.percent, "variant": PREVIOUS}
        if bento is not None:
            out["bento"] = bento
        return out

    @staticmethod
    def of(bake: BakeStatus) -> Baseline:
        """The baseline a bake recorded."""
        return Baseline(bake.baseline, bake.baseline_percent if bake.baseline != "none" else 0)


NO_BASELINE = Baseline("none")


def resolve(spec: ModelDeploymentSpec) -> Baseline:
    """spec.rollout.bakeBaseline for this spec's provider (its default when omitted); none without analysis."""
    if spec.analysis is None:
        return NO_BASELINE  # nothing judges: the previous version only stays available
    chosen = spec.rollout.bake_baseline if spec.rollout is not None else None
    if chosen is None:
        return Baseline("mirror", DEFAULT_MIRROR) if capabilities_of(spec.traffic).mirror else Baseline("weight", DEFAULT_WEIGHT)
    if chosen.mirror is not None:
        return Baseline("mirror", chosen.mirror)
    if chosen.weight is not None:
        return Baseline("weight", chosen.weight)
    return NO_BASELINE


def compared_fails(gate: Gate) -> list[SloVerdict]:
    """The new stable's failed verdicts that stand on a measured baseline (a baselineValue: the
    previous version served at least minRequests over the same window)."""
    found = []
    for raw in (gate.evidence or {}).get("verdicts", []):  # status.analysis as the gate read it
        try:
            verdict = SloVerdict.model_validate(raw)
        except ValueError:  # not a verdict: no evidence of anything
            continue
        if verdict.variant == STABLE and verdict.result == "Fail" and verdict.baseline_value is not None:
            found.append(verdict)
    return found


def unattributed_breaches(gate: Gate) -> list[SloVerdict]:
    """The new stable's breaches shown while the previous version is not shown within the SLO (its bounds
    straddle the max: too few of its requests to tell a shared incident): Inconclusive, reported."""
    found = []
    for raw in (gate.evidence or {}).get("verdicts", []):
        try:
            verdict = SloVerdict.model_validate(raw)
        except ValueError:
            continue
        if verdict.variant == STABLE and verdict.breach_unattributed:
            found.append(verdict)
    return found


def not_compared(bake: BakeStatus) -> str:
    """Why a breach of the bake was not compared with the previous version."""
    if bake.baseline == "none":
        return "there is no baseline, spec.rollout.bakeBaseline is none"
    if bake.baseline_since is None:
        return "the previous version was not serving its share yet"
    return "the previous version has served fewer than minRequests requests in the window so far"


def restores(gate: Gate, bake: BakeStatus, rollback_without_baseline: bool) -> tuple[bool, str]:
    """Whether a gate asking for a rollback during the bake restores the previous version, and why (not)."""
    if compared_fails(gate):
        return True, "shown against the previous version"
    if bake.baseline != "none" and bake.baseline_since is not None and gate.result != "Fail":
        return False, ("inconclusive analyses never restore a previous version the new stable is compared with "
                       "(a breach both share is Inconclusive)")
    why = f"not compared with the previous version: {not_compared(bake)}"
    if rollback_without_baseline:
        return True, f"{why}; spec.rollout.rollbackWithoutBaseline restores it"
    return False, why


def describe_bake(bake: BakeStatus, previous_bento: str | None, rollback_without_baseline: bool = False) -> str:
    """The bake in a few words, for SLOsMet, history and Events: what the new stable is compared with."""
    baseline = Baseline.of(bake)
    against = previous_bento or "the previous version"
    if not baseline.fed:
        does = "restores the previous version (rollbackWithoutBaseline)" if rollback_without_baseline else "is reported, not rolled back"
        return f"bake of {bake.bento} without a baseline (a breach {does})"
    if bake.baseline_since is None:
        return f"bake of {bake.bento} judged alone until {against} serves its share ({baseline.describe()})"
    return f"bake of {bake.bento} against {against} ({baseline.describe()})"


__all__ = [
    "DEFAULT_MIRROR", "DEFAULT_WEIGHT", "NO_BASELINE", "Baseline", "compared_fails", "describe_bake", "not_compared", "resolve",
    "restores", "unattributed_breaches",
]
