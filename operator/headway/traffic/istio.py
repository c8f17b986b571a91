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
      ``method`` and ``authority`` are not headers to Istio, so they cannot be pinned on.
    - With ``gateways`` set, the VirtualService applies to those gateways only. Add
      ``mesh`` to route in-mesh callers too, and add the umbrella Service's FQDN to
      ``hosts`` so that calls to it are split as well.
"""

from __future__ import annotations

from typing import Any

from headway.api.spec import IstioTraffic, Traffic
from headway.traffic.base import Backend, Mirror, Pin, Problem, RouteIntent, RouteKind, route_object
from headway.traffic.gatewayapi import cookie_regex
from headway.traffic.none import PINS_FIELD, check_intent

VIRTUALSERVICE = RouteKind(group="networking.istio.io", version="v1", plural="virtualservices", kind="VirtualService")
CLUSTER_DOMAIN = "cluster.local"
FIELD = "spec.traffic.istio"
# Match keys Istio reads as parts of the request line, not as headers.
_NOT_HEADERS = frozenset({"uri", "scheme", "method", "authority"})


class IstioProvider:
    """Weighted destinations, mirror + mirrorPercentage for shadow, header matches for pins."""

    name: str = "istio"
    kinds: tuple[RouteKind, ...] = (VIRTUALSERVICE,)

    def check(self, intent: RouteIntent, traffic: Traffic | None) -> list[Problem]:
        problems = check_intent(intent)
        if traffic is None or traffic.istio is None:
            problems.append(Problem(FIELD, "provider istio needs spec.traffic.istio (hosts at least)"))
        for i, pin in enumerate(intent.pins):
            if pin.kind == "header" and pin.name.lower() in _NOT_HEADERS:
                problems.append(Problem(f"{PINS_FIELD}[{i}]", f"Istio reads {pin.name!r} as part of the request, not as a header; it cannot be pinned on"))
        return problems

    def render(self, intent: RouteIntent, traffic: Traffic | None) -> list[dict[str, Any]]:
        problems = self.check(intent, traffic)
        if problems:
            raise ValueError("; ".join(f"{p.field}: {p.message}" for p in problems))
        assert traffic is not None and traffic.istio is not None  # by check()
        return [build_virtualservice(intent, traffic.istio)]


def build_virtualservice(intent: RouteIntent, settings: IstioTraffic) -> dict[str, Any]:
    """The VirtualService of an intent that passed :meth:`IstioProvider.check`."""
    backends = {b.variant: b for b in intent.backends}
    http: list[dict[str, Any]] = [
        {"name": f"pin-{i}", "match": [{"headers": _header_match(pin)}], "route": [{"destination": _destination(intent, backends[pin.variant])}]}
        for i, pin in enumerate(intent.pins, start=1)
    ]
    weighted: dict[str, Any] = {
        "name": "weighted",
        "route": [{"destination": _destination(intent, b), "weight": b.weight} for b in intent.backends],
    }
    if intent.mirror is not None:
        weighted["mirror"] = _destination(intent, intent.mirror)
        weighted["mirrorPercentage"] = {"value": float(intent.mirror.percent)}
    http.append(weighted)

    spec: dict[str, Any] = {"hosts": list(settings.hosts)}
    if settings.gateways:
        spec["gateways"] = list(settings.gateways)
    spec["http"] = http
    return route_object(VIRTUALSERVICE, intent, spec)


def _destination(intent: RouteIntent, target: Backend | Mirror) -> dict[str, Any]:
    return {"host": f"{target.service}.{intent.namespace}.svc.{CLUSTER_DOMAIN}", "port": {"number": target.port}}


def _header_match(pin: Pin) -> dict[str, dict[str, str]]:
    if pin.kind == "header":
        return {pin.name.lower(): {"exact": pin.value}}
    return {"cookie": {"regex": cookie_regex(pin.name, pin.value)}}


PROVIDER = IstioProvider()
