"""Capacity in one place: how many replicas each variant runs for the traffic it must carry.

Every planner states, per variant, a ``Demand``: the share of traffic (live or mirrored)
the variant must be able to carry, a floor it runs even without a share, and the live
share it carries right now. ``replicas()`` turns that into replicas from ``spec.replicas``
(the stable's size, which carries all traffic). An autoscaler plugs in here: it changes
what a share is worth in replicas, not the planners.

Capacity comes before traffic: a variant is sized for the larger of the share it is about
to get and the share it has, and traffic moves only once the pods are there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from headway.api.spec import ModelDeploymentSpec
from headway.planning.capabilities import capabilities_of


@dataclass(frozen=True)
class Demand:
    """What one variant must carry.

    ``share`` None marks the baseline (the stable of a rollout): it runs all of
    ``spec.replicas``, less, without a router, the pods whose share the others carry.
    """

    share: int | None  # percent of traffic to size for; None: the baseline
    floor: int = 0  # replicas it runs even with no share (a pinned arm, a bake's previous version, a drain)
    carries: int = 0  # percent of live traffic it carries now


def total_replicas(spec: ModelDeploymentSpec) -> int:
    """Replicas that carry all the traffic (the stable's size)."""
    return spec.replicas if spec.replicas is not None else 1


def replicas_for_share(total: int, share: int) -> int:
    """Replicas a variant needs for a share of the traffic the stable's `total` replicas carry."""
    return 0 if share <= 0 else max(1, math.ceil(total * share / 100))


def replica_ratio(spec: ModelDeploymentSpec) -> bool:
    """Without a router (provider none) the split is the ratio of pods behind one Service."""
    return capabilities_of(spec.traffic).split == "replicas"


def replicas(spec: ModelDeploymentSpec, demand: Mapping[str, Demand]) -> dict[str, int]:
    """Replicas per variant, in the order of ``demand``."""
    total = total_replicas(spec)
    sized = {v: max(replicas_for_share(total, d.share), d.floor) for v, d in demand.items() if d.share is not None}
    # With no router, the baseline gives up the pods whose share the others already carry.
    given = sum(replicas_for_share(total, d.carries) for d in demand.values() if d.share is not None) if replica_ratio(spec) else 0
    return {v: sized[v] if d.share is not None else (max(1, total - given) if given else total) for v, d in demand.items()}
