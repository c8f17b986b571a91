"""Capacity in one place: how many replicas each variant runs for the traffic it must carry.

Every planner states, per variant, a ``Demand``: the share of traffic (live or mirrored)
the variant must be able to carry, a floor it runs even without a share, and the live
share it carries right now. ``Capacity`` (built once per plan by ``capacity_of``) turns
that into replicas, and, with ``spec.autoscaling``, into each variant's own scaler.

Capacity comes before traffic: a variant is sized for the larger of the share it is about
to get and the share it has, and traffic moves only once the pods are there
(``Capacity.need``: the ready replicas a share needs).

Fixed replicas (``spec.replicas``, or autoscaling whose KEDA is not installed: fixed at
``minReplicas``): the stable's size carries all traffic and a share is that fraction of it.

With scalers (``spec.autoscaling``; the scaler owns ``spec.replicas``, Headway never writes
it) a variant's ``replicas`` is the floor its scaler may not go below (``min_replicas``),
and the replicas that carry all traffic are the stable's *current* replicas (its scaler's
decision, read from its Deployment, within [minReplicas, maxReplicas]):

- the stable (baseline): [minReplicas, maxReplicas]; while it holds (an analysis compares
  the candidate against it, or a promotion keeps capacity) its floor is its current replicas;
- a variant with a share: floor ceil(share x stable's current replicas / 100), at least 1
  (it serves, mirrors or is about to), capped at maxReplicas;
- an idle variant (mirrored traffic only, or an experiment arm with no live weight): floor 0
  with ``scaleToZero`` and KEDA (and a request metric to wake it); serving variants keep at least 1;
- ``fixed`` demands (a bake's previous version, a rolled-back candidate draining) run fixed
  replicas with no scaler, and so does a variant whose floor is 0 without scale-to-zero
  (nothing to carry; a HorizontalPodAutoscaler cannot go to 0).

Without a router (provider none) the split is the ratio of pods behind one Service: with
fixed replicas the stable gives up the pods the others carry; with scalers it does not (the
scalers choose the pods, and the split is as approximate as that ratio).

The scaler's spec belongs to the version (``status.stableModel.autoscaling``): while a change
to ``spec.autoscaling`` rolls out, the stable keeps the scaler it was promoted with and the
candidate gets the new one; a stable that ran fixed replicas keeps the replicas it runs until
the version with autoscaling is promoted (and starts its scaler at them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from headway.api.spec import Autoscaling, ModelDeploymentSpec
from headway.api.status import VersionSpec
from headway.planning.capabilities import SCALEDOBJECT, capabilities_of
from headway.planning.naming import STABLE, ScalerBounds
from headway.planning.observe import DeploymentState, Observation
from headway.planning.validation import prometheus_url, unrequested_utilisation


@dataclass(frozen=True)
class Demand:
    """What one variant must carry.

    ``share`` None marks the baseline (the stable of a rollout): it runs all of
    ``spec.replicas``, less, without a router, the pods whose share the others carry.
    """

    share: int | None  # percent of traffic to size for; None: the baseline
    floor: int = 0  # replicas it runs even with no share (a pinned arm, a bake's previous version, a drain)
    carries: int = 0  # percent of live traffic it carries now
    mirror_only: bool = False  # its share is mirrored traffic only (a shadow step): idle, with scale-to-zero
    hold: bool = False  # with a scaler: its current replicas are its floor (compared against; a promotion)
    fixed: bool = False  # fixed replicas even when the others scale (a bake's previous version; a drain)
    stable: bool = False  # the stable workload sized by a share (an experiment's control): at least minReplicas


@dataclass(frozen=True)
class Size:
    """A variant's replicas (with a scaler: its floor) and its scaler, if it has one."""

    replicas: int
    scaler: ScalerBounds | None = None


def total_replicas(spec: ModelDeploymentSpec) -> int:
    """Replicas that carry all the traffic with fixed replicas (the stable's size)."""
    if spec.replicas is not None:
        return spec.replicas
    return max(1, spec.autoscaling.min_replicas) if spec.autoscaling is not None else 1


def replicas_for_share(total: int, share: int) -> int:
    """Replicas a variant needs for a share of the traffic the stable's `total` replicas carry."""
    return 0 if share <= 0 else max(1, math.ceil(total * share / 100))


def replica_ratio(spec: ModelDeploymentSpec) -> bool:
    """Without a router (provider none) the split is the ratio of pods behind one Service."""
    return capabilities_of(spec.traffic).split == "replicas"


def keda_missing(spec: ModelDeploymentSpec, served: frozenset[str]) -> bool:
    """Autoscaling needs KEDA (a request metric, scale-to-zero, or engine keda) and its CRD is not served."""
    return spec.autoscaling is not None and spec.autoscaling.chosen_engine == "keda" and SCALEDOBJECT not in served


RESOURCES = ("cpu", "memory")


def scaler_blockers(scaling: Autoscaling | None, spec: ModelDeploymentSpec, metrics_url: str | None) -> list[str]:
    """Why no scaler can be rendered for ``scaling`` with this spec's resources and Prometheus ([] when
    it can, or when none is asked). The variant then runs fixed replicas (and ScalerNotApplied says why)."""
    if scaling is None:
        return []
    problems: list[str] = []
    unrequested = {name for _, name in unrequested_utilisation(scaling, spec)}
    for resource in RESOURCES:
        if resource in unrequested:
            problems.append(f"spec.autoscaling.metrics: a {resource} utilisation target needs spec.resources.requests.{resource} "
                            "(utilisation is a percentage of the request); replicas stay fixed")
    needs_prometheus = any(m.needs_keda for m in scaling.metrics)
    if needs_prometheus and not metrics_url:
        problems.append("spec.autoscaling.metrics: requestsPerSecond and inFlight need a Prometheus URL (spec.analysis.prometheus.url "
                        "or the operator's --prometheus-url); replicas stay fixed")
    if scaling.scale_to_zero and scaling.chosen_engine == "keda" and not needs_prometheus:
        problems.append("spec.autoscaling.scaleToZero: KEDA scales to zero only with a requestsPerSecond or inFlight metric "
                        "(it refuses minReplicaCount 0 with only cpu and memory); replicas stay fixed")
    return problems


def usable(scaling: Autoscaling | None, served: frozenset[str], spec: ModelDeploymentSpec, metrics_url: str | None) -> Autoscaling | None:
    """``scaling`` if this cluster can run it (KEDA served when it needs KEDA) and its scaler can be
    rendered with the spec's resources and Prometheus, else None: fixed replicas."""
    if scaling is None or (scaling.chosen_engine == "keda" and SCALEDOBJECT not in served):
        return None
    return None if scaler_blockers(scaling, spec, metrics_url) else scaling


@dataclass(frozen=True)
class Capacity:
    """What a share of traffic is worth in replicas for one plan, and each variant's scaler.

    A variant scales as its version says (the scaler's spec is part of the version): the
    stable (the baseline) with ``stable_scaling``, from the stable version, the candidate (and
    experiment arms) with ``scaling``, from the version it runs. They differ while a change to
    autoscaling rolls out."""

    spec: ModelDeploymentSpec
    total: int  # replicas carrying all traffic: spec.replicas, or with scalers the stable's current replicas
    scaling: Autoscaling | None  # the candidate's (or the experiment arms') autoscaling; None: fixed replicas
    stable_scaling: Autoscaling | None  # the stable version's autoscaling; None: fixed replicas
    # A fixed stable gives up, without a router, the pods the others carry: only when its size is the
    # spec's, never when it is the size it runs (that would shrink it at every reconcile).
    gives: bool = True

    @property
    def scaled(self) -> bool:
        """The candidate (and experiment arms) get scalers."""
        return self.scaling is not None

    def need(self, share: int, mirror_only: bool = False) -> int:
        """Ready replicas a variant needs before it gets ``share`` percent (live or mirrored): its floor.
        Mirrored traffic is traffic: a shadow candidate needs its pods too (with none, the mirrored
        requests reach nothing, no series exist, and neither KEDA nor the analysis sees any load)."""
        if self.scaling is None:
            return replicas_for_share(self.total, share)
        return min(self.scaling.max_replicas, replicas_for_share(self.total, share))

    def sizes(self, demand: Mapping[str, Demand]) -> dict[str, Size]:
        """Replicas (and scalers) per variant, in the order of ``demand``."""
        fixed = _fixed(self.spec, self.total, demand, self.gives)
        out: dict[str, Size] = {}
        for v, d in demand.items():
            scaling = self.stable_scaling if d.share is None else self.scaling
            out[v] = Size(fixed[v]) if scaling is None else self._scaled(d, scaling)
        return out

    def _scaled(self, d: Demand, scaling: Autoscaling) -> Size:
        top = scaling.max_replicas
        low = max(1, scaling.min_replicas)  # a serving stable's floor: minReplicas, at least 1
        if d.fixed:
            return Size(max(replicas_for_share(self.total, d.share or 0), d.floor))
        if d.share is None:
            floor = self.total if d.hold else low
        elif d.share == 0 and d.carries == 0 and d.floor == 0 and _to_zero(scaling) and not d.stable:
            floor = 0  # idle: no live weight, no pin, nothing mirrored to it
        else:
            floor = max(replicas_for_share(self.total, max(d.share, d.carries)), d.floor)
            if d.stable:
                floor = max(floor, low)
            if floor == 0:
                return Size(0)  # nothing to carry: no pods, no scaler (a HorizontalPodAutoscaler cannot go to 0)
        floor = min(floor, top)
        return Size(floor, ScalerBounds(scaling.chosen_engine, floor, top, scaling))


def _to_zero(scaling: Autoscaling) -> bool:
    """Idle variants may scale to zero: scaleToZero with KEDA, and a request metric to wake them
    (KEDA refuses minReplicaCount 0 with only cpu and memory triggers)."""
    return scaling.scale_to_zero and scaling.chosen_engine == "keda" and any(m.needs_keda for m in scaling.metrics)


def _fixed(spec: ModelDeploymentSpec, total: int, demand: Mapping[str, Demand], gives: bool = True) -> dict[str, int]:
    sized = {v: max(replicas_for_share(total, d.share), d.floor) for v, d in demand.items() if d.share is not None}
    # With no router, the baseline gives up the pods whose share the others already carry.
    given = sum(replicas_for_share(total, d.carries) for d in demand.values() if d.share is not None) if replica_ratio(spec) and gives else 0
    return {v: sized[v] if d.share is not None else (max(1, total - given) if given else total) for v, d in demand.items()}


def capacity_of(spec: ModelDeploymentSpec, obs: Observation, stable: VersionSpec | None = None,
                candidate: VersionSpec | None = None) -> Capacity:
    """The plan's capacity: fixed replicas, or scalers sized from the stable's current replicas.

    Each side scales as its version says: ``stable`` (default: the version the spec asks for)
    and ``candidate`` (default: the same; during a promotion, the version being promoted).
    The stable's autoscaling bounds the replicas that carry all traffic. A stable that cannot
    scale keeps the replicas it runs rather than dropping to a floor: one whose version has no
    autoscaling while autoscaling rolls out, or whose scaler the cluster cannot run (KEDA not
    served, or a resource request its utilisation target needs gone from the spec)."""
    url = prometheus_url(spec, obs.default_metrics_url)
    scaling = usable(spec.autoscaling if candidate is None else candidate.autoscaling, obs.served, spec, url)
    wanted = spec.autoscaling if stable is None else stable.autoscaling
    base = usable(wanted, obs.served, spec, url)
    live = obs.live.get(STABLE, DeploymentState(exists=False))
    running = live.replicas if live.exists else 0
    gives = False
    if base is not None:
        low = max(1, wanted.min_replicas) if wanted is not None else 1
        current = running or low
        total = min(max(current, low), max(low, base.max_replicas))
    elif wanted is not None:
        total = max(1, wanted.min_replicas, running)  # its scaler cannot run: fixed, never below what it runs
    elif spec.replicas is None and spec.autoscaling is not None and running:
        total = running  # fixed until the version with autoscaling is promoted: as it runs
    else:
        total, gives = total_replicas(spec), True
    return Capacity(spec, total, scaling, base, gives)


def fixed_capacity(spec: ModelDeploymentSpec) -> Capacity:
    """Fixed replicas: spec.replicas (or minReplicas when the scaler is not available)."""
    return Capacity(spec, total_replicas(spec), None, None)


def replicas(spec: ModelDeploymentSpec, demand: Mapping[str, Demand]) -> dict[str, int]:
    """Fixed replicas per variant, in the order of ``demand`` (no scalers)."""
    return _fixed(spec, total_replicas(spec), demand)
