"""Approvals as a gate of the rollout (spec.governance), pure.

A rollout meets the policy at two stages: before the first canary step gives the candidate live
traffic (``BeforeFirstCanary``; a rollout without a canary weight meets it with promotion) and
before promotion (``BeforePromotion``). Reaching a stage that needs approvals is written ahead
in ``status.governance``: the stage, when, and the evidence the approvers are shown, frozen then,
with its SHA-256 digest. A ModelApproval counts when it names this ModelDeployment, the
candidate revision and that digest: evidence that changed after an approver looked is evidence
they did not approve. Each approver counts once, for the role of their earliest approval (one
person in two groups does not make two roles). A rejection of the revision, whatever digest it
names, aborts the rollout.

What the API server vouches for (the approver's identity and role, immutability) is the
admission policy's (charts/headway/templates/approval-policy.yaml); the operator counts what
was admitted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from headway.api.approval import ModelApprovalSpec
from headway.api.governance_spec import STAGES, Governance, RequiredApproval, Stage
from headway.api.status import ApprovalNeed, ApprovalRecord, GovernanceStatus, RequiredApprovalStatus


@dataclass(frozen=True)
class ObservedApproval:
    """A ModelApproval of this ModelDeployment, as the watch cache holds it."""

    name: str
    revision: str
    evidence_digest: str
    role: str
    approver: str
    decision: str
    comment: str
    created: str  # metadata.creationTimestamp (RFC 3339): the order approvals count in

    def record(self, stage: str | None = None) -> ApprovalRecord:
        return ApprovalRecord(name=self.name, approver=self.approver, role=self.role, decision=self.decision,  # type: ignore[arg-type]
                              comment=self.comment, at=self.created or None, stage=stage)


def parse_approvals(objects: Iterable[dict[str, Any]], model_deployment: str) -> tuple[ObservedApproval, ...]:
    """The ModelApprovals naming ``model_deployment``, oldest first. Objects the CRD schema would
    refuse (an emulator, a CRD edited by hand) are skipped: they never count."""
    out = []
    for obj in objects:
        try:
            spec = ModelApprovalSpec.model_validate(obj.get("spec") or {})
        except ValueError:
            continue
        if spec.model_deployment != model_deployment:
            continue
        meta = obj.get("metadata") or {}
        out.append(ObservedApproval(str(meta.get("name", "")), spec.revision, spec.evidence_digest, spec.role, spec.approver,
                                    spec.decision, spec.comment or "", str(meta.get("creationTimestamp") or "")))
    return tuple(sorted(out, key=lambda a: (a.created, a.name)))


def digest(evidence: dict[str, Any]) -> str:
    """SHA-256 of the evidence as canonical JSON (sorted keys, no spaces, UTF-8, integral numbers as
    integers, other numbers in their shortest round-trip form): the same for the evidence read back from
    the API server (docs/governance.md shows the command)."""
    text = json.dumps(normalized(evidence), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def requirements(governance: Governance | None, stages: Sequence[Stage]) -> tuple[RequiredApproval, ...]:
    """What the given stages need together (per role, the largest count among them)."""
    if governance is None:
        return ()
    need: dict[str, int] = {}
    for r in governance.policy():
        if r.stage in stages:
            need[r.role] = max(need.get(r.role, 0), r.count)
    return tuple(RequiredApproval(role=role, count=count, stage=stages[-1]) for role, count in need.items())


def policy_status(governance: Governance) -> list[RequiredApprovalStatus]:
    return [RequiredApprovalStatus(role=r.role, count=r.count, stage=r.stage) for r in governance.policy()]


def rejection(approvals: Sequence[ObservedApproval], revision: str) -> ObservedApproval | None:
    """The earliest rejection of ``revision``, if any."""
    return next((a for a in approvals if a.revision == revision and a.decision == "reject"), None)


@dataclass(frozen=True)
class Count:
    """Approvals counted against what a stage needs."""

    counted: tuple[ObservedApproval, ...]
    missing: tuple[ApprovalNeed, ...]

    @property
    def satisfied(self) -> bool:
        return not self.missing


def count(needed: Sequence[RequiredApproval], approvals: Sequence[ObservedApproval], revision: str, evidence_digest: str) -> Count:
    """Which approvals of ``revision`` with ``evidence_digest`` count towards ``needed``."""
    seen: set[str] = set()
    by_role: dict[str, list[ObservedApproval]] = {}
    for a in approvals:  # oldest first: an approver's first approval decides their role
        if a.revision != revision or a.decision != "approve" or a.evidence_digest != evidence_digest or a.approver in seen:
            continue
        seen.add(a.approver)
        by_role.setdefault(a.role, []).append(a)
    counted: list[ObservedApproval] = []
    missing: list[ApprovalNeed] = []
    for r in needed:
        have = by_role.get(r.role, [])[: r.count]
        counted += have
        if len(have) < r.count:
            missing.append(ApprovalNeed(role=r.role, missing=r.count - len(have)))
    return Count(tuple(counted), tuple(missing))


def describe_missing(missing: Iterable[ApprovalNeed]) -> str:
    return ", ".join(f"{n.missing} {n.role}" for n in missing)


def stages_crossed(first_canary: int | None, entering: int | None, promoting: bool) -> tuple[Stage, ...]:
    """The stages a transition crosses: entering step ``entering`` (the first canary step crosses
    BeforeFirstCanary), or promotion (crosses both: a promote skips no approval)."""
    if promoting:
        return STAGES
    if entering is not None and first_canary is not None and entering == first_canary:
        return ("BeforeFirstCanary",)
    return ()


def start(governance: Governance, previous: GovernanceStatus | None, revision: str, rollout: str | None) -> GovernanceStatus:
    """status.governance for the rollout of ``revision`` that began at ``rollout`` (None: a change without
    rollout steps): kept from the previous status for the same rollout, else fresh (nothing approved)."""
    if previous is not None and previous.revision == revision and previous.rollout == rollout:
        return previous.model_copy(update={"risk_tier": governance.risk_tier, "policy": policy_status(governance)})
    return GovernanceStatus(risk_tier=governance.risk_tier, policy=policy_status(governance), revision=revision, rollout=rollout)


def normalized(value: Any) -> Any:
    """The evidence as any JSON reader gets it back: an integral float (1200.0) is the integer the API server
    writes (1200), so a digest computed from what kubectl returns is the operator's."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value
