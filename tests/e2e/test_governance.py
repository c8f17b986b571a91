"""End to end: spec.governance with the operator running — a rollout waits for ModelApprovals by
role, counts only those of its revision and evidence, promotes once two roles approved, and a
rejection aborts.

Against the emulator the approvals are created by the test's admin user; on a real cluster the
chart's ValidatingAdmissionPolicy admits an approval only from its approver (docs/governance.md),
so there the test creates them as whoever runs it: spec.approver is only a name here.
"""

from __future__ import annotations

from typing import Any

import pytest

from headway.api.approval import ModelApproval, ModelApprovalSpec
from headway.reconciler import MODEL_APPROVAL
from tests.e2e.harness import HTTPROUTE, IMAGE, IMAGE_V2, Env, wait_for

pytestmark = pytest.mark.e2e

V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
V3 = {"bento": "fraud_scorer:3.4.0", "image": IMAGE_V2 + "-rc"}
TRAFFIC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
STEPS = [{"shadow": {"percent": 100, "duration": "1s"}}, {"canary": {"weight": 50, "duration": "1s"}}]
# Two roles before promotion (the high tier's default, without its hour of bake for a test).
POLICY = {"requiredApprovals": [{"role": "ml-lead"}, {"role": "risk"}]}


@pytest.fixture(autouse=True)
def needs_routes(env: Env) -> None:
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")


def approve(env: Env, md: str, approver: str, role: str, decision: str = "approve", comment: str = "",
            digest: str | None = None) -> None:
    status = env.status(md)
    spec = ModelApprovalSpec(model_deployment=md, revision=status["candidate"]["revision"],
                             evidence_digest=digest or status["governance"]["evidenceDigest"], role=role, approver=approver,
                             decision=decision, comment=comment or None)  # type: ignore[arg-type]
    body = ModelApproval(metadata={"name": f"{md}-{spec.revision}-{role}-{approver}-{decision}"}, spec=spec).dump()
    env.kube.create(MODEL_APPROVAL, env.namespace, body)


def awaiting(env: Env, md: str, roles: list[str]) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        s = env.status(md)
        waiting = sorted(n["role"] for n in (s.get("governance") or {}).get("waitingFor", []))
        return s if s.get("phase") == "AwaitingApproval" and waiting == roles else None
    return wait_for(f"{md} awaiting {roles}", probe)


def test_two_roles_approve_the_evidence_and_the_version_is_promoted(env: Env) -> None:
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": TRAFFIC, "rollout": {"steps": STEPS}, "governance": POLICY})
    env.wait_phase("fraud", "Succeeded")
    env.patch_spec("fraud", {"model": V2})
    status = awaiting(env, "fraud", ["ml-lead", "risk"])
    gov = status["governance"]
    assert gov["stage"] == "BeforePromotion" and len(gov["evidenceDigest"]) == 64
    assert gov["evidence"]["candidate"]["bento"] == "fraud_scorer:3.3.0"
    assert status["traffic"]["candidateWeight"] == 50  # the last step's traffic holds while it waits
    env.wait_events("fraud", "AwaitingApproval")

    approve(env, "fraud", "mallory", "ml-lead", digest="0" * 64)  # evidence nobody was shown: never counts
    approve(env, "fraud", "alice", "ml-lead", comment="shadow and canary clean")
    awaiting(env, "fraud", ["risk"])
    approve(env, "fraud", "bob", "risk")
    env.wait_history("fraud", "Promoted")
    final = env.status("fraud")
    assert final["stable"]["bento"] == "fraud_scorer:3.3.0"
    counted = [(a["approver"], a["role"]) for a in final["governance"]["approvals"]]
    assert counted == [("alice", "ml-lead"), ("bob", "risk")]
    approved = next(h for h in final["history"] if h["event"] == "Approved")
    assert "alice (ml-lead)" in approved["message"] and "bob (risk)" in approved["message"]


def test_a_rejection_aborts_and_a_new_revision_needs_new_approvals(env: Env) -> None:
    env.create_md("risky", {"model": V1, "replicas": 2, "traffic": TRAFFIC, "rollout": {"steps": STEPS}, "governance": POLICY})
    env.wait_phase("risky", "Succeeded")
    env.patch_spec("risky", {"model": V2})
    awaiting(env, "risky", ["ml-lead", "risk"])
    approve(env, "risky", "alice", "ml-lead")
    awaiting(env, "risky", ["risk"])
    old_digest = env.status("risky")["governance"]["evidenceDigest"]

    # A new version replaces the candidate: alice's approval was for the old one.
    env.patch_spec("risky", {"model": V3})
    status = awaiting(env, "risky", ["ml-lead", "risk"])
    assert status["governance"]["evidenceDigest"] != old_digest and status["governance"]["approvals"] == []

    approve(env, "risky", "carol", "risk", "reject", comment="drift on income too high")
    env.wait_phase("risky", "RolledBack")
    status = env.status("risky")
    assert status["rolledBack"]["reason"] == "Rejected"
    assert "carol (risk" in status["rolledBack"]["message"] and "drift on income too high" in status["rolledBack"]["message"]
    assert status["traffic"]["candidateWeight"] == 0 and status["stable"]["bento"] == "fraud_scorer:3.2.0"
    wait_for("a Rejected Event", lambda: any(e["reason"] == "Rejected" for e in env.events("risky")))
