"""The operator's own Prometheus metrics (served on --metrics-port at /metrics).

Series labelled per ModelDeployment (``namespace``, ``name`` first) are made through ``SERIES``,
which remembers them: those of an SLO, a test or a variant no longer measured are removed at the
next look, and all of them when the ModelDeployment is deleted (``forget_model``), so the label
cardinality is bounded by the ModelDeployments that exist and their SLOs, never by history.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from headway.api.status import AnalysisStatus
from headway.planning.evidence import fail_level, progress
from headway.planning.stats import log_mean_exp
from headway.planning.verdicts import Verdict

RECONCILES = Counter("headway_reconciles_total", "Reconciles of ModelDeployments, by outcome.", ["outcome"])
RECONCILE_SECONDS = Histogram("headway_reconcile_duration_seconds", "Time one reconcile takes.")
CHILD_WRITES = Counter("headway_child_writes_total", "Writes of child objects, by kind and verb.", ["kind", "verb"])
EVENTS = Counter("headway_events_total", "Events posted about ModelDeployments, by type and reason.", ["type", "reason"])
QUERY_SECONDS = Histogram("headway_analysis_query_duration_seconds", "Latency of metric-source queries.")
QUERY_ERRORS = Counter("headway_analysis_query_errors_total", "Metric-source queries that failed.")
ROLLOUTS = Counter("headway_rollouts_total", "Rollout decisions, by kind (started, promoted, rolled_back, aborted).", ["kind"])
ROLLBACKS = Counter("headway_rollbacks_total", "Rollbacks and aborts, by ModelDeployment and reason.", ["namespace", "name", "reason"])
WEIGHT = Gauge("headway_traffic_weight_percent", "Current share of live traffic per variant.", ["namespace", "name", "variant"])
VERDICT = Gauge("headway_slo_verdict", "Last verdict per SLO: 1 Pass, 0 Inconclusive, -1 Fail.", ["namespace", "name", "variant", "slo"])
SLO_VALUE = Gauge("headway_slo_value", "Last measured value per SLO.", ["namespace", "name", "variant", "slo"])
SLO_THRESHOLD = Gauge("headway_slo_threshold", "The bound of each SLO at its last verdict, in headway_slo_value's unit "
                      "(a max for error rates, latency and query SLOs with max; a min for query SLOs with min).",
                      ["namespace", "name", "variant", "slo"])
EVIDENCE_RATIO = Gauge("headway_slo_evidence_ratio", "How far each Fail test of an SLO has gone towards failing the rollout: "
                       "log(e-value) / log(1/alpha_test), from 0 (no evidence) to 1 (the boundary: the test decides Fail).",
                       ["namespace", "name", "variant", "slo", "test"])
API_REQUESTS = Counter("headway_api_requests_total",
                       "Requests the operator sent to the Kubernetes API server, by verb (a watch counts once, when opened).",
                       ["verb"])
# Buckets up to the client's 30 s request timeout: a healthy API server answers in milliseconds.
API_REQUEST_SECONDS = Histogram("headway_api_request_duration_seconds",
                                "Time from sending a request to the Kubernetes API server to reading its whole answer (or "
                                "failing), by verb; watches are not timed (they last as long as the server keeps them open).",
                                ["verb"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
QUEUE_DEPTH = Gauge("headway_queue_depth", "ModelDeployments queued for a reconcile and waiting for a free worker.")
QUEUE_WAIT_SECONDS = Histogram("headway_queue_wait_seconds",
                               "How long a queued ModelDeployment waited before a worker took it.",
                               buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0))
QUEUE_RETRIES = Counter("headway_queue_retries_total",
                        "Reconciles of a ModelDeployment put back with a backoff after a failure or a conflict.")
CACHE_OBJECTS = Gauge("headway_cache_objects", "Objects held in the operator's watch caches, by kind.", ["kind"])
MEASUREMENTS = Counter("headway_measurements_total", "Metric measurements run off the reconcile path, by outcome.", ["outcome"])


Metric = TypeVar("Metric", Counter, Gauge)


class ModelSeries:
    """The series of labelled metrics that belong to one ModelDeployment, remembered so they can go.

    prometheus_client keeps a child per label set forever; a ModelDeployment that is deleted, or an
    SLO removed from its spec, would leave its last value exported (and charted) for as long as the
    operator runs. Every per-ModelDeployment child is made here (its first two labels are the
    ModelDeployment's namespace and name), so ``retain`` and ``forget`` know what to remove.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], set[tuple[Counter | Gauge, tuple[str, ...]]]] = {}

    def labels(self, metric: Metric, namespace: str, name: str, *labels: str) -> Metric:
        """``metric.labels(namespace, name, *labels)``, remembered."""
        with self._lock:
            self._series.setdefault((namespace, name), set()).add((metric, labels))
            return metric.labels(namespace, name, *labels)

    def retain(self, metric: Counter | Gauge, namespace: str, name: str, keep: Callable[[tuple[str, ...]], bool]) -> None:
        """Remove the ModelDeployment's series of ``metric`` whose labels after namespace and name ``keep`` refuses."""
        with self._lock:
            series = self._series.get((namespace, name), set())
            gone = {(m, labels) for m, labels in series if m is metric and not keep(labels)}
            series -= gone
            for _, labels in gone:
                _remove(metric, namespace, name, labels)

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of the ModelDeployment (it was deleted)."""
        with self._lock:
            for metric, labels in self._series.pop((namespace, name), set()):
                _remove(metric, namespace, name, labels)


def _remove(metric: Counter | Gauge, namespace: str, name: str, labels: tuple[str, ...]) -> None:
    try:
        metric.remove(namespace, name, *labels)
    except KeyError:  # already removed (metric.clear() in a test)
        pass


def record_verdicts(namespace: str, name: str, verdicts: Sequence[tuple[str, Verdict]], analysis: AnalysisStatus | None,
                    slos: int) -> None:
    """The verdicts of one look (``(variant, verdict)`` pairs) as gauges, and how far each Fail test has gone.

    - ``headway_slo_verdict``, ``headway_slo_value``, ``headway_slo_threshold`` per variant and SLO judged;
      the pairs no longer judged (an SLO removed from the spec, an experiment's arm gone) are removed;
    - ``headway_slo_evidence_ratio`` per Fail test of a rollout's SLO (``analysis.evidence``: carried
      from the rollout's earlier windows plus this look's), as ``kubectl headway get`` shows it
      (``planning.evidence``); ``slos`` is the number of SLOs in spec.analysis (alpha's split). An
      experiment's window has no such tests (its decision is the comparison of its arms).

    No verdicts (no new measurement at this reconcile) leaves the gauges as they are.
    """
    if not verdicts:
        return
    judged = {(variant, v.slo) for variant, v in verdicts}
    for metric in (VERDICT, SLO_VALUE, SLO_THRESHOLD):
        SERIES.retain(metric, namespace, name, lambda labels: labels in judged)
    for variant, verdict in verdicts:
        SERIES.labels(VERDICT, namespace, name, variant, verdict.slo).set({"Pass": 1, "Fail": -1}.get(verdict.result, 0))
        if verdict.value is not None:
            SERIES.labels(SLO_VALUE, namespace, name, variant, verdict.slo).set(verdict.value)
        if verdict.threshold is not None:
            SERIES.labels(SLO_THRESHOLD, namespace, name, variant, verdict.slo).set(verdict.threshold)
    tests: set[tuple[str, ...]] = set()
    if analysis is not None and analysis.purpose != "experiment":
        variants = {v.slo: variant for variant, v in verdicts}
        for e in analysis.evidence:
            judged_variant = variants.get(e.slo)
            if judged_variant is None or not e.log_wealth:  # an SLO not judged at this look: nothing to say of it now
                continue
            ratio = progress(log_mean_exp(e.log_wealth), fail_level(e.slo, slos, analysis))
            SERIES.labels(EVIDENCE_RATIO, namespace, name, judged_variant, e.slo, e.test).set(ratio)
            tests.add((judged_variant, e.slo, e.test))
    SERIES.retain(EVIDENCE_RATIO, namespace, name, lambda labels: labels in tests)


def record_weights(namespace: str, name: str, weights: Mapping[str, int | float]) -> None:
    """The current traffic weights; a variant no longer routed (a candidate after promotion) is removed."""
    SERIES.retain(WEIGHT, namespace, name, lambda labels: labels[0] in weights)
    for variant, weight in weights.items():
        SERIES.labels(WEIGHT, namespace, name, variant).set(weight)


def count_rollback(namespace: str, name: str, reason: str) -> None:
    SERIES.labels(ROLLBACKS, namespace, name, reason).inc()


def forget_model(namespace: str, name: str) -> None:
    """A ModelDeployment was deleted: none of its series stays exported."""
    SERIES.forget(namespace, name)
    COST.forget(namespace, name)
    MONITORING.forget(namespace, name)


class CostCollector:
    """``headway_cost_hourly``: what each variant costs per hour now, labelled with its cost labels.

    Cost labels differ between ModelDeployments (team, cost-center, ...), so the metric is built
    at scrape time with the union of their keys (made into Prometheus label names:
    ``cost-center`` -> ``cost_center``); a variant without one of them has it empty.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._costs: dict[tuple[str, str], tuple[dict[str, float], dict[str, str]]] = {}

    def set(self, namespace: str, name: str, hourly: dict[str, float], labels: dict[str, str]) -> None:
        with self._lock:
            self._costs[(namespace, name)] = (dict(hourly), {_label_name(k): v for k, v in labels.items()})

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._costs.pop((namespace, name), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            costs = dict(self._costs)
        keys = sorted({k for _, labels in costs.values() for k in labels} - {"namespace", "modeldeployment", "variant"})
        family = GaugeMetricFamily("headway_cost_hourly", "Cost per hour of each variant now, in the price table's currency.",
                                   labels=["namespace", "modeldeployment", "variant", *keys])
        for (namespace, name), (hourly, labels) in sorted(costs.items()):
            for variant, value in sorted(hourly.items()):
                family.add_metric([namespace, name, variant, *(labels.get(k, "") for k in keys)], value)
        yield family


class MonitoringCollector:
    """spec.monitoring's last results, per ModelDeployment, built at scrape time from what status holds:

    - ``headway_data_drift{namespace, modeldeployment, feature}``: 1 drifted, 0 not, -1 not judged;
    - ``headway_drift_psi{namespace, modeldeployment, feature}``: the PSI of the last check;
    - ``headway_drift_p_value{namespace, modeldeployment, feature}``: its Holm-adjusted p-value;
    - ``headway_prediction_difference{namespace, modeldeployment, revision}``: the candidate's total
      variation distance from stable's answers (with ``..._upper`` its upper bound), while compared;
    - ``headway_prediction_agreement{namespace, modeldeployment, revision}``: the share of requests
      both versions answered alike, while a shadow step measures it.

    Forgotten with the ModelDeployment, so a deleted one leaves no stale series.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[tuple[str, str], Any] = {}

    def set(self, namespace: str, name: str, monitoring: Any) -> None:
        with self._lock:
            if monitoring is None:
                self._status.pop((namespace, name), None)
            else:
                self._status[(namespace, name)] = monitoring

    def forget(self, namespace: str, name: str) -> None:
        self.set(namespace, name, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            items = sorted(self._status.items())
        labels = ["namespace", "modeldeployment", "feature"]
        drift = GaugeMetricFamily("headway_data_drift", "Last data-drift check per feature: 1 drifted, 0 not, -1 not judged.", labels=labels)
        psi = GaugeMetricFamily("headway_drift_psi", "Population stability index of each feature in the last check.", labels=labels)
        p_value = GaugeMetricFamily("headway_drift_p_value", "Holm-adjusted p-value of each feature in the last check.", labels=labels)
        difference = GaugeMetricFamily("headway_prediction_difference", "Total variation distance between the candidate's and "
                                       "stable's answers in the current step.", labels=["namespace", "modeldeployment", "revision"])
        upper = GaugeMetricFamily("headway_prediction_difference_upper", "Upper confidence bound of that distance.",
                                  labels=["namespace", "modeldeployment", "revision"])
        agreement = GaugeMetricFamily("headway_prediction_agreement", "Share of the requests both versions answered in the "
                                      "current shadow step whose predictions fall in the same bin.",
                                      labels=["namespace", "modeldeployment", "revision"])
        for (namespace, name), status in items:
            for f in status.features:
                key = [namespace, name, f.feature]
                drift.add_metric(key, {"Drifted": 1.0, "NoDrift": 0.0}.get(f.result, -1.0))
                if f.psi is not None:
                    psi.add_metric(key, f.psi)
                if f.adjusted_p_value is not None:
                    p_value.add_metric(key, f.adjusted_p_value)
            p = status.prediction
            if p is not None and p.difference is not None:
                difference.add_metric([namespace, name, p.revision], p.difference)
                if p.difference_upper is not None:
                    upper.add_metric([namespace, name, p.revision], p.difference_upper)
            if p is not None and p.agreement is not None:
                agreement.add_metric([namespace, name, p.revision], p.agreement)
        yield from (drift, psi, p_value, difference, upper, agreement)


def _label_name(key: str) -> str:
    """A Kubernetes label key as a Prometheus label name (team.example.com/cost-center -> cost_center)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key.rsplit("/", 1)[-1])
    return name if name and not name[0].isdigit() else f"_{name}"


SERIES = ModelSeries()
COST = CostCollector()
REGISTRY.register(COST)
MONITORING = MonitoringCollector()
REGISTRY.register(MONITORING)
