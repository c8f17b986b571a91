"""End to end with real parts: the operator judges real BentoML servers through a real Prometheus.

The operator process runs against the emulated API server; every variant's "pod" is a
real BentoML server (headway.sandbox.dataplane plays kubelet), scraped by a real
Prometheus with the labels Headway's PodMonitor guarantees; a load generator sends
traffic to the variants in the proportions the rendered HTTPRoute sets.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import requests

from headway.k8s.client import DEPLOYMENT
from headway.sandbox.dataplane import DataPlane, LoadGenerator
from headway.sandbox.processes import Prometheus, parse_samples
from tests.e2e.harness import Env, wait_for
from tests.realparts.fixtures import DataPlaneFactory

pytestmark = [pytest.mark.e2e, pytest.mark.realparts]

GOOD = "registry.example.com/fraud-scorer:1.0.0"
BAD = "registry.example.com/fraud-scorer:2.0.0-bad"
GOOD_V2 = "registry.example.com/fraud-scorer:2.0.0"
SLOW = "registry.example.com/fraud-scorer:2.0.0-slow"
BEHAVIOURS = {GOOD: {}, GOOD_V2: {}, BAD: {"HEADWAY_FAULT_ERROR_RATE": "0.3"},
              SLOW: {"HEADWAY_FAULT_DELAY_MS": "400", "HEADWAY_FAULT_DELAY_FRACTION": "0.2"}}
TRAFFIC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference"}]}}


def spec(image: str, bento: str, steps: list[dict[str, Any]], prometheus_url: str | None = None,
         latency_max: str = "1s") -> dict[str, Any]:
    analysis: dict[str, Any] = {
        "interval": "3s", "minRequests": 50, "failureLimit": 2,
        "slos": [{"errorRate": {"max": 0.05}}, {"latency": {"percentile": 99, "max": latency_max}}],
    }
    if prometheus_url:
        analysis["prometheus"] = {"url": prometheus_url}
    return {"model": {"bento": bento, "image": image}, "replicas": 2, "traffic": TRAFFIC,
            "rollout": {"steps": steps}, "analysis": analysis}


@pytest.fixture()
def emulated(realparts_env: Env) -> Env:
    if not realparts_env.emulated:
        pytest.skip("a real cluster runs real pods and its own Prometheus")
    return realparts_env


def serving_under_load(env: Env, factory: DataPlaneFactory, plane: DataPlane, md_spec: dict[str, Any],
                       max_seconds: float = 900, max_requests: int = 30_000) -> LoadGenerator:
    """The first version deployed, its server up, and live traffic following the route (until the
    test ends: the bounds only stop a runaway generator, never a phase a loaded machine made slow)."""
    env.create_md("fraud", md_spec)
    env.wait_phase("fraud", "Succeeded")
    plane.wait_serving("fraud-stable")
    return factory.load(plane, "fraud", rate=30, max_seconds=max_seconds, max_requests=max_requests)


def wait_rolled_back(env: Env, why: str) -> dict[str, Any]:
    return wait_for(why, lambda: (b := env.md("fraud")).get("status", {}).get("phase") == "RolledBack" and b, timeout=120)


def test_bad_version_is_rolled_back_on_evidence(emulated: Env, dataplane_factory: DataPlaneFactory) -> None:
    env = emulated
    plane = dataplane_factory(env.kube, env.namespace, BEHAVIOURS)
    load = serving_under_load(env, dataplane_factory, plane, spec(GOOD, "fraud_scorer:1.0.0", [{"canary": {"weight": 30, "duration": "5m"}}]))

    env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:2.0.0", "image": BAD}})
    body = wait_rolled_back(env, "the automatic rollback")
    status = body["status"]
    assert status["rolledBack"]["reason"] == "FailedAnalysis"
    assert status["stable"]["bento"] == "fraud_scorer:1.0.0"
    entry = next(h for h in reversed(status["history"]) if h["event"] == "RolledBack")
    verdicts = entry["evidence"]["analysis"]["verdicts"]
    error_rate = next(v for v in verdicts if v["slo"] == "errorRate")
    assert error_rate["result"] == "Fail" and error_rate["value"] > 0.1 and error_rate["samples"] >= 50
    assert error_rate["pValue"] is not None and error_rate["pValue"] < 0.05
    assert error_rate["baselineValue"] is not None and error_rate["baselineValue"] < 0.02  # stable was fine meanwhile
    assert entry["evidence"]["weights"] == {"stable": 100}
    wait_for("all traffic on stable", lambda: env.route_split("fraud")[0] == {"fraud-stable": 100})  # the route follows the status
    wait_for("the candidate scaled to zero", lambda: (d := env.kube.get(DEPLOYMENT, env.namespace, "fraud-candidate")) and d["spec"]["replicas"] == 0)
    env.wait_events("fraud", "RolledBack")
    assert env.condition("fraud", "Ready")["status"] == "True"
    assert env.operator.metric("headway_rollbacks_total", 'reason="FailedAnalysis"') == 1
    stats = load.stats()
    assert stats.errors("candidate") > 0 and stats.errors("stable") == 0  # users saw the bad version only briefly

    # What the Grafana dashboard's per-ModelDeployment panels draw, from the operator's /metrics: the
    # error-rate SLO's value beside its bound, the Fail test that decided at its boundary
    # (headway_slo_evidence_ratio = 1), and the rollback counted for this ModelDeployment.
    rate = (("slo", "errorRate"), ("variant", "candidate"))
    assert operator_samples(env, "headway_slo_threshold")[rate] == pytest.approx(0.05)  # spec: errorRate max 0.05
    assert operator_samples(env, "headway_slo_value")[rate] > 0.05
    assert operator_samples(env, "headway_slo_verdict")[rate] == -1
    ratios = {dict(labels)["test"]: v for labels, v in operator_samples(env, "headway_slo_evidence_ratio").items()
              if dict(labels)["slo"] == "errorRate"}
    assert max(ratios.values()) == 1.0, ratios  # the Fail was decided by a test that reached its boundary
    assert all(0.0 <= v <= 1.0 for v in ratios.values())
    assert operator_samples(env, "headway_rollbacks_total") == {(("reason", "FailedAnalysis"),): 1.0}


def operator_samples(env: Env, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``metric``'s samples of this test's ModelDeployment "fraud" on the operator's /metrics, by their other labels."""
    text = requests.get(f"http://127.0.0.1:{env.operator.metrics_port}/metrics", timeout=2).text
    return {tuple(sorted((k, v) for k, v in labels.items() if k not in ("namespace", "name"))): value
            for labels, value in parse_samples(text, metric)
            if labels.get("namespace") == env.namespace and labels.get("name") == "fraud"}


def test_slow_version_is_rolled_back_on_latency(emulated: Env, dataplane_factory: DataPlaneFactory) -> None:
    """A version answering 20% of requests 400 ms late breaches p99 <= 250ms (1% may be slower)."""
    env = emulated
    plane = dataplane_factory(env.kube, env.namespace, BEHAVIOURS)
    serving_under_load(env, dataplane_factory, plane,
                       spec(GOOD, "fraud_scorer:1.0.0", [{"canary": {"weight": 40, "duration": "5m"}}], latency_max="250ms"))

    env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:2.0.0", "image": SLOW}})
    body = wait_rolled_back(env, "the rollback on latency")
    entry = next(h for h in reversed(body["status"]["history"]) if h["event"] == "RolledBack")
    latency = next(v for v in entry["evidence"]["analysis"]["verdicts"] if v["slo"] == "latency-p99")
    assert latency["result"] == "Fail" and latency["value"] > 0.05  # ~20% slower than 250 ms, 1% allowed
    assert latency["pValue"] is not None and latency["pValue"] < 0.05
    errors = next(v for v in entry["evidence"]["analysis"]["verdicts"] if v["slo"] == "errorRate")
    assert errors["result"] != "Fail"  # it was the latency, not errors


def test_good_version_is_promoted_on_evidence(emulated: Env, dataplane_factory: DataPlaneFactory) -> None:
    env = emulated
    plane = dataplane_factory(env.kube, env.namespace, BEHAVIOURS)
    serving_under_load(env, dataplane_factory, plane, spec(GOOD, "fraud_scorer:1.0.0", [{"canary": {"weight": 50, "duration": "10s"}}]))

    env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:2.0.0", "image": GOOD_V2}})
    status = env.wait_history("fraud", "Promoted", timeout=120)
    completed = next(h for h in status["history"] if h["event"] == "StepCompleted")
    assert "analysis passed" in completed["message"]
    verdicts = {v["slo"]: v for v in completed["evidence"]["analysis"]["verdicts"]}
    assert verdicts["errorRate"]["result"] == "Pass" and verdicts["errorRate"]["samples"] >= 50
    assert verdicts["errorRate"]["ciHigh"] < 0.05  # shown to meet the SLO, not merely "no breach seen"
    assert verdicts["latency-p99"]["result"] == "Pass"
    assert env.condition("fraud", "SLOsMet")["status"] in ("True", "Unknown")
    assert env.wait_phase("fraud", "Succeeded")["status"]["stable"]["bento"] == "fraud_scorer:2.0.0"

    # Steady state: the new stable is measured every interval; complete once its series flow within
    # the SLOs, as `kubectl wait` sees it. When its metrics stop (its servers gone, their scrape targets
    # with them), it is no longer complete: nothing shows it performs.
    subprocess.run(["kubectl", "--kubeconfig", str(env.kubeconfig), "-n", env.namespace, "wait", "md/fraud",
                    "--for=condition=DeploymentComplete", "--timeout=90s"], check=True, capture_output=True, text=True)
    health = env.status("fraud")["health"]
    assert health["missing"] == [] and {s["slo"] for s in health["slos"]} == {"errorRate", "latency-p99"}
    plane.stop()
    gone = env.wait_condition("fraud", "DeploymentComplete", "False", "MetricsMissing")
    assert "errorRate" in gone["message"] and "latency-p99" in gone["message"]
    assert env.status("fraud")["phase"] == "Succeeded"  # the stable is not rolled back for it


def test_no_promotion_while_prometheus_is_down(emulated: Env, dataplane_factory: DataPlaneFactory, tmp_path: Any) -> None:
    env = emulated
    own = Prometheus(workdir=tmp_path / "prometheus").start()  # this test stops it; the session's stays up
    env.operator.extra_args += ["--allowed-prometheus-url", own.url]  # the spec names it: the operator must allow it
    env.operator.restart()
    try:
        plane = DataPlane(env.kube, env.namespace, BEHAVIOURS, own, workdir=tmp_path / "plane").start()
        dataplane_factory.planes.append(plane)  # stopped at teardown with the others
        serving_under_load(env, dataplane_factory, plane, spec(GOOD, "fraud_scorer:1.0.0", [{"canary": {"weight": 50, "duration": "5s"}}], own.url))
        env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:2.0.0", "image": GOOD_V2}})
        env.wait_history("fraud", "StepStarted")
        own.stop()  # mid-analysis: before any verdict could pass

        time.sleep(20)  # four times the step's duration
        status = env.status("fraud")
        assert "PromotionStarted" not in env.history("fraud") and status["stable"]["bento"] == "fraud_scorer:1.0.0"
        assert status["phase"] == "Progressing" and status["rollout"]["step"] == 0
        assert status["analysis"]["result"] == "Inconclusive" and status["analysis"]["error"]
        assert "waiting for a passing analysis" in env.condition("fraud", "Progressing")["message"]
        assert env.condition("fraud", "SLOsMet")["status"] == "Unknown"
    finally:
        own.stop()


def test_the_bake_judges_the_new_stable_against_the_previous_version(emulated: Env, dataplane_factory: DataPlaneFactory) -> None:
    """After promotion the previous version gets a full mirror of the live requests; the bake's
    verdicts compare the new stable's Prometheus series with the previous version's."""
    env = emulated
    plane = dataplane_factory(env.kube, env.namespace, BEHAVIOURS)
    md = spec(GOOD, "fraud_scorer:1.0.0", [{"canary": {"weight": 50, "duration": "10s"}}])
    md["rollout"]["bakeTime"] = "40s"
    load = serving_under_load(env, dataplane_factory, plane, md)

    env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:2.0.0", "image": GOOD_V2}})
    env.wait_history("fraud", "BakeBaselineStarted", timeout=120)
    # Status is written before the route (write-ahead): wait for the route to follow it.
    wait_for("the mirror to the previous version", lambda: env.route_split("fraud") == ({"fraud-stable": 100, "fraud-previous": 0}, 100))
    plane.wait_serving("fraud-previous", GOOD)  # the previous version runs again, beside the new stable
    status = env.wait_history("fraud", "BakeCompleted", timeout=120)
    done = next(h for h in reversed(status["history"]) if h["event"] == "BakeCompleted")
    assert done["evidence"]["baseline"]["mode"] == "mirror" and done["evidence"]["baseline"]["bento"] == "fraud_scorer:1.0.0"
    assert done["evidence"]["analysis"]["purpose"] == "bake"
    error_rate = next(v for v in done["evidence"]["analysis"]["verdicts"] if v["slo"] == "errorRate")
    assert error_rate["variant"] == "stable" and error_rate["result"] != "Fail"
    assert error_rate.get("baselineValue") is not None  # the previous version's own series, over the same window
    assert load.stats().answered("previous", mirrored=True) >= 50  # mirrored copies reached it; users never saw them
    assert "RolledBack" not in env.history("fraud") and status["stable"]["bento"] == "fraud_scorer:2.0.0"
    wait_for("the previous version removed", lambda: env.kube.get(DEPLOYMENT, env.namespace, "fraud-previous") is None)
