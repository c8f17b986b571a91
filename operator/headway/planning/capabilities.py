"""What each traffic provider can express, declared once.

Validation (which specs to refuse), planning (whether a split is carried by a route or by
replica counts), rendering (what the umbrella Service selects) and the providers in
``headway.traffic`` (what a route may hold) all read this table; no module repeats a
provider's rules. It lives in planning, the lowest pure layer, so that every one of them
may import it.

Kinds are named ``"group/Kind"`` (``"gateway.networking.k8s.io/HTTPRoute"``): which of
them the cluster serves is an observation (a ``frozenset`` of such strings) that the
reconciler passes to the pure functions. Versions and plurals are the Kubernetes
client's business, not the table's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from headway.api.spec import Traffic

PinKind = Literal["header", "cookie"]

HTTPROUTE = "gateway.networking.k8s.io/HTTPRoute"
VIRTUALSERVICE = "networking.istio.io/VirtualService"
PODMONITOR = "monitoring.coreos.com/PodMonitor"
SCALEDOBJECT = "keda.sh/ScaledObject"  # KEDA: autoscaling on request metrics, and to zero
DEFAULT_PROVIDER = "none"  # without spec.traffic


@dataclass(frozen=True)
class Capabilities:
    """One provider's abilities and limits.

    ``split`` says how weights are carried. ``"route"``: exact integer percentages on a
    route object (granularity 1%); the umbrella Service selects the stable pods only.
    ``"replicas"``: no route; the umbrella Service selects every variant's pods and a
    weight is approximated by the replica ratio (granularity 1/replicas, and kube-proxy
    balances connections, not requests).
    """

    provider: str
    kinds: tuple[str, ...]  # "group/Kind" of the route objects it renders
    split: Literal["route", "replicas"]
    mirror: bool  # shadow steps: a share of requests copied to a variant
    pins: frozenset[PinKind]  # spec.experiment.match kinds it can route by
    max_pins: int | None = None  # matches one route holds besides the weighted rule
    max_backends: int | None = None  # weighted backends one route rule holds
    unmatchable_headers: frozenset[str] = frozenset()  # lower-case names the data plane does not read as headers

    @property
    def by_route(self) -> bool:
        """Whether a data plane (not the replica ratio) splits traffic."""
        return self.split == "route"


CAPABILITIES: dict[str, Capabilities] = {
    c.provider: c
    for c in (
        # HTTPRoute: at most 16 rules (one is the weighted rule) and 16 backendRefs per rule.
        Capabilities("gatewayApi", (HTTPROUTE,), "route", mirror=True, pins=frozenset({"header", "cookie"}), max_pins=15, max_backends=16),
        # Istio reads these match keys as parts of the request line, not as headers.
        Capabilities("istio", (VIRTUALSERVICE,), "route", mirror=True, pins=frozenset({"header", "cookie"}),
                     unmatchable_headers=frozenset({"uri", "scheme", "method", "authority"})),
        Capabilities("none", (), "replicas", mirror=False, pins=frozenset()),
    )
}

ROUTE_KINDS: tuple[str, ...] = tuple(kind for c in CAPABILITIES.values() for kind in c.kinds)
# Kinds a cluster may or may not serve (CRDs): every route kind, the PodMonitor, KEDA's ScaledObject.
OPTIONAL_KINDS: tuple[str, ...] = (*ROUTE_KINDS, PODMONITOR, SCALEDOBJECT)


def capabilities_of(traffic: Traffic | None) -> Capabilities:
    """The capabilities of the provider ``spec.traffic`` names (``none`` without it).

    An unknown provider is an error, never a fallback: a silent fallback to ``none`` would
    turn a canary into a replica ratio and drop mirrors and pins without anyone asking.
    """
    name = traffic.provider if traffic is not None else DEFAULT_PROVIDER
    caps = CAPABILITIES.get(name)
    if caps is None:
        known = ", ".join(sorted(CAPABILITIES))
        raise ValueError(f"spec.traffic.provider: unknown traffic provider {name!r} (known: {known})")
    return caps


def providers_that(can: Callable[[Capabilities], bool]) -> str:
    """The providers with an ability, for messages: ``"gatewayApi or istio"``."""
    return " or ".join(c.provider for c in CAPABILITIES.values() if can(c))


def kind_name(kind: str) -> str:
    """``"HTTPRoute"`` of ``"gateway.networking.k8s.io/HTTPRoute"``."""
    return kind.rpartition("/")[2]


def kind_group(kind: str) -> str:
    """``"gateway.networking.k8s.io"`` of ``"gateway.networking.k8s.io/HTTPRoute"``."""
    return kind.rpartition("/")[0]
