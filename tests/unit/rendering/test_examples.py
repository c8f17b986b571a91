"""Every example renders: its workload children are valid Kubernetes objects (the official
client's models; KEDA's published CRD for ScaledObjects), and the autoscaling examples render
the scalers their comments show. (tests/unit/test_manifests.py checks them against our CRD.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.planning.naming import CANDIDATE, STABLE, Owner, ScalerBounds, VariantWorkload
from headway.rendering.scaling import scaler_problems
from headway.rendering.workload import build_children
from headway.sandbox.apiserver.crdschema import load_crd, load_yaml_documents, validate
from tests.support.k8s_models import check_builtin

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
KEDA_CRD = ROOT.parent / "shared" / "schemas" / "keda" / "keda.sh_scaledobjects.yaml"


def _documents() -> list[tuple[str, dict[str, Any], str]]:
    found = []
    for path in EXAMPLES:
        for i, doc in enumerate(load_yaml_documents(path)):
            if isinstance(doc, dict) and doc.get("kind") == "ModelDeployment":
                found.append((f"{path.name}#{i}", doc, path.read_text(encoding="utf-8")))
    return found


DOCUMENTS = _documents()


def _workloads(spec: ModelDeploymentSpec) -> list[VariantWorkload]:
    """Stable plus a candidate (or every experiment arm), with bounds as a planner would give
    them: variants that serve keep at least one pod; the others may go to the spec's floor."""
    scaling = spec.autoscaling
    arms: list[tuple[str, Any, bool]] = [(STABLE, spec.model, True), (CANDIDATE, spec.model, False)]
    if spec.experiment is not None:
        arms = [(STABLE if v.model is None else v.name, v.model or spec.model, v.weight > 0) for v in spec.experiment.variants]
    out = []
    for variant, model, serves in arms:
        if scaling is None:
            out.append(VariantWorkload(variant, model, spec.replicas or 1))
            continue
        floor = max(scaling.min_replicas, 1) if serves else scaling.min_replicas
        out.append(VariantWorkload(variant, model, max(floor, 1), ScalerBounds(scaling.chosen_engine, floor, scaling.max_replicas, scaling)))
    return out


def _render(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ModelDeploymentSpec.model_validate(doc["spec"])
    url = spec.analysis.prometheus.url if spec.analysis and spec.analysis.prometheus else None
    assert scaler_problems(spec, url) == []
    owner = Owner(doc["metadata"]["name"], doc["metadata"]["namespace"], "uid-example")
    return build_children(owner, spec, _workloads(spec), metrics_url=url)


def test_there_are_autoscaling_examples_for_both_engines() -> None:
    names = {where.split("#")[0] for where, _, _ in DOCUMENTS}
    assert {"autoscaling.yaml", "autoscaling-keda.yaml"} <= names


@pytest.mark.parametrize(("where", "doc", "text"), DOCUMENTS, ids=[w for w, _, _ in DOCUMENTS])
def test_example_renders_valid_children(where: str, doc: dict[str, Any], text: str) -> None:
    children = _render(doc)
    for obj in children:
        if obj["kind"] == "ScaledObject":
            if KEDA_CRD.exists():
                assert validate(obj, load_crd(KEDA_CRD)) == [], (where, obj["metadata"]["name"])
        else:
            check_builtin(obj)
    scalers = [o for o in children if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    if doc["spec"].get("autoscaling"):
        assert scalers, where
        for scaler in scalers:  # the comments show what `kubectl get hpa|scaledobject` lists
            assert scaler["metadata"]["name"] in text, (where, scaler["metadata"]["name"])
    else:
        assert not scalers, where


def test_the_examples_pick_the_engine_their_comments_name() -> None:
    by_file = {where.split("#")[0]: doc for where, doc, _ in DOCUMENTS}
    assert {o["kind"] for o in _render(by_file["autoscaling.yaml"])} >= {"HorizontalPodAutoscaler"}
    keda = [o for o in _render(by_file["autoscaling-keda.yaml"]) if o["kind"] == "ScaledObject"]
    assert [o["spec"]["minReplicaCount"] for o in keda] == [1, 0]  # stable serves; the shadowing candidate may idle at zero
    assert {t["type"] for o in keda for t in o["spec"]["triggers"]} == {"prometheus"}
