"""Watch caches against the API emulator: what a reconcile reads without asking the server.

A user would notice these as: a steady fleet costs the API server nothing; a change to a child
(kubectl scale, a Deployment becoming Ready, a deletion) wakes its ModelDeployment at once; a CRD
installed later (Gateway API) is picked up without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from headway.k8s.cache import Cache
from headway.k8s.client import DEPLOYMENT, Kind, Kube, make_api_client
from headway.k8s.informer import Informer, Store
from headway.planning.naming import LABEL_MD, Owner
from headway.sandbox.apiserver import KubeEmulator
from headway.telemetry import API_REQUESTS

NS = "default"
MD = Kind("headway.dev", "v1alpha1", "modeldeployments", "ModelDeployment")
HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
CONFIGMAP = Kind("", "v1", "configmaps", "ConfigMap")
SCHEMAS = Path(__file__).resolve().parents[4] / "shared" / "schemas"


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def deployment(name: str, md: str, replicas: int = 1, managed: bool = True) -> dict:
    labels = {LABEL_MD: md, **({"app.kubernetes.io/managed-by": "headway"} if managed else {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": labels, "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}" * 100}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "m", "image": "x"}]}}}}


def requests() -> float:
    return sum(s.value for m in API_REQUESTS.collect() for s in m.samples if s.name.endswith("_total"))


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[KubeEmulator, Kube]]:
    with KubeEmulator.running_in_thread() as emulator:
        kube = Kube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))
        yield emulator, kube


class Woken:
    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, namespace: str, name: str) -> None:
        with self.lock:
            self.keys.append((namespace, name))

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for k in self.keys if k == (NS, name))


def test_children_come_from_the_watch_and_wake_their_model_deployment(cluster: tuple[KubeEmulator, Kube]) -> None:
    _, kube = cluster
    kube.create(DEPLOYMENT, NS, deployment("fraud-stable", "fraud"))
    kube.create(DEPLOYMENT, NS, deployment("other", "other", managed=False))  # not Headway's: never cached
    woken = Woken()
    cache = Cache(kube, MD, (DEPLOYMENT, HTTPROUTE), (NS,), woken)
    cache.start()
    try:
        assert cache.wait_synced(10)
        owner = Owner(name="fraud", namespace=NS, uid="u1")
        live = cache.children(owner, (DEPLOYMENT, HTTPROUTE))
        assert set(live) == {"Deployment"}  # HTTPRoute: no CRD, not served, nothing to read
        stored = live["Deployment"]["fraud-stable"]
        assert stored["apiVersion"] == "apps/v1" and stored["kind"] == "Deployment"
        assert "managedFields" not in stored["metadata"]
        assert "kubectl.kubernetes.io/last-applied-configuration" not in stored["metadata"].get("annotations", {})
        assert woken.count("fraud") >= 1 and woken.count("other") == 0

        before = woken.count("fraud")
        kube.merge_patch(DEPLOYMENT, NS, "fraud-stable", {"spec": {"replicas": 3}})  # kubectl scale
        wait_until("the cache sees the scale", lambda: cache.children(owner, (DEPLOYMENT,))["Deployment"]["fraud-stable"]["spec"]["replicas"] == 3)
        assert woken.count("fraud") > before

        sent = requests()
        for _ in range(100):  # a steady fleet's reconciles: reads only
            cache.children(owner, (DEPLOYMENT,))
        assert requests() == sent

        kube.delete(DEPLOYMENT, NS, "fraud-stable")
        wait_until("the deletion reaches the cache", lambda: not cache.children(owner, (DEPLOYMENT,))["Deployment"])
    finally:
        cache.stop()


def test_a_crd_installed_later_is_watched_once_a_model_deployment_needs_it(cluster: tuple[KubeEmulator, Kube]) -> None:
    emulator, kube = cluster
    woken = Woken()
    cache = Cache(kube, MD, (DEPLOYMENT, HTTPROUTE), (NS,), woken)
    cache.put_model({"apiVersion": "headway.dev/v1alpha1", "kind": "ModelDeployment",
                     "metadata": {"name": "fraud", "namespace": NS, "uid": "u1", "resourceVersion": "1"}})
    cache.start()
    try:
        assert cache.wait_synced(10)
        assert not cache.serves(HTTPROUTE)
        emulator.install_crd(yaml.safe_load((SCHEMAS / "gateway-api" / "standard_gateway.networking.k8s.io_httproutes.yaml").read_text()))
        for informer in cache._informers["HTTPRoute"]:
            informer._last_check = 0.0  # its once-a-minute rate limit is not what this test is about
        before = woken.count("fraud")
        wait_until("HTTPRoute served", lambda: cache.need(HTTPROUTE) or cache.serves(HTTPROUTE))
        wait_until("waiting ModelDeployments woken", lambda: woken.count("fraud") > before)
    finally:
        cache.stop()


def test_own_writes_are_stored_only_if_not_older_than_what_the_watch_delivered(cluster: tuple[KubeEmulator, Kube]) -> None:
    _, kube = cluster
    cache = Cache(kube, MD, (DEPLOYMENT,), (NS,), Woken())
    cache.start()
    try:
        assert cache.wait_synced(10)
        created = kube.create(DEPLOYMENT, NS, deployment("fraud-stable", "fraud"))
        patched = kube.merge_patch(DEPLOYMENT, NS, "fraud-stable", {"spec": {"replicas": 2}})
        owner = Owner(name="fraud", namespace=NS, uid="u1")
        wait_until("watched", lambda: "fraud-stable" in cache.children(owner, (DEPLOYMENT,))["Deployment"])
        wait_until("newest", lambda: cache.children(owner, (DEPLOYMENT,))["Deployment"]["fraud-stable"]["spec"]["replicas"] == 2)
        cache.put(DEPLOYMENT, created)  # a late answer to an older write must not win
        assert cache.children(owner, (DEPLOYMENT,))["Deployment"]["fraud-stable"]["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    finally:
        cache.stop()


def test_a_deleted_child_does_not_come_back_through_a_late_write_through(cluster: tuple[KubeEmulator, Kube]) -> None:
    _, kube = cluster
    cache = Cache(kube, MD, (DEPLOYMENT,), (NS,), Woken())
    cache.start()
    try:
        assert cache.wait_synced(10)
        applied = kube.create(DEPLOYMENT, NS, deployment("fraud-stable", "fraud"))
        owner = Owner(name="fraud", namespace=NS, uid="u1")
        wait_until("watched", lambda: "fraud-stable" in cache.children(owner, (DEPLOYMENT,))["Deployment"])
        kube.delete(DEPLOYMENT, NS, "fraud-stable")
        wait_until("deleted", lambda: not cache.children(owner, (DEPLOYMENT,))["Deployment"])
        cache.put(DEPLOYMENT, applied)  # the answer to an apply that raced the deletion
        assert not cache.children(owner, (DEPLOYMENT,))["Deployment"]
        recreated = kube.create(DEPLOYMENT, NS, deployment("fraud-stable", "fraud"))  # a new object: another uid
        wait_until("the new one is cached", lambda: cache.children(owner, (DEPLOYMENT,))["Deployment"].get("fraud-stable", {})
                   .get("metadata", {}).get("uid") == recreated["metadata"]["uid"])
    finally:
        cache.stop()


def test_a_child_whose_label_moves_wakes_its_former_model_deployment(cluster: tuple[KubeEmulator, Kube]) -> None:
    _, kube = cluster
    woken = Woken()
    cache = Cache(kube, MD, (DEPLOYMENT,), (NS,), woken)
    cache.start()
    try:
        assert cache.wait_synced(10)
        kube.create(DEPLOYMENT, NS, deployment("fraud-stable", "fraud"))
        wait_until("watched", lambda: woken.count("fraud") >= 1)
        before = woken.count("fraud")
        kube.merge_patch(DEPLOYMENT, NS, "fraud-stable", {"metadata": {"labels": {LABEL_MD: "other"}}})
        wait_until("the former parent woken", lambda: woken.count("fraud") > before)
        assert woken.count("other") >= 1
    finally:
        cache.stop()


class FailingKube:
    """A client whose every list is forbidden (a missing RoleBinding)."""

    def list_raw(self, *args: object) -> dict:
        from headway.k8s.client import ApiError
        raise ApiError(403, "Forbidden", "virtualservices is forbidden")


def test_a_kind_that_cannot_be_listed_does_not_hold_up_the_others() -> None:
    cache = Cache(FailingKube(), MD, (HTTPROUTE,), (NS,), Woken())  # type: ignore[arg-type]
    cache.start()
    try:
        assert cache.wait_synced(10)
        assert not cache.serves(HTTPROUTE)
    finally:
        cache.stop()


def test_a_quiet_watch_resumes_from_its_bookmarks_without_listing_again(tmp_path: Path) -> None:
    """Bookmarks keep a quiet watch's resourceVersion fresh: after other objects' changes have been
    compacted out of the server's event log, the watch the server ends resumes from the bookmark's
    version — no 410 Gone, no second LIST (on a busy cluster, a full list per kind at every restart)."""
    with KubeEmulator.running_in_thread(event_log_size=5, bookmark_seconds=0.2) as emulator:
        kube = Kube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))
        seen: list[dict] = []
        watch = kube.watch

        def spied(*args, **kwargs):  # type: ignore[no-untyped-def]
            for event in watch(*args, **kwargs):
                seen.append(event)
                yield event

        kube.watch = spied  # type: ignore[method-assign]
        informer = Informer(kube, Store(DEPLOYMENT, LABEL_MD), NS, "app.kubernetes.io/managed-by=headway",
                            lambda obj: None, watch_seconds=(2, 2))
        informer.start()
        try:
            assert informer.synced.wait(10) and informer.served
            version = 0
            for i in range(8):  # not watched, and more than the log keeps
                version = int(kube.create(CONFIGMAP, NS, {"metadata": {"name": f"churn-{i}"}})["metadata"]["resourceVersion"])

            def counts(verb: str) -> int:
                return sum(n for (_, _, v, resource), n in emulator.request_counts().items() if v == verb and resource == "deployments")

            wait_until("a bookmark past the churn", lambda: any(
                e.get("type") == "BOOKMARK" and int(e["object"]["metadata"]["resourceVersion"]) >= version for e in list(seen)))
            watches = counts("watch")
            wait_until("two more watches from the bookmark's version", lambda: counts("watch") >= watches + 2)
            assert counts("list") == 1
            assert not any(e.get("type") == "ERROR" for e in seen)
        finally:
            informer.stop()
