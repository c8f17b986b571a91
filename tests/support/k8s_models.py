"""Check built-in objects against the official client's pydantic models (kubernetes v37).

``from_dict`` validates types; a round trip back to a dict must give the same object, so
a misspelt or unknown field (dropped by the model) fails too.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

MODELS = {
    ("apps/v1", "Deployment"): client.V1Deployment,
    ("v1", "Service"): client.V1Service,
    ("policy/v1", "PodDisruptionBudget"): client.V1PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): client.V2HorizontalPodAutoscaler,
    ("v1", "ServiceAccount"): client.V1ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): client.V1ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): client.V1ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): client.V1Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): client.V1RoleBinding,
    ("v1", "Event"): client.CoreV1Event,
}


def check_builtin(obj: dict[str, Any]) -> None:
    """Raise if obj is not a valid built-in object with only known fields."""
    model = MODELS[(obj["apiVersion"], obj["kind"])]
    parsed = model.from_dict(obj)
    back = client.ApiClient().sanitize_for_serialization(parsed)
    assert back == obj, f"{obj['kind']} {obj['metadata'].get('name')}: fields lost or changed by the model: {_diff(obj, back)}"


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            out += _diff(a.get(key), b.get(key), f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
