"""Fuzzed ModelDeployment specs through admission and the operator's parser (hypothesis).

Every spec, however broken, goes through the two places that judge it:

1. **admission**: the generated CRD, as kube-apiserver applies it (``headway.sandbox.apiserver.crdschema``:
   unknown fields, defaults, OpenAPI, CEL);
2. **the operator**: ``parse_spec`` and ``check_spec`` (``headway.planning.validation``), then
   ``plan()`` with an empty status — what a reconcile of that spec does first.

Properties:

* nothing crashes: no exception escapes any of them;
* every rejection names a field: a CRD error's path is under ``spec`` (or is ``metadata``), every
  operator problem's field is ``spec``, a path under it, or ``metadata.name``; ``plan()`` applies
  nothing when there are problems and reports exactly them in ``status.problems``;
* consistency: a spec the CRD accepts (as stored: defaults applied) parses in the operator, and
  ``check_spec`` only reports what the schema cannot say — each such problem matches one of
  ``EXPLAINED`` below, which says why the CRD lets it through.

Inputs: the valid manifests (tests/manifests/valid) and examples/*.yaml, mutated a few times
over (keys dropped, types changed, huge/negative numbers, very long and non-ASCII strings,
nulls, empty lists and maps, duplicated list items such as variant names, experiment weights
that do not sum to 100, unknown keys), subtrees replaced by values generated from the CRD's
own schema (mostly valid, so many mutants pass admission and reach ``check_spec`` and
``plan()``), and whole specs generated from the schema.

Deterministic by default (``derandomize``, no example database): 200 examples per test, the
same ones on every run. For a long local run with fresh random examples:
``HEADWAY_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/unit/test_fuzz_admission.py``.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headway.api.status import ModelDeploymentStatus
from headway.planning.naming import Owner
from headway.planning.plan import Observation, plan
from headway.planning.validation import Problem, check_spec, metrics_url_problems, parse_spec, scaler_metric_problems
from headway.sandbox.apiserver.crdschema import CrdValidator, FieldError, load_crd, load_yaml_documents

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modeldeployments.serving.headway.dev.yaml"
SEED_FILES = sorted((ROOT / "tests" / "manifests" / "valid").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

LONG_RUN = int(os.environ.get("HEADWAY_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(
    max_examples=LONG_RUN or 200,
    deadline=None,
    derandomize=not LONG_RUN,  # CI: the same examples every run, never flaky
    database=None,  # nothing written to .hypothesis/ in the working tree
    print_blob=True,  # a failure prints @reproduce_failure(...) to replay it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

CRD = load_crd(CRD_PATH)
VALIDATOR = CrdValidator(CRD)
VERSION = CRD["spec"]["versions"][0]["name"]
SPEC_SCHEMA: dict[str, Any] = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _seeds() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in SEED_FILES:
        for doc in load_yaml_documents(path):
            if isinstance(doc, dict) and doc.get("kind") == "ModelDeployment":
                found.append((str(path.relative_to(ROOT)), doc))
    return found


SEEDS = _seeds()

# ---------------------------------------------------------------------------------------------
# What check_spec may report about a spec the CRD accepted: each pattern (on "field: message")
# with the reason the schema cannot say it.

EXPLAINED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^metadata\.name: at most"), "the CRD allows 253-character names; <name>-<variant> Services need 63"),
    (re.compile(r"\.image: .*(not a valid image reference|longer than 255)"), "the CRD bounds the image's length only; the reference grammar is the operator's check"),
    (re.compile(r"\.bento: the bento name and version must each be at most 63"), "the pattern cannot bound each half of name:version separately"),
    (re.compile(r"\.env\[\d+\]\.name: \S+ is set by Headway"), "reserved variable names are the operator's business"),
    (re.compile(r"\.(nodeSelector|labels)\["), "map keys cannot be constrained in a structural schema (no propertyNames); label values are checked in full by the operator"),
    (re.compile(r"^spec\.resources\.(requests|limits)\."), "quantities are int-or-string: no pattern allowed there, parsed by the operator"),
    (re.compile(r"^spec\.resources\.gpus: set GPUs with gpus or with nvidia\.com/gpu"), "a rule across a map key and a field; the operator checks it"),
    (re.compile(r"^spec\.rollout\.steps\[\d+\]\.shadow: shadow needs a traffic provider"), "depends on spec.traffic being absent or provider none; reported, not rejected, so the CRD stays simple"),
    (re.compile(r"^spec\.experiment\.match\[\d+\]: header and cookie pinning needs a traffic provider"), "as above, for pinning"),
    (re.compile(r"^spec\.experiment\.variants\[\d+\]\.name: '(stable|candidate|previous)' is reserved"), "reserved names are the operator's business"),
    (re.compile(r"^spec\.experiment\.variants\[\d+\]\.name: <metadata\.name>-<variant name> must fit"), "depends on metadata.name, which the spec schema cannot see"),
    (re.compile(r"^spec\.autoscaling\.metrics\[\d+\]: a (cpu|memory) utilisation target is a percentage of the pods'"),
     "a rule across autoscaling and the keys of spec.resources maps; the operator checks it"),
    (re.compile(r"^spec\.autoscaling\.metrics\[\d+\]: \w+ scales on a Prometheus query, but"),
     "depends on the operator's --prometheus-url and allow-list, which the CRD cannot see"),
]

# What the operator's parser may refuse in a spec the CRD emulator accepted, and why (none is a
# disagreement with a real API server).
PARSE_EXPLAINED: list[tuple[re.Pattern[str], str]] = [
    # pydantic bounds map keys (label keys 317, resource names); a structural schema cannot.
    (re.compile(r"\.(nodeSelector|labels|requests|limits)\.[^:]*: String should have at (most|least)"), "map keys: bounded by pydantic only"),
    # A pattern checks a duration's syntax, not its value: "99999999999999h" matches.
    (re.compile(r": Value error, '[^']*' is longer than the longest duration"), "durations beyond Go's time.Duration (292 years): the pattern cannot bound the value"),
]

# Values the emulator judges differently from kube-apiserver, so its "accepted" says nothing
# about them (a deviation of operator/headway/sandbox/apiserver/crdschema.py): the emulator calls every integral
# number an integer; the server decodes integers beyond int64 as float64, and kube-openapi
# calls a float64 an integer only up to 2^53.
JSON_INTEGER_MAX = 2**53
INT64_MAX = 2**63 - 1


def emulator_blind_spot(node: Any) -> str | None:
    if (isinstance(node, float) and abs(node) > JSON_INTEGER_MAX) or (isinstance(node, int) and not isinstance(node, bool) and abs(node) > INT64_MAX):
        return "emulator: integers beyond int64, and floats beyond 2^53, are not JSON integers to kube-openapi"
    children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    for key, value in children:
        if (why := emulator_blind_spot(key) or emulator_blind_spot(value)) is not None:
            return why
    return None


def explained(problem: Problem) -> str | None:
    text = f"{problem.field}: {problem.message}"
    return next((why for pattern, why in EXPLAINED if pattern.search(text)), None)


# ---------------------------------------------------------------------------------------------
# strategies

LONG_STRINGS = ["x" * 100_000, "a" * 64, "a" * 254, "é" * 300, "💥" * 70, "a." * 200 + "a", "9" * 40, "1" * 31 + "h"]
TRICKY_STRINGS = [
    "", " ", "\x00", "\n", "null", "true", "-1", "1e999", "NaN", "0x10", "100%", ":", "/", "@", "a:b:c",
    "UPPER", "stable", "candidate", "previous", "BENTOML_HOME", "1h", "5m", "250ms", "99999999999999h",
    "500m", "2Gi", "-1Gi", "1e3", "0.5", "fraud_scorer:3.2.0\n", "registry.example.com/x:1", "gatewayApi", "none",
    "app.kubernetes.io/name", "headway.dev/variant", "nvidia.com/gpu", "hugepages-2Mi", "ünïcödé", "名前", "\u202e",
]
HUGE_NUMBERS = [0, -1, 1, 100, 101, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30), 0.5, -0.0, 1e308, -1e308, 1e-308]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has no NaN or Infinity
    st.text(max_size=40),
    st.sampled_from(TRICKY_STRINGS + LONG_STRINGS),
)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)
unknown_keys = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["Model", "replica", "bake_time", "bakeTime", "steps", "weight", "status", "apiVersion", "x-extra", "spec"]),
)


def _schema_at(path: tuple[str | int, ...]) -> dict[str, Any] | None:
    node: Any = SPEC_SCHEMA
    for part in path:
        if not isinstance(node, dict):
            return None
        if isinstance(part, int):
            node = node.get("items")
        elif part in (node.get("properties") or {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node if isinstance(node, dict) else None


_STRATEGIES: dict[tuple[int, int], st.SearchStrategy[Any]] = {}


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by an OpenAPI schema: mostly valid, now and then just outside a bound."""
    key = (id(schema), depth)  # the schemas are the module's CRD, alive for the whole run
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _from_schema(schema, depth)
    return _STRATEGIES[key]


def _from_schema(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if schema.get("x-kubernetes-int-or-string"):
        return st.one_of(
            st.integers(-10, 10**12),
            st.sampled_from(["500m", "1", "2Gi", "1.5", "512Mi", "1e3", "0", "-1", "1Ki", "bogus", "2 Gi", ".5", "+3"]),
            st.from_regex(r"[+-]?[0-9]{1,20}(\.[0-9]{1,5})?([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,3})?", fullmatch=True),
        )
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.sampled_from(["", "Always ", "gatewayapi"])
    kind = schema.get("type")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties") or {}
        if not props and isinstance(schema.get("additionalProperties"), dict):
            keys = st.one_of(
                st.sampled_from(["team", "cpu", "memory", "nvidia.com/gpu", "kubernetes.io/arch", "app.kubernetes.io/name", "headway.dev/x", "a" * 64, "Bad Key", "a/b/c"]),
                st.from_regex(r"(([a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\.)?[a-z]{1,8}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,30}[A-Za-z0-9])?", fullmatch=True),
            )
            return st.dictionaries(keys, from_schema(schema["additionalProperties"], depth + 1), max_size=4)
        if depth > 6:
            return st.fixed_dictionaries({})
        required = set(schema.get("required") or [])
        return st.fixed_dictionaries(
            {k: from_schema(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: from_schema(v, depth + 1) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        items = schema.get("items") or {}
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", 4), 4)
        return st.lists(from_schema(items, depth + 1), min_size=min(low, high), max_size=max(high, low))
    if kind == "string":
        max_len = schema.get("maxLength", 64)
        if "pattern" in schema:
            shaped = st.from_regex(schema["pattern"], fullmatch=True).map(lambda s: s[: max_len + 1])
        else:
            shaped = st.text(min_size=schema.get("minLength", 0), max_size=min(max_len + 1, 80))
        return shaped | st.sampled_from(["30s", "5m", "1h30m", "250ms", "99999999999999h", "fraud_scorer:1.0.0", "registry.example.com/a:1", "http://p:9090"])
    if kind == "integer":
        low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
        return st.integers(low, high) | st.sampled_from([low - 1, high + 1])
    if kind == "number":
        low, high = schema.get("minimum", -1e12), schema.get("maximum", 1e12)
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.sampled_from([low - 1, high + 1, 0])
    if kind == "boolean":
        return st.booleans()
    return junk


def _paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


def _get(root: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        root = root[part]
    return root


def _set(root: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


@st.composite
def mutate(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    """One mutation somewhere in the spec (the root stays a mapping, as kopf always delivers)."""
    spec = copy.deepcopy(spec)
    path = draw(st.sampled_from(_paths(spec)))
    node = _get(spec, path)
    how = draw(st.sampled_from(["drop", "junk", "schema", "retype", "unknown", "duplicate", "empty", "null", "number", "string", "weights"]))
    if how == "drop" and path:
        parent = _get(spec, path[:-1])
        del parent[path[-1]]
    elif how == "junk" and path:
        _set(spec, path, draw(junk))
    elif how == "schema" and path and (schema := _schema_at(path)) is not None:
        _set(spec, path, draw(from_schema(schema)))
    elif how == "retype" and path:
        _set(spec, path, draw(st.sampled_from([str(node), [node], {"value": node}, 1, True, "1"])))
    elif how == "unknown" and isinstance(node, dict):
        node[draw(unknown_keys)] = draw(junk)
    elif how == "duplicate" and isinstance(node, list) and node:
        node.append(copy.deepcopy(draw(st.sampled_from(node))))
    elif how == "empty" and path:
        _set(spec, path, draw(st.sampled_from([[], {}, ""])))
    elif how == "null" and path:
        _set(spec, path, None)
    elif how == "number" and path:
        _set(spec, path, draw(st.sampled_from(HUGE_NUMBERS) | st.integers()))
    elif how == "string" and path:
        _set(spec, path, draw(st.sampled_from(TRICKY_STRINGS + LONG_STRINGS) | st.text(max_size=80)))
    elif how == "weights" and isinstance(spec.get("experiment"), dict) and isinstance(spec["experiment"].get("variants"), list):
        for variant in spec["experiment"]["variants"]:
            if isinstance(variant, dict):
                variant["weight"] = draw(st.integers(-5, 105) | st.sampled_from(HUGE_NUMBERS))
    return spec


names = st.one_of(
    st.none(),  # the seed's own name
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,70}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["a" * 63, "a" * 64, "a" * 253, "Bad_Name", "x"]),
)


@st.composite
def mutated_manifests(draw: st.DrawFn) -> dict[str, Any]:
    where, seed = draw(st.sampled_from(SEEDS))
    spec = seed["spec"]
    for _ in range(draw(st.integers(1, 4))):
        spec = draw(mutate(spec))
    obj = copy.deepcopy(seed)
    obj["spec"] = spec
    if (name := draw(names)) is not None:
        obj["metadata"]["name"] = name
    return obj


@st.composite
def generated_manifests(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(from_schema(SPEC_SCHEMA))
    return {"apiVersion": f"{CRD['spec']['group']}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": "fuzzed", "namespace": "ml"}, "spec": spec}


# ---------------------------------------------------------------------------------------------
# the properties

SPEC_PATH = re.compile(r"^spec(\.|\[|$)")
STATS: Counter[str] = Counter()
ACCEPTED_BUT_REPORTED: Counter[str] = Counter()  # explanation -> count, printed at the end


def assert_crd_errors_named(errors: list[FieldError]) -> None:
    for error in errors:
        text = str(error)  # rendering never fails either
        if not error.path:
            # the summary the server adds after blocking errors; it never comes alone
            assert "some validation rules were not checked" in error.detail, text
            assert any(e.path for e in errors), text
            continue
        assert SPEC_PATH.match(error.path) or error.path.startswith("metadata"), f"CRD error names no field under spec: {text}"
        assert "cannot evaluate CEL rule" not in text, f"a CEL rule failed to evaluate (the server would answer an internal error): {text}"


def assert_problem_named(problem: Problem) -> None:
    assert isinstance(problem.field, str) and isinstance(problem.message, str) and problem.message.strip(), problem
    assert SPEC_PATH.match(problem.field) or problem.field == "metadata.name", f"problem names no field under spec: {problem}"
    assert "Traceback" not in problem.message and "object has no attribute" not in problem.message, problem


def operator_view(name: str, raw: dict[str, Any]) -> tuple[bool, list[Problem]]:
    """(parsed, problems) of the operator for one raw spec; plan() runs on it too."""
    spec, problems = parse_spec(raw)
    parsed = spec is not None
    if spec is not None:
        assert problems == []
        # What plan() checks, with no operator configuration (no --prometheus-url, no allow-list).
        problems = check_spec(name, spec) + metrics_url_problems(spec, None) + scaler_metric_problems(spec, None, None)
    for problem in problems:
        assert_problem_named(problem)
    result = plan(Owner(name, "ml", "uid-1"), Observation(raw, 1, {}, ModelDeploymentStatus(), {}), NOW)
    assert [(p.field, p.message) for p in result.status.problems] == [(p.field, p.message) for p in problems]
    if problems:
        assert result.workloads is None and result.traffic is None, "a spec with problems is never applied"
    return parsed, problems


def judge(obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    errors = VALIDATOR.errors(copy.deepcopy(obj))
    assert_crd_errors_named(errors)
    # The operator also sees specs no API server validated (stored before a rule existed, an
    # emulator, a test): the raw spec must not crash it either.
    operator_view(name, copy.deepcopy(obj["spec"]))
    if errors:
        STATS["rejected by the CRD"] += 1
        return
    STATS["accepted by the CRD"] += 1
    stored = go_json(VALIDATOR.apply_defaults(copy.deepcopy(obj)))  # what the operator reads back
    parsed, problems = operator_view(name, stored["spec"])
    if problems and (blind := emulator_blind_spot(stored["spec"])) is not None:
        ACCEPTED_BUT_REPORTED[blind] += 1
        STATS["accepted by the emulator only (a blind spot of it)"] += 1
        return
    if not parsed:
        unexplained = [p for p in problems if not any(pat.search(f"{p.field}: {p.message}") for pat, _ in PARSE_EXPLAINED)]
        assert not unexplained, "the CRD accepts a spec the operator cannot parse:\n  " + "\n  ".join(map(str, unexplained))
        for problem in problems:
            ACCEPTED_BUT_REPORTED[next(why for pat, why in PARSE_EXPLAINED if pat.search(f"{problem.field}: {problem.message}"))] += 1
        STATS["accepted by the CRD, not parsed by the operator (explained)"] += 1
        return
    for problem in problems:
        why = explained(problem)
        assert why is not None, f"the CRD accepts a spec, the operator reports an unexplained problem: {problem}"
        ACCEPTED_BUT_REPORTED[why] += 1
    STATS["accepted by both" if not problems else "accepted by the CRD, reported by check_spec"] += 1


def go_json(node: Any) -> Any:
    """The value after the API server's JSON round trip: Go writes a float64 without a fraction
    below 1e21 as an integer (`cpu: 1.0` is accepted as an integer and read back as 1)."""
    if isinstance(node, float) and node.is_integer() and abs(node) < 1e21:
        return int(node)
    if isinstance(node, dict):
        return {k: go_json(v) for k, v in node.items()}
    if isinstance(node, list):
        return [go_json(v) for v in node]
    return node


def test_the_seeds_are_accepted_by_both() -> None:
    assert len(SEEDS) >= 8
    for where, doc in SEEDS:
        assert VALIDATOR.validate(doc) == [], where
        parsed, problems = operator_view(doc["metadata"]["name"], doc["spec"])
        assert parsed and problems == [], where


@FUZZ
@given(mutated_manifests())
def test_mutated_manifests(obj: dict[str, Any]) -> None:
    judge(obj)


@FUZZ
@given(generated_manifests())
def test_manifests_generated_from_the_crd_schema(obj: dict[str, Any]) -> None:
    judge(obj)


@pytest.mark.parametrize(
    "spec",
    [
        {"model": {"bento": "a:1", "image": "r/a:1"}, "rollout": {"steps": [{"canary": {"weight": 5, "duration": "99999999999999h"}}]}},
        {"model": {"bento": "a:1", "image": "r/a:1"}, "analysis": {"interval": "9999999999999999999999999999999h"}},
        {"model": {"bento": "a:1", "image": "r/a:1"}, "rollout": {"bakeTime": "99999999999999h"}},
    ],
    ids=["canary-duration", "analysis-interval", "bake-time"],
)
def test_regression_overflowing_duration_is_a_named_problem(spec: dict[str, Any]) -> None:
    """Found by the fuzzer: a duration too long for a timedelta raised OverflowError from pydantic."""
    parsed, problems = operator_view("fraud-scorer", spec)
    assert not parsed and problems and all(SPEC_PATH.match(p.field) and p.field != "spec" for p in problems), problems


def test_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a check: prints what the fuzz tests above saw (with HEADWAY_FUZZ_EXAMPLES or HEADWAY_FUZZ_REPORT=1)."""
    if not (LONG_RUN or os.environ.get("HEADWAY_FUZZ_REPORT")):
        pytest.skip("set HEADWAY_FUZZ_REPORT=1 to print the fuzz outcomes")
    with capsys.disabled():
        if STATS:
            print("\nfuzz outcomes:", dict(STATS))
        for why, count in ACCEPTED_BUT_REPORTED.most_common():
            print(f"  accepted by the CRD, reported by the operator ({count}x): {why}")
