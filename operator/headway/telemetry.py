"""The operator's own Prometheus metrics (served on --metrics-port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
