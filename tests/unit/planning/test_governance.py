"""spec.governance as the rollout meets it: waiting for approvals by role at a stage, the evidence
frozen for approvers, approvals bound to the revision and the digest, a rejection aborting."""

from __future__ import annotations

from typing import Any

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import Phase
from headway.planning.conditions import rfc3339
from headway.planning.governance import ObservedApproval, count, digest, requirements
from headway.planning.validation import check_spec
from headway.api.governance_spec import Governance
from tests.unit.planning.rollout_cases import CANDIDATE, GATEWAY, STABLE, Cluster, at, canary, rev, rollout_spec, running, shadow

STEPS = [shadow(100, "1m"), canary(50, "1m")]
TWO_STAGES = {"requiredApprovals": [{"role": "ml-lead", "stage": "BeforeFirstCanary"}, {"role": "risk", "stage": "BeforePromotion"}]}


def governed(version: str, governance: dict[str, Any] | None = None, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {**rollout_spec(version, STEPS if steps is None else steps), "governance": governance or TWO_STAGES}


def approval(c: Cluster, approver: str, role: str, decision: str = "approve", *, seconds: float, digest_: str | None = None,
             revision: str | None = None, comment: str = "") -> ObservedApproval:
    gov = c.status.governance
    assert gov is not None
    return ObservedApproval(f"{approver}-{role}-{decision}", revision or rev("2.0.0"), digest_ or gov.evidence_digest or "",
                            role, approver, decision, comment, rfc3339(at(seconds)))


def through_shadow() -> Cluster:
    """2.0.0 rolls out; its shadow minute has passed: it waits for ml-lead before the canary."""
    c = running(governed("2.0.0"))
    for t in (0, 1, 2, 65):
        c.reconcile(at(t))
    return c


def test_the_rollout_waits_before_the_first_canary_with_the_evidence_frozen() -> None:
    c = through_shadow()
    gov = c.status.governance
    assert c.status.phase == Phase.AWAITING_APPROVAL
    assert gov is not None and gov.stage == "BeforeFirstCanary" and gov.revision == rev("2.0.0")
    assert [(n.role, n.missing) for n in gov.waiting_for] == [("ml-lead", 1)]
    assert gov.evidence is not None and gov.evidence_digest == digest(gov.evidence)
    assert gov.evidence["candidate"]["revision"] == rev("2.0.0") and gov.evidence["stage"] == "BeforeFirstCanary"
    progressing = next(x for x in c.status.conditions if x.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "AwaitingApproval") and "1 ml-lead" in progressing.message
    # The shadow keeps mirroring (no user sees the candidate); the step has not completed.
    assert c.last is not None and c.last.traffic is not None and c.last.traffic.weights.get(CANDIDATE, 0) == 0
    assert c.status.rollout is not None and c.status.rollout.step == 0
    assert [h.event for h in c.status.history].count("StepCompleted") == 0
    # Later looks change nothing: the evidence approvers sign does not move under them.
    before = gov.evidence_digest
    c.reconcile(at(200))
    assert c.status.governance is not None and c.status.governance.evidence_digest == before
    assert [h.event for h in c.status.history].count("AwaitingApproval") == 1


@pytest.mark.parametrize("wrong", ["digest", "revision", "role", "reject-of-old-rollout"])
def test_an_approval_counts_only_for_this_revision_evidence_and_role(wrong: str) -> None:
    c = through_shadow()
    if wrong == "digest":
        a = approval(c, "alice", "ml-lead", seconds=70, digest_="0" * 64)
    elif wrong == "revision":
        a = approval(c, "alice", "ml-lead", seconds=70, revision=rev("3.0.0"))
    elif wrong == "role":
        a = approval(c, "alice", "risk", seconds=70)
    else:  # a rejection older than this rollout (before a retry, say) is history
        a = approval(c, "carol", "ml-lead", "reject", seconds=-30)
    c.approvals = (a,)
    c.reconcile(at(70))
    assert c.status.phase == Phase.AWAITING_APPROVAL
    assert c.status.governance is not None and [n.role for n in c.status.governance.waiting_for] == ["ml-lead"]


def test_two_stages_approved_by_their_roles_then_promoted() -> None:
    c = through_shadow()
    c.approvals = (approval(c, "alice", "ml-lead", seconds=70, comment="shadow looks fine"),)
    c.reconcile(at(70))
    assert c.status.phase == Phase.PROGRESSING
    events = [h.event for h in c.status.history]
    assert events[-3:] == ["Approved", "StepCompleted", "StepStarted"] or events[-2:] == ["Approved", "StepCompleted"]
    approved = next(h for h in c.status.history if h.event == "Approved")
    assert "alice (ml-lead)" in approved.message and approved.evidence is not None
    assert approved.evidence["approvals"][0]["comment"] == "shadow looks fine"
    c.reconcile(at(71))
    assert c.status.rollout is not None and c.status.rollout.step == 1 and c.status.traffic is not None
    assert c.status.traffic.candidate_weight == 50
    c.reconcile(at(140))  # the canary minute passed: risk is needed before promotion
    gov = c.status.governance
    assert c.status.phase == Phase.AWAITING_APPROVAL and gov is not None and gov.stage == "BeforePromotion"
    assert [(n.role, n.missing) for n in gov.waiting_for] == [("risk", 1)]
    # alice's first approval was for other evidence; her risk approval of this one counts.
    c.approvals = (*c.approvals, approval(c, "alice", "risk", seconds=150))
    c.reconcile(at(150))
    assert c.status.phase == Phase.PROMOTING
    for t in (151, 152, 153):
        c.reconcile(at(t))
    assert c.status.phase == Phase.SUCCEEDED and c.status.stable is not None and c.status.stable.revision == rev("2.0.0")
    gov = c.status.governance
    assert gov is not None and gov.approved_stages == ["BeforeFirstCanary", "BeforePromotion"]
    assert [(a.approver, a.role, a.stage) for a in gov.approvals] == [("alice", "ml-lead", "BeforeFirstCanary"),
                                                                       ("alice", "risk", "BeforePromotion")]


def test_one_person_counts_once_for_two_roles_of_one_stage() -> None:
    c = running(governed("2.0.0", {"riskTier": "medium", "requiredApprovals": [{"role": "ml-lead"}, {"role": "risk"}]}))
    for t in (0, 1, 2, 65, 66, 67, 130):
        c.reconcile(at(t))
    assert c.status.phase == Phase.AWAITING_APPROVAL
    c.approvals = (approval(c, "alice", "ml-lead", seconds=131), approval(c, "alice", "risk", seconds=132))
    c.reconcile(at(133))
    gov = c.status.governance
    assert c.status.phase == Phase.AWAITING_APPROVAL and gov is not None
    assert [(n.role, n.missing) for n in gov.waiting_for] == [("risk", 1)]
    c.approvals = (*c.approvals, approval(c, "bob", "risk", seconds=134))
    c.reconcile(at(135))
    assert c.status.phase == Phase.PROMOTING


def test_a_rejection_aborts_the_rollout_with_the_approver_and_comment_as_evidence() -> None:
    c = through_shadow()
    c.approvals = (approval(c, "carol", "risk", "reject", seconds=80, comment="PSI of income is too high"),)
    c.reconcile(at(80))
    assert c.status.phase == Phase.ROLLED_BACK
    rolled = c.status.rolled_back
    assert rolled is not None and rolled.reason == "Rejected" and "carol (risk" in rolled.message
    assert "PSI of income is too high" in rolled.message
    entry = c.status.history[-1]
    assert entry.event == "Rejected" and entry.evidence is not None and entry.evidence["approval"]["approver"] == "carol"
    assert c.status.governance is not None and c.status.governance.rejected is not None
    assert c.last is not None and c.last.traffic is not None and c.last.traffic.weights == {STABLE: 100}


def test_a_new_revision_needs_new_approvals() -> None:
    c = through_shadow()
    old_digest = c.status.governance.evidence_digest if c.status.governance else None
    c.approvals = (approval(c, "alice", "ml-lead", seconds=70, revision=rev("2.0.0")),)
    c.set_model("3.0.0")
    for t in (70, 71, 72, 140):
        c.reconcile(at(t))
    gov = c.status.governance
    assert gov is not None and gov.revision == rev("3.0.0") and gov.evidence_digest != old_digest
    assert c.status.phase == Phase.AWAITING_APPROVAL and [n.role for n in gov.waiting_for] == ["ml-lead"]
    assert gov.approvals == []


def test_promote_waits_for_every_stage_and_keeps_the_current_step() -> None:
    c = running(governed("2.0.0"))
    for t in (0, 1, 2):
        c.reconcile(at(t))
    c.annotate("promote", "now")
    c.reconcile(at(10))
    gov = c.status.governance
    assert c.status.phase == Phase.AWAITING_APPROVAL and gov is not None and gov.stage == "BeforePromotion"
    assert sorted((n.role, n.missing) for n in gov.waiting_for) == [("ml-lead", 1), ("risk", 1)]
    assert c.status.rollout is not None and c.status.rollout.step == 0 and not c.status.rollout.promoting
    c.approvals = (approval(c, "alice", "ml-lead", seconds=20), approval(c, "bob", "risk", seconds=21))
    c.reconcile(at(22))
    assert c.status.phase == Phase.PROMOTING


def test_without_steps_the_replacement_waits_and_stable_keeps_serving() -> None:
    c = running(governed("2.0.0", {"riskTier": "medium"}, steps=[]))
    c.reconcile(at(0))
    assert c.status.phase == Phase.AWAITING_APPROVAL
    assert c.status.stable is not None and c.status.stable.revision == rev("1.0.0")
    c.approvals = (approval(c, "alice", "ml-lead", seconds=5),)
    c.reconcile(at(6))
    assert c.status.stable_model is not None and c.status.stable_model.bento == "fraud_scorer:2.0.0"


def test_low_tier_and_no_governance_do_not_wait() -> None:
    c = running(governed("2.0.0", {"riskTier": "low"}))
    for t in (0, 1, 2, 65, 66, 67, 130, 131, 132, 133):
        c.reconcile(at(t))
    assert "AwaitingApproval" not in [h.event for h in c.status.history]
    assert c.status.stable is not None and c.status.stable.revision == rev("2.0.0")


def spec_of(governance: dict[str, Any], rollout: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"bento": "a:1", "image": "r/a:1"}, "rollout": rollout, "governance": governance,
                                               "traffic": GATEWAY})


@pytest.mark.parametrize("rollout, fields", [
    ({"steps": [canary(10, "1m")], "bakeTime": "1h"}, ["spec.governance.riskTier"]),
    ({"steps": [shadow(100, "1m")], "bakeTime": "59m"}, ["spec.governance.riskTier"]),
    ({"steps": [shadow(100, "1m")], "bakeTime": "1h"}, []),
])
def test_the_high_tier_needs_a_shadow_step_and_an_hour_of_bake(rollout: dict[str, Any], fields: list[str]) -> None:
    problems = check_spec("x", spec_of({"riskTier": "high"}, rollout))
    assert [p.field for p in problems] == fields


def test_requirements_of_crossed_stages_take_the_larger_count_per_role() -> None:
    policy = Governance.model_validate({"requiredApprovals": [
        {"role": "ml-lead", "stage": "BeforeFirstCanary"}, {"role": "ml-lead", "count": 2}, {"role": "risk"}]})
    assert [(r.role, r.count) for r in requirements(policy, ("BeforeFirstCanary",))] == [("ml-lead", 1)]
    assert [(r.role, r.count) for r in requirements(policy, ("BeforeFirstCanary", "BeforePromotion"))] == [("ml-lead", 2), ("risk", 1)]
    a = ObservedApproval("a", "r", "d", "ml-lead", "alice", "approve", "", "2026-01-01T00:00:00Z")
    assert not count(requirements(policy, ("BeforePromotion",)), (a, a), "r", "d").satisfied  # the same approval twice is one


def test_the_signoff_plan_lists_the_tiers_approvals() -> None:
    from headway.planning.signoff import signoff_markdown

    text = signoff_markdown(spec_of({"riskTier": "high"}, {"steps": [shadow(100, "1m")], "bakeTime": "1h"}), name="fraud")
    section = text.split("## Approvals")[1].split("##")[0]
    assert "spec.governance.riskTier (risk tier high)" in section
    assert "1 approval by role `ml-lead`, before promotion" in section and "1 approval by role `risk`, before promotion" in section
    assert "| ml-lead | | | |" in text and "| risk | | | |" in text


def test_a_retry_after_a_rejection_is_a_new_rollout_that_needs_approvals_again() -> None:
    c = through_shadow()
    first_digest = c.status.governance.evidence_digest if c.status.governance else None
    c.approvals = (approval(c, "carol", "risk", "reject", seconds=80, comment="not yet"),)
    c.reconcile(at(80))
    assert c.status.phase == Phase.ROLLED_BACK
    c.annotate("retry", "r1")
    for t in (100, 101, 102, 170):
        c.reconcile(at(t))
    gov = c.status.governance
    assert c.status.phase == Phase.AWAITING_APPROVAL, c.status.phase  # carol's old rejection no longer counts
    assert gov is not None and gov.rejected is None and gov.evidence_digest != first_digest
    assert [n.role for n in gov.waiting_for] == ["ml-lead"]


def test_the_digest_is_the_same_for_the_evidence_read_back_from_the_api_server() -> None:
    """The API server (Go) writes 1200.0 as 1200 and 1e-05 as 0.00001: a reader that parses what kubectl
    returns gets the same numbers, and so the same digest, as the operator."""
    import json

    evidence = {"analysis": {"samples": 1200.0, "value": 1e-05, "ciHigh": 0.0123, "verdicts": [{"pValue": 1.0}]}, "name": "é"}
    as_go_writes = '{"analysis":{"samples":1200,"value":0.00001,"ciHigh":0.0123,"verdicts":[{"pValue":1}]},"name":"é"}'
    assert digest(json.loads(as_go_writes)) == digest(evidence)
