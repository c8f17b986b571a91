"""What planning sees: one typed ``Observation``, built before planning, and how to read it.

The reconciler builds the observation once (from the object, its children and the latest
measurement) and planning never looks anywhere else: nothing discovered after planning
may rewrite the plan. Gates, analysis status and experiment decisions are not observed:
planning derives them from the measurement and the previous status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headway.api.status import ModelDeploymentStatus

if TYPE_CHECKING:
    from headway.planning.cost import Prices
    from headway.planning.governance import ObservedApproval
    from headway.planning.measure import Measurement
    from headway.planning.monitoring import MonitorResult


@dataclass(frozen=True)
class DeploymentState:
    """What a live Deployment says about its pods, read from its status."""

    exists: bool
    revision: str | None = None
    observed: bool = True  # the controller has seen the latest spec (observedGeneration >= generation)
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0  # pods ready for minReadySeconds, of any template
    current_available: int = 0  # available pods of the current template (what kubectl rollout status counts)
    available: bool = False  # the Available condition: minimum availability (replicas - maxUnavailable)
    complete: bool = False  # the rollout of the current template finished
    deadline_exceeded: bool = False
    message: str = ""


def observe_deployment(live: dict[str, Any] | None) -> DeploymentState:
    """Interpret a Deployment the way `kubectl rollout status` does."""
    if live is None:
        return DeploymentState(exists=False)
    meta, spec, status = live.get("metadata", {}), live.get("spec", {}), live.get("status") or {}
    want = spec.get("replicas", 1)
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    available_cond = conditions.get("Available", {})
    progressing = conditions.get("Progressing", {})
    observed = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    complete = (
        observed
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )
    return DeploymentState(
        exists=True,
        observed=observed,
        revision=meta.get("labels", {}).get("headway.dev/revision"),
        replicas=want,
        ready_replicas=status.get("readyReplicas", 0) or 0,
        available_replicas=status.get("availableReplicas", 0) or 0,
        # Pods of older templates stay up during a rolling update (maxUnavailable 0), and the
        # revision label is the Deployment's own: count only what runs the current template.
        current_available=(max(0, (status.get("availableReplicas", 0) or 0) - ((status.get("replicas", 0) or 0) - (status.get("updatedReplicas", 0) or 0)))
                           if observed else 0),
        available=available_cond.get("status") == "True" and (want == 0 or status.get("availableReplicas", 0) > 0),
        complete=bool(complete),
        deadline_exceeded=progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded",
        message=progressing.get("message") or available_cond.get("message") or "",
    )


def serving_pods(state: DeploymentState, revision: str, known_serving: bool) -> int:
    """Available pods running ``revision``.

    Once the controller has seen the latest spec, that is what its status says of the current
    template. Before (right after Headway patched the Deployment) the status is the previous
    one: a resize keeps the pods it counts, a new template does not — so they count only when
    the last status recorded this revision as serving (``known_serving``).
    """
    if not state.exists or state.revision != revision:
        return 0
    if state.observed:
        return state.current_available
    return state.available_replicas if known_serving else 0


def parse_status(raw: dict[str, Any] | None) -> ModelDeploymentStatus:
    """The previous status; anything unreadable is treated as absent rather than fatal."""
    try:
        return ModelDeploymentStatus.model_validate(raw or {})
    except ValueError:
        return ModelDeploymentStatus()




@dataclass(frozen=True)
class Observation:
    """Everything one plan depends on, besides ``now``."""

    raw_spec: dict[str, Any]
    generation: int | None
    annotations: dict[str, str]  # kubectl controls
    previous: ModelDeploymentStatus
    live: dict[str, DeploymentState]  # by variant
    served: frozenset[str] = field(default_factory=frozenset)  # optional kinds the cluster serves, "group/Kind"
    measurement: Measurement | None = None  # the latest metrics measurement, if any arrived
    allowed_metrics_urls: frozenset[str] | None = None  # Prometheus URLs the operator may call (None: unchecked)
    default_metrics_url: str | None = None  # the operator's own Prometheus (--prometheus-url)
    prices: Prices | None = None  # the operator's price table (None or not configured: no status.cost)
    monitoring: MonitorResult | None = None  # the latest counts for spec.monitoring, if any arrived
    approvals: tuple[ObservedApproval, ...] = ()  # this ModelDeployment's ModelApprovals, oldest first (spec.governance)


