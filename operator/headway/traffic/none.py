"""Provider ``none``: no route object; a canary is a replica ratio, nothing more.

What it can express
    A weighted split, *approximately*, by running replicas of each variant behind the
    umbrella Service (named after the ModelDeployment, selecting every variant's pods;
    built by ``headway.rendering.workload``). :func:`replica_split` turns weights into
    replica counts.

What it cannot express
    - Mirroring (shadow steps): there is no proxy to copy requests.
    - Header/cookie pinning (``spec.experiment.match``): kube-proxy does not look at
      requests.
    - Exact weights. With ``n`` replicas the smallest non-zero share is ``1/n``: 5% of 3
      replicas cannot be expressed (the candidate gets 1 of 3 pods, about 33%). Worse,
      kube-proxy balances *connections*, not requests, so clients holding keep-alive
      connections can see a split far from the replica ratio. Use gatewayApi or istio
      when the split matters.

This module also holds :func:`check_intent`, the checks of a RouteIntent's own
consistency that every provider runs before its own: ``none`` is the provider that
expresses the least, so its check is exactly "a well-formed intent, without mirror and
pins".
"""

from __future__ import annotations

import re
from typing import Any

from headway.api.spec import Traffic
from headway.traffic.base import Problem, RouteIntent, RouteKind

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


def check_intent(intent: RouteIntent) -> list[Problem]:
    """Whether the intent is consistent in itself, whatever the provider.

    Weights in 0..100 summing to 100 (so all-zero is invalid), unique variants and
    Services, valid ports; a mirror naming a variant that is a backend with weight 0
    (mirroring a variant that also gets live traffic would send it duplicates); pins
    naming backends, with header/cookie names and values a proxy can match.
    """
    problems: list[Problem] = []
    backends = {b.variant: b for b in intent.backends}
    if not intent.backends:
        problems.append(Problem(SPLIT_FIELD, "the traffic split has no backends"))
    if len(backends) != len(intent.backends):
        problems.append(Problem(SPLIT_FIELD, "a variant appears twice in the traffic split"))
    if len({b.service for b in intent.backends}) != len(intent.backends):
        problems.append(Problem(SPLIT_FIELD, "two variants of the traffic split share a Service"))
    for b in intent.backends:
        if not 0 <= b.weight <= 100:
            problems.append(Problem(SPLIT_FIELD, f"weight of {b.variant} is {b.weight}, not in 0..100"))
        problems += _service_problems(SPLIT_FIELD, b.variant, b.service, b.port)
    total = sum(b.weight for b in intent.backends)
    if intent.backends and total != 100:
        problems.append(Problem(SPLIT_FIELD, f"weights sum to {total}, not 100"))

    if intent.mirror is not None:
        m = intent.mirror
        if not 1 <= m.percent <= 100:
            problems.append(Problem(MIRROR_FIELD, f"mirror percent is {m.percent}, not in 1..100"))
        target = backends.get(m.variant)
        if target is None:
            problems.append(Problem(MIRROR_FIELD, f"mirror names {m.variant!r}, which is not a variant of the traffic split"))
        else:
            if (target.service, target.port) != (m.service, m.port):
                problems.append(Problem(MIRROR_FIELD, f"mirror of {m.variant} targets {m.service}:{m.port}, its backend {target.service}:{target.port}"))
            if target.weight > 0:
                problems.append(
                    Problem(MIRROR_FIELD, f"{m.variant} gets {target.weight}% of live traffic and would also receive copies of it: mirror only variants with weight 0")
                )

    seen: dict[tuple[str, str, str], str] = {}
    for i, pin in enumerate(intent.pins):
        where = f"{PINS_FIELD}[{i}]"
        if pin.variant not in backends:
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


def _service_problems(field: str, variant: str, service: str, port: int) -> list[Problem]:
    problems = []
    if not _SERVICE.match(service):
        problems.append(Problem(field, f"Service {service!r} of {variant} is not a DNS-1035 label"))
    if not 1 <= port <= 65535:
        problems.append(Problem(field, f"port {port} of {variant} is not in 1..65535"))
    return problems


def replica_split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Replica counts whose ratio approximates ``weights`` (largest-remainder method).

    Every variant gets ``floor(total * weight / sum)``; the replicas left over go to the
    largest remainders (ties: larger weight, then name). A variant with weight > 0 then
    gets at least 1 replica, taken from the most over-represented variant; weight 0
    gets 0. ``total`` 0 gives all zeros. When ``total`` is smaller than the number of
    positive weights, each of those gets 1 and the sum exceeds ``total``.

    The error is up to ``1/total`` per variant and more where the minimum of 1 applies:
    ``replica_split(3, {"stable": 95, "candidate": 5})`` is 2 and 1, a 67/33 split;
    5% needs 20 replicas to be exact.
    """
    if total < 0:
        raise ValueError(f"total replicas must not be negative, got {total}")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must not be negative, got {weights}")
    weight_sum = sum(weights.values())
    if weight_sum == 0:
        raise ValueError("at least one weight must be positive")
    if total == 0:
        return {v: 0 for v in weights}
    positive = [v for v, w in weights.items() if w > 0]
    if total <= len(positive):
        return {v: (1 if weights[v] > 0 else 0) for v in weights}

    quota = {v: total * w / weight_sum for v, w in weights.items()}
    alloc = {v: int(q) for v, q in quota.items()}
    left = total - sum(alloc.values())
    by_remainder = sorted(weights, key=lambda v: (-(quota[v] - alloc[v]), -weights[v], v))
    for v in by_remainder[:left]:
        alloc[v] += 1
    for v in sorted(positive, key=lambda v: (-quota[v], v)):
        if alloc[v] == 0:
            donor = max((d for d in alloc if alloc[d] >= 2), key=lambda d: (alloc[d] - quota[d], alloc[d], d))
            alloc[donor] -= 1
            alloc[v] = 1
    return alloc


def effective_weights(split: dict[str, int]) -> dict[str, float]:
    """The share of pods, percent, each variant really gets from a replica split."""
    total = sum(split.values())
    return {v: (100.0 * n / total if total else 0.0) for v, n in split.items()}


class NoneProvider:
    """Renders nothing; says which parts of an intent cannot be honoured without a proxy."""

    name: str = "none"
    kinds: tuple[RouteKind, ...] = ()

    def check(self, intent: RouteIntent, traffic: Traffic | None) -> list[Problem]:
        problems = check_intent(intent)
        if intent.mirror is not None:
            problems.append(Problem(MIRROR_FIELD, "shadow needs a traffic provider that can mirror (gatewayApi or istio); provider none cannot"))
        if intent.pins:
            problems.append(Problem(PINS_FIELD, "header and cookie matches need a traffic provider that can route by request (gatewayApi or istio); provider none cannot"))
        return problems

    def render(self, intent: RouteIntent, traffic: Traffic | None) -> list[dict[str, Any]]:
        return []


PROVIDER = NoneProvider()
