"""ModelApproval: one person's decision on one candidate revision of a ModelDeployment.

A ModelApproval names a ModelDeployment (same namespace), the candidate ``revision`` it decides
on, the ``evidenceDigest`` of what the approver was shown, the ``role`` the approver signs for,
the ``approver`` (their Kubernetes username) and the ``decision``. The API server vouches for the
identity: the chart's ValidatingAdmissionPolicy admits a create only when ``spec.approver`` is the
requesting user and that user is in a group the chart maps to ``spec.role``
(charts/headway/templates/approval-policy.yaml, docs/governance.md). The spec is immutable once
admitted: a CRD transition rule here, and the policy again on UPDATE.

Pure: the pydantic model and its CRD (``build_crd``); ``hack/gen_crds.py`` writes the files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

import headway
from headway.api.base import ApiModel, Rule
from headway.api.crd import build_schema, crd_envelope
from headway.api.limits import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX

KIND = "ModelApproval"
PLURAL = "modelapprovals"
SINGULAR = "modelapproval"
SHORT_NAMES = ("mda",)
CRD_NAME = f"{PLURAL}.{headway.GROUP}"

# Bounds (the API server sizes the CEL cost of ``self == oldSelf`` from them).
REVISION_LENGTH = 10  # headway.planning.naming.revision_of: sha256 hex, first 10 characters
DIGEST_LENGTH = 64  # sha256, hex
APPROVER_MAX = 512  # Kubernetes sets no limit on usernames; OIDC ones carry an issuer URL prefix
COMMENT_MAX = 1024

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
REVISION_PATTERN = rf"^[0-9a-f]{{{REVISION_LENGTH}}}$"
DIGEST_PATTERN = rf"^[0-9a-f]{{{DIGEST_LENGTH}}}$"

IMMUTABLE_MESSAGE = (
    "spec is immutable: a ModelApproval records one decision as it was admitted; "
    "to change it, create a new ModelApproval (and delete this one if it must no longer count)"
)

Decision = Literal["approve", "reject"]


class ModelApprovalSpec(ApiModel):
    """One approver's decision, for one role, on one candidate revision of a ModelDeployment.

    Immutable once admitted."""

    model_deployment: Annotated[
        str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
    ]
    """Name of the ModelDeployment decided on, in the ModelApproval's own namespace."""

    revision: Annotated[str, Field(min_length=REVISION_LENGTH, max_length=REVISION_LENGTH, pattern=REVISION_PATTERN)]
    """The candidate revision decided on: 10 lowercase hex characters, as status.candidate.revision
    shows it. A new candidate revision needs new approvals."""

    evidence_digest: Annotated[str, Field(min_length=DIGEST_LENGTH, max_length=DIGEST_LENGTH, pattern=DIGEST_PATTERN)]
    """SHA-256 (64 lowercase hex characters) of the evidence the approver was shown: the approval
    counts for that evidence only."""

    role: Annotated[str, Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN)]
    """The governance role the approver signs for (e.g. ml-lead, risk): a DNS label. The admission
    policy admits the approval only when the approver is in a group the chart maps to this role."""

    approver: Annotated[str, Field(min_length=1, max_length=APPROVER_MAX)]
    """The approver's username as Kubernetes authenticates it (kubectl auth whoami). Never
    self-declared: the admission policy admits the approval only when it is the requesting user."""

    decision: Decision
    """approve, or reject (a rejection aborts the rollout of this revision)."""

    comment: Annotated[str, Field(max_length=COMMENT_MAX)] | None = None
    """Optional: why, in the approver's words (at most 1024 characters)."""

    __cel__ = (
        # A transition rule: the API server evaluates it on updates only. The operator never sees an
        # "old" spec, so its Python side holds for any single spec.
        Rule("self == oldSelf", IMMUTABLE_MESSAGE, None, lambda _: True),
    )


class ModelApproval(ApiModel):
    """A ModelApproval object as read from the API server (metadata kept as given)."""

    api_version: str = f"{headway.GROUP}/{headway.VERSION}"
    kind: Literal["ModelApproval"] = "ModelApproval"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelApprovalSpec


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "ModelDeployment", "type": "string", "jsonPath": ".spec.modelDeployment",
     "description": "The ModelDeployment decided on."},
    {"name": "Revision", "type": "string", "jsonPath": ".spec.revision", "description": "The candidate revision decided on."},
    {"name": "Role", "type": "string", "jsonPath": ".spec.role", "description": "The role the approver signs for."},
    {"name": "Approver", "type": "string", "jsonPath": ".spec.approver", "description": "The approver's username."},
    {"name": "Decision", "type": "string", "jsonPath": ".spec.decision", "description": "approve or reject."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The ModelApproval CustomResourceDefinition manifest."""
    return crd_envelope(
        kind=KIND, plural=PLURAL, singular=SINGULAR, short_names=SHORT_NAMES, categories=["headway"],
        description=("An approver's decision on a candidate revision of a ModelDeployment, "
                     "for one governance role. Immutable; its identity is checked at admission."),
        properties={"spec": build_schema(ModelApprovalSpec)}, printer_columns=PRINTER_COLUMNS,
    )
