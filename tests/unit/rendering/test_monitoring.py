"""The PodMonitor: valid against prometheus-operator's published CRD, with the labels queries use."""

from __future__ import annotations

from pathlib import Path

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.planning.naming import Owner, shared_labels
from headway.rendering.monitoring import build_podmonitor
from headway.sandbox.apiserver.crdschema import load_crd, validate

CRD = Path(__file__).resolve().parents[4] / "shared" / "schemas" / "prometheus-operator" / "monitoring.coreos.com_podmonitors.yaml"
OWNER = Owner("fraud-scorer", "ml", "uid-1")
SPEC = ModelDeploymentSpec.model_validate({
    "model": {"bento": "fraud_scorer:3.2.0", "image": "registry.example.com/fraud:3"},
    "analysis": {"interval": "30s", "slos": [{"errorRate": {"max": 0.01}}], "seriesLabels": {"variant": "headway_variant"}},
})


def podmonitor() -> dict:
    return build_podmonitor(OWNER, SPEC, shared_labels(OWNER, SPEC))


@pytest.mark.skipif(not CRD.exists(), reason="shared/schemas is not beside the repository")
def test_validates_against_the_published_crd() -> None:
    assert validate(podmonitor(), load_crd(CRD)) == []
    broken = podmonitor()
    broken["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    assert validate(broken, load_crd(CRD)) != []


def test_relabelling_guarantees_the_series_labels() -> None:
    endpoint = podmonitor()["spec"]["podMetricsEndpoints"][0]
    targets = {r.get("targetLabel"): r.get("sourceLabels") for r in endpoint["relabelings"] if r["action"] == "replace"}
    assert targets == {
        "namespace": ["__meta_kubernetes_namespace"],
        "modeldeployment": ["__meta_kubernetes_pod_label_headway_dev_modeldeployment"],
        "headway_variant": ["__meta_kubernetes_pod_label_headway_dev_variant"],  # the configured name
        "revision": ["__meta_kubernetes_pod_label_headway_dev_revision"],
        "pod": ["__meta_kubernetes_pod_name"],
    }
    assert {"action": "labeldrop", "regex": "endpoint"} in endpoint["relabelings"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    assert podmonitor()["spec"]["selector"] == {"matchLabels": {"headway.dev/modeldeployment": "fraud-scorer"}}
