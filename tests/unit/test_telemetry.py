"""The operator's own metrics that the Grafana dashboard draws (headway.telemetry), from pure inputs.

- A recorded verdict sets the SLO's verdict, value and bound, and how far each Fail test has gone
  towards its decision (``headway_slo_evidence_ratio``: 1 at the boundary), the same share that
  ``kubectl headway get`` prints;
- series of an SLO or a test no longer judged, and of a variant no longer routed, are removed;
- a deleted ModelDeployment leaves no series behind, and other ModelDeployments keep theirs;
- the work queue exports its depth, how long keys wait and its retries; the Kubernetes client
  times every request by verb (against the API server emulator).

The metrics live in the process-wide registry: each test uses its own namespace, and counters are
compared before and after.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from headway import telemetry
from headway.api.spec import ModelDeploymentSpec
from headway.api.status import AnalysisStatus, CarriedEvidence, ModelDeploymentStatus, RolloutStatus
from headway.handlers.queue import WorkQueue
from headway.k8s.client import SERVICE, Kube, make_api_client
from headway.kubectl_plugin import evidence as shown
from headway.planning import analysis
from headway.planning.stats import evidence_threshold
from headway.planning.verdict_types import DEFAULT_ALPHA, RequestCounts, VariantData
from headway.planning.verdicts import Verdict, assess
from headway.sandbox.apiserver import KubeEmulator

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
SPEC = ModelDeploymentSpec.model_validate({
    "model": {"bento": "fraud_scorer:2.0.0", "image": "registry.example.com/fraud:2"},
    "rollout": {"steps": [{"canary": {"weight": 10, "duration": "5m"}}, {"pause": {}}]},
    "analysis": {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}, {"latency": {"percentile": 99, "max": "250ms"}}]},
})
SLOS = 2
_namespaces = itertools.count()


@pytest.fixture()
def md() -> tuple[str, str]:
    """A ModelDeployment of its own (the registry is shared by every test of the process)."""
    return f"telemetry-{next(_namespaces)}", "fraud"


def value(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def series(metric: str, namespace: str) -> set[tuple[tuple[str, str], ...]]:
    """The label sets of ``metric``'s samples in one namespace."""
    return {tuple(sorted(s.labels.items())) for family in REGISTRY.collect() for s in family.samples
            if s.name == metric and s.labels.get("namespace") == namespace}


def judged(candidate: tuple[int, int], stable: tuple[int, int]) -> tuple[list[tuple[str, Verdict]], AnalysisStatus]:
    """One look of a canary step's analysis, as the planner records it: (requests, errors) per variant."""
    status = ModelDeploymentStatus(rollout=RolloutStatus(revision="rev2", bento="fraud_scorer:2.0.0", step=0,
                                                         step_started_at="2026-11-22T12:00:00Z"))
    req = analysis.request(SPEC, status, T0 + timedelta(minutes=1))
    assert req is not None and SPEC.analysis is not None
    verdicts = [("candidate", v) for v in assess(SPEC.analysis.slos, VariantData(RequestCounts(*candidate)),
                                                 VariantData(RequestCounts(*stable)), SPEC.analysis.min_requests,
                                                 carried=analysis.carried(None, req))]
    return verdicts, analysis.record(SPEC.analysis, None, req, verdicts, None, T0 + timedelta(minutes=1))


def test_a_recorded_verdict_sets_its_value_bound_and_evidence(md: tuple[str, str]) -> None:
    namespace, name = md
    # 2% errors against stable's 0.1%: the relative test has decided (Fail), the breach test not yet.
    verdicts, status = judged((400, 8), (4000, 4))
    assert [(v.slo, v.result) for _, v in verdicts] == [("errorRate", "Fail"), ("latency-p99", "Inconclusive")]
    telemetry.record_verdicts(namespace, name, verdicts, status, SLOS)

    error_rate = {"namespace": namespace, "name": name, "variant": "candidate", "slo": "errorRate"}
    assert value("headway_slo_verdict", **error_rate) == -1
    assert value("headway_slo_value", **error_rate) == pytest.approx(0.02)
    assert value("headway_slo_threshold", **error_rate) == pytest.approx(0.01)
    latency = {**error_rate, "slo": "latency-p99"}
    assert value("headway_slo_verdict", **latency) == 0
    assert value("headway_slo_value", **latency) is None  # nothing measured: no value, yet its bound (1% slower than 250ms)
    assert value("headway_slo_threshold", **latency) == pytest.approx(0.01)

    relative = value("headway_slo_evidence_ratio", **error_rate, test="relative")
    breach = value("headway_slo_evidence_ratio", **error_rate, test="breach")
    assert relative == 1.0  # the test that decided the Fail is at the boundary
    assert breach is not None and 0.0 < breach < 0.5
    # The number kubectl headway get prints under the SLO ("towards Fail NN%") is the gauge's.
    level = shown.fail_level("errorRate", SLOS, status)
    assert level == DEFAULT_ALPHA / SLOS / 2
    (log_wealth,) = [e.log_wealth for e in status.evidence if e.test == "breach"]
    assert shown.progress(math.log(sum(map(math.exp, log_wealth)) / len(log_wealth)), level) == pytest.approx(breach)
    # The latency SLO has no requests: no Fail test has any evidence, so none is exported.
    assert {dict(s)["slo"] for s in series("headway_slo_evidence_ratio", namespace)} == {"errorRate"}


def test_the_ratio_is_log_e_over_log_one_over_alpha(md: tuple[str, str]) -> None:
    """Half way in log terms is the square root of the e-value a Fail needs; below an e-value of 1 it is 0."""
    namespace, name = md
    level = DEFAULT_ALPHA / SLOS / 2
    half, negative = evidence_threshold(level) / 2, -3.0
    status = AnalysisStatus(revision="rev2", window_start="2026-11-22T12:00:00Z", last_run="2026-11-22T12:01:00Z",
                            result="Inconclusive", evidence=[
                                CarriedEvidence(slo="errorRate", test="breach", null=0.01, log_wealth=[half, half]),
                                CarriedEvidence(slo="errorRate", test="relative", null=0.1, log_wealth=[negative])])
    verdict = Verdict("errorRate", "Inconclusive", 0.012, 0.01, 900, 0.001, None, None, "not yet")
    telemetry.record_verdicts(namespace, name, [("candidate", verdict)], status, SLOS)
    labels = {"namespace": namespace, "name": name, "variant": "candidate", "slo": "errorRate"}
    assert value("headway_slo_evidence_ratio", **labels, test="breach") == pytest.approx(0.5)
    assert math.exp(half) == pytest.approx(math.sqrt(1 / level))
    assert value("headway_slo_evidence_ratio", **labels, test="relative") == 0.0


def test_an_experiment_exports_no_evidence_ratio(md: tuple[str, str]) -> None:
    """An experiment's decision compares its arms: there is no Fail boundary to draw."""
    namespace, name = md
    status = AnalysisStatus(revision="rev2", purpose="experiment", window_start="2026-11-22T12:00:00Z",
                            last_run="2026-11-22T12:01:00Z", result="Inconclusive",
                            evidence=[CarriedEvidence(slo="errorRate", test="breach", null=0.01, log_wealth=[2.0])])
    verdicts = [(arm, Verdict("errorRate", "Pass", 0.001, 0.01, 5000, None, None, None, "met")) for arm in ("a", "b")]
    telemetry.record_verdicts(namespace, name, verdicts, status, 1)
    assert {dict(s)["variant"] for s in series("headway_slo_verdict", namespace)} == {"a", "b"}
    assert series("headway_slo_evidence_ratio", namespace) == set()


def test_what_is_no_longer_judged_goes_and_no_new_look_changes_nothing(md: tuple[str, str]) -> None:
    namespace, name = md
    verdicts, status = judged((400, 8), (4000, 4))
    telemetry.record_verdicts(namespace, name, verdicts, status, SLOS)
    before = {m: series(m, namespace) for m in ("headway_slo_verdict", "headway_slo_threshold", "headway_slo_evidence_ratio")}

    telemetry.record_verdicts(namespace, name, [], status, SLOS)  # a reconcile without a new measurement
    assert {m: series(m, namespace) for m in before} == before

    # The latency SLO was removed from the spec, and the relative test has no evidence any more (a bake: no baseline).
    error_rate = [(variant, v) for variant, v in verdicts if v.slo == "errorRate"]
    bake = status.model_copy(update={"purpose": "bake", "evidence": [e for e in status.evidence if e.test == "breach"]})
    telemetry.record_verdicts(namespace, name, error_rate, bake, 1)
    assert {dict(s)["slo"] for s in series("headway_slo_verdict", namespace)} == {"errorRate"}
    assert {dict(s)["slo"] for s in series("headway_slo_threshold", namespace)} == {"errorRate"}
    assert {dict(s)["test"] for s in series("headway_slo_evidence_ratio", namespace)} == {"breach"}


def test_a_deleted_modeldeployment_leaves_no_series_and_others_keep_theirs(md: tuple[str, str]) -> None:
    namespace, name = md
    verdicts, status = judged((400, 8), (4000, 4))
    for who in (name, "other"):
        telemetry.record_verdicts(namespace, who, verdicts, status, SLOS)
        telemetry.record_weights(namespace, who, {"stable": 90, "candidate": 10})
        telemetry.count_rollback(namespace, who, "FailedAnalysis")
        telemetry.COST.set(namespace, who, {"stable": 1.5}, {})
    per_md = ("headway_slo_verdict", "headway_slo_value", "headway_slo_threshold", "headway_slo_evidence_ratio",
              "headway_traffic_weight_percent", "headway_rollbacks_total")

    def names(metric: str) -> set[str]:
        return {dict(s).get("name", dict(s).get("modeldeployment", "")) for s in series(metric, namespace)}

    assert all(names(m) == {name, "other"} for m in (*per_md, "headway_cost_hourly"))
    telemetry.forget_model(namespace, name)
    assert {m: names(m) for m in (*per_md, "headway_cost_hourly")} == {m: {"other"} for m in (*per_md, "headway_cost_hourly")}
    telemetry.forget_model(namespace, name)  # twice (a DELETED event, then the reconcile that finds it gone): harmless


def test_rollbacks_count_per_modeldeployment_and_sum_over_all(md: tuple[str, str]) -> None:
    namespace, name = md
    total = value("headway_rollbacks_total", namespace=namespace, name=name, reason="FailedAnalysis")
    assert total is None
    telemetry.count_rollback(namespace, name, "FailedAnalysis")
    telemetry.count_rollback(namespace, name, "FailedAnalysis")
    telemetry.count_rollback(namespace, "other", "Aborted")
    assert value("headway_rollbacks_total", namespace=namespace, name=name, reason="FailedAnalysis") == 2
    assert value("headway_rollbacks_total", namespace=namespace, name="other", reason="Aborted") == 1


def test_a_variant_no_longer_routed_leaves_the_weights(md: tuple[str, str]) -> None:
    namespace, name = md
    telemetry.record_weights(namespace, name, {"stable": 90, "candidate": 10})
    telemetry.record_weights(namespace, name, {"stable": 100})  # promoted: the candidate is gone
    assert {dict(s)["variant"] for s in series("headway_traffic_weight_percent", namespace)} == {"stable"}
    assert value("headway_traffic_weight_percent", namespace=namespace, name=name, variant="stable") == 100


# -- the work queue and the API client -------------------------------------------------------------


def queue_numbers() -> tuple[float, float, float, float]:
    return (value("headway_queue_depth") or 0.0, value("headway_queue_wait_seconds_count") or 0.0,
            value("headway_queue_wait_seconds_sum") or 0.0, value("headway_queue_retries_total") or 0.0)


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_queue_exports_its_depth_waits_and_retries() -> None:
    now = [100.0]  # the queue's clock: frozen, so a backoff never comes due during the test
    done: list[str] = []

    def run(namespace: str, name: str) -> None:
        done.append(name)
        if name == "a":
            raise RuntimeError("the API server is down")

    depth0, waits0, waited0, retries0 = queue_numbers()
    queue = WorkQueue(run, workers=1, clock=lambda: now[0])
    try:
        queue.add("ml", "a")
        queue.add("ml", "b")
        queue.add("ml", "a")  # already queued: once
        assert queue_numbers()[0] - depth0 == 2
        now[0] = 102.5  # both waited 2.5 s before a worker was free
        queue.start()
        wait_until("both reconciled", lambda: sorted(done) == ["a", "b"])
        wait_until("the failure retried", lambda: queue_numbers()[3] - retries0 == 1)
        depth, waits, waited, _ = queue_numbers()
        assert depth == depth0  # nothing waits for a worker: "a" waits for its backoff, which is not queued
        assert waits - waits0 == 2 and waited - waited0 == pytest.approx(5.0)
        assert queue.next_wake("ml", "a") is not None
    finally:
        queue.stop()


def test_a_stopped_queue_leaves_no_depth_behind() -> None:
    """Another queue of the process (the gauge sums them) must not count keys no worker will take."""
    depth0 = queue_numbers()[0]
    queue = WorkQueue(lambda namespace, name: None, workers=1, ready=lambda: False)  # never synced: nothing is taken
    queue.start()
    for name in ("a", "b", "c"):
        queue.add("ml", name)
    assert queue_numbers()[0] - depth0 == 3 and queue.depth() == 3
    queue.stop()
    assert queue_numbers()[0] == depth0 and queue.depth() == 0


@pytest.fixture()
def kube(tmp_path: Path) -> Iterator[Kube]:
    """A client of the API server emulator (tests/e2e uses the same one)."""
    with KubeEmulator.running_in_thread() as emulator:
        yield Kube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))


def test_every_api_request_is_timed_by_verb_and_a_watch_is_not(kube: Kube) -> None:
    def timed(verb: str) -> float:
        return value("headway_api_request_duration_seconds_count", verb=verb) or 0.0

    before = {verb: timed(verb) for verb in ("get", "post", "watch")}
    kube.create(SERVICE, "default", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "timed"},
                                     "spec": {"ports": [{"port": 80}]}})
    assert kube.get(SERVICE, "default", "timed") is not None
    assert kube.get(SERVICE, "default", "absent") is None  # a 404 is answered too: its time counts
    listed = kube.list_raw(SERVICE, "default")
    for _ in kube.watch(SERVICE, "default", None, listed["metadata"]["resourceVersion"], timeout_seconds=1):
        pass
    assert timed("post") - before["post"] == 1
    assert timed("get") - before["get"] == 3  # two gets and the list
    assert timed("watch") == before["watch"] == 0
    assert (value("headway_api_request_duration_seconds_sum", verb="get") or 0.0) > 0.0
