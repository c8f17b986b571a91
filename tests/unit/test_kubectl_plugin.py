"""``kubectl headway get``: the text a user reads, checked against reviewed golden files.

Every object here carries a status written by the operator's own planner (``plan()`` reconcile
after reconcile, with the Deployments converging and Prometheus answering the measurements it
asks for, as in tests/unit/planning/rollout_cases.py), so the drawing is tested against what the
operator really writes. The governance sections are hand-made on top of planner statuses (the
operator's governance is being added; the wire form is the one status.governance has): each says
so. The time is fixed, so the text is too.

    HEADWAY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_kubectl_plugin.py   # rewrite, then review the diff
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from headway.api.status import ModelDeploymentStatus
from headway.kubectl_plugin import tree
from headway.planning.cost import Prices
from headway.planning.measure import Measurement
from headway.planning.traffic_plan import carried_share
from headway.planning.verdicts import Histogram, RequestCounts, VariantData
from tests.unit.planning.rollout_cases import GATEWAY, T0, Cluster, at, canary, model, rev, rollout_spec, running, shadow

GOLDEN = Path(__file__).parent / "golden" / "kubectl"
URL = "http://prometheus.monitoring:9090"
RPS = 20.0  # requests per second to the ModelDeployment
DIGEST = "9b2c6f0e4d1a8b7c3e5f9a0d2b4c6e8f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d"
OTHER_DIGEST = "0" * 64
SLOS = [{"errorRate": {"max": 0.01}}, {"latency": {"percentile": 99, "max": "250ms"}}]
Errors = Callable[[str], float]


def assert_golden_text(text: str, name: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("HEADWAY_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"golden file {path} is missing (run with HEADWAY_UPDATE_GOLDEN=1 and review it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"output differs from {path}; if intended, rerun with HEADWAY_UPDATE_GOLDEN=1 and review"


# --- a cluster whose Prometheus answers -----------------------------------------------------------


def analysed_spec(version: str, steps: list[dict[str, Any]] | None = None, **rollout: Any) -> dict[str, Any]:
    spec = rollout_spec(version, steps)
    spec["rollout"].update(rollout)
    spec["analysis"] = {"interval": "30s", "slos": SLOS, "prometheus": {"url": URL}}
    return spec


def window(cluster: Cluster, now_s: float, errors: Errors, slow: Errors) -> Measurement | None:
    """The answer to the measurement the last plan asked for, if due: every variant's cumulative requests,
    errors and latency histogram over the window at RPS times its share of the traffic."""
    req = cluster.last.measure if cluster.last is not None else None
    if req is None or req.due_at > at(now_s) or cluster.last is None or cluster.last.traffic is None:
        return None
    seconds = now_s - (req.window_start - T0).total_seconds()
    data: dict[str, VariantData | None] = {}
    for variant in req.variants:
        n = RPS * carried_share(cluster.last.traffic, variant) / 100 * seconds
        late = n * slow(variant)
        buckets = ((0.1, n - 2 * late), (0.25, n - late), (0.5, n - late / 4), (float("inf"), n))
        data[variant] = VariantData(RequestCounts(n, n * errors(variant)), Histogram(buckets))
    return Measurement(req, data, None, at(now_s))


def measured(cluster: Cluster, times: range, errors: Errors, slow: Errors = lambda v: 0.001) -> Cluster:
    for t in times:
        result = cluster.commit(cluster.plan_measured(at(t), window(cluster, t, errors, slow)))
        cluster.converge(result)
    return cluster


def candidate_errors(rate: float) -> Errors:
    return lambda variant: rate if variant == "candidate" else 0.002


def obj(cluster: Cluster, generation: int = 2) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "fraud-scorer", "namespace": "ml", "generation": generation}
    if cluster.annotations:
        meta["annotations"] = dict(cluster.annotations)
    out: dict[str, Any] = {"apiVersion": "serving.headway.dev/v1alpha1", "kind": "ModelDeployment", "metadata": meta,
                           "spec": cluster.spec}
    if cluster.last is not None:
        out["status"] = cluster.status.dump()
        out["status"]["observedGeneration"] = generation
    return out


# --- the cases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    obj: dict[str, Any]
    now: datetime
    approvals: tuple[dict[str, Any], ...] = ()


def _no_status() -> Case:
    return Case(obj(Cluster(spec=rollout_spec("1.0.0"))), at(5))


def _succeeded() -> Case:
    spec = {**rollout_spec("1.0.0"), "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}, "cost": {"monthlyBudget": 500}}
    cluster = running(spec, prices=Prices(vcpu_hour=0.04, gib_hour=0.005, currency="EUR"))
    return Case(obj(cluster, generation=1), at(3600))


def _shadow_evidence() -> Case:
    """Shadow 50% for its whole minute: the candidate errs at 2% against a max of 1% and stable's 0.2%. The
    evidence that it is worse than stable is 75% of the way to a Fail; the step waits for a Pass."""
    cluster = running(analysed_spec("2.0.0"), metrics_url=URL)
    measured(cluster, range(60, 131, 10), candidate_errors(0.02))
    return Case(obj(cluster), at(135))


def _canary_passing() -> Case:
    """Canary 10% (step 2/4), both SLOs shown met; 1m30s of the step left."""
    cluster = running(analysed_spec("2.0.0"), metrics_url=URL)
    measured(cluster, range(60, 171, 10), candidate_errors(0.001))
    return Case(obj(cluster), at(175))


def _rolled_back() -> Case:
    """The candidate errs at 3%: shown to breach and to be worse than stable, rolled back."""
    cluster = running(analysed_spec("2.0.0"), metrics_url=URL)
    measured(cluster, range(60, 200, 10), candidate_errors(0.03))
    assert cluster.status.phase == "RolledBack", cluster.status.phase
    return Case(obj(cluster), at(200))


def _manual_gate() -> Case:
    cluster = running(rollout_spec("2.0.0"))
    measured(cluster, range(60, 261, 10), candidate_errors(0.001))
    assert cluster.status.phase == "Paused"
    return Case(obj(cluster), at(300))


def _paused_annotation() -> Case:
    """Paused with headway.dev/paused at step 2/4 after 30 s of its 2 m: the clock stands still."""
    cluster = running(rollout_spec("2.0.0"))
    measured(cluster, range(60, 161, 10), candidate_errors(0.001))
    cluster.annotate("paused", "true")
    measured(cluster, range(170, 171), candidate_errors(0.001))
    return Case(obj(cluster), at(400))


def _deferred_promote_step() -> Case:
    """promote-step set while the candidate is not ready for step 1: it waits for that step."""
    cluster = running(rollout_spec("2.0.0"))
    cluster.broken.add("candidate")
    measured(cluster, range(60, 71, 10), candidate_errors(0.001))
    cluster.annotate("promote-step", rev("2.0.0"))
    measured(cluster, range(80, 81), candidate_errors(0.001))
    return Case(obj(cluster), at(90))


def _promoting() -> Case:
    cluster = running(rollout_spec("2.0.0", [canary(50, "30s")]))
    cluster.frozen.add("stable")  # the stable Deployment does not roll to 2.0.0 yet when the promotion starts
    measured(cluster, range(60, 111, 10), candidate_errors(0.001))
    assert cluster.status.phase == "Promoting", cluster.status.phase
    return Case(obj(cluster), at(115))


def _bake() -> Case:
    spec = analysed_spec("2.0.0", [canary(50, "30s")], bakeTime="10m")
    cluster = running(spec, metrics_url=URL)
    measured(cluster, range(60, 200, 10), candidate_errors(0.001))
    assert cluster.status.bake is not None
    return Case(obj(cluster), at(200))


def _experiment() -> Case:
    spec = {"model": model("1.0.0"), "replicas": 4, "traffic": GATEWAY,
            "experiment": {"variants": [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50, "model": model("2.0.0")}]}}
    cluster = Cluster(spec=spec)
    measured(cluster, range(0, 11, 10), candidate_errors(0.001))
    return Case(obj(cluster, generation=1), at(60))


def _invalid_spec() -> Case:
    cluster = running(rollout_spec("1.0.0"))
    cluster.spec = {**rollout_spec("1.0.0"), "model": {**model("2.0.0"), "image": "Not A Reference"}}
    measured(cluster, range(60, 61), candidate_errors(0.001))
    return Case(obj(cluster), at(90))


def _governed(phase: str, governance: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    out = obj(cluster)
    out["status"]["phase"] = phase
    out["status"]["governance"] = governance
    return out


def _approval(name: str, approver: str, role: str, decision: str = "approve", digest: str = DIGEST,
              revision: str | None = None, comment: str | None = None) -> dict[str, Any]:
    spec = {"modelDeployment": "fraud-scorer", "revision": revision or rev("2.0.0"), "evidenceDigest": digest, "role": role,
            "approver": approver, "decision": decision}
    if comment:
        spec["comment"] = comment
    return {"apiVersion": "serving.headway.dev/v1alpha1", "kind": "ModelApproval",
            "metadata": {"name": name, "namespace": "ml", "creationTimestamp": "2026-11-22T12:04:00Z"}, "spec": spec}


def _awaiting_approval() -> Case:
    """HAND-MADE governance on the planner's status of a last step (the operator waits before promotion when it
    ends): ml-lead approved, risk missing; carol approved other evidence (not counted), dave's approval was
    not seen by the operator yet."""
    cluster = running(rollout_spec("2.0.0", [shadow(50, "1m"), canary(10, "2m")]))
    measured(cluster, range(60, 241, 10), candidate_errors(0.001))
    waits = (f"fraud_scorer:2.0.0 waits for approvals before promotion (step 2/2: canary 10% done): needs 2 risk with "
             f"evidence digest {DIGEST}")
    cluster.status = cluster.status.model_copy(update={"conditions": [
        c.model_copy(update={"message": waits}) if c.type == "Progressing" else c for c in cluster.status.conditions]})
    governance = {
        "riskTier": "high", "revision": rev("2.0.0"), "stage": "BeforePromotion", "since": "2026-11-22T12:04:10Z",
        "evidenceDigest": DIGEST,
        "policy": [{"role": "ml-lead", "count": 1, "stage": "BeforePromotion"}, {"role": "risk", "count": 2, "stage": "BeforePromotion"}],
        "approvals": [{"name": "fraud-scorer-ml-lead-bob", "approver": "bob", "role": "ml-lead", "decision": "approve",
                       "comment": "SLOs met in shadow and at 10%", "at": "2026-11-22T12:04:30Z", "stage": "BeforePromotion"}],
        "waitingFor": [{"role": "risk", "missing": 2}],
    }
    approvals = (
        _approval("fraud-scorer-ml-lead-bob", "bob", "ml-lead"),
        _approval("fraud-scorer-risk-carol", "carol", "risk", digest=OTHER_DIGEST),
        _approval("fraud-scorer-risk-dave", "dave", "risk"),
        _approval("fraud-scorer-risk-erin-old", "erin", "risk", revision="0123456789"),  # another revision: not shown
    )
    return Case(_governed("AwaitingApproval", governance, cluster), at(300), approvals)


def _as_rejection(status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """An abort's status worded as the rejection's (reason Rejected, the approver and comment as the message)."""
    text = json.dumps(status.dump())
    text = text.replace("(Aborted): aborted by a user at step 2/4: canary 10%", f"(Rejected): {REJECTION}")
    text = text.replace("aborted by a user at step 2/4: canary 10%", REJECTION).replace('"Aborted"', '"Rejected"')
    return ModelDeploymentStatus.model_validate(json.loads(text))


REJECTION = "rejected by carol (risk, ModelApproval fraud-scorer-risk-carol): PSI of income above 0.2"


def _rejected() -> Case:
    """HAND-MADE governance on an aborted rollout's planner status, worded as a rejection: carol's stopped it."""
    cluster = running(rollout_spec("2.0.0"))
    measured(cluster, range(60, 141, 10), candidate_errors(0.001))
    cluster.annotate("abort", "1")
    measured(cluster, range(150, 151), candidate_errors(0.001))
    cluster.annotations.clear()
    cluster.status = _as_rejection(cluster.status)
    governance = {
        "riskTier": "high", "revision": rev("2.0.0"), "stage": "BeforeFirstCanary", "evidenceDigest": DIGEST,
        "policy": [{"role": "risk", "count": 1, "stage": "BeforeFirstCanary"}],
        "approvals": [], "waitingFor": [],
        "rejected": {"name": "fraud-scorer-risk-carol", "approver": "carol", "role": "risk", "decision": "reject",
                     "comment": "PSI of income above 0.2", "at": "2026-11-22T12:02:20Z"},
    }
    return Case(_governed("RolledBack", governance, cluster), at(200),
                (_approval("fraud-scorer-risk-carol", "carol", "risk", "reject", comment="PSI of income above 0.2"),))


CASES: dict[str, Callable[[], Case]] = {
    "no-status": _no_status,
    "succeeded": _succeeded,
    "shadow-evidence": _shadow_evidence,
    "canary-passing": _canary_passing,
    "rolled-back": _rolled_back,
    "manual-gate": _manual_gate,
    "paused-annotation": _paused_annotation,
    "deferred-promote-step": _deferred_promote_step,
    "promoting": _promoting,
    "bake": _bake,
    "experiment": _experiment,
    "invalid-spec": _invalid_spec,
    "awaiting-approval": _awaiting_approval,
    "rejected": _rejected,
}


@pytest.mark.parametrize("name", CASES)
def test_get_output_matches_the_reviewed_text(name: str) -> None:
    case = CASES[name]()
    assert_golden_text(tree.render(case.obj, case.approvals, case.now), name)


def test_every_golden_file_has_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(CASES)
