"""The operator's own Prometheus metrics (served on --metrics-port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter("headway_reconciles_total", "Reconciles of ModelDeployments, by outcome.", ["outcome"])
RECONCILE_SECONDS = Histogram("headway_reconcile_duration_seconds", "Time one reconcile takes.")
CHILD_WRITES = Counter("headway_child_writes_total", "Writes of child objects, by kind and verb.", ["kind", "verb"])
EVENTS = Counter("headway_events_total", "Events posted about ModelDeployments, by type and reason.", ["type", "reason"])
