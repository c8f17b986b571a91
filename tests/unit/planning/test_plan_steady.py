"""The plan of a ModelDeployment with one version: phase, conditions, history and Events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from headway.api.status import ModelDeploymentStatus, Phase
from headway.planning.naming import Owner, revision_of
from headway.api.spec import ModelSpec
from headway.planning.naming import STABLE
from headway.planning.observe import observe_deployment, parse_status
from headway.planning.plan import Observation, plan

OWNER = Owner("fraud-scorer", "ml", "uid-1")
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
MODEL = {"bento": "fraud_scorer:3.2.0", "image": "registry.example.com/fraud-scorer:3.2.0"}
SPEC = {"model": MODEL, "replicas": 2}
REVISION = revision_of(ModelSpec.model_validate(MODEL))


def deployment(ready: int, replicas: int = 2, *, updated: int | None = None, revision: str = REVISION,
               available: bool | None = None, deadline: bool = False, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    available = ready > 0 if available is None else available
    conditions = [{"type": "Available", "status": "True" if available else "False", "message": "m"}]
    conditions.append({"type": "Progressing", "status": "False" if deadline else "True",
                       "reason": "ProgressDeadlineExceeded" if deadline else "NewReplicaSetAvailable", "message": "p"})
    return {
        "metadata": {"generation": generation, "labels": {"headway.dev/revision": revision}},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": replicas if updated is None else updated,
                   "readyReplicas": ready, "availableReplicas": ready, "conditions": conditions},
    }


def conditions(status: ModelDeploymentStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def step(previous: ModelDeploymentStatus, live: dict | None, spec: dict = SPEC, now: datetime = T0):
    states = {STABLE: observe_deployment(live)} if live is not None else {}
    return plan(OWNER, Observation(raw_spec=spec, generation=1, annotations={}, previous=previous, live=states), now)


@pytest.mark.parametrize("previous_phase, live, phase, ready", [
    (None, None, Phase.PENDING, ("False", "NotCreated")),
    (Phase.PENDING, deployment(0), Phase.PENDING, ("False", "Unavailable")),
    (Phase.PENDING, deployment(2), Phase.SUCCEEDED, ("True", "Available")),
    (Phase.SUCCEEDED, deployment(1, updated=1), Phase.PROGRESSING, ("True", "Available")),
    (Phase.SUCCEEDED, deployment(2, generation=2, observed=1), Phase.PROGRESSING, ("True", "Available")),
    (Phase.SUCCEEDED, deployment(0), Phase.DEGRADED, ("False", "Unavailable")),
    (Phase.PENDING, deployment(0, deadline=True), Phase.FAILED, ("False", "ProgressDeadlineExceeded")),
    (Phase.SUCCEEDED, deployment(2, revision="old"), Phase.PROGRESSING, ("True", "Available")),
])
def test_phase_and_ready_follow_the_deployment(previous_phase, live, phase, ready) -> None:
    previous = ModelDeploymentStatus(phase=previous_phase)
    result = step(previous, live)
    assert result.status.phase == phase
    assert conditions(result.status)["Ready"] == ready
    assert result.workloads is not None and result.workloads[0].replicas == 2


def test_first_plan_deploys_and_records_history_and_an_event() -> None:
    result = step(ModelDeploymentStatus(), None)
    assert [h.event for h in result.status.history] == ["Deployed"]
    assert [e.reason for e in result.events] == ["Deployed"]
    assert result.status.stable and result.status.stable.revision == REVISION


def test_steady_state_is_a_fixed_point() -> None:
    """Planning again from its own output changes nothing and posts no Event."""
    first = step(ModelDeploymentStatus(phase=Phase.PENDING), deployment(2))
    second = step(parse_status(first.status.dump()), deployment(2), now=T0 + timedelta(minutes=5))
    assert second.status == first.status
    assert second.events == []


def test_condition_transition_time_moves_only_on_change() -> None:
    first = step(ModelDeploymentStatus(phase=Phase.PENDING), deployment(2))
    later = step(first.status, deployment(0), now=T0 + timedelta(minutes=1))
    times = {c.type: c.last_transition_time for c in later.status.conditions}
    assert times["Ready"] == "2026-11-22T12:01:00Z"
    assert times["SpecSupported"] == "2026-11-22T12:00:00Z"
    assert [e.reason for e in later.events] == ["PhaseDegraded"]


def test_invalid_spec_leaves_children_untouched_and_says_why_once() -> None:
    running = step(ModelDeploymentStatus(phase=Phase.PENDING), deployment(2)).status
    bad = {"model": {**MODEL, "image": "Not A Reference"}, "replicas": 2}
    result = step(running, deployment(2), spec=bad)
    assert result.workloads is None and result.spec is None
    assert result.status.phase == Phase.DEGRADED
    assert conditions(result.status)["Ready"] == ("True", "Available")  # the old version still serves
    assert conditions(result.status)["Degraded"] == ("True", "InvalidSpec")
    assert result.status.problems[0].field == "spec.model.image"
    assert result.status.stable == running.stable
    assert [e.reason for e in result.events] == ["InvalidSpec", "PhaseDegraded"]
    assert result.status.history[-1].event == "SpecRejected"
    again = step(result.status, deployment(2), spec=bad)
    assert again.events == [] and again.status.history == result.status.history
    fixed = step(again.status, deployment(2))
    assert fixed.status.phase == Phase.SUCCEEDED and "SpecValid" in [e.reason for e in fixed.events]


def test_invalid_first_spec_fails_without_creating_anything() -> None:
    result = step(ModelDeploymentStatus(), None, spec={"model": {**MODEL, "image": "UPPER"}})
    assert result.workloads is None and result.status.phase == Phase.FAILED and result.status.stable is None


def test_new_model_updates_stable_and_records_it() -> None:
    running = step(ModelDeploymentStatus(phase=Phase.PENDING), deployment(2)).status
    new_model = {"bento": "fraud_scorer:3.3.0", "image": "registry.example.com/fraud-scorer:3.3.0"}
    result = step(running, deployment(2), spec={"model": new_model, "replicas": 2})
    assert result.status.phase == Phase.PROGRESSING  # the Deployment still runs the old revision
    assert result.status.history[-1].event == "Updated"
    assert "3.2.0" in result.status.history[-1].message and "3.3.0" in result.status.history[-1].message
    assert result.workloads[0].model.bento == "fraud_scorer:3.3.0"


def test_history_is_bounded() -> None:
    status = ModelDeploymentStatus(phase=Phase.SUCCEEDED)
    for i in range(30):
        spec = {"model": {**MODEL, "bento": f"fraud_scorer:3.{i}.0"}}
        status = step(status, None, spec=spec).status
    assert len(status.history) == 20
    assert status.history[-1].bento == "fraud_scorer:3.29.0"


def test_only_available_pods_of_the_current_template_count_as_current() -> None:
    rolling = deployment(2, replicas=2, updated=1)  # 2 available, 1 of them on the new template
    rolling["status"]["replicas"] = 3  # surge: 2 old + 1 new
    assert observe_deployment(rolling).current_available == 0  # the new pod is not available yet
    rolling["status"]["availableReplicas"] = 3
    assert observe_deployment(rolling).current_available == 1
    unseen = deployment(2, generation=3, observed=2)
    assert observe_deployment(unseen).current_available == 0  # the controller has not seen the new template


def test_observe_deployment_reads_rollout_status() -> None:
    assert not observe_deployment(None).exists
    state = observe_deployment(deployment(1, updated=1))
    assert state.exists and state.available and not state.complete and state.ready_replicas == 1
    assert observe_deployment(deployment(0, replicas=0, available=True)).complete
