"""ModelDeployment.status — what the operator writes and users read.

Everything a decision depends on lives here, never in process memory: a new operator
process continues from status alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from headway.api.base import ApiModel
from headway.api.spec import Autoscaling, ModelSpec

HISTORY_LIMIT = 20


class Phase(StrEnum):
    """The one phase of a ModelDeployment (see docs/phases.md for the transitions)."""

    PENDING = "Pending"  # accepted, first version not available yet
    PROGRESSING = "Progressing"  # a candidate is going through the rollout steps
    PAUSED = "Paused"  # spec.paused, or a manual gate waiting for a person
    AWAITING_APPROVAL = "AwaitingApproval"  # spec.governance: the rollout waits for approvals (ModelApprovals)
    PROMOTING = "Promoting"  # the stable workload is moving to the candidate's version
    SUCCEEDED = "Succeeded"  # steady: one version, available, serving all traffic
    ROLLED_BACK = "RolledBack"  # the desired version was rolled back; stable serves
    DEGRADED = "Degraded"  # something is unavailable or invalid; what serves keeps serving
    FAILED = "Failed"  # nothing can serve (e.g. the first version never became available)


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SLOS_MET = "SLOsMet"
    SPEC_SUPPORTED = "SpecSupported"
    WITHIN_BUDGET = "WithinBudget"
    SCALER_AVAILABLE = "ScalerAvailable"
    DATA_DRIFT = "DataDrift"
    DEPLOYMENT_COMPLETE = "DeploymentComplete"


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: str
    """Condition type: Ready, Progressing, Degraded, SLOsMet, SpecSupported."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str
    """One CamelCase word for machines."""
    message: str = ""
    """Human-readable detail."""
    last_transition_time: str
    """When status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """metadata.generation this condition was computed from."""


class VariantStatus(ApiModel):
    """One running version of the model."""

    name: str
    """Variant name: stable, candidate, or an experiment variant."""
    bento: str
    """BentoML tag."""
    image: str
    """Container image."""
    revision: str
    """Revision derived from the model spec (the headway.dev/revision label)."""
    deployment: str | None = None
    """Name of its Deployment."""
    replicas: int = 0
    """Desired replicas."""
    ready_replicas: int = 0
    """Replicas available to serve."""
    available: bool = False
    """The Deployment reports Available and is up to date."""
    weight: int = 0
    """Share of live traffic, percent."""


class TrafficStatus(ApiModel):
    """The traffic split currently applied."""

    stable_weight: int = 100
    """Percent of live traffic to stable."""
    candidate_weight: int = 0
    """Percent of live traffic to the candidate."""
    mirror_percent: int = 0
    """Percent of traffic mirrored: to the candidate in a shadow step, to the previous version during a bake."""
    split: str = ""
    """Every variant's share in one line, for kubectl get: `stable=90 candidate=10`, `control=50 treatment=50`,
    `stable=100 candidate=0 (mirror 100% to candidate)`."""


class RolloutStatus(ApiModel):
    """Where the rollout of a candidate stands: everything a new operator process resumes from."""

    revision: str
    """Revision of the candidate being rolled out (spec.model's)."""
    bento: str
    """Bento of the candidate."""
    step: int = 0
    """Index of the current step in spec.rollout.steps."""
    step_started_at: str | None = None
    """When the current step's traffic was applied; unset while the candidate is getting ready for it."""
    paused_at: str | None = None
    """When the rollout was paused (spec.paused or the headway.dev/paused annotation)."""
    promoting: bool = False
    """The stable workload is moving to the candidate's model."""
    hold_reason: str | None = None
    """Why the rollout holds with all traffic on stable (e.g. CandidateUnavailable)."""
    started_at: str | None = None
    """When this candidate's rollout began."""


class RolledBackStatus(ApiModel):
    """The desired revision that was rolled back; not retried until spec.model changes or a retry."""

    revision: str
    """Revision rolled back."""
    bento: str
    """Bento rolled back."""
    reason: str
    """Why: Aborted, FailedAnalysis, CandidateUnavailable, ..."""
    message: str = ""
    """Details."""
    at: str
    """When (RFC 3339)."""


class DrainingStatus(ApiModel):
    """An experiment variant removed from the spec: weight 0 first, deleted after the drain."""

    variant: str
    """Variant name."""
    since: str
    """When its weight went to 0."""


class SloVerdict(ApiModel):
    """One SLO's verdict at the last measurement, with what was measured."""

    slo: str
    """errorRate, latency-p<N>, or the query SLO's name."""
    variant: str = "candidate"
    """Variant judged."""
    result: Literal["Pass", "Fail", "Inconclusive"]
    """Pass: shown to meet the SLO; Fail: shown to breach it or be worse than stable; else Inconclusive."""
    value: float | None = None
    """Measured value (error rate, share of slow requests, or the query's value)."""
    threshold: float | None = None
    """The SLO's bound, in the same unit."""
    samples: int = 0
    """Requests in the window."""
    baseline_value: float | None = None
    """The baseline's value over the same window, when compared (stable's; during a bake the previous version's)."""
    statistic: float | None = None
    """Test statistic (e-value) where a test decided."""
    p_value: float | None = None
    """Anytime-valid p-value where a test decided."""
    ci_low: float | None = None
    """Lower confidence bound of value (valid at every look)."""
    ci_high: float | None = None
    """Upper confidence bound of value."""
    reason: str = ""
    """The verdict in words."""
    dispersion: float | None = None
    """With per-pod slices: the overdispersion of the counts across pods and intervals (1: like independent
    requests; the met test counts samples / dispersion requests)."""
    baseline_recent: float | None = None
    """The baseline's rate over its most recent intervals (at least 4 and minRequests requests), when measured:
    what tells a shared incident is over."""
    breach_unattributed: bool = False
    """The breach is shown but the baseline is not shown within the SLO (its confidence bounds reach above the
    max): Inconclusive, not the candidate's yet; during a bake it is reported (BakeBreach), not rolled back."""


class CarriedEvidence(ApiModel):
    """One SLO's Fail test over the windows of a rollout (docs/verdicts.md, "The false-rollback budget")."""

    slo: str
    """errorRate, latency-p<N>, the query SLO's name, or traffic."""
    test: Literal["breach", "relative"]
    """breach: the SLO is exceeded; relative: worse than the baseline beyond the margin."""
    null: float
    """What was bet against: the allowed share (breach) or the margin (relative). Evidence against another
    null (the SLO changed) is not used."""
    log_wealth: list[float] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Natural log of the wealth per bet fraction (0.05 ... 0.95), every chain of bets of the rollout summed
    with its prior weight; the test's e-value is the mean of exp(logWealth)."""


class IncidentStatus(ApiModel):
    """A breach the baseline shared in the current window (the shared-incident rule fired)."""

    slo: str
    """The SLO."""
    seen_at: str
    """When the rule first fired in this window."""
    value: float | None = None
    """The judged variant's rate then."""
    baseline_value: float | None = None
    """The baseline's rate over the window then."""
    baseline_recent: float | None = None
    """The baseline's rate over its recent intervals then."""


class AnalysisStatus(ApiModel):
    """The last SLO analysis: its window, its verdicts, and the counters that gate and roll back."""

    revision: str
    """Revision judged."""
    purpose: Literal["step", "bake", "experiment"] = "step"
    """A rollout step, the bake time after promotion, or an experiment."""
    window_start: str
    """Start of the window the counts cover (the step's start, or the promotion)."""
    last_run: str
    """When it was last measured."""
    runs: int = 0
    """Measurements in this window."""
    result: Literal["Pass", "Fail", "Inconclusive"]
    """Overall: any Fail -> Fail, all Pass -> Pass, else Inconclusive."""
    consecutive_failures: int = 0
    """Failed measurements in a row; a Pass or an Inconclusive ends the run (failureLimit in a row rolls back)."""
    consecutive_inconclusive: int = 0
    """Inconclusive measurements in a row; a Pass or a Fail ends the run (inconclusiveLimit applies onInconclusive)."""
    verdicts: list[SloVerdict] = Field(default_factory=list)
    """Per SLO (and per variant for experiments)."""
    error: str | None = None
    """Why metrics could not be read, when they could not."""
    rollout: str | None = None
    """When the rollout these windows belong to began (rollout.startedAt); the bake after its promotion
    continues it. Evidence is carried only between windows of one rollout."""
    window_opened: str | None = None
    """Start of the step's or the bake's window; windowStart is later after a restart (unset: the same)."""
    windows: int = 1
    """Windows of this rollout so far, this one included (steps, bake, restarts): window j starts a chain of
    bets with prior weight 1/((j+1)(j+2))."""
    restarts: int = 0
    """Restarts of this step's or bake's window after a shared incident (at most 3; each spends some of the
    met test's alpha)."""
    carried: list[CarriedEvidence] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The Fail tests' evidence carried into this window from the rollout's earlier windows (fixed for the
    window: a window measured again never counts it twice)."""
    evidence: list[CarriedEvidence] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The Fail tests' evidence after the last look (carried plus this window): what the next window of the
    rollout carries."""
    incidents: list[IncidentStatus] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Breaches shared with the baseline in this window: their breach evidence cannot fail, and is not carried;
    the window restarts once the baseline is back within the SLO."""


class ExperimentDecision(ApiModel):
    """The significance test between the variants of an experiment (spec.experiment.decide)."""

    revision: str
    """Fingerprint of the arms decided on (a new model for any arm starts over)."""
    metric: str
    """The metric compared."""
    result: Literal["Winner", "NoDifference", "Inconclusive"]
    """Winner: one variant is significantly better; NoDifference; Inconclusive: not enough samples yet."""
    winner: str | None = None
    """The winning variant."""
    p_value: float | None = None
    """p-value of the test."""
    statistic: float | None = None
    """Test statistic."""
    test: str = ""
    """Which test decided."""
    samples: dict[str, int] = Field(default_factory=dict)
    """Samples per variant."""
    values: dict[str, float | None] = Field(default_factory=dict)
    """The metric per variant."""
    reason: str = ""
    """The decision in words."""
    decided_at: str | None = None
    """When the decision was made (set once)."""
    promoted: bool = False
    """All traffic went to the winner (decide.promoteWinner)."""


class BakeStatus(ApiModel):
    """The watch after a promotion: the previous version stays available until it ends, as the baseline."""

    revision: str
    """Promoted revision being baked."""
    bento: str
    """Promoted bento."""
    since: str
    """When the promotion completed."""
    until: str
    """When the bake time ends."""
    rollout: str | None = None
    """When the rollout the bake follows began (status.rollout.startedAt): the bake continues that rollout's
    analysis, and only that one's (a retried version's bake starts afresh)."""
    baseline: Literal["mirror", "weight", "none"] = "none"
    """How the previous version is fed to be compared with (spec.rollout.bakeBaseline, resolved for the provider):
    mirrored requests, a live weight, or none (the new stable is judged alone)."""
    baseline_percent: int = 0
    """The previous version's share: percent of requests mirrored to it, or of live traffic it serves."""
    baseline_since: str | None = None
    """When the previous version got its share (unset while it gets ready for it, and with no baseline): the
    bake's comparison window starts here."""
    breach_reported_at: str | None = None
    """When a breach that did not restore the previous version was reported (BakeBreach); unset once the analysis
    no longer asks for a rollback."""


class DeferredControl(ApiModel):
    """A control annotation that waits for the rollout it was given for (e.g. promote before the candidate is ready)."""

    control: str
    """promote, promote-step or abort."""
    value: str
    """The annotation's value when it was first seen."""
    revision: str
    """The candidate revision it was given for: it never acts on another one."""
    bento: str = ""
    """That candidate's bento tag."""
    since: str
    """When it was first seen."""


class ProblemStatus(ApiModel):
    """A problem with the spec that the schema could not catch."""

    field: str
    """Path of the offending field, e.g. spec.resources.requests.cpu."""
    message: str
    """What is wrong."""


class HistoryEntry(ApiModel):
    """An audit record: why a version got or lost traffic at a time."""

    time: str
    """When (RFC 3339)."""
    event: str
    """What happened: Deployed, Updated, StepStarted, Promoted, RolledBack, Aborted, SpecRejected, ..."""
    revision: str | None = None
    """Revision concerned."""
    bento: str | None = None
    """Bento concerned."""
    message: str = ""
    """Why, in words."""
    evidence: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """What was measured when deciding."""


NOTIFICATION_DELIVERIES = 100  # 20 history entries x at most 5 sinks (docs/notifications.md)


class NotificationDelivery(ApiModel):
    """A notification of a history entry to one sink that the operator is done with: never sent again."""

    key: str = Field(max_length=64)
    """Its idempotency key, the same on every attempt and resend (a webhook's Idempotency-Key header)."""
    sink: str = Field(max_length=63)
    """The sink, by its name in the operator's notification settings."""
    event: str = Field(max_length=64)
    """The history entry's event (RolloutStarted, StepCompleted, Promoted, RolledBack, ...)."""
    time: str = Field(max_length=32)
    """The history entry's time."""
    revision: str | None = Field(default=None, max_length=64)
    """The revision the entry is about."""
    result: Literal["Delivered", "Failed", "Expired"]
    """Delivered: the receiver accepted it (2xx); Failed: it refused it for good (a 4xx other than 408/429, a bad
    URL); Expired: still failing when the entry grew older than the notification max age."""
    at: str = Field(max_length=32)
    """When it was delivered or given up."""
    attempts: int = 1
    """Requests sent (retries included)."""
    message: str = Field(default="", max_length=512)
    """Why it failed (the last answer or error)."""


class NotificationStatus(ApiModel):
    """What the operator notified about this ModelDeployment (docs/notifications.md)."""

    deliveries: list[NotificationDelivery] = Field(default_factory=list, max_length=NOTIFICATION_DELIVERIES,
                                                   json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Notifications done with, oldest first; an entry older than the max age is dropped (it is never sent again)."""
    problems: list[ProblemStatus] = Field(default_factory=list, max_length=8, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Sinks the headway.dev/notify annotation or label names that cannot be used, naming the annotation or label."""


class VariantCost(ApiModel):
    """What one variant costs."""

    name: str
    """stable, candidate, previous or an experiment variant."""
    replicas: int
    """Replicas running now (from its Deployment)."""
    hourly: float
    """Per hour at the replicas running now."""
    hourly_at_max: float
    """Per hour at the most replicas it may scale to."""
    per_thousand_predictions: float | None = None
    """Per 1,000 predictions it served over the last analysis window (when measured)."""


class CostStatus(ApiModel):
    """Cost, from the operator's price table and each variant's resources and replicas."""

    currency: str
    """Currency of the price table."""
    hourly: float
    """Per hour now, all variants."""
    hourly_at_max: float
    """Per hour with every variant at its most replicas (maxReplicas, or the budget's cap)."""
    monthly_projected: float
    """Per month (730 h) at the current hourly cost."""
    monthly_at_max: float
    """Per month (730 h) at maxReplicas: what the budget is checked against."""
    per_thousand_predictions: float | None = None
    """Per 1,000 predictions served over the last analysis window (when measured)."""
    monthly_budget: float | None = None
    """spec.cost.monthlyBudget."""
    over_budget_by: float | None = None
    """How much monthlyAtMax exceeds the budget (absent when within it)."""
    capped_max_replicas: int | None = None
    """With spec.cost.enforce: the maxReplicas per variant that fits the budget (never below minReplicas)."""
    variants: list[VariantCost] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Per variant."""


class DriftBin(ApiModel):
    """One bin of a drift test: its share of the observations against the reference's (or the stable's)."""

    bin: str
    """The bin, as a reader understands it: "[0.5, 1.2)", a category, "other" or "missing"."""
    observed: float
    """Share of the observed values (the candidate's, when comparing versions) in this bin."""
    expected: float
    """Share in the reference profile (the stable's, when comparing versions)."""


class FeatureDrift(ApiModel):
    """The data-drift test of one feature (or of the predictions) over the last window."""

    feature: str
    """The feature's name, or "prediction" for the model's output."""
    result: Literal["Drifted", "NoDrift", "Insufficient"]
    """Drifted: the test rejects (Holm-corrected) and the PSI reaches minEffect; Insufficient: too few samples."""
    samples: float
    """Observations in the window."""
    reference_samples: int
    """Observations the reference profile was built from."""
    statistic: float | None = None
    """G statistic of homogeneity with the reference, divided by the dispersion."""
    dof: int | None = None
    """Its degrees of freedom (bins compared - 1)."""
    p_value: float | None = None
    """p-value of the statistic (an F test on the dispersion's degrees of freedom; chi-square with one slice)."""
    adjusted_p_value: float | None = None
    """The p-value after Holm's correction across the features tested."""
    dispersion: float | None = None
    """How much burstier than independent draws the traffic's bins were between slices of the window (>= 1)."""
    psi: float | None = None
    """Population stability index against the reference."""
    psi_critical: float | None = None
    """The PSI that chance alone reaches with probability alpha at these sample sizes."""
    top_bins: list[DriftBin] = Field(default_factory=list, max_length=3, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The bins that moved most."""


class PredictionComparisonStatus(ApiModel):
    """The candidate's predictions against the stable's on the same traffic (spec.monitoring.compare)."""

    revision: str
    """The candidate revision compared."""
    result: Literal["Pass", "Fail", "Inconclusive"]
    """Pass: shown to differ by less than maxDifference; Fail: shown to differ by more; else Inconclusive."""
    message: str
    """The verdict in words, with its figures."""
    since: str
    """Start of the compared window: when the current shadow or canary step began."""
    until: str | None = None
    """End of the compared window (the last look)."""
    look: int
    """Comparisons made so far in this candidate's rollout, over its steps (the test's level is spent over them)."""
    passed: bool = False
    """Shown to answer like stable in this rollout (a Pass at some look): later steps need no new Pass, though a
    shown difference still fails them."""
    candidate_samples: float
    """The candidate's predictions in the window."""
    stable_samples: float
    """The stable's predictions in the window."""
    difference: float | None = None
    """Total variation distance between the two prediction distributions (0: the same; 1: disjoint)."""
    difference_upper: float | None = None
    """Upper confidence bound of the difference."""
    max_difference: float
    """spec.monitoring.compare.maxDifference."""
    p_value: float | None = None
    """p-value of the two-sample test (dispersion-deflated G statistic)."""
    alpha: float | None = None
    """The level this look may spend (alpha x 6 / (pi^2 look^2))."""
    dispersion: float | None = None
    """Burstiness of the two streams between slices (>= 1)."""
    top_bins: list[DriftBin] = Field(default_factory=list, max_length=3, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The bins whose shares differ most."""
    agreement: float | None = None
    """Share of the requests both versions answered whose predictions fall in the same bin (for a classifier: the same
    class), from the request ids both recorded (a shadow step mirroring all requests; the message says why else not)."""
    agreement_low: float | None = None
    """Lower bound of the agreement's confidence interval (level 1 - spec.monitoring.alpha)."""
    agreement_high: float | None = None
    """Upper bound of that interval."""
    agreement_samples: float | None = None
    """Requests both versions answered in the window (estimated from the recorders' sketches)."""


class MonitoringStatus(ApiModel):
    """The last data-drift check of the stable version, and the candidate's prediction comparison."""

    checked_at: str | None = None
    """When the stable's drift was last tested."""
    revision: str | None = None
    """The stable revision whose inputs were tested."""
    window: str | None = None
    """The window tested (spec.monitoring.window)."""
    features: list[FeatureDrift] = Field(default_factory=list, max_length=65, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Per feature (and the prediction), with the evidence."""
    drifted: list[str] = Field(default_factory=list, max_length=65)
    """The features that drifted in the last check that could be made."""
    error: str | None = None
    """Why the last check could not be made (profile missing or invalid, Prometheus unreachable, ...)."""
    missing_features: list[str] = Field(default_factory=list, max_length=64)
    """spec.monitoring.features the profile does not have (not watched)."""
    prediction: PredictionComparisonStatus | None = None
    """The candidate's answers against the stable's (spec.monitoring.compare), while a rollout compares them."""


class RequiredApprovalStatus(ApiModel):
    """One role's approvals the policy requires, at a stage."""

    role: str
    """The governance role."""
    count: int
    """Distinct approvers needed."""
    stage: str
    """BeforeFirstCanary or BeforePromotion."""


class ApprovalRecord(ApiModel):
    """A ModelApproval that counted (or the rejection that stopped the rollout)."""

    name: str
    """The ModelApproval's name."""
    approver: str
    """Who, as the API server authenticated them."""
    role: str
    """The role they signed for."""
    decision: Literal["approve", "reject"]
    """approve or reject."""
    comment: str = ""
    """Their comment."""
    at: str | None = None
    """When the ModelApproval was created."""
    stage: str | None = None
    """The stage it was counted for."""


class ApprovalNeed(ApiModel):
    """A role whose approvals are still missing."""

    role: str
    """The governance role."""
    missing: int
    """How many more distinct approvers of this role are needed."""


class GovernanceStatus(ApiModel):
    """spec.governance applied to the candidate: the policy, the evidence shown, the approvals counted."""

    risk_tier: str
    """spec.governance.riskTier."""
    policy: list[RequiredApprovalStatus] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The approvals required (spec.governance.requiredApprovals, or the tier's defaults)."""
    revision: str | None = None
    """The candidate revision approvals are counted for (a new revision needs new approvals)."""
    rollout: str | None = None
    """When the rollout of that revision began (status.rollout.startedAt): a new rollout of the same revision (a
    retry, or the revision coming back) starts with no stage approved."""
    stage: str | None = None
    """The stage the rollout waits at (or last waited at): BeforeFirstCanary or BeforePromotion."""
    since: str | None = None
    """When the rollout reached that stage."""
    evidence_digest: str | None = None
    """SHA-256 of ``evidence``: an approval counts only with this digest (ModelApproval spec.evidenceDigest)."""
    evidence: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """What the approvers are shown, frozen when the stage was reached: the candidate, the step, the analysis."""
    waiting_for: list[ApprovalNeed] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The roles still missing at this stage (empty: nothing awaited)."""
    approvals: list[ApprovalRecord] = Field(default_factory=list, max_length=40, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The approvals counted for this revision, over its stages."""
    approved_stages: list[str] = Field(default_factory=list, max_length=2)
    """The stages this revision has passed."""
    rejected: ApprovalRecord | None = None
    """The rejection that aborted this revision's rollout."""


class SloHealth(ApiModel):
    """One SLO of the stable version over the last health window."""

    slo: str
    """The SLO's name (errorRate, latency, or a query SLO's name)."""
    present: bool
    """Its series exist in Prometheus over the window (the metrics flow)."""
    result: Literal["Pass", "Fail", "Inconclusive"]
    """The SLO test on the window alone: Fail means shown breached."""
    value: float | None = None
    """Its value over the window."""
    threshold: float | None = None
    """Its bound, as the analysis states it (an error or slow-request share, or the query's bound)."""
    samples: int = 0
    """Requests (or events) in the window."""


class HealthStatus(ApiModel):
    """The stable version's SLOs measured in steady state (nothing rolling out): what DeploymentComplete reads."""

    revision: str
    """The stable revision measured."""
    window_start: str
    """Start of the window measured: 5 analysis intervals, measured once when they have passed."""
    checked_at: str
    """When it was measured."""
    slos: list[SloHealth] = Field(default_factory=list, max_length=64, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Per SLO."""
    missing: list[str] = Field(default_factory=list, max_length=64)
    """The SLOs whose series are absent over the window: metrics are not flowing."""
    error: str | None = None
    """Why it could not be measured (Prometheus unreachable, ...)."""


class VersionSpec(ModelSpec):
    """A version as status records it: the model, and the autoscaling it runs with.

    The scaler's spec is part of the version: a change to ``spec.autoscaling`` rolls out like
    a model change (the candidate runs the new scaler, stable keeps its own until promotion).
    Without autoscaling a version is exactly its model (same fields, same revision)."""

    autoscaling: Autoscaling | None = None
    """spec.autoscaling when this version was deployed (absent: fixed replicas)."""


class ModelDeploymentStatus(ApiModel):
    """The observed state of the model in production."""

    observed_generation: int | None = None
    """metadata.generation last acted upon."""
    phase: Phase | None = None
    """Pending, Progressing, Paused, Promoting, Succeeded, RolledBack, Degraded or Failed."""
    stable: VariantStatus | None = None
    """The version serving production traffic."""
    candidate: VariantStatus | None = None
    """The version being rolled out, if any."""
    traffic: TrafficStatus | None = None
    """The applied traffic split."""
    stable_model: VersionSpec | None = None
    """The full model spec and autoscaling of the stable version (spec may already name a candidate)."""
    previous_model: VersionSpec | None = None
    """The version stable ran before the last promotion (restored by a rollback after promotion)."""
    rollout: RolloutStatus | None = None
    """The rollout in progress, if any."""
    rolled_back: RolledBackStatus | None = None
    """The desired revision that was rolled back or aborted, if spec.model still names it."""
    analysis: AnalysisStatus | None = None
    """The last SLO analysis and its evidence."""
    bake: BakeStatus | None = None
    """The bake after the last promotion, while it lasts."""
    experiment_decision: ExperimentDecision | None = None
    """The experiment's significance test, once decided (or the latest attempt)."""
    suspended_variants: list[str] = Field(default_factory=list)
    """Experiment variants (name@revision) rolled back by the analysis: weight 0 until their model changes."""
    variants: list[VariantStatus] = Field(default_factory=list)
    """Experiment variants (A/B/n), with their weights and readiness."""
    draining: list[DrainingStatus] = Field(default_factory=list)
    """Experiment variants being drained before deletion."""
    controls: dict[str, str] = Field(default_factory=dict)
    """The last handled value of each control annotation (headway.dev/promote, ...): acted upon or ignored."""
    deferred_controls: list[DeferredControl] = Field(default_factory=list)
    """Controls waiting for the rollout they were given for (bound to its candidate revision)."""
    ready: str | None = None
    """Ready replicas of stable over desired, e.g. 3/3 (for kubectl get)."""
    cost: CostStatus | None = None
    """Cost now, at maxReplicas and per prediction, against the budget (when the operator has a price table)."""
    monitoring: MonitoringStatus | None = None
    """Data drift of the stable version and the candidate's prediction comparison (spec.monitoring)."""
    governance: GovernanceStatus | None = None
    """spec.governance: the approval policy, the evidence digest approvers sign, who is still needed."""
    health: HealthStatus | None = None
    """The stable's SLOs in steady state (spec.analysis), measured once per window of 5 analysis intervals: DeploymentComplete reads it."""
    conditions: list[Condition] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )
    """Ready, Progressing, Degraded, SLOsMet, SpecSupported, WithinBudget, ScalerAvailable, DataDrift, DeploymentComplete."""
    problems: list[ProblemStatus] = Field(default_factory=list)
    """Problems with the spec, each naming its field; empty when the spec is valid."""
    ignored_fields: list[str] = Field(default_factory=list)
    """Spec fields this operator version does not act on yet."""
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    """The newest decisions, oldest first (bounded)."""
    notifications: NotificationStatus | None = None
    """Notifications of history entries sent to the sinks the headway.dev/notify annotation or label selects."""
