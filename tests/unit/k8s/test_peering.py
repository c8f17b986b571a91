"""kopf's peering rule as Headway applies it (headway.k8s.peering.blocking_peers): which entries of
a peering object pause a replica. The end-to-end check with two operators is tests/e2e/test_peering.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from headway.k8s.client import Kube, make_api_client
from headway.k8s.peering import CLUSTER_PEERING, NAMESPACED_PEERING, Peering, blocking_peers
from headway.sandbox.apiserver import KubeEmulator

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def seen(seconds_ago: float, priority: int, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_a_live_peer_with_a_higher_or_equal_priority_pauses_a_lower_or_lowest_one_does_not() -> None:
    status = {"me": seen(1, 100), "higher": seen(5, 200), "lower": seen(5, 50)}
    assert blocking_peers(status, "me", 100, NOW) == ["higher (priority 200)"]
    assert blocking_peers(status, "higher", 200, NOW) == []  # the active one
    same = {"me": seen(1, 100), "twin": seen(1, 100)}
    assert blocking_peers(same, "me", 100, NOW) == ["twin (priority 100, the same as ours)"]  # kopf pauses both


def test_dead_entries_and_our_own_never_pause() -> None:
    status = {"me": seen(0, 1), "crashed": seen(61, 500), "just-alive": seen(59, 500), "short": seen(11, 500, lifetime=10)}
    assert blocking_peers(status, "me", 1, NOW) == ["just-alive (priority 500)"]


def test_entries_as_kopf_reads_them_defaults_and_junk() -> None:
    status = {"no-lastseen": {"priority": 9}, "zulu": {"priority": 9, "lastseen": "2026-11-29T11:59:30Z"},
              "junk": "x", "bad": {"priority": "high"}, "naive": {"priority": 9, "lastseen": "2026-11-29T11:59:59"}}
    # kopf counts an entry without lastseen as seen now, and 60 s of lifetime by default.
    assert blocking_peers(status, "me", 1, NOW) == ["no-lastseen (priority 9)", "zulu (priority 9)", "naive (priority 9)"]
    assert blocking_peers(None, "me", 1, NOW) == []


# --- the peering object as watched (against the API emulator) -----------------------------------

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {"group": "kopf.dev", "scope": "Cluster",
             "names": {"kind": "ClusterKopfPeering", "plural": "clusterkopfpeerings", "singular": "clusterkopfpeering"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                 "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_standby_follows_the_peering_object_and_keeps_its_decision_when_it_is_deleted(tmp_path: Path) -> None:
    """kopf judges a deleted peering object by its last state and its keep-alives then fail
    quietly: its decision stays, and so does Headway's. A missing CRD or object: standing by."""
    with KubeEmulator.running_in_thread() as emulator:
        kube = Kube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))
        changes = threading.Event()
        missing = Peering(kube, "headway", "me", 100, (), changes.set)
        missing.start()
        try:
            wait_until("the first list", lambda: missing.standby_reason() != "ClusterKopfPeering headway not read yet")
            assert "was not served when the operator started" in (missing.standby_reason() or "")
        finally:
            missing.stop()

        emulator.install_crd(CRD)
        now = datetime.now(timezone.utc).isoformat()
        kube.create(CLUSTER_PEERING, None, {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "headway"},
                                            "status": {"me": {"priority": 100, "lifetime": 60, "lastseen": now},
                                                       "boss": {"priority": 200, "lifetime": 60, "lastseen": now}}})
        peering = Peering(kube, "headway", "me", 100, (), changes.set)
        peering.start()
        try:
            wait_until("B's entry read", lambda: "boss (priority 200)" in (peering.standby_reason() or ""))
            kube.merge_patch(CLUSTER_PEERING, None, "headway", {"status": {"boss": None}})  # B exits cleanly
            wait_until("active", lambda: peering.standby_reason() is None)
            changes.clear()
            kube.delete(CLUSTER_PEERING, None, "headway")
            wait_until("the deletion seen", changes.is_set)
            assert peering.standby_reason() is None  # still active, as kopf is
        finally:
            peering.stop()


NAMESPACED_CRD = {
    **CRD, "metadata": {"name": "kopfpeerings.kopf.dev"},
    "spec": {**CRD["spec"], "scope": "Namespaced",  # type: ignore[dict-item]
             "names": {"kind": "KopfPeering", "plural": "kopfpeerings", "singular": "kopfpeering"}},
}


def test_serving_several_namespaces_a_peer_in_any_of_them_pauses_the_replica(tmp_path: Path) -> None:
    """kopf pauses the whole operator while any served namespace's KopfPeering lists a peer that takes
    precedence (a pause toggle per namespace, paused while any is on): Headway stands by with it."""
    with KubeEmulator.running_in_thread() as emulator:
        kube = Kube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "kubeconfig"))))
        emulator.install_crd(NAMESPACED_CRD)
        now = datetime.now(timezone.utc).isoformat()
        emulator.create_namespace("team-a", "team-b")
        for namespace in ("team-a", "team-b"):
            kube.create(NAMESPACED_PEERING, namespace, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                                                        "metadata": {"name": "headway", "namespace": namespace},
                                                        "status": {"me": {"priority": 100, "lifetime": 60, "lastseen": now}}})
        peering = Peering(kube, "headway", "me", 100, ("team-a", "team-b"), lambda: None)
        peering.start()
        try:
            wait_until("both read, active", lambda: peering.standby_reason() is None)
            # A replica with a higher priority serving team-b only.
            kube.merge_patch(NAMESPACED_PEERING, "team-b", "headway", {"status": {"other": {"priority": 200, "lifetime": 60, "lastseen": now}}})
            wait_until("standing by for team-b's peer", lambda: (peering.standby_reason() or "").startswith(
                "KopfPeering team-b/headway lists live peers that take precedence over me (priority 100): other (priority 200)"))
            # The same peer in team-a too: still standing by; gone from team-b only: still (team-a says so).
            kube.merge_patch(NAMESPACED_PEERING, "team-a", "headway", {"status": {"other": {"priority": 200, "lifetime": 60, "lastseen": now}}})
            kube.merge_patch(NAMESPACED_PEERING, "team-b", "headway", {"status": {"other": None}})
            wait_until("team-a's peer named", lambda: (peering.standby_reason() or "").startswith("KopfPeering team-a/headway"))
            kube.merge_patch(NAMESPACED_PEERING, "team-a", "headway", {"status": {"other": None}})
            wait_until("active again", lambda: peering.standby_reason() is None)
        finally:
            peering.stop()
