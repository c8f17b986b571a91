"""Unit tests of operator/headway/sandbox/apiserver/crdschema.py: the stand-in for kube-apiserver's CRD validation.

Each feature is checked on a small inline schema, against the error text the API server
returns, so that the manifest tests built on top of it mean what they say.
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headway.sandbox.apiserver.crdschema import (
    CrdValidator,
    FieldError,
    apply_defaults,
    assert_structural,
    escape_cel_property,
    iter_cel_rules,
    load_crd,
    load_yaml_documents,
    parse_go_duration,
    structural_problems,
    validate,
)

GROUP = "example.com"


def make_crd(
    spec_schema: dict[str, Any] | None = None,
    *,
    root: dict[str, Any] | None = None,
    versions: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    subresources: dict[str, Any] | None = None,
    scope: str = "Namespaced",
) -> dict[str, Any]:
    """A CRD for kind Widget in example.com/v1 whose spec has the given schema."""
    if root is None:
        properties: dict[str, Any] = {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema or {"type": "object"},
        }
        if status is not None:
            properties["status"] = status
        root = {"type": "object", "properties": properties}
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": root}}
    if subresources is not None:
        version["subresources"] = subresources
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": scope,
            "versions": versions or [version],
        },
    }


def widget(spec: Any = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}}
    if spec is not None:
        obj["spec"] = spec
    obj.update(extra)
    return obj


def errors_for(spec_schema: dict[str, Any], spec: Any, **kwargs: Any) -> list[str]:
    return validate(widget(spec), make_crd(spec_schema), **kwargs)


def obj_schema(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


def with_rule(schema: dict[str, Any], rule: str, **fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out.setdefault("x-kubernetes-validations", []).append({"rule": rule, **fields})
    return out


# --------------------------------------------------------------------------------------
# Loading and versions
# --------------------------------------------------------------------------------------


def test_load_crd_finds_the_crd_among_documents_and_keeps_timestamps_as_strings(tmp_path: Path) -> None:
    crd = make_crd(obj_schema({"when": {"type": "string", "format": "date-time"}}))
    import yaml

    path = tmp_path / "crd.yaml"
    path.write_text("---\nkind: ConfigMap\napiVersion: v1\n---\n" + yaml.safe_dump(crd))
    assert load_crd(path)["metadata"]["name"] == f"widgets.{GROUP}"

    manifest = tmp_path / "w.yaml"
    manifest.write_text("spec:\n  when: 2024-05-01T10:00:00Z\n  day: 2024-05-01\n")
    (doc,) = load_yaml_documents(manifest)
    assert doc["spec"] == {"when": "2024-05-01T10:00:00Z", "day": "2024-05-01"}


def test_load_crd_without_a_crd_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: ConfigMap\n")
    with pytest.raises(ValueError, match="no CustomResourceDefinition"):
        load_crd(path)


def test_version_is_taken_from_api_version_and_must_be_served() -> None:
    schema = obj_schema({"size": {"type": "integer"}})
    root = make_crd(schema)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    v1: dict[str, Any] = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": root}}
    v2 = copy.deepcopy(v1) | {"name": "v2", "storage": False}
    v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] = {"type": "string"}
    old = copy.deepcopy(v1) | {"name": "v0", "served": False, "storage": False}
    crd = make_crd(versions=[v1, v2, old])

    assert validate(widget({"size": 3}), crd) == []
    assert validate(widget({"size": "big"}, apiVersion=f"{GROUP}/v2"), crd) == []
    assert validate(widget({"size": "big"}), crd, "v2") == []  # an explicit version wins
    assert validate(widget({"size": 3}, apiVersion=f"{GROUP}/v0"), crd) == [f'no matches for kind "Widget" in version "{GROUP}/v0"']
    assert validate(widget({"size": 3}), crd, "v9") == [f'no matches for kind "Widget" in version "{GROUP}/v9"']
    assert validate(widget({}, apiVersion="other.io/v1"), crd) == ['no matches for kind "Widget" in version "other.io/v1"']
    assert validate(widget({}, kind="Gadget"), crd) == [f'no matches for kind "Gadget" in version "{GROUP}/v1"']


# --------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typ", "value", "ok"),
    [
        ("integer", 3, True),
        ("integer", 3.0, True),  # kubectl's YAML->JSON turns 3.0 into 3
        ("integer", 3.5, False),
        ("integer", True, False),
        ("integer", "3", False),
        ("number", 3, True),  # an integer is a valid number
        ("number", 3.5, True),
        ("number", False, False),
        ("string", "x", True),
        ("string", 1, False),
        ("boolean", False, True),
        ("boolean", "true", False),
        ("object", {}, True),
        ("object", [], False),
        ("array", [], True),
        ("array", {}, False),
    ],
)
def test_types(typ: str, value: Any, ok: bool) -> None:
    errs = errors_for(obj_schema({"v": {"type": typ}}), {"v": value})
    if ok:
        assert errs == []
    else:
        assert errs[0].startswith("spec.v: Invalid value: ")
        assert f"spec.v in body must be of type {typ}: " in errs[0]


def test_type_error_text_is_the_api_servers() -> None:
    errs = errors_for(obj_schema({"replicas": {"type": "integer"}}), {"replicas": "three"})
    assert errs[0] == 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'


def test_null_is_pruned_unless_nullable() -> None:
    schema = obj_schema({"a": {"type": "string"}, "b": {"type": "string", "nullable": True}}, required=["a"])
    # A non-nullable null without default is pruned, so a required field becomes missing.
    assert errors_for(schema, {"a": None, "b": None})[0] == "spec.a: Required value"
    assert errors_for(schema, {"a": "x", "b": None}) == []
    items = obj_schema({"l": {"type": "array", "items": {"type": "string"}}})
    assert 'spec.l[0] in body must be of type string: "null"' in errors_for(items, {"l": [None]})[0]
    nullable_items = obj_schema({"l": {"type": "array", "items": {"type": "string", "nullable": True}}})
    assert errors_for(nullable_items, {"l": [None]}) == []


def test_int_or_string() -> None:
    schema = obj_schema({"q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}})
    assert errors_for(schema, {"q": 2}) == []
    assert errors_for(schema, {"q": "2Gi"}) == []
    errs = errors_for(schema, {"q": 1.5})
    assert errs[0] == 'spec.q: Invalid value: "number": spec.q in body must be of type integer,string: "number"'
    bare = obj_schema({"q": {"x-kubernetes-int-or-string": True}})
    assert errors_for(bare, {"q": True})[0].startswith('spec.q: Invalid value: "boolean"')
    patterned = obj_schema({"q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": "^[0-9]+%$"}})
    assert errors_for(patterned, {"q": 5}) == []  # patterns apply to strings only
    assert "should match" in errors_for(patterned, {"q": "5"})[0]


# --------------------------------------------------------------------------------------
# Value validations
# --------------------------------------------------------------------------------------


def test_required_enum_pattern() -> None:
    schema = obj_schema(
        {"mode": {"type": "string", "enum": ["a", "b"]}, "name": {"type": "string", "pattern": "^[a-z]+$"}, "n": {"type": "integer", "enum": [1, 2]}},
        required=["mode"],
    )
    assert errors_for(schema, {"mode": "a", "name": "abc", "n": 2}) == []
    assert errors_for(schema, {})[0] == "spec.mode: Required value"
    assert errors_for(schema, {"mode": "c"})[0] == 'spec.mode: Unsupported value: "c": supported values: "a", "b"'
    assert errors_for(schema, {"mode": "a", "n": 3})[0] == 'spec.n: Unsupported value: 3: supported values: "1", "2"'
    assert errors_for(schema, {"mode": "a", "name": "ABC"}) == ['spec.name: Invalid value: "ABC": spec.name in body should match \'^[a-z]+$\'']


def test_pattern_is_searched_not_anchored() -> None:
    # Go's regexp.MatchString finds a match anywhere unless the pattern anchors itself.
    schema = obj_schema({"url": {"type": "string", "pattern": "^https?://"}, "x": {"type": "string", "pattern": "[0-9]"}})
    assert errors_for(schema, {"url": "http://p:9090", "x": "abc1def"}) == []


@pytest.mark.parametrize(
    ("bounds", "value", "error"),
    [
        ({"minimum": 1, "maximum": 10}, 1, None),
        ({"minimum": 1, "maximum": 10}, 10, None),
        ({"minimum": 1, "maximum": 10}, 0, "spec.v: Invalid value: 0: spec.v in body should be greater than or equal to 1"),
        ({"minimum": 1, "maximum": 10}, 11, "spec.v: Invalid value: 11: spec.v in body should be less than or equal to 10"),
        ({"minimum": 0, "exclusiveMinimum": True}, 0, "spec.v: Invalid value: 0: spec.v in body should be greater than 0"),
        ({"minimum": 0, "exclusiveMinimum": True}, 0.001, None),
        ({"maximum": 1, "exclusiveMaximum": True}, 1, "spec.v: Invalid value: 1: spec.v in body should be less than 1"),
        ({"maximum": 1, "exclusiveMaximum": False}, 1, None),
        ({"maximum": 0.5}, 0.75, "spec.v: Invalid value: 0.75: spec.v in body should be less than or equal to 0.5"),
        ({"multipleOf": 5}, 15, None),
        ({"multipleOf": 5}, 16, "spec.v: Invalid value: 16: spec.v in body should be a multiple of 5"),
    ],
)
def test_numeric_bounds(bounds: dict[str, Any], value: Any, error: str | None) -> None:
    errs = errors_for(obj_schema({"v": {"type": "number", **bounds}}), {"v": value})
    assert errs == ([] if error is None else [error])


def test_lengths_and_sizes() -> None:
    schema = obj_schema(
        {
            "s": {"type": "string", "minLength": 2, "maxLength": 4},
            "l": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
            "m": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 2},
        }
    )
    good = {"s": "abc", "l": [1], "m": {"a": "x"}}
    assert errors_for(schema, good) == []
    assert errors_for(schema, {**good, "s": "a"}) == ['spec.s: Invalid value: "a": spec.s in body should be at least 2 chars long']
    assert errors_for(schema, {**good, "s": "abcde"})[0] == "spec.s: Too long: may not be longer than 4"
    assert errors_for(schema, {**good, "s": "ééé"}) == []  # lengths count characters, not bytes
    assert errors_for(schema, {**good, "l": []}) == ["spec.l: Invalid value: 0: spec.l in body should have at least 1 items"]
    assert errors_for(schema, {**good, "l": [1, 2, 3]})[0] == "spec.l: Too many: 3: must have at most 2 items"
    assert errors_for(schema, {**good, "m": {}}) == ["spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"]
    assert errors_for(schema, {**good, "m": {"a": "1", "b": "2", "c": "3"}})[0] == "spec.m: Too many: 3: must have at most 2 items"


def test_items_properties_and_additional_properties_recurse_with_paths() -> None:
    schema = obj_schema(
        {
            "steps": {"type": "array", "items": obj_schema({"weight": {"type": "integer", "maximum": 100}})},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
            "nested": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
        }
    )
    errs = errors_for(schema, {"steps": [{"weight": 5}, {"weight": 101}], "labels": {"team": "risk!"}, "nested": {"k": [1, "x"]}})
    assert "spec.steps[1].weight: Invalid value: 101: spec.steps[1].weight in body should be less than or equal to 100" in errs
    assert "spec.labels.team: Too long: may not be longer than 3" in errs  # kube-openapi writes map keys with a dot
    assert any(e.startswith('spec.nested.k[1]: Invalid value: "string"') for e in errs)


def test_formats() -> None:
    schema = obj_schema(
        {
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"},
            "ip": {"type": "string", "format": "ipv4"},
            "data": {"type": "string", "format": "byte"},
            "weird": {"type": "string", "format": "made-up-format"},
            "n": {"type": "integer", "format": "int32"},
        }
    )
    good = {
        "when": "2024-05-01T10:00:00Z",
        "day": "2024-05-01",
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "ip": "10.0.0.1",
        "data": "aGVsbG8=",
        "weird": "anything",
        "n": 5,
    }
    assert errors_for(schema, good) == []
    assert errors_for(schema, {**good, "when": "yesterday"}) == ['spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"']
    assert len(errors_for(schema, {**good, "ip": "10.0.0.300", "id": "nope", "data": "!!"})) == 3


def test_list_type_map_and_set_uniqueness() -> None:
    schema = obj_schema(
        {
            "env": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": obj_schema({"name": {"type": "string"}, "value": {"type": "string"}}, required=["name"]),
            },
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": obj_schema({"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}, required=["port"]),
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        }
    )
    assert errors_for(schema, {"env": [{"name": "A"}, {"name": "B"}], "ports": [{"port": 80}, {"port": 80, "protocol": "UDP"}], "tags": ["x", "y"]}) == []
    assert errors_for(schema, {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}) == [
        'spec.env[1]: Duplicate value: map[string]interface {}{"name":"A"}'
    ]
    # the protocol key is defaulted before the uniqueness check, as on the server
    assert errors_for(schema, {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}) == [
        'spec.ports[1]: Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}'
    ]
    assert errors_for(schema, {"tags": ["x", "y", "x"]}) == ['spec.tags[2]: Duplicate value: "x"']


def test_junctors() -> None:
    one_of = obj_schema({"a": {"type": "string"}, "b": {"type": "string"}}, oneOf=[{"required": ["a"]}, {"required": ["b"]}])
    assert errors_for(one_of, {"a": "x"}) == []
    assert errors_for(one_of, {}) == ["spec: Invalid value: map[string]interface {}{}: spec in body must validate one and only one schema (oneOf)"]
    assert "(oneOf). Found 2 valid alternatives" in errors_for(one_of, {"a": "x", "b": "y"})[0]

    any_of = obj_schema({"a": {"type": "string"}, "b": {"type": "string"}}, anyOf=[{"required": ["a"]}, {"required": ["b"]}])
    assert errors_for(any_of, {"a": "x", "b": "y"}) == []
    assert "spec in body must validate at least one schema (anyOf)" in errors_for(any_of, {})[0]

    all_of = obj_schema({"n": {"type": "integer"}}, allOf=[{"properties": {"n": {"minimum": 1}}}, {"properties": {"n": {"maximum": 5}}}])
    assert errors_for(all_of, {"n": 3}) == []
    assert errors_for(all_of, {"n": 9}) == ["spec.n: Invalid value: 9: spec.n in body should be less than or equal to 5"]

    negated = obj_schema({"a": {"type": "string"}, "b": {"type": "string"}}, **{"not": {"required": ["a", "b"]}})
    assert errors_for(negated, {"a": "x"}) == []
    assert "spec in body must not validate the schema (not)" in errors_for(negated, {"a": "x", "b": "y"})[0]


# --------------------------------------------------------------------------------------
# Unknown fields, pruning, metadata, status
# --------------------------------------------------------------------------------------


def test_unknown_fields_are_errors_in_strict_mode_and_pruned_otherwise() -> None:
    schema = obj_schema({"replicas": {"type": "integer"}, "items": {"type": "array", "items": obj_schema({"a": {"type": "string"}})}})
    spec = {"replica": 3, "items": [{"a": "x", "b": "y"}]}
    assert errors_for(schema, spec) == ['unknown field "spec.replica"', 'unknown field "spec.items[0].b"']
    assert errors_for(schema, spec, strict=False) == []
    assert validate(widget({}, specs={}), make_crd(schema)) == ['unknown field "specs"']


def test_preserve_unknown_fields_and_embedded_resources() -> None:
    schema = obj_schema(
        {
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "partial": obj_schema({"known": {"type": "integer"}}, **{"x-kubernetes-preserve-unknown-fields": True}),
            "template": {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
        }
    )
    spec = {
        "config": {"anything": {"goes": [1, 2]}},
        "partial": {"known": 1, "extra": True},
        "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}},
    }
    assert errors_for(schema, spec) == []
    assert "spec.partial.known in body must be of type integer" in errors_for(schema, {"partial": {"known": "x"}})[0]


def test_metadata_name_namespace_and_labels() -> None:
    crd = make_crd(obj_schema({}))
    assert validate(widget({}), crd) == []
    bad_name = widget({})
    bad_name["metadata"]["name"] = "Fraud_Scorer"
    assert validate(bad_name, crd)[0].startswith('metadata.name: Invalid value: "Fraud_Scorer": a lowercase RFC 1123 subdomain')
    long_name = widget({})
    long_name["metadata"]["name"] = "a" * 254
    assert any("must be no more than 253 characters" in e for e in validate(long_name, crd))
    dotted = widget({})
    dotted["metadata"]["name"] = "model.v2"
    assert validate(dotted, crd) == []
    nameless = widget({})
    del nameless["metadata"]["name"]
    assert validate(nameless, crd) == []  # only checked when present
    labels = widget({})
    labels["metadata"]["labels"] = {"app.kubernetes.io/name": "ok", "bad key!": "x", "team": "has space"}
    errs = validate(labels, crd)
    assert any(e.startswith('metadata.labels: Invalid value: "bad key!"') for e in errs)
    assert any(e.startswith('metadata.labels: Invalid value: "has space"') for e in errs)
    typo = widget({})
    typo["metadata"]["lables"] = {}
    assert validate(typo, crd) == ['unknown field "metadata.lables"']
    cluster = make_crd(obj_schema({}), scope="Cluster")
    assert validate(widget({}), cluster) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_metadata_name_restriction_in_the_schema_applies() -> None:
    root = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}}, "spec": {"type": "object"}},
    }
    crd = make_crd(root=root)
    assert validate(widget({}), crd) == []
    long = widget({})
    long["metadata"]["name"] = "abcdefg"
    assert validate(long, crd)[0] == "metadata.name: Too long: may not be longer than 5"


def test_status_is_dropped_on_create_when_the_status_subresource_is_enabled() -> None:
    status = obj_schema({"phase": {"type": "string", "enum": ["Ready"]}})
    crd = make_crd(obj_schema({}), status=status, subresources={"status": {}})
    obj = widget({}, status={"phase": "Bogus"})
    assert validate(obj, crd) == []
    assert validate(obj, crd, subresource="status")[0].startswith('status.phase: Unsupported value: "Bogus"')
    without_subresource = make_crd(obj_schema({}), status=status)
    assert validate(obj, without_subresource)[0].startswith('status.phase: Unsupported value: "Bogus"')


# --------------------------------------------------------------------------------------
# Defaulting
# --------------------------------------------------------------------------------------


DEFAULTED = obj_schema(
    {
        "port": {"type": "integer", "default": 3000},
        "mode": {"type": "string", "default": "auto", "nullable": True},
        "policy": obj_schema({"retries": {"type": "integer", "default": 3}, "backoff": {"type": "string", "default": "1s"}}, default={}),
        "steps": {"type": "array", "items": obj_schema({"weight": {"type": "integer", "default": 10}})},
        "labels": {"type": "object", "additionalProperties": obj_schema({"v": {"type": "string", "default": "x"}})},
        "name": {"type": "string", "default": "n"},
    },
    required=["port"],
)


def test_apply_defaults_like_the_api_server() -> None:
    obj = widget({"steps": [{}, {"weight": 50}], "labels": {"a": {}}, "mode": None, "name": None})
    out = apply_defaults(obj, make_crd(DEFAULTED))
    assert out["spec"] == {
        "port": 3000,
        "mode": None,  # nullable: a null is kept, not defaulted
        "policy": {"retries": 3, "backoff": "1s"},  # a defaulted object gets its own nested defaults
        "steps": [{"weight": 10}, {"weight": 50}],
        "labels": {"a": {"v": "x"}},
        "name": "n",  # a non-nullable null is replaced by the default
    }
    assert "port" not in obj["spec"]  # the input is not modified


def test_defaults_apply_before_validation_and_cel() -> None:
    schema = with_rule(DEFAULTED, "self.port == 3000 && self.policy.retries == 3", message="defaults were not applied")
    assert errors_for(schema, {}) == []  # 'port' is required but defaulted
    assert errors_for(schema, {"port": 80}) == ["spec: Invalid value: defaults were not applied"]


# --------------------------------------------------------------------------------------
# CEL rules
# --------------------------------------------------------------------------------------

AUTOSCALING = obj_schema(
    {
        "minReplicas": {"type": "integer", "default": 1},
        "maxReplicas": {"type": "integer"},
        "scaleToZero": {"type": "boolean"},
    },
    required=["maxReplicas"],
    **{
        "x-kubernetes-validations": [
            {
                "rule": "self.maxReplicas >= self.minReplicas",
                "message": "maxReplicas must be greater than or equal to minReplicas",
                "fieldPath": ".maxReplicas",
            },
            {"rule": "self.minReplicas > 0 || (has(self.scaleToZero) && self.scaleToZero)"},
        ]
    },
)


def test_cel_rule_message_field_path_and_default_message() -> None:
    schema = obj_schema({"autoscaling": AUTOSCALING})
    assert errors_for(schema, {"autoscaling": {"maxReplicas": 3}}) == []
    assert errors_for(schema, {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}) == [
        "spec.autoscaling.maxReplicas: Invalid value: maxReplicas must be greater than or equal to minReplicas"
    ]
    assert errors_for(schema, {"autoscaling": {"minReplicas": 0, "maxReplicas": 2}}) == [
        "spec.autoscaling: Invalid value: failed rule: self.minReplicas > 0 || (has(self.scaleToZero) && self.scaleToZero)"
    ]


def test_cel_scalar_rules_show_the_value() -> None:
    schema = obj_schema({"name": with_rule({"type": "string"}, "self.startsWith('hw-')", message="must start with hw-")})
    assert errors_for(schema, {"name": "x"}) == ['spec.name: Invalid value: "x": must start with hw-']


def test_cel_message_expression_and_reasons() -> None:
    base = obj_schema({"n": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}})
    schema = with_rule(base, "self.n < 10", message="static", messageExpression="'n is ' + string(self.n) + ', want < 10'")
    assert errors_for(schema, {"n": 12}) == ["spec: Invalid value: n is 12, want < 10"]
    broken = with_rule(base, "self.n < 10", message="static", messageExpression="self.missing + 'x'")
    assert errors_for(broken, {"n": 12}) == ["spec: Invalid value: static"]  # a failing messageExpression falls back
    forbidden = with_rule(base, "!has(self.tags)", message="tags are not allowed", fieldPath=".tags", reason="FieldValueForbidden")
    assert errors_for(forbidden, {"tags": []}) == ["spec.tags: Forbidden: tags are not allowed"]
    required = with_rule(base, "has(self.n)", message="n is needed", fieldPath=".n", reason="FieldValueRequired")
    assert errors_for(required, {}) == ["spec.n: Required value: n is needed"]
    duplicate = obj_schema({"tags": with_rule({"type": "array", "items": {"type": "string"}}, "self.size() == 0", reason="FieldValueDuplicate")})
    assert errors_for(duplicate, {"tags": ["a"]}) == ["spec.tags: Duplicate value"]


def test_cel_field_path_into_a_map_uses_a_key() -> None:
    schema = with_rule(
        obj_schema({"labels": {"type": "object", "additionalProperties": {"type": "string"}}}),
        "!('team' in self.labels) || self.labels['team'] != ''",
        message="team must not be empty",
        fieldPath=".labels['team']",
    )
    assert errors_for(schema, {"labels": {"team": ""}}) == ["spec.labels[team]: Invalid value: team must not be empty"]


def test_cel_sum_over_a_map_list() -> None:
    variants = {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": obj_schema({"name": {"type": "string"}, "weight": {"type": "integer"}}, required=["name"]),
    }
    schema = with_rule(obj_schema({"variants": variants}), "self.variants.map(v, v.weight).sum() == 100", message="weights must sum to 100", fieldPath=".variants")
    assert errors_for(schema, {"variants": [{"name": "a", "weight": 60}, {"name": "b", "weight": 40}]}) == []
    assert errors_for(schema, {"variants": [{"name": "a", "weight": 60}, {"name": "b", "weight": 30}]}) == [
        "spec.variants: Invalid value: weights must sum to 100"
    ]
    # uniqueness of map keys is not a blocking error: CEL still runs, as on the server
    assert errors_for(schema, {"variants": [{"name": "a", "weight": 60}, {"name": "a", "weight": 30}]}) == [
        'spec.variants[1]: Duplicate value: map[string]interface {}{"name":"a"}',
        "spec.variants: Invalid value: weights must sum to 100",
    ]


@pytest.mark.parametrize(
    "rule",
    [
        # Kubernetes list library
        "[1, 2, 3].sum() == 6",
        "[1.5, 2.5].sum() == 4.0",
        "[].sum() == 0",
        "[3, 1, 2].min() == 1",
        "[3, 1, 2].max() == 3",
        "[1, 2, 2, 3].isSorted() && ![2, 1].isSorted()",
        "['a', 'b', 'c'].indexOf('b') == 1 && [1, 2].indexOf(3) == -1",
        "[1, 2, 1].lastIndexOf(1) == 2",
        # strings
        "self.name.matches('^[a-z]+-[0-9]+$')",
        "self.name.startsWith('fraud') && self.name.endsWith('-3') && self.name.contains('d-')",
        "'MiXeD'.lowerAscii() == 'mixed' && 'abc'.upperAscii() == 'ABC'",
        "'a/b/c'.split('/') == ['a', 'b', 'c'] && 'a/b/c'.split('/', 2) == ['a', 'b/c']",
        "self.name.size() == 7 && size(self.name) == 7",
        "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3",
        "['a', 'b'].join('-') == 'a-b' && 'aXbX'.replace('X', '') == 'ab' && '  x '.trim() == 'x'",
        "'hello'.substring(1, 3) == 'el' && 'hello'.charAt(1) == 'e'",
        # macros and has()
        "has(self.name) && !has(self.other)",
        "self.list.all(x, x > 0) && self.list.exists(x, x == 2) && self.list.exists_one(x, x == 3)",
        "self.list.filter(x, x > 1) == [2, 3] && self.list.map(x, x * 2) == [2, 4, 6]",
        "self.list.map(x, x > 1, x * 10) == [20, 30]",
        "self.labels.all(k, k.startsWith('app')) && 'app' in self.labels",
        # numbers: a `number` field is a double even when written as 1, and compares with ints
        "self.ratio == 1.0 && self.ratio > 0 && self.ratio < 2",
        "duration('1h30m') > duration('90s')",
        "type(self.list) == list",
    ],
)
def test_cel_library_functions(rule: str) -> None:
    schema = with_rule(
        obj_schema(
            {
                "name": {"type": "string"},
                "other": {"type": "string"},
                "list": {"type": "array", "items": {"type": "integer"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "ratio": {"type": "number"},
            }
        ),
        rule,
    )
    assert errors_for(schema, {"name": "fraud-3", "list": [1, 2, 3], "labels": {"app": "x"}, "ratio": 1}) == []


def test_cel_rules_run_on_every_list_item_and_map_value() -> None:
    item = with_rule(obj_schema({"w": {"type": "integer"}}), "self.w <= 100", message="too heavy")
    schema = obj_schema(
        {"steps": {"type": "array", "items": item}, "byName": {"type": "object", "additionalProperties": item}}
    )
    errs = errors_for(schema, {"steps": [{"w": 1}, {"w": 101}], "byName": {"a": {"w": 200}}})
    assert errs == ["spec.steps[1]: Invalid value: too heavy", "spec.byName[a]: Invalid value: too heavy"]


def test_cel_property_names_are_escaped() -> None:
    assert escape_cel_property("namespace") == "__namespace__"
    assert escape_cel_property("x-prop") == "x__dash__prop"
    assert escape_cel_property("a.b/c__d") == "a__dot__b__slash__c__underscores__d"
    assert escape_cel_property("has space") is None
    schema = with_rule(
        obj_schema({"namespace": {"type": "string"}, "max-surge": {"type": "integer"}}),
        "has(self.__namespace__) && self.__namespace__ == 'ml' && self.max__dash__surge == 1",
    )
    assert errors_for(schema, {"namespace": "ml", "max-surge": 1}) == []


def test_cel_root_rule_sees_metadata_name() -> None:
    root = {
        "type": "object",
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
        "x-kubernetes-validations": [{"rule": "self.metadata.name.size() <= 5", "message": "name too long"}],
    }
    crd = make_crd(root=root)
    assert validate(widget({}), crd) == []
    long = widget({})
    long["metadata"]["name"] = "much-too-long"
    assert validate(long, crd) == ["<nil>: Invalid value: name too long"]


def test_transition_rules_are_skipped() -> None:
    schema = obj_schema({"name": with_rule({"type": "string"}, "self == oldSelf", message="immutable")})
    assert errors_for(schema, {"name": "x"}) == []


def test_unsupported_cel_never_passes_silently() -> None:
    schema = obj_schema({"q": with_rule({"type": "string"}, "quantity(self).isGreaterThan(quantity('1'))")})
    (err,) = errors_for(schema, {"q": "2"})
    assert err.startswith("spec.q: cannot evaluate CEL rule \"quantity(self).isGreaterThan(quantity('1'))\"")
    assert "quantity" in err and "not supported" in err
    # unsupported even where short-circuiting would have skipped the call
    lazy = obj_schema({"q": with_rule({"type": "string"}, "true || self.format('x') == ''")})
    assert "cannot evaluate CEL rule" in errors_for(lazy, {"q": "2"})[0]
    optional_syntax = obj_schema({"o": with_rule(obj_schema({"a": {"type": "string"}}), "self.?a.orValue('') == ''")})
    assert "cannot evaluate CEL rule" in errors_for(optional_syntax, {"o": {}})[0]


def test_cel_runtime_errors_reject_like_the_server() -> None:
    schema = obj_schema({"o": with_rule(obj_schema({"a": {"type": "string"}}), "self.a == 'x'", message="a must be x")})
    assert errors_for(schema, {"o": {}}) == ['spec.o: Invalid value: "object": no such key: a evaluating rule: a must be x']


def test_blocking_errors_skip_cel_and_others_do_not() -> None:
    schema = with_rule(
        obj_schema({"n": {"type": "integer"}, "s": {"type": "string", "pattern": "^[a-z]+$"}}, required=["n"]),
        "has(self.s) && self.s.size() > 3",
        message="s too short",
    )
    assert errors_for(schema, {"s": "ab"}) == [
        "spec.n: Required value",
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    ]
    # a pattern violation does not block: CEL still runs
    errs = errors_for(schema, {"n": 1, "s": "AB"})
    assert errs[0].startswith('spec.s: Invalid value: "AB"')
    assert errs[1] == "spec: Invalid value: s too short"


def test_cel_stats_count_evaluations() -> None:
    crd = make_crd(obj_schema({"autoscaling": AUTOSCALING}))
    validator = CrdValidator(crd)
    validator.validate(widget({"autoscaling": {"maxReplicas": 3}}))
    validator.validate(widget({"autoscaling": {"minReplicas": 4, "maxReplicas": 3}}))
    stats = validator.cel_stats["self.maxReplicas >= self.minReplicas"]
    assert (stats.evaluated, stats.failed, stats.gaps) == (2, 1, [])
    assert [path for path, _ in iter_cel_rules(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])] == ["spec.autoscaling", "spec.autoscaling"]


def test_go_duration_parser() -> None:
    assert parse_go_duration("1h30m").total_seconds() == 5400  # type: ignore[union-attr]
    assert parse_go_duration("250ms").total_seconds() == 0.25  # type: ignore[union-attr]
    assert parse_go_duration("-1.5h").total_seconds() == -5400  # type: ignore[union-attr]
    assert parse_go_duration("5 minutes") is None


def test_duration_and_date_time_formats_become_cel_types() -> None:
    schema = obj_schema(
        {
            "timeout": {"type": "string", "format": "duration"},
            "at": {"type": "string", "format": "date-time"},
        }
    )
    rule = "self.timeout > duration('1s') && self.at > timestamp('2020-01-01T00:00:00Z')"
    assert errors_for(with_rule(schema, rule), {"timeout": "5s", "at": "2024-01-01T00:00:00Z"}) == []


def test_field_error_rendering() -> None:
    assert str(FieldError("Required value", "spec.model")) == "spec.model: Required value"
    assert str(FieldError("Invalid value", "spec.x", 1.5, "bad")) == "spec.x: Invalid value: 1.5: bad"
    assert str(FieldError("Invalid value", "spec.x", True, "bad")) == "spec.x: Invalid value: true: bad"
    assert str(FieldError("Invalid value", "", None, "bad")) == '<nil>: Invalid value: "null": bad'
    assert str(FieldError("Duplicate value", "spec.l[1]", {"b": 2, "a": "x"})) == 'spec.l[1]: Duplicate value: map[string]interface {}{"a":"x", "b":2}'


# --------------------------------------------------------------------------------------
# Structural schema check
# --------------------------------------------------------------------------------------


def _structural(spec_schema: dict[str, Any]) -> list[str]:
    return structural_problems(make_crd(spec_schema))


def test_structural_accepts_the_usual_idioms() -> None:
    schema = obj_schema(
        {
            "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"x-kubernetes-preserve-unknown-fields": True},
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
            "oneOfFields": obj_schema({"a": {"type": "string"}, "b": {"type": "string"}}, oneOf=[{"required": ["a"]}, {"required": ["b"]}]),
            "n": {"type": "number", "nullable": True, "default": 0.5, "minimum": 0},
        }
    )
    assert _structural(schema) == []
    assert_structural(make_crd(schema))


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (obj_schema({"a": {"description": "no type"}}), "properties[a].type: Required value"),
        (obj_schema({"a": {"$ref": "#/definitions/A"}}), "$ref is not allowed"),
        (obj_schema({"a": {"type": ["string", "null"]}}), "must be a single type, not a union"),
        (obj_schema({"a": {"type": "null"}}), "not a structural type"),
        (obj_schema({"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}), "anyOf[1].type: must not be set inside"),
        (obj_schema({"a": {"type": "object", "additionalProperties": False}}), "additionalProperties: false is not allowed"),
        (
            obj_schema({"a": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}}}),
            "mutually exclusive",
        ),
        (obj_schema({"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}), "uniqueItems: cannot be true"),
        (obj_schema({"a": {"type": "array"}, "b": {"type": "array", "items": {}}}), "items.type: Required value"),
        (obj_schema({"a": {"type": "string", "x-kubernetes-preserve-unknown-fields": False}}), "must be true or undefined"),
        (obj_schema({"a": {"type": "string"}}, oneOf=[{"properties": {"b": {"minLength": 1}}}]), "must have a corresponding property"),
        (
            obj_schema(
                {
                    "l": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": obj_schema({"name": {"type": "string"}}),
                    }
                }
            ),
            "'name' must be required or have a default",
        ),
        (obj_schema({"a": {"type": "integer", "default": "three"}}), "properties[a].default"),
        (obj_schema({"a": {"type": "integer", "minimum": 1, "default": 0}}), "should be greater than or equal to 1"),
    ],
)
def test_structural_rejects(schema: dict[str, Any], problem: str) -> None:
    problems = _structural(schema)
    assert any(problem in p for p in problems), problems
    with pytest.raises(AssertionError, match="is not structural"):
        assert_structural(make_crd(schema))


def test_structural_metadata_may_only_restrict_name() -> None:
    root = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "labels": {"type": "object"}}}},
    }
    problems = structural_problems(make_crd(root=root))
    assert any("only name and generateName" in p for p in problems)


def test_structural_root_must_be_an_object() -> None:
    assert any("must be object at the root" in p for p in structural_problems(make_crd(root={"type": "string"})))


def test_load_and_validate_from_yaml_text(tmp_path: Path) -> None:
    """The module works end to end on files, as the manifest tests use it."""
    import yaml

    crd_path = tmp_path / "crd.yaml"
    crd_path.write_text(yaml.safe_dump(make_crd(obj_schema({"size": {"type": "integer", "maximum": 3}}))))
    manifest = tmp_path / "w.yaml"
    manifest.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: {GROUP}/v1
            kind: Widget
            metadata: {{name: w}}
            spec: {{size: 4}}
            """
        )
    )
    (obj,) = load_yaml_documents(manifest)
    assert validate(obj, load_crd(crd_path)) == ["spec.size: Invalid value: 4: spec.size in body should be less than or equal to 3"]
