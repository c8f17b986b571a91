"""Names, labels and revisions of the objects Headway creates for a ModelDeployment."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import headway
from headway.api.spec import Autoscaling, ModelDeploymentSpec, ModelSpec
from headway.api.status import VersionSpec

LABEL_MD = "headway.dev/modeldeployment"
LABEL_VARIANT = "headway.dev/variant"
LABEL_REVISION = "headway.dev/revision"
ANNOTATION_HASH = "headway.dev/spec-hash"
MANAGED_BY = "headway"
COMPONENT = "model-server"
STABLE = "stable"
CANDIDATE = "candidate"
PREVIOUS = "previous"  # the version before the last promotion, kept during the bake time
# Longest variant suffix Headway appends to a ModelDeployment's name ("-candidate"), and
# Services are DNS-1035 labels of at most 63 characters.
MAX_NAME_LENGTH = 63 - len("-" + CANDIDATE)


def revision_of(model: ModelSpec) -> str:
    """A short, stable hash of everything that makes a version: its pods and, for a
    ``VersionSpec``, its autoscaling. Without autoscaling it is the model's hash, byte for byte
    (a version recorded before autoscaling was part of it keeps its revision)."""
    canonical = json.dumps(model.dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def desired_version(spec: ModelDeploymentSpec) -> VersionSpec:
    """The version the spec asks for: spec.model with spec.autoscaling. A change to either
    is a new revision, rolled out through the steps."""
    return VersionSpec.model_validate({**spec.model.model_dump(), "autoscaling": spec.autoscaling})


def version_change(before: ModelSpec, after: VersionSpec) -> str:
    """What a new version changes in autoscaling, as a person reads it ("" when nothing)."""
    old = before.autoscaling if isinstance(before, VersionSpec) else None
    if old == after.autoscaling:
        return ""
    return f" (spec.autoscaling: {_scaling(old)} -> {_scaling(after.autoscaling)})"


def _scaling(a: Autoscaling | None) -> str:
    if a is None:
        return "fixed replicas"
    return f"{a.chosen_engine} {a.min_replicas}-{a.max_replicas} replicas on {', '.join(m.target for m in a.metrics)}"


def object_hash(obj: dict[str, Any]) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def bento_name_version(bento: str) -> tuple[str, str]:
    name, _, version = bento.partition(":")
    return name, version or "latest"


@dataclass(frozen=True)
class ScalerBounds:
    """A variant's own autoscaler: which engine, and the replicas it may choose between.

    While a variant has one, the scaler owns the Deployment's ``spec.replicas``: Headway renders
    the scaler and never writes the replica count."""

    engine: Literal["hpa", "keda"]
    min_replicas: int
    max_replicas: int
    settings: Autoscaling  # the variant's version's autoscaling: metrics, behaviour, maxReplicas before any cap


@dataclass(frozen=True)
class VariantWorkload:
    """What one variant runs: its name, its model, and how many replicas (or its scaler's bounds)."""

    variant: str
    model: ModelSpec
    replicas: int  # fixed replicas; with a scaler, the floor it starts from (never written to the Deployment)
    scaler: ScalerBounds | None = None


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns the children: identity for names, labels and GC."""

    name: str
    namespace: str
    uid: str

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): how the work queue and the measurer know it."""
        return self.namespace, self.name

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{headway.GROUP}/{headway.VERSION}",
            "kind": headway.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def variant_name(self, variant: str) -> str:
        return f"{self.name}-{variant}"


def selector_labels(owner: Owner, variant: str) -> dict[str, str]:
    """The labels a variant's Service and Deployment select pods by (immutable for a Deployment)."""
    return {LABEL_MD: owner.name, LABEL_VARIANT: variant}


def child_labels(owner: Owner, spec: ModelDeploymentSpec, variant: str, model: ModelSpec) -> dict[str, str]:
    """Labels on every child object and pod: app.kubernetes.io/*, headway.dev/*, cost labels."""
    name, version = bento_name_version(model.bento)
    labels = dict(spec.cost.labels) if spec.cost else {}
    labels.update(
        {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": owner.name,
            "app.kubernetes.io/version": version,
            "app.kubernetes.io/component": COMPONENT,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_MD: owner.name,
            LABEL_VARIANT: variant,
            LABEL_REVISION: revision_of(model),
        }
    )
    return labels


def shared_labels(owner: Owner, spec: ModelDeploymentSpec) -> dict[str, str]:
    """Labels for objects shared by all variants (the umbrella Service, the route)."""
    name, _ = bento_name_version(spec.model.bento)
    labels = dict(spec.cost.labels) if spec.cost else {}
    labels.update(
        {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": owner.name,
            "app.kubernetes.io/component": COMPONENT,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_MD: owner.name,
        }
    )
    return labels
