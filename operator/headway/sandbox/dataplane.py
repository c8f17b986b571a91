"""The sandbox's data plane: real BentoML "pods", service discovery, a gateway.

:class:`DataPlane` plays kubelet + Prometheus service discovery for one namespace. It polls
the namespace's Headway Deployments (``app.kubernetes.io/managed-by=headway``) every
``poll_interval`` seconds and keeps one real :class:`~headway.sandbox.processes.BentoServer`
per Deployment revision:

- A Deployment that wants pods (``spec.replicas > 0``) gets a server for its current pod
  template — at once, as the kubelet starts a pod as soon as its ReplicaSet creates it
  (the emulator reports the pods ready after its own short delay; a BentoServer needs ~3 s,
  ~6 s when two start together on 2 cores — see ``wait_serving``).
- The server's behaviour (its faults: HEADWAY_FAULT_* variables or a
  :class:`~headway.sandbox.faults.FaultSpec`) comes from ``deployment_behaviours[name]``,
  else ``behaviours[image]``, else ``default_behaviour``; any ``HEADWAY_FAULT_*`` variables
  (plain ``value``) of the pod template's container override it — so a test can also inject
  behaviour through ``spec.model.env``. :meth:`DataPlane.set_behaviour` changes a
  Deployment's behaviour at run time (its server is replaced, as in a rolling update).
- The server runs ``services[name]``, else ``service``, else the bundled example
  (see :class:`~headway.sandbox.processes.BentoServer`; a user's service is imported
  relative to ``working_dir``).
- Images containing ``does-not-exist`` cannot be pulled (as in the emulator's Deployment
  controller): no server starts for them.
- A new pod template (image, env, revision label, a re-created Deployment), behaviour or
  service is a rolling update: the new server starts, and the old one stops once the new one is ready, or when
  the Deployment has no ready replicas anymore (a bad image keeps the old pods serving).
- ``spec.replicas: 0`` or deletion stops the Deployment's servers.

Every running server is a Prometheus target (file_sd group = the namespace) with the labels
Headway's PodMonitor gives real pods: ``namespace``, ``modeldeployment``, ``variant``,
``revision`` (from the pod template's ``headway.dev/*`` labels) and ``pod`` (a made-up
``<deployment>-<template-hash>-<suffix>``). Servers become targets as soon as they are spawned,
as pods do, which hides part of Prometheus' ~5 s discovery delay behind the server's start.

:class:`LoadGenerator` plays the Gateway: it reads the HTTPRoute named after the
ModelDeployment every ``route_poll`` seconds and sends ``POST <path>`` requests (default: the
example's ``/score``) at ``rate``
per second, picking the backend of each request by the default rule's weights (the last
rule; pin rules are for requests with headers, which it does not send) and mirroring
``percent`` of them to the ``RequestMirror`` backend. Every request carries an ``x-request-id``
header, the same on its mirrored copy (as Envoy-based gateways set it and their mirrors copy
it), so the recorders of both versions can count it under one id (agreement per request). Before the route exists it sends
everything to ``<md>-stable``. Service ``<md>-<variant>`` maps to the Deployment of the same
name. Responses are counted per variant and status.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import queue
import random
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import requests

from headway.k8s.client import DEPLOYMENT, ApiError, Kind, Kube
from headway.planning.naming import LABEL_MD, LABEL_REVISION, LABEL_VARIANT, MANAGED_BY
from headway.sandbox.example_model import example_features
from headway.sandbox.faults import FaultSpec
from headway.sandbox.processes import BEHAVIOUR_VARS, EXAMPLE_SERVICE, BentoServer, Prometheus

HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
BAD_IMAGE_MARKER = "does-not-exist"  # as the API emulator's Deployment controller: ImagePullBackOff
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
CONTAINER = "bentoml"
# Statuses the LoadGenerator records besides real HTTP codes.
NO_SERVER = "no-server"  # the backend Service has no serving pod (a gateway answers 503)
NO_BACKEND = "no-backend"  # every weight is 0 (Gateway API: the gateway answers 500)
CONN_ERROR = "error"  # connection refused/reset, timeout

# (uid, image, revision, behaviour, service, the container's own environment)
PodKey = tuple[str, str, str, tuple[tuple[str, str], ...], str, tuple[tuple[str, str], ...]]
CONFIGMAP = Kind("", "v1", "configmaps", "ConfigMap")
SECRET = Kind("", "v1", "secrets", "Secret")
# Set by Headway for a container's filesystem (paths that mean nothing on this machine), or by BentoServer.
NOT_PASSED = ("XDG_CACHE_HOME", "HF_HOME")
Behaviour = Mapping[str, str] | FaultSpec  # HEADWAY_FAULT_* variables, or a spec
Payload = Callable[[random.Random], Any]  # makes a request body from the generator's RNG


@dataclass
class Pod:
    """One running "pod" of a Deployment: a BentoServer and its scrape-target labels."""

    deployment: str
    key: PodKey
    name: str
    image: str
    labels: dict[str, str]
    server: BentoServer
    ready: bool = False
    started_at: float = field(default_factory=time.monotonic)
    ready_at: float | None = None

    @property
    def behaviour(self) -> dict[str, str]:
        return dict(self.key[3])

    @property
    def service(self) -> str:
        """What the server runs (a user's ``module:Attribute`` or the bundled example)."""
        return self.key[4]


def _env(behaviour: Behaviour | None) -> dict[str, str]:
    """HEADWAY_FAULT_* variables of a behaviour; ValueError on unknown variables or bad values."""
    if isinstance(behaviour, FaultSpec):
        return behaviour.to_env()
    env = {k: str(v) for k, v in (behaviour or {}).items()}
    unknown = set(env) - set(BEHAVIOUR_VARS)
    if unknown:
        raise ValueError(f"unknown behaviour variables {sorted(unknown)}; known: {BEHAVIOUR_VARS}")
    FaultSpec.from_env(env)
    return env


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for container in containers:
        if container.get("name") == CONTAINER:
            return dict(container)
    return dict(containers[0]) if containers else {}


class DataPlane:
    """Real BentoML servers for the Deployments of ``namespace``; see the module docstring."""

    def __init__(self, kube: Kube, namespace: str, behaviours: Mapping[str, Behaviour] | None = None,
                 prometheus: Prometheus | None = None, *, workdir: Path | None = None, poll_interval: float = 0.3,
                 default_behaviour: Behaviour | None = None, start_timeout: float = 60.0,
                 deployment_behaviours: Mapping[str, Behaviour] | None = None,
                 services: Mapping[str, str] | None = None, service: str | None = None,
                 working_dir: Path | str | None = None, bentoml_home: Path | str | None = None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.behaviours = {image: _env(env) for image, env in (behaviours or {}).items()}  # by image
        self.default_behaviour = _env(default_behaviour)
        self.deployment_behaviours = {name: _env(env) for name, env in (deployment_behaviours or {}).items()}
        self.services = dict(services or {})  # by Deployment name
        self.service = service or EXAMPLE_SERVICE  # served for Deployments not in ``services``
        self.working_dir = working_dir
        self.bentoml_home = bentoml_home
        self.prometheus = prometheus
        self.workdir = workdir
        self.poll_interval = poll_interval
        self.start_timeout = start_timeout
        self.events: list[tuple[float, str, str]] = []  # (monotonic time, "start"/"ready"/"stop", pod)
        self.errors: list[str] = []
        self._pods: dict[str, list[Pod]] = {}  # by Deployment name, oldest first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stoppers: list[threading.Thread] = []
        self._targets: list[tuple[str, dict[str, str]]] | None = None
        self._serial = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Self:
        assert self._thread is None, "already started"
        self._thread = threading.Thread(target=self._run, name=f"dataplane-{self.namespace}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and every server; remove this namespace's Prometheus targets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            pods = [pod for pods in self._pods.values() for pod in pods]
            self._pods.clear()
        for pod in pods:
            self._retire(pod)
        for thread in self._stoppers:
            thread.join(30)
        if self.prometheus is not None:
            self.prometheus.clear_targets(self.namespace)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- what tests and the LoadGenerator read ---------------------------------------------------
    def pods(self, deployment: str | None = None) -> list[Pod]:
        """Running pods (ready or starting), of one Deployment or all."""
        with self._lock:
            if deployment is not None:
                return list(self._pods.get(deployment, []))
            return [pod for pods in self._pods.values() for pod in pods]

    def serving(self, deployment: str) -> list[BentoServer]:
        """The ready servers behind a Deployment (= behind the Service of the same name)."""
        with self._lock:
            return [pod.server for pod in self._pods.get(deployment, []) if pod.ready]

    def wait_serving(self, deployment: str, image: str | None = None, timeout: float | None = None) -> Pod:
        """Wait until a ready pod of ``deployment`` (running ``image``, if given) serves."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.start_timeout + 10)
        while time.monotonic() < deadline:
            self.check()
            for pod in self.pods(deployment):
                if pod.ready and (image is None or pod.image == image):
                    return pod
            time.sleep(0.1)
        raise TimeoutError(f"no ready server for Deployment {deployment} (image {image}); pods: {self.pods(deployment)}")

    def check(self) -> None:
        """Raise if the data plane failed (a server crashed or never became ready)."""
        if self.errors:
            raise RuntimeError("data plane errors:\n" + "\n".join(self.errors))

    def targets(self) -> list[tuple[str, dict[str, str]]]:
        """The Prometheus targets last written: [(host:port, labels)]."""
        return list(self._targets or [])

    # -- changes at run time ---------------------------------------------------------------------
    def set_behaviour(self, deployment: str, behaviour: Behaviour | None) -> None:
        """Give ``deployment``'s pods this behaviour (None: back to the image's / the default).

        Takes effect at the next poll: the Deployment's server is replaced by one with the
        new behaviour (the old one serves until the new one is ready).
        """
        if behaviour is None:
            self.deployment_behaviours.pop(deployment, None)
        else:
            self.deployment_behaviours[deployment] = _env(behaviour)

    def set_service(self, deployment: str, service: str | None) -> None:
        """Serve ``service`` for ``deployment`` from the next poll on (None: the plane's ``service``)."""
        if service is None:
            self.services.pop(deployment, None)
        else:
            self.services[deployment] = service

    # -- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception:  # keep polling; a test sees it through check()
                self.errors.append(traceback.format_exc())
            self._stop.wait(self.poll_interval)

    def _desired(self, deployment: dict[str, Any]) -> tuple[PodKey | None, str, dict[str, str]]:
        """The pod key the Deployment's template asks for (None: no pod can run), its image, labels."""
        spec = deployment.get("spec", {})
        template = spec.get("template", {})
        labels = dict(template.get("metadata", {}).get("labels") or deployment["metadata"].get("labels") or {})
        container = _container(deployment)
        image = str(container.get("image", ""))
        if spec.get("replicas", 1) == 0 or not image or BAD_IMAGE_MARKER in image:
            return None, image, labels
        name = deployment["metadata"]["name"]
        behaviour = dict(self.deployment_behaviours.get(name, self.behaviours.get(image, self.default_behaviour)))
        for var in container.get("env") or []:
            if var.get("name") in BEHAVIOUR_VARS and "value" in var:
                behaviour[var["name"]] = str(var["value"])
        service = self.services.get(name, self.service)
        env = self._container_env(container)
        if env is None:  # a referenced ConfigMap or Secret key is missing: CreateContainerConfigError
            return None, image, labels
        key = (deployment["metadata"].get("uid", ""), image, labels.get(LABEL_REVISION, ""), tuple(sorted(behaviour.items())),
               service, env)
        return key, image, labels

    def _container_env(self, container: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
        """The container's own variables, resolved as the kubelet does (``value``, a ConfigMap's or a
        Secret's key); None when a key that is not optional is missing (the pod cannot start)."""
        out: list[tuple[str, str]] = []
        for var in container.get("env") or []:
            name = str(var.get("name", ""))
            if name in BEHAVIOUR_VARS or name.startswith("BENTOML_") or name in NOT_PASSED:
                continue
            source = var.get("valueFrom") or {}
            if "value" in var:
                out.append((name, str(var["value"])))
            elif ref := source.get("configMapKeyRef") or source.get("secretKeyRef"):
                kind = CONFIGMAP if "configMapKeyRef" in source else SECRET
                try:
                    found = self.kube.get(kind, self.namespace, str(ref.get("name", "")))
                except ApiError:
                    found = None
                data = (found or {}).get("data") or {}
                if ref.get("key") in data:
                    value = str(data[ref["key"]])
                    out.append((name, base64.b64decode(value).decode() if kind is SECRET else value))
                elif not ref.get("optional"):
                    return None
        return tuple(out)

    def serves_template(self, deployment: dict[str, Any]) -> bool:
        """True when a ready server runs the Deployment's current template (its readiness probe
        passes), or when none can (no replicas, an image that cannot be pulled: the emulator's Deployment
        controller says so itself). Not while an environment variable's ConfigMap or Secret key is missing."""
        if self._container_env(_container(deployment)) is None:
            return False  # a missing ConfigMap or Secret key: the pod never starts (CreateContainerConfigError)
        key, _, _ = self._desired(deployment)
        return key is None or any(pod.ready and pod.key == key for pod in self.pods(deployment["metadata"]["name"]))

    def _sync(self) -> None:
        deployments = {d["metadata"]["name"]: d for d in self.kube.list(DEPLOYMENT, self.namespace, SELECTOR)}
        with self._lock:
            names = set(self._pods) | set(deployments)
        for name in sorted(names):
            deployment = deployments.get(name)
            pods = self.pods(name)
            for pod in pods:  # readiness of starting pods, crashes
                self._probe(pod)
            if deployment is None or deployment.get("spec", {}).get("replicas", 1) == 0:
                for pod in pods:
                    self._remove(pod)
                continue
            key, image, labels = self._desired(deployment)
            if key is not None and not any(pod.key == key for pod in pods):
                self._spawn(name, key, image, labels)
            current = [pod for pod in self.pods(name) if pod.key == key]
            new_ready = any(pod.ready for pod in current)
            no_ready = (deployment.get("status") or {}).get("readyReplicas", 0) == 0 and not new_ready
            for pod in self.pods(name):
                if pod.key != key and (new_ready or no_ready):
                    self._remove(pod)
        self._publish_targets()

    def _spawn(self, deployment: str, key: PodKey, image: str, labels: dict[str, str]) -> None:
        template_hash = hashlib.sha256(repr(key).encode()).hexdigest()[:10]
        pod_name = f"{deployment}-{template_hash}-{next(self._serial):05d}"
        target_labels = {"namespace": self.namespace, "pod": pod_name}
        for target, source in (("modeldeployment", LABEL_MD), ("variant", LABEL_VARIANT), ("revision", LABEL_REVISION)):
            if labels.get(source):
                target_labels[target] = labels[source]
        workdir = self.workdir / pod_name if self.workdir is not None else None
        server = BentoServer(dict(key[3]), workdir=workdir, label=pod_name, service=key[4],
                             working_dir=self.working_dir, bentoml_home=self.bentoml_home, env=dict(key[5]))
        try:
            server.spawn()
        except Exception:  # a bad behaviour value or service: no pod, an error for check()
            server.stop()
            raise
        pod = Pod(deployment=deployment, key=key, name=pod_name, image=image, labels=target_labels, server=server)
        with self._lock:
            self._pods.setdefault(deployment, []).append(pod)
        self.events.append((time.monotonic(), "start", pod_name))

    def _probe(self, pod: Pod) -> None:
        if not pod.server.running():
            self.errors.append(f"{pod.name} ({pod.image}) exited with {pod.server.proc and pod.server.proc.returncode}:\n"
                               f"{pod.server.logs()[-3000:]}")
            self._remove(pod)
        elif not pod.ready:
            if pod.server.ready():
                pod.ready, pod.ready_at = True, time.monotonic()
                pod.server.startup_seconds = pod.ready_at - pod.started_at
                self.events.append((pod.ready_at, "ready", pod.name))
            elif time.monotonic() - pod.started_at > self.start_timeout:
                self.errors.append(f"{pod.name} not ready after {self.start_timeout}s:\n{pod.server.logs()[-3000:]}")
                self._remove(pod)

    def _remove(self, pod: Pod) -> None:
        with self._lock:
            pods = self._pods.get(pod.deployment, [])
            if pod in pods:
                pods.remove(pod)
            if not pods:
                self._pods.pop(pod.deployment, None)
        self._retire(pod)

    def _retire(self, pod: Pod) -> None:
        """Stop a server in the background (a graceful BentoML shutdown takes a moment)."""
        pod.ready = False
        self.events.append((time.monotonic(), "stop", pod.name))
        thread = threading.Thread(target=pod.server.stop, name=f"stop-{pod.name}", daemon=True)
        thread.start()
        self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]

    def _publish_targets(self) -> None:
        targets = sorted((pod.server.host_port, pod.labels) for pod in self.pods())
        if targets != self._targets and self.prometheus is not None and not self._stop.is_set():
            self.prometheus.set_targets(targets, group=self.namespace)
        self._targets = targets


def pods_ready(planes: Mapping[str, DataPlane], deployment: dict[str, Any]) -> bool:
    """The kubelet's readiness probe for the emulator's Deployment controller
    (``start_deployment_controller(pods_ready=...)``): a Deployment of Headway's in a namespace that has
    a data plane is ready once a real server runs its template; any other Deployment at once."""
    plane = planes.get(deployment["metadata"].get("namespace", ""))
    managed = (deployment["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY
    return plane is None or not managed or plane.serves_template(deployment)


# -- the gateway ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteTable:
    """What the gateway does with a request that matches no pin: weights and the mirror."""

    backends: tuple[tuple[str, int], ...]  # (Service, weight)
    mirror: tuple[str, float] | None = None  # (Service, percent)

    @classmethod
    def from_httproute(cls, route: dict[str, Any]) -> RouteTable:
        default = route["spec"]["rules"][-1]
        backends = tuple((ref["name"], int(ref.get("weight", 1))) for ref in default.get("backendRefs", []))
        mirror = None
        for flt in default.get("filters", []):
            if flt.get("type") == "RequestMirror":
                spec = flt["requestMirror"]
                if "percent" in spec:
                    percent = float(spec["percent"])
                elif "fraction" in spec:
                    percent = 100.0 * spec["fraction"]["numerator"] / spec["fraction"].get("denominator", 100)
                else:
                    percent = 100.0
                mirror = (spec["backendRef"]["name"], percent)
        return cls(backends, mirror)


@dataclass
class LoadStats:
    """Responses by variant and status (an HTTP code, or NO_SERVER / NO_BACKEND / CONN_ERROR)."""

    primary: dict[str, Counter[int | str]] = field(default_factory=dict)
    mirrored: dict[str, Counter[int | str]] = field(default_factory=dict)

    def total(self, variant: str | None = None, *, mirrored: bool = False) -> int:
        table = self.mirrored if mirrored else self.primary
        return sum(sum(c.values()) for v, c in table.items() if variant is None or v == variant)

    def answered(self, variant: str, *, mirrored: bool = False) -> int:
        """Requests a server of ``variant`` answered (any HTTP status)."""
        table = self.mirrored if mirrored else self.primary
        return sum(n for status, n in table.get(variant, Counter()).items() if isinstance(status, int))

    def share(self, variant: str) -> float:
        """Fraction of the primary requests routed to ``variant``."""
        total = self.total()
        return self.total(variant) / total if total else 0.0

    def errors(self, variant: str, *, mirrored: bool = False) -> int:
        table = self.mirrored if mirrored else self.primary
        return sum(n for status, n in table.get(variant, Counter()).items() if isinstance(status, int) and status >= 500)

    def __sub__(self, other: LoadStats) -> LoadStats:
        def sub(a: dict[str, Counter[int | str]], b: dict[str, Counter[int | str]]) -> dict[str, Counter[int | str]]:
            return {v: c for v in a if (c := a[v] - b.get(v, Counter()))}

        return LoadStats(sub(self.primary, other.primary), sub(self.mirrored, other.mirrored))


@dataclass(frozen=True)
class _Job:
    service: str
    variant: str
    pick: float
    payload: Any
    mirror: tuple[str, str] | None  # (Service, variant)
    request_id: str = ""  # x-request-id, the same on the mirrored copy


REQUEST_ID_HEADER = "x-request-id"


def example_payload(rng: random.Random) -> dict[str, list[float]]:
    """A request body for the bundled example's ``/score``: four random features."""
    return {"features": example_features(rng)}


class LoadGenerator:
    """Traffic to a ModelDeployment through its HTTPRoute; bounded in count and time.

    ``rate`` requests per second until ``max_requests`` were sent, ``max_seconds`` passed or
    :meth:`stop`. ``workers`` threads send them (keep-alive sessions); when all are busy,
    requests are dropped (``dropped``) rather than queued up. Each request is ``POST
    <path>`` with the JSON body ``payload(rng)`` (default: the bundled example's ``/score``
    with random features); :meth:`set_rate` changes the rate while it runs.
    """

    def __init__(self, dataplane: DataPlane, modeldeployment: str, *, rate: float = 30.0, max_requests: int = 3000,
                 max_seconds: float = 120.0, workers: int = 8, seed: int = 0, route_poll: float = 0.5,
                 timeout: float = 5.0, path: str = "/score", payload: Payload | None = None) -> None:
        assert rate > 0 and max_requests > 0 and max_seconds > 0
        self.dataplane = dataplane
        self.md = modeldeployment
        self.path = path if path.startswith("/") else f"/{path}"
        self.payload: Payload = payload or example_payload
        self.rate, self.max_requests, self.max_seconds = rate, max_requests, max_seconds
        self.workers, self.route_poll, self.timeout = workers, route_poll, timeout
        self.rng = random.Random(seed)
        self.sent = 0
        self.dropped = 0
        self.route: RouteTable = self._no_route()
        self.route_changes: list[tuple[float, RouteTable]] = []
        self._stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=workers * 4)
        self._threads: list[threading.Thread] = []
        self._route_read_at = 0.0

    def _no_route(self) -> RouteTable:
        return RouteTable(((f"{self.md}-stable", 1),))

    def variant_of(self, service: str) -> str:
        prefix = f"{self.md}-"
        return service[len(prefix):] if service.startswith(prefix) else service

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Self:
        assert not self._threads, "already started"
        self._refresh_route(force=True)
        self._threads = [threading.Thread(target=self._work, name=f"load-{self.md}-{i}", daemon=True) for i in range(self.workers)]
        self._threads.append(threading.Thread(target=self._dispatch, name=f"load-{self.md}", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self.wait(timeout)

    def set_rate(self, rate: float) -> None:
        """Requests per second from now on."""
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = rate

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until done (bounds reached or stopped); True if every thread ended."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.max_seconds + 30)
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        return not any(t.is_alive() for t in self._threads)

    def done(self) -> bool:
        return bool(self._threads) and not any(t.is_alive() for t in self._threads)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stats(self) -> LoadStats:
        """A snapshot; subtract two snapshots for the traffic between them."""
        with self._lock:
            return LoadStats({v: Counter(c) for v, c in self._stats.primary.items()},
                             {v: Counter(c) for v, c in self._stats.mirrored.items()})

    def wait_for(self, requests_: int, timeout: float = 60.0) -> LoadStats:
        """Wait until ``requests_`` more primary responses were counted; returns the delta."""
        before, delta = self.stats(), LoadStats()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delta = self.stats() - before
            if delta.total() >= requests_:
                return delta
            if self.done():
                break
            time.sleep(0.1)
        raise TimeoutError(f"{requests_} responses not counted within {timeout}s (got {delta.total()}, done={self.done()})")

    # -- threads ---------------------------------------------------------------------------------
    def _refresh_route(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._route_read_at < self.route_poll:
            return
        self._route_read_at = now
        try:
            route = self.dataplane.kube.get(HTTPROUTE, self.dataplane.namespace, self.md)
        except ApiError:
            return  # keep the last table (a gateway keeps its config while the API is away)
        table = RouteTable.from_httproute(route) if route is not None else self._no_route()
        if table != self.route or not self.route_changes:
            self.route = table
            self.route_changes.append((now, table))

    def _choose(self) -> _Job:
        table = self.route
        total = sum(w for _, w in table.backends)
        r = self.rng.random()
        service = ""
        if total > 0:
            point = r * total
            for service, weight in table.backends:
                if point < weight:
                    break
                point -= weight
        mirror = None
        if table.mirror is not None and self.rng.random() * 100.0 < table.mirror[1]:
            mirror = (table.mirror[0], self.variant_of(table.mirror[0]))
        payload = self.payload(self.rng)
        # The id is not drawn from self.rng: a seed gives the same requests as before ids existed.
        return _Job(service, self.variant_of(service) if service else NO_BACKEND, self.rng.random(), payload, mirror,
                    uuid.uuid4().hex)

    def _dispatch(self) -> None:
        started = due = time.monotonic()
        try:
            for i in range(self.max_requests):
                if i:
                    due += 1.0 / self.rate  # read each time: set_rate() takes effect at once
                if self._stop.wait(max(due - time.monotonic(), 0)) or time.monotonic() - started > self.max_seconds:
                    break
                self._refresh_route()
                job = self._choose()
                self.sent += 1
                try:
                    self._jobs.put_nowait(job)
                except queue.Full:
                    self.dropped += 1
        finally:
            for _ in range(self.workers):
                self._jobs.put(None)

    def _record(self, mirrored: bool, variant: str, status: int | str) -> None:
        with self._lock:
            table = self._stats.mirrored if mirrored else self._stats.primary
            table.setdefault(variant, Counter())[status] += 1

    def _send(self, session: requests.Session, service: str, pick: float, payload: Any, request_id: str = "") -> int | str:
        servers = self.dataplane.serving(service)
        if not servers:
            return NO_SERVER
        server = servers[min(int(pick * len(servers)), len(servers) - 1)]
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        try:
            return session.post(f"{server.url}{self.path}", json=payload, timeout=self.timeout, headers=headers).status_code
        except requests.RequestException:
            return CONN_ERROR

    def _work(self) -> None:
        with requests.Session() as session:
            while (job := self._jobs.get()) is not None:
                if not job.service:
                    self._record(False, NO_BACKEND, NO_BACKEND)
                    continue
                self._record(False, job.variant, self._send(session, job.service, job.pick, job.payload, job.request_id))
                if job.mirror is not None:  # the copy's answer (same id) is discarded, only counted
                    self._record(True, job.mirror[1], self._send(session, job.mirror[0], job.pick, job.payload, job.request_id))

