"""ModelDeployment.spec — what users write (and keep in git).

Field descriptions here become the CRD's descriptions (``kubectl explain md.spec``).
Cross-field rules are CEL (``__cel__``) so the API server rejects bad manifests at apply
time; what CEL cannot say is checked by ``headway.planning.validation`` and reported in
status and Events while the running model keeps serving.

The models live in modules by topic and are re-exported here, so ``headway.api.spec``
names every one of them: ``serving`` (model, resources, autoscaling), ``strategies``
(rollout steps, experiments), ``routing`` (traffic providers), ``analysis_spec`` (SLOs)
and ``limits`` (name and hostname bounds). This module holds the top: the spec itself.
"""

from __future__ import annotations

from pydantic import Field

from headway.api.analysis_spec import Analysis, ErrorRateSlo, LatencySlo, PrometheusSource, QuerySlo, SeriesLabels, Slo
from headway.api.base import ApiModel, Rule
from headway.api.governance_spec import HIGH_TIER_MIN_BAKE_SECONDS, Governance, RequiredApproval
from headway.api.monitoring_spec import Monitoring, PredictionComparison, ProfileReference
from headway.api.limits import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX, Hostname, ObjectName
from headway.api.routing import GatewayApiTraffic, IstioTraffic, ParentReference, Traffic
from headway.api.serving import (
    BENTO_TAG_PATTERN, Autoscaling, AutoscalingMetric, CpuMetric, EnvValueFrom, EnvVar, InFlightMetric, MemoryMetric, ModelSpec,
    RequestsPerSecondMetric, Resources, ScalingBehavior, ScalingRules, SecretKeyRef,
)
from headway.api.strategies import (
    BakeBaseline, CanaryStep, Decide, Experiment, ExperimentVariant, HeaderMatch, MatchRule, PauseStep, Rollout, RolloutStep, ShadowStep,
)
from headway.api.types import LabelKey, LabelValue, parse_duration

__all__ = [
    "BENTO_TAG_PATTERN", "DNS_LABEL_MAX", "DNS_SUBDOMAIN_MAX", "Analysis", "Autoscaling", "AutoscalingMetric", "BakeBaseline", "CanaryStep",
    "Cost", "CpuMetric", "Decide", "EnvValueFrom", "EnvVar", "ErrorRateSlo", "Experiment", "ExperimentVariant",
    "GatewayApiTraffic", "Governance", "HeaderMatch", "Hostname", "InFlightMetric", "IstioTraffic", "MemoryMetric", "Monitoring", "PredictionComparison", "ProfileReference", "ScalingBehavior", "ScalingRules", "LatencySlo", "MatchRule", "ModelDeploymentSpec",
    "ModelSpec", "ObjectName", "ParentReference", "PauseStep", "PrometheusSource", "QuerySlo", "RequestsPerSecondMetric", "RequiredApproval",
    "Resources", "Rollout", "RolloutStep", "SecretKeyRef", "SeriesLabels", "ShadowStep", "Slo", "Traffic",
]


class Cost(ApiModel):
    """Cost attribution and budget."""

    __cel__ = (
        Rule(
            "!has(self.labels) || self.labels.all(k, !k.startsWith('app.kubernetes.io/') && !k.startsWith('headway.dev/'))",
            "cost labels may not use the app.kubernetes.io/ or headway.dev/ prefixes",
            ".labels",
            lambda m: not any(k.startswith(("app.kubernetes.io/", "headway.dev/")) for k in m.labels),
        ),
    )

    # team, cost-center, project, environment...: a handful. Keys and values are Kubernetes
    # label keys (317) and values (63): they are put on every child object.
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels put on every child object and pod (team, cost-center, project, ...)."""
    monthly_budget: float | None = Field(default=None, ge=0, le=1e12)
    """Monthly budget in the currency of the operator's price table (projected at maxReplicas)."""
    enforce: bool = False
    """Enforce the budget: cap maxReplicas to what fits (never below minReplicas), and hold a rollout whose
    candidate raises the cost per prediction by more than maxIncrease."""
    max_increase: float | None = Field(default=None, gt=0, le=10000)
    """Largest increase of the cost per 1,000 predictions a candidate may bring, in percent (with enforce)."""


class ModelDeploymentSpec(ApiModel):
    """The desired state of a model in production."""

    __cel__ = (
        Rule(
            "!has(self.experiment) || !has(self.rollout) || !has(self.rollout.steps) || size(self.rollout.steps) == 0",
            "experiment and rollout.steps cannot be combined: an experiment replaces the rollout",
            ".experiment",
            lambda m: m.experiment is None or m.rollout is None or not m.rollout.steps,
        ),
        Rule(
            "!has(self.autoscaling) || !has(self.replicas)",
            "set replicas or autoscaling, not both",
            ".replicas",
            lambda m: m.autoscaling is None or m.replicas is None,
        ),
        Rule(
            "!has(self.governance) || !has(self.governance.riskTier) || self.governance.riskTier != 'high' || "
            "(has(self.rollout) && has(self.rollout.steps) && self.rollout.steps.exists(s, has(s.shadow)))",
            "riskTier high needs a shadow step in rollout.steps (the candidate answers mirrored traffic before any user sees it)",
            ".governance.riskTier",
            lambda m: m.governance is None or m.governance.risk_tier != "high"
            or (m.rollout is not None and any(s.shadow is not None for s in m.rollout.steps)),
        ),
        Rule(
            "!has(self.governance) || !has(self.governance.riskTier) || self.governance.riskTier != 'high' || "
            "(has(self.rollout) && has(self.rollout.bakeTime) && duration(self.rollout.bakeTime) >= duration('1h'))",
            "riskTier high needs rollout.bakeTime of at least 1h (the new stable is watched, and can be rolled back, for an hour)",
            ".governance.riskTier",
            lambda m: m.governance is None or m.governance.risk_tier != "high"
            or (m.rollout is not None and m.rollout.bake_time is not None
                and parse_duration(m.rollout.bake_time).total_seconds() >= HIGH_TIER_MIN_BAKE_SECONDS),
        ),
        Rule(
            "!has(self.governance) || !has(self.experiment)",
            "governance gates a rollout's candidate; an experiment has none: remove one of them",
            ".governance",
            lambda m: m.governance is None or m.experiment is None,
        ),
    )

    model: ModelSpec
    """The version that should be in production; changing it starts a rollout."""
    resources: Resources | None = None
    """CPU, memory and GPUs of every model pod."""
    replicas: int | None = Field(default=None, ge=0, le=1000)
    """Fixed replica count of the stable variant (1 when neither this nor autoscaling is set)."""
    autoscaling: Autoscaling | None = None
    """Autoscaling instead of a fixed replica count."""
    rollout: Rollout | None = None
    """Steps a new version goes through."""
    traffic: Traffic | None = None
    """Traffic provider; without it there is no route object (in-cluster Service only)."""
    analysis: Analysis | None = None
    """SLOs new versions are judged against."""
    experiment: Experiment | None = None
    """A/B/n experiment."""
    cost: Cost | None = None
    """Cost labels and budget."""
    monitoring: Monitoring | None = None
    """Data drift of the inputs and predictions against a reference profile, and the candidate's answers
    compared with the stable's."""
    governance: Governance | None = None
    """Approvals by role a new version needs before its first canary step or its promotion (ModelApproval objects)."""
    paused: bool = False
    """Freeze the rollout where it is (traffic stays as it is)."""
