"""ModelDeployment.spec — what users write (and keep in git).

Field descriptions here become the CRD's descriptions (``kubectl explain md.spec``).
Cross-field rules are CEL (``__cel__``) so the API server rejects bad manifests at apply
time; what CEL cannot say is checked by ``headway.planning.validation`` and reported in
status and Events while the running model keeps serving.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from headway.api.base import ApiModel, Rule, exactly_one_of
from headway.api.types import DnsLabel, Duration, LabelKey, LabelValue, Quantity, QualifiedName

# Every list, map and string of the spec is bounded (maxItems, maxProperties, maxLength):
# the API server estimates each CEL rule's worst-case cost from these bounds, times how
# often the rule can repeat inside the lists and maps around it, and refuses the CRD when
# a rule or the sum goes over its budget (tests/unit/test_crd_cost.py checks this). The
# bounds are what users need with room to spare; pydantic enforces the same ones.
DNS_SUBDOMAIN_MAX = 253  # Kubernetes object names (Secrets, ConfigMaps, Gateways), hostnames
DNS_LABEL_MAX = 63  # namespaces, label values, Gateway API kinds and section names

# A Kubernetes object name: DNS subdomain, 253 characters at most.
ObjectName = Annotated[str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)]
# A hostname (a leading "*." wildcard included).
Hostname = Annotated[str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)]

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
    """Scale on CPU utilisation (HorizontalPodAutoscaler v2)."""

    average_utilization: int = Field(ge=1, le=1000)
    """Target average CPU utilisation, percent of the request."""


class RequestsPerSecondMetric(ApiModel):
    """Scale on requests per second per pod, from BentoML's metrics (KEDA Prometheus trigger)."""

    average: float = Field(gt=0)
    """Target requests per second per pod."""


class AutoscalingMetric(ApiModel):
    """One scaling signal: exactly one of cpu and requestsPerSecond."""

    __cel__ = (exactly_one_of("set exactly one of cpu and requestsPerSecond", "cpu", "requestsPerSecond"),)

    cpu: CpuMetric | None = None
    """CPU utilisation target."""
    requests_per_second: RequestsPerSecondMetric | None = None
    """Requests-per-second target."""


class Autoscaling(ApiModel):
    """Autoscaling of every variant; a candidate's bounds follow its share of traffic."""

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
    )

    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas per variant."""
    max_replicas: int = Field(ge=1, le=1000)
    """Most replicas per variant."""
    metrics: list[AutoscalingMetric] = Field(min_length=1, max_length=4)  # one per kind, with room
    """Scaling signals; the largest replica count any of them asks for wins."""
    scale_to_zero: bool = False
    """Let shadow and experiment variants scale to zero when idle (through KEDA)."""


class ShadowStep(ApiModel):
    """Mirror a share of live traffic to the candidate; its responses are discarded."""

    percent: int = Field(default=100, ge=1, le=100)
    """Share of requests mirrored, percent."""
    duration: Duration
    """How long the step lasts at least."""


class CanaryStep(ApiModel):
    """Send a share of live traffic to the candidate."""

    weight: int = Field(ge=0, le=100)
    """Candidate's share of traffic, percent."""
    duration: Duration
    """How long the step lasts at least."""


class PauseStep(ApiModel):
    """Hold the rollout: for a duration, or (without one) until a person promotes it."""

    duration: Duration | None = None
    """How long to pause; without it, wait for a manual promote."""


class RolloutStep(ApiModel):
    """One step: exactly one of shadow, canary and pause."""

    __cel__ = (exactly_one_of("each step sets exactly one of shadow, canary and pause", "shadow", "canary", "pause"),)

    shadow: ShadowStep | None = None
    """Mirror traffic to the candidate."""
    canary: CanaryStep | None = None
    """Send weighted traffic to the candidate."""
    pause: PauseStep | None = None
    """Wait, for a duration or for a person."""


class Rollout(ApiModel):
    """How a new spec.model reaches production."""

    # Real rollouts take 3 to 10 steps (shadow, canaries at 1/5/25/50%, pauses); 32 is plenty.
    steps: list[RolloutStep] = Field(default_factory=list, max_length=32)
    """Steps run in order for every new version; after the last one the candidate is promoted."""
    bake_time: Duration | None = None
    """After promotion keep judging this long; a breach restores the previous version."""


class ParentReference(ApiModel):
    """A Gateway (or other parent) the HTTPRoute attaches to."""

    # Bounds as in Gateway API's own ParentReference.
    name: ObjectName
    """Name of the parent."""
    namespace: str | None = Field(default=None, max_length=DNS_LABEL_MAX)
    """Namespace of the parent; the ModelDeployment's when unset."""
    section_name: str | None = Field(default=None, max_length=DNS_SUBDOMAIN_MAX)
    """A listener of the Gateway."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """A port of the Gateway."""
    group: str | None = Field(default=None, max_length=DNS_SUBDOMAIN_MAX)
    """API group of the parent (gateway.networking.k8s.io when unset)."""
    kind: str | None = Field(default=None, min_length=1, max_length=DNS_LABEL_MAX)
    """Kind of the parent (Gateway when unset)."""


class GatewayApiTraffic(ApiModel):
    """Gateway API: one HTTPRoute with weighted backendRefs and a RequestMirror filter."""

    # HTTPRoute allows 32 parentRefs and 16 hostnames: more could not be rendered anyway.
    parent_refs: list[ParentReference] = Field(min_length=1, max_length=32)
    """Gateways the route attaches to."""
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    """Hostnames the route serves."""
    path_prefix: str = Field(default="/", pattern=r"^/", max_length=1024)  # HTTPRoute's path value limit
    """Path prefix the route matches."""


class IstioTraffic(ApiModel):
    """Istio: one VirtualService with weighted routes and mirroring."""

    # Hostnames per route, as for Gateway API: 16.
    hosts: list[Hostname] = Field(min_length=1, max_length=16)
    """Hosts the VirtualService serves."""
    # "namespace/name": 63 + 1 + 253.
    gateways: list[Annotated[str, Field(min_length=1, max_length=317)]] = Field(default_factory=list, max_length=16)
    """Istio gateways (namespace/name); mesh traffic only when empty."""


class Traffic(ApiModel):
    """Which data plane splits, mirrors and pins traffic."""

    __cel__ = (
        Rule(
            "self.provider != 'gatewayApi' || has(self.gatewayApi)",
            "provider gatewayApi needs traffic.gatewayApi",
            ".gatewayApi",
            lambda m: m.provider != "gatewayApi" or m.gateway_api is not None,
        ),
        Rule("self.provider != 'istio' || has(self.istio)", "provider istio needs traffic.istio", ".istio", lambda m: m.provider != "istio" or m.istio is not None),
    )

    provider: Literal["gatewayApi", "istio", "none"] = "gatewayApi"
    """gatewayApi (HTTPRoute), istio (VirtualService) or none (replica-ratio canary only)."""
    gateway_api: GatewayApiTraffic | None = None
    """Settings of the gatewayApi provider."""
    istio: IstioTraffic | None = None
    """Settings of the istio provider."""


class ErrorRateSlo(ApiModel):
    """Share of requests answered with HTTP 5xx, from bentoml_service_request_total."""

    max: float = Field(ge=0, le=1)
    """Highest acceptable error rate, as a fraction (0.01 = 1%)."""


class LatencySlo(ApiModel):
    """A latency percentile, from bentoml_service_request_duration_seconds."""

    percentile: float = Field(gt=0, lt=100)
    """Percentile, e.g. 99."""
    max: Duration
    """Highest acceptable latency at that percentile, e.g. 250ms."""


class QuerySlo(ApiModel):
    """Any PromQL; {{variant}}, {{namespace}}, {{name}} and {{interval}} are filled in."""

    __cel__ = (Rule("has(self.min) || has(self.max)", "a query SLO needs min, max or both", None, lambda m: m.min is not None or m.max is not None),)

    name: DnsLabel
    """Name of the SLO (shown in status and usable by experiment.decide)."""
    # Hand-written PromQL with sum/rate/histogram_quantile and a few selectors stays well
    # under 1 KiB; 4 KiB leaves room for long label matchers.
    promql: str = Field(min_length=1, max_length=4096)
    """The query; it must return one value."""
    min: float | None = None
    """Lowest acceptable value."""
    max: float | None = None
    """Highest acceptable value."""


class Slo(ApiModel):
    """One service-level objective: exactly one of errorRate, latency and query."""

    __cel__ = (exactly_one_of("each SLO sets exactly one of errorRate, latency and query", "errorRate", "latency", "query"),)

    error_rate: ErrorRateSlo | None = None
    """Error-rate objective."""
    latency: LatencySlo | None = None
    """Latency objective."""
    query: QuerySlo | None = None
    """Custom PromQL objective."""


class PrometheusSource(ApiModel):
    """Where the metrics are."""

    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)  # the common URL limit
    """Prometheus base URL; the operator's --prometheus-url when unset."""


class SeriesLabels(ApiModel):
    """Names of the Prometheus labels that select one variant's series."""

    # Prometheus label names have no limit of their own; real ones are short identifiers.
    namespace: str = Field(default="namespace", min_length=1, max_length=128)
    """Label holding the Kubernetes namespace."""
    model_deployment: str = Field(default="modeldeployment", min_length=1, max_length=128)
    """Label holding the ModelDeployment's name."""
    variant: str = Field(default="variant", min_length=1, max_length=128)
    """Label holding the variant (stable, candidate, or an experiment variant's name)."""


class Analysis(ApiModel):
    """How new versions are judged against SLOs measured in Prometheus."""

    interval: Duration = "30s"
    """How often to measure."""
    prometheus: PrometheusSource | None = None
    """Metric source."""
    # An error rate, a latency or two and a few business queries: 16 is generous (each one
    # is a Prometheus query per variant per interval).
    slos: list[Slo] = Field(default_factory=list, max_length=16)
    """Objectives every new version must meet."""
    min_requests: int = Field(default=200, ge=1)
    """Below this many requests in a verdict's window the verdict is inconclusive, never a pass."""
    failure_limit: int = Field(default=2, ge=1, le=100)
    """Consecutive failed verdicts that roll the candidate back."""
    inconclusive_limit: int = Field(default=10, ge=1, le=1000)
    """Consecutive inconclusive verdicts before onInconclusive applies."""
    on_inconclusive: Literal["hold", "rollback"] = "hold"
    """What too many inconclusive verdicts do: hold the rollout (phase Degraded) or roll back."""
    series_labels: SeriesLabels | None = None
    """Label names of the series that identify a variant (defaults: namespace, modeldeployment, variant)."""


class ExperimentVariant(ApiModel):
    """One arm of an A/B/n experiment."""

    name: DnsLabel
    """Variant name (becomes the headway.dev/variant label)."""
    weight: int = Field(ge=0, le=100)
    """Share of traffic, percent."""
    model: ModelSpec | None = None
    """The version this arm serves; the one arm without it serves spec.model."""


class HeaderMatch(ApiModel):
    """An exact header or cookie match."""

    # Header names are short tokens; values as long as a large cookie (4 KiB, browsers' limit).
    name: str = Field(min_length=1, max_length=256)
    """Header or cookie name."""
    value: str = Field(max_length=4096)
    """Exact value."""


class MatchRule(ApiModel):
    """Pin requests to a variant before weights apply: exactly one of header and cookie."""

    __cel__ = (exactly_one_of("each match sets exactly one of header and cookie", "header", "cookie"),)

    header: HeaderMatch | None = None
    """Match a request header."""
    cookie: HeaderMatch | None = None
    """Match a cookie."""
    variant: DnsLabel
    """Variant that receives matching requests."""


class Decide(ApiModel):
    """How the experiment's winner is decided."""

    metric: str = Field(min_length=1, max_length=DNS_LABEL_MAX)
    """Name of a query SLO, or errorRate / latency."""
    significance: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the test between variants."""
    min_samples: int = Field(default=1000, ge=1)
    """Requests each variant needs before a decision."""
    promote_winner: bool = False
    """Promote the winner to stable once decided (otherwise only record it)."""


class Experiment(ApiModel):
    """A/B/n: long-running variants with fixed weights, instead of a rollout."""

    __cel__ = (
        Rule(
            "self.variants.map(v, v.weight).sum() == 100",
            "experiment variant weights must sum to 100",
            ".variants",
            lambda m: sum(v.weight for v in m.variants) == 100,
        ),
        Rule(
            "self.variants.filter(v, !has(v.model)).size() == 1",
            "exactly one variant omits model: it serves spec.model",
            ".variants",
            lambda m: sum(v.model is None for v in m.variants) == 1,
        ),
        Rule(
            "!has(self.match) || self.match.all(m, self.variants.exists(v, v.name == m.variant))",
            "every match names a variant of the experiment",
            ".match",
            lambda m: all(any(v.name == rule.variant for v in m.variants) for rule in m.match),
        ),
    )

    # A/B/n with n <= 8: each arm is a Deployment and needs its share of traffic to decide.
    variants: list[ExperimentVariant] = Field(
        min_length=2, max_length=8, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    )
    """The arms; names are unique and weights sum to 100."""
    match: list[MatchRule] = Field(default_factory=list, max_length=16)  # HTTPRoute allows 16 rules
    """Header/cookie rules that pin requests to a variant before weights apply."""
    decide: Decide | None = None
    """Decide a winner with a significance test between variants."""


class Cost(ApiModel):
    """Cost attribution and budget."""

    __cel__ = (
        Rule(
            "!has(self.labels) || self.labels.all(k, !k.startsWith('app.kubernetes.io/') && !k.startsWith('headway.dev/'))",
            "cost labels may not use the app.kubernetes.io/ or headway.dev/ prefixes",
            ".labels",
            lambda m: not any(k.startswith(("app.kubernetes.io/", "headway.dev/")) for k in m.labels),
        ),
    )

    # team, cost-center, project, environment...: a handful. Keys and values are Kubernetes
    # label keys (317) and values (63): they are put on every child object.
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels put on every child object and pod (team, cost-center, project, ...)."""
    monthly_budget: float | None = Field(default=None, ge=0)
    """Monthly budget in the currency of the operator's price table."""


class ModelDeploymentSpec(ApiModel):
    """The desired state of a model in production."""

    __cel__ = (
        Rule(
            "!has(self.experiment) || !has(self.rollout) || !has(self.rollout.steps) || size(self.rollout.steps) == 0",
            "experiment and rollout.steps cannot be combined: an experiment replaces the rollout",
            ".experiment",
            lambda m: m.experiment is None or m.rollout is None or not m.rollout.steps,
        ),
        Rule(
            "!has(self.autoscaling) || !has(self.replicas)",
            "set replicas or autoscaling, not both",
            ".replicas",
            lambda m: m.autoscaling is None or m.replicas is None,
        ),
    )

    model: ModelSpec
    """The version that should be in production; changing it starts a rollout."""
    resources: Resources | None = None
    """CPU, memory and GPUs of every model pod."""
    replicas: int | None = Field(default=None, ge=0, le=1000)
    """Fixed replica count of the stable variant (1 when neither this nor autoscaling is set)."""
    autoscaling: Autoscaling | None = None
    """Autoscaling instead of a fixed replica count."""
    rollout: Rollout | None = None
    """Steps a new version goes through."""
    traffic: Traffic | None = None
    """Traffic provider; without it there is no route object (in-cluster Service only)."""
    analysis: Analysis | None = None
    """SLOs new versions are judged against."""
    experiment: Experiment | None = None
    """A/B/n experiment."""
    cost: Cost | None = None
    """Cost labels and budget."""
    paused: bool = False
    """Freeze the rollout where it is (traffic stays as it is)."""
