#!/usr/bin/env python3
"""What Headway costs at scale: N ModelDeployments, the real operator process, an API server.

    python hack/bench_scale.py [--count 1000] [--idle-seconds 30]            # against the emulator
    python hack/bench_scale.py --kubeconfig ~/.kube/config --image IMG       # against a real cluster

It creates N ModelDeployments of a steady fleet (1–2 replicas, Gateway API traffic) in its own
namespace, a few threads at once, with the operator (``python -m headway.cli operator``, a child
process watching only that namespace) already running, and prints:

- ``children_s``: seconds from the first create until every ModelDeployment has a Deployment and
  a Service it owns (ownerReferences);
- ``ready_s``: seconds from the first create until every one reports ``Ready=True`` and phase
  ``Succeeded`` (observed through the benchmark's own watches, not by polling);
- ``rss_mb`` (peak, /proc/PID/status VmHWM) and the idle RSS (VmRSS at the end of the idle window);
- while idle (``--idle-seconds`` after all are Ready plus ``--settle-seconds``): the operator's
  CPU (utime+stime from /proc/PID/stat, percent of one core) and the API requests per second it
  sends. Against the emulator they are counted by the server per authenticated client (the
  operator gets its own token; a watch counts once, when opened); against a real cluster, from
  the operator's own counter ``headway_api_requests_total`` on its /metrics (``n/a`` if absent).

The last line is exactly
``ready_s=<s> rss_mb=<peak MB> idle_requests_per_s=<req/s> idle_cpu_pct=<% of one core>``.

Against the emulator (default) it runs as a child process on 127.0.0.1 (its own interpreter, so
it neither shares a GIL with this script nor with the operator), with its simulated Deployment
controller making pods ready ``--pod-delay`` seconds after a rollout starts. With
``--kubeconfig`` nothing emulator-specific is assumed: the CRDs are installed if missing (and
removed afterwards if this script installed them), everything else lives in a fresh namespace
that is deleted at the end; pods must really become Ready there, so pass an ``--image`` the
cluster can run (or run a stand-in kubelet).

See docs/benchmarks.md for what bounds each figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parent.parent
HTTPROUTE_CRD = ROOT.parent / "shared" / "schemas" / "gateway-api" / "standard_gateway.networking.k8s.io_httproutes.yaml"
MD = ("serving.headway.dev", "v1alpha1", "modeldeployments")
HTTPROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")
DEPLOYMENTS = ("apps", "v1", "deployments")
SERVICES = ("", "v1", "services")
CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = ("", "v1", "namespaces")
OPERATOR_USER = "system:serviceaccount:headway-bench:headway-operator"  # the emulator's name for it
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- A small raw API client (JSON in, JSON out; no model classes) ----------------------------------

def path_of(kind: tuple[str, str, str], namespace: str | None = None, name: str | None = None) -> str:
    group, version, plural = kind
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{ns}/{plural}" + (f"/{name}" if name else "")


class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text[:300]}")
        self.status = status


class Api:
    """Thread-safe (urllib3 pools the connections)."""

    def __init__(self, kubeconfig: str) -> None:
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = 32
        self._api = k8s_client.ApiClient(configuration)

    def _open(self, method: str, path: str, body: Any, query: list[tuple[str, str]], content_type: str,
              timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self._api.param_serialize(method=method, resource_path=path, query_params=query,
                                           header_params=headers, body=body, auth_settings=["BearerToken"])
        return self._api.call_api(*params, _request_timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
             content_type: str = "application/json") -> dict[str, Any]:
        response = self._open(method, path, body, query or [], content_type, 60)
        response.read()
        text = response.data.decode() if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiError(response.status, text)
        return json.loads(text) if text else {}

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, path: str, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        query = [("watch", "true"), ("resourceVersion", resource_version), ("timeoutSeconds", str(timeout_seconds)),
                 ("allowWatchBookmarks", "true")]
        response = self._open("GET", path, None, query, "", (30, timeout_seconds + 30))
        raw = response.response
        try:
            if not 200 <= response.status <= 299:
                raise ApiError(response.status, raw.data.decode(errors="replace") if raw.data else "")
            for line in raw:
                if line.strip():
                    yield json.loads(line)
        finally:
            raw.release_conn()


# --- What the fleet looks like, as seen through watches ----------------------------------------------

class Fleet:
    """State of the benchmark's ModelDeployments and their children, fed by three watches."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.lock = threading.Lock()
        self.ready: set[str] = set()
        self.deployment_owners: dict[str, str] = {}  # child name -> owning MD name
        self.service_owners: dict[str, str] = {}
        self.md_writes = 0  # MODIFIED events of ModelDeployments (status writes) seen
        self.child_writes = 0  # and of their Deployments/Services
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def start(self) -> None:
        for kind, handler in ((MD, self._md), (DEPLOYMENTS, self._deployment), (SERVICES, self._service)):
            threading.Thread(target=self._follow, args=(kind, handler), daemon=True, name=f"watch-{kind[2]}").start()

    def stop(self) -> None:
        self.stopped.set()

    def counts(self) -> tuple[int, int]:
        """(how many have a Deployment and a Service, how many are Ready)."""
        with self.lock:
            with_children = set(self.deployment_owners.values()) & set(self.service_owners.values())
            return len(with_children), len(self.ready)

    def _follow(self, kind: tuple[str, str, str], handler: Any) -> None:
        path = path_of(kind, self.namespace)
        resource_version = ""
        while not self.stopped.is_set():
            try:
                if not resource_version:
                    listing = self.api.call("GET", path)
                    for obj in listing.get("items", []):
                        handler("ADDED", obj, initial=True)
                    resource_version = listing["metadata"]["resourceVersion"]
                for event in self.api.watch(path, resource_version, 300):
                    if self.stopped.is_set():
                        return
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        resource_version = ""  # e.g. 410 Gone: list again
                        break
                    resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                    if event.get("type") != "BOOKMARK":
                        handler(event["type"], obj, initial=False)
            except Exception as exc:  # noqa: BLE001 - a dropped watch is resumed, and reported
                if not self.stopped.is_set():
                    self.errors.append(f"watch {kind[2]}: {exc}")
                    time.sleep(0.5)

    def _md(self, type_: str, obj: dict[str, Any], initial: bool) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        is_ready = type_ != "DELETED" and ready and status.get("phase") == "Succeeded"
        with self.lock:
            if type_ == "MODIFIED" and not initial:
                self.md_writes += 1
            (self.ready.add if is_ready else self.ready.discard)(name)

    def _child(self, owners: dict[str, str], type_: str, obj: dict[str, Any], initial: bool) -> None:
        owner = next((ref["name"] for ref in obj["metadata"].get("ownerReferences") or []
                      if ref.get("kind") == "ModelDeployment"), None)
        with self.lock:
            if type_ == "MODIFIED" and not initial:
                self.child_writes += 1
            if owner is None or type_ == "DELETED":
                owners.pop(obj["metadata"]["name"], None)
            else:
                owners[obj["metadata"]["name"]] = owner

    def _deployment(self, type_: str, obj: dict[str, Any], initial: bool) -> None:
        self._child(self.deployment_owners, type_, obj, initial)

    def _service(self, type_: str, obj: dict[str, Any], initial: bool) -> None:
        self._child(self.service_owners, type_, obj, initial)


# --- The API server: the emulator as a child process, or a cluster --------------------------------

class EmulatorProcess:
    """``bench_scale.py --serve-emulator DIR``: the emulator in its own interpreter, answering
    ``counts`` on stdin with the requests it has served per client."""

    def __init__(self, workdir: Path, pod_delay: float, profile: Path | None) -> None:
        args = [sys.executable, __file__, "--serve-emulator", str(workdir), "--pod-delay", str(pod_delay)]
        if profile:
            args += ["--profile-emulator", str(profile)]
        self.log = open(workdir / "emulator.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, bufsize=1)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the emulator did not start; see {workdir / 'emulator.log'}")
        info = json.loads(line)
        self.admin_kubeconfig, self.operator_kubeconfig = info["admin"], info["operator"]
        self._lock = threading.Lock()

    def counts(self) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write("counts\n")
            self.proc.stdin.flush()
            return dict(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def serve_emulator(workdir: Path, pod_delay: float, profile: Path | None) -> int:
    """The child process's side of EmulatorProcess."""
    import asyncio
    import cProfile

    sys.path.insert(0, str(ROOT))
    from headway.sandbox.apiserver import KubeEmulator
    from headway.sandbox.apiserver.rbac import MASTERS

    async def main() -> None:
        async with KubeEmulator.running(deployment_controller_delay=pod_delay) as kube:
            admin = kube.write_kubeconfig(workdir / "admin.kubeconfig")
            token = kube.token_for(OPERATOR_USER, [MASTERS])  # its own identity, all rights
            operator = kube.write_kubeconfig(workdir / "operator.kubeconfig", token=token)
            print(json.dumps({"admin": str(admin), "operator": str(operator)}), flush=True)
            loop = asyncio.get_running_loop()
            while (line := await loop.run_in_executor(None, sys.stdin.readline)).strip() not in ("", "quit"):
                if line.strip() == "counts":
                    by_user: dict[str, int] = {}
                    detail: dict[str, int] = {}
                    for (user, _agent, verb, resource), count in kube.request_counts().items():
                        by_user[user] = by_user.get(user, 0) + count
                        if user == OPERATOR_USER:
                            detail[f"{verb} {resource}"] = detail.get(f"{verb} {resource}", 0) + count
                    print(json.dumps({"by_user": by_user, "operator": detail}), flush=True)

    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    try:
        asyncio.run(main())
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(profile))
    return 0


# --- The operator ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    def __init__(self, kubeconfig: str, namespace: str, log_path: Path, extra: list[str], src: Path) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        args = [sys.executable, "-m", "headway.cli", "operator", "--kubeconfig", kubeconfig, "--namespace", namespace,
                "--health-addr", f"127.0.0.1:{self.health_port}", "--metrics-port", str(self.metrics_port), *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HEADWAY_NAMESPACES", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the operator exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"the operator was not healthy within {timeout}s; see {self.log_path}")

    def proc_status(self, field: str) -> float:
        """A /proc/PID/status figure in MB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)

    def requests_metric(self) -> float | None:
        """headway_api_requests_total summed over its labels; None if not exported."""
        try:
            text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except requests.RequestException:
            return None
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("headway_api_requests_total") and not line.startswith("#")]
        return sum(values) if values else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- Setting up and tearing down ------------------------------------------------------------------

def crd_name(crd: dict[str, Any]) -> str:
    return f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"


def served(api: Api, kind: tuple[str, str, str]) -> bool:
    group, version, plural = kind
    resources = api.get(f"/apis/{group}/{version}" if group else f"/api/{version}")
    return resources is not None and any(r.get("name") == plural for r in resources.get("resources", []))


def install_crds(api: Api, src: Path) -> list[str]:
    """Install (or update) the ModelDeployment CRD and install the HTTPRoute CRD if the cluster
    lacks it; wait until both are served. Returns the names of the CRDs this created."""
    ours = yaml.safe_load(subprocess.run([sys.executable, "-m", "headway.cli", "crd"], check=True,
                                         capture_output=True, text=True,
                                         env={**os.environ, "PYTHONPATH": str(src)}).stdout)
    created = []
    live = api.get(path_of(CRDS, None, crd_name(ours)))
    if live is None:
        api.call("POST", path_of(CRDS), ours)
        created.append(crd_name(ours))
    else:  # as the e2e suite does: the CRD of this checkout
        ours["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        api.call("PUT", path_of(CRDS, None, crd_name(ours)), ours)
    if not served(api, HTTPROUTE):
        route_crd = yaml.safe_load(HTTPROUTE_CRD.read_text())
        if api.get(path_of(CRDS, None, crd_name(route_crd))) is None:
            api.call("POST", path_of(CRDS), route_crd)
            created.append(crd_name(route_crd))
    deadline = time.monotonic() + 60
    while not (served(api, MD) and served(api, HTTPROUTE)):
        if time.monotonic() > deadline:
            raise SystemExit("the CRDs were not served within 60 s")
        time.sleep(0.2)
    return created


def spec_of(index: int, image: str) -> dict[str, Any]:
    """A steady fleet member: one version, 1–2 replicas, routed by Gateway API."""
    return {
        "model": {"bento": "fraud_scorer:3.2.0", "image": image},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "replicas": 1 + index % 2,
        "traffic": {"provider": "gatewayApi", "gatewayApi": {
            "parentRefs": [{"name": "inference", "namespace": "gateways"}],
            "hostnames": [f"model-{index}.ml.example.com"]}},
        "cost": {"labels": {"team": "risk", "cost-center": "cc-1234"}},
    }


def create_all(api: Api, namespace: str, count: int, threads: int, image: str) -> None:
    def create(index: int) -> None:
        body = {"apiVersion": f"{MD[0]}/{MD[1]}", "kind": "ModelDeployment",
                "metadata": {"name": f"model-{index:04d}", "namespace": namespace}, "spec": spec_of(index, image)}
        for attempt in range(5):
            try:
                api.call("POST", path_of(MD, namespace), body)
                return
            except ApiError as exc:
                if exc.status == 409:
                    return
                if attempt == 4 or exc.status < 500:
                    raise
                time.sleep(0.5)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(count)))


def delete_fleet(api: Api, namespace: str, operator: Operator | None) -> None:
    """Delete the ModelDeployments while the operator still runs (it removes its finalizers);
    whatever is left after a minute loses its finalizers, so that the namespace can go."""
    path = path_of(MD, namespace)
    with contextlib.suppress(Exception):
        api.call("DELETE", path)
        deadline = time.monotonic() + (60 if operator is not None and operator.proc.poll() is None else 0)
        while (items := api.call("GET", path).get("items")) and time.monotonic() < deadline:
            time.sleep(1)
        for item in items or []:
            with contextlib.suppress(Exception):
                api.call("PATCH", path_of(MD, namespace, item["metadata"]["name"]),
                         {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json")


# --- The run ---------------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="ModelDeployments to create (default 1000)")
    parser.add_argument("--kubeconfig", help="a real cluster (default: the API emulator on 127.0.0.1)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="length of the idle window (default 30)")
    parser.add_argument("--settle-seconds", type=float, default=5.0, help="wait after all are Ready before idling")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for Ready after this long")
    parser.add_argument("--threads", type=int, default=8, help="concurrent creates (default 8)")
    parser.add_argument("--pod-delay", type=float, default=0.5, help="emulator: seconds until pods are ready")
    parser.add_argument("--image", default="registry.example.com/fraud-scorer:3.2.0", help="the model's image")
    parser.add_argument("--operator-src", type=Path, default=ROOT / "operator",
                        help="directory holding the headway package to run (default: this checkout's operator/; "
                             "e.g. an unpacked `git archive REV operator` to measure another revision)")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    parser.add_argument("--profile-emulator", type=Path, help="emulator: write its cProfile stats here")
    parser.add_argument("--keep", action="store_true", help="real cluster: keep the namespace and CRDs")
    parser.add_argument("--serve-emulator", type=Path, help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args()
    if args.serve_emulator:
        return serve_emulator(args.serve_emulator, args.pod_delay, args.profile_emulator)

    workdir = Path(tempfile.mkdtemp(prefix="headway-bench-"))
    emulator: EmulatorProcess | None = None
    if args.kubeconfig:
        admin_kubeconfig = operator_kubeconfig = args.kubeconfig
        namespace = f"headway-bench-{uuid.uuid4().hex[:6]}"
    else:
        emulator = EmulatorProcess(workdir, args.pod_delay, args.profile_emulator)
        admin_kubeconfig, operator_kubeconfig = emulator.admin_kubeconfig, emulator.operator_kubeconfig
        namespace = "headway-bench"
    api = Api(admin_kubeconfig)
    operator: Operator | None = None
    fleet: Fleet | None = None
    created_crds: list[str] = []
    created_namespace = False
    try:
        created_crds = install_crds(api, args.operator_src)
        api.call("POST", path_of(NAMESPACES), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        created_namespace = True
        print(f"namespace {namespace}, {args.count} ModelDeployments, "
              f"{'cluster ' + args.kubeconfig if args.kubeconfig else 'API emulator (pods ready after %.1fs)' % args.pod_delay}"
              f"; logs in {workdir}", flush=True)
        operator = Operator(operator_kubeconfig, namespace, workdir / "operator.log", args.operator_arg, args.operator_src)
        operator.wait_healthy()
        fleet = Fleet(api, namespace)
        fleet.start()
        time.sleep(0.5)  # the watches are open

        t0 = time.monotonic()
        emulator_cpu0 = proc_cpu_seconds(emulator.proc.pid) if emulator else 0.0
        operator_cpu0 = operator.cpu_seconds()
        creator = threading.Thread(target=create_all, args=(api, namespace, args.count, args.threads, args.image))
        creator.start()
        created_s = children_s = ready_s = None
        last_report = t0
        while ready_s is None:
            time.sleep(0.05)
            now = time.monotonic()
            if created_s is None and not creator.is_alive():
                created_s = now - t0
            with_children, ready = fleet.counts()
            if children_s is None and with_children >= args.count:
                children_s = now - t0
            if ready >= args.count:
                ready_s = now - t0
            if operator.proc.poll() is not None:
                raise SystemExit(f"the operator exited with {operator.proc.returncode}; see {operator.log_path}")
            if now - last_report >= 5 or ready_s is not None:
                last_report = now
                print(f"  t={now - t0:6.1f}s created={'all' if created_s else '...'} children={with_children} "
                      f"ready={ready} operator_rss_mb={operator.proc_status('VmRSS'):.0f}", flush=True)
            if now - t0 > args.timeout:
                print(f"timed out after {args.timeout:.0f}s", flush=True)
                break
        ramp_s = time.monotonic() - t0
        operator_ramp_cpu = (operator.cpu_seconds() - operator_cpu0) / ramp_s * 100
        emulator_ramp_cpu = (proc_cpu_seconds(emulator.proc.pid) - emulator_cpu0) / ramp_s * 100 if emulator else None
        creator.join()

        time.sleep(args.settle_seconds)
        counts0 = emulator.counts() if emulator else None
        metric0 = operator.requests_metric()
        cpu0, writes0 = operator.cpu_seconds(), (fleet.md_writes, fleet.child_writes)
        emulator_idle0 = proc_cpu_seconds(emulator.proc.pid) if emulator else 0.0
        idle_t0 = time.monotonic()
        time.sleep(args.idle_seconds)
        idle_s = time.monotonic() - idle_t0
        emulator_idle_cpu = (proc_cpu_seconds(emulator.proc.pid) - emulator_idle0) / idle_s * 100 if emulator else None
        cpu1, writes1 = operator.cpu_seconds(), (fleet.md_writes, fleet.child_writes)
        counts1 = emulator.counts() if emulator else None
        metric1 = operator.requests_metric()
        idle_rss, peak_rss = operator.proc_status("VmRSS"), operator.proc_status("VmHWM")
        idle_cpu = (cpu1 - cpu0) / idle_s * 100
        metric_rate = None if metric0 is None or metric1 is None else (metric1 - metric0) / idle_s
        if counts0 is not None and counts1 is not None:
            served_rate: float | None = (counts1["by_user"].get(OPERATOR_USER, 0) - counts0["by_user"].get(OPERATOR_USER, 0)) / idle_s
            idle_rate = served_rate
            breakdown = {k: v - counts0["operator"].get(k, 0) for k, v in counts1["operator"].items()}
            breakdown = {k: v for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1]) if v}
            total_ops = counts1["by_user"].get(OPERATOR_USER, 0)
        else:
            served_rate, idle_rate, breakdown, total_ops = None, metric_rate, {}, None

        print(f"created_s={fmt(created_s)} children_s={fmt(children_s)} ready_s={fmt(ready_s)} "
              f"(from the first create; {args.threads} threads creating)")
        print(f"operator: peak_rss_mb={peak_rss:.1f} idle_rss_mb={idle_rss:.1f} "
              f"cpu_pct_until_ready={operator_ramp_cpu:.1f}" +
              (f" emulator_cpu_pct_until_ready={emulator_ramp_cpu:.1f}" if emulator_ramp_cpu is not None else ""))
        if total_ops is not None:
            print(f"operator API requests served until the end of the idle window: {total_ops} "
                  f"({total_ops / args.count:.1f} per ModelDeployment)")
        print(f"idle window {idle_s:.1f}s: requests_per_s served={fmt(served_rate, 2)} "
              f"operator_metric={fmt(metric_rate, 2)} cpu_pct={idle_cpu:.2f} "
              f"md_writes={writes1[0] - writes0[0]} child_writes={writes1[1] - writes0[1]}" +
              (f" emulator_cpu_pct={emulator_idle_cpu:.1f}" if emulator_idle_cpu is not None else ""))
        if breakdown:
            print("  idle requests by verb and resource: " +
                  ", ".join(f"{k}={v / idle_s:.2f}/s" for k, v in list(breakdown.items())[:8]))
        if fleet.errors:
            print(f"watch errors (resumed): {len(fleet.errors)}; first: {fleet.errors[0]}")
        print(f"ready_s={fmt(ready_s)} rss_mb={peak_rss:.1f} idle_requests_per_s={fmt(idle_rate, 2)} "
              f"idle_cpu_pct={idle_cpu:.2f}", flush=True)
        return 0 if ready_s is not None else 1
    finally:
        if fleet is not None:
            fleet.stop()
        if args.kubeconfig and not args.keep and created_namespace:
            delete_fleet(api, namespace, operator)
        if operator is not None:
            operator.stop()
        if args.kubeconfig and not args.keep:
            if created_namespace:
                with contextlib.suppress(Exception):
                    api.call("DELETE", path_of(NAMESPACES, None, namespace))
            for name in created_crds:
                with contextlib.suppress(Exception):
                    api.call("DELETE", path_of(CRDS, None, name))
        if emulator is not None:
            emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
