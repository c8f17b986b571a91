"""What the CRD schema cannot catch: checks the operator runs on every spec it reads.

Each problem names the field (``spec.resources.requests.cpu``) so the condition, the
Event and ``status.problems`` point the user at the line to fix. A spec with problems is
never applied: the children keep running as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from headway.api.base import ApiModel
from headway.api.spec import Autoscaling, ModelDeploymentSpec, ModelSpec
from headway.api.types import check_label_key, check_label_value, parse_duration, parse_quantity
from headway.planning.capabilities import DEFAULT_PROVIDER, PinKind, capabilities_of, providers_that
from headway.planning.naming import MAX_NAME_LENGTH, bento_name_version


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


# Spec fields this operator version reads but does not act on yet. Each one is reported
# (condition SpecSupported=False and an Event) instead of being silently ignored.
NOT_YET_ACTED_ON: tuple[tuple[str, str], ...] = (
)
RESERVED_VARIANTS = ("stable", "candidate", "previous")

RESERVED_ENV = {"BENTOML_HOME", "BENTOML_DO_NOT_TRACK", "BENTOML_PORT", "BENTOML_HOST", "PROMETHEUS_MULTIPROC_DIR"}
# XDG_CACHE_HOME and HF_HOME have defaults under /tmp but users may point them elsewhere.

# distribution/reference grammar (the reference implementation Kubernetes and Docker use).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
# A query's range selector over {{interval}} ("[{{interval}}]", or a subquery "[{{interval}}:15s]").
_INTERVAL_RANGE = re.compile(r"\[\s*\{\{interval\}\}\s*[\]:]")
# The scrape intervals of common setups (Prometheus' own default 1m aside): 15 s to 30 s. A range
# must hold at least MIN_RANGE_SCRAPES scrapes at the slower of them to be more than noise.
COMMON_SCRAPE_SECONDS = (15, 30)
MIN_RANGE_SCRAPES = 4
_RESOURCE_NAME = re.compile(r"^(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGTPE]i?|[a-z0-9.-]+/[-a-zA-Z0-9_.]+)$")


def check_image(image: str) -> str | None:
    """Why an image reference is invalid, or None when it is a valid reference."""
    match = IMAGE_REFERENCE.match(image)
    if not match:
        hint = " (repository names are lowercase)" if image != image.lower() and IMAGE_REFERENCE.match(image.lower()) else ""
        return f"{image!r} is not a valid image reference{hint}"
    if len(match.group("name")) > 255:
        return "the repository name is longer than 255 characters"
    return None


def _loc(loc: tuple[Any, ...]) -> str:
    out = "spec"
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself" (after the key)
            continue
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_spec(raw: dict[str, Any] | None) -> tuple[ModelDeploymentSpec | None, list[Problem]]:
    """Parse a spec dict; schema-level problems come back named by field, never raised."""
    try:
        return ModelDeploymentSpec.model_validate(raw or {}), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            message = err["msg"]
            if err["type"] == "missing":
                message = "required"
            problems.append(Problem(_loc(tuple(err["loc"])), message))
        return None, problems


def _check_model(model: ModelSpec, path: str) -> list[Problem]:
    problems = []
    if (why := check_image(model.image)) is not None:
        problems.append(Problem(f"{path}.image", why))
    name, version = bento_name_version(model.bento)
    if len(name) > 63 or len(version) > 63:
        problems.append(Problem(f"{path}.bento", "the bento name and version must each be at most 63 characters (they become label values)"))
    for i, env in enumerate(model.env):
        if env.name in RESERVED_ENV:
            problems.append(Problem(f"{path}.env[{i}].name", f"{env.name} is set by Headway and cannot be overridden"))
    for key, value in model.node_selector.items():
        problems += _label_problems(f"{path}.nodeSelector", key, value)
    return problems


def _label_problems(path: str, key: str, value: str) -> list[Problem]:
    problems = []
    try:
        check_label_key(key)
    except ValueError as exc:
        problems.append(Problem(f"{path}[{key}]", str(exc)))
    try:
        check_label_value(value)
    except ValueError as exc:
        problems.append(Problem(f"{path}[{key}]", str(exc)))
    return problems


def _check_resources(spec: ModelDeploymentSpec) -> list[Problem]:
    if spec.resources is None:
        return []
    problems = []
    parsed: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        for key, raw in getattr(spec.resources, section).items():
            path = f"spec.resources.{section}.{key}"
            if not _RESOURCE_NAME.match(key):
                problems.append(Problem(path, f"{key!r} is not a resource name (cpu, memory, ephemeral-storage, or domain/name)"))
                continue
            try:
                quantity = parse_quantity(raw)
            except ValueError as exc:
                problems.append(Problem(path, str(exc)))
                continue
            if quantity < 0:
                problems.append(Problem(path, "must not be negative"))
                continue
            parsed[section][key] = quantity
    for key, request in parsed["requests"].items():
        limit = parsed["limits"].get(key)
        if limit is not None and request > limit:
            problems.append(Problem(f"spec.resources.requests.{key}", f"request {spec.resources.requests[key]} exceeds the limit {spec.resources.limits[key]}"))
    if spec.resources.gpus and ("nvidia.com/gpu" in spec.resources.requests or "nvidia.com/gpu" in spec.resources.limits):
        problems.append(Problem("spec.resources.gpus", "set GPUs with gpus or with nvidia.com/gpu, not both"))
    return problems


def rule_problems(obj: ApiModel, path: str = "spec") -> list[Problem]:
    """What the CRD's CEL rules and list-map keys would refuse, found in the parsed spec.

    The API server refuses such a spec at apply time, but the operator may read one it never
    validated (stored before a rule existed, written by a test or an emulator), and must not
    act on it: each model's ``__cel__`` rules say it again in Python (``Rule.holds``), and
    lists declared ``x-kubernetes-list-type: map`` must not repeat a key. Each problem names
    the field the API server would name.
    """
    problems = [Problem(path + (rule.field_path or ""), rule.message) for rule in type(obj).__cel__ if not rule.holds(obj)]
    for attribute, info in type(obj).model_fields.items():
        value = getattr(obj, attribute)
        child = f"{path}.{info.alias or attribute}"
        if isinstance(value, ApiModel):
            problems += rule_problems(value, child)
        elif isinstance(value, (list, tuple)):
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            map_keys = extra.get("x-kubernetes-list-map-keys") if extra.get("x-kubernetes-list-type") == "map" else None
            keys = [str(k) for k in map_keys] if isinstance(map_keys, list) else None
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if keys is not None and isinstance(item, ApiModel):
                    key = tuple(item.dump().get(k) for k in keys)
                    if key in seen:
                        named = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key))
                        problems.append(Problem(f"{child}[{i}]", f"duplicate entry: {named} appears more than once"))
                    seen.add(key)
                if isinstance(item, ApiModel):
                    problems += rule_problems(item, f"{child}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, ApiModel):
                    problems += rule_problems(item, f"{child}[{key}]")
    return problems


def check_spec(name: str, spec: ModelDeploymentSpec) -> list[Problem]:
    """Semantic problems of a spec that parsed: what the CRD's rules say, and what the schema cannot."""
    problems = rule_problems(spec)
    if len(name) > MAX_NAME_LENGTH:
        problems.append(Problem("metadata.name", f"at most {MAX_NAME_LENGTH} characters: Services named <name>-<variant> must fit in 63"))
    problems += _check_model(spec.model, "spec.model")
    problems += _check_resources(spec)
    if spec.cost:
        for key, value in spec.cost.labels.items():
            problems += _label_problems("spec.cost.labels", key, value)
    problems += _provider_problems(spec)
    problems += _query_problems(spec)
    problems += _monitoring_problems(spec)
    problems += _governance_problems(spec)
    if spec.experiment:
        for i, variant in enumerate(spec.experiment.variants):
            if variant.model is not None and variant.name in RESERVED_VARIANTS:
                problems.append(Problem(f"spec.experiment.variants[{i}].name", f"{variant.name!r} is reserved for Headway's own variants; choose another name"))
            if variant.model is not None:
                problems += _check_model(variant.model, f"spec.experiment.variants[{i}].model")
            if len(name) + 1 + len(variant.name) > 63:
                problems.append(Problem(f"spec.experiment.variants[{i}].name", "<metadata.name>-<variant name> must fit in 63 characters"))
    return problems


def _governance_problems(spec: ModelDeploymentSpec) -> list[Problem]:
    """requiredApprovals is a map list keyed by role and stage: the API server refuses a key twice
    ("Duplicate value"), and so does the operator, at the same index."""
    listed = spec.governance.required_approvals if spec.governance is not None else None
    seen: set[tuple[str, str]] = set()
    problems = []
    for i, a in enumerate(listed or []):
        if (a.role, a.stage) in seen:
            problems.append(Problem(f"spec.governance.requiredApprovals[{i}]",
                                    f"Duplicate value: role {a.role} at {a.stage} is listed twice (one entry per role and stage)"))
        seen.add((a.role, a.stage))
    return problems


def _monitoring_problems(spec: ModelDeploymentSpec) -> list[Problem]:
    """spec.monitoring's window must hold at least one interval (each check tests the last window)."""
    mon = spec.monitoring
    if mon is None:
        return []
    problems = []
    if parse_duration(mon.window) < parse_duration(mon.interval):
        problems.append(Problem("spec.monitoring.window", f"{mon.window} is shorter than spec.monitoring.interval ({mon.interval}): "
                                                          "each check tests the last window, so it must hold at least one interval"))
    seconds = parse_duration(mon.interval).total_seconds()
    if seconds < 1 or seconds != int(seconds):
        problems.append(Problem("spec.monitoring.interval", f"{mon.interval}: whole seconds, at least 1s (each check queries Prometheus)"))
    if mon.compare is not None and not mon.prediction:
        problems.append(Problem("spec.monitoring.compare", "compares the predictions, but spec.monitoring.prediction is false"))
    return problems


def _query_problems(spec: ModelDeploymentSpec) -> list[Problem]:
    """A value query whose range is ``[{{interval}}]`` with an interval too short to hold enough scrapes.

    Such a query is a fresh handful of samples at every look (at 30 s, one or two scrapes: a
    rate over them is mostly noise) and the README's old example was one. The rule: the range
    must hold at least MIN_RANGE_SCRAPES scrapes at a 30 s scrape interval, i.e. analysis.interval
    >= 2m. Ratios cannot use {{interval}} at all (a CRD rule): they count over [{{window}}].
    """
    if spec.analysis is None:
        return []
    seconds = parse_duration(spec.analysis.interval).total_seconds()
    fast, slow = COMMON_SCRAPE_SECONDS
    needed = MIN_RANGE_SCRAPES * slow
    if seconds >= needed:
        return []
    problems = []
    for i, slo in enumerate(spec.analysis.slos):
        if slo.query is None or slo.query.promql is None or not _INTERVAL_RANGE.search(slo.query.promql):
            continue
        problems.append(Problem(
            f"spec.analysis.slos[{i}].query.promql",
            f"a [{{{{interval}}}}] range is only {spec.analysis.interval} of data: at the {fast}-{slow} s scrape intervals "
            f"of common setups that is {int(seconds // slow)}-{int(seconds // fast)} scrapes per series, and a value needs "
            f"at least {MIN_RANGE_SCRAPES} at {slow} s scrapes to be more than noise. Count over the analysis window with [{{{{window}}}}] "
            f"(best as a numerator/denominator ratio, which is tested), or set spec.analysis.interval to at least "
            f"{needed // 60}m",
        ))
    return problems


def _provider_problems(spec: ModelDeploymentSpec) -> list[Problem]:
    """Shadow steps and header/cookie matches the provider cannot express (by its capabilities)."""
    caps = capabilities_of(spec.traffic)
    with_provider = f"with provider {caps.provider}" + (" (or no spec.traffic)" if caps.provider == DEFAULT_PROVIDER else "")
    problems = []
    if not caps.mirror and spec.rollout:
        can = providers_that(lambda c: c.mirror)
        for i, step in enumerate(spec.rollout.steps):
            if step.shadow is not None:
                problems.append(Problem(f"spec.rollout.steps[{i}].shadow", f"shadow needs a traffic provider that can mirror ({can}); {with_provider} it cannot"))
        baseline = spec.rollout.bake_baseline
        if baseline is not None and baseline.mirror is not None:
            problems.append(Problem("spec.rollout.bakeBaseline.mirror", f"a mirrored baseline needs a traffic provider that can mirror "
                                    f"({can}); {with_provider} it cannot: use bakeBaseline.weight (the replica ratio) or none"))
    for i, match in enumerate(spec.experiment.match if spec.experiment else []):
        kind: PinKind = "header" if match.header is not None else "cookie"
        if kind not in caps.pins:
            what = f"{kind} pinning" if caps.pins else "header and cookie pinning"
            can = providers_that(lambda c: kind in c.pins)
            problems.append(Problem(f"spec.experiment.match[{i}]", f"{what} needs a traffic provider ({can}); {with_provider} it cannot"))
    return problems


def ignored_fields(raw_spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, why) for every field set in the spec that this operator does not act on yet."""
    found = []
    for path, why in NOT_YET_ACTED_ON:
        node: Any = raw_spec
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, False, {}, []):
            found.append((f"spec.{path}", why))
    return found


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def metrics_url_problems(spec: ModelDeploymentSpec, allowed: frozenset[str] | None) -> list[Problem]:
    """A Prometheus URL the operator may not call (None: no allow-list, e.g. in pure tests).

    ``spec.analysis.prometheus.url`` is written by whoever may write a ModelDeployment: left
    open, it would make the operator send requests to any address it can reach (server-side
    request forgery). The operator calls only its own --prometheus-url and the URLs listed
    with --allowed-prometheus-url.
    """
    if allowed is None or spec.analysis is None or spec.analysis.prometheus is None or not spec.analysis.prometheus.url:
        return []
    url = normalize_url(spec.analysis.prometheus.url)
    if url in allowed:
        return []
    listed = ", ".join(sorted(allowed)) or "none"
    return [Problem("spec.analysis.prometheus.url",
                    f"{url} is not a Prometheus this operator may call (allowed: {listed}); omit it to use the operator's "
                    "default, or ask the operator's admin to add it with --allowed-prometheus-url")]


def prometheus_url(spec: ModelDeploymentSpec, default_url: str | None) -> str | None:
    """The Prometheus the analysis and KEDA's Prometheus triggers ask: the spec's, else the operator's."""
    own = spec.analysis.prometheus.url if spec.analysis is not None and spec.analysis.prometheus is not None else None
    return normalize_url(own) if own else (normalize_url(default_url) if default_url else None)


def scaler_metric_problems(spec: ModelDeploymentSpec, default_url: str | None, allowed: frozenset[str] | None) -> list[Problem]:
    """A request metric (requestsPerSecond, inFlight) scales on a Prometheus query: it needs the
    Prometheus the analysis would use, and one the operator may call (like ``metrics_url_problems``;
    ``allowed`` None: unchecked, e.g. in pure tests; the operator always passes its allow-list)."""
    if spec.autoscaling is None:
        return []
    problems = _utilisation_problems(spec)
    if allowed is None:
        return problems
    url = prometheus_url(spec, default_url)
    own = spec.analysis is not None and spec.analysis.prometheus is not None and bool(spec.analysis.prometheus.url)
    for i, metric in enumerate(spec.autoscaling.metrics):
        if not metric.needs_keda:
            continue
        kind = "requestsPerSecond" if metric.requests_per_second is not None else "inFlight"
        if url is None:
            why = "no Prometheus is configured: set spec.analysis.prometheus.url or the operator's --prometheus-url"
        elif own and url not in allowed:  # the operator's own --prometheus-url is trusted
            why = (f"{url} is not a Prometheus this operator may call (allowed: {', '.join(sorted(allowed)) or 'none'}); "
                   "omit spec.analysis.prometheus.url to use the operator's default, or ask the operator's admin to add it "
                   "with --allowed-prometheus-url")
        else:
            continue
        problems.append(Problem(f"spec.autoscaling.metrics[{i}]", f"{kind} scales on a Prometheus query, but {why}"))
    return problems


def _utilisation_problems(spec: ModelDeploymentSpec) -> list[Problem]:
    """A cpu or memory utilisation target is a percentage of the pods' request (or limit): without
    one there is nothing to scale on (an HPA reports FailedGetResourceMetric, KEDA's webhook refuses it)."""
    assert spec.autoscaling is not None
    return [Problem(f"spec.autoscaling.metrics[{i}]", f"a {name} utilisation target is a percentage of the pods' {name} "
                    f"request: set spec.resources.requests.{name}")
            for i, name in unrequested_utilisation(spec.autoscaling, spec)]


def unrequested_utilisation(scaling: Autoscaling, spec: ModelDeploymentSpec) -> list[tuple[int, str]]:
    """(metric index, resource) of every cpu or memory utilisation target of ``scaling`` whose resource
    the spec neither requests nor limits (a container that sets only a limit gets a request equal to
    it: the API server's default)."""
    resources = spec.resources
    requested = set(resources.requests) | set(resources.limits) if resources is not None else set()
    found = []
    for i, metric in enumerate(scaling.metrics):
        name = "cpu" if metric.cpu is not None else "memory" if metric.memory is not None else None
        if name is not None and name not in requested:
            found.append((i, name))
    return found
