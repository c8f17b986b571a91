"""The sandbox's real servers: BentoML model servers and a Prometheus, as child processes.

Both run as child processes bound to 127.0.0.1 on free ports, each in its own temp
directory, and are stopped by their own PID (process group) only; children still running
when the Python process exits are stopped by ``atexit``.

How scraped series get their labels
-----------------------------------
In a cluster, Headway's PodMonitor (operator/headway/rendering/monitoring.py) scrapes each
model pod's ``/metrics`` and relabels the pod's metadata into target labels:

- ``namespace``       <- ``__meta_kubernetes_namespace``
- ``modeldeployment`` <- ``__meta_kubernetes_pod_label_headway_dev_modeldeployment``
- ``variant``         <- ``__meta_kubernetes_pod_label_headway_dev_variant``
- ``revision``        <- ``__meta_kubernetes_pod_label_headway_dev_revision``
- ``pod``             <- ``__meta_kubernetes_pod_name``

Here :class:`Prometheus` reads its targets from ``file_sd`` JSON files, and the data plane
(:mod:`headway.sandbox.dataplane`) writes one target per running BentoML server with exactly
those five labels, so a query such as
``bentoml_service_request_total{namespace="ns",modeldeployment="md",variant="candidate"}``
selects the same series here as in a cluster. Prometheus adds ``job`` (the scrape job's
name) and ``instance`` (host:port) itself; queries should not select on them.

Watch out in a cluster: prometheus-operator also gives PodMonitor targets the label
``endpoint`` (the port name, ``http``). BentoML's series carry their own ``endpoint`` label
(the route: ``/score``, ``/livez``, ``/readyz``); on such a clash Prometheus keeps the
target's value and renames the scraped one to ``exported_endpoint`` — unless the PodMonitor
sets ``honorLabels: true`` (or drops the target label). A filter on ``endpoint`` then no
longer excludes the health probes. ``set_targets`` takes any labels, so a test can
reproduce it (``test_podmonitor_endpoint_label_clashes_with_bentoml``).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import requests

from headway.sandbox.faults import FAULT_VARS, TARGET_VAR, FaultSpec

EXAMPLE_SERVICE = "headway.sandbox.example_service:FraudScorer"  # the bundled example model
FAULT_WRAPPER = "headway.sandbox.fault_wrapper:service"  # a user's service with faults injected
PROMETHEUS_BINARY = os.environ.get("HEADWAY_PROMETHEUS_BINARY", "/usr/bin/prometheus")

BEHAVIOUR_VARS = FAULT_VARS  # the variables a BentoServer's ``behaviour`` may set
SCRAPE_JOB = "headway-model-servers"

T = TypeVar("T")


@functools.cache
def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default range starts here


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the ephemeral range when there is room.

    A port the kernel hands out for ``bind(0)`` is an ephemeral one, which the kernel also gives
    to outgoing connections: between this call and the server's own bind, a client connection
    could take it ("address already in use", seen in a CI run). Ports below the range are never
    given to connections; only another such pick can collide (random over thousands of ports)."""
    low = _ephemeral_low()
    if low > 12000:
        for _ in range(50):
            port = random.randint(10000, low - 1)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until ``probe`` returns something truthy; AssertionError naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")

# Children still running when the test process exits (a crash, a KeyboardInterrupt) are
# stopped by atexit, so no server outlives the test run.
_LIVE: set[_ChildProcess] = set()


class _ChildProcess:
    """A child in its own process group (its own session), so stop() reaches its workers too."""

    name = "child"

    def __init__(self, workdir: Path | None) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"headway-{self.name}-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.log"
        self._last_log = ""

    def _spawn(self, args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        assert self.proc is None, f"{self.name} already started"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env),
                cwd=cwd, start_new_session=True,
            )
        _LIVE.add(self)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} (pid {self.proc.pid}) exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        if self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._last_log

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the child's process group, SIGKILL after ``timeout``; idempotent."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:
            # The group may outlive its leader (a worker still shutting down): end it too.
            self._signal_group(proc, signal.SIGKILL)
        _LIVE.discard(self)
        if self._own_workdir and self.workdir.exists():
            self._last_log = self.logs()[-20000:]
            shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        # The group id is the child's own PID (start_new_session): only our processes.
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@atexit.register
def _stop_leftovers() -> None:
    for child in list(_LIVE):
        child.stop(timeout=3)


class BentoServer(_ChildProcess):
    """``bentoml serve <service>`` on 127.0.0.1: the bundled example, or a user's service.

    ``service`` is what the server runs: None (or :data:`EXAMPLE_SERVICE`) for the bundled
    example model (headway.sandbox.example_service), or a user's ``module:Attribute`` /
    built bento directory, imported relative to ``working_dir`` (default: the current
    directory). ``behaviour`` holds HEADWAY_FAULT_* variables (a :class:`FaultSpec` works
    too). The example reads them itself; a user's service with active faults is served
    through :data:`FAULT_WRAPPER` (``HEADWAY_FAULT_TARGET=<service>``), which adds the fault
    middleware (see headway.sandbox.faults); without faults it is served as it is.

    The server gets ``BENTOML_DO_NOT_TRACK=true``, no other ``BENTOML_*`` variables of this
    process, and its own ``BENTOML_HOME`` (inside ``workdir``; a temp dir removed on stop()
    if not given) unless ``bentoml_home`` names one (a user's service loading models from
    the user's store needs that store). ``start()`` blocks until ``/readyz`` answers 200 and
    records ``startup_seconds``; use :meth:`spawn` + :meth:`wait_ready` to start several at
    once.
    """

    name = "bento"

    def __init__(self, behaviour: Mapping[str, str] | FaultSpec | None = None, *, port: int | None = None,
                 workdir: Path | None = None, label: str = "", service: str | None = None,
                 working_dir: Path | str | None = None, bentoml_home: Path | str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.env = dict(env or {})  # the pod's own variables (spec.model.env, resolved)
        if isinstance(behaviour, FaultSpec):
            behaviour = behaviour.to_env()
        self.behaviour = {k: str(v) for k, v in (behaviour or {}).items()}
        unknown = set(self.behaviour) - set(BEHAVIOUR_VARS)
        if unknown:
            raise ValueError(f"unknown behaviour variables {sorted(unknown)}; known: {BEHAVIOUR_VARS}")
        self.faults = FaultSpec.from_env(self.behaviour)  # validates the values before a server starts
        self.service = service or EXAMPLE_SERVICE
        self.working_dir = Path(working_dir).resolve() if working_dir is not None else None
        self.bentoml_home = Path(bentoml_home) if bentoml_home is not None else None
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.label = label
        self.startup_seconds: float | None = None
        self._spawned_at = 0.0
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"BentoServer({self.label or self.behaviour!r}, {self.host_port}, pid={self.pid})"

    @property
    def is_example(self) -> bool:
        return self.service == EXAMPLE_SERVICE

    @property
    def wrapped(self) -> bool:
        """True if a user's service is served through the fault wrapper."""
        return not self.is_example and self.faults.active

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        """The ``bentoml serve`` argv, its environment and its working directory."""
        home = self.bentoml_home or self.workdir / "bentoml-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in BEHAVIOUR_VARS and k != TARGET_VAR and not k.startswith("BENTOML_")}
        env.update(self.env)
        env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", PYTHONUNBUFFERED="1", **self.behaviour)
        if self.is_example:
            target, working_dir = EXAMPLE_SERVICE, self.workdir  # headway is installed: importable anywhere
        else:
            working_dir = self.working_dir or Path.cwd()
            target = self.service
            if os.path.isdir(os.path.join(working_dir, os.path.expanduser(target))):
                target = str((working_dir / os.path.expanduser(target)).resolve())  # a bento directory
            if self.wrapped:
                env[TARGET_VAR] = target
                target = FAULT_WRAPPER
        bentoml_cli = Path(sys.executable).with_name("bentoml")
        args = [str(bentoml_cli) if bentoml_cli.exists() else sys.executable, *([] if bentoml_cli.exists() else ["-m", "bentoml"]),
                "serve", target, "--host", self.host, "--port", str(self.port), "--working-dir", str(working_dir)]
        return args, env, working_dir

    def spawn(self) -> Self:
        args, env, cwd = self.command()
        self._spawned_at = time.monotonic()
        self._spawn(args, env, cwd=cwd)
        return self

    def ready(self, timeout: float = 1.0) -> bool:
        try:
            return self._session.get(f"{self.url}/readyz", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 60.0) -> Self:
        def probe() -> bool:
            self._check_alive()
            return self.ready()

        wait_for(f"{self!r} /readyz", probe, timeout)
        if self.startup_seconds is None:
            self.startup_seconds = time.monotonic() - self._spawned_at
        return self

    def start(self, timeout: float = 60.0) -> Self:
        self.spawn()
        try:
            return self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def score(self, features: list[float], timeout: float = 5.0) -> requests.Response:
        """A call of the example's ``/score`` API."""
        return self.post("/score", {"features": features}, timeout)

    def post(self, path: str, payload: Any, timeout: float = 5.0) -> requests.Response:
        """``POST <path>`` with a JSON body (any API of the served service)."""
        return self._session.post(f"{self.url}{path}", json=payload, timeout=timeout)

    def metrics_text(self) -> str:
        response = self._session.get(f"{self.url}/metrics", timeout=2)
        response.raise_for_status()
        return response.text

    def request_counts(self) -> dict[tuple[str, str], float]:
        """``bentoml_service_request_total`` from /metrics: {(endpoint, http_response_code): n}."""
        return {
            (labels["endpoint"], labels["http_response_code"]): value
            for labels, value in parse_samples(self.metrics_text(), "bentoml_service_request_total")
        }

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._session.close()


def parse_samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric in Prometheus text format: [(labels, value)]."""
    samples = []
    for line in text.splitlines():
        if not line.startswith(metric) or line[len(metric):len(metric) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        labels: dict[str, str] = {}
        if "{" in head:
            body = head[head.index("{") + 1: head.rindex("}")]
            for part in _split_labels(body):
                key, _, raw = part.partition("=")
                labels[key.strip()] = json.loads(raw)
        samples.append((labels, float(value)))
    return samples


def _split_labels(body: str) -> Iterable[str]:
    part, quoted, escaped = "", False, False
    for char in body:
        if char == "," and not quoted:
            if part.strip():
                yield part
            part = ""
            continue
        part += char
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    if part.strip():
        yield part


class Prometheus(_ChildProcess):
    """/usr/bin/prometheus on 127.0.0.1 with a temp TSDB, 1 s scrape and evaluation intervals.

    Targets come from file_sd: :meth:`set_targets` atomically rewrites one JSON file per
    ``group`` (``targets-<group>.json``; a data plane uses its namespace), which Prometheus
    watches (inotify, plus ``refresh_interval: 1s``), so a change is scraped within ~1-2 s.
    ``extra_target_labels`` are added to every target (e.g. ``{"endpoint": "http"}`` to
    mimic prometheus-operator's label clash).
    """

    name = "prometheus"

    def __init__(self, *, workdir: Path | None = None, binary: str = PROMETHEUS_BINARY, port: int | None = None,
                 scrape_interval: str = "1s", extra_target_labels: Mapping[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.binary = binary
        self.port = port or free_port()
        self.scrape_interval = scrape_interval
        self.extra_target_labels = dict(extra_target_labels or {})
        self.sd_dir = self.workdir / "file_sd"
        self.sd_dir.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._client: Any = None
        self.startup_seconds: float | None = None

    @staticmethod
    def available(binary: str = PROMETHEUS_BINARY) -> bool:
        return os.access(binary, os.X_OK)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{
                "job_name": SCRAPE_JOB,
                "metrics_path": "/metrics",
                "file_sd_configs": [{"files": [str(self.sd_dir / "targets-*.json")], "refresh_interval": "1s"}],
            }],
        }

    def start(self, timeout: float = 30.0) -> Self:
        if not self.available(self.binary):
            raise FileNotFoundError(f"no Prometheus binary at {self.binary}")
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        args = [
            self.binary, f"--config.file={config_path}", f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1h", "--log.level=warn",
        ]
        started = time.monotonic()
        self._spawn(args, os.environ)

        def probe() -> bool:
            self._check_alive()
            try:
                return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_for("Prometheus /-/ready", probe, timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    # -- targets -----------------------------------------------------------------------------
    def set_targets(self, targets: Iterable[tuple[str, Mapping[str, str]]], group: str = "default") -> None:
        """Replace the targets of ``group``: [(host:port, labels)], one file_sd group per target."""
        groups = [{"targets": [host_port], "labels": {**self.extra_target_labels, **labels}} for host_port, labels in targets]
        path = self.sd_dir / f"targets-{group}.json"
        with self._lock:
            tmp = path.with_suffix(".json.tmp")  # not matched by the targets-*.json glob
            tmp.write_text(json.dumps(groups, indent=1, sort_keys=True))
            os.replace(tmp, path)

    def clear_targets(self, group: str = "default") -> None:
        with self._lock:
            (self.sd_dir / f"targets-{group}.json").unlink(missing_ok=True)

    def reload(self) -> None:
        """Re-read the configuration (``--web.enable-lifecycle``); file_sd needs no reload."""
        requests.post(f"{self.url}/-/reload", timeout=5).raise_for_status()

    def active_targets(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["activeTargets"])

    def wait_for_targets(self, host_ports: Iterable[str], *, healthy: bool = True, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until these targets are active (and scraped successfully, if ``healthy``)."""
        wanted = set(host_ports)

        def probe() -> list[dict[str, Any]] | None:
            found = [t for t in self.active_targets() if t["labels"].get("instance") in wanted]
            ok = {t["labels"]["instance"] for t in found} == wanted and (not healthy or all(t["health"] == "up" for t in found))
            return found if ok else None

        return list(wait_for(f"Prometheus targets {sorted(wanted)}", probe, timeout, interval=0.2))

    # -- queries -----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """A ``prometheus_api_client.PrometheusConnect`` on this server."""
        if self._client is None:
            from prometheus_api_client import PrometheusConnect

            self._client = PrometheusConnect(url=self.url, disable_ssl=True, timeout=10)
        return self._client

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: the result list (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        return list(self.client.custom_query(query=promql))

    def value(self, promql: str) -> float | None:
        """The single value of an instant query; None when it returns no series."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise ValueError(f"{promql!r} returned {len(result)} series, expected one: {result}")
        return float(result[0]["value"][1])

    def wait_value(self, promql: str, accept: Callable[[float], bool], timeout: float = 60.0) -> float:
        """Poll ``value(promql)`` until ``accept(value)``; returns the accepted value."""
        holder: list[float | None] = [None]

        def probe() -> bool:
            holder[0] = self.value(promql)
            return holder[0] is not None and accept(holder[0])

        try:
            wait_for(f"{promql} to be accepted", probe, timeout, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last value {holder[0]}") from None
        assert holder[0] is not None
        return holder[0]
