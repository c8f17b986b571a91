"""Pure builders of a variant's own autoscaler: a HorizontalPodAutoscaler or a KEDA ScaledObject.

Every variant with ``VariantWorkload.scaler`` (filled by the planner: engine, and the floor and
ceiling for this variant at this point of a rollout) gets one scaler, named like its Deployment.
The Deployment is then rendered without ``spec.replicas``: the scaler owns it, and server-side
apply leaves a field Headway does not render to the manager that writes it.

- **hpa**: ``autoscaling/v2`` HorizontalPodAutoscaler on CPU and memory utilisation.
- **keda**: ``keda.sh/v1alpha1`` ScaledObject; cpu/memory triggers (``metricType: Utilization``)
  and, for requestsPerSecond and inFlight, a ``prometheus`` trigger whose query sums BentoML's
  ``bentoml_service_request_total`` (rate over 1m) or ``bentoml_service_request_in_progress``
  over exactly this variant's pods, selected by the series labels the analysis uses
  (``spec.analysis.seriesLabels``; the PodMonitor guarantees them) and excluding the health and
  metrics endpoints, as the analysis does. ``threshold`` is the per-pod target: with
  ``metricType: AverageValue`` the HorizontalPodAutoscaler KEDA creates divides the sum by the
  replica count.

Choices, and why:

- ``minReplicaCount: 0`` (scale to zero) is rendered without ``idleReplicaCount``: KEDA's docs
  say idleReplicaCount must be *less than* minReplicaCount and only 0 is supported, so with a
  floor of 0 it has nothing to add. A variant at zero has no pods and so no request series:
  what wakes it is the planner raising its floor (a variant that serves keeps at least 1),
  not the metric.
- ``advanced.restoreToOriginalReplicaCount: false``: deleting a ScaledObject (autoscaling
  turned off, a variant removed) leaves the replicas where they are; the next render decides.
- No ``fallback``: KEDA supports it only for AverageValue triggers, and it would replace the
  count with a fixed number when Prometheus cannot be read, scaling a busy variant down.
  Without it, the HorizontalPodAutoscaler keeps the current count while a metric fails.
- Behaviour: each direction's ``maxPercentPerMinute`` and ``maxPodsPerMinute`` become policies
  over 60 s with ``selectPolicy: Max`` (the larger allowed change wins, as in the HPA's own
  default "double or +4 pods"); ``stabilizationWindowSeconds`` is passed as is. Nothing is
  rendered for what the spec leaves unset, so the HPA's defaults apply.

When a scaler cannot work, :func:`scaler_problems` says why, and ``build_children`` renders no
scaler: the Deployment keeps a fixed count (``VariantWorkload.replicas``) instead of getting a
scaler the cluster would refuse or that would scale on nothing. Rendering a ScaledObject without
its request trigger would silently scale on something else, so it is never done. The problems:

- a requestsPerSecond or inFlight metric and no Prometheus URL (``metrics_url``: the
  reconciler passes ``spec.analysis.prometheus.url``, already allow-listed, or the operator's
  ``--prometheus-url``; KEDA is what calls it);
- a cpu or memory target without that resource request (nor a limit, which becomes the request):
  utilisation is a percentage of the request, so KEDA's admission webhook refuses such a
  trigger and an HPA cannot compute it;
- scale to zero with KEDA and only cpu/memory metrics (KEDA refuses ``minReplicaCount: 0``
  unless a trigger other than cpu and memory can activate the workload).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from headway.api.serving import Autoscaling, AutoscalingMetric, ScalingBehavior, ScalingRules
from headway.api.spec import ModelDeploymentSpec
from headway.planning.capacity import scaler_blockers
from headway.planning.naming import Owner, ScalerBounds, VariantWorkload, child_labels
from headway.rendering.monitoring import series_labels

HPA_API = "autoscaling/v2"
KEDA_API = "keda.sh/v1alpha1"
REQUESTS_TOTAL = "bentoml_service_request_total"
IN_PROGRESS = "bentoml_service_request_in_progress"
# The same filter as metrics/prometheus.py's NOT_API (a test keeps them equal; rendering may not
# import the metrics adapter): probes and scrapes are not load.
NOT_API = 'endpoint!~"/(livez|readyz|healthz|metrics|docs.json|schema.json)"'
POLICY_PERIOD_SECONDS = 60


def scaler_problems(spec: ModelDeploymentSpec, metrics_url: str | None, scaling: Autoscaling | None = None) -> list[str]:
    """Why no scaler can be rendered for ``scaling`` (default: the spec's autoscaling) with this
    spec's resources ([] when it can, or when none is asked). The planner already plans such a
    variant with fixed replicas (capacity.usable); this is the renderer's own guard."""
    return scaler_blockers(scaling or spec.autoscaling, spec, metrics_url)


def build_scaler(owner: Owner, spec: ModelDeploymentSpec, workload: VariantWorkload, metrics_url: str | None) -> dict[str, Any] | None:
    """The variant's HPA or ScaledObject, as its version's autoscaling says (``workload.scaler.settings``:
    while a change to spec.autoscaling rolls out, stable and candidate differ); None without a
    scaler or when one cannot be rendered."""
    bounds = workload.scaler
    if bounds is None or scaler_problems(spec, metrics_url, bounds.settings):
        return None
    scaling = bounds.settings
    name = owner.variant_name(workload.variant)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": child_labels(owner, spec, workload.variant, workload.model),
        "ownerReferences": [owner.reference()],
    }
    if bounds.engine == "hpa":
        return {"apiVersion": HPA_API, "kind": "HorizontalPodAutoscaler", "metadata": metadata,
                "spec": _hpa_spec(name, bounds, scaling)}
    triggers = _keda_triggers(owner, spec, workload.variant, scaling, metrics_url or "")
    return {"apiVersion": KEDA_API, "kind": "ScaledObject", "metadata": metadata,
            "spec": _scaled_object_spec(name, bounds, scaling, triggers)}


# --- HorizontalPodAutoscaler ---------------------------------------------------------------


def _hpa_spec(target: str, bounds: ScalerBounds, scaling: Autoscaling) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": max(bounds.min_replicas, 1),  # 0 needs the alpha HPAScaleToZero gate: zero is KEDA's
        "maxReplicas": bounds.max_replicas,
        "metrics": [
            {"type": "Resource", "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": utilization}}}
            for resource, utilization in _utilization_targets(scaling.metrics)
        ],
    }
    if (behavior := _behavior(scaling.behavior)) is not None:
        spec["behavior"] = behavior
    return spec


def _utilization_targets(metrics: list[AutoscalingMetric]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for metric in metrics:
        if metric.cpu is not None:
            out.append(("cpu", metric.cpu.average_utilization))
        if metric.memory is not None:
            out.append(("memory", metric.memory.average_utilization))
    return out


def _behavior(behavior: ScalingBehavior | None) -> dict[str, Any] | None:
    """HPA v2 ``behavior`` (also KEDA's advanced.horizontalPodAutoscalerConfig.behavior)."""
    if behavior is None:
        return None
    out = {key: rules for key, rules in (("scaleUp", _rules(behavior.scale_up)), ("scaleDown", _rules(behavior.scale_down))) if rules}
    return out or None


def _rules(rules: ScalingRules | None) -> dict[str, Any]:
    if rules is None:
        return {}
    out: dict[str, Any] = {}
    if rules.stabilization_window_seconds is not None:
        out["stabilizationWindowSeconds"] = rules.stabilization_window_seconds
    policies = [
        {"type": kind, "value": value, "periodSeconds": POLICY_PERIOD_SECONDS}
        for kind, value in (("Percent", rules.max_percent_per_minute), ("Pods", rules.max_pods_per_minute)) if value is not None
    ]
    if policies:
        out["policies"] = policies
        out["selectPolicy"] = "Max"
    return out


# --- KEDA ScaledObject ---------------------------------------------------------------------


def _scaled_object_spec(target: str, bounds: ScalerBounds, scaling: Autoscaling, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    advanced: dict[str, Any] = {"restoreToOriginalReplicaCount": False}
    if (behavior := _behavior(scaling.behavior)) is not None:
        advanced["horizontalPodAutoscalerConfig"] = {"behavior": behavior}
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicaCount": bounds.min_replicas,
        "maxReplicaCount": bounds.max_replicas,
        "advanced": advanced,
        "triggers": triggers,
    }


def _keda_triggers(owner: Owner, spec: ModelDeploymentSpec, variant: str, scaling: Autoscaling, metrics_url: str) -> list[dict[str, Any]]:
    triggers: list[dict[str, Any]] = [
        {"type": resource, "name": resource, "metricType": "Utilization", "metadata": {"value": str(utilization)}}
        for resource, utilization in _utilization_targets(scaling.metrics)
    ]
    selector = variant_selector(spec, owner.namespace, owner.name, variant)
    for metric in scaling.metrics:
        if metric.requests_per_second is not None:
            triggers.append(_prometheus_trigger("requests-per-second", f"sum(rate({REQUESTS_TOTAL}{selector}[1m]))",
                                                metric.requests_per_second.average, metrics_url))
        if metric.in_flight is not None:
            triggers.append(_prometheus_trigger("in-flight", f"sum({IN_PROGRESS}{selector})", metric.in_flight.average, metrics_url))
    return triggers


def _prometheus_trigger(name: str, query: str, per_pod: float, metrics_url: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": "AverageValue",  # KEDA's HPA divides the query's sum by the replicas
        "metadata": {"serverAddress": metrics_url, "query": query, "threshold": decimal_text(per_pod)},
    }


def variant_selector(spec: ModelDeploymentSpec, namespace: str, name: str, variant: str) -> str:
    """The PromQL selector of one variant's API requests, with the analysis' label names."""
    labels = series_labels(spec)
    return "{" + ",".join([f'{labels.namespace}="{namespace}"', f'{labels.model_deployment}="{name}"',
                           f'{labels.variant}="{variant}"', NOT_API]) + "}"


def decimal_text(value: float) -> str:
    """A number as KEDA's metadata wants it: a string, plain decimal, no exponent, no trailing zeros."""
    return format(Decimal(repr(value)).normalize(), "f")
