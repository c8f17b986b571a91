"""The operator's own Prometheus metrics (served on --metrics-port at /metrics)."""

from __future__ import annotations

import re
import threading
from typing import Any
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

RECONCILES = Counter("headway_reconciles_total", "Reconciles of ModelDeployments, by outcome.", ["outcome"])
RECONCILE_SECONDS = Histogram("headway_reconcile_duration_seconds", "Time one reconcile takes.")
CHILD_WRITES = Counter("headway_child_writes_total", "Writes of child objects, by kind and verb.", ["kind", "verb"])
EVENTS = Counter("headway_events_total", "Events posted about ModelDeployments, by type and reason.", ["type", "reason"])
QUERY_SECONDS = Histogram("headway_analysis_query_duration_seconds", "Latency of metric-source queries.")
QUERY_ERRORS = Counter("headway_analysis_query_errors_total", "Metric-source queries that failed.")
ROLLOUTS = Counter("headway_rollouts_total", "Rollout decisions, by kind (started, promoted, rolled_back, aborted).", ["kind"])
ROLLBACKS = Counter("headway_rollbacks_total", "Rollbacks, by reason.", ["reason"])
WEIGHT = Gauge("headway_traffic_weight_percent", "Current share of live traffic per variant.", ["namespace", "name", "variant"])
VERDICT = Gauge("headway_slo_verdict", "Last verdict per SLO: 1 Pass, 0 Inconclusive, -1 Fail.", ["namespace", "name", "variant", "slo"])
SLO_VALUE = Gauge("headway_slo_value", "Last measured value per SLO.", ["namespace", "name", "variant", "slo"])
API_REQUESTS = Counter("headway_api_requests_total",
                       "Requests the operator sent to the Kubernetes API server, by verb (a watch counts once, when opened).",
                       ["verb"])
CACHE_OBJECTS = Gauge("headway_cache_objects", "Objects held in the operator's watch caches, by kind.", ["kind"])
MEASUREMENTS = Counter("headway_measurements_total", "Metric measurements run off the reconcile path, by outcome.", ["outcome"])


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


COST = CostCollector()
REGISTRY.register(COST)
MONITORING = MonitoringCollector()
REGISTRY.register(MONITORING)
