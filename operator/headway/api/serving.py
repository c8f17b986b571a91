"""ModelDeployment.spec: the model version, its pods' resources and autoscaling.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from headway.api.base import ApiModel, Rule, exactly_one_of
from headway.api.limits import DNS_SUBDOMAIN_MAX, ObjectName
from headway.api.types import LabelKey, LabelValue, Quantity, QualifiedName


# BentoML tags: a lowercase name and an optional version ("fraud_scorer:3.2.0").
BENTO_TAG_PATTERN = r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?(:[A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?)?$"


class SecretKeyRef(ApiModel):
    """A key of a Secret or ConfigMap in the ModelDeployment's namespace."""

    name: ObjectName
    """Name of the Secret or ConfigMap."""
    key: str = Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)  # ConfigMap and Secret keys: 253 at most
    """Key inside it."""
    optional: bool | None = None
    """Start the container even if the key is missing."""


class EnvValueFrom(ApiModel):
    """Where the value comes from: exactly one of secretKeyRef and configMapKeyRef."""

    __cel__ = (exactly_one_of("set exactly one of secretKeyRef and configMapKeyRef", "secretKeyRef", "configMapKeyRef"),)

    secret_key_ref: SecretKeyRef | None = None
    """A key of a Secret."""
    config_map_key_ref: SecretKeyRef | None = None
    """A key of a ConfigMap."""


class EnvVar(ApiModel):
    """An environment variable for the model server: a literal value or a reference."""

    __cel__ = (
        Rule("!(has(self.value) && has(self.valueFrom))", "set value or valueFrom, not both", None, lambda m: m.value is None or m.value_from is None),
    )

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253)
    """Variable name."""
    # Linux refuses a single environment string over 128 KiB; anything near that belongs in a
    # ConfigMap (valueFrom) anyway, and 200 such values would not fit in one request.
    value: str | None = Field(default=None, max_length=32768)
    """Literal value."""
    value_from: EnvValueFrom | None = None
    """Take the value from a Secret or ConfigMap key."""


class ModelSpec(ApiModel):
    """One version of the model: the bento it was built from and the image that serves it."""

    # name and version each become a label value (63), plus the colon; 128 leaves room.
    bento: str = Field(pattern=BENTO_TAG_PATTERN, max_length=128)
    """BentoML tag, name:version (e.g. fraud_scorer:3.2.0): the version's identity in status and labels."""
    # A reference: repository (255, distribution's limit) + ":" tag (128) + "@sha256:" digest (71) < 512.
    image: str = Field(min_length=1, max_length=512)
    """Container image built by `bentoml containerize` (e.g. registry.example.com/fraud-scorer:3.2.0)."""
    port: int = Field(default=3000, ge=1, le=65535)
    """Port the BentoML server listens on."""
    # Model servers take a handful of variables (tokens, thread counts, cache paths); 128 is
    # several times what real manifests carry and keeps the env rules' cost small.
    env: list[EnvVar] = Field(
        default_factory=list, max_length=128, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    )
    """Extra environment variables (BENTOML_HOME and BENTOML_DO_NOT_TRACK are set by Headway)."""
    # A server's flags: dozens at most; one argument may carry a small JSON or path list.
    args: list[Annotated[str, Field(max_length=4096)]] = Field(default_factory=list, max_length=64)
    """Extra arguments for the server (appended to the image's command)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy; the Kubernetes default applies when unset."""
    image_pull_secrets: list[ObjectName] = Field(default_factory=list, max_length=16)  # one per registry
    """Names of Secrets to pull the image with."""
    service_account_name: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=DNS_SUBDOMAIN_MAX)
    """ServiceAccount the model pods run as."""
    # Label selectors name a few labels (zone, GPU type, pool); keys and values are label keys
    # (317: 253 prefix + "/" + 63 name; the CRD cannot bound map keys, pydantic does) and values (63).
    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Node labels the model pods must be scheduled on."""


class Resources(ApiModel):
    """Compute resources of every model pod."""

    # cpu, memory, ephemeral-storage, hugepages-<size> and a few extended resources: 16.
    requests: dict[QualifiedName, Quantity] = Field(default_factory=dict, max_length=16)
    """Requested resources, e.g. {cpu: "1", memory: 2Gi}."""
    limits: dict[QualifiedName, Quantity] = Field(default_factory=dict, max_length=16)
    """Resource limits, e.g. {memory: 2Gi}."""
    gpus: int = Field(default=0, ge=0, le=16)
    """NVIDIA GPUs per pod (nvidia.com/gpu, requested and limited)."""


class CpuMetric(ApiModel):
    """Scale on CPU utilisation (HorizontalPodAutoscaler v2, or KEDA's cpu trigger)."""

    average_utilization: int = Field(ge=1, le=1000)
    """Target average CPU utilisation, percent of the request."""


class MemoryMetric(ApiModel):
    """Scale on memory utilisation (HorizontalPodAutoscaler v2, or KEDA's memory trigger)."""

    average_utilization: int = Field(ge=1, le=1000)
    """Target average memory utilisation, percent of the request."""


class RequestsPerSecondMetric(ApiModel):
    """Scale on requests per second per pod, from BentoML's bentoml_service_request_total (KEDA Prometheus trigger)."""

    average: float = Field(gt=0, le=1_000_000)
    """Target requests per second per pod."""


class InFlightMetric(ApiModel):
    """Scale on requests in flight per pod, from BentoML's bentoml_service_request_in_progress (KEDA Prometheus trigger)."""

    average: float = Field(gt=0, le=100_000)
    """Target requests in flight per pod."""


class AutoscalingMetric(ApiModel):
    """One scaling signal: exactly one of cpu, memory, requestsPerSecond and inFlight."""

    __cel__ = (exactly_one_of("set exactly one of cpu, memory, requestsPerSecond and inFlight",
                              "cpu", "memory", "requestsPerSecond", "inFlight"),)

    cpu: CpuMetric | None = None
    """CPU utilisation target."""
    memory: MemoryMetric | None = None
    """Memory utilisation target."""
    requests_per_second: RequestsPerSecondMetric | None = None
    """Requests-per-second target (needs KEDA)."""
    in_flight: InFlightMetric | None = None
    """In-flight requests target (needs KEDA)."""

    @property
    def needs_keda(self) -> bool:
        return self.requests_per_second is not None or self.in_flight is not None

    @property
    def target(self) -> str:
        """The signal and its target as a person reads it: ``cpu 70%``, ``requestsPerSecond 20``."""
        if self.cpu is not None:
            return f"cpu {self.cpu.average_utilization}%"
        if self.memory is not None:
            return f"memory {self.memory.average_utilization}%"
        if self.requests_per_second is not None:
            return f"requestsPerSecond {self.requests_per_second.average:g}"
        assert self.in_flight is not None
        return f"inFlight {self.in_flight.average:g}"


class ScalingRules(ApiModel):
    """How fast one direction may scale (HorizontalPodAutoscaler v2 behavior)."""

    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    """Look back this long and take the safest recommendation (no flapping)."""
    max_percent_per_minute: int | None = Field(default=None, ge=1, le=10000)
    """Change by at most this percentage of the current replicas per minute."""
    max_pods_per_minute: int | None = Field(default=None, ge=1, le=1000)
    """Change by at most this many pods per minute."""


class ScalingBehavior(ApiModel):
    """Stabilisation and rate limits, per direction."""

    scale_up: ScalingRules | None = None
    """Scaling up (default: as fast as the HorizontalPodAutoscaler allows)."""
    scale_down: ScalingRules | None = None
    """Scaling down (default: 300 s stabilisation)."""


class Autoscaling(ApiModel):
    """Autoscaling of every variant, each with a scaler of its own; a candidate's floor follows its share of traffic."""

    __cel__ = (
        Rule(
            "self.maxReplicas >= (has(self.minReplicas) ? self.minReplicas : 1)",
            "maxReplicas must be greater than or equal to minReplicas",
            ".maxReplicas",
            lambda m: m.max_replicas >= m.min_replicas,
        ),
        Rule(
            "!has(self.minReplicas) || self.minReplicas > 0 || (has(self.scaleToZero) && self.scaleToZero)",
            "minReplicas 0 needs scaleToZero: true",
            ".minReplicas",
            lambda m: m.min_replicas > 0 or m.scale_to_zero,
        ),
        Rule(
            "!has(self.engine) || self.engine != 'hpa' || ((!has(self.scaleToZero) || !self.scaleToZero)"
            " && self.metrics.all(m, !has(m.requestsPerSecond) && !has(m.inFlight)))",
            "engine hpa cannot scale on requestsPerSecond or inFlight, nor to zero: use engine keda (or auto)",
            ".engine",
            lambda m: m.engine != "hpa" or not (m.scale_to_zero or any(x.needs_keda for x in m.metrics)),
        ),
        Rule(
            "self.metrics.filter(m, has(m.cpu)).size() <= 1 && self.metrics.filter(m, has(m.memory)).size() <= 1"
            " && self.metrics.filter(m, has(m.requestsPerSecond)).size() <= 1 && self.metrics.filter(m, has(m.inFlight)).size() <= 1",
            "each kind of metric may appear once",
            ".metrics",
            lambda m: all(sum(getattr(x, a) is not None for x in m.metrics) <= 1
                          for a in ("cpu", "memory", "requests_per_second", "in_flight")),
        ),
    )

    engine: Literal["auto", "hpa", "keda"] = "auto"
    """What scales: hpa (HorizontalPodAutoscaler), keda (ScaledObject), or auto: keda when a request metric or scale-to-zero is asked, else hpa."""
    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas of the stable variant (and of an experiment's control); a candidate's floor follows its share of traffic."""
    max_replicas: int = Field(ge=1, le=1000)
    """Most replicas per variant."""
    metrics: list[AutoscalingMetric] = Field(min_length=1, max_length=4)  # one per kind
    """Scaling signals; the largest replica count any of them asks for wins."""
    behavior: ScalingBehavior | None = None
    """Stabilisation windows and rate limits."""
    scale_to_zero: bool = False
    """Let experiment variants that carry nothing (weight 0, no pin) scale to zero (KEDA only); others keep pods."""

    @property
    def chosen_engine(self) -> Literal["hpa", "keda"]:
        if self.engine != "auto":
            return self.engine
        return "keda" if self.scale_to_zero or any(m.needs_keda for m in self.metrics) else "hpa"
