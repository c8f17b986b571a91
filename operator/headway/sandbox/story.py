"""Scenes: apply a manifest, wait on what the operator decides, record what happened.

A scene is one ModelDeployment manifest (examples/sandbox/*.yaml, or the user's ``-f``).
Its header comments tell the story::

    # title: A bad version, rolled back on its own
    # expect: rolledBack        (serving | rolledBack | promoted | settled)
    # A paragraph of narration, shown while the scene plays.

The sandbox applies the manifest (server-side apply, as ``kubectl apply --server-side``),
then waits — on conditions, never on the clock — until the operator has decided:

- ``serving``: phase Succeeded and the stable version answered live requests;
- ``rolledBack``: a RolledBack decision for this manifest's bento, and its pods gone once the
  operator's drain time is over (a promotion of it ends the scene as a failed expectation);
- ``promoted``: a Promoted decision for this bento and the phase back to Succeeded with it
  as stable (a rollback of it ends the scene as a failed expectation);
- ``settled`` (manifests without a header): the operator caught up with the generation and
  nothing is in progress (no rollout, no bake).

Every decision comes from the operator's own analysis of the real metrics: the story only
applies manifests and reads status, Events and Prometheus.

Time scale: ``time_scale`` multiplies every duration of the manifests (steps, bakeTime,
analysis interval, monitoring interval and window) — ``--fast`` plays them at a quarter. An analysis interval is never made
shorter than 3 s: Prometheus scrapes every second, and a shorter interval would hold fewer
than three scrapes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from headway.k8s.client import EVENT
from headway.reconciler import MODEL_DEPLOYMENT
from headway.sandbox.dataplane import LoadStats
from headway.sandbox.session import SandboxError, Session

EXPECTATIONS = ("serving", "rolledBack", "promoted", "settled")
MIN_INTERVAL_SECONDS = 3.0
MIN_MONITORING_SECONDS = 5.0  # a monitoring interval: slices of two 5 s scrapes fit in it
SETTLED_PHASES = ("Succeeded", "RolledBack", "Failed", "Degraded")
NOT_API = 'endpoint!~"/(livez|readyz|healthz|metrics|docs.json|schema.json)"'
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- durations -------------------------------------------------------------------------------------
def seconds(text: str) -> float:
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m or 250ms")
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


def duration(value: float) -> str:
    """A Duration the API accepts: whole seconds, or milliseconds under a minute's precision."""
    millis = max(int(round(value * 1000)), 1)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def scale_manifest(manifest: dict[str, Any], time_scale: float) -> dict[str, Any]:
    """The manifest with its step durations, bakeTime and analysis interval multiplied."""
    body = copy.deepcopy(manifest)
    spec = body.get("spec") or {}
    if time_scale == 1.0:
        return body
    rollout = spec.get("rollout") or {}
    for step in rollout.get("steps") or []:
        for kind in step.values():
            if isinstance(kind, dict) and isinstance(kind.get("duration"), str):
                kind["duration"] = duration(seconds(kind["duration"]) * time_scale)
    if isinstance(rollout.get("bakeTime"), str):
        rollout["bakeTime"] = duration(seconds(rollout["bakeTime"]) * time_scale)
    analysis = spec.get("analysis") or {}
    if isinstance(analysis.get("interval"), str):
        given = seconds(analysis["interval"])
        analysis["interval"] = duration(max(given * time_scale, min(given, MIN_INTERVAL_SECONDS)))
    monitoring = spec.get("monitoring") or {}
    if isinstance(monitoring.get("interval"), str):  # whole seconds (spec.monitoring's rule), the window at least one
        given = seconds(monitoring["interval"])
        interval = float(round(max(given * time_scale, min(given, MIN_MONITORING_SECONDS))))
        monitoring["interval"] = duration(interval)
        if isinstance(monitoring.get("window"), str):
            monitoring["window"] = duration(float(round(max(seconds(monitoring["window"]) * time_scale, interval))))
    return body


# -- scenes ----------------------------------------------------------------------------------------
@dataclass
class Scene:
    title: str
    manifest: dict[str, Any]
    expect: str = "settled"
    narration: str = ""
    source: str = ""
    notes: list[str] = field(default_factory=list)  # what the sandbox changed in the manifest, and why

    @property
    def key(self) -> str:
        return f"{self.manifest['metadata'].get('namespace', 'default')}/{self.manifest['metadata']['name']}"

    @property
    def bento(self) -> str:
        return str(self.manifest["spec"]["model"]["bento"])

    def timeout(self) -> float:
        """Generous: the steps' durations four times over, plus time to start servers and judge."""
        total = 0.0
        for step in (self.manifest["spec"].get("rollout") or {}).get("steps") or []:
            for kind in step.values():
                if isinstance(kind, dict) and isinstance(kind.get("duration"), str):
                    total += seconds(kind["duration"])
        bake = (self.manifest["spec"].get("rollout") or {}).get("bakeTime")
        total += seconds(bake) if isinstance(bake, str) else 0.0
        return 180.0 + 4 * total


def load_scenes(paths: Iterable[Path], time_scale: float = 1.0, prometheus_url: str | None = None) -> list[Scene]:
    """Scenes from YAML files: one per ModelDeployment document; errors name the file and field."""
    scenes: list[Scene] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            raise SandboxError(f"-f {path}: cannot read it ({exc.strerror})") from None
        header = _header(text)
        expect = header.get("expect", "settled")
        if expect not in EXPECTATIONS:
            raise SandboxError(f"{path}: '# expect: {expect}' is not one of {', '.join(EXPECTATIONS)}")
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise SandboxError(f"{path}: not valid YAML: {exc}") from None
        found = 0
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or doc.get("kind") != MODEL_DEPLOYMENT.kind:
                continue
            found += 1
            where = f"{path} (document {i + 1})" if len(docs) > 1 else str(path)
            for required in ("metadata.name", "spec.model.bento"):
                node: Any = doc
                for part in required.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if not node:
                    raise SandboxError(f"{where}: {required} is required")
            try:
                manifest = scale_manifest(doc, time_scale)
            except ValueError as exc:
                raise SandboxError(f"{where}: {exc}") from None
            scene = Scene(title=header.get("title") or str(doc["metadata"]["name"]),
                          manifest=manifest, expect=expect, narration=header.get("narration", ""), source=str(path))
            _fit_to_sandbox(scene, prometheus_url)
            scenes.append(scene)
        if not found:
            raise SandboxError(f"{path}: no ModelDeployment in it (kind: ModelDeployment, apiVersion: {MODEL_DEPLOYMENT.api_version})")
    return scenes


def _header(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    narration: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        key, sep, value = body.partition(":")
        if sep and key.strip() in ("title", "expect"):
            header[key.strip()] = value.strip()
        elif body:
            narration.append(body)
    if narration:
        header["narration"] = " ".join(narration)
    return header


def _fit_to_sandbox(scene: Scene, prometheus_url: str | None) -> None:
    """Point a manifest written for a cluster at the sandbox's parts, saying what changed."""
    spec = scene.manifest["spec"]
    analysis = spec.get("analysis") or {}
    url = (analysis.get("prometheus") or {}).get("url")
    if url and url != prometheus_url:
        del analysis["prometheus"]
        scene.notes.append(f"spec.analysis.prometheus.url {url} is replaced by the sandbox's Prometheus")
    provider = (spec.get("traffic") or {}).get("provider")
    if provider and provider != "gatewayApi":
        scene.notes.append(f"spec.traffic.provider {provider}: the sandbox's gateway follows Gateway API HTTPRoutes only; "
                           "with another provider every request goes to the stable version")


# -- what is recorded --------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    phase: str
    weights: dict[str, int]
    mirror: int
    error_rate: dict[str, float]
    latency: dict[str, float]  # seconds, at the percentile of Timeline.percentile


@dataclass
class Decision:
    t: float
    event: str
    bento: str
    message: str
    evidence: dict[str, Any] | None


@dataclass
class Timeline:
    started: float
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    decisions: dict[str, list[Decision]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scenes: list[tuple[float, str]] = field(default_factory=list)
    percentile: dict[str, float] = field(default_factory=dict)
    limits: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> {"errorRate": max share, "latency": max s}


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Outcome:
    scene: Scene
    ok: bool
    result: str  # what happened, in a word: serving, rolledBack, promoted, settled, or what went wrong
    seconds: float
    status: dict[str, Any]
    decision: Decision | None = None
    load: dict[str, dict[str, int]] = field(default_factory=dict)  # variant -> {"answered", "errors"}


@dataclass
class Snapshot:
    """What a view shows at one moment."""

    t: float
    scene: Scene | None
    scene_index: int
    scene_count: int
    body: dict[str, Any] | None
    sample: Sample | None
    events: list[dict[str, Any]]
    load: dict[str, dict[str, int]]
    percentile: float = 99.0


class View(Protocol):
    def start(self, session: Session) -> None: ...
    def scene(self, index: int, count: int, scene: Scene) -> None: ...
    def update(self, snapshot: Snapshot) -> None: ...
    def outcome(self, outcome: Outcome) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


# -- the recorder --------------------------------------------------------------------------------
class Recorder:
    """Samples status, Events and Prometheus for every ModelDeployment, twice a second."""

    def __init__(self, session: Session, period: float = 0.5) -> None:
        self.session = session
        self.period = period
        self.timeline = Timeline(started=session.started_at)
        self.bodies: dict[str, dict[str, Any]] = {}
        self._seen_history: set[tuple[str, str, str, str]] = set()
        self._seen_events: set[str] = set()
        self._lock = threading.Lock()
        self._http = requests.Session()

    def now(self) -> float:
        return time.time() - self.timeline.started

    def poll(self) -> None:
        session = self.session
        assert session.kube is not None
        for namespace, name in session.discover():
            body = session.kube.get(MODEL_DEPLOYMENT, namespace, name)
            if body is None:
                continue
            key = f"{namespace}/{name}"
            with self._lock:
                self.bodies[key] = body
                self._record_history(key, body)
                self._record_sample(key, namespace, name, body)
        events = session.kube.list(EVENT, None)
        with self._lock:
            for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
                involved = event.get("involvedObject") or {}
                uid = str(event["metadata"].get("uid") or event["metadata"]["name"])
                if involved.get("kind") != MODEL_DEPLOYMENT.kind or uid in self._seen_events:
                    continue
                self._seen_events.add(uid)
                key = f"{involved.get('namespace', event['metadata'].get('namespace'))}/{involved.get('name')}"
                self.timeline.events.setdefault(key, []).append(event)

    def _record_history(self, key: str, body: dict[str, Any]) -> None:
        for entry in (body.get("status") or {}).get("history") or []:
            ident = (key, entry.get("time", ""), entry.get("event", ""), entry.get("revision") or "")
            if ident in self._seen_history:
                continue
            self._seen_history.add(ident)
            at = parse_time(entry.get("time"))
            t = (at - self.timeline.started) if at is not None else self.now()
            self.timeline.decisions.setdefault(key, []).append(
                Decision(max(t, 0.0), str(entry.get("event")), str(entry.get("bento") or ""), str(entry.get("message") or ""), entry.get("evidence")))

    def _record_sample(self, key: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        traffic = status.get("traffic") or {}
        weights = {"stable": int(traffic.get("stableWeight", 100)), "candidate": int(traffic.get("candidateWeight", 0))}
        percentile = 99.0
        limits: dict[str, float] = {}
        for slo in ((body.get("spec") or {}).get("analysis") or {}).get("slos") or []:
            if "errorRate" in slo and "errorRate" not in limits and isinstance((slo["errorRate"] or {}).get("max"), (int, float)):
                limits["errorRate"] = float(slo["errorRate"]["max"])
            if "latency" in slo and "latency" not in limits:
                percentile = float(slo["latency"].get("percentile", 99))
                with contextlib.suppress(ValueError, TypeError):
                    limits["latency"] = seconds(str(slo["latency"].get("max")))
        self.timeline.percentile[key] = percentile
        self.timeline.limits[key] = limits
        errors, latency = self._metrics(namespace, name, percentile)
        sample = Sample(self.now(), str(status.get("phase") or "Pending"), weights, int(traffic.get("mirrorPercent", 0)), errors, latency)
        self.timeline.samples.setdefault(key, []).append(sample)

    def _metrics(self, namespace: str, name: str, percentile: float) -> tuple[dict[str, float], dict[str, float]]:
        prometheus = self.session.prometheus
        if prometheus is None:
            return {}, {}
        selector = f'namespace="{namespace}",modeldeployment="{name}",{NOT_API}'
        try:
            total = self._by_variant(prometheus.url, f"sum by (variant) (rate(bentoml_service_request_total{{{selector}}}[5s]))")
            failed = self._by_variant(prometheus.url, f'sum by (variant) (rate(bentoml_service_request_total{{{selector},http_response_code=~"5.."}}[5s]))')
            latency = self._by_variant(prometheus.url, f"histogram_quantile({percentile / 100:.4f}, sum by (variant, le) "
                                       f"(rate(bentoml_service_request_duration_seconds_bucket{{{selector}}}[5s])))")
        except (requests.RequestException, ValueError, KeyError):
            return {}, {}
        errors = {variant: failed.get(variant, 0.0) / rate for variant, rate in total.items() if rate > 0}
        return errors, {v: x for v, x in latency.items() if math.isfinite(x) and v in errors}

    def _by_variant(self, url: str, promql: str) -> dict[str, float]:
        response = self._http.get(f"{url}/api/v1/query", params={"query": promql}, timeout=2)
        response.raise_for_status()
        found = {}
        for item in response.json()["data"]["result"]:
            value = float(item["value"][1])
            if math.isfinite(value):
                found[str(item["metric"].get("variant", "?"))] = value
        return found

    def load(self, key: str, since: LoadStats | None = None) -> dict[str, dict[str, int]]:
        """Requests by version (since ``since``, a snapshot of the generator's stats)."""
        namespace, _, name = key.partition("/")
        generator = self.session.loads.get((namespace, name))
        if generator is None:
            return {}
        stats = generator.stats() - since if since is not None else generator.stats()
        return {variant: {"answered": stats.answered(variant), "errors": stats.errors(variant),
                          "rejected": rejected(stats.primary.get(variant, {})),
                          "mirrored": stats.answered(variant, mirrored=True)}
                for variant in sorted(set(stats.primary) | set(stats.mirrored))}

    def snapshot(self, scene: Scene | None, index: int, count: int) -> Snapshot:
        key = scene.key if scene else next(iter(self.bodies), "")
        with self._lock:
            samples = self.timeline.samples.get(key) or []
            return Snapshot(self.now(), scene, index, count, self.bodies.get(key), samples[-1] if samples else None,
                            list(self.timeline.events.get(key, [])), self.load(key),
                            self.timeline.percentile.get(key, 99.0))


def rejected(counts: Mapping[Any, int]) -> int:
    """Answers 4xx: the service did not accept the request (wrong --endpoint or --payload)."""
    return sum(n for status, n in counts.items() if isinstance(status, int) and 400 <= status < 500)


# -- the story -----------------------------------------------------------------------------------
class Story:
    """Plays scenes in order on a started session; ``view`` shows it as it happens."""

    def __init__(self, session: Session, view: View, recorder: Recorder | None = None) -> None:
        self.session = session
        self.view = view
        self.recorder = recorder or Recorder(session)
        self.outcomes: list[Outcome] = []
        self._warned: set[tuple[str, str]] = set()

    def tick(self, scene: Scene | None, index: int, count: int) -> None:
        self.session.check()
        self.recorder.poll()
        self.session.save()
        self._check_requests_accepted()
        self.view.update(self.recorder.snapshot(scene, index, count))

    def _check_requests_accepted(self) -> None:
        """Say so, once, when most requests are answered 4xx: the load does not fit the service."""
        for key, generator in list(self.session.loads.items()):
            if key in self._warned:
                continue
            statuses: Counter[Any] = Counter()
            for counts in generator.stats().primary.values():
                statuses.update({s: n for s, n in counts.items() if isinstance(s, int)})
            answered = sum(statuses.values())
            refused = rejected(statuses)
            if answered >= 20 and refused * 2 > answered:
                self._warned.add(key)
                common = ", ".join(f"{n} x {s}" for s, n in statuses.most_common(3))
                self.view.note(f"{key[0]}/{key[1]}: {refused} of {answered} requests were refused ({common}): the service does "
                               f"not accept POST {generator.path} with this body, so its SLOs see no real traffic. "
                               "Pass --endpoint PATH and --payload FILE.json (a body it accepts).")

    def play(self, scenes: list[Scene], stop_on_failure: bool = True) -> list[Outcome]:
        for index, scene in enumerate(scenes):
            self.view.scene(index, len(scenes), scene)
            for note in scene.notes:
                self.view.note(note)
            self.recorder.timeline.scenes.append((self.recorder.now(), scene.title))
            outcome = self.play_scene(scene, index, len(scenes))
            self.outcomes.append(outcome)
            self.view.outcome(outcome)
            if not outcome.ok and stop_on_failure:
                break
        return self.outcomes

    def play_scene(self, scene: Scene, index: int, count: int) -> Outcome:
        started = time.monotonic()
        try:
            self.session.apply(scene.manifest)
        except Exception as exc:  # the API server refused it: its message names the field
            message = getattr(exc, "message", None) or str(exc)
            raise SandboxError(f"{scene.source}: the API server refused the ModelDeployment: {message}") from None
        namespace, _, name = scene.key.partition("/")
        generator = self.session.loads[(namespace, name)]
        baseline = generator.stats()
        judge: Callable[[dict[str, Any]], tuple[str, bool] | None] = {
            "serving": lambda body: self._serving(body, generator.stats() - baseline),
            "rolledBack": lambda body: self._rolled_back(body, scene),
            "promoted": lambda body: self._decided(body, scene.bento, want="Promoted", other="RolledBack"),
            "settled": self._settled,
        }[scene.expect]
        deadline = started + scene.timeout()
        verdict: tuple[str, bool] | None = None
        body: dict[str, Any] = {}
        while verdict is None:
            if time.monotonic() > deadline:
                verdict = (f"timed out after {scene.timeout():.0f}s (phase {self._phase(body)})", False)
                break
            self.tick(scene, index, count)
            body = self.recorder.bodies.get(scene.key) or {}
            verdict = judge(body) if body else None
            if verdict is None:
                time.sleep(self.recorder.period)
        result, ok = verdict
        decisions = [d for d in self.recorder.timeline.decisions.get(scene.key, []) if d.bento == scene.bento]
        decision = next((d for d in reversed(decisions) if d.event in ("RolledBack", "Aborted")), None)
        if decision is None:  # a promotion's evidence is its last step's analysis
            decision = next((d for d in reversed(decisions) if d.event == "StepCompleted" and d.evidence), None)
        if decision is None and decisions:
            decision = decisions[-1]
        return Outcome(scene, ok and (result == scene.expect), result, time.monotonic() - started, body.get("status") or {},
                       decision, self.recorder.load(scene.key, baseline))

    @staticmethod
    def _phase(body: dict[str, Any]) -> str:
        return str((body.get("status") or {}).get("phase") or "none yet")

    def _serving(self, body: dict[str, Any], delta: Any) -> tuple[str, bool] | None:
        status = body.get("status") or {}
        if status.get("phase") != "Succeeded" or not (status.get("stable") or {}).get("available"):
            return None
        wanted = max(int(self.session.options.rate * 3), 20)
        return ("serving", True) if delta.answered("stable") >= wanted else None

    def _rolled_back(self, body: dict[str, Any], scene: Scene) -> tuple[str, bool] | None:
        """Rolled back, and the candidate's pods gone (after the operator's drain time): the next
        version's rollout then starts from a clean slate, as an operator would wait for."""
        verdict = self._decided(body, scene.bento, want="RolledBack", other="Promoted")
        if verdict is None or not verdict[1]:
            return verdict
        namespace, _, name = scene.key.partition("/")
        plane = self.session.planes.get(namespace)
        return verdict if plane is None or not plane.pods(f"{name}-candidate") else None

    @staticmethod
    def _decided(body: dict[str, Any], bento: str, want: str, other: str) -> tuple[str, bool] | None:
        status = body.get("status") or {}
        events = [(h.get("event"), h.get("bento")) for h in status.get("history") or []]
        if (other, bento) in events:
            return ("rolledBack" if other == "RolledBack" else "promoted", False)
        if status.get("phase") == "Failed":
            return ("Failed", False)
        if want == "RolledBack":
            rolled = status.get("rolledBack") or {}
            if status.get("phase") == "RolledBack" and rolled.get("bento") == bento:
                return ("rolledBack", True)
            return None
        stable = (status.get("stable") or {}).get("bento")
        if (want, bento) in events and status.get("phase") == "Succeeded" and stable == bento and not status.get("bake"):
            return ("promoted", True)
        return None

    @staticmethod
    def _settled(body: dict[str, Any]) -> tuple[str, bool] | None:
        status = body.get("status") or {}
        generation = body["metadata"].get("generation")
        if status.get("observedGeneration") != generation or status.get("phase") not in SETTLED_PHASES:
            return None
        if status.get("rollout") or status.get("bake"):
            return None
        return ("settled", True)

    def watch(self, stop: threading.Event, period: float = 0.5) -> None:
        """Keep recording and showing (``--keep``) until ``stop`` is set."""
        while not stop.is_set():
            self.tick(None, 0, 0)
            stop.wait(period)
