"""Provider ``istio``: one VirtualService (networking.istio.io/v1) per ModelDeployment.

The VirtualService is named after the ModelDeployment, lives in its namespace and
serves ``spec.traffic.istio.hosts`` through ``gateways``. Its ``http`` routes are
evaluated in order:

1. ``pin-1`` … ``pin-N``: one route per pin, to the pinned variant alone. Header pins
   are ``exact`` matches. Cookie pins are ``regex`` (RE2) matches on the ``cookie``
   header; the regex is the same as the gatewayApi provider's
   (:func:`headway.traffic.gatewayapi.cookie_regex`).
2. ``weighted``: no match. It has weighted ``route[].destination`` entries to every
   backend (weight-0 ones kept, as in gatewayApi). For shadow it adds ``mirror`` and
   ``mirrorPercentage``. The mirror goes on this route only, for the reasons the
   gatewayApi provider gives.

Destinations are Service FQDNs (``<service>.<namespace>.svc.cluster.local``) with the
Service port. Each variant has its own Service, so no subsets are used and **no
DestinationRule is needed**. Users who want connection-pool or outlier-detection
settings may add their own DestinationRule per Service.

Limits
    - ``networking.istio.io/v1`` needs Istio 1.22 or newer.
    - The cluster domain is assumed to be ``cluster.local``.
    - Istio wants header keys in lower case: pin names are lower-cased, which is
      harmless since header names are case-insensitive. The keys ``uri``, ``scheme``,
      ``method`` and ``authority`` are not headers to Istio, so they cannot be pinned on
      (``unmatchable_headers`` in :mod:`headway.planning.capabilities`).
    - With ``gateways`` set, the VirtualService applies to those gateways only. Add
      ``mesh`` to route in-mesh callers too, and add the umbrella Service's FQDN to
      ``hosts`` so that calls to it are split as well.
"""

from __future__ import annotations

from typing import Any

from headway.api.spec import IstioTraffic, Traffic
from headway.planning.capabilities import CAPABILITIES, Capabilities
from headway.planning.naming import Owner
from headway.planning.traffic_plan import PinPlan, TrafficPlan
from headway.traffic.base import PINS_FIELD, Problem, ServicePort, Services, capability_problems, check_plan, refuse, route_object
from headway.traffic.gatewayapi import cookie_regex

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
CLUSTER_DOMAIN = "cluster.local"
FIELD = "spec.traffic.istio"


class IstioProvider:
    """Weighted destinations, mirror + mirrorPercentage for shadow, header matches for pins."""

    name: str = "istio"
    capabilities: Capabilities = CAPABILITIES["istio"]

    def check(self, plan: TrafficPlan, services: Services, traffic: Traffic | None) -> list[Problem]:
        problems = check_plan(plan, services) + capability_problems(self.capabilities, plan)
        if traffic is None or traffic.istio is None:
            problems.append(Problem(FIELD, "provider istio needs spec.traffic.istio (hosts at least)"))
        for i, pin in enumerate(plan.pins):
            if pin.kind == "header" and pin.name.lower() in self.capabilities.unmatchable_headers:
                problems.append(Problem(f"{PINS_FIELD}[{i}]", f"Istio reads {pin.name!r} as part of the request, not as a header; it cannot be pinned on"))
        return problems

    def render(self, owner: Owner, plan: TrafficPlan, services: Services, labels: dict[str, str],
               traffic: Traffic | None) -> list[dict[str, Any]]:
        refuse(self.check(plan, services, traffic))
        assert traffic is not None and traffic.istio is not None  # by check()
        return [build_virtualservice(owner, plan, services, labels, traffic.istio)]


def build_virtualservice(owner: Owner, plan: TrafficPlan, services: Services, labels: dict[str, str],
                         settings: IstioTraffic) -> dict[str, Any]:
    """The VirtualService of a plan that passed :meth:`IstioProvider.check`."""
    def destination(variant: str) -> dict[str, Any]:
        return _destination(owner, services[variant])

    http: list[dict[str, Any]] = [
        {"name": f"pin-{i}", "match": [{"headers": _header_match(pin)}], "route": [{"destination": destination(pin.variant)}]}
        for i, pin in enumerate(plan.pins, start=1)
    ]
    weighted: dict[str, Any] = {
        "name": "weighted",
        "route": [{"destination": destination(variant), "weight": weight} for variant, weight in plan.weights.items()],
    }
    if plan.mirror is not None:
        weighted["mirror"] = destination(plan.mirror[0])
        weighted["mirrorPercentage"] = {"value": float(plan.mirror[1])}
    http.append(weighted)

    spec: dict[str, Any] = {"hosts": list(settings.hosts)}
    if settings.gateways:
        spec["gateways"] = list(settings.gateways)
    spec["http"] = http
    return route_object(API_VERSION, KIND, owner, labels, spec)


def _destination(owner: Owner, service: ServicePort) -> dict[str, Any]:
    return {"host": f"{service.name}.{owner.namespace}.svc.{CLUSTER_DOMAIN}", "port": {"number": service.port}}


def _header_match(pin: PinPlan) -> dict[str, dict[str, str]]:
    if pin.kind == "header":
        return {pin.name.lower(): {"exact": pin.value}}
    return {"cookie": {"regex": cookie_regex(pin.name, pin.value)}}


PROVIDER = IstioProvider()
