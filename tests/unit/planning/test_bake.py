"""Bake time after promotion: the previous version stays available; a breach restores it."""

from __future__ import annotations

from headway.api.status import Phase
from headway.planning.naming import PREVIOUS
from headway.planning.rollout import Gate
from tests.unit.planning.rollout_cases import Cluster, at, canary, labels, replicas_of, rollout_spec, running, workload_of

S = "stable"


def promoted(bake: str = "10m") -> Cluster:
    spec = rollout_spec("2.0.0", [canary(50, "1m")])
    spec["rollout"]["bakeTime"] = bake
    cluster = running(spec)
    t = 60
    while "Promoted" not in cluster.reasons():
        cluster.reconcile(at(t))
        t += 10
        assert t < 2000, cluster.reasons()
    return cluster


def test_promotion_starts_the_bake_and_keeps_the_previous_version_at_one_pod() -> None:
    cluster = promoted()
    status = cluster.status
    assert status.bake is not None and status.bake.bento == "fraud_scorer:2.0.0"
    assert status.previous_model is not None and status.previous_model.bento == "fraud_scorer:1.0.0"
    assert "BakeStarted" in cluster.reasons()
    previous = workload_of(cluster.last, PREVIOUS)
    assert previous is not None and previous.replicas == 1 and previous.model.bento == "fraud_scorer:1.0.0"
    assert cluster.last.traffic.weights == {S: 100}


def test_a_breach_during_the_bake_restores_the_previous_version() -> None:
    cluster = promoted()
    evidence = {"verdicts": [{"slo": "errorRate", "result": "Fail", "value": 0.2}]}
    result = cluster.reconcile(at(2000), Gate("Fail", "error rate 20% > 1%", rollback=True, evidence=evidence))
    status = result.status
    assert status.phase == Phase.ROLLED_BACK
    assert status.rolled_back is not None and status.rolled_back.reason == "FailedBake" and status.rolled_back.bento == "fraud_scorer:2.0.0"
    assert status.stable_model.bento == "fraud_scorer:1.0.0" and status.bake is None
    assert workload_of(result, S).model.bento == "fraud_scorer:1.0.0"  # stable rolls back to the previous model
    entry = status.history[-1]
    assert entry.event == "RolledBack" and entry.evidence == evidence and "bake" in entry.message
    assert result.events[0].type == "Warning"
    again = cluster.reconcile(at(2100), Gate("Pass", "fine"))  # the rolled-back revision is not retried
    assert again.status.phase == Phase.ROLLED_BACK and replicas_of(again, "candidate") == 0


def test_the_bake_ends_and_the_previous_version_goes() -> None:
    cluster = promoted("5m")
    done = cluster.reconcile(at(5000), Gate("Pass", "fine"))
    assert done.status.bake is None and done.status.previous_model is None
    assert workload_of(done, PREVIOUS) is None
    assert labels(done.status.history)[-1] == "BakeCompleted"
    assert done.status.phase == Phase.SUCCEEDED


def test_no_bake_without_bake_time() -> None:
    spec = rollout_spec("2.0.0", [canary(50, "1m")])
    cluster = running(spec)
    t = 60
    while "Promoted" not in cluster.reasons():
        cluster.reconcile(at(t))
        t += 10
    assert cluster.status.bake is None and workload_of(cluster.last, PREVIOUS) is None
