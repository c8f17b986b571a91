"""The RolloutRecord CRD (api/record.py): what `kubectl get rr` shows and what the API server enforces."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from headway.api import approval, crd, record
from headway.sandbox.apiserver import crdschema

ROOT = Path(__file__).resolve().parents[3]


def schema() -> dict:
    return record.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_the_generated_file_is_the_models_crd() -> None:
    assert yaml.safe_load((ROOT / "crds" / f"{record.CRD_NAME}.yaml").read_text()) == record.build_crd()


def test_kubectl_get_rr_columns_and_names() -> None:
    built = record.build_crd()
    assert built["spec"]["names"]["shortNames"] == ["rr"] and built["spec"]["scope"] == "Namespaced"
    columns = [c["name"] for c in built["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["ModelDeployment", "Revision", "Bento", "Outcome", "Started", "Age"]


def test_the_bounds_planning_keeps_are_the_ones_the_api_server_enforces() -> None:
    spec = schema()
    assert spec["properties"]["decisions"]["maxItems"] == record.MAX_DECISIONS
    assert spec["properties"]["approvals"]["maxItems"] == record.MAX_APPROVALS
    assert spec["properties"]["decisions"]["items"]["properties"]["message"]["maxLength"] == record.MESSAGE_MAX
    assert spec["properties"]["decisions"]["items"]["properties"]["evidence"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["outcome"]["enum"] == list(record.OUTCOMES)


@pytest.mark.parametrize(("change", "field"), [
    ({"outcome": "Finished"}, "spec.outcome"),
    ({"decisions": [{"time": "2024-05-01T12:00:00Z"}]}, "spec.decisions[0].event"),
    ({"modelDeploymentUID": None}, "spec.modelDeploymentUID"),
])
def test_malformed_records_are_refused_naming_the_field(change: dict, field: str) -> None:
    spec = {"modelDeployment": "fraud", "modelDeploymentUID": "u", "revision": "3f9a0c1b2d", "bento": "fraud_scorer:1",
            "startedAt": "2024-05-01T12:00:00Z", "outcome": "InProgress"}
    assert crdschema.validate({"apiVersion": "serving.headway.dev/v1alpha1", "kind": "RolloutRecord",
                               "metadata": {"name": "r", "namespace": "ml"}, "spec": spec}, record.build_crd()) == []
    spec = {k: v for k, v in {**spec, **change}.items() if v is not None}
    errors = crdschema.validate({"apiVersion": "serving.headway.dev/v1alpha1", "kind": "RolloutRecord",
                                 "metadata": {"name": "r", "namespace": "ml"}, "spec": spec}, record.build_crd())
    assert any(field in e for e in errors), errors


def test_every_headway_crd_shares_one_envelope() -> None:
    for build in (crd.build_crd, approval.build_crd, record.build_crd):
        built = build()
        assert built["metadata"]["labels"] == {"app.kubernetes.io/name": "headway", "app.kubernetes.io/part-of": "headway"}
        assert built["spec"]["group"] == "serving.headway.dev" and built["spec"]["versions"][0]["name"] == "v1alpha1"
        top = built["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert top["required"] == ["spec"] and {"apiVersion", "kind", "metadata", "spec"} <= set(top["properties"])
