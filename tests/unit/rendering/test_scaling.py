"""A variant's own scaler: golden HPA and ScaledObject, valid against the official client's models
and KEDA's published CRD; the Deployment leaves its replicas to the scaler."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.metrics import prometheus
from headway.planning.naming import CANDIDATE, STABLE, Owner, ScalerBounds, VariantWorkload
from headway.rendering import scaling
from headway.rendering.monitoring import series_labels
from headway.rendering.scaling import decimal_text, scaler_problems
from headway.rendering.workload import build_children
from headway.sandbox.apiserver.crdschema import load_crd, validate
from tests.support.golden import assert_golden
from tests.support.k8s_models import check_builtin

GOLDEN = Path(__file__).parent / "golden"
KEDA_CRD = Path(__file__).resolve().parents[4] / "shared" / "schemas" / "keda" / "keda.sh_scaledobjects.yaml"
needs_keda_crd = pytest.mark.skipif(not KEDA_CRD.exists(), reason="shared/schemas is not beside the repository")
OWNER = Owner(name="fraud-scorer", namespace="ml", uid="0b4f3c1e-7a52-4c1e-9d8e-2f4a6b8c0d1e")
PROMETHEUS = "http://prometheus.monitoring:9090"
MODEL = {"bento": "fraud_scorer:3.2.0", "image": "registry.example.com/fraud-scorer:3.2.0"}
RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}

HPA = {
    "model": MODEL,
    "resources": RESOURCES,
    "autoscaling": {
        "minReplicas": 2, "maxReplicas": 10,
        "metrics": [{"cpu": {"averageUtilization": 60}}, {"memory": {"averageUtilization": 75}}],
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "maxPercentPerMinute": 100, "maxPodsPerMinute": 4},
            "scaleDown": {"stabilizationWindowSeconds": 300},
        },
    },
    "cost": {"labels": {"team": "risk"}},
}
KEDA = {
    "model": MODEL,
    "resources": RESOURCES,
    "autoscaling": {
        "minReplicas": 0, "maxReplicas": 8, "scaleToZero": True,
        "metrics": [{"requestsPerSecond": {"average": 12.5}}, {"inFlight": {"average": 4}}, {"cpu": {"averageUtilization": 70}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120, "maxPercentPerMinute": 50}},
    },
    "analysis": {"prometheus": {"url": PROMETHEUS}, "slos": [{"errorRate": {"max": 0.01}}]},
}


def spec_of(raw: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(raw)


def render(raw: dict[str, Any], bounds: dict[str, tuple[int, int]], metrics_url: str | None = PROMETHEUS) -> list[dict[str, Any]]:
    spec = spec_of(raw)
    assert spec.autoscaling is not None
    engine = spec.autoscaling.chosen_engine
    workloads = [VariantWorkload(v, spec.model, max(lo, 1), ScalerBounds(engine, lo, hi, spec.autoscaling)) for v, (lo, hi) in bounds.items()]
    return build_children(OWNER, spec, workloads, metrics_url=metrics_url)


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def hpa_children() -> list[dict[str, Any]]:
    return render(HPA, {STABLE: (3, 10), CANDIDATE: (1, 10)})


def keda_children() -> list[dict[str, Any]]:
    return render(KEDA, {STABLE: (1, 8), CANDIDATE: (0, 8)})  # the candidate shadows: it may go to zero


# --- golden manifests and published schemas ---------------------------------------------------


def test_hpa_matches_golden() -> None:
    assert_golden(hpa_children(), GOLDEN / "autoscaling-hpa.yaml")


def test_scaledobject_matches_golden() -> None:
    assert_golden(keda_children(), GOLDEN / "autoscaling-keda.yaml")


@pytest.mark.parametrize("children", [hpa_children, keda_children], ids=["hpa", "keda"])
def test_built_in_children_are_valid_kubernetes_objects(children: Any) -> None:
    """Deployments, Services, HPAs and the PDB against the official client's models."""
    objs = children()
    assert of_kind(objs, "HorizontalPodAutoscaler") or of_kind(objs, "ScaledObject")
    for obj in objs:
        if obj["kind"] != "ScaledObject":
            check_builtin(obj)


@needs_keda_crd
def test_scaledobjects_validate_against_the_published_keda_crd() -> None:
    crd = load_crd(KEDA_CRD)
    objs = of_kind(keda_children(), "ScaledObject") + of_kind(render(KEDA, {STABLE: (2, 2)}), "ScaledObject")
    objs += of_kind(render({**KEDA, "autoscaling": {**KEDA["autoscaling"], "behavior": None}}, {"treatment": (0, 3)}), "ScaledObject")
    assert len(objs) == 4
    for obj in objs:
        assert validate(obj, crd) == [], obj["metadata"]["name"]
    too_few = copy.deepcopy(objs[0])
    too_few["spec"]["minReplicaCount"] = 9  # more than maxReplicaCount: the CRD's own rule
    assert any("minReplicaCount must be less than or equal to maxReplicaCount" in e for e in validate(too_few, crd))
    not_a_string = copy.deepcopy(objs[0])
    not_a_string["spec"]["triggers"][1]["metadata"]["threshold"] = 4  # trigger metadata values are strings
    assert any("threshold" in e for e in validate(not_a_string, crd))


# --- the scaler owns the replicas -------------------------------------------------------------


def test_a_deployment_with_a_scaler_has_no_replicas_and_one_without_has_them() -> None:
    for objs in (hpa_children(), keda_children()):
        for deployment in of_kind(objs, "Deployment"):
            assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]
    spec = spec_of({"model": MODEL, "replicas": 3})
    [deployment] = of_kind(build_children(OWNER, spec, [VariantWorkload(STABLE, spec.model, 3)]), "Deployment")
    assert deployment["spec"]["replicas"] == 3


def test_one_scaler_per_variant_named_owned_and_labelled_like_its_deployment() -> None:
    for objs, kind in ((hpa_children(), "HorizontalPodAutoscaler"), (keda_children(), "ScaledObject")):
        deployments = {d["metadata"]["name"]: d for d in of_kind(objs, "Deployment")}
        scalers = of_kind(objs, kind)
        assert sorted(s["metadata"]["name"] for s in scalers) == sorted(deployments) == ["fraud-scorer-candidate", "fraud-scorer-stable"]
        for scaler in scalers:
            deployment = deployments[scaler["metadata"]["name"]]
            assert scaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
            assert scaler["metadata"]["labels"] == deployment["metadata"]["labels"]
            assert scaler["metadata"]["ownerReferences"] == [OWNER.reference()]
            assert scaler["metadata"]["namespace"] == "ml"


def test_bounds_come_from_the_planner_not_the_spec() -> None:
    [stable, candidate] = of_kind(hpa_children(), "HorizontalPodAutoscaler")
    assert (stable["spec"]["minReplicas"], stable["spec"]["maxReplicas"]) == (3, 10)
    assert (candidate["spec"]["minReplicas"], candidate["spec"]["maxReplicas"]) == (1, 10)


# --- HPA details ------------------------------------------------------------------------------


def test_hpa_metrics_and_behavior() -> None:
    hpa = of_kind(hpa_children(), "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 75}}},
    ]
    assert hpa["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}, {"type": "Pods", "value": 4, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 300},  # no rate limit asked: no policies, the HPA's defaults
    }


def test_no_behavior_is_rendered_when_none_is_asked() -> None:
    raw = {**HPA, "autoscaling": {**HPA["autoscaling"], "behavior": None}}
    assert "behavior" not in of_kind(render(raw, {STABLE: (2, 10)}), "HorizontalPodAutoscaler")[0]["spec"]
    raw = {**KEDA, "autoscaling": {**KEDA["autoscaling"], "behavior": {"scaleUp": {}}}}
    assert of_kind(render(raw, {STABLE: (1, 8)}), "ScaledObject")[0]["spec"]["advanced"] == {"restoreToOriginalReplicaCount": False}


# --- ScaledObject details ---------------------------------------------------------------------


def test_scaledobject_triggers_select_exactly_this_variants_pods() -> None:
    candidate = {s["metadata"]["name"]: s for s in of_kind(keda_children(), "ScaledObject")}["fraud-scorer-candidate"]["spec"]
    sel = ('{namespace="ml",modeldeployment="fraud-scorer",variant="candidate",'
           'endpoint!~"/(livez|readyz|healthz|metrics|docs.json|schema.json)"}')
    assert candidate["triggers"] == [
        {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
        {"type": "prometheus", "name": "requests-per-second", "metricType": "AverageValue",
         "metadata": {"serverAddress": PROMETHEUS, "query": f"sum(rate(bentoml_service_request_total{sel}[1m]))", "threshold": "12.5"}},
        {"type": "prometheus", "name": "in-flight", "metricType": "AverageValue",
         "metadata": {"serverAddress": PROMETHEUS, "query": f"sum(bentoml_service_request_in_progress{sel})", "threshold": "4"}},
    ]
    assert candidate["advanced"] == {
        "restoreToOriginalReplicaCount": False,
        "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
            "stabilizationWindowSeconds": 120, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}},
    }
    assert "fallback" not in candidate


def test_scale_to_zero_renders_a_zero_floor_and_no_idle_replica_count() -> None:
    """KEDA: idleReplicaCount must be below minReplicaCount (only 0 is supported): nothing to add at 0."""
    by_name = {s["metadata"]["name"]: s["spec"] for s in of_kind(keda_children(), "ScaledObject")}
    assert by_name["fraud-scorer-candidate"]["minReplicaCount"] == 0 and by_name["fraud-scorer-stable"]["minReplicaCount"] == 1
    assert all("idleReplicaCount" not in s for s in by_name.values())


def test_queries_use_the_series_labels_of_the_analysis() -> None:
    raw = {**KEDA, "analysis": {**KEDA["analysis"], "seriesLabels": {"namespace": "kubernetes_namespace", "modelDeployment": "md",
                                                                      "variant": "headway_variant"}}}
    [so] = of_kind(render(raw, {"treatment": (1, 8)}), "ScaledObject")
    query = so["spec"]["triggers"][1]["metadata"]["query"]
    assert 'kubernetes_namespace="ml",md="fraud-scorer",headway_variant="treatment"' in query


def test_the_probe_filter_is_the_analysis_filter() -> None:
    """Rendering may not import the metrics adapter; the two copies must not drift apart."""
    assert scaling.NOT_API == prometheus.NOT_API
    spec = spec_of(KEDA)
    assert scaling.variant_selector(spec, "ml", "fraud-scorer", "stable") == prometheus.selector(series_labels(spec), "ml", "fraud-scorer", "stable")


@pytest.mark.parametrize("value, text", [(4, "4"), (4.0, "4"), (12.5, "12.5"), (0.25, "0.25"), (100, "100"), (1e-9, "0.000000001"),
                                         (1_000_000, "1000000")])
def test_thresholds_are_plain_decimal_strings(value: float, text: str) -> None:
    assert decimal_text(value) == text


# --- when no scaler can work: fixed replicas and a problem to report ----------------------------


def test_a_request_metric_without_a_prometheus_url_renders_no_scaler() -> None:
    objs = render(KEDA, {STABLE: (1, 8)}, metrics_url=None)
    assert not of_kind(objs, "ScaledObject")
    assert of_kind(objs, "Deployment")[0]["spec"]["replicas"] == 1  # fixed at the planner's floor
    assert scaler_problems(spec_of(KEDA), None) == [
        "spec.autoscaling.metrics: requestsPerSecond and inFlight need a Prometheus URL (spec.analysis.prometheus.url "
        "or the operator's --prometheus-url); replicas stay fixed"]
    assert scaler_problems(spec_of(KEDA), PROMETHEUS) == []


def test_a_utilisation_target_needs_the_resource_request() -> None:
    raw = {**HPA, "resources": {"requests": {"cpu": "1"}}}
    assert scaler_problems(spec_of(raw), None) == [
        "spec.autoscaling.metrics: a memory utilisation target needs spec.resources.requests.memory "
        "(utilisation is a percentage of the request); replicas stay fixed"]
    objs = render(raw, {STABLE: (2, 10)})
    assert not of_kind(objs, "HorizontalPodAutoscaler") and of_kind(objs, "Deployment")[0]["spec"]["replicas"] == 2
    assert scaler_problems(spec_of(HPA), None) == []  # cpu and memory need no Prometheus
    assert scaler_problems(spec_of({**HPA, "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "2Gi"}}}), None) == []  # request = limit


def test_keda_refuses_scale_to_zero_on_cpu_and_memory_alone() -> None:
    raw = {**KEDA, "autoscaling": {**KEDA["autoscaling"], "metrics": [{"cpu": {"averageUtilization": 70}}]}}
    assert [p.split(":")[0] for p in scaler_problems(spec_of(raw), PROMETHEUS)] == ["spec.autoscaling.scaleToZero"]


def test_no_autoscaling_no_problem_and_no_scaler() -> None:
    spec = spec_of({"model": MODEL})
    assert scaler_problems(spec, None) == []
    objs = build_children(OWNER, spec, [VariantWorkload(STABLE, spec.model, 1)], metrics_url=PROMETHEUS)
    assert {o["kind"] for o in objs} == {"Deployment", "Service"}


# --- PodDisruptionBudget ----------------------------------------------------------------------


def test_pdb_with_a_scaler_follows_the_most_replicas_it_may_run() -> None:
    """maxUnavailable 1 never blocks a drain; what matters is whether more than one pod may run."""
    assert of_kind(render(HPA, {STABLE: (1, 10)}), "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    assert not of_kind(render(HPA, {STABLE: (1, 1)}), "PodDisruptionBudget")
    assert len(of_kind(hpa_children(), "PodDisruptionBudget")) == 1  # the stable's only
