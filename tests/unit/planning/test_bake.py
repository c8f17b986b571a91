"""The bake after a promotion: the previous version as the baseline (planning/bake.py).

The measured tests run the analysis as the reconciler does: each plan asks for a measurement
(``Plan.measure``), the test answers it when it is due with the counts a traffic model gives
over the requested window (requests split as the applied route says, errors as the scenario
says), and the next plan judges it (``analysis.request`` -> ``assess`` -> ``record`` -> ``gate``).
Counts are expected values (fractional, no randomness), so every run is the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from headway.api.status import BakeStatus, Phase
from headway.planning import analysis
from headway.planning.capabilities import SCALEDOBJECT
from headway.planning.measure import MeasureRequest, Measurement
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE
from headway.planning.plan import DRAIN, Plan
from headway.planning.rollout import Gate
from headway.planning.traffic_plan import STABLE_ONLY, carried_share, previous_traffic
from headway.planning.bake import restores
from headway.planning.verdicts import RequestCounts, VariantData, assess
from headway.traffic.registry import render_route, services_for
from headway.api.spec import ModelDeploymentSpec
from tests.unit.planning.test_conditions import check_conditions
from tests.unit.planning.rollout_cases import (
    GATEWAY, OWNER, T0, Cluster, at, canary, labels, new_entries, replicas_of, rollout_spec, running, ts, workload_of,
)

S = STABLE
ISTIO = {"provider": "istio", "istio": {"hosts": ["fraud.ml.example.com"], "gateways": ["gateways/inference"]}}
ANALYSIS = {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}], "minRequests": 200, "failureLimit": 2}
RPS = 20.0  # requests per second to the service
BAKE = 600  # seconds (bakeTime 10m)
Errors = Callable[[str, float], float]  # (variant, seconds since T0) -> its error rate then


def bake_spec(baseline: dict[str, Any] | None = None, *, traffic: dict[str, Any] | None = GATEWAY, analysed: bool = True,
              rollback_without: bool = False, replicas: int = 4) -> dict[str, Any]:
    spec = rollout_spec("2.0.0", [canary(50, "1m")], traffic=traffic, replicas=replicas)
    spec["rollout"]["bakeTime"] = "10m"
    if baseline is not None:
        spec["rollout"]["bakeBaseline"] = baseline
    if rollback_without:
        spec["rollout"]["rollbackWithoutBaseline"] = True
    if analysed:
        spec["analysis"] = ANALYSIS
    return spec


def promoted(spec: dict[str, Any], **options: Any) -> tuple[Cluster, int]:
    """1.0.0 stable, 2.0.0 rolled out (its steps pass on duration) and promoted: the bake begins.
    Returns the cluster and the time (s) of the Promoted reconcile."""
    cluster = running(spec, metrics_url="http://prometheus.monitoring:9090", **options)
    t = 60
    while "Promoted" not in cluster.reasons():
        cluster.reconcile(at(t))
        t += 10
        assert t < 2000, cluster.reasons()
    return cluster, t - 10


def fine(variant: str, t: float) -> float:
    return 0.002


def window_data(cluster: Cluster, req: MeasureRequest, now_s: float, errors: Errors) -> dict[str, VariantData | None]:
    """Each variant's cumulative counts over [window start, now] under the applied split."""
    assert cluster.last is not None and cluster.last.traffic is not None
    traffic = cluster.last.traffic  # constant over a window: a new split starts a new one
    start = (req.window_start - T0).total_seconds()
    data: dict[str, VariantData | None] = {}
    for variant in req.variants:
        rate = RPS * carried_share(traffic, variant) / 100
        seconds = [start + i for i in range(int(now_s - start))]
        data[variant] = VariantData(RequestCounts(rate * len(seconds), sum(rate * errors(variant, s) for s in seconds)))
    return data


def answer(cluster: Cluster, t: float, errors: Errors) -> Measurement | None:
    """The measurement the last plan asked for, if it is due at ``t``."""
    req = cluster.last.measure if cluster.last is not None else None
    if req is None or req.due_at > at(t):
        return None
    return Measurement(req, window_data(cluster, req, t, errors), None, at(t))


def step(cluster: Cluster, t: float, errors: Errors) -> Plan:
    result = cluster.commit(cluster.plan_measured(at(t), answer(cluster, t, errors)))
    cluster.converge(result)
    return result


def bake_through(cluster: Cluster, start: int, errors: Errors, until: int | None = None, stop: str | None = None) -> list[Plan]:
    """Reconcile every 10 s from ``start`` (the bake's end by default), answering measurements when due."""
    results = []
    for t in range(start, until if until is not None else start + BAKE + 20, 10):
        results.append(step(cluster, t, errors))
        if stop is not None and stop in cluster.reasons():
            break
    return results


def history(cluster: Cluster, event: str) -> list[Any]:
    return [h for h in cluster.status.history if h.event == event]


def condition(result: Plan, type_: str) -> tuple[str, str, str]:
    c = next(c for c in result.status.conditions if c.type == type_)
    return c.status, c.reason, c.message


def incident(start: float, end: float, rate: float = 0.06) -> Errors:
    """Every version fails ``rate`` of its requests between start and end (a shared dependency down)."""
    return lambda variant, t: rate if start <= t < end else 0.002


def regression(start: float, rate: float = 0.08) -> Errors:
    """The new stable fails ``rate`` of its requests from ``start`` on; the previous version stays fine."""
    return lambda variant, t: rate if variant == S and t >= start else 0.002


# --- the baseline: sized for its share, fed once available -----------------------------


def test_by_default_the_previous_version_gets_a_full_mirror_once_it_has_the_stables_size() -> None:
    cluster, tp = promoted(bake_spec())
    status = cluster.status
    assert status.bake is not None and (status.bake.baseline, status.bake.baseline_percent) == ("mirror", 100)
    assert status.previous_model is not None and status.previous_model.bento == "fraud_scorer:1.0.0"
    started = history(cluster, "BakeStarted")[0]
    assert started.evidence["baseline"] == {"mode": "mirror", "percent": 100, "variant": PREVIOUS, "bento": "fraud_scorer:1.0.0"}
    assert "compared with fraud_scorer:1.0.0 on 100% of requests mirrored to it" in started.message
    previous = workload_of(cluster.last, PREVIOUS)  # type: ignore[arg-type]
    assert previous is not None and previous.replicas == 4 and previous.model.bento == "fraud_scorer:1.0.0"
    assert cluster.last.traffic == STABLE_ONLY  # type: ignore[union-attr]  # capacity before traffic
    req = analysis.request(ModelDeploymentSpec.model_validate(cluster.spec), status, at(tp + 1))
    assert req is not None and req.targets == ((S, None),)  # judged alone until the previous version serves

    fed = cluster.reconcile(at(tp + 10))
    assert fed.traffic == previous_traffic("mirror", 100)
    assert fed.status.bake is not None and fed.status.bake.baseline_since is not None
    assert fed.status.traffic is not None and fed.status.traffic.split == "stable=100 previous=0 (mirror 100% to previous)"
    entry = fed.status.history[-1]
    assert entry.event == "BakeBaselineStarted" and entry.evidence == {
        "weights": {S: 100, PREVIOUS: 0}, "mirror": {"variant": PREVIOUS, "percent": 100},
        "baseline": {"mode": "mirror", "percent": 100, "variant": PREVIOUS, "bento": "fraud_scorer:1.0.0"}}
    req = analysis.request(ModelDeploymentSpec.model_validate(cluster.spec), fed.status, at(tp + 11))
    assert req is not None and req.targets == ((S, PREVIOUS),) and req.window_start == at(tp + 10)
    assert cluster.reconcile(at(tp + 20)).events == []  # applied once


@pytest.mark.parametrize(("baseline", "replicas", "pods"), [
    ({"mirror": 10}, 4, 1),     # a 1-pod previous version for 10% of a 4-pod stable's requests
    ({"mirror": 100}, 4, 4),    # a full mirror needs the stable's size, not one overwhelmed pod
    ({"mirror": 30}, 10, 3),
    ({"weight": 25}, 8, 2),
    ({"none": True}, 8, 1),     # kept available, no traffic
])
def test_the_previous_version_runs_the_pods_its_share_needs(baseline: dict[str, Any], replicas: int, pods: int) -> None:
    cluster, _ = promoted(bake_spec(baseline, replicas=replicas))
    assert replicas_of(cluster.last, PREVIOUS) == pods  # type: ignore[arg-type]
    assert replicas_of(cluster.last, S) == replicas  # the new stable keeps its full size


def test_a_share_waits_for_all_the_pods_it_needs() -> None:
    cluster, tp = promoted(bake_spec({"mirror": 100}))
    cluster.live[PREVIOUS] = replace(cluster.live[PREVIOUS], ready_replicas=2, available_replicas=2, current_available=2,
                                     complete=False)
    waiting = cluster.plan(at(tp + 10))
    assert waiting.traffic == STABLE_ONLY and "BakeBaselineStarted" not in [e.reason for e in waiting.events]
    assert replicas_of(cluster.reconcile(at(tp + 20)), PREVIOUS) == 4  # converged: all 4 ready
    assert cluster.reconcile(at(tp + 30)).traffic == previous_traffic("mirror", 100)


def test_with_scalers_the_previous_version_is_fixed_at_its_share_of_the_stables_replicas() -> None:
    spec = bake_spec({"mirror": 30})
    del spec["replicas"]
    spec["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}}
    spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 20, "metrics": [{"cpu": {"averageUtilization": 70}}]}
    cluster, tp = promoted(spec, autoscaler=lambda variant, bounds, live: 10)
    result = cluster.reconcile(at(tp + 10))
    previous = workload_of(result, PREVIOUS)
    assert previous is not None and previous.scaler is None and previous.replicas == 3  # ceil(30% of 10)


def test_without_a_router_the_default_is_a_small_live_weight_beside_a_full_stable() -> None:
    cluster, tp = promoted(bake_spec(traffic=None, replicas=4))
    assert cluster.status.bake is not None and (cluster.status.bake.baseline, cluster.status.bake.baseline_percent) == ("weight", 5)
    fed = cluster.reconcile(at(tp + 10))
    assert fed.traffic == previous_traffic("weight", 5)
    assert replicas_of(fed, PREVIOUS) == 1 and replicas_of(fed, S) == 4  # the replica ratio: 1 of 5 pods
    assert render_route(OWNER, ModelDeploymentSpec.model_validate(cluster.spec), fed.traffic, services_for(OWNER, fed.workloads or []),
                        {}) == []


def test_without_analysis_nothing_is_fed_or_judged() -> None:
    cluster, tp = promoted(bake_spec(analysed=False))
    assert cluster.status.bake is not None and cluster.status.bake.baseline == "none"
    assert "nothing judges it" in history(cluster, "BakeStarted")[0].message
    assert cluster.reconcile(at(tp + 10)).traffic == STABLE_ONLY
    assert replicas_of(cluster.last, PREVIOUS) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(("traffic", "baseline"), [(GATEWAY, {"mirror": 10}), (GATEWAY, {"weight": 5}), (ISTIO, {"mirror": 10}),
                                                   (ISTIO, {"weight": 5})])
def test_the_route_sends_the_previous_version_its_share(traffic: dict[str, Any], baseline: dict[str, Any]) -> None:
    cluster, tp = promoted(bake_spec(baseline, traffic=traffic))
    fed = cluster.reconcile(at(tp + 10))
    assert fed.traffic is not None
    (route,) = render_route(OWNER, ModelDeploymentSpec.model_validate(cluster.spec), fed.traffic,
                            services_for(OWNER, fed.workloads or []), {})
    previous = "fraud-scorer-previous"
    if traffic is GATEWAY:
        rule = route["spec"]["rules"][-1]
        weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
        mirrors = [f["requestMirror"] for f in rule.get("filters", [])]
        if "mirror" in baseline:
            assert weights == {"fraud-scorer-stable": 100, previous: 0}
            assert mirrors == [{"backendRef": {"name": previous, "port": 3000}, "percent": 10}]
        else:
            assert weights == {"fraud-scorer-stable": 95, previous: 5} and mirrors == []
    else:
        (weighted,) = route["spec"]["http"]
        weights = {d["destination"]["host"].split(".")[0]: d["weight"] for d in weighted["route"]}
        if "mirror" in baseline:
            assert weights == {"fraud-scorer-stable": 100, previous: 0}
            assert weighted["mirror"]["host"] == f"{previous}.ml.svc.cluster.local" and weighted["mirrorPercentage"] == {"value": 10.0}
        else:
            assert weights == {"fraud-scorer-stable": 95, previous: 5} and "mirror" not in weighted


def test_a_previous_version_that_loses_its_pods_loses_its_share_and_the_stable_is_judged_alone() -> None:
    cluster, tp = promoted(bake_spec({"weight": 10}))
    cluster.reconcile(at(tp + 10))
    cluster.broken.add(PREVIOUS)
    cluster.reconcile(at(tp + 20))  # converges to 0 ready
    lost = cluster.reconcile(at(tp + 30))
    assert lost.traffic == STABLE_ONLY and lost.status.bake is not None and lost.status.bake.baseline_since is None
    assert [e.reason for e in lost.events] == ["BakeBaselineUnavailable"] and lost.events[0].type == "Warning"
    req = analysis.request(ModelDeploymentSpec.model_validate(cluster.spec), lost.status, at(tp + 31))
    assert req is not None and req.targets == ((S, None),)
    cluster.broken.clear()
    cluster.reconcile(at(tp + 40))
    assert cluster.reconcile(at(tp + 50)).traffic == previous_traffic("weight", 10)
    assert labels(cluster.status.history).count("BakeBaselineStarted") == 2


def test_a_new_baseline_in_the_spec_restarts_the_comparison() -> None:
    cluster, tp = promoted(bake_spec({"mirror": 10}))
    cluster.reconcile(at(tp + 10))
    cluster.spec = bake_spec({"weight": 20})
    changed = cluster.reconcile(at(tp + 20))  # 1 pod was enough for 10%, 20% of 4 needs 1 too
    assert [e.reason for e in changed.events] == ["BakeBaselineChanged", "BakeBaselineStarted"]
    assert changed.traffic == previous_traffic("weight", 20) and changed.status.bake.baseline_since == changed.status.history[-1].time  # type: ignore[union-attr]


# --- what a breach does --------------------------------------------------------------------


def test_an_incident_shared_with_the_previous_version_restores_nothing() -> None:
    cluster, tp = promoted(bake_spec())
    tb = tp + 10  # the previous version gets its mirror here
    results = bake_through(cluster, tb, incident(tb + 150, tb + 400))
    assert "RolledBack" not in cluster.reasons() and "BakeBreach" not in cluster.reasons()
    shared = [r for r in results if r.verdicts and r.verdicts[0][1].result == "Inconclusive" and "so is the baseline" in r.verdicts[0][1].reason]
    assert shared, "the incident was never seen"
    during = shared[0]
    assert condition(during, "SLOsMet")[0] == "Unknown" and "against fraud_scorer:1.0.0" in condition(during, "SLOsMet")[2]
    assert during.status.phase == Phase.SUCCEEDED and condition(during, "Degraded")[0] == "False"
    done = history(cluster, "BakeCompleted")[0]
    assert cluster.status.stable_model.bento == "fraud_scorer:2.0.0" and cluster.status.bake is None  # type: ignore[union-attr]
    verdict = done.evidence["analysis"]["verdicts"][0]
    assert verdict["variant"] == S and verdict["baselineValue"] > 0.01  # the previous version breached too: in the evidence
    assert done.evidence["baseline"]["mode"] == "mirror"


def test_the_same_incident_without_a_baseline_is_reported_not_rolled_back() -> None:
    cluster, tp = promoted(bake_spec({"none": True}))
    results = bake_through(cluster, tp + 10, incident(tp + 160, tp + 410))
    assert "RolledBack" not in cluster.reasons()
    assert Counter(cluster.reasons())["BakeBreach"] == 1  # once per run of failed looks, not at every reconcile
    breach = history(cluster, "BakeBreach")[0]
    assert breach.evidence["rolledBack"] is False and breach.evidence["baseline"]["mode"] == "none"
    assert breach.evidence["analysis"]["verdicts"][0]["result"] == "Fail"
    assert "not compared with the previous version: there is no baseline" in breach.message
    assert "rollbackWithoutBaseline: true restores" in breach.message
    reported = next(r for r in results if r.status.bake is not None and r.status.bake.breach_reported_at)
    assert reported.status.phase == Phase.DEGRADED
    assert condition(reported, "Degraded")[:2] == ("True", "BakeBreach")
    assert condition(reported, "Progressing")[0] == "False"  # nothing is in progress: the stable itself is degraded
    slos = condition(reported, "SLOsMet")
    assert slos[:2] == ("False", "BreachReported") and "without a baseline" in slos[2]
    assert [e for e in reported.events if e.reason == "PhaseDegraded"] or any(e.reason == "PhaseDegraded" for e in cluster.events)
    assert cluster.status.stable_model.bento == "fraud_scorer:2.0.0"  # type: ignore[union-attr]
    assert "a breach was reported and not rolled back" in history(cluster, "BakeCompleted")[0].message


def test_with_rollback_without_baseline_the_same_incident_restores_the_previous_version() -> None:
    cluster, tp = promoted(bake_spec({"none": True}, rollback_without=True))
    bake_through(cluster, tp + 10, incident(tp + 160, tp + 410), stop="RolledBack")
    status = cluster.status
    assert status.phase == Phase.ROLLED_BACK and status.rolled_back is not None and status.rolled_back.reason == "FailedBake"
    assert status.stable_model.bento == "fraud_scorer:1.0.0"  # type: ignore[union-attr]
    entry = history(cluster, "RolledBack")[0]
    assert "rollbackWithoutBaseline" in entry.message and entry.evidence["baseline"]["mode"] == "none"


def test_a_stable_worse_than_the_previous_version_is_rolled_back_with_the_evidence() -> None:
    cluster, tp = promoted(bake_spec())
    tb = tp + 10
    results = bake_through(cluster, tb, regression(tb + 120), stop="RolledBack")
    assert "BakeBreach" not in cluster.reasons()  # shown against the previous version at once
    rolled = results[-1]
    status = rolled.status
    assert status.phase == Phase.ROLLED_BACK and status.rolled_back is not None and status.rolled_back.reason == "FailedBake"
    assert "against fraud_scorer:1.0.0" in status.rolled_back.message
    assert status.stable_model.bento == "fraud_scorer:1.0.0" and status.bake is None  # type: ignore[union-attr]
    assert workload_of(rolled, S).model.bento == "fraud_scorer:1.0.0"  # type: ignore[union-attr]
    assert rolled.traffic == STABLE_ONLY
    entry = status.history[-1]
    assert entry.event == "RolledBack" and "shown against the previous version" in entry.message
    verdicts = entry.evidence["analysis"]["verdicts"]
    assert [(v["variant"], v["result"]) for v in verdicts] == [(S, "Fail")]
    assert verdicts[0]["value"] > 0.01 and verdicts[0]["baselineValue"] == pytest.approx(0.002)
    assert entry.evidence["analysis"]["purpose"] == "bake" and entry.evidence["baseline"]["mode"] == "mirror"
    assert [e.type for e in rolled.events if e.reason == "RolledBack"] == ["Warning"]
    again = step(cluster, tb + 2000, regression(tb + 120))  # the rolled-back revision is not retried
    assert again.status.phase == Phase.ROLLED_BACK and replicas_of(again, CANDIDATE) == 0


@pytest.mark.parametrize("baseline", [{"weight": 5}, {"mirror": 5}])
def test_a_thin_baseline_neither_restores_on_a_shared_incident_nor_hides_a_breach(baseline: dict[str, Any]) -> None:
    """The previous version gets 1 req/s. A 6% incident both share: its few requests cannot show it within the
    SLO, so the new stable's breach is not attributed: reported, nothing restored. The same holds for a new
    stable at 3% beside a previous version at 0.2% until the previous version's requests tell them apart."""
    cluster, tp = promoted(bake_spec(baseline))
    tb = tp + 10
    results = bake_through(cluster, tb, incident(tb + 250, tb + 600))
    assert "RolledBack" not in cluster.reasons()
    assert Counter(cluster.reasons())["BakeBreach"] == 1
    breach = history(cluster, "BakeBreach")[0]
    assert "not shown within the SLO" in breach.message and breach.evidence["rolledBack"] is False
    verdict = breach.evidence["analysis"]["verdicts"][0]
    assert verdict["result"] == "Inconclusive" and verdict["breachUnattributed"] is True and verdict["baselineValue"] is not None
    reported = next(r for r in results if r.status.bake is not None and r.status.bake.breach_reported_at)
    assert reported.status.phase == Phase.DEGRADED and condition(reported, "Degraded")[:2] == ("True", "BakeBreach")
    assert cluster.status.stable_model.bento == "fraud_scorer:2.0.0"  # type: ignore[union-attr]

    cluster, tp = promoted(bake_spec(baseline))
    tb = tp + 10
    bake_through(cluster, tb, regression(tb + 250, rate=0.03), stop="BakeBreach")
    assert "RolledBack" not in cluster.reasons()
    verdict = history(cluster, "BakeBreach")[0].evidence["analysis"]["verdicts"][0]
    assert verdict["breachUnattributed"] is True and verdict["value"] > 0.01


def test_a_breach_before_the_previous_version_has_enough_requests_is_reported_then_rolled_back_once_compared() -> None:
    cluster, tp = promoted(bake_spec({"mirror": 10}))
    tb = tp + 10
    bake_through(cluster, tb, regression(tb), stop="RolledBack")  # bad from the start; 2 req/s mirrored: 100 s to minRequests
    assert labels(cluster.status.history)[-3:] == ["BakeBaselineStarted", "BakeBreach", "RolledBack"]
    breach = history(cluster, "BakeBreach")[0]
    assert "fewer than minRequests" in breach.message
    assert breach.evidence["analysis"]["verdicts"][0].get("baselineValue") is None  # the previous version: too few requests yet
    rolled = history(cluster, "RolledBack")[0]
    assert rolled.evidence["analysis"]["verdicts"][0]["baselineValue"] == pytest.approx(0.002)


def test_a_live_weight_without_a_router_rolls_back_and_drains_the_previous_version() -> None:
    cluster, tp = promoted(bake_spec(traffic=None))
    tb = tp + 10
    results = bake_through(cluster, tb, regression(tb + 250, 0.1), stop="RolledBack")
    rolled = results[-1]
    assert rolled.status.rolled_back is not None and rolled.status.rolled_back.reason == "FailedBake"
    assert history(cluster, "RolledBack")[0].evidence["baseline"]["mode"] == "weight"
    # The previous version served users: it keeps its pods while traffic moves off it, then goes.
    assert PREVIOUS in rolled.keep and [d.variant for d in rolled.status.draining] == [PREVIOUS]
    assert workload_of(rolled, PREVIOUS) is None and replicas_of(rolled, S) == 4  # no longer planned: kept as it is
    later = cluster.reconcile(at(tb + 2000 + DRAIN.total_seconds()))
    assert PREVIOUS not in later.keep and later.status.draining == [] and workload_of(later, PREVIOUS) is None


def test_an_inconclusive_limit_never_restores_a_compared_previous_version() -> None:
    spec = bake_spec(rollback_without=True)
    spec["analysis"] = {**ANALYSIS, "inconclusiveLimit": 2, "onInconclusive": "rollback"}
    cluster, tp = promoted(spec)
    bake_through(cluster, tp + 10, incident(tp + 160, tp + 700))
    assert "RolledBack" not in cluster.reasons()
    breach = history(cluster, "BakeBreach")
    assert breach and "inconclusive analyses never restore" in breach[0].message
    assert "rollbackWithoutBaseline: true" not in breach[0].message  # it would not help


def test_the_bake_ends_and_the_previous_version_goes() -> None:
    cluster, tp = promoted(bake_spec())
    bake_through(cluster, tp + 10, fine)
    status = cluster.status
    assert status.bake is None and status.previous_model is None and status.phase == Phase.SUCCEEDED
    assert workload_of(cluster.last, PREVIOUS) is None and cluster.last.traffic == STABLE_ONLY  # type: ignore[arg-type, union-attr]
    done = history(cluster, "BakeCompleted")[0]
    assert "last analysis Pass" in done.message and done.evidence["analysis"]["verdicts"][0]["baselineValue"] == pytest.approx(0.002)
    assert labels(status.history)[-3:] == ["BakeStarted", "BakeBaselineStarted", "BakeCompleted"]


def test_no_bake_without_bake_time() -> None:
    spec = rollout_spec("2.0.0", [canary(50, "1m")])
    cluster = running(spec)
    t = 60
    while "Promoted" not in cluster.reasons():
        cluster.reconcile(at(t))
        t += 10
    assert cluster.status.bake is None and workload_of(cluster.last, PREVIOUS) is None  # type: ignore[arg-type]


def test_a_gate_given_directly_restores_only_on_compared_evidence() -> None:
    """The gate's evidence is what decides: a Fail with a baselineValue restores, one without is reported."""
    cluster, tp = promoted(bake_spec())
    cluster.reconcile(at(tp + 10))
    blind = {"purpose": "bake", "verdicts": [{"slo": "errorRate", "variant": S, "result": "Fail", "value": 0.2}]}
    reported = cluster.reconcile(at(tp + 20), Gate("Fail", "error rate 20% > 1%", rollback=True, evidence=blind))
    assert reported.status.phase == Phase.DEGRADED and [e.reason for e in reported.events][0] == "BakeBreach"
    shown = {"purpose": "bake", "verdicts": [{"slo": "errorRate", "variant": S, "result": "Fail", "value": 0.2, "baselineValue": 0.001}]}
    rolled = cluster.reconcile(at(tp + 30), Gate("Fail", "error rate 20% > 1%", rollback=True, evidence=shown))
    assert rolled.status.phase == Phase.ROLLED_BACK and rolled.status.history[-1].evidence["analysis"] == shown  # type: ignore[index]


# --- a crash at any line of the bake decides the same ------------------------------------


def drive_with_crashes(spec: dict[str, Any], errors: Errors, mode: str) -> Cluster:
    """The bake where every reconcile is planned twice from the same status (the first attempt dies
    before its status write): replay (same now, same measurement), later (5 s later) or applied (the
    first attempt's children converged). Only the second attempt is committed."""
    cluster, tp = promoted(spec)
    for t in range(tp + 10, tp + 10 + BAKE + 20, 10):
        measurement = answer(cluster, t, errors)
        before = cluster.status
        first = cluster.plan_measured(at(t), measurement)
        if mode == "replay":
            second = cluster.plan_measured(at(t), measurement)
            assert second == first, f"t={t}: not deterministic"
        else:
            if mode == "applied":
                cluster.converge(first)
            second = cluster.plan_measured(at(t + 5), measurement)
        a, b = labels(new_entries(before, first.status)), labels(new_entries(before, second.status))
        assert b[: len(a)] == a, f"t={t}: the crashed attempt decided {a}, the retry {b}"
        cluster.commit(second)
        cluster.converge(second)
    return cluster


SCENARIOS = {
    "shared-incident": (bake_spec(), lambda tb: incident(tb + 150, tb + 400)),
    "regression": (bake_spec(), lambda tb: regression(tb + 120)),
    "no-baseline": (bake_spec({"none": True}), lambda tb: incident(tb + 150, tb + 400)),
    "weight-no-router": (bake_spec(traffic=None), lambda tb: regression(tb + 250, 0.1)),
}


@pytest.mark.parametrize("mode", ["replay", "later", "applied"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_crash_at_any_point_of_the_bake_replays_to_the_same_decisions(scenario: str, mode: str) -> None:
    spec, make = SCENARIOS[scenario]
    reference, tp = promoted(spec)
    errors = make(tp + 10)
    bake_through(reference, tp + 10, errors)
    crashed = drive_with_crashes(spec, errors, mode)
    assert labels(crashed.status.history) == labels(reference.status.history)
    decisions = ("RolledBack", "BakeBreach", "BakeCompleted", "BakeBaselineStarted")
    assert [r for r in crashed.reasons() if r in decisions] == [r for r in reference.reasons() if r in decisions]
    assert crashed.status.stable_model == reference.status.stable_model
    assert (crashed.status.rolled_back is None) == (reference.status.rolled_back is None)


# --- how often: the operator's own assess -> record -> gate -> restores over random counts ------


def restored_runs(p_stable: float, p_previous: float, share: int, runs: int, looks: int = BAKE // 30) -> int:
    """Bakes of 10 minutes (a look every 30 s) with binomial errors at RPS, the previous version fed
    ``share``% of the requests mirrored: in how many does the gate restore the previous version?"""
    cfg = ModelDeploymentSpec.model_validate(bake_spec({"mirror": share})).analysis
    assert cfg is not None
    req = analysis.AnalysisRequest("bake", "rev", T0, ((S, PREVIOUS),))
    bake = BakeStatus(revision="rev", bento="fraud_scorer:2.0.0", since=ts(0), until=ts(BAKE), baseline="mirror",
                      baseline_percent=share, baseline_since=ts(0))
    restored = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        n = [0.0, 0.0]
        k = [0.0, 0.0]
        status = None
        for look in range(1, looks + 1):
            for i, (fraction, p) in enumerate(((1.0, p_stable), (share / 100, p_previous))):
                served = rng.poisson(RPS * 30 * fraction)
                n[i] += served
                k[i] += rng.binomial(served, p)
            verdicts = [(S, v) for v in assess(cfg.slos, VariantData(RequestCounts(n[0], k[0])), VariantData(RequestCounts(n[1], k[1])),
                                               cfg.min_requests)]
            status = analysis.record(cfg, status, req, verdicts, None, at(30 * look))
            gate = analysis.gate(cfg, status, req)
            if gate.rollback and restores(gate, bake, False)[0]:
                restored += 1
                break
    return restored


@pytest.mark.parametrize("rate", [0.015, 0.03, 0.06])
def test_an_incident_both_versions_share_rarely_restores_the_previous_version(rate: float) -> None:
    """The issue's 43%: a shared incident judged alone. Against the default full mirror: at most 1%."""
    assert restored_runs(rate, rate, 100, runs=200) <= 2


def test_a_regression_against_the_full_mirror_is_restored() -> None:
    assert restored_runs(0.04, 0.002, 100, runs=100) == 100


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_conditions_agree_with_the_phase_at_every_reconcile_of_the_bake(scenario: str) -> None:
    spec, make = SCENARIOS[scenario]
    cluster, tp = promoted(spec)
    phases = set()
    for result in bake_through(cluster, tp + 10, make(tp + 10)):
        check_conditions(result.status)
        phases.add(result.status.phase)
    assert Phase.SUCCEEDED in phases
    # Degraded only for a breach not compared (no baseline) or not attributed (a 5% baseline: its bounds still
    # straddle the max when the regression shows, so it is reported before the comparison restores it).
    assert (Phase.DEGRADED in phases) == (scenario in ("no-baseline", "weight-no-router"))
    if scenario == "weight-no-router":
        assert labels(cluster.status.history)[-2:] == ["BakeBreach", "RolledBack"]


def test_a_retried_versions_bake_starts_afresh_not_from_the_failed_bakes_evidence() -> None:
    """FailedBake, retry, promote: the new bake belongs to the new rollout and judges it on its own evidence."""
    cluster, tp = promoted(bake_spec())
    tb = tp + 10
    bake_through(cluster, tb, regression(tb + 120), stop="RolledBack")
    assert cluster.status.rolled_back is not None and cluster.status.rolled_back.reason == "FailedBake"
    t = tb + 1000
    cluster.annotate("retry", "1")
    for _ in range(3):
        step(cluster, t, fine)
        t += 10
    cluster.annotate("promote", "1")
    while "Promoted" not in [e.reason for e in cluster.events[-40:]] or cluster.status.bake is None:
        step(cluster, t, fine)
        t += 10
        assert t < tb + 3000, cluster.reasons()
    cluster.events.clear()
    bake_through(cluster, t, fine, stop="RolledBack")  # the whole bake, both versions fine
    assert "RolledBack" not in cluster.reasons() and "BakeCompleted" in cluster.reasons(), cluster.reasons()
