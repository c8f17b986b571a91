"""What end-to-end tests stand on: an API server, a namespace, and the real operator process.

The same tests run against either
- kmock's emulator (``KubeEmulator``) with its simulated Deployment controller (default), or
- a real cluster: ``HEADWAY_E2E_KUBECONFIG=/path/to/kubeconfig`` (see README, "Testing").
  The generated CRD is applied, each test gets a fresh namespace, and the model images
  must really run: set ``HEADWAY_E2E_IMAGE`` / ``HEADWAY_E2E_IMAGE_V2`` to two BentoML
  images (`bentoml containerize`) the cluster can pull. Images containing
  ``does-not-exist`` are used to make a Deployment unavailable (ImagePullBackOff there;
  the emulator's Deployment controller mimics that).

The operator runs as a subprocess through its console entry point (``python -m
headway.cli operator``), watching only the test's namespace, so tests can SIGKILL it at
any moment and start a new one, exactly like a crashed pod being replaced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from headway.api import approval, record
from headway.api.crd import build_crd
from headway.k8s.client import DEPLOYMENT, EVENT, PDB, SERVICE, ApiError, Kind, Kube, make_api_client
from headway.k8s.records import ROLLOUT_RECORD
from headway.reconciler import MODEL_APPROVAL, MODEL_DEPLOYMENT
from headway.sandbox import processes
from headway.sandbox.processes import free_port  # noqa: F401  (the tests import it from here)

T = TypeVar("T")
REAL_KUBECONFIG = os.environ.get("HEADWAY_E2E_KUBECONFIG")
TIMEOUT = float(os.environ.get("HEADWAY_E2E_TIMEOUT", "300" if REAL_KUBECONFIG else "60"))  # a bound, never a wait: a loaded CI machine is slow
IMAGE = os.environ.get("HEADWAY_E2E_IMAGE", "registry.example.com/fraud-scorer:3.2.0")
IMAGE_V2 = os.environ.get("HEADWAY_E2E_IMAGE_V2", "registry.example.com/fraud-scorer:3.3.0")
HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
CRD_KIND = Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False)
NAMESPACE_KIND = Kind("", "v1", "namespaces", "Namespace", namespaced=False)
WORKLOAD_KINDS = (DEPLOYMENT, SERVICE, PDB)
NUDGE = "e2e.example.com/nudge"  # an annotation nothing reads: a change that wakes the operator


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT, interval: float = 0.1) -> T:
    """Poll until probe returns something truthy; fail naming what was awaited (the sandbox's, with
    this suite's default timeout: longer against a real cluster)."""
    return processes.wait_for(what, probe, timeout, interval)


def install_crd(kube: Kube) -> None:
    """The chart's CRDs: ModelDeployment, ModelApproval (which the operator watches for spec.governance) and
    RolloutRecord (which it writes)."""
    for crd in (build_crd(), approval.build_crd(), record.build_crd()):
        live = kube.get(CRD_KIND, None, crd["metadata"]["name"])
        if live is None:
            kube.create(CRD_KIND, None, crd)
        else:
            crd["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            kube.merge_patch(CRD_KIND, None, crd["metadata"]["name"], crd)
    wait_for("the CRDs to be served", lambda: (kube.serves(MODEL_DEPLOYMENT) and kube.serves(MODEL_APPROVAL) and kube.serves(ROLLOUT_RECORD))
             or (kube.forget_discovery() and False))


@dataclass
class OperatorProcess:
    """`headway operator` as a child process; kill() is a crash, stop() a graceful shutdown."""

    kubeconfig: Path
    namespace: str
    log_dir: Path
    resync_seconds: float = 600.0  # the default: wake-ups come from watch events and plans, not a period
    extra_args: list[str] = field(default_factory=list)
    clusterwide: bool = False  # watch every namespace (no --namespace), as the chart's cluster mode
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    health_port: int = 0
    metrics_port: int = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self) -> None:
        """Start it and wait for its /healthz; once more on other ports if a port it was given was
        taken meanwhile (free_port's pick is free when made, not reserved)."""
        for attempt in range(3):
            try:
                self._start()
                return
            except AssertionError as exc:
                if attempt == 2 or "address already in use" not in self.log_path.read_text(errors="replace").lower():
                    raise
                self.kill()
                print(f"operator start {self.starts}: a port was taken meanwhile, starting on others: {exc}")

    def _start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "operator already running"
        self.starts += 1
        self.health_port, self.metrics_port = free_port(), free_port()
        args = [
            sys.executable, "-m", "headway.cli", "operator", "--kubeconfig", str(self.kubeconfig),
            *([] if self.clusterwide else ["--namespace", self.namespace]),
            "--health-addr", f"127.0.0.1:{self.health_port}",
            "--metrics-port", str(self.metrics_port), "--resync-seconds", str(self.resync_seconds), "--verbose",
            *self.extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HEADWAY_NAMESPACES", None)  # the namespaces are the flags above
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for("the operator's /healthz", self._healthy)

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
        try:
            return requests.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL: the process dies at whatever line it is on."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of a metric's samples from the operator's /metrics (matching a label substring)."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class Env:
    """One test's world: a client, its namespace, the operator."""

    kube: Kube
    kubeconfig: Path
    namespace: str
    operator: OperatorProcess
    emulated: bool

    # -- ModelDeployments ---------------------------------------------------------------
    def manifest(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": MODEL_DEPLOYMENT.api_version, "kind": MODEL_DEPLOYMENT.kind,
            "metadata": {"name": name, "namespace": self.namespace}, "spec": spec,
        }

    def create_md(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.kube.create(MODEL_DEPLOYMENT, self.namespace, self.manifest(name, spec))

    def patch_spec(self, name: str, spec_patch: dict[str, Any]) -> dict[str, Any]:
        return self.kube.merge_patch(MODEL_DEPLOYMENT, self.namespace, name, {"spec": spec_patch})

    def md(self, name: str) -> dict[str, Any]:
        body = self.kube.get(MODEL_DEPLOYMENT, self.namespace, name)
        assert body is not None, f"ModelDeployment {name} is gone"
        return body

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for cond in (self.md(name).get("status") or {}).get("conditions", []):
            if cond["type"] == type_:
                return cond
        return None

    def wait_condition(self, name: str, type_: str, status: str = "True", reason: str | None = None) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            cond = self.condition(name, type_)
            ok = cond is not None and cond["status"] == status and (reason is None or cond["reason"] == reason)
            return cond if ok else None

        return wait_for(f"{name}: condition {type_}={status}" + (f" ({reason})" if reason else ""), probe)

    def wait_phase(self, name: str, phase: str) -> dict[str, Any]:
        return wait_for(f"{name}: phase {phase}", lambda: (b := self.md(name)).get("status", {}).get("phase") == phase and b)

    def annotate(self, name: str, key: str, value: str | None) -> None:
        """What `kubectl annotate md/NAME key=value --overwrite` (or `key-`) does."""
        self.kube.merge_patch(MODEL_DEPLOYMENT, self.namespace, name, {"metadata": {"annotations": {key: value}}})

    def reconciled_again(self, name: str, times: int = 2) -> None:
        """Make the operator reconcile ``name`` again, without waiting for a timer.

        Tests that check something *stays* as it is ("no second event", "not rewritten") need
        the operator to look again; a periodic resync is not to be relied on. An annotation
        nobody reads is a change to the object, and a change wakes the operator at once.
        After the second nudge has been followed by a finished reconcile, at least one
        reconcile ran entirely after the first nudge (an earlier one may have been in flight).
        """
        for i in range(times):
            before = self.operator.metric("headway_reconciles_total")
            self.annotate(name, NUDGE, str(i))
            wait_for(f"{name}: a reconcile after nudge {i}", lambda: self.operator.metric("headway_reconciles_total") > before)

    def status(self, name: str) -> dict[str, Any]:
        return self.md(name).get("status") or {}

    def history(self, name: str) -> list[str]:
        return [h["event"] for h in self.status(name).get("history", [])]

    def wait_history(self, name: str, event: str, count: int = 1, timeout: float = TIMEOUT) -> dict[str, Any]:
        return wait_for(f"{name}: history entry {event} x{count}", lambda: self.history(name).count(event) >= count and self.status(name), timeout)

    # -- routes ---------------------------------------------------------------------------
    def route(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(HTTPROUTE, self.namespace, name)

    def route_split(self, name: str) -> tuple[dict[str, int], int | None]:
        """(weights by Service, mirror percent or None) of the route's default rule."""
        route = self.route(name)
        if route is None:
            return {}, None
        default = route["spec"]["rules"][-1]
        weights = {ref["name"]: ref.get("weight", 1) for ref in default["backendRefs"]}
        mirror = None
        for flt in default.get("filters", []):
            if flt["type"] == "RequestMirror":
                mirror = flt["requestMirror"].get("percent", 100)
        return weights, mirror

    # -- children and events --------------------------------------------------------------
    def children(self, name: str) -> dict[tuple[str, str], dict[str, Any]]:
        found = {}
        for kind in WORKLOAD_KINDS:
            for obj in self.kube.list(kind, self.namespace, f"headway.dev/modeldeployment={name}"):
                found[(kind.kind, obj["metadata"]["name"])] = obj
        return found

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.kube.list(EVENT, self.namespace)
        return [e for e in items if e.get("involvedObject", {}).get("name") == name and e["involvedObject"].get("kind") == "ModelDeployment"]

    def event_reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in sorted(self.events(name), key=lambda e: (e.get("lastTimestamp") or "", e["metadata"].get("creationTimestamp", "")))]

    def wait_events(self, name: str, *reasons: str, timeout: float = TIMEOUT) -> list[str]:
        """The object's Event reasons once all of ``reasons`` are among them: the operator posts an
        Event after the status write it announces, so a test that has seen the status waits here."""
        assert reasons, "name the Event reasons to wait for"
        return wait_for(f"Events {', '.join(reasons)} on {name}",
                        lambda: seen if set(reasons) <= set(seen := self.event_reasons(name)) else None, timeout=timeout)


def new_namespace(kube: Kube) -> str:
    name = f"hw-e2e-{uuid.uuid4().hex[:8]}"
    try:
        kube.create(NAMESPACE_KIND, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except ApiError as exc:
        if exc.status != 409:
            raise
    return name


def real_cluster_kube() -> tuple[Kube, Path]:
    assert REAL_KUBECONFIG
    return Kube(make_api_client(REAL_KUBECONFIG)), Path(REAL_KUBECONFIG)
