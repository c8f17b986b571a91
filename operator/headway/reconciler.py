"""observe -> plan -> render -> apply: the one place all layers meet.

Each call reads the ModelDeployment fresh (so a stale watch event can't drive a
decision), plans from what it read, writes the children (workloads first, the route
after them, pruning last), then the status with the resourceVersion it read (409 if
anything changed meanwhile: nothing is lost, the next reconcile decides again), then
posts the Events for the decisions it wrote.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import headway
from headway.api.spec import ModelDeploymentSpec, SeriesLabels
from headway.api.status import AnalysisStatus, ConditionType, ExperimentDecision, ModelDeploymentStatus, Phase
from headway.k8s.apply import Action, apply_children, patch_status, post_event
from headway.k8s.client import DEPLOYMENT, PDB, SERVICE, ApiError, Kind, Kube, register_kind
from headway.planning.conditions import EventIntent, set_condition
from headway.metrics.base import MetricsError, MetricSource, SeriesQuery
from headway.metrics.prometheus import PrometheusSource
from headway.planning import analysis
from headway.planning.naming import LABEL_MD, LABEL_VARIANT, Owner, VariantWorkload, shared_labels
from headway.planning.observe import observe_deployment, parse_status
from headway.planning.plan import Gate, Observed, Plan, plan
from headway.planning.rollout import TrafficPlan
from headway.planning.validation import parse_spec
from headway.planning.verdicts import VariantData, assess
from headway.rendering.monitoring import build_podmonitor
from headway.rendering.workload import build_children
from headway import telemetry
from headway.traffic.base import Backend, Mirror, Pin, RouteIntent
from headway.traffic.registry import ALL_KINDS, provider_for

log = logging.getLogger(__name__)

MODEL_DEPLOYMENT = register_kind(Kind(headway.GROUP, headway.VERSION, headway.PLURAL, headway.KIND))
WORKLOAD_KINDS = (DEPLOYMENT, SERVICE, PDB)
ROUTE_KINDS = tuple(register_kind(Kind(k.group, k.version, k.plural, k.kind)) for k in ALL_KINDS)
PODMONITOR = register_kind(Kind("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor"))
_sources: dict[str, MetricSource] = {}


def metric_source(url: str) -> MetricSource:
    if url not in _sources:
        _sources[url] = PrometheusSource(url)
    return _sources[url]


def run_analysis(spec: ModelDeploymentSpec | None, owner: Owner, previous: ModelDeploymentStatus, now: datetime,
                 default_url: str | None) -> tuple[AnalysisStatus | None, Gate | None, ExperimentDecision | None]:
    """Measure when the analysis is due, and turn the latest measurement into a gate."""
    req = analysis.request(spec, previous, now)
    decision = previous.experiment_decision
    if req is None or spec is None or spec.analysis is None:
        return previous.analysis, None, decision
    status = previous.analysis
    if analysis.due(spec.analysis, status, req, now):
        cfg = spec.analysis
        url = (cfg.prometheus.url if cfg.prometheus else None) or default_url
        data: dict[str, VariantData | None] = {}
        error = None if url else "no Prometheus URL: set spec.analysis.prometheus.url or the operator's --prometheus-url"
        labels = cfg.series_labels or SeriesLabels()
        for variant in {v for pair in req.targets for v in pair if v}:
            if error is None:
                try:
                    data[variant] = metric_source(url).fetch(SeriesQuery(  # type: ignore[arg-type]
                        owner.namespace, owner.name, variant, req.window_start, now, tuple(cfg.slos), labels, cfg.interval))
                except MetricsError as exc:
                    error = str(exc)
        verdicts = [
            (variant, verdict)
            for variant, baseline in req.targets
            for verdict in assess(cfg.slos, data.get(variant) if error is None else None,
                                  data.get(baseline) if baseline and error is None else None, cfg.min_requests)
        ]
        status = analysis.record(cfg, status, req, verdicts, error, now)
        if req.purpose == "experiment" and error is None:
            decision = analysis.decide_experiment(spec, decision, data, now)
        for variant, verdict in verdicts:
            telemetry.VERDICT.labels(owner.namespace, owner.name, variant, verdict.slo).set({"Pass": 1, "Fail": -1}.get(verdict.result, 0))
            if verdict.value is not None:
                telemetry.SLO_VALUE.labels(owner.namespace, owner.name, variant, verdict.slo).set(verdict.value)
    return status, analysis.gate(spec.analysis, status, req), decision

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    """Serialise reconciles of one object within this process (watch events and timers overlap)."""
    with _locks_guard:
        return _locks[(namespace, name)]


def build_route_intent(owner: Owner, labels: dict[str, str], workloads: list[VariantWorkload], traffic: TrafficPlan) -> RouteIntent:
    """Translate the planned split into a provider's terms: Services, ports, weights."""
    by_variant = {w.variant: w for w in workloads}

    def service(variant: str) -> tuple[str, int]:
        return owner.variant_name(variant), by_variant[variant].model.port

    backends = tuple(Backend(v, *service(v), weight) for v, weight in traffic.weights.items() if v in by_variant)
    mirror = None
    if traffic.mirror and traffic.mirror[0] in by_variant:
        mirror = Mirror(traffic.mirror[0], *service(traffic.mirror[0]), traffic.mirror[1])
    pins = tuple(Pin(p.kind, p.name, p.value, p.variant) for p in traffic.pins if p.variant in by_variant)
    return RouteIntent(name=owner.name, namespace=owner.namespace, labels=labels, owner=owner.reference(),
                       backends=backends, mirror=mirror, pins=pins)


def render_route(kube: Kube, owner: Owner, spec: ModelDeploymentSpec, workloads: list[VariantWorkload], traffic: TrafficPlan,
                 labels: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The route objects, or why there are none (a provider limit, a CRD not installed)."""
    provider = provider_for(spec.traffic)
    intent = build_route_intent(owner, labels, workloads, traffic)
    problems = provider.check(intent, spec.traffic)
    if problems:
        return [], [f"{p.field}: {p.message}" for p in problems]
    missing = [k for k in provider.kinds if not kube.serves(Kind(k.group, k.version, k.plural, k.kind))]
    if missing:
        kube.forget_discovery()  # look again next time: the CRD may be installed meanwhile
        return [], [f"spec.traffic.provider: {provider.name} needs the {k.kind} CRD ({k.group}), which this cluster does not serve" for k in missing]
    return provider.render(intent, spec.traffic), []


def _with_apply_problems(result: Plan, previous_conditions: list[Any], messages: list[str], reason: str, now: datetime,
                         generation: int | None) -> Plan:
    """What could not be applied makes the ModelDeployment Degraded, naming why (one Event per change)."""
    message = "; ".join(messages)
    degraded = set_condition(result.status.conditions, ConditionType.DEGRADED, "True", reason, message, now, generation)
    conditions = [degraded if c.type == ConditionType.DEGRADED else c for c in result.status.conditions]
    phase = result.status.phase if result.status.phase in (Phase.ROLLED_BACK, Phase.FAILED) else Phase.DEGRADED
    status = result.status.model_copy(update={"conditions": conditions, "phase": phase})
    old = next((c for c in previous_conditions if c.type == ConditionType.DEGRADED), None)
    events = list(result.events)
    if old is None or old.reason != reason or old.message != message:
        events.append(EventIntent("Warning", reason, message))
    return Plan(result.spec, result.workloads, result.traffic, status, events, result.keep)


def _action_events(actions: list[Action]) -> list[EventIntent]:
    return [EventIntent("Normal", a.verb.capitalize(), f"{a.kind} {a.name} {a.verb}") for a in actions if a.verb != "conflict"]


def observe_variants(kube: Kube, owner: Owner) -> dict[str, Any]:
    live = kube.list(DEPLOYMENT, owner.namespace, f"{LABEL_MD}={owner.name}")
    return {
        d["metadata"]["labels"][LABEL_VARIANT]: observe_deployment(d)
        for d in live
        if LABEL_VARIANT in d["metadata"].get("labels", {}) and any(r.get("uid") == owner.uid for r in d["metadata"].get("ownerReferences", []))
    }


def _count(result: Plan, owner: Owner) -> None:
    for event in result.events:
        kind = {"RolloutStarted": "started", "Promoted": "promoted", "RolledBack": "rolled_back", "Aborted": "aborted"}.get(event.reason)
        if kind:
            telemetry.ROLLOUTS.labels(kind).inc()
        if event.reason in ("RolledBack", "Aborted"):
            reason = result.status.rolled_back.reason if result.status.rolled_back else event.reason
            telemetry.ROLLBACKS.labels(reason).inc()
    if result.traffic is not None:
        for variant, weight in result.traffic.weights.items():
            telemetry.WEIGHT.labels(owner.namespace, owner.name, variant).set(weight)


def reconcile(kube: Kube, namespace: str, name: str, now: datetime | None = None, prometheus_url: str | None = None) -> Plan | None:
    """Bring one ModelDeployment's children and status in line with its spec."""
    with _lock(namespace, name):
        body = kube.get(MODEL_DEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone or going: garbage collection removes the children
        now = now or datetime.now(timezone.utc)
        meta = body["metadata"]
        owner = Owner(name=name, namespace=namespace, uid=meta["uid"])
        generation = meta.get("generation")
        previous = parse_status(body.get("status"))
        spec, _ = parse_spec(body.get("spec") or {})
        analysis_status, gate, decision = run_analysis(spec, owner, previous, now, prometheus_url)
        observed = Observed(
            raw_spec=body.get("spec") or {}, generation=generation, annotations=meta.get("annotations") or {},
            previous=previous, live=observe_variants(kube, owner), gate=gate, analysis=analysis_status, decision=decision,
        )
        result = plan(owner, observed, now)

        actions: list[Action] = []
        if result.spec is not None and result.workloads is not None:
            children = build_children(owner, result.spec, result.workloads)
            route_problems: list[str] = []
            labels = shared_labels(owner, result.spec)
            if result.traffic is not None:
                routes, route_problems = render_route(kube, owner, result.spec, result.workloads, result.traffic, labels)
                children += routes
            if result.spec.analysis is not None and kube.serves(PODMONITOR):
                children.append(build_podmonitor(owner, result.spec, labels))
            keep = {(kind, owner.variant_name(v)) for v in result.keep for kind in ("Deployment", "Service")}
            if route_problems:  # never prune the route that serves now because a new one can't be rendered
                keep |= {(k.kind, owner.name) for k in ROUTE_KINDS}
            managed = WORKLOAD_KINDS + tuple(k for k in (*ROUTE_KINDS, PODMONITOR) if kube.serves(k))
            actions = apply_children(kube, owner, children, managed, keep=keep)
            conflicts = [a.detail for a in actions if a.verb == "conflict"]
            if conflicts:
                result = _with_apply_problems(result, previous.conditions, conflicts, "ChildConflict", now, generation)
            elif route_problems:
                result = _with_apply_problems(result, previous.conditions, route_problems, "RouteNotApplied", now, generation)

        body.setdefault("apiVersion", MODEL_DEPLOYMENT.api_version)
        body.setdefault("kind", MODEL_DEPLOYMENT.kind)
        try:
            patch_status(kube, MODEL_DEPLOYMENT, body, result.status.dump())
        except ApiError as exc:
            if exc.status == 409:
                log.info("%s/%s changed while reconciling; deciding again on the next event", namespace, name)
                return None
            raise
        _count(result, owner)
        for action in actions:
            telemetry.CHILD_WRITES.labels(action.kind, action.verb).inc()
        for event in [*_action_events(actions), *result.events]:
            post_event(kube, body, event, now)
            telemetry.EVENTS.labels(event.type, event.reason).inc()
        return result
