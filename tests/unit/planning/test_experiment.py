"""A/B/n experiments through ``plan()``: workloads per variant, weights, pins, status, draining."""

from __future__ import annotations

from typing import Any

import pytest

from headway.api.status import Phase
from headway.planning.plan import DRAIN
from headway.planning.rollout import PinPlan

from tests.unit.planning.rollout_cases import (
    GATEWAY, STABLE, Cluster, at, deployment_state, model, replicas_of, rev, ts, workload_of,
)

S = STABLE
HEADER_PIN = PinPlan("header", "x-cohort", "treatment", "treatment")
COOKIE_PIN = PinPlan("cookie", "cohort", "challenger", "challenger")
VERSIONS = {"treatment": "2.0.0", "challenger": "3.0.0"}


def experiment_spec(control: int = 50, treatment: int | None = 30, challenger: int | None = 20, *,
                    pins: bool = True, extra_match: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """spec.model 1.0.0 as control; treatment 2.0.0 and challenger 3.0.0 (None: not in the experiment)."""
    variants: list[dict[str, Any]] = [{"name": "control", "weight": control}]
    match: list[dict[str, Any]] = []
    for name, weight in (("treatment", treatment), ("challenger", challenger)):
        if weight is None:
            continue
        variants.append({"name": name, "weight": weight, "model": model(VERSIONS[name])})
    if pins and treatment is not None:
        match.append({"header": {"name": "x-cohort", "value": "treatment"}, "variant": "treatment"})
    if pins and challenger is not None:
        match.append({"cookie": {"name": "cohort", "value": "challenger"}, "variant": "challenger"})
    match += extra_match or []
    experiment: dict[str, Any] = {"variants": variants}
    if match:
        experiment["match"] = match
    return {"model": model("1.0.0"), "replicas": 4, "traffic": GATEWAY, "experiment": experiment}


def variants(result: Any) -> dict[str, tuple[str, str, int, int, bool]]:
    """status.variants as {name: (bento, deployment, weight, replicas, available)}."""
    return {v.name: (v.bento, v.deployment, v.weight, v.replicas, v.available) for v in result.status.variants}


def reasons(result: Any) -> list[str]:
    return [e.reason for e in result.events]


def experimenting() -> Cluster:
    """The 50/30/20 experiment with every variant available."""
    cluster = Cluster(spec=experiment_spec())
    cluster.reconcile(at(0))
    result = cluster.reconcile(at(10))
    assert result.status.phase == Phase.SUCCEEDED and result.traffic.weights == {S: 50, "treatment": 30, "challenger": 20}
    cluster.events.clear()
    return cluster


def test_each_variant_runs_its_own_workload_and_the_control_is_the_stable_one() -> None:
    cluster = Cluster(spec=experiment_spec())
    first = cluster.reconcile(at(0))
    assert [(w.variant, w.model.bento, w.replicas) for w in first.workloads] == [
        (S, "fraud_scorer:1.0.0", 4),  # control: carries 100% until the others are available
        ("treatment", "fraud_scorer:2.0.0", 2),  # 30% of 4, rounded up
        ("challenger", "fraud_scorer:3.0.0", 1),  # 20% of 4
    ]
    # Nothing is available yet: every share stays on control, no pin to a variant that cannot serve.
    assert first.traffic.weights == {S: 100, "treatment": 0, "challenger": 0} and first.traffic.pins == ()
    assert first.status.history[-1].event == "Deployed" and first.status.rollout is None and first.status.candidate is None
    running = cluster.reconcile(at(10))
    assert running.traffic.weights == {S: 50, "treatment": 30, "challenger": 20}
    assert running.traffic.pins == (HEADER_PIN, COOKIE_PIN) and running.traffic.mirror is None
    assert variants(running) == {
        "control": ("fraud_scorer:1.0.0", "fraud-scorer-stable", 50, 2, True),
        "treatment": ("fraud_scorer:2.0.0", "fraud-scorer-treatment", 30, 2, True),
        "challenger": ("fraud_scorer:3.0.0", "fraud-scorer-challenger", 20, 1, True),
    }
    assert {v.name: v.revision for v in running.status.variants} == {
        "control": rev("1.0.0"), "treatment": rev("2.0.0"), "challenger": rev("3.0.0")}
    assert (running.status.stable.name, running.status.stable.weight) == (S, 50)
    assert running.status.phase == Phase.SUCCEEDED and running.keep == ()
    assert cluster.reconcile(at(20)).events == []  # a fixed point


def test_the_first_deployment_of_an_experiment_posts_an_event() -> None:
    first = Cluster(spec=experiment_spec()).reconcile(at(0))
    assert "Deployed" in reasons(first)


@pytest.mark.parametrize("down, weights, pins, sizes", [
    pytest.param((), {S: 50, "treatment": 30, "challenger": 20}, (HEADER_PIN, COOKIE_PIN), [2, 2, 1], id="all available"),
    pytest.param(("treatment",), {S: 80, "treatment": 0, "challenger": 20}, (COOKIE_PIN,), [4, 2, 1], id="treatment down"),
    pytest.param(("challenger",), {S: 70, "treatment": 30, "challenger": 0}, (HEADER_PIN,), [3, 2, 1], id="challenger down"),
    pytest.param(("treatment", "challenger"), {S: 100, "treatment": 0, "challenger": 0}, (), [4, 2, 1], id="both down"),
])
def test_only_available_variants_get_traffic(down: tuple[str, ...], weights: dict[str, int], pins: tuple[PinPlan, ...],
                                             sizes: list[int]) -> None:
    cluster = experimenting()
    for name in down:
        cluster.live[name] = deployment_state(workload_of(cluster.last, name), 0)
    result = cluster.reconcile(at(20))
    assert result.traffic.weights == weights and sum(weights.values()) == 100
    assert result.traffic.pins == pins
    assert {name: v[2] for name, v in variants(result).items()} == {
        "control": weights[S], "treatment": weights["treatment"], "challenger": weights["challenger"]}
    assert {name for name, v in variants(result).items() if not v[4]} == set(down)
    assert result.status.phase == (Phase.PROGRESSING if down else Phase.SUCCEEDED)
    assert [w.replicas for w in result.workloads] == sizes, "control grows to carry the share; a down variant keeps its size to recover"
    changed = sorted(e.message for e in result.events if e.reason == "WeightChanged")
    assert len(changed) == (len(down) + 1 if down else 0)


def test_a_variant_that_becomes_available_gets_its_share_back() -> None:
    cluster = experimenting()
    cluster.live["treatment"] = deployment_state(workload_of(cluster.last, "treatment"), 0)
    cluster.frozen = {"treatment"}
    cluster.reconcile(at(20))
    cluster.frozen = set()
    cluster.live["treatment"] = deployment_state(workload_of(cluster.last, "treatment"))
    back = cluster.reconcile(at(30))
    assert back.traffic.weights == {S: 50, "treatment": 30, "challenger": 20}
    assert back.traffic.pins == (HEADER_PIN, COOKIE_PIN)
    assert sorted(e.message for e in back.events if e.reason == "WeightChanged") == [
        "variant control: 80% -> 50%", "variant treatment: 0% -> 30%"]


def test_a_pin_to_control_routes_to_the_stable_workload_whatever_is_available() -> None:
    control_pin = [{"header": {"name": "x-cohort", "value": "control"}, "variant": "control"}]
    cluster = Cluster(spec=experiment_spec(extra_match=control_pin))
    result = cluster.reconcile(at(0))  # nothing available yet
    assert result.traffic.pins == (PinPlan("header", "x-cohort", "control", S),)


def test_editing_weights_shifts_traffic_and_says_so() -> None:
    cluster = experimenting()
    cluster.spec = experiment_spec(40, 40, 20)
    result = cluster.reconcile(at(20))
    assert result.traffic.weights == {S: 40, "treatment": 40, "challenger": 20}
    assert [(e.reason, e.message) for e in result.events] == [
        ("WeightChanged", "variant control: 50% -> 40%"), ("WeightChanged", "variant treatment: 30% -> 40%")]
    assert {name: v[2] for name, v in variants(result).items()} == {"control": 40, "treatment": 40, "challenger": 20}
    assert (replicas_of(result, S), replicas_of(result, "treatment")) == (2, 2)
    assert cluster.reconcile(at(30)).events == []  # once per change


def test_a_removed_variant_drains_then_goes() -> None:
    cluster = experimenting()
    cluster.spec = experiment_spec(70, 30, None)
    removed = cluster.reconcile(at(100))
    assert removed.traffic.weights == {S: 70, "treatment": 30} and removed.traffic.pins == (HEADER_PIN,)
    assert removed.keep == ("challenger",), "its Deployment and Service stay as they are while it drains"
    assert [w.variant for w in removed.workloads] == [S, "treatment"]
    assert [(d.variant, d.since) for d in removed.status.draining] == [("challenger", ts(100))]
    assert variants(removed)["challenger"][2] == 0
    assert "VariantDraining" in reasons(removed)
    assert ("WeightChanged", "variant challenger: 20% -> 0%") in [(e.reason, e.message) for e in removed.events]
    assert "challenger" in cluster.live, "not deleted yet"

    drain = int(DRAIN.total_seconds())
    still = cluster.reconcile(at(100 + drain - 1))
    assert still.keep == ("challenger",) and still.events == []
    assert [(d.variant, d.since) for d in still.status.draining] == [("challenger", ts(100))], "the drain does not restart"

    gone = cluster.reconcile(at(100 + drain))
    assert gone.keep == () and gone.status.draining == [] and "challenger" not in variants(gone)
    assert "challenger" not in cluster.live
    assert gone.traffic.weights == {S: 70, "treatment": 30}
    assert cluster.reconcile(at(100 + drain + 10)).events == []


def test_a_drain_survives_a_restart_from_status() -> None:
    """A new process mid-drain continues it from status.draining: neither restarted nor cut short."""
    cluster = experimenting()
    cluster.spec = experiment_spec(70, 30, None)
    cluster.reconcile(at(100))
    retry = cluster.plan(at(100 + 3))  # same previous status, a little later
    assert [(d.variant, d.since) for d in retry.status.draining] == [("challenger", ts(100))]
    assert retry.keep == ("challenger",) and "VariantDraining" not in reasons(retry)


def test_removing_the_whole_experiment_drains_its_variants() -> None:
    cluster = experimenting()
    cluster.spec = {"model": model("1.0.0"), "replicas": 4, "traffic": GATEWAY}
    result = cluster.reconcile(at(100))
    assert result.traffic.weights == {S: 100}
    assert set(result.keep) == {"treatment", "challenger"}
    assert {d.variant for d in result.status.draining} == {"treatment", "challenger"}
