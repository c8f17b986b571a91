"""The PodMonitor (prometheus-operator) that guarantees the labels analysis queries select on.

Each model pod's /metrics is scraped with ``namespace``, ``modeldeployment``,
``variant`` and ``revision`` labels (names from ``spec.analysis.seriesLabels``), taken
from the pod's own labels by relabelling — so a query for one variant's series cannot
pick up another's, whatever else Prometheus is configured to do. The equivalent plain
Prometheus scrape config is in the README ("Wiring Prometheus").
"""

from __future__ import annotations

from typing import Any

from headway.api.spec import ModelDeploymentSpec, SeriesLabels
from headway.api.types import format_duration
from headway.planning.monitoring import scrape_interval
from headway.planning.naming import LABEL_MD, LABEL_REVISION, LABEL_VARIANT, Owner

PODMONITOR_API = "monitoring.coreos.com/v1"


def _meta_label(label: str) -> str:
    """Prometheus' Kubernetes SD name for a pod label: non-alphanumerics become underscores."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def series_labels(spec: ModelDeploymentSpec) -> SeriesLabels:
    """The label names that select one variant's series (the analysis' and the scalers' queries)."""
    return spec.analysis.series_labels if spec.analysis and spec.analysis.series_labels else SeriesLabels()


def build_podmonitor(owner: Owner, spec: ModelDeploymentSpec, labels: dict[str, str]) -> dict[str, Any]:
    names = series_labels(spec)
    relabelings = [
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_namespace"], "targetLabel": names.namespace},
        {"action": "replace", "sourceLabels": [_meta_label(LABEL_MD)], "targetLabel": names.model_deployment},
        {"action": "replace", "sourceLabels": [_meta_label(LABEL_VARIANT)], "targetLabel": names.variant},
        {"action": "replace", "sourceLabels": [_meta_label(LABEL_REVISION)], "targetLabel": "revision"},
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": names.pod},
        # prometheus-operator sets a target label endpoint="http", which would rename BentoML's own
        # `endpoint` label to exported_endpoint and defeat the filter on health-check requests.
        {"action": "labeldrop", "regex": "endpoint"},
    ]
    return {
        "apiVersion": PODMONITOR_API,
        "kind": "PodMonitor",
        "metadata": {"name": owner.name, "namespace": owner.namespace, "labels": labels, "ownerReferences": [owner.reference()]},
        "spec": {
            "selector": {"matchLabels": {LABEL_MD: owner.name}},
            "podMetricsEndpoints": [{
                "port": "http", "path": "/metrics", "interval": format_duration(scrape_interval(spec)), "relabelings": relabelings,
            }],
        },
    }
