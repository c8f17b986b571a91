"""Provider ``none``: no route object; a canary is a replica ratio, nothing more.

What it can express
    A weighted split, *approximately*, by running replicas of each variant behind the
    umbrella Service (named after the ModelDeployment, selecting every variant's pods;
    built by ``headway.rendering.workload``). The planner sizes the variants
    (``headway.planning``), since ``split`` is ``"replicas"`` in its capabilities.

What it cannot express (see :data:`headway.planning.capabilities.CAPABILITIES`)
    - Mirroring (shadow steps): there is no proxy to copy requests.
    - Header/cookie pinning (``spec.experiment.match``): kube-proxy does not look at
      requests.
    - Exact weights. With ``n`` replicas the smallest non-zero share is ``1/n``: 5% of 3
      replicas cannot be expressed (the candidate gets 1 of 3 pods, about 33%). Worse,
      kube-proxy balances *connections*, not requests, so clients holding keep-alive
      connections can see a split far from the replica ratio. Use gatewayApi or istio
      when the split matters.
"""

from __future__ import annotations

from typing import Any

from headway.api.spec import Traffic
from headway.planning.capabilities import CAPABILITIES, Capabilities
from headway.planning.naming import Owner
from headway.planning.traffic_plan import TrafficPlan
from headway.traffic.base import Problem, Services, capability_problems, check_plan


class NoneProvider:
    """Renders nothing; says which parts of a plan cannot be honoured without a proxy."""

    name: str = "none"
    capabilities: Capabilities = CAPABILITIES["none"]

    def check(self, plan: TrafficPlan, services: Services, traffic: Traffic | None) -> list[Problem]:
        return check_plan(plan, services) + capability_problems(self.capabilities, plan)

    def render(self, owner: Owner, plan: TrafficPlan, services: Services, labels: dict[str, str],
               traffic: Traffic | None) -> list[dict[str, Any]]:
        return []


PROVIDER = NoneProvider()
