"""Rollout step kinds in one table: what each does to traffic, analysis and gating.

A step of ``spec.rollout.steps`` sets exactly one of ``shadow``, ``canary`` and ``pause``.
Everything planning needs to know about a kind is one row of ``KINDS``:

=======  =============================================  ==========  =================================
kind     traffic while it runs                          analysed    how it ends
=======  =============================================  ==========  =================================
shadow   stable 100%, ``percent`` mirrored to candidate  yes         duration passed and analysis Pass
canary   candidate ``weight``%, stable the rest          yes         duration passed and analysis Pass
pause    keeps the traffic of the step before it         no          duration passed, or a person
                                                                     (promote-step) without one
=======  =============================================  ==========  =================================

The rollout state machine (rollout.py) and the analysis (analysis.py) read this table
instead of branching on the kind; a new kind (an approval, a load test) is a new row.
With autoscaling, capacity reads it too: while an analysed step runs (``comparing``) the
stable keeps its current replicas as its scaler's floor, and a mirror-only step
(``mirror_only``) lets a candidate with scale-to-zero idle at 0 (capacity.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from headway.api.spec import RolloutStep
from headway.api.status import RolloutStatus
from headway.api.types import parse_duration
from headway.planning.naming import CANDIDATE
from headway.planning.traffic_plan import STABLE_ONLY, TrafficPlan, candidate_traffic, carried_share


@dataclass(frozen=True)
class StepKind:
    """One row of the step table."""

    name: str  # the field of RolloutStep that selects this kind
    traffic: Callable[[RolloutStep], TrafficPlan] | None  # None: keeps the traffic of the step before
    analysed: bool  # verdicts judge the candidate while it runs, and must Pass for it to end
    label: Callable[[RolloutStep], str]


KINDS: tuple[StepKind, ...] = (
    StepKind("shadow", lambda s: candidate_traffic(0, s.shadow.percent), True,  # type: ignore[union-attr]
             lambda s: f"shadow {s.shadow.percent}%"),  # type: ignore[union-attr]
    StepKind("canary", lambda s: candidate_traffic(s.canary.weight, 0), True,  # type: ignore[union-attr]
             lambda s: f"canary {s.canary.weight}%"),  # type: ignore[union-attr]
    StepKind("pause", None, False,
             lambda s: "pause" + (f" {s.pause.duration}" if s.pause and s.pause.duration else " (manual gate)")),
)


def kind_of(step: RolloutStep) -> StepKind:
    return next(k for k in KINDS if getattr(step, k.name) is not None)


def duration(step: RolloutStep) -> timedelta | None:
    """How long the step runs; None: until a person passes it (a manual gate)."""
    text = getattr(getattr(step, kind_of(step).name), "duration", None)
    return parse_duration(text) if text else None


def analysed(step: RolloutStep) -> bool:
    return kind_of(step).analysed


def describe(step: RolloutStep, k: int, total: int) -> str:
    return f"step {k + 1}/{total}: {kind_of(step).label(step)}"


def step_traffic(steps: list[RolloutStep], k: int) -> TrafficPlan:
    """Traffic while step k runs; a step that sets none keeps the traffic of the step before it."""
    for step in reversed(steps[: k + 1]):
        traffic = kind_of(step).traffic
        if traffic is not None:
            return traffic(step)
    return candidate_traffic(0, 0)


def step_share(steps: list[RolloutStep], k: int) -> int:
    """Share of traffic (live or mirrored) the candidate must be sized for at step k."""
    plan = step_traffic(steps, min(k, len(steps) - 1)) if steps else STABLE_ONLY
    return carried_share(plan, CANDIDATE)


def mirror_only(steps: list[RolloutStep], k: int) -> bool:
    """Whether step k sends the candidate mirrored traffic only (a shadow step, or a pause after one)."""
    plan = step_traffic(steps, min(k, len(steps) - 1)) if steps else STABLE_ONLY
    return plan.mirror is not None and plan.weights.get(CANDIDATE, 0) == 0


def comparing(steps: list[RolloutStep], rollout: RolloutStatus | None, with_analysis: bool) -> bool:
    """An analysed step is running: the analysis compares the candidate against stable (as
    analysis.request asks for it: started, not paused, not promoting)."""
    return (with_analysis and rollout is not None and not rollout.promoting and rollout.step_started_at is not None
            and rollout.paused_at is None and rollout.step < len(steps) and analysed(steps[rollout.step]))
