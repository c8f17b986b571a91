"""End to end: progressive delivery through Gateway API, steered with kubectl annotations.

The operator process runs against the API server; steps take seconds here. Against a
real cluster these need the Gateway API CRDs installed (the tests skip otherwise).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import pytest

from headway.k8s.client import DEPLOYMENT
from tests.e2e.harness import HTTPROUTE, IMAGE, IMAGE_V2, Env, wait_for

pytestmark = pytest.mark.e2e

V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
TRAFFIC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}], "hostnames": ["fraud.ml.example.com"]}}


def spec(steps: list[dict[str, Any]], model: dict[str, str] = V1, **extra: Any) -> dict[str, Any]:
    return {"model": model, "replicas": 4, "traffic": TRAFFIC, "rollout": {"steps": steps}, **extra}


@pytest.fixture(autouse=True)
def gateway_api(env: Env) -> None:
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")


def deployed(env: Env, name: str, steps: list[dict[str, Any]], **extra: Any) -> None:
    env.create_md(name, spec(steps, **extra))
    env.wait_phase(name, "Succeeded")
    assert env.route_split(name) == ({f"{name}-stable": 100}, None)


def candidate_replicas(env: Env, name: str) -> int | None:
    dep = env.kube.get(DEPLOYMENT, env.namespace, f"{name}-candidate")
    return None if dep is None else dep["spec"]["replicas"]


def test_shadow_then_canary_then_promotion(env: Env) -> None:
    steps = [{"shadow": {"percent": 50, "duration": "2s"}}, {"canary": {"weight": 25, "duration": "2s"}}, {"canary": {"weight": 50, "duration": "2s"}}]
    deployed(env, "fraud", steps)
    env.patch_spec("fraud", {"model": V2})

    # Shadow: all live traffic on stable, half of it mirrored to the candidate.
    wait_for("the shadow step", lambda: env.route_split("fraud") == ({"fraud-stable": 100, "fraud-candidate": 0}, 50))
    status = env.status("fraud")  # written before the route that follows it
    assert status["phase"] == "Progressing" and status["rollout"]["step"] == 0
    assert status["candidate"]["bento"] == "fraud_scorer:3.3.0" and status["stable"]["bento"] == "fraud_scorer:3.2.0"
    assert status["traffic"] == {"stableWeight": 100, "candidateWeight": 0, "mirrorPercent": 50,
                                 "split": "stable=100 candidate=0 (mirror 50% to candidate)"}
    assert candidate_replicas(env, "fraud") == 2  # sized for 50% of stable's 4 replicas

    wait_for("canary 25%", lambda: env.route_split("fraud") == ({"fraud-stable": 75, "fraud-candidate": 25}, None))
    wait_for("canary 50%", lambda: env.route_split("fraud") == ({"fraud-stable": 50, "fraud-candidate": 50}, None))
    body = env.wait_history("fraud", "Promoted")
    assert body["stable"]["bento"] == "fraud_scorer:3.3.0"
    wait_for("the candidate to be removed", lambda: candidate_replicas(env, "fraud") is None)
    assert env.route_split("fraud") == ({"fraud-stable": 100}, None)
    stable = env.kube.get(DEPLOYMENT, env.namespace, "fraud-stable")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V2
    body = env.wait_phase("fraud", "Succeeded")
    events = env.history("fraud")
    assert events[events.index("RolloutStarted"):] == [
        "RolloutStarted", "StepStarted", "StepCompleted", "StepStarted", "StepCompleted", "StepStarted", "StepCompleted",
        "PromotionStarted", "Promoted",
    ]
    step_started = [h for h in body["status"]["history"] if h["event"] == "StepStarted"]
    assert [h["evidence"] for h in step_started] == [
        {"weights": {"stable": 100, "candidate": 0}, "mirror": {"variant": "candidate", "percent": 50}},
        {"weights": {"stable": 75, "candidate": 25}}, {"weights": {"stable": 50, "candidate": 50}},
    ]
    env.wait_events("fraud", "RolloutStarted", "StepStarted", "PromotionStarted", "Promoted")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_manual_gate_and_promote_step_from_kubectl(env: Env) -> None:
    deployed(env, "fraud", [{"canary": {"weight": 10, "duration": "1s"}}, {"pause": {}}, {"canary": {"weight": 50, "duration": "1s"}}])
    env.patch_spec("fraud", {"model": V2})
    cond = wait_for("the manual gate", lambda: (c := env.condition("fraud", "Progressing")) and c["reason"] == "Paused" and c)
    assert "manual gate" in cond["message"]
    assert env.status("fraud")["phase"] == "Paused"
    time.sleep(2)  # a hold, not a wait: for longer than the 1 s step before it, nothing moves
    assert env.route_split("fraud")[0] == {"fraud-stable": 90, "fraud-candidate": 10}  # the gate holds the traffic

    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(env.kubeconfig), "-n", env.namespace, "annotate", "md/fraud",
         f"headway.dev/promote-step={time.time()}", "--overwrite"], capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    wait_for("canary 50%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 50, "fraud-candidate": 50})
    env.wait_history("fraud", "Promoted")


def test_abort_then_retry(env: Env) -> None:
    deployed(env, "fraud", [{"canary": {"weight": 20, "duration": "1h"}}])
    env.patch_spec("fraud", {"model": V2})
    wait_for("canary 20%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 80, "fraud-candidate": 20})

    env.annotate("fraud", "headway.dev/abort", "1")
    body = env.wait_phase("fraud", "RolledBack")
    assert body["status"]["rolledBack"]["reason"] == "Aborted"
    assert body["status"]["rolledBack"]["bento"] == "fraud_scorer:3.3.0"
    wait_for("all traffic on stable", lambda: env.route_split("fraud")[0] == {"fraud-stable": 100})  # the route follows the status
    wait_for("the candidate scaled to zero", lambda: candidate_replicas(env, "fraud") == 0)
    assert env.condition("fraud", "Degraded")["reason"] == "RolledBack"
    assert env.condition("fraud", "Ready")["status"] == "True"  # stable still serves
    time.sleep(3)  # a hold, not a wait: for 3 s nothing retries it on its own
    assert env.status("fraud")["phase"] == "RolledBack" and env.history("fraud").count("RolloutStarted") == 1

    env.annotate("fraud", "headway.dev/retry", "1")
    wait_for("canary 20% again", lambda: env.route_split("fraud")[0] == {"fraud-stable": 80, "fraud-candidate": 20})
    status = env.wait_history("fraud", "StepStarted", count=2)
    assert status["phase"] == "Progressing" and status.get("rolledBack") is None
    history = env.history("fraud")
    assert history[history.index("Aborted"):] == ["Aborted", "Retried", "RolloutStarted", "StepStarted"]

    env.annotate("fraud", "headway.dev/promote", "now")
    env.wait_history("fraud", "Promoted")
    env.wait_phase("fraud", "Succeeded")


def test_pause_and_resume_from_kubectl(env: Env) -> None:
    deployed(env, "fraud", [{"canary": {"weight": 10, "duration": "3s"}}, {"canary": {"weight": 40, "duration": "1s"}}])
    env.patch_spec("fraud", {"model": V2})
    wait_for("canary 10%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 90, "fraud-candidate": 10})
    env.annotate("fraud", "headway.dev/paused", "true")
    env.wait_phase("fraud", "Paused")
    time.sleep(5)  # a hold, not a wait: longer than the 3 s step, and paused time does not count
    assert env.route_split("fraud")[0] == {"fraud-stable": 90, "fraud-candidate": 10}
    env.annotate("fraud", "headway.dev/paused", None)
    wait_for("canary 40%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 60, "fraud-candidate": 40})
    assert {"Paused", "Resumed"} <= set(env.history("fraud"))


def test_unavailable_candidate_never_gets_traffic(env: Env) -> None:
    deployed(env, "fraud", [{"canary": {"weight": 20, "duration": "1s"}}])
    env.patch_spec("fraud", {"model": {"bento": "fraud_scorer:9.9.9", "image": "registry.example.com/does-not-exist:9"}})
    wait_for("the candidate Deployment", lambda: candidate_replicas(env, "fraud") == 1)
    wait_for("the rollout waiting for the candidate",
             lambda: "waiting for fraud_scorer:9.9.9" in ((env.condition("fraud", "Progressing") or {}).get("message") or ""))
    time.sleep(3)  # a hold, not a wait: for longer than the 1 s step, the unavailable candidate gets no traffic
    assert env.route_split("fraud")[0] == {"fraud-stable": 100}
    status = env.status("fraud")
    assert status["phase"] == "Progressing" and "waiting for fraud_scorer:9.9.9" in env.condition("fraud", "Progressing")["message"]
    assert env.condition("fraud", "Ready")["status"] == "True"

    # A fixed spec.model replaces the broken candidate and the steps restart.
    env.patch_spec("fraud", {"model": V2})
    env.wait_history("fraud", "CandidateReplaced")
    env.wait_history("fraud", "Promoted")


def test_candidate_failing_mid_rollout_sends_traffic_back_to_stable(env: Env) -> None:
    if not env.emulated:
        pytest.skip("needs to make running pods fail; the emulator's controller status is patched for that")
    deployed(env, "fraud", [{"canary": {"weight": 30, "duration": "1h"}}])
    env.patch_spec("fraud", {"model": V2})
    wait_for("canary 30%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 70, "fraud-candidate": 30})
    # What the Deployment controller reports when the candidate's pods crash-loop.
    env.kube.merge_patch(DEPLOYMENT, env.namespace, "fraud-candidate", {"status": {
        "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": 2,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "pods crash"}],
    }}, subresource="status")
    body = env.wait_phase("fraud", "Degraded")
    wait_for("all traffic on stable", lambda: env.route_split("fraud")[0] == {"fraud-stable": 100})
    assert body["status"]["rollout"]["holdReason"] == "CandidateUnavailable"
    assert "CandidateUnavailable" in env.history("fraud")


def test_experiment_weights_pins_and_drain(env: Env) -> None:
    experiment = {
        "variants": [
            {"name": "control", "weight": 50},
            {"name": "treatment", "weight": 30, "model": {"bento": "fraud_scorer:4.0.0-rc1", "image": IMAGE_V2}},
            {"name": "wild", "weight": 20, "model": {"bento": "fraud_scorer:4.1.0-rc1", "image": IMAGE_V2}},
        ],
        "match": [{"header": {"name": "x-cohort", "value": "treatment"}, "variant": "treatment"}],
    }
    env.create_md("ab", {"model": V1, "replicas": 4, "traffic": TRAFFIC, "experiment": experiment})
    wait_for("all three variants in the route", lambda: env.route_split("ab")[0] == {"ab-stable": 50, "ab-treatment": 30, "ab-wild": 20})
    route = env.route("ab")
    assert route["spec"]["rules"][0]["matches"][0]["headers"] == [{"type": "Exact", "name": "x-cohort", "value": "treatment"}]
    # group, kind and weight are the HTTPRoute CRD's defaults, filled in by the API server
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "ab-treatment", "port": 3000, "group": "", "kind": "Service", "weight": 1}]
    variants = {v["name"]: v for v in env.wait_phase("ab", "Succeeded")["status"]["variants"]}
    assert {n: v["weight"] for n, v in variants.items()} == {"control": 50, "treatment": 30, "wild": 20}
    assert all(v["available"] for v in variants.values())
    if shutil.which("kubectl"):  # what `kubectl get md` shows of an experiment: every variant's share
        table = subprocess.run(["kubectl", "--kubeconfig", str(env.kubeconfig), "-n", env.namespace, "get", "md", "ab"],
                               capture_output=True, text=True, timeout=30)
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()
        assert header.split() == ["NAME", "PHASE", "STABLE", "CANDIDATE", "TRAFFIC", "READY", "AGE"]
        assert "control=50 treatment=30 wild=20" in row and row.split()[1] == "Succeeded"

    experiment["variants"][0]["weight"], experiment["variants"][1]["weight"] = 30, 50
    env.patch_spec("ab", {"experiment": experiment})
    wait_for("the new weights", lambda: env.route_split("ab")[0] == {"ab-stable": 30, "ab-treatment": 50, "ab-wild": 20})

    experiment["variants"][0]["weight"] = 50
    experiment["variants"] = experiment["variants"][:2]
    env.patch_spec("ab", {"experiment": experiment})
    wait_for("wild out of the route", lambda: env.route_split("ab")[0] == {"ab-stable": 50, "ab-treatment": 50})
    assert env.kube.get(DEPLOYMENT, env.namespace, "ab-wild") is not None  # drained first...
    wait_for("wild listed as draining", lambda: [d["variant"] for d in env.status("ab").get("draining", [])] == ["wild"])
    wait_for("wild deleted after the drain", lambda: env.kube.get(DEPLOYMENT, env.namespace, "ab-wild") is None)
    env.wait_events("ab", "WeightChanged", "VariantDraining")


def test_restarts_at_every_step_boundary_and_mid_promotion(env: Env) -> None:
    """SIGKILL the operator whenever the rollout moves on: nothing skipped, repeated or doubled."""
    steps = [{"shadow": {"percent": 100, "duration": "1s"}}, {"canary": {"weight": 10, "duration": "1s"}},
             {"pause": {"duration": "1s"}}, {"canary": {"weight": 60, "duration": "1s"}}]
    deployed(env, "fraud", steps)
    env.patch_spec("fraud", {"model": V2})
    seen: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 120
    while "Promoted" not in env.history("fraud"):
        assert time.monotonic() < deadline, env.history("fraud")
        status = env.status("fraud")
        rollout = status.get("rollout") or {}
        mark = (rollout.get("step"), bool(rollout.get("stepStartedAt")), rollout.get("promoting"))
        if rollout and mark not in seen:
            seen.append(mark)
            env.operator.kill()  # right after the operator recorded a boundary
            env.operator.start()
        time.sleep(0.05)
    assert env.operator.starts >= 6
    history = env.history("fraud")
    tail = history[history.index("RolloutStarted"):]
    assert tail.count("StepStarted") == 4 and tail.count("StepCompleted") == 4
    assert tail.count("PromotionStarted") == 1 and tail.count("Promoted") == 1
    body = env.wait_phase("fraud", "Succeeded")
    assert body["status"]["stable"]["bento"] == "fraud_scorer:3.3.0"
    assert [h["evidence"]["weights"]["candidate"] for h in body["status"]["history"] if h["event"] == "StepStarted"] == [0, 10, 10, 60]


def test_the_bake_mirrors_to_the_previous_version_and_survives_a_restart(env: Env) -> None:
    """After promotion the previous version, sized like the stable, gets a full mirror; the bake
    judges against it (no Prometheus here: Inconclusive), survives a SIGKILL, ends, and drops it."""
    bake = "30s" if env.emulated else "180s"  # long enough to look at it: nothing here waits for its end but the end
    analysis = {"interval": "1s", "slos": [{"errorRate": {"max": 0.01}}]}  # no Prometheus: every look is Inconclusive
    md = {"model": V1, "replicas": 2, "traffic": TRAFFIC, "analysis": analysis,
          "rollout": {"steps": [{"canary": {"weight": 50, "duration": "1h"}}], "bakeTime": bake}}
    env.create_md("fraud", md)
    env.wait_phase("fraud", "Succeeded")
    env.patch_spec("fraud", {"model": V2})
    wait_for("canary 50%", lambda: env.route_split("fraud")[0] == {"fraud-stable": 50, "fraud-candidate": 50})
    env.annotate("fraud", "headway.dev/promote", "now")  # the analysis cannot pass here: a person promotes

    env.wait_history("fraud", "BakeStarted")
    wait_for("the mirror to the previous version",
             lambda: env.route_split("fraud") == ({"fraud-stable": 100, "fraud-previous": 0}, 100))
    previous = env.kube.get(DEPLOYMENT, env.namespace, "fraud-previous")
    assert previous is not None and previous["spec"]["replicas"] == 2  # a full mirror: the stable's size
    assert previous["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    status = env.wait_history("fraud", "BakeBaselineStarted")
    assert status["bake"]["baseline"] == "mirror" and status["bake"]["baselinePercent"] == 100 and status["bake"]["baselineSince"]
    assert status["traffic"]["split"] == "stable=100 previous=0 (mirror 100% to previous)"
    # The bake's first look comes one interval into its window ("not measured yet" until then).
    slos = wait_for("SLOsMet naming the baseline, after a look", lambda: (c := env.condition("fraud", "SLOsMet"))
                    and "against fraud_scorer:3.2.0" in c["message"] and "metrics unavailable" in c["message"] and c)
    assert slos["status"] == "Unknown"
    env.operator.kill()  # mid-bake: the next process carries on from status
    env.operator.start()

    body = env.wait_history("fraud", "BakeCompleted")
    assert body.get("bake") is None and body["stable"]["bento"] == "fraud_scorer:3.3.0"
    wait_for("all traffic on stable, no mirror", lambda: env.route_split("fraud") == ({"fraud-stable": 100}, None))
    wait_for("the previous version removed", lambda: env.kube.get(DEPLOYMENT, env.namespace, "fraud-previous") is None)
    history = env.history("fraud")
    assert history[history.index("Promoted"):] == ["Promoted", "BakeStarted", "BakeBaselineStarted", "BakeCompleted"]
    assert "RolledBack" not in history and env.wait_phase("fraud", "Succeeded")
