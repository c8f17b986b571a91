"""observe -> plan -> render -> apply: the one place all layers meet.

Each call reads the ModelDeployment and its children from a ``Reader`` (the operator's watch
caches; a ``LiveReader`` of the API server for tools and in-process tests) and which optional
kinds the cluster serves, takes the latest measurement (the runtime's ``Measurer``, or a
synchronous fetch when there is none), plans, renders the children and works out which of
them must be written, and derives the status once from all of that, before any write. Then
it writes, in this order:

1. the status that records the decision (step, weights, controls handled), with the
   resourceVersion it was decided from. A 409 means the object changed meanwhile (or the
   cache was behind): nothing else is written and the next reconcile decides again, from the
   newer status, so a conflict never moves traffic;
2. the Events and log lines of the decisions, now that they are durable;
3. the children, following the status (workloads first, the route after them, pruning
   last). Children are a function of status and spec: an operator that dies between 1 and
   3 is caught up by the next reconcile, which plans the same children from that status.

What the API server answers to 1 and 3 is stored in the cache at once, so the next reconcile
does not decide from the state before its own writes. A steady reconcile sends no request.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from collections.abc import Callable

import headway
from headway.api import approval
from headway.api.spec import ModelDeploymentSpec
from headway.api.status import ModelDeploymentStatus
from headway.k8s.apply import Action, Writes, apply_writes, confirm_fresh, patch_status, plan_writes, post_event
from headway.k8s.cache import LiveChildren, LiveReader, Reader, kind_key
from headway.k8s.client import DEPLOYMENT, PDB, SERVICE, ApiError, Kind, Kube, register_kind
from headway.k8s.records import ROLLOUT_RECORD, apply_records, plan_for
from headway.planning.conditions import EventIntent
from headway.metrics.base import BinnedQuery, MetricsError, MetricSource, SeriesQuery
from headway.metrics.measurer import Measurer
from headway.metrics.prometheus import PrometheusSource
from headway.notify import Notifier
from headway.planning.notifications import Subject
from headway.planning import capabilities
from headway.planning.naming import LABEL_MD, LABEL_VARIANT, Owner, shared_labels
from headway.api.monitoring_spec import ProfileReference
from headway.api.profile import ReferenceProfile
from pydantic import ValidationError
from headway.planning.governance import parse_approvals
from headway.planning.measure import NO_URL, Measurement, MeasureRequest
from headway.planning.monitoring import MonitorRequest, MonitorResult
from headway.planning.observe import Observation, observe_deployment, parse_status
from headway.planning.plan import Plan, RenderProblem, finish, plan
from headway.planning.cost import Prices
from headway.planning.validation import normalize_url, parse_spec
from headway.planning.validation import prometheus_url as analysis_url
from headway.planning.verdicts import VariantData
from headway.rendering.monitoring import build_podmonitor
from headway.rendering.scaling import scaler_problems
from headway.rendering.workload import build_children
from headway import telemetry
from headway.traffic import registry

log = logging.getLogger(__name__)

MODEL_DEPLOYMENT = register_kind(Kind(headway.GROUP, headway.VERSION, headway.PLURAL, headway.KIND))
HPA = register_kind(Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"))
MODEL_APPROVAL = register_kind(Kind(headway.GROUP, headway.VERSION, approval.PLURAL, approval.KIND))
WORKLOAD_KINDS = (DEPLOYMENT, SERVICE, PDB, HPA)  # built in: always served
# The optional kinds of the capability table ("group/Kind"), with what the API client needs.
CRD_KINDS: dict[str, Kind] = {kind_key(k): register_kind(k) for k in (
    Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
    Kind("networking.istio.io", "v1", "virtualservices", "VirtualService"),
    Kind("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor"),
    Kind("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject"),
)}
ROUTE_KINDS = tuple(CRD_KINDS[k] for k in capabilities.ROUTE_KINDS)
PODMONITOR = CRD_KINDS[capabilities.PODMONITOR]
SCALEDOBJECT = CRD_KINDS[capabilities.SCALEDOBJECT]
CHILD_KINDS = WORKLOAD_KINDS + tuple(CRD_KINDS.values())  # every kind the watch caches hold
_sources: dict[str, MetricSource] = {}
Sources = Callable[[str], MetricSource]


def metric_source(url: str) -> MetricSource:
    if url not in _sources:
        _sources[url] = PrometheusSource(url)
    return _sources[url]


def allowed_urls(default_url: str | None, allowed: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_url(u) for u in (*allowed, *([default_url] if default_url else [])))


def fetch_measurement(req: MeasureRequest, source: MetricSource | None, now: datetime | None = None) -> Measurement:
    """Answer a MeasureRequest: each variant's series over [window_start, now] (I/O; ``source``
    None when no Prometheus URL is configured). The first error ends the measurement."""
    now = now or datetime.now(timezone.utc)
    data: dict[str, VariantData | None] = {}
    error = None if source is not None and req.url else NO_URL
    for variant in req.variants:
        if error is not None or source is None:
            break
        try:
            data[variant] = source.fetch(SeriesQuery(req.namespace, req.name, variant, req.window_start, now, req.slos, req.labels,
                                                     req.interval, req.revision_of(variant)))
        except MetricsError as exc:
            error = str(exc)
    return Measurement(req, data, error, now)


CONFIGMAP = register_kind(Kind("", "v1", "configmaps", "ConfigMap"))


def read_profile(kube: Kube, namespace: str, ref: ProfileReference) -> ReferenceProfile:
    """The reference profile in ConfigMap ``ref`` (I/O); MonitoringError says what is wrong, naming it."""
    where = f"ConfigMap {namespace}/{ref.config_map}"
    try:
        config_map = kube.get(CONFIGMAP, namespace, ref.config_map)
    except ApiError as exc:
        raise MonitoringError(f"{where}: cannot be read: {exc}") from exc
    if config_map is None:
        raise MonitoringError(f"{where} (spec.monitoring.profile.configMap) does not exist: create it with "
                              f"`headway profile DATA --configmap {ref.config_map} | kubectl apply -n {namespace} -f -`")
    # Nothing of the ConfigMap's contents goes into status or Events (it may not be a profile, and
    # whoever writes the ModelDeployment may not be allowed to read it): its key names and the
    # validation error's location only, never a value.
    data = config_map.get("data") or {}
    if ref.key not in data:
        raise MonitoringError(f"{where} has no key {ref.key!r} (spec.monitoring.profile.key)")
    try:
        return ReferenceProfile.model_validate_json(data[ref.key])
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        at = ".".join(str(part) for part in first.get("loc", ())) or "the top"
        raise MonitoringError(f"{where} key {ref.key!r} is not a Headway reference profile ({at}: {first.get('msg', '')}); "
                              f"build one with `headway profile`") from None


class MonitoringError(Exception):
    """The profile could not be read or is not a profile."""


def fetch_monitoring(req: MonitorRequest, kube: Kube, source: MetricSource | None, now: datetime | None = None) -> MonitorResult:
    """Answer a MonitorRequest: the profile from its ConfigMap and each window's bin counts (I/O)."""
    now = now or datetime.now(timezone.utc)
    try:
        profile = read_profile(kube, req.namespace, req.profile)
    except MonitoringError as exc:
        return MonitorResult(req, None, {}, str(exc), now)
    if source is None or not req.url:
        return MonitorResult(req, profile, {}, NO_URL, now)
    names = frozenset(req.features or profile.features)
    # "drift": the stable's last window; "candidate" and "stable": the step's comparison (same slices).
    windows = [("drift", req.drift, names, req.prediction)] if req.drift else []
    if req.compare is not None:
        windows += [("candidate", req.compare[0], frozenset(), True), ("stable", req.compare[1], frozenset(), True)]
    counts: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for key, window, features, prediction in windows:
            # The comparison's sketches too, when its step can measure agreement per request (planning.agreement).
            sketch = key != "drift" and req.no_agreement is None
            counts[key] = source.binned(BinnedQuery(req.namespace, req.name, window.variant, window.start, window.end, window.slices,
                                                    req.labels, features, prediction, window.revision, sketch=sketch))
    except MetricsError as exc:
        return MonitorResult(req, profile, {}, str(exc), now)
    return MonitorResult(req, profile, counts, None, now)


def _record_verdicts(owner: Owner, result: Plan) -> None:
    """The verdicts a plan recorded, as gauges: verdict, value and bound per SLO, and how far each Fail test has gone."""
    slos = len(result.spec.analysis.slos) if result.spec is not None and result.spec.analysis is not None else 0
    telemetry.record_verdicts(owner.namespace, owner.name, result.verdicts, result.status.analysis, slos)


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


def served_kinds(reader: Reader, spec: ModelDeploymentSpec | None = None) -> frozenset[str]:
    """The optional kinds ("group/Kind") this cluster serves, as the reader knows them.

    A kind that ``spec`` needs (its provider's route, the PodMonitor of an analysis) and that is
    not served is looked for again (rate limited): its CRD may have been installed meanwhile.
    """
    served = frozenset(name for name, kind in CRD_KINDS.items() if reader.serves(kind))
    if spec is not None:
        needed = set(capabilities.capabilities_of(spec.traffic).kinds)
        if spec.autoscaling is not None and spec.autoscaling.chosen_engine == "keda":
            needed |= {capabilities.SCALEDOBJECT, capabilities.PODMONITOR}
        if spec.analysis is not None:
            needed.add(capabilities.PODMONITOR)
        for name in needed - served:
            reader.need(CRD_KINDS[name])
    return served


def _action_events(actions: list[Action]) -> list[EventIntent]:
    """One Event per kind of write (Created, Updated, Deleted) naming every child it touched:
    what ``kubectl describe`` needs, at one API request per verb, not per child."""
    by_verb: dict[str, list[str]] = {}
    for a in actions:
        if a.verb != "conflict":
            by_verb.setdefault(a.verb, []).append(f"{a.kind} {a.name}")
    return [EventIntent("Normal", verb.capitalize(), f"{', '.join(names)} {verb}") for verb, names in by_verb.items()]


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
            telemetry.count_rollback(owner.namespace, owner.name, reason)
    if result.traffic is not None:
        telemetry.record_weights(owner.namespace, owner.name, result.traffic.weights)
    cost = result.status.cost
    if cost is not None:
        labels = result.spec.cost.labels if result.spec is not None and result.spec.cost is not None else {}
        telemetry.COST.set(owner.namespace, owner.name, {v.name: v.hourly for v in cost.variants}, labels)
    telemetry.MONITORING.set(owner.namespace, owner.name, result.status.monitoring)


def render_children(owner: Owner, result: Plan, served: frozenset[str], metrics_url: str | None = None,
                    ) -> tuple[list[dict[str, Any]], set[tuple[str, str]], list[str]]:
    """The children a plan wants, the (kind, name) pairs to leave alone, and route problems.

    Pure: ``served`` holds the optional kinds ("group/Kind") the cluster serves. The route is
    rendered only when ``registry.route_problems`` finds nothing; the PodMonitor only when served.
    """
    assert result.spec is not None and result.workloads is not None
    spec = result.spec
    children = build_children(owner, spec, result.workloads, metrics_url=metrics_url)
    problems: list[str] = []
    labels = shared_labels(owner, spec)
    if result.traffic is not None:
        services = registry.services_for(owner, result.workloads)
        problems = [str(p) for p in registry.route_problems(spec, result.traffic, services, served)]
        if not problems:
            children += registry.render_route(owner, spec, result.traffic, services, labels)
    # The PodMonitor gives the model servers' series the labels the analysis, the drift checks and
    # KEDA's request metrics select on (modeldeployment, variant): rendered for any of them, where
    # prometheus-operator runs.
    request_metrics = any(w.scaler is not None and any(m.needs_keda for m in w.scaler.settings.metrics) for w in result.workloads or ())
    if (spec.analysis is not None or spec.monitoring is not None or request_metrics) and capabilities.PODMONITOR in served:
        children.append(build_podmonitor(owner, spec, labels))
    keep = {(kind, owner.variant_name(v)) for v in result.keep for kind in ("Deployment", "Service")}
    if problems:  # never prune the route that serves now because a new one can't be rendered
        keep |= {(capabilities.kind_name(k), owner.name) for k in capabilities.ROUTE_KINDS}
    return children, keep, problems


@dataclass(frozen=True)
class Settings:
    """What the operator's configuration gives every reconcile."""

    prometheus_url: str | None = None  # the default for spec.analysis.prometheus.url, always allowed
    allowed_prometheus_urls: tuple[str, ...] = ()  # more URLs a ModelDeployment may name
    prices: Prices | None = None  # the price table (None: no status.cost)


def _observe(reader: Reader, owner: Owner, body: dict[str, Any], previous: ModelDeploymentStatus, settings: Settings,
             measurer: Measurer[Measurement] | None, monitor: Measurer[MonitorResult] | None) -> tuple[Observation, LiveChildren]:
    """Everything a plan depends on, read once, before planning."""
    spec, _ = parse_spec(body.get("spec") or {})
    served = served_kinds(reader, spec)
    managed = WORKLOAD_KINDS + tuple(k for k in CRD_KINDS.values() if kind_key(k) in served)
    live = reader.children(owner, managed)
    observation = Observation(
        raw_spec=body.get("spec") or {}, generation=body["metadata"].get("generation"), annotations=body["metadata"].get("annotations") or {},
        previous=previous, live=observe_variants(live, owner), served=served,
        measurement=measurer.latest(owner.key) if measurer is not None else None,
        allowed_metrics_urls=allowed_urls(settings.prometheus_url, settings.allowed_prometheus_urls),
        default_metrics_url=settings.prometheus_url, prices=settings.prices,
        monitoring=monitor.latest(owner.key) if monitor is not None else None,
        approvals=parse_approvals(reader.approvals(owner.namespace, owner.name), owner.name)
        if spec is not None and spec.governance is not None else (),
    )
    return observation, live


def _measure(owner: Owner, observed: Observation, result: Plan, now: datetime, measurer: Measurer[Measurement] | None,
             sources: Sources) -> tuple[Observation, Plan]:
    """A measurement the plan needs now: asked of the Measurer (its answer wakes this object and
    feeds a later plan), or, without one, fetched here and planned again."""
    req = result.measure
    if req is None or req.due_at > now:
        return observed, result
    source = sources(req.url) if req.url else None
    if measurer is not None:
        timeout = measurer.timeout
        measurer.want(owner.key, req, lambda: fetch_measurement(req, source),
                      lambda: Measurement(req, {}, f"Prometheus gave no answer within {timeout:.0f}s", datetime.now(timezone.utc)))
        return observed, result
    observed = replace(observed, measurement=fetch_measurement(req, source, now))
    return observed, plan(owner, observed, now)


def _monitor(kube: Kube, owner: Owner, observed: Observation, result: Plan, now: datetime, monitor: Measurer[MonitorResult] | None,
             sources: Sources) -> tuple[Observation, Plan]:
    """The counts spec.monitoring needs now, as ``_measure`` does for the analysis."""
    req = result.monitor
    if req is None or req.due_at > now or (req.drift is None and req.compare is None):
        return observed, result
    source = sources(req.url) if req.url else None
    if monitor is not None:
        if monitor.running(owner.key):
            return observed, result  # let the running fetch answer (a later grid point would drop it)
        timeout = monitor.timeout
        monitor.want(owner.key, req, lambda: fetch_monitoring(req, kube, source),
                     lambda: MonitorResult(req, None, {}, f"no answer within {timeout:.0f}s", datetime.now(timezone.utc)))
        return observed, result
    observed = replace(observed, monitoring=fetch_monitoring(req, kube, source, now))
    return observed, plan(owner, observed, now)


def _plan_and_render(kube: Kube, reader: Reader, owner: Owner, body: dict[str, Any], previous: ModelDeploymentStatus, now: datetime,
                     settings: Settings, measurer: Measurer[Measurement] | None, sources: Sources,
                     monitor: Measurer[MonitorResult] | None = None) -> tuple[Plan, Writes]:
    """observe -> decide -> render -> derive status: the plan and the child writes, before any write."""
    observed, live = _observe(reader, owner, body, previous, settings, measurer, monitor)
    observed, result = _measure(owner, observed, plan(owner, observed, now), now, measurer, sources)
    observed, result = _monitor(kube, owner, observed, result, now, monitor, sources)
    _record_verdicts(owner, result)
    writes = Writes([], [], [])
    if result.spec is not None and result.workloads is not None:
        metrics_url = analysis_url(result.spec, observed.default_metrics_url)
        children, keep, route_problems = render_children(owner, result, observed.served, metrics_url)
        writes = plan_writes(kube, owner, children, live, keep)
        problems = [RenderProblem("ChildConflict", a.detail) for a in writes.conflicts]
        problems += [RenderProblem("RouteNotApplied", p) for p in route_problems]
        # A scaler that cannot work is planned as fixed replicas and not rendered: say why (the spec's
        # autoscaling, and the stable version's while a change to it rolls out).
        stable = result.status.stable_model
        scalings = [result.spec.autoscaling, stable.autoscaling if stable is not None else None]
        said = dict.fromkeys(p for scaling in scalings if scaling is not None for p in scaler_problems(result.spec, metrics_url, scaling))
        problems += [RenderProblem("ScalerNotApplied", p) for p in said]
        result = finish(result, observed, problems, now)
    return result, writes


def _announce(kube: Kube, body: dict[str, Any], owner: Owner, result: Plan, wrote: bool, now: datetime) -> None:
    """The decision's log lines, Events and counters, once its status is durable."""
    _count(result, owner)
    where = f"{owner.namespace}/{owner.name}"
    if wrote:
        log.info("%s status: %s", where, _summary(result), extra=_log_fields(owner, result, "StatusWritten"))
    for event in result.events:
        log.log(logging.WARNING if event.type == "Warning" else logging.INFO, "%s %s: %s [%s]", where,
                event.reason, event.message, _summary(result), extra=_log_fields(owner, result, event.reason))
        post_event(kube, body, event, now)
        telemetry.EVENTS.labels(event.type, event.reason).inc()


RECORD_RETRY_SECONDS = 30.0  # a record write that failed is tried again this soon (the next reconcile finds what is missing)
_unrecorded_warned: set[str] = set()


def _record(kube: Kube, reader: Reader, owner: Owner, result: Plan, keep: int, now: datetime) -> Plan:
    """Copy the decisions of the status just written into their RolloutRecords (k8s/records.py).

    A failure is logged and never stops the reconcile (records are the audit trail, not the control
    loop; status holds every decision first): the plan asks for another look soon, whose comparison
    of status.history with the records finds what is missing. Without the RolloutRecord CRD
    (a Helm upgrade does not install new CRDs) nothing is recorded, said once per namespace."""
    where = f"{owner.namespace}/{owner.name}"
    if not reader.serves(ROLLOUT_RECORD):
        reader.need(ROLLOUT_RECORD)
        if owner.namespace not in _unrecorded_warned:
            _unrecorded_warned.add(owner.namespace)
            log.warning("%s: no RolloutRecords written: the API server does not serve %s (apply crds/%s.yaml)", where,
                        ROLLOUT_RECORD.plural, f"{ROLLOUT_RECORD.plural}.{ROLLOUT_RECORD.group}")
        return result
    try:
        planned = plan_for(reader, owner, result.status, keep)
        if not planned:
            return result
        actions = apply_records(kube, reader, owner, planned)
    except (ApiError, ValueError) as exc:
        conflict = isinstance(exc, ApiError) and exc.status == 409
        log.log(logging.INFO if conflict else logging.WARNING, "%s: RolloutRecords not written (%s): trying again within %.0fs", where,
                "changed meanwhile" if conflict else exc, RECORD_RETRY_SECONDS, extra=_log_fields(owner, result, "RecordFailed"))
        retry = now + timedelta(seconds=RECORD_RETRY_SECONDS)
        return replace(result, wake_at=min(result.wake_at, retry) if result.wake_at is not None else retry)
    for action in actions:
        telemetry.CHILD_WRITES.labels(action.kind, action.verb).inc()
        log.info("%s %s %s %s (%s)", where, action.verb, action.kind, action.name, action.detail,
                 extra={**_log_fields(owner, result, f"Record{action.verb.capitalize()}"), "child": f"{action.kind}/{action.name}"})
    return result


class Conflict(ApiError):
    """The ModelDeployment changed between the read and the status write: nothing was written."""


def reconcile(kube: Kube, namespace: str, name: str, now: datetime | None = None, prometheus_url: str | None = None,
              allowed_prometheus_urls: tuple[str, ...] = (), *, prices: Prices | None = None, reader: Reader | None = None,
              measurer: Measurer[Measurement] | None = None, sources: Sources | None = None,
              monitor: Measurer[MonitorResult] | None = None, notifier: Notifier | None = None,
              rollout_records: int = 0) -> Plan | None:
    """Bring one ModelDeployment's status, then its children, in line with its spec.

    ``rollout_records`` (default 0: none) is how many RolloutRecords per ModelDeployment to keep: the
    decisions of each status write are copied into their rollout's record after it (_record).

    ``notifier`` (default: none) sends the notifications the written status calls for and records
    the ones it finished in ``status.notifications`` with the next write (headway/notify.py).

    ``reader`` is where it reads (default: the API server itself), ``measurer`` runs metric
    queries off this call (default: none, fetch synchronously when due), ``monitor`` the same for
    spec.monitoring's counts, ``sources`` gives the
    MetricSource for a URL (default: Prometheus) and ``now`` is the clock: tests inject all four.
    Returns the plan carried out (its ``wake_at`` says when to look again), or None when the
    ModelDeployment is gone or being deleted; raises Conflict (nothing written) when it
    changed while this call decided.
    """
    reader = reader or LiveReader(kube, MODEL_DEPLOYMENT, MODEL_APPROVAL)
    with _lock(namespace, name):
        body = reader.model(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone or going: garbage collection removes the children
        now = now or datetime.now(timezone.utc)
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"]["uid"])
        previous = parse_status(body.get("status"))
        settings = Settings(prometheus_url, allowed_prometheus_urls, prices)
        result, writes = _plan_and_render(kube, reader, owner, body, previous, now, settings, measurer, sources or metric_source,
                                          monitor)
        subject = Subject(namespace, name, owner.uid, notifier.config.cluster if notifier is not None else "")
        if notifier is not None:  # the deliveries finished since the last write are recorded with this one
            notified, news = notifier.settle(subject, body["metadata"], result.status, now)
            result = replace(result, status=notified, events=[*result.events, *news])

        # 1. The decision, with the resourceVersion it was made from.
        try:
            stored = patch_status(kube, MODEL_DEPLOYMENT, body, result.status.dump())
            if stored is not None:
                reader.put_model(stored)
            elif writes:
                confirm_fresh(kube, MODEL_DEPLOYMENT, body)  # the status we act on is still the latest
        except ApiError as exc:
            if exc.status == 404:
                return None  # deleted while this call decided (the cache was behind): gone
            if exc.status == 409:
                log.info("%s/%s changed while reconciling: nothing written, deciding again from the newer status", namespace, name,
                         extra=_log_fields(owner, result, "Conflict"))
                raise Conflict(exc.status, exc.reason, exc.message) from exc
            raise
        # 1b. Its decisions into their RolloutRecords: after the status, which is the write-ahead log they are copied from.
        if rollout_records > 0:
            result = _record(kube, reader, owner, result, rollout_records, now)
        # 2. Its Events and log lines, and notifications (from the durable status only: a decision a 409 discarded is never sent).
        _announce(kube, body, owner, result, stored is not None, now)
        if notifier is not None:
            notifier.dispatch(subject, body["metadata"], result.status, now)
        # 3. The children follow the status.
        try:
            actions = apply_writes(kube, owner, writes, reader)
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
