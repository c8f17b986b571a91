"""observe -> plan -> render -> apply: the one place all layers meet.

Each call reads the ModelDeployment fresh (so a stale watch event can't drive a
decision) and lists its children, plans from what it read, renders the children and
works out which of them must be written (reads only), and then writes, in this order:

1. the status that records the decision (step, weights, controls handled), with the
   resourceVersion it was decided from. A 409 means the object changed meanwhile: nothing
   else is written and the next reconcile decides again, from the newer status, so a
   conflict never moves traffic;
2. the Events and log lines of the decisions, now that they are durable;
3. the children, following the status (workloads first, the route after them, pruning
   last). Children are a function of status and spec: an operator that dies between 1 and
   3 is caught up by the next reconcile, which plans the same children from that status.
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
from headway.k8s.apply import (
    Action, LiveChildren, Writes, apply_writes, confirm_fresh, list_children, patch_status, plan_writes, post_event,
)
from headway.k8s.client import DEPLOYMENT, PDB, SERVICE, ApiError, Kind, Kube, register_kind
from headway.planning.conditions import EventIntent, set_condition
from headway.metrics.base import MetricsError, MetricSource, SeriesQuery
from headway.metrics.prometheus import PrometheusSource
from headway.planning import analysis
from headway.planning.naming import LABEL_MD, LABEL_VARIANT, Owner, VariantWorkload, shared_labels
from headway.planning.observe import observe_deployment, parse_status
from headway.planning.plan import Gate, Observed, Plan, plan
from headway.planning.rollout import TrafficPlan
from headway.planning.validation import metrics_url_problems, normalize_url, parse_spec
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


def allowed_urls(default_url: str | None, allowed: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_url(u) for u in (*allowed, *([default_url] if default_url else [])))


def run_analysis(spec: ModelDeploymentSpec | None, owner: Owner, previous: ModelDeploymentStatus, now: datetime,
                 default_url: str | None, allowed: frozenset[str]) -> tuple[AnalysisStatus | None, Gate | None, ExperimentDecision | None]:
    """Measure when the analysis is due, and turn the latest measurement into a gate."""
    req = analysis.request(spec, previous, now)
    decision = previous.experiment_decision
    if req is None or spec is None or spec.analysis is None or metrics_url_problems(spec, allowed):
        return previous.analysis, None, decision  # a URL it may not call is a spec problem: never called
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


def forget(namespace: str, name: str) -> None:
    """Drop the lock of a ModelDeployment that is gone."""
    with _locks_guard:
        _locks.pop((namespace, name), None)


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


def observe_variants(live: LiveChildren, owner: Owner) -> dict[str, Any]:
    return {
        d["metadata"]["labels"][LABEL_VARIANT]: observe_deployment(d)
        for d in live.get(DEPLOYMENT.kind, {}).values()
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


def render_children(kube: Kube, owner: Owner, result: Plan) -> tuple[list[dict[str, Any]], set[tuple[str, str]], list[str]]:
    """The children a plan wants, the (kind, name) pairs to leave alone, and route problems."""
    assert result.spec is not None and result.workloads is not None
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
    return children, keep, route_problems


class Conflict(ApiError):
    """The ModelDeployment changed between the read and the status write: nothing was written."""


def reconcile(kube: Kube, namespace: str, name: str, now: datetime | None = None, prometheus_url: str | None = None,
              allowed_prometheus_urls: tuple[str, ...] = ()) -> Plan | None:
    """Bring one ModelDeployment's status, then its children, in line with its spec.

    Returns the plan carried out, or None when the ModelDeployment is gone or being
    deleted; raises Conflict (nothing written) when it changed while this call decided.
    """
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
        allowed = allowed_urls(prometheus_url, allowed_prometheus_urls)
        analysis_status, gate, decision = run_analysis(spec, owner, previous, now, prometheus_url, allowed)
        managed = WORKLOAD_KINDS + tuple(k for k in (*ROUTE_KINDS, PODMONITOR) if kube.serves(k))
        live = list_children(kube, owner, managed)
        observed = Observed(
            raw_spec=body.get("spec") or {}, generation=generation, annotations=meta.get("annotations") or {},
            previous=previous, live=observe_variants(live, owner), gate=gate, analysis=analysis_status, decision=decision,
            allowed_metrics_urls=allowed,
        )
        result = plan(owner, observed, now)

        writes = Writes([], [], [])
        if result.spec is not None and result.workloads is not None:
            children, keep, route_problems = render_children(kube, owner, result)
            writes = plan_writes(kube, owner, children, live, keep)
            if writes.conflicts:
                result = _with_apply_problems(result, previous.conditions, [a.detail for a in writes.conflicts], "ChildConflict", now, generation)
            elif route_problems:
                result = _with_apply_problems(result, previous.conditions, route_problems, "RouteNotApplied", now, generation)

        # 1. The decision, with the resourceVersion it was made from.
        body.setdefault("apiVersion", MODEL_DEPLOYMENT.api_version)
        body.setdefault("kind", MODEL_DEPLOYMENT.kind)
        try:
            wrote = patch_status(kube, MODEL_DEPLOYMENT, body, result.status.dump())
            if not wrote and writes:
                confirm_fresh(kube, MODEL_DEPLOYMENT, body)  # the status we act on is still the latest
        except ApiError as exc:
            if exc.status == 409:
                log.info("%s/%s changed while reconciling: nothing written, deciding again from the newer status", namespace, name,
                         extra=_log_fields(owner, result, "Conflict"))
                raise Conflict(exc.status, exc.reason, exc.message) from exc
            raise
        # 2. Its Events and log lines.
        _count(result, owner)
        if wrote:
            log.info("%s/%s status: %s", namespace, name, _summary(result), extra=_log_fields(owner, result, "StatusWritten"))
        for event in result.events:
            log.log(logging.WARNING if event.type == "Warning" else logging.INFO, "%s/%s %s: %s [%s]", namespace, name,
                    event.reason, event.message, _summary(result), extra=_log_fields(owner, result, event.reason))
            post_event(kube, body, event, now)
            telemetry.EVENTS.labels(event.type, event.reason).inc()
        # 3. The children follow the status.
        try:
            actions = apply_writes(kube, owner, writes)
        except ApiError as exc:
            failed = EventIntent("Warning", "ApplyFailed", f"could not write the children of {namespace}/{name}: {exc}")
            log.warning("%s/%s %s", namespace, name, failed.message, extra=_log_fields(owner, result, failed.reason))
            post_event(kube, body, failed, now)
            raise
        for action in actions:
            telemetry.CHILD_WRITES.labels(action.kind, action.verb).inc()
            log.info("%s/%s %s %s %s (%s)", namespace, name, action.verb, action.kind, action.name, action.detail,
                     extra={**_log_fields(owner, result, action.verb.capitalize()), "child": f"{action.kind}/{action.name}"})
        for event in _action_events(actions):
            post_event(kube, body, event, now)
            telemetry.EVENTS.labels(event.type, event.reason).inc()
        return result


def _weights(result: Plan) -> str:
    traffic = result.status.traffic
    return traffic.split if traffic is not None else ""


def _verdict(result: Plan) -> str:
    analysis_status = result.status.analysis
    if analysis_status is None:
        return ""
    parts = [f"{v.variant}/{v.slo}={v.result}" + (f"({v.value:.4g} vs {v.threshold:.4g}, n={v.samples})" if v.value is not None and v.threshold is not None else "")
             for v in analysis_status.verdicts]
    return f"{analysis_status.result}: " + ", ".join(parts) if parts else analysis_status.result


def _revision(result: Plan) -> str:
    status = result.status
    if status.rollout is not None:
        return status.rollout.revision
    return status.stable.revision if status.stable is not None else ""


def _step(result: Plan) -> str:
    rollout = result.status.rollout
    if rollout is None or result.spec is None or result.spec.rollout is None:
        return ""
    return f"{rollout.step + 1}/{len(result.spec.rollout.steps)}"


def _summary(result: Plan) -> str:
    """The decision context in one line: revision, phase, step, weights, verdict."""
    phase = result.status.phase.value if result.status.phase else ""
    fields = [("revision", _revision(result)), ("phase", phase), ("step", _step(result)), ("weights", _weights(result)),
              ("verdict", _verdict(result))]
    return " ".join(f"{k}={v}" if " " not in v else f'{k}="{v}"' for k, v in fields if v)


def _log_fields(owner: Owner, result: Plan, decision: str) -> dict[str, Any]:
    """The same context as fields, for --log-format json (kopf's formatter adds `extra`)."""
    return {
        "k8s_skip": True,  # never re-posted as a kopf Event: Headway posts its own
        "k8s_ref": {"apiVersion": MODEL_DEPLOYMENT.api_version, "kind": MODEL_DEPLOYMENT.kind,
                    "namespace": owner.namespace, "name": owner.name, "uid": owner.uid},
        "decision": decision, "revision": _revision(result),
        "phase": result.status.phase.value if result.status.phase else None, "step": _step(result) or None,
        "weights": _weights(result) or None, "verdict": _verdict(result) or None,
    }
