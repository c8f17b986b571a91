"""The one small interface every traffic provider implements, and the checks they share.

The planner decides *what* traffic should do (a :class:`TrafficPlan`: weights per variant,
a mirror, pins); a provider only says how its data plane expresses that (route objects),
and which plans it cannot express. It renders from the planning types directly, plus the
Service (name and port) of each variant. What a provider can do is declared once, in
:mod:`headway.planning.capabilities`. Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from headway.api.spec import Traffic
from headway.planning.capabilities import Capabilities, providers_that
from headway.planning.naming import Owner
from headway.planning.traffic_plan import TrafficPlan
from headway.planning.validation import Problem

__all__ = ["MIRROR_FIELD", "PINS_FIELD", "SPLIT_FIELD", "Problem", "ServicePort", "Services", "TrafficProvider",
           "capability_problems", "check_plan", "refuse", "route_object"]

# Where problems point. Weights, services and ports are produced by the planner (the
# user's weights are already validated by the CRD), so a bad one is Headway's bug and
# is reported against the applied split in status.
SPLIT_FIELD = "status.traffic"
MIRROR_FIELD = "spec.rollout.steps"
PINS_FIELD = "spec.experiment.match"

# RFC 9110 token (header and cookie names); RFC 6265 cookie-octet (cookie values).
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7E]([\x20-\x7E\t]*[\x21-\x7E])?$")
# A Service name is a DNS-1035 label.
_SERVICE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


class ServicePort(NamedTuple):
    """The Service of a variant, which route objects send its share of traffic to."""

    name: str
    port: int


Services = Mapping[str, ServicePort]  # by variant


class TrafficProvider(Protocol):
    name: str
    capabilities: Capabilities

    def check(self, plan: TrafficPlan, services: Services, traffic: Traffic | None) -> list[Problem]:
        """What of the plan this provider cannot express (empty when all is fine)."""
        ...

    def render(self, owner: Owner, plan: TrafficPlan, services: Services, labels: dict[str, str],
               traffic: Traffic | None) -> list[dict[str, Any]]:
        """The route objects that express the plan (none for the `none` provider); raises on a plan check() refuses."""
        ...


def route_object(api_version: str, kind: str, owner: Owner, labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """A route object named after the ModelDeployment, in its namespace, owned by it."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": dict(labels),
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }


def refuse(problems: list[Problem]) -> None:
    """Raise on a plan a provider's check() refused: render() never renders half a route."""
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))


def capability_problems(caps: Capabilities, plan: TrafficPlan) -> list[Problem]:
    """What the plan asks of a provider that its capabilities (the table) rule out."""
    problems: list[Problem] = []
    if plan.mirror is not None and not caps.mirror:
        can = providers_that(lambda c: c.mirror)
        problems.append(Problem(MIRROR_FIELD, f"shadow needs a traffic provider that can mirror ({can}); provider {caps.provider} cannot"))
    if any(pin.kind not in caps.pins for pin in plan.pins):
        can = providers_that(lambda c: bool(c.pins))
        problems.append(Problem(PINS_FIELD, f"header and cookie matches need a traffic provider that can route by request ({can}); provider {caps.provider} cannot"))
    return problems


def check_plan(plan: TrafficPlan, services: Services) -> list[Problem]:
    """Whether the plan is consistent in itself, whatever the provider.

    Weights in 0..100 summing to 100 (so all-zero is invalid), every variant with a Service
    of its own and a valid port; a mirror naming a variant that is a backend with weight 0
    (mirroring a variant that also gets live traffic would send it duplicates); pins
    naming backends, with header/cookie names and values a proxy can match.
    """
    return _split_problems(plan, services) + _mirror_problems(plan) + _pin_problems(plan)


def _split_problems(plan: TrafficPlan, services: Services) -> list[Problem]:
    problems: list[Problem] = []
    if not plan.weights:
        problems.append(Problem(SPLIT_FIELD, "the traffic split has no backends"))
    names = [services[v].name for v in plan.weights if v in services]
    if len(set(names)) != len(names):
        problems.append(Problem(SPLIT_FIELD, "two variants of the traffic split share a Service"))
    for variant, weight in plan.weights.items():
        if not 0 <= weight <= 100:
            problems.append(Problem(SPLIT_FIELD, f"weight of {variant} is {weight}, not in 0..100"))
        service = services.get(variant)
        if service is None:
            problems.append(Problem(SPLIT_FIELD, f"{variant} has no Service"))
            continue
        if not _SERVICE.match(service.name):
            problems.append(Problem(SPLIT_FIELD, f"Service {service.name!r} of {variant} is not a DNS-1035 label"))
        if not 1 <= service.port <= 65535:
            problems.append(Problem(SPLIT_FIELD, f"port {service.port} of {variant} is not in 1..65535"))
    total = sum(plan.weights.values())
    if plan.weights and total != 100:
        problems.append(Problem(SPLIT_FIELD, f"weights sum to {total}, not 100"))
    return problems


def _mirror_problems(plan: TrafficPlan) -> list[Problem]:
    if plan.mirror is None:
        return []
    variant, percent = plan.mirror
    problems: list[Problem] = []
    if not 1 <= percent <= 100:
        problems.append(Problem(MIRROR_FIELD, f"mirror percent is {percent}, not in 1..100"))
    weight = plan.weights.get(variant)
    if weight is None:
        problems.append(Problem(MIRROR_FIELD, f"mirror names {variant!r}, which is not a variant of the traffic split"))
    elif weight > 0:
        problems.append(Problem(MIRROR_FIELD, f"{variant} gets {weight}% of live traffic and would also receive copies of it: mirror only variants with weight 0"))
    return problems


def _pin_problems(plan: TrafficPlan) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str], str] = {}
    for i, pin in enumerate(plan.pins):
        where = f"{PINS_FIELD}[{i}]"
        if pin.variant not in plan.weights:
            problems.append(Problem(where, f"pins to {pin.variant!r}, which is not a variant of the traffic split"))
        key = (pin.kind, pin.name.lower() if pin.kind == "header" else pin.name, pin.value)
        if key in seen:
            problems.append(Problem(where, f"the same {pin.kind} match already pins to {seen[key]}; this one never applies"))
        seen.setdefault(key, pin.variant)
        if not _TOKEN.match(pin.name):
            problems.append(Problem(where, f"{pin.kind} name {pin.name!r} is not an HTTP token"))
        if pin.kind == "cookie" and not _COOKIE_VALUE.match(pin.value):
            problems.append(Problem(where, f"cookie value {pin.value!r} must be non-empty and free of spaces, quotes, commas, semicolons and backslashes"))
        if pin.kind == "header" and not _HEADER_VALUE.match(pin.value):
            problems.append(Problem(where, f"header value {pin.value!r} must be non-empty printable ASCII without surrounding spaces"))
    return problems
