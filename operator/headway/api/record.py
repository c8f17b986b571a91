"""RolloutRecord: the durable decision record of one rollout of a ModelDeployment.

Every decision the operator makes is first written to ``status.history`` (write-ahead, bounded to
the newest 20 entries) and posted as an Event (which the API server forgets after an hour by
default). A RolloutRecord keeps the decisions of one rollout for as long as the record exists:
the operator copies each new history entry into the record of the rollout it belongs to
(planning/records.py decides which), keeps the last N records per ModelDeployment
(``--rollout-records``), and the records go with their ModelDeployment (ownerReferences: the
garbage collector deletes them). ``headway audit md/NAME`` prints them.

Only the operator writes records, so everything is in ``spec`` (one write per change; a status
subresource would take two and protect nothing, as no user writes either part). The identity of
the rollout (ModelDeployment, revision, startedAt) is immutable: a CRD transition rule.

Pure: the pydantic model and its CRD (``build_crd``); ``hack/gen_crds.py`` writes the files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

import headway
from headway.api.base import ApiModel, Rule
from headway.api.crd import build_schema, crd_envelope
from headway.api.limits import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX

KIND = "RolloutRecord"
PLURAL = "rolloutrecords"
SINGULAR = "rolloutrecord"
SHORT_NAMES = ("rr",)
CRD_NAME = f"{PLURAL}.{headway.GROUP}"

# Bounds. The API server refuses an object over 1.5 MiB (etcd's request limit): a record holds at
# most MAX_DECISIONS decisions and about MAX_BYTES of them (planning/records.py drops the oldest but
# the first beyond either, and says how many in ``dropped``).
MAX_DECISIONS = 500
MAX_BYTES = 1024 * 1024
MAX_APPROVALS = 100
MESSAGE_MAX = 4096  # longer messages are cut (with an ellipsis): a message is words, the evidence carries the data
MAX_EVIDENCE_BYTES = 64 * 1024  # larger evidence is replaced by its size (status.history keeps it while it lasts)
TIME_MAX = 64  # RFC 3339
EVENT_MAX = DNS_LABEL_MAX  # CamelCase reasons, as Events carry them
REVISION_MAX = 64  # revisions are 10 hex characters; experiment fingerprints and older values are kept as they are
UID_MAX = 128
APPROVER_MAX = 512
COMMENT_MAX = 1024
DIGEST_MAX = 64

Outcome = Literal[
    "InProgress",  # the rollout (or the bake after its promotion) is going on
    "Promoted",  # the candidate became stable (and its bake, if any, completed)
    "RolledBack",  # the analysis (or the candidate's unavailability) sent it back before promotion
    "BakeFailed",  # promoted, then rolled back during the bake
    "Aborted",  # a user aborted it (headway.dev/abort)
    "Rejected",  # an approver rejected the candidate (ModelApproval decision: reject)
    "Cancelled",  # spec.model went back to the stable version during the rollout
    "Replaced",  # spec.model changed to another candidate during the rollout (a new record follows)
    "Updated",  # no rollout steps: the new version replaced stable directly
    "Deployed",  # the first version of the ModelDeployment
    "Unknown",  # ended while its last decisions could not be recorded (see ``incomplete``)
]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]

IMMUTABLE_MESSAGE = "modelDeployment, modelDeploymentUID, revision and startedAt name the rollout a record is about: they never change"


class RecordedDecision(ApiModel):
    """One decision, as status.history recorded it."""

    time: Annotated[str, Field(max_length=TIME_MAX)]
    """When (RFC 3339)."""
    event: Annotated[str, Field(max_length=EVENT_MAX)]
    """What: RolloutStarted, StepStarted, AwaitingApproval, Approved, Promoted, RolledBack, ... (the Event's reason)."""
    revision: Annotated[str, Field(max_length=REVISION_MAX)] | None = None
    """Revision concerned."""
    bento: Annotated[str, Field(max_length=DNS_SUBDOMAIN_MAX)] | None = None
    """Bento concerned."""
    message: Annotated[str, Field(max_length=MESSAGE_MAX)] = ""
    """Why, in words."""
    evidence: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """What was measured or shown when deciding (weights, analysis verdicts, approvals)."""


class RecordedApproval(ApiModel):
    """An approval (or the rejection) counted for this rollout, from its Approved and Rejected decisions."""

    time: Annotated[str, Field(max_length=TIME_MAX)]
    """When the operator counted it (the decision's time)."""
    decision: Literal["approve", "reject"]
    """approve or reject."""
    approver: Annotated[str, Field(max_length=APPROVER_MAX)] = ""
    """Who, as the API server authenticated them."""
    role: Annotated[str, Field(max_length=DNS_LABEL_MAX)] = ""
    """The governance role they signed for."""
    approval: Annotated[str, Field(max_length=DNS_SUBDOMAIN_MAX)] = ""
    """The ModelApproval's name."""
    stage: Annotated[str, Field(max_length=DNS_LABEL_MAX)] | None = None
    """BeforeFirstCanary or BeforePromotion."""
    evidence_digest: Annotated[str, Field(max_length=DIGEST_MAX)] | None = None
    """SHA-256 of the evidence the approver signed (status.governance.evidenceDigest then)."""
    comment: Annotated[str, Field(max_length=COMMENT_MAX)] = ""
    """The approver's comment."""
    created_at: Annotated[str, Field(max_length=TIME_MAX)] | None = None
    """When the ModelApproval was created."""


class RecordedVersion(ApiModel):
    """A version: its bento and revision."""

    bento: Annotated[str, Field(max_length=DNS_SUBDOMAIN_MAX)]
    """Bento tag."""
    revision: Annotated[str, Field(max_length=REVISION_MAX)]
    """Revision."""


class RolloutRecordSpec(ApiModel):
    """Every decision of one rollout, its evidence, approvals and outcome. Written by the operator only."""

    model_deployment: Annotated[str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)]
    """Name of the ModelDeployment rolled out (same namespace)."""
    model_deployment_uid: Annotated[str, Field(min_length=1, max_length=UID_MAX)] = Field(alias="modelDeploymentUID")
    """Its metadata.uid: a ModelDeployment deleted and created again under the same name is another one."""
    revision: Annotated[str, Field(min_length=1, max_length=REVISION_MAX)]
    """The candidate revision rolled out."""
    bento: Annotated[str, Field(max_length=DNS_SUBDOMAIN_MAX)]
    """The candidate's bento."""
    stable: RecordedVersion | None = None
    """The stable version it rolled over (absent for the first version, or when no longer known)."""
    started_at: Annotated[str, Field(min_length=1, max_length=TIME_MAX)]
    """When the rollout began (status.rollout.startedAt; the time of its RolloutStarted decision)."""
    finished_at: Annotated[str, Field(max_length=TIME_MAX)] | None = None
    """When it ended (the time of its last decision), unset while in progress."""
    outcome: Outcome
    """InProgress, Promoted, RolledBack, BakeFailed, Aborted, Rejected, Cancelled, Replaced, Updated, Deployed or Unknown."""
    decisions: list[RecordedDecision] = Field(default_factory=list, max_length=MAX_DECISIONS,
                                              json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Every decision, oldest first (at most 500, and about 1 MiB: beyond, the oldest but the first are dropped)."""
    approvals: list[RecordedApproval] = Field(default_factory=list, max_length=MAX_APPROVALS,
                                              json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """The approvals counted and the rejection, oldest first."""
    dropped: Annotated[int, Field(ge=0)] = 0
    """Decisions dropped to keep the record within its bounds (the oldest after the first)."""
    incomplete: Annotated[str, Field(max_length=MESSAGE_MAX)] | None = None
    """Why decisions may be missing, when they may (e.g. the rollout began before records were written)."""

    __cel__ = (
        # A transition rule: evaluated by the API server on updates only; the operator never changes them.
        Rule("self.modelDeployment == oldSelf.modelDeployment && self.modelDeploymentUID == oldSelf.modelDeploymentUID"
             " && self.revision == oldSelf.revision && self.startedAt == oldSelf.startedAt", IMMUTABLE_MESSAGE, None, lambda _: True),
    )


class RolloutRecord(ApiModel):
    """A RolloutRecord object as read from the API server (metadata kept as given)."""

    api_version: str = f"{headway.GROUP}/{headway.VERSION}"
    kind: Literal["RolloutRecord"] = "RolloutRecord"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RolloutRecordSpec


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "ModelDeployment", "type": "string", "jsonPath": ".spec.modelDeployment", "description": "The ModelDeployment rolled out."},
    {"name": "Revision", "type": "string", "jsonPath": ".spec.revision", "description": "The candidate revision."},
    {"name": "Bento", "type": "string", "jsonPath": ".spec.bento", "description": "The candidate's bento."},
    {"name": "Outcome", "type": "string", "jsonPath": ".spec.outcome", "description": "InProgress, Promoted, RolledBack, Aborted, ..."},
    {"name": "Started", "type": "date", "jsonPath": ".spec.startedAt", "description": "When the rollout began."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The RolloutRecord CustomResourceDefinition manifest."""
    return crd_envelope(
        kind=KIND, plural=PLURAL, singular=SINGULAR, short_names=SHORT_NAMES, categories=["headway"],
        description="Every decision of one rollout of a ModelDeployment, with its evidence, approvals and outcome. Written by the operator.",
        properties={"spec": build_schema(RolloutRecordSpec)}, printer_columns=PRINTER_COLUMNS,
    )
