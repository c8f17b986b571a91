"""The one small interface every traffic provider implements.

The planner decides *what* traffic should do (a RouteIntent); a provider only says how
its data plane expresses that (route objects), and which intents it cannot express.
Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from headway.api.spec import Traffic


@dataclass(frozen=True)
class Backend:
    """A variant's Service receiving a share of live traffic."""

    variant: str
    service: str
    port: int
    weight: int  # percent, 0..100; the weights of one intent sum to 100


@dataclass(frozen=True)
class Mirror:
    """Shadow traffic: a share of requests copied to a variant; responses discarded."""

    variant: str
    service: str
    port: int
    percent: int  # 1..100


@dataclass(frozen=True)
class Pin:
    """Requests matching a header or cookie go to one variant before weights apply."""

    kind: Literal["header", "cookie"]
    name: str
    value: str
    variant: str


@dataclass(frozen=True)
class RouteIntent:
    """Everything a provider needs to render the route of one ModelDeployment."""

    name: str  # the ModelDeployment's name; route objects are named after it
    namespace: str
    labels: dict[str, str]
    owner: dict[str, Any]  # an ownerReference to the ModelDeployment
    backends: tuple[Backend, ...]
    mirror: Mirror | None = None
    pins: tuple[Pin, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Problem:
    """Something the spec asks for that this provider cannot do; names the field."""

    field: str
    message: str


@dataclass(frozen=True)
class RouteKind:
    """A kind of object a provider manages (for cleanup, RBAC and discovery)."""

    group: str
    version: str
    plural: str
    kind: str


def route_object(kind: RouteKind, intent: RouteIntent, spec: dict[str, Any]) -> dict[str, Any]:
    """A route object named after the ModelDeployment, in its namespace, owned by it."""
    return {
        "apiVersion": f"{kind.group}/{kind.version}",
        "kind": kind.kind,
        "metadata": {
            "name": intent.name,
            "namespace": intent.namespace,
            "labels": dict(intent.labels),
            "ownerReferences": [dict(intent.owner)],
        },
        "spec": spec,
    }


class TrafficProvider(Protocol):
    name: str
    kinds: tuple[RouteKind, ...]

    def check(self, intent: RouteIntent, traffic: Traffic | None) -> list[Problem]:
        """What of the intent this provider cannot express (empty when all is fine)."""
        ...

    def render(self, intent: RouteIntent, traffic: Traffic | None) -> list[dict[str, Any]]:
        """The route objects that express the intent (none for the `none` provider)."""
        ...
