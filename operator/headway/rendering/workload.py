"""Pure builders of the workload children: a variant's Deployment and Service, the
umbrella Service, the stable PodDisruptionBudget.

The pod is hardened the way a platform team expects (non-root, read-only root
filesystem, no privilege escalation, no capabilities, seccomp RuntimeDefault, no API
token) while still running an unmodified `bentoml containerize` image:

- those images run as the user ``bentoml``, uid/gid 1034; the name is not numeric, so
  ``runAsNonRoot`` needs an explicit ``runAsUser`` or the kubelet refuses the pod;
- the bento lives in the image under /home/bentoml/bento, so BENTOML_HOME (where BentoML
  writes its Prometheus multiprocess files) points at a separate writable emptyDir
  instead of over it; /tmp is another emptyDir.

A variant with a scaler (``VariantWorkload.scaler``, see rendering/scaling.py) gets its
HorizontalPodAutoscaler or ScaledObject, and its Deployment is rendered without
``spec.replicas``: the scaler owns the count, Headway never writes it. When the scaler
cannot be rendered (``scaler_problems``), the Deployment keeps a fixed count instead.
"""

from __future__ import annotations

from typing import Any

from headway.api.spec import ModelDeploymentSpec, ModelSpec
from headway.planning.capabilities import capabilities_of
from headway.planning.naming import LABEL_MD, STABLE, Owner, VariantWorkload, child_labels, selector_labels, shared_labels
from headway.rendering.scaling import build_scaler

BENTO_UID = 1034
BENTOML_HOME = "/var/lib/bentoml"
CONTAINER_NAME = "bentoml"
PORT_NAME = "http"


def _metadata(owner: Owner, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": owner.namespace, "labels": labels, "ownerReferences": [owner.reference()]}


def _env(model: ModelSpec) -> list[dict[str, Any]]:
    own = {var.name for var in model.env}
    env: list[dict[str, Any]] = [
        {"name": "BENTOML_HOME", "value": BENTOML_HOME},
        {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
        {"name": "BENTOML_PORT", "value": str(model.port)},
        # The root filesystem is read-only: libraries that cache under $HOME (Hugging Face,
        # torch, numba, ...) write to the /tmp emptyDir instead, unless the model sets them
        # (one entry per name: server-side apply refuses a list-map key given twice).
        *({"name": name, "value": value} for name, value in (("XDG_CACHE_HOME", "/tmp/.cache"), ("HF_HOME", "/tmp/.cache/huggingface"))
          if name not in own),
    ]
    for var in model.env:
        env.append(var.dump())
    return env


def _resources(spec: ModelDeploymentSpec) -> dict[str, Any]:
    if spec.resources is None:
        return {}
    requests = {k: str(v) for k, v in spec.resources.requests.items()}
    limits = {k: str(v) for k, v in spec.resources.limits.items()}
    if spec.resources.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(spec.resources.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _container(spec: ModelDeploymentSpec, model: ModelSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": model.image,
        "ports": [{"name": PORT_NAME, "containerPort": model.port, "protocol": "TCP"}],
        "env": _env(model),
        "resources": _resources(spec),
        "startupProbe": {
            "httpGet": {"path": "/livez", "port": PORT_NAME},
            "periodSeconds": 5,
            "failureThreshold": 60,  # model loading may take minutes
        },
        "livenessProbe": {"httpGet": {"path": "/livez", "port": PORT_NAME}, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": PORT_NAME}, "periodSeconds": 5, "failureThreshold": 3},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "bentoml-home", "mountPath": BENTOML_HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if model.args:
        container["args"] = list(model.args)
    if model.image_pull_policy:
        container["imagePullPolicy"] = model.image_pull_policy
    return container


def build_deployment(owner: Owner, spec: ModelDeploymentSpec, workload: VariantWorkload, *, scaled: bool = False) -> dict[str, Any]:
    """The Deployment of one variant; rolling updates never drop below the desired capacity.

    ``scaled``: a scaler owns the replica count, so ``spec.replicas`` is not rendered."""
    model = workload.model
    labels = child_labels(owner, spec, workload.variant, model)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": BENTO_UID,
            "runAsGroup": BENTO_UID,
            "fsGroup": BENTO_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, model)],
        "volumes": [
            {"name": "bentoml-home", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if model.service_account_name:
        pod_spec["serviceAccountName"] = model.service_account_name
    if model.node_selector:
        pod_spec["nodeSelector"] = dict(model.node_selector)
    if model.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in model.image_pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, owner.variant_name(workload.variant), labels),
        "spec": {
            **({} if scaled else {"replicas": workload.replicas}),
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": selector_labels(owner, workload.variant)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(model.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def _service(owner: Owner, name: str, labels: dict[str, str], selector: dict[str, str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def build_variant_service(owner: Owner, spec: ModelDeploymentSpec, workload: VariantWorkload) -> dict[str, Any]:
    """The Service of one variant: what route objects send its share of traffic to."""
    labels = child_labels(owner, spec, workload.variant, workload.model)
    return _service(owner, owner.variant_name(workload.variant), labels, selector_labels(owner, workload.variant), workload.model.port)


def build_umbrella_service(owner: Owner, spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The Service named after the ModelDeployment: the in-cluster entry point.

    When a route splits traffic (the provider's ``split`` is ``"route"``) this Service
    selects the stable pods only (never a shadow candidate, a standby or a rolled-back
    arm). When the split is the replica ratio (provider none), it selects every variant's
    pods. The named target port resolves per pod, so variants on different ports still work.
    """
    labels = shared_labels(owner, spec)
    routed = capabilities_of(spec.traffic).by_route
    selector = selector_labels(owner, STABLE) if routed else {LABEL_MD: owner.name}
    return _service(owner, owner.name, labels, selector, spec.model.port)


def build_pdb(owner: Owner, spec: ModelDeploymentSpec, workload: VariantWorkload, *, scaled: bool = False) -> dict[str, Any] | None:
    """A PodDisruptionBudget keeping all but one stable pod up during voluntary disruptions.

    ``maxUnavailable: 1`` does not depend on the count, so the only question is whether the
    variant may run more than one pod. With a scaler that is ``max_replicas > 1``, not the
    floor: a scaler between 1 and 10 replicas at 10 must not lose them all in one drain, and at
    1 replica the budget still allows the eviction (it never blocks a drain)."""
    most = workload.scaler.max_replicas if scaled and workload.scaler is not None else workload.replicas
    if most <= 1:
        return None
    labels = child_labels(owner, spec, workload.variant, workload.model)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, owner.variant_name(workload.variant), labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(owner, workload.variant)}},
    }


def build_children(owner: Owner, spec: ModelDeploymentSpec, workloads: list[VariantWorkload], *,
                   metrics_url: str | None = None) -> list[dict[str, Any]]:
    """Every workload child: per variant a Deployment, a Service and its scaler if it has one
    (and the stable PDB), plus the umbrella Service.

    ``metrics_url``: the Prometheus a KEDA trigger queries (``spec.analysis.prometheus.url``,
    allow-listed, or the operator's default); without it no request-metric scaler is rendered
    (``scaler_problems`` says so)."""
    children: list[dict[str, Any]] = []
    for workload in workloads:
        scaler = build_scaler(owner, spec, workload, metrics_url)
        children.append(build_deployment(owner, spec, workload, scaled=scaler is not None))
        children.append(build_variant_service(owner, spec, workload))
        if scaler is not None:
            children.append(scaler)
        if workload.variant == STABLE and (pdb := build_pdb(owner, spec, workload, scaled=scaler is not None)) is not None:
            children.append(pdb)
    children.append(build_umbrella_service(owner, spec))
    return children
