"""The reconciler writes its decision before it acts on it.

An in-memory API (``FakeKube``) stands in for the server: it keeps objects, bumps
resourceVersions, answers 409 to a status write made from a stale read, makes Deployments
ready as a controller would, and records every write in order. It can also fail a chosen
write, to show what happens when the operator is interrupted between two writes.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import headway
from headway.k8s.apply import _applied as applied
from headway.k8s.client import ApiError, Kind
from headway.reconciler import MODEL_DEPLOYMENT, Conflict, reconcile
from headway.sandbox.apiserver.patch import merge_patch

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
NS, NAME = "ml", "fraud"
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
SERVED = {"Deployment", "Service", "PodDisruptionBudget", "HTTPRoute"}


def model(version: str) -> dict[str, str]:
    return {"bento": f"fraud_scorer:{version}", "image": f"registry.example.com/fraud:{version}"}


class Interrupted(Exception):
    """The operator process died here."""


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = itertools.count(1)
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self.fail_next: dict[tuple[str, str], Exception] = {}  # (verb, kind) -> error, once
        self.before_status_write: Any = None  # called just before a status write lands

    def _fail(self, verb: str, kind: str) -> None:
        error = self.fail_next.pop((verb, kind), None)
        if error is not None:
            raise error

    def serves(self, kind: Kind) -> bool:
        return kind.kind in SERVED or kind.kind == headway.KIND

    def forget_discovery(self) -> None:
        pass

    def get(self, kind: Kind, namespace: str | None, name: str, subresource: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get((kind.kind, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind: Kind, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        key, _, value = (label_selector or "").partition("=")
        return [copy.deepcopy(o) for (k, _), o in sorted(self.objects.items())
                if k == kind.kind and (not key or o["metadata"].get("labels", {}).get(key) == value)]

    def _store(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
        obj["metadata"].setdefault("generation", 1)
        if kind == "Deployment":  # a controller that makes every pod ready at once
            replicas = obj["spec"].get("replicas", 1)
            obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": replicas, "updatedReplicas": replicas,
                             "readyReplicas": replicas, "availableReplicas": replicas,
                             "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}
        self.objects[(kind, obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def create(self, kind: Kind, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if kind.kind == "Event":
            self.writes.append(("event", body["reason"], body["message"]))
            return body
        self.writes.append(("create", kind.kind, body["metadata"]["name"]))
        return self._store(kind.kind, copy.deepcopy(body))

    def apply(self, kind: Kind, namespace: str | None, body: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        self._fail("apply", kind.kind)
        self.writes.append(("apply", kind.kind, body["metadata"]["name"]))
        old = self.objects.get((kind.kind, body["metadata"]["name"]))
        new = copy.deepcopy(body)
        if old is not None:
            new["metadata"].update(uid=old["metadata"]["uid"], generation=old["metadata"]["generation"] + 1)
        return self._store(kind.kind, new)

    def merge_patch(self, kind: Kind, namespace: str | None, name: str, patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        obj = self.objects[(kind.kind, name)]
        if subresource == "status":
            if self.before_status_write is not None:
                hook, self.before_status_write = self.before_status_write, None
                hook()
            if patch["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified; please apply your changes to the latest version")
            self.writes.append(("status", kind.kind, name))
            obj["status"] = merge_patch(obj.get("status") or {}, patch.get("status", {}))
        else:
            self.writes.append(("patch", kind.kind, name))
            obj["metadata"] = merge_patch(obj["metadata"], patch.get("metadata", {}))
            obj["spec"] = merge_patch(obj["spec"], patch.get("spec", {}))
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        return copy.deepcopy(obj)

    def delete(self, kind: Kind, namespace: str | None, name: str, uid: str | None = None) -> None:
        self.writes.append(("delete", kind.kind, name))
        self.objects.pop((kind.kind, name), None)

    def route_weights(self) -> dict[str, int]:
        route = self.objects.get(("HTTPRoute", NAME))
        if route is None:
            return {}
        weighted = route["spec"]["rules"][-1]["backendRefs"]
        return {ref["name"]: ref.get("weight", 1) for ref in weighted}

    def child_writes(self) -> list[tuple[str, str, str]]:
        return [w for w in self.writes if w[0] in ("apply", "create", "delete") and w[1] != headway.KIND]


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    applied.clear()  # Headway's memory of its own applies is per process: each test is a new one
    kube = FakeKube()
    kube.create(MODEL_DEPLOYMENT, NS, {
        "apiVersion": MODEL_DEPLOYMENT.api_version, "kind": headway.KIND, "metadata": {"name": NAME, "namespace": NS},
        "spec": {"model": model("1.0.0"), "replicas": 2, "traffic": GATEWAY,
                 "rollout": {"steps": [{"canary": {"weight": 10, "duration": "1m"}}, {"pause": {}}, {"canary": {"weight": 50, "duration": "1m"}}]}},
    })
    yield kube
    applied.clear()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def set_spec(kube: FakeKube, **spec: Any) -> None:
    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"spec": spec})


def annotate(kube: FakeKube, key: str, value: str) -> None:
    kube.merge_patch(MODEL_DEPLOYMENT, NS, NAME, {"metadata": {"annotations": {key: value}}})


def status(kube: FakeKube) -> dict[str, Any]:
    return kube.objects[(headway.KIND, NAME)]["status"]


def at_the_canary(kube: FakeKube) -> None:
    for t in (0, 1):
        reconcile(kube, NS, NAME, at(t))
    set_spec(kube, model=model("2.0.0"))
    for t in (10, 11, 12):
        reconcile(kube, NS, NAME, at(t))
    assert kube.route_weights() == {"fraud-stable": 90, "fraud-candidate": 10}, kube.route_weights()


def test_status_is_written_before_the_children_that_follow_it(kube: FakeKube) -> None:
    reconcile(kube, NS, NAME, at(0))
    order = [w[0] for w in kube.writes if w[0] in ("status", "apply")]
    assert order[0] == "status" and set(order[1:]) == {"apply"}, kube.writes


def test_a_conflict_on_the_status_write_writes_no_child(kube: FakeKube) -> None:
    """A user pauses the rollout while the operator is deciding the next step: the 409 leaves traffic alone."""
    at_the_canary(kube)
    set_spec(kube, rollout={"steps": [{"canary": {"weight": 10, "duration": "1m"}}, {"canary": {"weight": 30, "duration": "1m"}}]})
    reconcile(kube, NS, NAME, at(20))
    before = len(kube.writes)
    kube.before_status_write = lambda: annotate(kube, "headway.dev/paused", "true")
    with pytest.raises(Conflict):
        reconcile(kube, NS, NAME, at(80))  # the 1m canary is over: it would move on to 30%
    assert not [w for w in kube.writes[before:] if w[0] in ("apply", "delete", "status")]
    assert kube.route_weights() == {"fraud-stable": 90, "fraud-candidate": 10}
    # Deciding again from the newer object: paused where it stands; traffic never went back to 100/0.
    result = reconcile(kube, NS, NAME, at(81))
    assert result is not None and result.status.phase == "Paused"
    assert kube.route_weights() == {"fraud-stable": 90, "fraud-candidate": 10}


def test_a_crash_between_the_status_and_the_children_is_caught_up(kube: FakeKube) -> None:
    at_the_canary(kube)
    set_spec(kube, rollout={"steps": [{"canary": {"weight": 10, "duration": "1m"}}, {"canary": {"weight": 30, "duration": "1m"}}]})
    reconcile(kube, NS, NAME, at(20))
    kube.fail_next[("apply", "HTTPRoute")] = Interrupted()
    with pytest.raises(Interrupted):
        reconcile(kube, NS, NAME, at(80))  # step 1 done: status says step 2 (30%); the route write dies
    assert status(kube)["rollout"]["step"] == 1
    assert kube.route_weights() == {"fraud-stable": 90, "fraud-candidate": 10}
    decisions = [w for w in kube.writes if w[0] == "event" and w[1] not in ("Created", "Updated", "Deleted")]
    assert [w[1] for w in decisions][-2:] == ["StepCompleted", "StepStarted"]
    reconcile(kube, NS, NAME, at(81))  # a new process: it plans the same children from that status
    assert kube.route_weights() == {"fraud-stable": 70, "fraud-candidate": 30}
    assert [w for w in kube.writes if w[0] == "event" and w[1] not in ("Created", "Updated", "Deleted")] == decisions, \
        "no decision is made (or announced) twice"


def test_a_steady_reconcile_writes_nothing(kube: FakeKube) -> None:
    for t in (0, 1, 2):
        reconcile(kube, NS, NAME, at(t))
    before = len(kube.writes)
    reconcile(kube, NS, NAME, at(3))
    assert kube.writes[before:] == []


def test_a_hand_edit_of_a_rendered_field_is_put_back(kube: FakeKube) -> None:
    for t in (0, 1):
        reconcile(kube, NS, NAME, at(t))
    deployment = kube.objects[("Deployment", "fraud-stable")]
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/fraud:hacked"
    deployment["metadata"]["resourceVersion"] = str(next(kube.rv))  # every write moves the resourceVersion
    before = len(kube.child_writes())
    reconcile(kube, NS, NAME, at(2))
    assert kube.child_writes()[before:] == [("apply", "Deployment", "fraud-stable")]
    assert kube.objects[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/fraud:1.0.0"


def test_each_decision_and_write_is_one_log_line_with_its_context(kube: FakeKube, caplog: pytest.LogCaptureFixture) -> None:
    at_the_canary(kube)
    caplog.clear()
    with caplog.at_level("INFO", logger="headway.reconciler"):
        set_spec(kube, rollout={"steps": [{"canary": {"weight": 10, "duration": "1m"}}, {"canary": {"weight": 30, "duration": "1m"}}]})
        reconcile(kube, NS, NAME, at(20))
        caplog.clear()
        reconcile(kube, NS, NAME, at(80))
    lines = {r.decision: r for r in caplog.records}
    assert {"StatusWritten", "StepCompleted", "StepStarted", "Updated"} <= set(lines), [r.getMessage() for r in caplog.records]
    started = lines["StepStarted"]
    assert started.getMessage().startswith("ml/fraud StepStarted: fraud_scorer:2.0.0 step 2/2: canary 30%")
    assert 'phase=Progressing step=2/2 weights="stable=70 candidate=30"' in started.getMessage()
    assert (started.phase, started.step, started.weights) == ("Progressing", "2/2", "stable=70 candidate=30")
    assert started.k8s_ref["namespace"] == NS and started.k8s_ref["name"] == NAME and started.k8s_skip
    assert lines["Updated"].child == "HTTPRoute/fraud"
    caplog.clear()
    with caplog.at_level("INFO", logger="headway.reconciler"):
        reconcile(kube, NS, NAME, at(81))  # nothing changed: nothing to say
    assert caplog.records == []


def test_children_are_not_written_from_a_read_another_process_has_overtaken(kube: FakeKube) -> None:
    """Two operator processes at once (a paused peer): the one that read an older object writes nothing."""
    at_the_canary(kube)
    kube.objects[("HTTPRoute", NAME)]["spec"]["rules"][-1]["backendRefs"][0]["weight"] = 100  # makes a route write due
    kube.objects[("HTTPRoute", NAME)]["metadata"]["resourceVersion"] = str(next(kube.rv))
    before = len(kube.child_writes())
    kube.before_status_write = lambda: annotate(kube, "example.com/touched", "1")  # the other process moved on
    with pytest.raises(Conflict):
        reconcile(kube, NS, NAME, at(20))
    assert kube.child_writes()[before:] == []
