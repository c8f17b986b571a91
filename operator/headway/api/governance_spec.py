"""spec.governance: who must approve a new version, and when, before it gets traffic or becomes stable.

A risk tier names a default policy (``TIER_DEFAULTS``); ``requiredApprovals`` replaces it.
Approvals are ModelApproval objects (api/approval.py) whose identity the API server checks;
the operator counts them (planning/governance.py). The high tier also asks for a shadow step
and a bake time of at least an hour: rules on ModelDeploymentSpec (api/spec.py), so the API
server refuses a high-risk manifest without them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from headway.api.base import ApiModel
from headway.api.limits import DNS_LABEL_MAX

ROLE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Role = Annotated[str, Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=ROLE_PATTERN)]
Stage = Literal["BeforeFirstCanary", "BeforePromotion"]
STAGES: tuple[Stage, ...] = ("BeforeFirstCanary", "BeforePromotion")
RiskTier = Literal["low", "medium", "high"]
HIGH_TIER_MIN_BAKE_SECONDS = 3600


class RequiredApproval(ApiModel):
    """Approvals one role must give a candidate revision, and when."""

    role: Role
    """The governance role (ModelApproval spec.role; the chart maps roles to groups)."""
    count: int = Field(default=1, ge=1, le=5)
    """How many distinct approvers of this role (one person counts once, for one role)."""
    stage: Stage = "BeforePromotion"
    """BeforeFirstCanary: before the first canary step gives the candidate live traffic (after any
    shadow step; before promotion when no step has a canary weight). BeforePromotion: before the
    candidate becomes stable."""


# What a tier asks for when spec.governance.requiredApprovals is not set (docs/governance.md).
TIER_DEFAULTS: dict[str, tuple[RequiredApproval, ...]] = {
    "low": (),
    "medium": (RequiredApproval(role="ml-lead"),),
    "high": (RequiredApproval(role="ml-lead"), RequiredApproval(role="risk")),
}


class Governance(ApiModel):
    """Approvals by role before a new version gets live traffic or becomes stable."""

    risk_tier: RiskTier = "low"
    """low: no approval; medium: one ml-lead before promotion; high: one ml-lead and one risk
    approver before promotion, and the spec must have a shadow step and a bakeTime of at least 1h."""
    required_approvals: list[RequiredApproval] | None = Field(
        default=None, max_length=8,
        # A map list keyed by role and stage: the API server refuses a role listed twice for one stage
        # (a CEL rule comparing every pair would cost 2x the per-rule budget); the operator's check
        # is planning/validation.py's.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["role", "stage"]})
    """Replaces the tier's approvals (an empty list: none). One entry per role and stage."""

    def policy(self) -> tuple[RequiredApproval, ...]:
        """The approvals required: the explicit list, or the tier's defaults."""
        if self.required_approvals is not None:
            return tuple(self.required_approvals)
        return TIER_DEFAULTS[self.risk_tier]
