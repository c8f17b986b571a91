"""RolloutRecords written by the reconciler against the API emulator (real API semantics: the CRD's
schema and transition rule, JSON patch, resourceVersion conflicts, garbage collection by owner).

What a user would notice: every rollout leaves a record with exactly the decisions status.history
shows, in order; a record write that fails (the operator dying right after its status write) is
made up by the next reconcile without doubling anything; a steady ModelDeployment writes no record;
deleting the ModelDeployment deletes its records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import headway
from headway.api import crd, record
from headway.k8s.apply import _applied as applied
from headway.k8s.client import ApiError, Kind, Kube, make_api_client
from headway.k8s.records import ROLLOUT_RECORD, apply_records, plan_for
from headway.k8s.cache import LiveReader
from headway.planning.naming import LABEL_MD, Owner
from headway.planning.observe import parse_status
from headway.reconciler import MODEL_DEPLOYMENT, RECORD_RETRY_SECONDS, reconcile
from headway.sandbox.apiserver import KubeEmulator

NS, NAME = "ml", "fraud"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def model(version: str) -> dict[str, str]:
    return {"bento": f"fraud_scorer:{version}", "image": f"registry.example.com/fraud:{version}"}


class RecordingKube(Kube):
    """The real client, counting the writes of RolloutRecords and failing the next one when asked."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.record_writes: list[str] = []
        self.fail_record_write = False

    def _record(self, kind: Kind, verb: str) -> None:
        if kind == ROLLOUT_RECORD:
            if self.fail_record_write:
                self.fail_record_write = False
                raise ApiError(503, "ServiceUnavailable", "the operator died here")
            self.record_writes.append(verb)

    def create(self, kind: Kind, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        self._record(kind, "create")
        return super().create(kind, namespace, body)

    def json_patch(self, kind: Kind, namespace: str | None, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        self._record(kind, "patch")
        return super().json_patch(kind, namespace, name, ops)

    def delete(self, kind: Kind, namespace: str | None, name: str, uid: str | None = None) -> None:
        self._record(kind, "delete")
        super().delete(kind, namespace, name, uid)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeEmulator, RecordingKube]]:
    applied.clear()
    with KubeEmulator.running_in_thread() as emulator:
        emulator.create_namespace(NS)
        emulator.start_deployment_controller(delay=0.05)
        kube = RecordingKube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))
        emulator.install_crd(crd.build_crd())
        emulator.install_crd(record.build_crd())
        kube.create(MODEL_DEPLOYMENT, NS, {
            "apiVersion": MODEL_DEPLOYMENT.api_version, "kind": headway.KIND, "metadata": {"name": NAME, "namespace": NS},
            "spec": {"model": model("1.0.0"), "replicas": 2, "traffic": {"provider": "none"},
                     "rollout": {"steps": [{"canary": {"weight": 50, "duration": "1s"}}]}},
        })
        yield emulator, kube
    applied.clear()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def tick(self, seconds: float = 2.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def status(kube: Kube) -> dict[str, Any]:
    body = kube.get(MODEL_DEPLOYMENT, NS, NAME)
    assert body is not None
    return body.get("status") or {}


def drive(kube: Kube, clock: Clock, what: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
    """Reconcile (the clock moving 2 s each time) until ``done(status)``; the emulator's Deployment
    controller makes pods ready in real time, so this loops on a real deadline."""
    deadline = time.monotonic() + timeout
    while True:
        reconcile(kube, NS, NAME, clock.tick(), rollout_records=10)
        current = status(kube)
        if done(current):
            return current
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {[h['event'] for h in current.get('history', [])]}"
        time.sleep(0.05)


def records(kube: Kube) -> list[dict[str, Any]]:
    items = kube.list(ROLLOUT_RECORD, NS, f"{LABEL_MD}={NAME}")
    return sorted(items, key=lambda r: (r["spec"]["startedAt"], r["metadata"]["name"]))


def events(history: list[dict[str, Any]]) -> list[str]:
    return [h["event"] for h in history]


def decided(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d["time"], d["event"], d.get("revision"), d.get("message"), d.get("evidence")) for d in entries]


def test_each_rollout_is_recorded_with_the_decisions_status_shows(cluster: tuple[KubeEmulator, RecordingKube]) -> None:
    emulator, kube = cluster
    clock = Clock()
    drive(kube, clock, "the first version", lambda s: s.get("phase") == "Succeeded")
    (deployed,) = records(kube)
    md = kube.get(MODEL_DEPLOYMENT, NS, NAME)
    assert md is not None
    assert deployed["spec"]["outcome"] == "Deployed" and deployed["spec"]["modelDeploymentUID"] == md["metadata"]["uid"]
    assert deployed["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]

    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"spec": {"model": model("2.0.0")}})
    final = drive(kube, clock, "the promotion", lambda s: "Promoted" in events(s.get("history", [])) and s.get("phase") == "Succeeded")
    _, promoted = records(kube)
    history = final["history"]
    rollout = history[events(history).index("RolloutStarted"):events(history).index("Promoted") + 1]
    assert decided(promoted["spec"]["decisions"]) == decided(rollout)
    assert promoted["spec"]["outcome"] == "Promoted" and promoted["spec"]["stable"]["bento"] == "fraud_scorer:1.0.0"
    assert promoted["spec"]["finishedAt"] == rollout[-1]["time"]

    # Steady: reconciles with nothing new write no record.
    writes = list(kube.record_writes)
    for _ in range(3):
        reconcile(kube, NS, NAME, clock.tick(), rollout_records=10)
    assert kube.record_writes == writes

    # Deleting the ModelDeployment deletes its records (ownerReferences).
    kube.delete(MODEL_DEPLOYMENT, NS, NAME)
    deadline = time.monotonic() + 10
    while records(kube):
        assert time.monotonic() < deadline, "records left behind by the garbage collector"
        time.sleep(0.05)


def test_a_failed_record_write_is_made_up_by_the_next_reconcile_without_doubling(cluster: tuple[KubeEmulator, RecordingKube]) -> None:
    _, kube = cluster
    clock = Clock()
    drive(kube, clock, "the first version", lambda s: s.get("phase") == "Succeeded")
    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"spec": {"model": model("2.0.0")}})
    drive(kube, clock, "the canary step", lambda s: "StepStarted" in events(s.get("history", [])))
    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"metadata": {"annotations": {"headway.dev/abort": "1"}}})

    kube.fail_record_write = True  # the process "dies" between the status write and the record write
    now = clock.tick()
    result = reconcile(kube, NS, NAME, now, rollout_records=10)
    assert result is not None and result.wake_at is not None and result.wake_at <= now + timedelta(seconds=RECORD_RETRY_SECONDS)
    aborted = status(kube)
    assert aborted["phase"] == "RolledBack" and "Aborted" in events(aborted["history"])
    assert records(kube)[1]["spec"]["outcome"] == "InProgress"  # the record lags behind status

    reconcile(kube, NS, NAME, clock.tick(), rollout_records=10)
    rollout = records(kube)[1]["spec"]
    history = status(kube)["history"]
    assert decided(rollout["decisions"]) == decided(history[events(history).index("RolloutStarted"):])
    assert events(rollout["decisions"]).count("Aborted") == 1 and rollout["outcome"] == "Aborted"


def test_a_write_planned_from_a_stale_record_is_refused_and_the_identity_is_immutable(cluster: tuple[KubeEmulator, RecordingKube]) -> None:
    _, kube = cluster
    clock = Clock()
    drive(kube, clock, "the first version", lambda s: s.get("phase") == "Succeeded")
    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"spec": {"model": model("2.0.0")}})
    drive(kube, clock, "the canary step", lambda s: "StepStarted" in events(s.get("history", [])))
    md = kube.get(MODEL_DEPLOYMENT, NS, NAME)
    assert md is not None
    owner = Owner(NAME, NS, md["metadata"]["uid"])
    reader = LiveReader(kube, MODEL_DEPLOYMENT)

    # A plan made from the record as it was, then someone else's write lands first: 409, nothing appended.
    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"metadata": {"annotations": {"headway.dev/abort": "1"}}})
    reconcile(kube, NS, NAME, clock.tick(), rollout_records=0)  # status moves on, no record written
    stale = plan_for(reader, owner, parse_status(status(kube)), 10)
    assert stale.update
    reconcile(kube, NS, NAME, clock.tick(), rollout_records=10)
    with pytest.raises(ApiError) as refused:
        apply_records(kube, reader, owner, stale)
    assert refused.value.status == 409
    assert events(records(kube)[1]["spec"]["decisions"]).count("Aborted") == 1

    name = records(kube)[1]["metadata"]["name"]
    with pytest.raises(ApiError) as invalid:
        kube.json_patch(ROLLOUT_RECORD, NS, name, [{"op": "replace", "path": "/spec/startedAt", "value": "2020-01-01T00:00:00Z"}])
    assert invalid.value.status == 422 and "never change" in invalid.value.message


def test_without_the_crd_nothing_is_recorded_and_that_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A `helm upgrade` does not install new CRDs: the rollouts go on, the operator says once why nothing is recorded."""
    import headway.reconciler as reconciler

    monkeypatch.setattr(reconciler, "_unrecorded_warned", set())
    applied.clear()
    with KubeEmulator.running_in_thread() as emulator:
        emulator.create_namespace(NS)
        emulator.start_deployment_controller(delay=0.05)
        kube = RecordingKube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))
        emulator.install_crd(crd.build_crd())
        kube.create(MODEL_DEPLOYMENT, NS, {
            "apiVersion": MODEL_DEPLOYMENT.api_version, "kind": headway.KIND, "metadata": {"name": NAME, "namespace": NS},
            "spec": {"model": model("1.0.0"), "replicas": 1, "traffic": {"provider": "none"}},
        })
        drive(kube, Clock(), "the first version", lambda s: s.get("phase") == "Succeeded")
    applied.clear()
    warnings = [r.getMessage() for r in caplog.records if "no RolloutRecords written" in r.getMessage()]
    assert warnings == [f"{NS}/{NAME}: no RolloutRecords written: the API server does not serve rolloutrecords "
                        f"(apply crds/{record.CRD_NAME}.yaml)"]
    assert kube.record_writes == []
