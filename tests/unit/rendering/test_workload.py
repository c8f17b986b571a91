"""The workload children a user gets for a ModelDeployment, as reviewed golden manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.planning.naming import STABLE, Owner, VariantWorkload
from headway.rendering.workload import build_children, build_deployment
from tests.support.golden import assert_golden
from tests.support.k8s_models import check_builtin

GOLDEN = Path(__file__).parent / "golden"
OWNER = Owner(name="fraud-scorer", namespace="ml", uid="0b4f3c1e-7a52-4c1e-9d8e-2f4a6b8c0d1e")

MINIMAL = {"model": {"bento": "fraud_scorer:3.2.0", "image": "registry.example.com/fraud-scorer:3.2.0"}}
FULL = {
    "model": {
        "bento": "fraud_scorer:3.2.0",
        "image": "registry.example.com/fraud-scorer@sha256:" + "a" * 64,
        "port": 8080,
        "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "fraud", "key": "api-key"}}}],
        "args": ["--workers", "2"],
        "imagePullPolicy": "IfNotPresent",
        "imagePullSecrets": ["registry-creds"],
        "serviceAccountName": "fraud-scorer",
        "nodeSelector": {"node.kubernetes.io/instance-type": "m6i.xlarge"},
    },
    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}, "gpus": 1},
    "replicas": 3,
    "cost": {"labels": {"team": "risk", "cost-center": "cc-1234"}},
}


def children(raw: dict) -> list[dict]:
    spec = ModelDeploymentSpec.model_validate(raw)
    replicas = spec.replicas if spec.replicas is not None else 1
    return build_children(OWNER, spec, [VariantWorkload(STABLE, spec.model, replicas)])


@pytest.mark.parametrize("case, raw", [("minimal", MINIMAL), ("full", FULL)])
def test_children_match_golden_manifests(case: str, raw: dict) -> None:
    assert_golden(children(raw), GOLDEN / f"{case}.yaml")


@pytest.mark.parametrize("raw", [MINIMAL, FULL])
def test_children_are_valid_kubernetes_objects(raw: dict) -> None:
    for obj in children(raw):
        check_builtin(obj)


def test_every_child_is_owned_and_labelled() -> None:
    for obj in children(FULL):
        meta = obj["metadata"]
        assert meta["ownerReferences"] == [OWNER.reference()]
        assert meta["ownerReferences"][0]["controller"] is True
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                    "app.kubernetes.io/managed-by", "headway.dev/modeldeployment", "team", "cost-center"):
            assert key in meta["labels"], (obj["kind"], key)


def test_pods_are_hardened_and_carry_every_label() -> None:
    deployment = children(FULL)[0]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"] == deployment["metadata"]["labels"]
    assert pod["metadata"]["labels"]["headway.dev/revision"]
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["spec"]["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BENTOML_DO_NOT_TRACK"] == "true"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {env["BENTOML_HOME"], "/tmp"} <= mounts
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"


def test_pdb_only_with_more_than_one_replica() -> None:
    assert "PodDisruptionBudget" not in [o["kind"] for o in children(MINIMAL)]
    pdb = [o for o in children(FULL) if o["kind"] == "PodDisruptionBudget"]
    assert len(pdb) == 1 and pdb[0]["spec"]["maxUnavailable"] == 1


def test_new_model_changes_revision_and_image_but_not_selector() -> None:
    spec_a = ModelDeploymentSpec.model_validate(MINIMAL)
    spec_b = ModelDeploymentSpec.model_validate({"model": {**MINIMAL["model"], "bento": "fraud_scorer:3.3.0", "image": "registry.example.com/fraud-scorer:3.3.0"}})
    a = build_deployment(OWNER, spec_a, VariantWorkload(STABLE, spec_a.model, 1))
    b = build_deployment(OWNER, spec_b, VariantWorkload(STABLE, spec_b.model, 1))
    assert a["spec"]["selector"] == b["spec"]["selector"]  # selectors are immutable
    assert a["metadata"]["labels"]["headway.dev/revision"] != b["metadata"]["labels"]["headway.dev/revision"]
    assert b["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":3.3.0")


def test_with_a_router_the_umbrella_service_selects_stable_pods_only() -> None:
    """Otherwise in-cluster callers of <name> would get answers from a shadow candidate."""
    routed = {**MINIMAL, "traffic": {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "gw"}]}}}
    umbrella = [o for o in children(routed) if o["kind"] == "Service" and o["metadata"]["name"] == OWNER.name][0]
    assert umbrella["spec"]["selector"] == {"headway.dev/modeldeployment": OWNER.name, "headway.dev/variant": "stable"}
    plain = [o for o in children(MINIMAL) if o["kind"] == "Service" and o["metadata"]["name"] == OWNER.name][0]
    assert plain["spec"]["selector"] == {"headway.dev/modeldeployment": OWNER.name}  # provider none: the replica ratio


def test_a_cache_directory_the_model_sets_replaces_the_default_once() -> None:
    """Server-side apply refuses an env list naming a variable twice."""
    spec = ModelDeploymentSpec.model_validate({"model": {**MINIMAL["model"], "env": [{"name": "HF_HOME", "value": "/models/hf"}]}})
    [deployment] = [c for c in build_children(OWNER, spec, [VariantWorkload(STABLE, spec.model, 1)]) if c["kind"] == "Deployment"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "HF_HOME"] == ["/models/hf"]
    assert [e["value"] for e in env if e["name"] == "XDG_CACHE_HOME"] == ["/tmp/.cache"]
