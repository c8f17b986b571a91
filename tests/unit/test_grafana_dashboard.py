"""The Grafana dashboard the chart ships (charts/headway/dashboards/headway.json).

- its shape: a dashboard Grafana loads (unique ids, every panel with a datasource and queries,
  panels that do not overlap, the datasource / namespace / modeldeployment variables);
- every PromQL expression (panel queries, variable queries, annotation queries, legends) names only
  metrics and labels that really exist: the operator's own (walked from prometheus_client's REGISTRY after
  importing headway.telemetry), the model-side recorder's (headway.monitoring.Recorder on a
  private registry), BentoML's (a fixed list, checked against a real BentoServer's /metrics in
  a realparts test), and the target labels Headway's PodMonitor gives model pods;
- the expressions parse (promtool check rules, when promtool is installed);
- the panels the operator's numbers need are drawn as a reader needs them: each SLO's value with its
  bound (dashed), the evidence towards a Fail against its boundary at 1, the work queue and the API
  server's latency, and one ModelDeployment's rollbacks (a panel and an annotation on every panel);
- the chart ships it in a ConfigMap for Grafana's sidecar only when grafana.dashboard.enabled.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes import client
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics import MetricWrapperBase

import headway.telemetry as telemetry
from headway.api.profile import BinnedFeature, ReferenceProfile
from headway.api.spec import ModelDeploymentSpec
from headway.monitoring import Recorder
from headway.planning.naming import Owner
from headway.rendering.monitoring import build_podmonitor
from tests.support.helm import HelmValuesError, lint, template

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "headway"
DASHBOARD_FILE = CHART / "dashboards" / "headway.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
MIN_SCHEMA_VERSION = 39  # Grafana 11 and later

# BentoML's (1.4) model-server metrics and their own labels, as a real server exposes them
# (tests/realparts/test_dataplane.py; checked below by test_bentoml_list_matches_a_real_server).
BENTOML: dict[str, tuple[str, set[str]]] = {
    "bentoml_service_request_total": ("counter", {"endpoint", "http_response_code", "service_name", "service_version", "runner_name"}),
    "bentoml_service_request_duration_seconds": ("histogram", {"endpoint", "http_response_code", "service_name", "service_version",
                                                              "runner_name"}),
    "bentoml_service_request_in_progress": ("gauge", {"endpoint", "service_name", "service_version", "runner_name"}),
}
# Prometheus adds these to every scraped series itself.
SCRAPE_LABELS = {"job", "instance"}

# -- the vocabulary: metric (sample) name -> its label names -----------------------------------------


def _histogram_samples(name: str, labels: set[str]) -> dict[str, set[str]]:
    return {f"{name}_bucket": labels | {"le"}, f"{name}_sum": set(labels), f"{name}_count": set(labels)}


def _samples(families: Iterable[Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for family in families:
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _shadow_samples(metric: MetricWrapperBase) -> dict[str, set[str]]:
    """The samples a Counter/Gauge/Histogram/Summary of the operator exposes once it has a child:
    the same metric re-made on a private registry with one child (the global one is left alone)."""
    registry = CollectorRegistry()
    labelnames: tuple[str, ...] = tuple(metric._labelnames)
    kind = type(metric)
    shadow = kind(metric._name, metric._documentation, labelnames, registry=registry)
    child: Any = shadow.labels(*["x"] * len(labelnames)) if labelnames else shadow
    if isinstance(shadow, Counter):
        child.inc()
    elif isinstance(shadow, Gauge):
        child.set(1)
    elif isinstance(shadow, (Histogram, Summary)):
        child.observe(1)
    else:  # pragma: no cover - an Info or Enum would need its own sample
        raise AssertionError(f"no sample for {kind.__name__} {metric._name}")
    return _samples(registry.collect())


def _sampled_collector(collector: Any) -> Any:
    """A fresh instance of the operator's custom collectors, given data so that they yield samples."""
    if isinstance(collector, telemetry.CostCollector):
        cost = telemetry.CostCollector()
        cost.set("ns", "md", {"stable": 1.0, "candidate": 0.5}, {"team.example.com/cost-center": "ml"})
        return cost
    if isinstance(collector, telemetry.MonitoringCollector):
        monitoring = telemetry.MonitoringCollector()
        feature = SimpleNamespace(feature="amount", result="Drifted", psi=0.3, adjusted_p_value=0.01)
        prediction = SimpleNamespace(revision="abc123", difference=0.1, difference_upper=0.2, agreement=0.97)
        monitoring.set("ns", "md", SimpleNamespace(features=[feature], prediction=prediction))
        return monitoring
    return collector


def operator_metrics() -> dict[str, set[str]]:
    """Every sample name the operator's /metrics serves (the default REGISTRY, with headway.telemetry imported)."""
    found: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the registry lists no collectors publicly
        if isinstance(collector, MetricWrapperBase):
            samples = _shadow_samples(collector)
        else:
            samples = _samples(_sampled_collector(collector).collect())
        for name, labels in samples.items():
            found.setdefault(name, set()).update(labels | SCRAPE_LABELS)
    return found


def podmonitor_target_labels() -> set[str]:
    """The labels Headway's PodMonitor gives every series of a model pod (its relabelings' targets)."""
    doc = next(d for d in yaml.safe_load_all((ROOT / "examples" / "slo-analysis.yaml").read_text()) if d and d.get("spec"))
    podmonitor = build_podmonitor(Owner("md", "ns", "uid"), ModelDeploymentSpec.model_validate(doc["spec"]), {})
    endpoint = podmonitor["spec"]["podMetricsEndpoints"][0]
    return {r["targetLabel"] for r in endpoint["relabelings"] if r.get("targetLabel")}


def recorder_metrics() -> dict[str, set[str]]:
    """The model-side recorder's metrics (headway.monitoring.Recorder), on a private registry."""
    numeric = BinnedFeature(kind="numeric", edges=(10.0,), expected=(0.5, 0.5, 0.0), samples=10)
    label = BinnedFeature(kind="categorical", categories=("fraud", "legit"), expected=(0.1, 0.9, 0.0, 0.0), samples=10)
    registry = CollectorRegistry()
    recorder = Recorder(ReferenceProfile(features={"amount": numeric}, prediction=label), registry=registry)
    recorder.record_outcome(recorder.record({"amount": 3.0}, prediction="fraud"), label="legit")
    return _samples(registry.collect())


def bentoml_metrics() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, (kind, labels) in BENTOML.items():
        found.update(_histogram_samples(name, labels) if kind == "histogram" else {name: set(labels)})
    return found


@pytest.fixture(scope="module")
def vocabulary() -> dict[str, set[str]]:
    model_side = {**recorder_metrics(), **bentoml_metrics()}
    targets = podmonitor_target_labels() | SCRAPE_LABELS
    return {**operator_metrics(), **{name: labels | targets for name, labels in model_side.items()}}


# -- a small PromQL reader -------------------------------------------------------------------------

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile", "limitk", "limit_ratio"}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_count",
    "histogram_fraction", "histogram_quantile", "histogram_sum", "histogram_avg", "histogram_stddev", "histogram_stdvar",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln", "log10", "log2",
    "minute", "month", "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"bool", "and", "or", "unless", "offset", "group_left", "group_right", "inf", "nan"}
MATCH_OPS = {"=", "!=", "=~", "!~"}
# Grafana's own variables (https://grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/).
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__name"}

TOKEN = re.compile(r"""
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[a-z]*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}])
    | (?P<space>\s+)
""", re.VERBOSE)
VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass
class Names:
    """What one expression names."""

    metrics: set[str] = field(default_factory=set)
    selector_labels: set[tuple[str, str | None]] = field(default_factory=set)  # (label, the metric it selects on)
    grouping_labels: set[str] = field(default_factory=set)  # by / without / on / ignoring / group_x (...)
    variables: set[str] = field(default_factory=set)


def tokens(expr: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(expr):
        match = TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        pos = match.end()
        if match.lastgroup != "space":
            yield match.lastgroup or "", match.group()


def names_in(expr: str) -> Names:
    """Metric names (bare identifiers or before `{`), label names (inside `{}` and grouping
    clauses) and Grafana variables of a PromQL expression. Strings and ranges hold no names."""
    found = Names()
    found.variables = {next(g for g in m.groups() if g) for m in VARIABLE.finditer(expr)}
    # A variable outside a string or range would survive as an identifier that names nothing.
    toks = list(tokens(VARIABLE.sub(lambda m: "grafana_variable_" + next(g for g in m.groups() if g), expr)))
    brace_metric: str | None = None
    in_braces = False
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "op" and text == "{":
            in_braces = True
            brace_metric = toks[i - 1][1] if i and toks[i - 1][0] == "ident" else None
        elif kind == "op" and text == "}":
            in_braces = False
        elif kind == "ident" and in_braces:
            if following not in MATCH_OPS:
                raise ValueError(f"{text!r} in a selector is not followed by a matcher in {expr!r}")
            found.selector_labels.add((text, brace_metric))
        elif kind == "ident" and text in GROUPING and following == "(":
            close = next(j for j in range(i + 2, len(toks)) if toks[j][1] == ")")
            found.grouping_labels |= {t for k, t in toks[i + 2:close] if k == "ident"}
            i = close
        elif kind == "ident" and text in AGGREGATIONS and following in {"(", "by", "without"}:
            pass  # sum by (...) (...), sum (...) by (...)
        elif kind == "ident" and following == "(":
            if text not in FUNCTIONS:
                raise ValueError(f"{text}() is not a PromQL function in {expr!r}")
        elif kind == "ident" and text.lower() not in KEYWORDS | GROUPING:
            found.metrics.add(text)
        i += 1
    return found


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    legend: str = ""


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' collapsed panels included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries(dashboard: dict[str, Any]) -> list[Query]:
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append(Query(f"panel {panel['title']!r} {target['refId']}", target["expr"], target.get("legendFormat", "")))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = LABEL_VALUES.match(query)
            assert match, f"variable {variable['name']}: only label_values(selector, label) queries are used: {query!r}"
            selector = match["selector"] or ""
            found.append(Query(f"variable {variable['name']}", f"group by ({match['label']}) ({selector})" if selector
                               else f"group by ({match['label']}) ({{__name__=~\".+\"}})"))
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:  # a Prometheus annotation: its title, text and tags name the series' labels
            tags = "".join(f"{{{{{key.strip()}}}}}" for key in annotation.get("tagKeys", "").split(",") if key.strip())
            legend = annotation.get("titleFormat", "") + annotation.get("textFormat", "") + tags
            found.append(Query(f"annotation {annotation['name']!r}", annotation["expr"], legend))
    return found


def problems(query: Query, vocabulary: dict[str, set[str]], variables: set[str]) -> list[str]:
    """What in one query names something that does not exist."""
    try:
        found = names_in(query.expr)
    except (ValueError, StopIteration) as exc:
        return [f"{query.where}: {exc}"]
    out = [f"{query.where}: unknown metric {m}" for m in sorted(found.metrics - set(vocabulary))]
    known = [m for m in found.metrics if m in vocabulary]
    union = set().union(*(vocabulary[m] for m in known)) if known else set()
    for label, metric in sorted(found.selector_labels, key=str):
        if label == "__name__":
            continue
        allowed = vocabulary.get(metric, set()) if metric else union
        if metric in vocabulary and label not in allowed:
            out.append(f"{query.where}: {metric} has no label {label!r} (it has {sorted(allowed)})")
    out += [f"{query.where}: no metric of the expression has the label {label!r}"
            for label in sorted(found.grouping_labels - union)]
    legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend))
    out += [f"{query.where}: legend names {label!r}, not a label of the expression" for label in sorted(legend - union)]
    out += [f"{query.where}: unknown variable ${v}" for v in sorted(found.variables - variables - GRAFANA_BUILTINS)]
    return out


# -- the dashboard's shape -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
    assert dashboard["title"] == "Headway"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["id"] is None  # Grafana assigns it
    assert isinstance(dashboard["panels"], list) and dashboard["panels"]
    assert {"time", "templating", "annotations", "refresh"} <= set(dashboard)


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "modeldeployment"]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "modeldeployment"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE
        assert variable["query"]["query"].startswith("label_values(") and variable["definition"] == variable["query"]["query"]
    assert "$namespace" in variables["modeldeployment"]["query"]["query"]  # chained: the ModelDeployments of that namespace


def test_panel_ids_unique_and_every_panel_queries_the_chosen_datasource(dashboard: dict[str, Any]) -> None:
    every = panels(dashboard)
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in every]
    assert len(titles) == len(set(titles))
    for panel in every:
        if panel["type"] == "row":
            assert "targets" not in panel
            continue
        assert panel["type"] in {"timeseries", "state-timeline", "stat", "table", "bargauge"}, panel["type"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what it shows and from which metric"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), panel["title"]


def test_panels_fit_the_grid_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:  # rows are not collapsed: every panel is at the top level
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_rows(dashboard: dict[str, Any]) -> None:
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Operator health", "ModelDeployment $namespace/$modeldeployment"]
    assert all(not r["collapsed"] and r["gridPos"]["w"] == GRID_WIDTH for r in rows)
    # The panels of each row are below it and above the next one.
    operator_row, md_row = (r["gridPos"]["y"] for r in rows)
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        in_md_row = panel["gridPos"]["y"] > md_row
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert panel["gridPos"]["y"] > operator_row
        assert in_md_row == ("$modeldeployment" in exprs), panel["title"]


# -- what the operator's numbers need to be read -----------------------------------------------------


def panel_titled(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    found = [p for p in panels(dashboard) if p["title"] == title]
    assert len(found) == 1, f"no panel {title!r}"
    return found[0]


def metric_of(target: dict[str, Any]) -> str:
    (metric,) = names_in(target["expr"]).metrics
    return metric


def test_slo_values_are_drawn_beside_their_bounds_dashed(dashboard: dict[str, Any]) -> None:
    """A value and its bound in one panel, the bound dashed: a reader sees how close each SLO is."""
    slo = panel_titled(dashboard, "SLO values")
    by_metric = {metric_of(t): t for t in slo["targets"]}
    assert set(by_metric) == {"headway_slo_value", "headway_slo_threshold"}
    value, bound = by_metric["headway_slo_value"], by_metric["headway_slo_threshold"]
    # The same series keys (variant, slo): each bound lines up with its value, and the legends tell them apart.
    assert names_in(value["expr"]).grouping_labels == names_in(bound["expr"]).grouping_labels == {"variant", "slo"}
    assert value["legendFormat"] != bound["legendFormat"] and "bound" in bound["legendFormat"]
    dashed = [o for o in slo["fieldConfig"]["overrides"] if o["matcher"] == {"id": "byFrameRefID", "options": bound["refId"]}]
    assert len(dashed) == 1, "the bound's series need their own style"
    style = {prop["id"]: prop["value"] for prop in dashed[0]["properties"]}
    assert style["custom.lineStyle"]["fill"] == "dash"
    assert not any(o["matcher"].get("options") == value["refId"] for o in slo["fieldConfig"]["overrides"])  # values stay solid


def test_the_evidence_panel_draws_the_decision_boundary_at_1(dashboard: dict[str, Any]) -> None:
    evidence = panel_titled(dashboard, "Evidence towards a Fail")
    (target,) = evidence["targets"]
    assert metric_of(target) == "headway_slo_evidence_ratio"
    assert names_in(target["expr"]).grouping_labels == {"variant", "slo", "test"}  # one line per Fail test
    defaults = evidence["fieldConfig"]["defaults"]
    # Grafana draws a threshold as a line only with thresholdsStyle; the one threshold is the boundary.
    assert [step["value"] for step in defaults["thresholds"]["steps"]] == [None, 1]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed", "line+area", "dashed+area"}
    assert defaults["unit"] == "percentunit" and defaults["min"] == 0 and defaults["max"] > 1  # the line at 1 is in view


@pytest.mark.parametrize("title, histogram", [
    ("Kubernetes API latency", "headway_api_request_duration_seconds_bucket"),
    ("Work queue wait", "headway_queue_wait_seconds_bucket"),
    ("Reconcile duration", "headway_reconcile_duration_seconds_bucket"),
])
def test_latency_panels_show_p50_and_p99(dashboard: dict[str, Any], title: str, histogram: str) -> None:
    targets = panel_titled(dashboard, title)["targets"]
    assert {metric_of(t) for t in targets} == {histogram}
    quantiles = {re.match(r"histogram_quantile\((0\.\d+),", t["expr"]).group(1) for t in targets}  # type: ignore[union-attr]
    assert quantiles == {"0.5", "0.99"}
    assert panel_titled(dashboard, title)["fieldConfig"]["defaults"]["unit"] == "s"


def test_the_work_queue_panel_shows_depth_and_retries(dashboard: dict[str, Any]) -> None:
    queue = panel_titled(dashboard, "Work queue depth and retries")
    assert {metric_of(t) for t in queue["targets"]} == {"headway_queue_depth", "headway_queue_retries_total"}
    retries = next(t for t in queue["targets"] if metric_of(t) == "headway_queue_retries_total")
    assert "rate(headway_queue_retries_total[" in retries["expr"]  # a counter is charted as a rate, never raw
    right = [o for o in queue["fieldConfig"]["overrides"] if o["matcher"] == {"id": "byFrameRefID", "options": retries["refId"]}]
    assert right and {"id": "custom.axisPlacement", "value": "right"} in right[0]["properties"]  # another unit: its own axis


def test_rollbacks_per_modeldeployment_and_for_all(dashboard: dict[str, Any]) -> None:
    """The operator-wide panel sums every ModelDeployment; the row's panel and the annotation select the chosen one."""
    everyone = names_in(panel_titled(dashboard, "Rollbacks by reason (all ModelDeployments)")["targets"][0]["expr"])
    assert everyone.metrics == {"headway_rollbacks_total"} and everyone.selector_labels == set() and everyone.grouping_labels == {"reason"}
    (target,) = panel_titled(dashboard, "Rollbacks of this ModelDeployment")["targets"]
    (annotation,) = [a for a in dashboard["annotations"]["list"] if a.get("name") == "Rollbacks"]
    assert annotation["datasource"] == DATASOURCE and annotation["enable"] is True
    for expr in (target["expr"], annotation["expr"]):
        one = names_in(expr)
        assert one.metrics == {"headway_rollbacks_total"}
        assert one.selector_labels == {("namespace", "headway_rollbacks_total"), ("name", "headway_rollbacks_total")}
        assert one.variables - GRAFANA_BUILTINS == {"namespace", "modeldeployment"} and one.grouping_labels == {"reason"}
    assert "{{reason}}" in annotation["textFormat"]


# -- every query names what exists -----------------------------------------------------------------


def test_the_vocabulary_is_what_the_operator_and_bentoml_export(vocabulary: dict[str, set[str]]) -> None:
    """A sanity check of the walk itself: a few names and labels known from the source."""
    assert vocabulary["headway_reconciles_total"] >= {"outcome"}
    assert "le" in vocabulary["headway_reconcile_duration_seconds_bucket"]
    assert vocabulary["headway_traffic_weight_percent"] >= {"namespace", "name", "variant"}
    assert vocabulary["headway_cost_hourly"] >= {"namespace", "modeldeployment", "variant"}
    assert vocabulary["headway_drift_psi"] >= {"namespace", "modeldeployment", "feature"}
    assert vocabulary["headway_prediction_difference_upper"] >= {"namespace", "modeldeployment", "revision"}
    assert vocabulary["headway_feature_observations_total"] >= {"feature", "bin", "namespace", "modeldeployment", "variant", "revision", "pod"}
    assert vocabulary["bentoml_service_request_duration_seconds_bucket"] >= {"le", "endpoint", "variant"}
    assert vocabulary["headway_slo_threshold"] >= {"namespace", "name", "variant", "slo"}
    assert vocabulary["headway_slo_evidence_ratio"] >= {"namespace", "name", "variant", "slo", "test"}
    assert vocabulary["headway_rollbacks_total"] >= {"namespace", "name", "reason"}
    assert vocabulary["headway_api_request_duration_seconds_bucket"] >= {"le", "verb"}
    assert "headway_queue_depth" in vocabulary and "le" in vocabulary["headway_queue_wait_seconds_bucket"]
    assert "headway_reconciles" not in vocabulary and "headway_reconciles_total_bucket" not in vocabulary


def test_every_query_names_only_metrics_and_labels_that_exist(dashboard: dict[str, Any], vocabulary: dict[str, set[str]]) -> None:
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    found = [problem for query in queries(dashboard) for problem in problems(query, vocabulary, variables)]
    assert found == []


def test_every_family_the_operator_exports_is_charted(dashboard: dict[str, Any], vocabulary: dict[str, set[str]]) -> None:
    """A metric added to headway.telemetry (or the recorder) shows up here until it gets a panel."""
    used = set().union(*(names_in(q.expr).metrics for q in queries(dashboard)))
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in vocabulary if name.startswith("headway_")}
    charted = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in used}
    # The recorder's feature bins and outcomes are per model and profile: drift gauges summarise them
    # (its agreement sketch's cells are hash buckets: headway_prediction_agreement summarises them).
    recorder_only = {"headway_feature_observations", "headway_outcomes", "headway_outcomes_unmatched", "headway_prediction_sketch"}
    assert families - charted - recorder_only == set()


@pytest.mark.parametrize("expr, complaint", [
    ("rate(headway_reconcile_total[5m])", "unknown metric headway_reconcile_total"),  # misspelt
    ("headway_reconciles_total_bucket", "unknown metric"),  # a counter has no buckets
    ('headway_traffic_weight_percent{modeldeployment="x"}', "no label 'modeldeployment'"),  # it is `name` there
    ("sum by (pod) (headway_reconciles_total)", "no metric of the expression has the label 'pod'"),
    ('bentoml_service_request_total{namespace="$nspace"}', "unknown variable $nspace"),
    ("rates(headway_reconciles_total[5m])", "rates() is not a PromQL function"),
    ("headway_slo_value * $scale", "unknown metric grafana_variable_scale"),
])
def test_the_reader_catches_names_that_do_not_exist(vocabulary: dict[str, set[str]], expr: str, complaint: str) -> None:
    found = problems(Query("q", expr, ""), vocabulary, {"namespace", "modeldeployment"})
    assert any(complaint in p for p in found), found


def test_the_reader_accepts_what_the_dashboard_needs(vocabulary: dict[str, set[str]]) -> None:
    ok = ('histogram_quantile(0.99, sum by (variant, le) (rate(bentoml_service_request_duration_seconds_bucket'
          '{namespace="$namespace", endpoint!~"/(livez|readyz)"}[$__rate_interval])))'
          ' / ignoring (bin) group_left sum without (bin) (headway_prediction_observations_total{modeldeployment=~"a|b"})')
    assert problems(Query("q", ok, "{{variant}}"), vocabulary, {"namespace"}) == []
    names = names_in(ok)
    assert names.metrics == {"bentoml_service_request_duration_seconds_bucket", "headway_prediction_observations_total"}
    assert names.grouping_labels == {"variant", "le", "bin"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus' tools) is not installed")
def test_every_expression_parses_with_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Prometheus' own parser, offline: the expressions as recording rules, Grafana's variables filled in."""
    def filled(expr: str) -> str:
        return VARIABLE.sub(lambda m: "5m" if (m.group(1) or m.group(2) or m.group(3)).startswith("__") else "x", expr)

    rules = [{"record": f"headway:dashboard:{i}", "expr": filled(q.expr)} for i, q in enumerate(queries(dashboard))]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.realparts
def test_bentoml_list_matches_a_real_server(tmp_path: Path) -> None:
    """BENTOML is what a real BentoML server's /metrics serves (the bundled example service)."""
    from headway.sandbox.processes import BentoServer, parse_samples

    server = BentoServer({}, workdir=tmp_path, label="dashboard").spawn()
    try:
        server.wait_ready()
        assert server.score([1.0, 2.0, 3.0, 0.5]).status_code == 200
        text = server.metrics_text()
    finally:
        server.stop()
    for name, (kind, labels) in BENTOML.items():
        sample = f"{name}_bucket" if kind == "histogram" else name
        seen = {key for sample_labels, _ in parse_samples(text, sample) for key in sample_labels}
        assert seen, f"{sample} not served"
        assert seen - {"le"} == labels, f"{sample}: served with {sorted(seen)}"


# -- the chart ships it ----------------------------------------------------------------------------

ENABLED = {"grafana": {"dashboard": {"enabled": True}}}


def dashboard_configmaps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "ConfigMap" and "headway.json" in (d.get("data") or {})]


def test_chart_ships_no_dashboard_by_default() -> None:
    assert dashboard_configmaps(template(CHART)) == []


def test_chart_ships_the_dashboard_for_the_sidecar_when_enabled() -> None:
    (configmap,) = dashboard_configmaps(template(CHART, ENABLED))
    client.V1ConfigMap.model_validate(configmap)
    meta = configmap["metadata"]
    assert meta["name"] == "headway-dashboard" and meta["namespace"] == "headway-system"
    assert meta["labels"]["grafana_dashboard"] == "1"  # the grafana / kube-prometheus-stack sidecar's default label
    assert meta["labels"]["app.kubernetes.io/instance"] == "headway" and meta["labels"]["app.kubernetes.io/component"] == "dashboard"
    assert "annotations" not in meta
    assert json.loads(configmap["data"]["headway.json"]) == load_dashboard()


def test_dashboard_folder_labels_and_namespace_from_values() -> None:
    values = {"grafana": {"dashboard": {"enabled": True, "folder": "ML platform", "folderAnnotation": "grafana-folder",
                                        "annotations": {"example.com/owner": "ml"}, "namespace": "monitoring",
                                        "labels": {"grafana_dashboard": "headway", "release": "kube-prometheus"}}}}
    (configmap,) = dashboard_configmaps(template(CHART, values, release="ml"))
    meta = configmap["metadata"]
    assert meta["name"] == "ml-headway-dashboard" and meta["namespace"] == "monitoring"
    assert meta["labels"]["grafana_dashboard"] == "headway" and meta["labels"]["release"] == "kube-prometheus"
    assert meta["annotations"] == {"grafana-folder": "ML platform", "example.com/owner": "ml"}


def test_chart_with_the_dashboard_lints_clean() -> None:
    result = lint(CHART, ENABLED, strict=True)
    assert result.errors == [] and result.warnings == [], result.messages


@pytest.mark.parametrize("values, complaint", [
    ({"grafana": {"dashboard": {"enable": True}}}, "enable"),
    ({"grafana": {"dashboard": {"enabled": "yes"}}}, "/grafana/dashboard/enabled"),
    ({"grafana": {"dashboard": {"namespace": "Monitoring"}}}, "/grafana/dashboard/namespace"),
    ({"grafana": {"dashboard": {"labels": {"grafana_dashboard": 1}}}}, "/grafana/dashboard/labels/grafana_dashboard"),
    ({"grafana": {"dashboard": {"folderAnnotation": "a b"}}}, "/grafana/dashboard/folderAnnotation"),
])
def test_schema_rejects_bad_dashboard_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmValuesError) as raised:
        template(CHART, values)
    assert complaint in str(raised.value)
