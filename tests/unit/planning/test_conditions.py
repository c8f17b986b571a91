"""Status tells the truth: in every phase the conditions agree with the phase and with each other.

Each case drives the planner (the same one the operator runs) into a phase, then checks the
whole set of conditions a user reads with `kubectl describe` or `kubectl wait`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from headway.api.status import ModelDeploymentStatus, Phase
from headway.planning.naming import CANDIDATE as C, STABLE
from tests.unit.planning.rollout_cases import (
    Cluster, at, canary, deployment_state, model, pause, rollout_spec, running, workload_of,
)

# phase -> the (Ready, Progressing, Degraded) statuses it allows ("*": any)
ALLOWED: dict[Phase, tuple[str, str, str]] = {
    Phase.PENDING: ("False", "True", "False"),
    Phase.PROGRESSING: ("*", "True", "False"),
    Phase.PAUSED: ("True", "True", "False"),
    Phase.AWAITING_APPROVAL: ("True", "True", "False"),
    Phase.PROMOTING: ("True", "True", "False"),
    Phase.SUCCEEDED: ("True", "False", "False"),
    Phase.ROLLED_BACK: ("True", "False", "True"),
    Phase.DEGRADED: ("*", "*", "True"),
    Phase.FAILED: ("False", "False", "True"),
}


def check_conditions(status: ModelDeploymentStatus) -> None:
    assert status.phase is not None
    conditions = {c.type: c for c in status.conditions}
    assert set(conditions) == {"Ready", "Progressing", "Degraded", "SLOsMet", "SpecSupported", "DeploymentComplete"}, conditions.keys()
    if status.phase != "Succeeded":  # complete only when running the desired version, nothing in flight
        assert conditions["DeploymentComplete"].status == "False", conditions["DeploymentComplete"]
    got = tuple(conditions[t].status for t in ("Ready", "Progressing", "Degraded"))
    for want, have, name in zip(ALLOWED[status.phase], got, ("Ready", "Progressing", "Degraded")):
        assert want in ("*", have), f"phase {status.phase.value} with {name}={have}: {conditions[name]}"
    for c in conditions.values():
        assert c.reason, f"{c.type} has no reason"
        if c.status != "True" or c.type == "Degraded":
            assert c.message or c.type in ("SpecSupported", "Degraded") and c.status == "False", f"{c.type} says nothing: {c}"
    if conditions["Ready"].status == "True":
        assert status.stable is not None and status.stable.ready_replicas > 0


def pending() -> ModelDeploymentStatus:
    cluster = Cluster(spec=rollout_spec("1.0.0"))
    return cluster.commit(cluster.plan(at(0))).status  # the Deployment does not exist yet


def failed_invalid_first_spec() -> ModelDeploymentStatus:
    cluster = Cluster(spec={"model": model("1.0.0"), "replicas": -1})
    result = cluster.reconcile(at(0))
    assert result.workloads is None
    assert [e.reason for e in result.events] == ["InvalidSpec"]
    assert "nothing is deployed until it is fixed" in result.events[0].message
    return result.status


def failed_image() -> ModelDeploymentStatus:
    cluster = Cluster(spec=rollout_spec("1.0.0"))
    first = cluster.reconcile(at(0))
    cluster.live = {STABLE: deployment_state(workload_of(first, STABLE), 0, deadline=True)}
    status = cluster.reconcile(at(700)).status
    assert "registry.example.com" in next(c.message for c in status.conditions if c.type == "Ready")  # names the image
    return status


def succeeded() -> ModelDeploymentStatus:
    return running(rollout_spec("1.0.0")).status


def canary_at(t: int) -> Cluster:
    cluster = running(rollout_spec("2.0.0", [canary(10, "2m"), pause(), canary(50, "1m")]))
    for s in range(60, t + 1, 10):
        cluster.reconcile(at(s))
    return cluster


def progressing() -> ModelDeploymentStatus:
    return canary_at(80).status


def paused() -> ModelDeploymentStatus:
    return canary_at(300).status


def awaiting_approval() -> ModelDeploymentStatus:
    spec = {**rollout_spec("2.0.0", [canary(10, "1m")]), "governance": {"riskTier": "medium"}}
    cluster = running(spec)
    for t in (0, 1, 2):
        cluster.reconcile(at(t))
    return cluster.reconcile(at(70)).status


def promoting() -> ModelDeploymentStatus:
    cluster = canary_at(80)
    cluster.annotate("promote", "p")
    cluster.frozen = {STABLE}  # stable has not rolled to the new version yet
    return cluster.reconcile(at(90)).status


def rolled_back() -> ModelDeploymentStatus:
    cluster = canary_at(80)
    cluster.annotate("abort", "a")
    return cluster.reconcile(at(90)).status


def degraded_hold() -> ModelDeploymentStatus:
    cluster = canary_at(80)
    cluster.broken = {C}
    cluster.reconcile(at(90))
    return cluster.reconcile(at(100)).status


def degraded_invalid_spec() -> ModelDeploymentStatus:
    cluster = running(rollout_spec("1.0.0"))
    cluster.spec = {**cluster.spec, "replicas": -1}
    result = cluster.reconcile(at(60))
    assert "the running model is untouched" in result.events[0].message
    return result.status


CASES: dict[str, tuple[Phase, Callable[[], ModelDeploymentStatus]]] = {
    "pending": (Phase.PENDING, pending),
    "failed-invalid-first-spec": (Phase.FAILED, failed_invalid_first_spec),
    "failed-image": (Phase.FAILED, failed_image),
    "succeeded": (Phase.SUCCEEDED, succeeded),
    "progressing": (Phase.PROGRESSING, progressing),
    "paused": (Phase.PAUSED, paused),
    "promoting": (Phase.PROMOTING, promoting),
    "awaiting-approval": (Phase.AWAITING_APPROVAL, awaiting_approval),
    "rolled-back": (Phase.ROLLED_BACK, rolled_back),
    "degraded-hold": (Phase.DEGRADED, degraded_hold),
    "degraded-invalid-spec": (Phase.DEGRADED, degraded_invalid_spec),
}


def test_every_phase_has_a_case() -> None:
    assert {phase for phase, _ in CASES.values()} == set(Phase)


@pytest.mark.parametrize("name", list(CASES))
def test_conditions_agree_with_the_phase(name: str) -> None:
    phase, build = CASES[name]
    status = build()
    assert status.phase == phase, f"{name}: {status.phase}"
    check_conditions(status)


def test_the_checker_catches_a_contradiction() -> None:
    status = failed_invalid_first_spec()
    contradicting = [c.model_copy(update={"status": "True"}) if c.type == "Progressing" else c for c in status.conditions]
    with pytest.raises(AssertionError, match="Progressing=True"):
        check_conditions(status.model_copy(update={"conditions": contradicting}))
