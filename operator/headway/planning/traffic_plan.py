"""What live traffic should do, in planning's terms: weights per variant, mirroring, pins.

Planners produce a ``TrafficPlan``; traffic providers consume it directly and translate
variants into their own objects (Services, ports, routes). It lives below the rollout
state machine and the step table so that both can build one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE


@dataclass(frozen=True)
class PinPlan:
    """Requests carrying this header or cookie value go to ``variant`` before weights apply."""

    kind: Literal["header", "cookie"]
    name: str
    value: str
    variant: str


@dataclass(frozen=True)
class TrafficPlan:
    """What live traffic should do: weights per variant (sum 100), mirroring, pins."""

    weights: dict[str, int]
    mirror: tuple[str, int] | None = None  # (variant, percent)
    pins: tuple[PinPlan, ...] = ()


STABLE_ONLY = TrafficPlan(weights={STABLE: 100})


def candidate_traffic(weight: int, mirror: int) -> TrafficPlan:
    """Stable and candidate: ``weight`` percent live to the candidate, ``mirror`` percent mirrored to it."""
    if mirror:
        return TrafficPlan(weights={STABLE: 100, CANDIDATE: 0}, mirror=(CANDIDATE, mirror))
    return TrafficPlan(weights={STABLE: 100 - weight, CANDIDATE: weight})


def previous_traffic(mode: Literal["mirror", "weight"], percent: int) -> TrafficPlan:
    """Stable and the previous version during a bake: ``percent`` of requests mirrored to the
    previous version (a weight-0 backend), or ``percent`` of live traffic served by it."""
    if mode == "mirror":
        return TrafficPlan(weights={STABLE: 100, PREVIOUS: 0}, mirror=(PREVIOUS, percent))
    return TrafficPlan(weights={STABLE: 100 - percent, PREVIOUS: percent})


def carried_share(plan: TrafficPlan, variant: str) -> int:
    """Share of requests (live or mirrored) ``variant`` receives under ``plan``."""
    mirrored = plan.mirror[1] if plan.mirror and plan.mirror[0] == variant else 0
    return max(plan.weights.get(variant, 0), mirrored)
