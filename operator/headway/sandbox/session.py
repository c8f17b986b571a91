"""One sandbox run: every process it starts, where it keeps its files, and how it ends.

A run lives in its own state directory, ``<root>/run-<random>/`` (``root`` is
``$HEADWAY_SANDBOX_ROOT`` or ``<tmp>/headway-sandbox-<uid>``), so two runs never share a
file, a port or a process:

- ``state.json``: the sandbox's own PID, the kubeconfig, the API server's and Prometheus'
  URLs, and every child process it started (name, PID, command), rewritten whenever a
  child starts or stops. ``headway sandbox down`` reads it.
- ``kubeconfig`` (for kubectl), ``operator.log``, ``prometheus/`` (its TSDB and file_sd
  targets), ``pods/`` (one BENTOML_HOME per model server).

What runs:

- the embedded API server (:class:`~headway.sandbox.apiserver.KubeEmulator`, in a thread of
  this process) with the ModelDeployment CRD and Gateway API's published HTTPRoute CRD
  (shipped with the package) installed, and
  its simulated Deployment controller;
- ``headway operator`` as a child process with its real flags (``--prometheus-url`` = the
  sandbox's Prometheus), watching every namespace;
- a real Prometheus scraping the model servers every second, each target carrying the labels
  Headway's PodMonitor gives pods in a cluster;
- one :class:`~headway.sandbox.dataplane.DataPlane` per namespace holding a ModelDeployment:
  a real ``bentoml serve`` per Deployment revision that wants pods (it plays kubelet);
- one :class:`~headway.sandbox.dataplane.LoadGenerator` per ModelDeployment: the gateway,
  sending requests as the rendered HTTPRoute splits and mirrors them.

Every child runs in its own process group (its PID), and is stopped by that PID only:
at the end of the run, on Ctrl-C (SIGINT), on SIGTERM (what ``down`` sends first) and at
interpreter exit. ``down`` then checks each recorded PID still runs the recorded command
before it signals a leftover (a PID the system reused for something else is left alone).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml

from headway.api.approval import build_crd as approval_crd
from headway.api.crd import build_crd
from headway.api.record import build_crd as record_crd
from headway.k8s.client import ApiError, Kind, Kube, make_api_client
from headway.planning.naming import CANDIDATE, LABEL_VARIANT
from headway.reconciler import MODEL_DEPLOYMENT
from headway.sandbox.apiserver import KubeEmulator
from headway.sandbox.dataplane import DataPlane, LoadGenerator, pods_ready
from headway.sandbox.faults import FaultSpec
from headway.sandbox.processes import BentoServer, Prometheus

STATE_FILE = "state.json"
HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
NAMESPACE = Kind("", "v1", "namespaces", "Namespace", namespaced=False)
CONFIGMAP = Kind("", "v1", "configmaps", "ConfigMap")
EXAMPLE_PROFILE = "example-profile"  # the ConfigMap of the bundled model's profile, in every namespace played


def example_profile_configmap() -> dict[str, Any]:
    """The bundled model's reference profile as a ConfigMap (``spec.monitoring.profile.configMap: example-profile``)."""
    from headway.api.profile import PROFILE_KEY
    from headway.monitoring.profiling import profile_json
    from headway.sandbox.example_model import reference_profile

    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": EXAMPLE_PROFILE, "labels": {"app.kubernetes.io/part-of": "headway-sandbox"}},
            "data": {PROFILE_KEY: profile_json(reference_profile())}}
PROMETHEUS_INSTALL = (
    "sudo apt-get install -y --no-install-recommends prometheus   (Debian/Ubuntu; hack/setup.sh does it as root), "
    "or download it from https://prometheus.io/download/ and pass --prometheus /path/to/prometheus"
)
# Gateway API's published HTTPRoute CRD (standard channel), shipped gzipped with the package:
# see apiserver/THIRD_PARTY_NOTICES.md for its source, release and licence (Apache-2.0).
GATEWAY_API_CRD = "standard_gateway.networking.k8s.io_httproutes.yaml.gz"

class SandboxError(Exception):
    """Something the user can fix; the message names it and how."""


class Stopped(BaseException):
    """SIGTERM (from ``headway sandbox down`` or the system): end the run as Ctrl-C does."""


def state_root() -> Path:
    configured = os.environ.get("HEADWAY_SANDBOX_ROOT")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"headway-sandbox-{os.getuid()}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- pre-flight checks: errors that name the thing to fix ------------------------------------------
def find_prometheus(binary: str | None) -> str:
    """The Prometheus binary to run: ``binary``, $HEADWAY_PROMETHEUS_BINARY, /usr/bin/prometheus or PATH."""
    if binary:
        if os.access(binary, os.X_OK) and not os.path.isdir(binary):
            return binary
        raise SandboxError(f"--prometheus {binary}: no executable file there. Install Prometheus: {PROMETHEUS_INSTALL}")
    for candidate in (os.environ.get("HEADWAY_PROMETHEUS_BINARY"), "/usr/bin/prometheus", shutil.which("prometheus")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(f"no Prometheus binary found (looked at /usr/bin/prometheus and on PATH). Install it: {PROMETHEUS_INSTALL}")


def check_port_free(port: int, option: str) -> None:
    """Raise naming ``option`` if 127.0.0.1:``port`` is taken (by another sandbox or any program)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SandboxError(f"{option} {port}: port {port} on 127.0.0.1 is in use ({exc.strerror}); "
                               f"choose another port, or leave {option} out to get a free one") from None


def check_service_imports(service: str) -> None:
    """``module:Attribute`` must import from the current directory, a bento directory must load;
    the error says why not."""
    if os.path.isdir(os.path.expanduser(service)):
        return check_bento_loads(service)
    module_name, sep, attribute = service.partition(":")
    if not sep or not module_name or not attribute:
        raise SandboxError(f"--service {service}: expected module:ServiceClass (e.g. --service my_service:FraudScorer) "
                           "or the directory of a built bento (`bentoml get NAME:VERSION -o path` prints it)")
    code = (
        "import importlib, sys; sys.path.insert(0, '.'); "
        f"m = importlib.import_module({module_name!r}); obj = m"
        + "".join(f"; obj = getattr(obj, {part!r})" for part in attribute.split("."))
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    if result.returncode != 0:
        last = [line for line in result.stderr.strip().splitlines() if line.strip()][-1:] or ["(no error message)"]
        raise SandboxError(f"--service {service}: it does not import from {os.getcwd()}: {last[0]}\n"
                           f"(run `python -c 'import {module_name}'` there to see the whole error)")


def check_bento_loads(path: str) -> None:
    """A bento directory (``bentoml build``'s output) must hold bento.yaml and load its service."""
    directory = Path(os.path.expanduser(path)).resolve()
    if not (directory / "bento.yaml").is_file():
        raise SandboxError(f"--service {path}: a directory without bento.yaml, so not a built bento; give the directory "
                           "`bentoml get NAME:VERSION -o path` prints, or module:ServiceClass to serve from source")
    code = f"import bentoml; bentoml.load({str(directory)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    if result.returncode != 0:
        last = [line for line in result.stderr.strip().splitlines() if line.strip()][-1:] or ["(no error message)"]
        raise SandboxError(f"--service {path}: the bento does not load: {last[0]}\n"
                           f"(run `python -c 'import bentoml; bentoml.load(\"{directory}\")'` to see the whole error)")


def load_payloads(path: Path) -> list[Any]:
    """``--payload FILE``: a JSON body sent as is, or a JSON list of bodies (one picked at random
    per request; to send a list as the body, wrap it in another list)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SandboxError(f"--payload {path}: cannot read it ({exc.strerror}); give a JSON file with the request "
                           "body your service expects, or a JSON list of bodies") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SandboxError(f"--payload {path}: not JSON ({exc}); give the request body your service expects, "
                           'e.g. {"features": [0.1, 0.2]}, or a JSON list of such bodies') from None
    if isinstance(data, list):
        if not data:
            raise SandboxError(f"--payload {path}: an empty list; give at least one request body")
        return data
    return [data]


def gateway_api_crd() -> dict[str, Any]:
    """Gateway API's HTTPRoute CRD as published (v1.6.1, standard channel), from the package.

    The API server validates every HTTPRoute the operator writes against its schema, as a
    cluster with Gateway API installed does.
    """
    data = resources.files("headway.sandbox.apiserver").joinpath(GATEWAY_API_CRD).read_bytes()
    return dict(yaml.safe_load(gzip.decompress(data)))


def wait_until(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.2,
               check: Callable[[], None] | None = None) -> Any:
    """Poll ``probe`` until it returns something truthy; ``check`` may raise to give up early."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if check is not None:
            check()
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")


# -- the operator child ----------------------------------------------------------------------------
@dataclass
class OperatorChild:
    """``headway operator`` with its real flags, in its own process group."""

    kubeconfig: Path
    prometheus_url: str
    log_path: Path
    resync_seconds: float = 60.0
    proc: subprocess.Popen[bytes] | None = None
    health_port: int = 0
    metrics_port: int = 0
    args: list[str] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> None:
        self.health_port, self.metrics_port = free_local_port(), free_local_port()
        self.args = [
            sys.executable, "-m", "headway.cli", "operator", "--kubeconfig", str(self.kubeconfig),
            "--prometheus-url", self.prometheus_url,
            "--health-addr", f"127.0.0.1:{self.health_port}", "--metrics-port", str(self.metrics_port),
            "--resync-seconds", str(self.resync_seconds),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for var in ("HEADWAY_NAMESPACES", "HEADWAY_PROMETHEUS_URL", "HEADWAY_ALLOWED_PROMETHEUS_URLS", "KUBECONFIG"):
            env.pop(var, None)  # the flags above say it all
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        wait_until("the operator's /healthz", self.healthy, timeout, check=self.check)

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise SandboxError(f"the operator exited with {self.proc.returncode} (log {self.log_path}):\n{tail}")

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(10)
        _signal_group(proc.pid, signal.SIGKILL)  # anything left in its group


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- faults into a version -------------------------------------------------------------------------
class SandboxDataPlane(DataPlane):
    """The data plane, with ``--fault`` injected into every version first seen as a candidate.

    A fault follows the version (its image), not the variant's name: after a promotion the
    faulty version keeps its faults as the new stable, as a bad model would.
    """

    def __init__(self, *args: Any, fault: FaultSpec | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fault = fault
        self.faulty_images: set[str] = set()

    def _desired(self, deployment: dict[str, Any]) -> Any:
        if self.fault is None or not self.fault.active:
            return super()._desired(deployment)
        labels = (deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {})
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        image = str(containers[0].get("image", ""))
        if labels.get(LABEL_VARIANT) == CANDIDATE and image:
            self.faulty_images.add(image)
        if image in self.faulty_images:
            self.behaviours.setdefault(image, {}).update(self.fault.to_env())
        return super()._desired(deployment)


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class SessionOptions:
    prometheus_binary: str | None = None
    prometheus_port: int | None = None
    service: str | None = None  # module:ServiceClass of the user's BentoML service
    fault: FaultSpec | None = None
    rate: float = 30.0  # requests per second per ModelDeployment
    root: Path | None = None
    endpoint: str = "/score"  # the path the load generator POSTs to
    payloads: list[Any] | None = None  # JSON bodies, one picked at random per request (None: the example's)
    time_scale: float = 1.0  # durations of the manifests played (kept in state.json: `apply` plays at the same pace)


class Session:
    """The processes of one sandbox run; ``start()``, then ``stop()`` (idempotent, also at exit)."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.root = options.root or state_root()
        self.dir: Path | None = None
        self.started_at = time.time()
        self.kubeconfig: Path | None = None
        self.kube: Kube | None = None
        self.emulator: KubeEmulator | None = None
        self.prometheus: Prometheus | None = None
        self.operator: OperatorChild | None = None
        self.planes: dict[str, SandboxDataPlane] = {}
        self.loads: dict[tuple[str, str], LoadGenerator] = {}
        self.all_pids: set[int] = set()  # every child ever started (tests check none outlives the run)
        self._stack = contextlib.ExitStack()
        self._lock = threading.RLock()
        self._stopped = False
        self._saved: str = ""

    @property
    def run_id(self) -> str:
        return self.dir.name if self.dir else "-"

    # -- start -------------------------------------------------------------------------------------
    def preflight(self) -> str:
        """Everything that can be checked before starting anything; returns the Prometheus binary."""
        binary = find_prometheus(self.options.prometheus_binary)
        if self.options.prometheus_port:
            check_port_free(self.options.prometheus_port, "--prometheus-port")
        if self.options.service:
            check_service_imports(self.options.service)
        return binary

    def start(self) -> Session:
        binary = self.preflight()
        self.root.mkdir(parents=True, exist_ok=True)
        prune_dead_runs(self.root)
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))
        self.save()
        self.emulator = self._stack.enter_context(KubeEmulator.running_in_thread())
        self.emulator.start_deployment_controller(delay=0.5, pods_ready=functools.partial(pods_ready, self.planes))
        self.emulator.install_crd(build_crd())
        self.emulator.install_crd(approval_crd())  # spec.governance: approvers create ModelApprovals
        self.emulator.install_crd(record_crd())  # the operator's RolloutRecords: `headway audit` reads them
        self.emulator.install_crd(gateway_api_crd())
        self.kubeconfig = self.emulator.write_kubeconfig(self.dir / "kubeconfig")
        self.kube = Kube(make_api_client(str(self.kubeconfig)))
        self.prometheus = Prometheus(workdir=self.dir / "prometheus", binary=binary, port=self.options.prometheus_port)
        self.prometheus.start()
        self.save()
        self.operator = OperatorChild(self.kubeconfig, self.prometheus.url, self.dir / "operator.log")
        self.operator.start()
        self.save()
        return self

    # -- namespaces and ModelDeployments -------------------------------------------------------------
    def ensure_namespace(self, namespace: str) -> None:
        assert self.kube is not None
        try:
            self.kube.create(NAMESPACE, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        except ApiError as exc:
            if exc.status != 409:
                raise
        if not self.options.service:  # the bundled model's reference profile, for spec.monitoring
            try:
                self.kube.create(CONFIGMAP, namespace, example_profile_configmap())
            except ApiError as exc:
                if exc.status in (403, 404):  # the namespace is being deleted (or gone): nothing new is set up in it
                    return
                if exc.status != 409:
                    raise
        with self._lock:
            if namespace not in self.planes:
                assert self.dir is not None and self.prometheus is not None
                plane = SandboxDataPlane(self.kube, namespace, {}, self.prometheus, workdir=self.dir / "pods" / namespace,
                                         fault=self.options.fault, **self._service_kwargs())
                self.planes[namespace] = plane.start()

    def _service_kwargs(self) -> dict[str, Any]:
        if not self.options.service:
            return {}
        return {"service": self.options.service, "working_dir": Path.cwd()}  # imported from where the user runs it

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of a ModelDeployment, as ``kubectl apply --server-side`` does; traffic follows."""
        assert self.kube is not None
        body = json.loads(json.dumps(manifest))
        namespace = body["metadata"].setdefault("namespace", "default")
        self.ensure_namespace(namespace)
        applied = self.kube.apply(MODEL_DEPLOYMENT, namespace, body, field_manager="kubectl")  # as `kubectl apply --server-side`: the user can go on with it
        self.ensure_load(namespace, body["metadata"]["name"])
        return applied

    def ensure_load(self, namespace: str, name: str) -> LoadGenerator:
        with self._lock:
            key = (namespace, name)
            if key not in self.loads:
                plane = self.planes[namespace]
                payloads = self.options.payloads
                self.loads[key] = LoadGenerator(plane, name, rate=self.options.rate, max_requests=10**9,
                                                max_seconds=10.0**8, workers=8, seed=len(self.loads),
                                                path=self.options.endpoint,
                                                payload=(lambda rng: rng.choice(payloads)) if payloads else None).start()
            return self.loads[key]

    def discover(self) -> list[tuple[str, str]]:
        """ModelDeployments created by anyone (kubectl too): each gets pods and traffic."""
        assert self.kube is not None
        found = []
        for body in self.kube.list(MODEL_DEPLOYMENT, None):
            namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
            self.ensure_namespace(namespace)
            self.ensure_load(namespace, name)
            found.append((namespace, name))
        return found

    def check(self) -> None:
        """Raise if a part died: the operator, Prometheus, a model server."""
        if self.operator is not None:
            self.operator.check()
        if self.prometheus is not None and self.prometheus.proc is not None and self.prometheus.proc.poll() is not None:
            raise SandboxError(f"Prometheus exited with {self.prometheus.proc.returncode}:\n{self.prometheus.logs()[-2000:]}")
        for plane in list(self.planes.values()):
            try:
                plane.check()
            except RuntimeError as exc:
                raise SandboxError(str(exc)) from None

    # -- the state file --------------------------------------------------------------------------------
    def children(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if self.operator is not None and self.operator.proc is not None:
            found.append({"name": "operator", "pid": self.operator.proc.pid, "cmd": self.operator.args})
        if self.prometheus is not None and self.prometheus.pid is not None:
            found.append({"name": "prometheus", "pid": self.prometheus.pid, "cmd": [self.prometheus.binary]})
        for plane in list(self.planes.values()):
            for pod in plane.pods():
                server: BentoServer = pod.server
                if server.pid is not None:
                    found.append({"name": f"pod {plane.namespace}/{pod.name}", "pid": server.pid, "port": server.port,
                                  "cmd": list(server.proc.args) if server.proc is not None else []})  # type: ignore[arg-type]
        return found

    def save(self) -> None:
        """Rewrite state.json (atomically) if anything changed."""
        if self.dir is None or self._stopped:
            return
        children = self.children()
        self.all_pids.update(int(child["pid"]) for child in children)
        state = {
            "pid": os.getpid(), "cmd": _cmdline(os.getpid()), "started": datetime.fromtimestamp(self.started_at, timezone.utc).isoformat(),
            "dir": str(self.dir), "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "apiServer": str(self.emulator.url).rstrip("/") if self.emulator else None,
            "prometheus": self.prometheus.url if self.prometheus else None, "children": children,
            "timeScale": self.options.time_scale,
        }
        text = json.dumps(state, indent=1, default=str)
        if text != self._saved:
            tmp = self.dir / (STATE_FILE + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.dir / STATE_FILE)
            self._saved = text

    # -- stop ------------------------------------------------------------------------------------------
    def stop(self, keep_dir: bool = False) -> None:
        """Stop the load, the model servers, the operator, Prometheus, the API server; remove the files."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for load in list(self.loads.values()):
            with contextlib.suppress(Exception):
                load.stop(timeout=5)
        for plane in list(self.planes.values()):
            with contextlib.suppress(Exception):
                plane.stop()
        if self.operator is not None:
            self.operator.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        with contextlib.suppress(Exception):
            self._stack.close()
        if self.dir is not None and not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running(options: SessionOptions) -> Iterator[Session]:
    """A started session, stopped on leaving, on Ctrl-C and on SIGTERM (``headway sandbox down``)."""
    session = Session(options)
    previous = _install_sigterm()
    try:
        session.start()
        yield session
    finally:
        try:
            session.stop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _install_sigterm() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise Stopped()

    return signal.signal(signal.SIGTERM, stop)


# -- other runs: apply to them, stop them ------------------------------------------------------------
def _cmdline(pid: int) -> list[str]:
    try:
        return [part.decode(errors="replace") for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    with contextlib.suppress(OSError):
        if "\nState:\tZ" in status.read_text():
            return False
    return True


def _same_process(pid: int, cmd: list[str]) -> bool:
    """``pid`` is alive and still runs ``cmd`` (its first three words), not a reused PID."""
    if not _alive(pid):
        return False
    live = _cmdline(pid)
    if not cmd or not live:
        return False  # cannot tell: never signal what cannot be recognised
    # A script's argv[0] becomes its interpreter's argument (#!): compare words, not positions.
    return all(word in live for word in cmd[:3])


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((run_dir / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return None


def runs(root: Path | None = None) -> list[tuple[Path, dict[str, Any] | None]]:
    base = root or state_root()
    if not base.is_dir():
        return []
    return [(path, read_state(path)) for path in sorted(base.glob("run-*")) if path.is_dir()]


def live_runs(root: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, state) for path, state in runs(root)
            if state is not None and _same_process(int(state["pid"]), list(state.get("cmd") or []))]


def prune_dead_runs(root: Path) -> None:
    """Remove the directories of runs whose sandbox and children are all gone (a SIGKILLed run)."""
    for path, state in runs(root):
        if state is None:
            if time.time() - path.stat().st_mtime > 60:  # not a run that is just starting
                shutil.rmtree(path, ignore_errors=True)
            continue
        pids = [(int(state["pid"]), list(state.get("cmd") or []))] + [(int(c["pid"]), list(c.get("cmd") or [])) for c in state.get("children", [])]
        if not any(_same_process(pid, cmd) for pid, cmd in pids):
            shutil.rmtree(path, ignore_errors=True)


def down(root: Path | None = None, timeout: float = 30.0, say: Callable[[str], None] = print) -> int:
    """Stop every sandbox run under ``root``: SIGTERM to the sandbox (it stops its children),
    then the recorded children that are still alive, by PID; remove the run's files.
    Returns how many runs were stopped or cleaned."""
    count = 0
    for path, state in runs(root):
        count += 1
        if state is None:
            shutil.rmtree(path, ignore_errors=True)
            say(f"removed {path} (no state file)")
            continue
        pid, cmd = int(state["pid"]), list(state.get("cmd") or [])
        if _same_process(pid, cmd):
            say(f"stopping sandbox {path.name} (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                say(f"sandbox pid {pid} did not stop within {timeout:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for child in state.get("children", []):
            child_pid, child_cmd = int(child["pid"]), list(child.get("cmd") or [])
            if _same_process(child_pid, child_cmd):
                say(f"stopping {child['name']} (pid {child_pid})")
                _signal_group(child_pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while _alive(child_pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                _signal_group(child_pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        say(f"removed {path}")
    return count

