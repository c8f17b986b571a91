"""What the schema cannot catch is caught by the operator, naming the field."""

from __future__ import annotations

import pytest

from headway.planning.validation import check_image, check_spec, ignored_fields, metrics_url_problems, parse_spec

MODEL = {"bento": "fraud_scorer:3.2.0", "image": "registry.example.com/fraud-scorer:3.2.0"}


@pytest.mark.parametrize("image", [
    "nginx", "library/nginx:1.27", "registry.example.com:5000/team/fraud-scorer:3.2.0",
    "ghcr.io/org/model@sha256:" + "0" * 64, "localhost/model:v1_2-rc.3", "[::1]:5000/model:1",
])
def test_valid_image_references(image: str) -> None:
    assert check_image(image) is None


@pytest.mark.parametrize("image, hint", [
    ("Registry.Example.com/Fraud:1", "lowercase"), ("fraud scorer:1", "not a valid image reference"),
    ("fraud:", "not a valid image reference"), ("fraud@sha256:abc", "not a valid image reference"),
    ("-fraud:1", "not a valid image reference"), ("fraud:1:2", "not a valid image reference"),
])
def test_invalid_image_references(image: str, hint: str) -> None:
    assert hint in (check_image(image) or "")


def problems_of(spec: dict, name: str = "fraud-scorer") -> dict[str, str]:
    parsed, problems = parse_spec(spec)
    if parsed is not None:
        problems = check_spec(name, parsed)
    return {p.field: p.message for p in problems}


@pytest.mark.parametrize("spec, field, words", [
    ({"model": {**MODEL, "image": "Fraud:1"}}, "spec.model.image", "not a valid image reference"),
    ({"model": MODEL, "resources": {"requests": {"cpu": "one"}}}, "spec.resources.requests.cpu", "not a Kubernetes quantity"),
    ({"model": MODEL, "resources": {"limits": {"memory": "2GB"}}}, "spec.resources.limits.memory", "not a Kubernetes quantity"),
    ({"model": MODEL, "resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}}, "spec.resources.requests.memory", "exceeds the limit"),
    ({"model": MODEL, "resources": {"requests": {"cpu": "-1"}}}, "spec.resources.requests.cpu", "negative"),
    ({"model": MODEL, "resources": {"requests": {"CPU": "1"}}}, "spec.resources.requests.CPU", "not a resource name"),
    ({"model": MODEL, "resources": {"gpus": 1, "limits": {"nvidia.com/gpu": 1}}}, "spec.resources.gpus", "not both"),
    ({"model": {**MODEL, "env": [{"name": "BENTOML_HOME", "value": "/x"}]}}, "spec.model.env[0].name", "set by Headway"),
    ({"model": MODEL, "cost": {"labels": {"team": "risk & fraud"}}}, "spec.cost.labels[team]", "not a valid label value"),
    ({"model": MODEL, "cost": {"labels": {"-team": "risk"}}}, "spec.cost.labels[-team]", "not a valid label key"),
    ({"model": {**MODEL, "bento": "x:" + "1" * 70}}, "spec.model.bento", "63"),
    ({}, "spec.model", "required"),
    ({"model": {**MODEL, "port": "http"}}, "spec.model.port", "integer"),
    ({"model": MODEL, "rollout": {"steps": [{"canary": {"weight": 5, "duration": "5 minutes"}}]}}, "spec.rollout.steps[0].canary.duration", "not a duration"),
])
def test_problem_names_the_field(spec: dict, field: str, words: str) -> None:
    problems = problems_of(spec)
    assert field in problems, problems
    assert words in problems[field]


def test_long_names_are_refused_because_services_must_fit() -> None:
    assert "metadata.name" in problems_of({"model": MODEL}, name="a" * 60)
    assert problems_of({"model": MODEL}, name="a" * 53) == {}


def test_valid_specs_have_no_problems() -> None:
    assert problems_of({"model": MODEL, "resources": {"requests": {"cpu": "500m", "memory": 2147483648}, "limits": {"cpu": 1, "memory": "2Gi"}}}) == {}


def test_fields_not_acted_on_are_reported_not_ignored() -> None:
    acted_on = {"model": MODEL, "traffic": {"provider": "none"}, "paused": True, "cost": {"labels": {"a": "b"}},
                "rollout": {"steps": [{"pause": {}}]}}
    assert ignored_fields(acted_on) == []
    assert ignored_fields({**acted_on, "autoscaling": {"maxReplicas": 3, "metrics": [{"cpu": {"averageUtilization": 70}}]}}) == []


@pytest.mark.parametrize("spec, field", [
    ({"model": MODEL, "rollout": {"steps": [{"canary": {"weight": 5, "duration": "1m"}}, {"shadow": {"duration": "1m"}}]}}, "spec.rollout.steps[1].shadow"),
    ({"model": MODEL, "traffic": {"provider": "none"}, "experiment": {"variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50, "model": MODEL}],
                                                                     "match": [{"header": {"name": "x", "value": "y"}, "variant": "b"}]}}, "spec.experiment.match[0]"),
    ({"model": MODEL, "traffic": {"provider": "istio", "istio": {"hosts": ["a"]}},
      "experiment": {"variants": [{"name": "a", "weight": 50}, {"name": "candidate", "weight": 50, "model": MODEL}]}}, "spec.experiment.variants[1].name"),
])
def test_combinations_a_provider_cannot_do_are_refused(spec: dict, field: str) -> None:
    assert field in problems_of(spec)


SHADOW = {"rollout": {"steps": [{"shadow": {"percent": 10, "duration": "1m"}}]}}
PINNED = {"experiment": {"variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50, "model": MODEL}],
                         "match": [{"header": {"name": "x", "value": "y"}, "variant": "b"}, {"cookie": {"name": "c", "value": "d"}, "variant": "b"}]}}
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "gw"}]}}
ISTIO = {"provider": "istio", "istio": {"hosts": ["a"]}}


def test_provider_limits_come_from_the_capability_table() -> None:
    """The messages name the providers that can, as the table says; the words are unchanged."""
    assert problems_of({"model": MODEL, **SHADOW}) == {
        "spec.rollout.steps[0].shadow":
            "shadow needs a traffic provider that can mirror (gatewayApi or istio); with provider none (or no spec.traffic) it cannot",
    }
    pinning = "header and cookie pinning needs a traffic provider (gatewayApi or istio); with provider none (or no spec.traffic) it cannot"
    assert problems_of({"model": MODEL, "traffic": {"provider": "none"}, **PINNED}) == {
        "spec.experiment.match[0]": pinning, "spec.experiment.match[1]": pinning,
    }
    for traffic in (GATEWAY, ISTIO):
        assert problems_of({"model": MODEL, "traffic": traffic, **SHADOW}) == {}
        assert problems_of({"model": MODEL, "traffic": traffic, **PINNED}) == {}


ANALYSIS_AT = lambda url: {"model": MODEL, "analysis": {"prometheus": {"url": url}, "slos": [{"errorRate": {"max": 0.01}}]}}  # noqa: E731
ALLOWED = frozenset({"http://prometheus.monitoring:9090", "http://thanos.monitoring:9090"})


@pytest.mark.parametrize("url", ["http://prometheus.monitoring:9090", "http://thanos.monitoring:9090/"])
def test_an_allowed_prometheus_url_passes(url: str) -> None:
    spec, problems = parse_spec(ANALYSIS_AT(url))
    assert spec is not None and not problems
    assert metrics_url_problems(spec, ALLOWED) == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://kubernetes.default.svc", "http://prometheus.monitoring:9091"])
def test_any_other_prometheus_url_is_refused_naming_the_field(url: str) -> None:
    spec, _ = parse_spec(ANALYSIS_AT(url))
    assert spec is not None
    [problem] = metrics_url_problems(spec, ALLOWED)
    assert problem.field == "spec.analysis.prometheus.url" and "not a Prometheus this operator may call" in problem.message
    assert "--allowed-prometheus-url" in problem.message


def test_the_planner_refuses_a_spec_naming_a_url_it_may_not_call() -> None:
    from headway.planning.naming import Owner
    from headway.planning.observe import parse_status
    from headway.planning.plan import Observation, plan
    from tests.unit.planning.rollout_cases import T0

    observed = Observation(raw_spec=ANALYSIS_AT("http://10.0.0.1:80"), generation=1, annotations={}, previous=parse_status(None),
                        live={}, allowed_metrics_urls=ALLOWED)
    result = plan(Owner("fraud", "ml", "uid"), observed, T0)
    assert result.workloads is None and result.status.phase == "Failed"
    assert [p.field for p in result.status.problems] == ["spec.analysis.prometheus.url"]
