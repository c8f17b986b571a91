"""Which provider serves a ModelDeployment, and its route, checked and rendered without I/O.

The provider is chosen by ``spec.traffic.provider``, never guessed. No ``spec.traffic``
means provider ``none``. A provider name Headway does not know is an error, never a
fallback: a silent fallback to ``none`` would turn a canary into a replica ratio and drop
mirrors and pins without anyone asking for it.

:func:`route_problems` knows, before anything is written, why a plan's route cannot be
applied: a limit of the provider, or a route kind the cluster does not serve (``served``
is the set of ``"group/Kind"`` the reconciler observed). :func:`render_route` renders it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from headway.api.spec import ModelDeploymentSpec, Traffic
from headway.planning.capabilities import capabilities_of, kind_group, kind_name
from headway.planning.naming import Owner, VariantWorkload
from headway.planning.traffic_plan import TrafficPlan
from headway.traffic import gatewayapi, istio, none
from headway.traffic.base import Problem, ServicePort, Services, TrafficProvider

PROVIDERS: dict[str, TrafficProvider] = {p.name: p for p in (gatewayapi.PROVIDER, istio.PROVIDER, none.PROVIDER)}


def provider_for(traffic: Traffic | None) -> TrafficProvider:
    """The provider named by ``spec.traffic.provider`` (``none`` without ``spec.traffic``)."""
    return PROVIDERS[capabilities_of(traffic).provider]  # capabilities_of refuses an unknown name


def services_for(owner: Owner, workloads: Iterable[VariantWorkload]) -> dict[str, ServicePort]:
    """Each variant's Service (``<name>-<variant>``) and port, as the workload renderers build them."""
    return {w.variant: ServicePort(owner.variant_name(w.variant), w.model.port) for w in workloads}


def routable(plan: TrafficPlan, services: Services) -> TrafficPlan:
    """The plan without the variants that run no Service (they can get no traffic)."""
    mirror = plan.mirror if plan.mirror is not None and plan.mirror[0] in services else None
    return dataclasses.replace(
        plan, weights={v: w for v, w in plan.weights.items() if v in services}, mirror=mirror,
        pins=tuple(p for p in plan.pins if p.variant in services),
    )


def route_problems(spec: ModelDeploymentSpec, plan: TrafficPlan, services: Services, served: frozenset[str]) -> list[Problem]:
    """Why the route of a plan cannot be applied (empty: :func:`render_route` renders it).

    First what the provider cannot express; when there is nothing, each route kind of the
    provider that the cluster does not serve (its CRD is not installed).
    """
    provider = provider_for(spec.traffic)
    problems = provider.check(routable(plan, services), services, spec.traffic)
    if problems:
        return problems
    return [
        Problem("spec.traffic.provider", f"{provider.name} needs the {kind_name(k)} CRD ({kind_group(k)}), which this cluster does not serve")
        for k in provider.capabilities.kinds if k not in served
    ]


def render_route(owner: Owner, spec: ModelDeploymentSpec, plan: TrafficPlan, services: Services,
                 labels: dict[str, str]) -> list[dict[str, Any]]:
    """The route objects of a plan; raises ValueError on a plan the provider cannot express."""
    return provider_for(spec.traffic).render(owner, routable(plan, services), services, labels, spec.traffic)
