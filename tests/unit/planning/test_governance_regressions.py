"""Regressions found by a second reader of spec.governance and the stable's health: each test is a
reproduction of a defect that is fixed (a rollout skipping approvals, approvals of an old rollout
counting, evidence re-frozen under approvers, health mixing revisions, stale or misleading conditions)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from headway.api.status import Phase
from headway.kubectl_plugin.actions import plan_approval
from headway.planning.analysis import Gate
from tests.unit.planning.rollout_cases import CANDIDATE, STABLE, at, canary, rev, rollout_spec, running, shadow
from tests.unit.planning.test_governance import TWO_STAGES, approval, governed, through_shadow
from tests.unit.planning import test_health as health_cases



def baked(version: str) -> dict[str, Any]:
    s = rollout_spec(version, [shadow(100, "1m"), canary(50, "1m")])
    s["rollout"]["bakeTime"] = "10m"
    s["rollout"]["rollbackWithoutBaseline"] = True
    s["governance"] = {"riskTier": "medium"}
    return s

def test_a_retry_after_a_failed_bake_needs_approvals_again() -> None:
    c = running(baked("2.0.0"))
    for t in (0, 1, 2, 65, 66, 67, 130):
        c.reconcile(at(t))
    assert c.status.phase == Phase.AWAITING_APPROVAL
    c.approvals = (approval(c, "alice", "ml-lead", seconds=131),)
    for t in (132, 133, 134, 135):
        c.reconcile(at(t))
    assert c.status.bake is not None, c.status.phase
    c.reconcile(at(200), gate=Gate("Fail", "error rate 5%", rollback=True))
    assert c.status.rolled_back is not None and c.status.rolled_back.reason == "FailedBake", c.status.rolled_back
    c.reconcile(at(201))
    c.annotate("retry", "r1")
    c.approvals = ()  # even with every approval deleted
    for t in (300, 301, 302, 365, 366, 367, 430, 431, 432, 433):
        c.reconcile(at(t))
    assert c.status.phase == Phase.AWAITING_APPROVAL, "retry after FailedBake promoted without approvals"


def test_a_cancelled_rollouts_approvals_do_not_count_when_the_version_comes_back() -> None:
    c = through_shadow()
    c.approvals = (approval(c, "alice", "ml-lead", seconds=70),)
    c.reconcile(at(70))
    c.reconcile(at(71))
    assert c.status.rollout.step == 1
    c.set_model("1.0.0")          # git revert: rollout cancelled
    for t in (80, 81):
        c.reconcile(at(t))
    c.approvals = ()              # alice's approval even deleted
    c.set_model("2.0.0")          # re-applied a day later: a new rollout
    for t in (90, 91, 92, 155, 156, 157):
        c.reconcile(at(t))
    assert c.last.traffic.weights.get(CANDIDATE, 0) == 0, "canary got live traffic with no BeforeFirstCanary approval in this rollout"


def test_a_rejection_does_not_stick_to_the_stable_after_a_revert() -> None:
    c = through_shadow()
    c.approvals = (approval(c, "carol", "risk", "reject", seconds=80),)
    c.reconcile(at(80))
    c.set_model("1.0.0")
    for t in (90, 91, 5000):
        c.reconcile(at(t))
    dc = next(x for x in c.status.conditions if x.type == "DeploymentComplete")
    assert dc.reason != "Rejected"


def test_a_rejection_during_promotion_rolls_back() -> None:
    c = through_shadow()
    c.approvals = (approval(c, "alice", "ml-lead", seconds=70),)
    for t in (70, 71, 140):
        c.reconcile(at(t))
    c.approvals = (*c.approvals, approval(c, "bob", "risk", seconds=141))
    c.frozen = {STABLE}
    c.reconcile(at(142))
    assert c.status.phase == Phase.PROMOTING
    c.approvals = (*c.approvals, approval(c, "carol", "risk", "reject", seconds=150, comment="stop: fraud spike"))
    c.reconcile(at(151))
    c.frozen = set()
    for t in (160, 161, 162):
        c.reconcile(at(t))
    assert c.status.phase == Phase.ROLLED_BACK and c.status.rolled_back is not None and c.status.rolled_back.reason == "Rejected"
    assert c.status.stable_model is not None and c.status.stable_model.bento == "fraud_scorer:1.0.0"


def test_steps_edited_mid_rollout_give_no_live_traffic_before_the_canary_approval() -> None:
    spec = {**rollout_spec("2.0.0", [shadow(100, "1m"), shadow(100, "1m"), canary(50, "10m")]), "governance": TWO_STAGES}
    c = running(spec)
    for t in (0, 1, 2, 65, 66, 67):
        c.reconcile(at(t))
    assert c.status.rollout.step == 1, c.status.rollout
    # git: the second shadow step is dropped (or replaced by the canary)
    c.spec = {**spec, "rollout": {"steps": [shadow(100, "1m"), canary(50, "10m")]}}
    for t in (70, 71, 72):
        c.reconcile(at(t))
    assert c.last.traffic.weights.get(CANDIDATE, 0) == 0


def test_a_change_without_steps_can_be_approved_with_the_plugin() -> None:
    c = running(governed("2.0.0", {"riskTier": "medium"}, steps=[]))
    c.reconcile(at(0))
    c.reconcile(at(1))
    assert c.status.phase == Phase.AWAITING_APPROVAL
    obj = {"apiVersion": "serving.headway.dev/v1alpha1", "kind": "ModelDeployment",
           "metadata": {"name": "fraud-scorer", "namespace": "ml", "generation": 1}, "spec": c.spec, "status": c.status.dump()}
    gov = c.status.governance
    assert c.status.candidate is None and gov is not None
    body, said = plan_approval(obj, "approve", "ml-lead", "alice", None, datetime.now(timezone.utc))
    assert body["spec"]["revision"] == gov.revision == rev("2.0.0") and body["spec"]["evidenceDigest"] == gov.evidence_digest
    assert "approves fraud_scorer:2.0.0" in said


def test_the_stables_health_is_measured_on_its_own_revision_only() -> None:
    c = running(health_cases.spec())
    c.set_model("2.0.0")
    for t in range(0, 200, 5):
        c.reconcile(at(t))
    assert c.status.stable.revision == rev("2.0.0") and c.status.rollout is None, c.status.phase
    req = c.last.measure
    assert req.revision_of("stable") == rev("2.0.0")


def test_slosmet_during_a_rollout_does_not_read_the_stables_old_health() -> None:
    c = running({**rollout_spec("1.0.0", [canary(50, "10m")]), "analysis": health_cases.ANALYSIS})
    c.reconcile(at(40))
    health_cases.answer(c, 41, health_cases.healthy())
    c.set_model("2.0.0")
    for t in (50, 51):
        c.reconcile(at(t))
    c.annotate("paused", "true")
    for t in (52, 3600, 7200):
        c.reconcile(at(t))
    s = next(x for x in c.status.conditions if x.type == "SLOsMet")
    assert s.reason != "Pass"


def test_an_analysis_without_slos_is_not_monitored() -> None:
    an = {"prometheus": {"url": "http://prometheus.monitoring:9090"}, "interval": "30s", "slos": []}
    c = running({**rollout_spec("1.0.0", [canary(50, "1m")]), "analysis": an})
    c.reconcile(at(40))
    cond = health_cases.complete(c)
    assert (cond.status, cond.reason) == ("False", "NotMonitored")
