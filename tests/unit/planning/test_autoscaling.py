"""Autoscaling per variant (issue 9): each variant's scaler bounds as the planner states them.

A variant with a scaler has ``VariantWorkload.scaler`` (its engine, floor and ceiling) and
``replicas`` is that floor: its Deployment's replicas are the scaler's (the simulated
``Cluster.autoscaler`` here), never Headway's. The rules (capacity.py):
stable [minReplicas, maxReplicas], holding its current replicas while an analysis compares
against it and through a promotion; the candidate's floor its share of the stable's current
replicas; weight raised only once that floor is ready; idle variants to zero with KEDA.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from headway.api.status import ModelDeploymentStatus
from headway.planning.analysis import Gate
from headway.planning.capabilities import SCALEDOBJECT
from headway.planning.naming import CANDIDATE, STABLE, ScalerBounds
from headway.planning.observe import DeploymentState
from headway.planning.plan import Plan, plan
from tests.unit.planning.rollout_cases import (
    GATEWAY, OWNER, Cluster, at, canary, deployment_state, labels, model, new_entries, rollout_spec, running, shadow, workload_of,
)

CPU = [{"cpu": {"averageUtilization": 70}}]
RPS = [{"requestsPerSecond": {"average": 20}}]
ANALYSIS = {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}], "failureLimit": 2}
KEDA = frozenset({SCALEDOBJECT})
PROMETHEUS = "http://prometheus.monitoring:9090"


def scaled(version: str, steps: list[dict[str, Any]], *, low: int = 2, high: int = 20, metrics: list[dict[str, Any]] = CPU,
           analysis: bool = False, **autoscaling: Any) -> dict[str, Any]:
    spec = rollout_spec(version, steps)
    del spec["replicas"]
    spec["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}}  # what utilisation targets are percent of
    spec["autoscaling"] = {"minReplicas": low, "maxReplicas": high, "metrics": metrics, **autoscaling}
    if analysis:
        spec["analysis"] = ANALYSIS
    return spec


def bounds(result: Plan, variant: str) -> tuple[str, int, int] | None:
    """(engine, floor, ceiling) of the variant's scaler; None: fixed replicas."""
    w = workload_of(result, variant)
    assert w is not None, f"no {variant} workload"
    return None if w.scaler is None else (w.scaler.engine, w.scaler.min_replicas, w.scaler.max_replicas)


def scale(cluster: Cluster, variant: str, replicas: int) -> None:
    """The variant's scaler moved its Deployment to ``replicas`` (all ready)."""
    live = cluster.live[variant]
    cluster.live[variant] = replace(live, replicas=replicas, ready_replicas=replicas, available_replicas=replicas,
                                    current_available=replicas, complete=True, available=True)


def condition(status: ModelDeploymentStatus, type_: str) -> tuple[str, str, str] | None:
    c = next((c for c in status.conditions if c.type == type_), None)
    return None if c is None else (c.status, c.reason, c.message)


def test_steady_state_stable_scales_between_min_and_max() -> None:
    cluster = running(scaled("1.0.0", []))
    result = cluster.reconcile(at(1))
    assert bounds(result, STABLE) == ("hpa", 2, 20)
    assert workload_of(result, STABLE).replicas == 2  # type: ignore[union-attr]  # the floor, never written
    assert condition(result.status, "ScalerAvailable")[:2] == ("True", "HpaAvailable")  # type: ignore[index]
    assert condition(result.status, "SpecSupported")[0] == "True"  # type: ignore[index]
    scale(cluster, STABLE, 7)  # the scaler's decision survives: the plan states the same bounds
    assert bounds(cluster.reconcile(at(2)), STABLE) == ("hpa", 2, 20)


def test_fixed_replicas_have_no_scaler_and_no_condition() -> None:
    result = running(rollout_spec("1.0.0", [])).reconcile(at(1))
    assert bounds(result, STABLE) is None and workload_of(result, STABLE).replicas == 4  # type: ignore[union-attr]
    assert condition(result.status, "ScalerAvailable") is None


def test_candidate_floor_follows_its_weight_times_the_stables_current_replicas() -> None:
    cluster = running(scaled("1.0.0", [canary(25, "10m")]))
    scale(cluster, STABLE, 8)
    cluster.set_model("2.0.0")
    first = cluster.reconcile(at(0))
    assert bounds(first, CANDIDATE) == ("hpa", 2, 20)  # ceil(25% x 8)
    assert bounds(first, STABLE) == ("hpa", 2, 20)  # no analysis: nothing holds it
    started = cluster.reconcile(at(1))
    assert labels(new_entries(ModelDeploymentStatus(), started.status))[-1] == "StepStarted 1/1"
    scale(cluster, STABLE, 12)
    assert bounds(cluster.reconcile(at(2)), CANDIDATE) == ("hpa", 3, 20)  # recomputed: ceil(25% x 12)
    scale(cluster, STABLE, 80)  # beyond maxReplicas (read within bounds): capped at max
    assert bounds(cluster.reconcile(at(3)), CANDIDATE) == ("hpa", 5, 20)  # ceil(25% x 20)


def test_stable_holds_its_current_replicas_while_an_analysis_compares() -> None:
    cluster = running(scaled("1.0.0", [canary(20, "1m"), {"pause": {}}], analysis=True))
    scale(cluster, STABLE, 6)
    cluster.set_model("2.0.0")
    entering = cluster.reconcile(at(0))
    assert bounds(entering, STABLE) == ("hpa", 2, 20)  # the step has not started: no comparison yet
    running_step = cluster.reconcile(at(1), Gate("Inconclusive", "not enough data"))
    assert running_step.status.rollout is not None and running_step.status.rollout.step_started_at is not None
    assert bounds(running_step, STABLE) == ("hpa", 6, 20)  # does not scale down mid-comparison
    scale(cluster, STABLE, 9)  # scaling up is fine, and the floor follows it up
    assert bounds(cluster.reconcile(at(2), Gate("Inconclusive", "not enough data")), STABLE) == ("hpa", 9, 20)
    paused = cluster.reconcile(at(70), Gate("Pass", "ok"))  # the analysed step ends; the pause is not analysed
    assert paused.status.rollout is not None and paused.status.rollout.step == 1
    assert bounds(paused, STABLE) == ("hpa", 2, 20)


def test_a_weight_is_raised_only_once_the_next_weights_floor_is_ready() -> None:
    cluster = running(scaled("1.0.0", [canary(10, "1m"), canary(50, "1m")]))
    scale(cluster, STABLE, 10)
    cluster.set_model("2.0.0")
    cluster.reconcile(at(0))
    cluster.reconcile(at(1))  # step 1 (10%) started with its one pod
    assert cluster.status.traffic is not None and cluster.status.traffic.candidate_weight == 10
    waiting = cluster.plan(at(62))
    cluster.commit(waiting)
    assert bounds(waiting, CANDIDATE) == ("hpa", 5, 20)  # ceil(50% x 10): capacity first
    assert waiting.traffic is not None and waiting.traffic.weights[CANDIDATE] == 10  # the weight waits
    assert "waiting for fraud_scorer:2.0.0 to be ready for step 2/2: canary 50% (1/5 pods; its scaler's floor is 5" in waiting.status.conditions[1].message
    assert waiting.wake_at is None  # event-driven: the Deployment becoming ready wakes it
    w = workload_of(waiting, CANDIDATE)
    cluster.live[CANDIDATE] = deployment_state(w, 4, replicas=5)  # the scaler asked for 5, 4 are ready
    assert cluster.reconcile(at(63)).traffic.weights[CANDIDATE] == 10  # type: ignore[union-attr]
    cluster.live[CANDIDATE] = deployment_state(w, replicas=5)
    raised = cluster.reconcile(at(64))
    assert raised.traffic is not None and raised.traffic.weights[CANDIDATE] == 50
    assert labels(raised.status.history)[-1] == "StepStarted 2/2"


def test_promotion_keeps_the_stables_capacity_then_releases_it() -> None:
    cluster = running(scaled("1.0.0", [canary(50, "1m")]))
    scale(cluster, STABLE, 9)
    cluster.set_model("2.0.0")
    cluster.reconcile(at(0))
    cluster.reconcile(at(1))
    cluster.frozen = {STABLE}  # the stable Deployment has not rolled to the new template yet
    promoting = cluster.reconcile(at(62))
    assert promoting.status.rollout is not None and promoting.status.rollout.promoting
    assert bounds(promoting, STABLE) == ("hpa", 9, 20)  # the new stable starts at the old one's replicas
    assert workload_of(promoting, STABLE).model.bento == "fraud_scorer:2.0.0"  # type: ignore[union-attr]
    cluster.frozen = set()
    cluster.converge(promoting)  # rolled, at the replicas its scaler kept (9), never minReplicas
    assert cluster.live[STABLE].replicas == 9
    promoted = cluster.reconcile(at(63))
    assert "Promoted" in labels(promoted.status.history)
    assert bounds(promoted, STABLE) == ("hpa", 2, 20) and workload_of(promoted, CANDIDATE) is None


def test_keda_not_installed_fixes_replicas_at_min_and_says_so() -> None:
    spec = scaled("1.0.0", [], low=3, metrics=RPS)
    cluster = Cluster(spec=spec, metrics_url=PROMETHEUS)
    first = cluster.reconcile(at(0))
    assert bounds(first, STABLE) is None and workload_of(first, STABLE).replicas == 3  # type: ignore[union-attr]
    status, reason, message = condition(first.status, "ScalerAvailable")  # type: ignore[misc]
    assert (status, reason) == ("False", "KedaNotInstalled")
    assert "spec.autoscaling" in message and "install KEDA" in message and "minReplicas (3)" in message
    assert [e.reason for e in first.events if e.type == "Warning"] == ["KedaNotInstalled"]
    again = cluster.reconcile(at(1))
    assert "KedaNotInstalled" not in [e.reason for e in again.events]  # said once
    assert again.status.phase == "Succeeded" and condition(again.status, "SpecSupported")[0] == "True"  # type: ignore[index]
    cluster.served = KEDA  # KEDA installed: each variant gets its ScaledObject
    installed = cluster.reconcile(at(2))
    assert bounds(installed, STABLE) == ("keda", 3, 20)
    assert condition(installed.status, "ScalerAvailable")[:2] == ("True", "KedaAvailable")  # type: ignore[index]


def test_a_request_metric_needs_a_prometheus_the_operator_may_call() -> None:
    spec = scaled("1.0.0", [], metrics=CPU + RPS)
    nowhere = plan(OWNER, replace(Cluster(spec=spec, served=KEDA).observed(), allowed_metrics_urls=frozenset()), at(0))
    assert nowhere.workloads is None
    assert [(p.field, "no Prometheus is configured" in p.message) for p in nowhere.status.problems] == [("spec.autoscaling.metrics[1]", True)]
    elsewhere = {**spec, "analysis": {**ANALYSIS, "prometheus": {"url": "http://evil.example.com"}}}
    cluster = Cluster(spec=elsewhere, served=KEDA, metrics_url=PROMETHEUS)
    obs = replace(cluster.observed(), allowed_metrics_urls=frozenset({PROMETHEUS}))
    refused = plan(OWNER, obs, at(0))
    assert {p.field for p in refused.status.problems} == {"spec.analysis.prometheus.url", "spec.autoscaling.metrics[1]"}
    own = plan(OWNER, replace(Cluster(spec=spec, served=KEDA, metrics_url=PROMETHEUS).observed(), allowed_metrics_urls=frozenset({PROMETHEUS})), at(0))
    assert own.status.problems == [] and bounds(own, STABLE) == ("keda", 2, 20)  # the operator's own Prometheus


def test_a_shadow_candidate_keeps_pods_for_its_mirrored_traffic_even_with_scale_to_zero() -> None:
    """Mirrored requests need pods to reach: a shadow candidate at 0 would get no series, so neither
    KEDA nor the analysis would ever see load (the step could never pass)."""
    spec = scaled("1.0.0", [shadow(50, "1m"), canary(20, "1m")], low=1, metrics=RPS, scaleToZero=True)
    cluster = running(spec, served=KEDA, metrics_url=PROMETHEUS)
    scale(cluster, STABLE, 10)
    cluster.set_model("2.0.0")
    entering = cluster.reconcile(at(0))
    assert bounds(entering, CANDIDATE) == ("keda", 5, 20)  # sized for 50% mirrored: ceil(50% x 10)
    assert bounds(entering, STABLE) == ("keda", 1, 20)  # serving: never to zero
    shadowing = cluster.reconcile(at(1))
    assert shadowing.traffic is not None and shadowing.traffic.mirror == (CANDIDATE, 50)
    assert "CandidateUnavailable" not in cluster.reasons()


def test_experiment_arms_each_scale_with_a_floor_from_the_controls_replicas() -> None:
    spec = {"model": model("1.0.0"), "traffic": GATEWAY,
            "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "metrics": RPS, "scaleToZero": True},
            "experiment": {"variants": [{"name": "control", "weight": 70}, {"name": "b", "weight": 30, "model": model("2.0.0")},
                                        {"name": "pinned", "weight": 0, "model": model("3.0.0")}],
                           "match": [{"header": {"name": "x-arm", "value": "pinned"}, "variant": "pinned"}]}}
    cluster = Cluster(spec=spec, served=KEDA, metrics_url=PROMETHEUS)
    cluster.reconcile(at(0))
    scale(cluster, STABLE, 8)
    result = cluster.reconcile(at(1))
    assert bounds(result, STABLE) == ("keda", 6, 10)  # control: ceil(70% x 8), at least minReplicas
    assert bounds(result, "b") == ("keda", 3, 10)  # ceil(30% x 8)
    assert bounds(result, "pinned") == ("keda", 1, 10)  # no weight, but pinned requests need a pod


def test_bake_previous_and_rolled_back_candidate_run_fixed_replicas() -> None:
    spec = scaled("1.0.0", [canary(50, "1m")])
    spec["rollout"]["bakeTime"] = "5m"
    cluster = running(spec)
    cluster.set_model("2.0.0")
    cluster.reconcile(at(0))
    cluster.reconcile(at(1))
    cluster.reconcile(at(62))
    baking = cluster.reconcile(at(63))
    assert baking.status.bake is not None
    previous = workload_of(baking, "previous")
    assert previous is not None and previous.scaler is None and previous.replicas == 1
    cluster.set_model("3.0.0")
    cluster.reconcile(at(400))
    cluster.reconcile(at(401))
    rolled = cluster.reconcile(at(402), Gate("Fail", "bad", rollback=True))
    assert rolled.status.rolled_back is not None and bounds(rolled, CANDIDATE) is None


class Autoscaler:
    """A busy autoscaler: at every reconcile it moves each scaled variant somewhere within its bounds."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __call__(self, variant: str, b: ScalerBounds, live: DeploymentState | None) -> int:
        current = live.replicas if live is not None and live.exists else b.min_replicas
        return max(b.min_replicas, min(b.max_replicas, current + self.rng.randint(-4, 4)))


def all_bounds(result: Plan) -> dict[str, tuple[str, int, int] | None]:
    return {w.variant: bounds(result, w.variant) for w in result.workloads or []}


def replan_without_flip_flop(cluster: Cluster, now_s: float, gate: Gate | None) -> None:
    """Reconciles with the same observation settle: bounds never go back to what they were before a change."""
    seen = [all_bounds(cluster.last)]  # type: ignore[arg-type]
    for _ in range(3):
        seen.append(all_bounds(cluster.commit(cluster.plan(at(now_s), gate))))
    changes = [b for i, b in enumerate(seen) if i == 0 or b != seen[i - 1]]
    assert len(changes) == len({repr(sorted(b.items())) for b in changes}), f"bounds flip-flop: {changes}"
    assert seen[-1] == seen[-2], f"bounds do not settle: {seen}"


@pytest.mark.parametrize("traffic, steps", [
    (GATEWAY, [shadow(50, "1m"), canary(10, "1m"), canary(50, "1m")]),
    (None, [canary(25, "1m"), {"pause": {"duration": "30s"}}, canary(75, "1m")]),  # no router: the split is the pod ratio
])
def test_replay_an_autoscaler_changing_replicas_through_a_whole_rollout(traffic: dict[str, Any] | None, steps: list[dict[str, Any]]) -> None:
    for seed in range(5):
        spec = scaled("1.0.0", steps, analysis=True)
        if traffic is None:
            del spec["traffic"]
        cluster = running(spec, autoscaler=Autoscaler(seed))
        cluster.set_model("2.0.0")
        t = 0.0
        while t < 1200 and not (cluster.status.rollout is None and "Promoted" in labels(cluster.status.history)):
            result = cluster.reconcile(at(t), Gate("Pass", "ok"))
            for variant, b in all_bounds(result).items():
                if variant in (STABLE, CANDIDATE):
                    assert b is not None, f"t={t}: fixed replicas planned for {variant}, which has a scaler"
                    live = cluster.seen.get(variant)
                    if variant == STABLE and result.status.rollout is not None and result.status.rollout.promoting:
                        assert live is not None and b[1] == min(max(live.replicas, 2), 20)
            replan_without_flip_flop(cluster, t, Gate("Pass", "ok"))
            t += 7
        assert "Promoted" in labels(cluster.status.history), (seed, labels(cluster.status.history))
        final = cluster.reconcile(at(t))
        assert all_bounds(final) == {STABLE: ("hpa", 2, 20)}
        assert "CandidateUnavailable" not in cluster.reasons()


def test_an_autoscaler_scaling_up_is_not_a_degradation() -> None:
    """Available goes False while new pods start (maxUnavailable 0); the stable still serves its floor."""
    cluster = running(scaled("1.0.0", []))
    live = cluster.live[STABLE]
    cluster.live[STABLE] = replace(live, replicas=6, ready_replicas=2, available_replicas=2, current_available=2,
                                   available=False, complete=False)
    result = cluster.reconcile(at(100))
    assert result.status.phase == "Succeeded", result.status.phase
    assert condition(result.status, "Ready")[:2] == ("True", "Available")  # type: ignore[index]
    assert "PhaseDegraded" not in cluster.reasons()


def test_a_utilisation_target_needs_the_request_it_is_a_percentage_of() -> None:
    spec = scaled("1.0.0", [])
    del spec["resources"]
    result = plan(OWNER, Cluster(spec=spec).observed(), at(0))
    assert result.workloads is None  # nothing applied: the running model keeps serving
    assert [(p.field, "spec.resources.requests.cpu" in p.message) for p in result.status.problems] == [("spec.autoscaling.metrics[0]", True)]


# --- The scaler's spec is part of the version ---------------------------------------------------


def settings_of(result: Plan, variant: str) -> tuple[int, int] | None:
    """(minReplicas, maxReplicas) of the autoscaling the variant's scaler is rendered from."""
    w = workload_of(result, variant)
    assert w is not None, f"no {variant} workload"
    return None if w.scaler is None else (w.scaler.settings.min_replicas, w.scaler.settings.max_replicas)


def with_autoscaling(spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**spec, "autoscaling": {**spec["autoscaling"], **changes}}


def test_a_change_to_autoscaling_rolls_out_like_a_model_change() -> None:
    spec = scaled("1.0.0", [canary(50, "1m")])
    cluster = running(spec)
    scale(cluster, STABLE, 6)
    before = cluster.status.stable
    assert before is not None
    cluster.spec = with_autoscaling(spec, maxReplicas=8)  # same model, a smaller ceiling
    started = cluster.reconcile(at(0))
    assert started.status.rollout is not None and started.status.rollout.revision != before.revision
    message = next(e.message for e in started.events if e.reason == "RolloutStarted")
    assert "(spec.autoscaling: hpa 2-20 replicas on cpu 70% -> hpa 2-8 replicas on cpu 70%)" in message
    assert settings_of(started, CANDIDATE) == (2, 8) and bounds(started, CANDIDATE) == ("hpa", 3, 8)  # ceil(50% x 6)
    assert settings_of(started, STABLE) == (2, 20) and bounds(started, STABLE) == ("hpa", 2, 20)  # stable keeps its own scaler
    assert cluster.status.stable_model is not None and cluster.status.stable_model.autoscaling is not None
    assert cluster.status.stable_model.autoscaling.max_replicas == 20
    cluster.reconcile(at(1))  # the step starts with the candidate's pods
    promoting = cluster.reconcile(at(62))
    assert promoting.status.rollout is not None and promoting.status.rollout.promoting
    assert settings_of(promoting, STABLE) == (2, 8) and bounds(promoting, STABLE) == ("hpa", 6, 8)  # its replicas, within the new ceiling
    promoted = cluster.reconcile(at(63))
    assert "Promoted" in labels(promoted.status.history)
    assert settings_of(promoted, STABLE) == (2, 8) and workload_of(promoted, CANDIDATE) is None
    assert cluster.status.stable_model is not None and cluster.status.stable_model.autoscaling is not None
    assert cluster.status.stable_model.autoscaling.max_replicas == 8


def test_without_autoscaling_a_version_is_its_model_and_keeps_its_revision() -> None:
    """Versions recorded before autoscaling was part of them keep their revision: no rollout at upgrade."""
    from headway.api.spec import ModelDeploymentSpec
    from headway.planning.naming import desired_version, revision_of
    from headway.planning.observe import parse_status

    spec = ModelDeploymentSpec.model_validate(rollout_spec("1.0.0", [canary(10, "1m")]))
    assert revision_of(desired_version(spec)) == revision_of(spec.model)
    assert desired_version(spec).dump() == spec.model.dump()
    cluster = running(rollout_spec("1.0.0", [canary(10, "1m")]))
    recorded = {**cluster.status.dump(), "stableModel": spec.model.dump()}  # as an older operator recorded it
    cluster.status = parse_status(recorded)
    steady = cluster.reconcile(at(0))
    assert steady.status.rollout is None and steady.status.phase == "Succeeded" and not steady.events


def test_autoscaling_added_to_fixed_replicas_rolls_out_and_the_stable_keeps_its_pods_until_promotion() -> None:
    fixed = rollout_spec("1.0.0", [canary(50, "1m")], replicas=5)
    cluster = running(fixed)
    wanted = scaled("1.0.0", [canary(50, "1m")], low=2, high=20)
    cluster.spec = wanted
    started = cluster.reconcile(at(0))
    assert started.status.rollout is not None
    assert bounds(started, STABLE) is None and workload_of(started, STABLE).replicas == 5  # type: ignore[union-attr]
    assert bounds(started, CANDIDATE) == ("hpa", 3, 20)  # ceil(50% x the 5 it runs)
    cluster.reconcile(at(1))
    promoting = cluster.reconcile(at(62))
    assert promoting.status.rollout is not None and promoting.status.rollout.promoting
    assert bounds(promoting, STABLE) == ("hpa", 5, 20)  # its scaler starts at the replicas it ran, not minReplicas
    promoted = cluster.reconcile(at(63))
    assert "Promoted" in labels(promoted.status.history) and bounds(promoted, STABLE) == ("hpa", 2, 20)


def test_autoscaling_removed_keeps_the_stables_scaler_until_the_fixed_version_is_promoted() -> None:
    spec = scaled("1.0.0", [canary(50, "1m")])
    cluster = running(spec)
    scale(cluster, STABLE, 6)
    fixed = rollout_spec("1.0.0", [canary(50, "1m")], replicas=4)
    fixed["resources"] = spec["resources"]
    cluster.spec = fixed
    started = cluster.reconcile(at(0))
    assert started.status.rollout is not None
    assert bounds(started, STABLE) == ("hpa", 2, 20) and bounds(started, CANDIDATE) is None
    assert workload_of(started, CANDIDATE).replicas == 3  # type: ignore[union-attr]  # ceil(50% x the stable's 6)
    cluster.reconcile(at(1))
    cluster.reconcile(at(62))
    promoted = cluster.reconcile(at(63))
    assert "Promoted" in labels(promoted.status.history)
    assert bounds(promoted, STABLE) is None and workload_of(promoted, STABLE).replicas == 4  # type: ignore[union-attr]


def test_an_experiment_applies_autoscaling_to_every_arm_at_once() -> None:
    """An experiment has no candidate to canary a scaler on: its arms take the new autoscaling together."""
    spec = scaled("1.0.0", [], high=10)
    spec["traffic"] = GATEWAY
    spec["experiment"] = {"variants": [{"name": "a", "weight": 70}, {"name": "b", "weight": 30, "model": model("2.0.0")}]}
    cluster = running(spec)
    cluster.reconcile(at(0))
    cluster.spec = with_autoscaling(spec, maxReplicas=12)
    changed = cluster.reconcile(at(1))
    assert settings_of(changed, STABLE) == (2, 12) and settings_of(changed, "b") == (2, 12)
    assert changed.status.rollout is None


def test_without_a_router_adding_autoscaling_never_shrinks_the_fixed_stable() -> None:
    """The split is the pod ratio: a fixed stable sized from what it runs must not give up pods again at every reconcile."""
    fixed = rollout_spec("1.0.0", [canary(25, "10m")], replicas=8)
    del fixed["traffic"]
    cluster = running(fixed)
    wanted = scaled("1.0.0", [canary(25, "10m")])
    del wanted["traffic"]
    cluster.spec = wanted
    sizes = [workload_of(cluster.reconcile(at(t)), STABLE).replicas for t in range(6)]  # type: ignore[union-attr]
    assert sizes == [8] * 6, sizes


def test_an_autoscaling_change_rolled_back_under_an_older_status_is_not_retried_after_the_upgrade() -> None:
    """Status written when revisions hashed the model alone: the rolled-back version keeps its meaning."""
    from headway.api.spec import ModelDeploymentSpec
    from headway.planning.naming import revision_of
    from headway.planning.observe import parse_status

    spec = scaled("1.0.0", [canary(50, "1m")])
    cluster = running(spec)
    cluster.spec = {**spec, "model": model("2.0.0")}
    v2 = ModelDeploymentSpec.model_validate(cluster.spec).model
    legacy = {**cluster.status.dump(), "stableModel": ModelDeploymentSpec.model_validate(spec).model.dump(),
              "rolledBack": {"revision": revision_of(v2), "bento": v2.bento, "reason": "FailedAnalysis", "message": "5% errors",
                             "at": "2026-01-01T00:00:00Z"}}
    cluster.status = parse_status(legacy)
    after = cluster.reconcile(at(0))
    assert after.status.phase == "RolledBack" and "RolloutStarted" not in cluster.reasons()
    assert workload_of(after, CANDIDATE) is not None and workload_of(after, CANDIDATE).replicas == 0  # type: ignore[union-attr]


def test_a_spec_change_during_a_promotion_leaves_the_promoting_versions_scaler_alone() -> None:
    spec = scaled("1.0.0", [canary(50, "1m")])
    cluster = running(spec)
    scale(cluster, STABLE, 6)
    cluster.spec = with_autoscaling(spec, maxReplicas=8)
    cluster.reconcile(at(0))
    cluster.reconcile(at(1))
    cluster.frozen = {STABLE}  # the stable has not rolled yet: the promotion is in progress
    promoting = cluster.reconcile(at(62))
    assert promoting.status.rollout is not None and promoting.status.rollout.promoting
    cluster.spec = with_autoscaling(spec, maxReplicas=12)  # changed again meanwhile
    again = cluster.reconcile(at(63))
    assert settings_of(again, STABLE) == (2, 8)
    candidate = workload_of(again, CANDIDATE)  # still carries the last step's share: the promoting version, with its scaler
    assert candidate is not None and candidate.model == again.status.stable_model and settings_of(again, CANDIDATE) == (2, 8)


def test_promoting_a_version_whose_keda_is_not_served_keeps_the_stables_replicas() -> None:
    spec = scaled("1.0.0", [canary(50, "1m")], analysis=False)
    cluster = running(spec, metrics_url=PROMETHEUS)
    scale(cluster, STABLE, 8)
    cluster.spec = {**spec, "autoscaling": {**spec["autoscaling"], "metrics": RPS}}  # KEDA: not installed
    cluster.reconcile(at(0))
    cluster.reconcile(at(1))
    cluster.frozen = {STABLE}
    promoting = cluster.reconcile(at(62))
    assert promoting.status.rollout is not None and promoting.status.rollout.promoting
    stable = workload_of(promoting, STABLE)
    assert stable is not None and stable.scaler is None and stable.replicas == 8  # not minReplicas (2)


def test_a_stable_whose_scaler_the_new_resources_cannot_serve_keeps_its_replicas() -> None:
    """The stable scales on cpu; the new spec scales on requests and drops requests.cpu: its HPA cannot be rendered."""
    spec = scaled("1.0.0", [canary(50, "1m")])
    cluster = running(spec, served=KEDA, metrics_url=PROMETHEUS)
    scale(cluster, STABLE, 8)
    cluster.spec = {**spec, "resources": {"requests": {"memory": "1Gi"}}, "autoscaling": {**spec["autoscaling"], "metrics": RPS}}
    started = cluster.reconcile(at(0))
    stable = workload_of(started, STABLE)
    assert stable is not None and stable.scaler is None and stable.replicas == 8
