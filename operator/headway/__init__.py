"""Headway: a Kubernetes operator that delivers BentoML models safely."""

GROUP = "serving.headway.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)
FIELD_MANAGER = "headway"
