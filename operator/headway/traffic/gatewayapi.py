"""Provider ``gatewayApi``: one HTTPRoute (gateway.networking.k8s.io/v1) per ModelDeployment.

The route is named after the ModelDeployment, lives in its namespace, attaches to
``spec.traffic.gatewayApi.parentRefs`` and serves its ``hostnames`` under a
``PathPrefix`` match on ``pathPrefix``. Its rules, in order:

1. One rule per pin, with a single backendRef to the pinned variant's Service.
   A header pin is an ``Exact`` header match. A cookie pin is a ``RegularExpression``
   match on the ``Cookie`` header (see :func:`cookie_regex`). Every pin has one header
   match more than the default rule, and Gateway API gives the rule with more header
   matches precedence. Between pins, list order decides. So the pins come first, in
   the user's order.
2. The default rule. It has weighted backendRefs to every backend, and a
   ``RequestMirror`` filter (``backendRef`` and ``percent``) when the plan mirrors.

Choices
    - **Weight-0 backends are kept, with ``weight: 0``.** By the spec such a backendRef
      gets no traffic. Keeping it means the list of backends does not change between
      steps (only the weights do), a drain is visible in the route, and a missing
      Service shows up in ``ResolvedRefs`` before it gets any traffic. The weights are
      percentages that sum to 100, which Gateway API reads as relative weights.
    - **The mirror goes on the default rule only.** A shadow percent is a share of the
      live, weighted traffic. Pinned requests are a chosen cohort; copying them would
      mix the cohorts in the shadow's metrics. Today a spec cannot ask for both, since
      pins come from an experiment and mirrors from rollout steps.
    - ``percent`` is left out at 100: a filter without it mirrors every request, and
      then the route also validates against older CRDs. ``percent`` itself needs the
      v1.3+ standard channel, or v1.2 experimental.
    - backendRefs name Services in the route's own namespace: no ReferenceGrant is
      needed. Their ``port`` is the Service port.

Limits
    - ``RegularExpression`` header matching has *Implementation-specific* support. Cookie
      pins work only where the implementation supports it (Envoy-based ones use RE2;
      others may use PCRE or POSIX: the regex uses only syntax those dialects share).
      An implementation without it should refuse the route with reason
      ``UnsupportedValue`` in its status, so cookie pins fail loudly, not silently.
    - At most 16 rules per HTTPRoute, which leaves 15 pins. At most 16 backendRefs
      (``max_pins`` and ``max_backends`` in :mod:`headway.planning.capabilities`).
    - PathPrefix matches whole path segments: ``/v1`` matches ``/v1/x`` but not ``/v1x``.
"""

from __future__ import annotations

import re
from typing import Any

from headway.api.spec import GatewayApiTraffic, Traffic
from headway.planning.capabilities import CAPABILITIES, Capabilities
from headway.planning.naming import Owner
from headway.planning.traffic_plan import PinPlan, TrafficPlan
from headway.traffic.base import (
    PINS_FIELD, SPLIT_FIELD, Problem, ServicePort, Services, capability_problems, check_plan, refuse, route_object,
)

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
FIELD = "spec.traffic.gatewayApi"

# The Gateway API's own validation of hostnames and of Exact/PathPrefix path values.
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATH = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
_PATH_FORBIDDEN = ("//", "/./", "/../", "%2f", "%2F", "#")
# Characters that are special in RE2, PCRE and POSIX ERE alike; a backslash before them
# means the literal character in all three.
_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\")


def cookie_regex(name: str, value: str) -> str:
    """A regex on the ``Cookie`` header that holds when it carries ``name=value``.

    The cookie may come first, last or among others (``a=1; name=value; b=2``). A longer
    name or value does not match (``xname=value``, ``name=value2``). The regex is
    anchored, so it means the same under full-match semantics (Envoy) and under search
    semantics. It uses only escapes, groups, ``?`` and ``*``. Quoted values
    (``name="value"``) do not match. The Istio provider uses the same regex.
    """
    literal = "".join("\\" + c if c in _REGEX_SPECIAL else c for c in f"{name}={value}")
    return f"^(.*; *)?{literal}(;.*)?$"


def _path_problems(prefix: str) -> list[Problem]:
    where = f"{FIELD}.pathPrefix"
    if not _PATH.match(prefix) or any(bad in prefix for bad in _PATH_FORBIDDEN) or prefix.endswith(("/.", "/..")):
        return [Problem(where, f"{prefix!r} is not a path Gateway API accepts (no //, /./, /../, %2f, # or trailing /. and /..)")]
    return []


class GatewayApiProvider:
    """Weighted backendRefs, a RequestMirror filter for shadow, header matches for pins."""

    name: str = "gatewayApi"
    capabilities: Capabilities = CAPABILITIES["gatewayApi"]

    def check(self, plan: TrafficPlan, services: Services, traffic: Traffic | None) -> list[Problem]:
        problems = check_plan(plan, services) + capability_problems(self.capabilities, plan)
        settings = traffic.gateway_api if traffic is not None else None
        if settings is None:
            problems.append(Problem(FIELD, "provider gatewayApi needs spec.traffic.gatewayApi (parentRefs at least)"))
        else:
            problems += _path_problems(settings.path_prefix)
            for i, host in enumerate(settings.hostnames):
                if len(host) > 253 or not _HOSTNAME.match(host):
                    problems.append(Problem(f"{FIELD}.hostnames[{i}]", f"{host!r} is not a lowercase DNS name (optionally *.-prefixed)"))
        max_pins, max_backends = self.capabilities.max_pins, self.capabilities.max_backends
        if max_pins is not None and len(plan.pins) > max_pins:
            problems.append(Problem(PINS_FIELD, f"an HTTPRoute holds {max_pins + 1} rules: at most {max_pins} matches besides the weighted rule"))
        if max_backends is not None and len(plan.weights) > max_backends:
            problems.append(Problem(SPLIT_FIELD, f"an HTTPRoute rule holds at most {max_backends} backendRefs"))
        return problems

    def render(self, owner: Owner, plan: TrafficPlan, services: Services, labels: dict[str, str],
               traffic: Traffic | None) -> list[dict[str, Any]]:
        refuse(self.check(plan, services, traffic))
        assert traffic is not None and traffic.gateway_api is not None  # by check()
        return [build_httproute(owner, plan, services, labels, traffic.gateway_api)]


def build_httproute(owner: Owner, plan: TrafficPlan, services: Services, labels: dict[str, str],
                    settings: GatewayApiTraffic) -> dict[str, Any]:
    """The HTTPRoute of a plan that passed :meth:`GatewayApiProvider.check`."""
    path = {"type": "PathPrefix", "value": settings.path_prefix}
    rules: list[dict[str, Any]] = [
        {"matches": [{"path": dict(path), "headers": [_header_match(pin)]}], "backendRefs": [_ref(services[pin.variant])]} for pin in plan.pins
    ]
    default: dict[str, Any] = {"matches": [{"path": dict(path)}]}
    if plan.mirror is not None:
        default["filters"] = [_mirror_filter(services[plan.mirror[0]], plan.mirror[1])]
    default["backendRefs"] = [{**_ref(services[variant]), "weight": weight} for variant, weight in plan.weights.items()]
    rules.append(default)

    spec: dict[str, Any] = {"parentRefs": [ref.dump() for ref in settings.parent_refs]}
    if settings.hostnames:
        spec["hostnames"] = list(settings.hostnames)
    spec["rules"] = rules
    return route_object(API_VERSION, KIND, owner, labels, spec)


def _ref(service: ServicePort) -> dict[str, Any]:
    return {"name": service.name, "port": service.port}


def _header_match(pin: PinPlan) -> dict[str, str]:
    if pin.kind == "header":
        return {"type": "Exact", "name": pin.name, "value": pin.value}
    return {"type": "RegularExpression", "name": "Cookie", "value": cookie_regex(pin.name, pin.value)}


def _mirror_filter(service: ServicePort, percent: int) -> dict[str, Any]:
    request_mirror: dict[str, Any] = {"backendRef": _ref(service)}
    if percent < 100:
        request_mirror["percent"] = percent
    return {"type": "RequestMirror", "requestMirror": request_mirror}


PROVIDER = GatewayApiProvider()
