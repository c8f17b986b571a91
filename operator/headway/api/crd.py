"""Build the ModelDeployment CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema (draft 2020-12 with $refs, anyOf-null for optionals); a CRD
needs a *structural* OpenAPI v3 schema: no $ref, one type per node, no nulls. This module
converts one into the other and attaches each model's CEL rules (``__cel__``) as
``x-kubernetes-validations``. Pure: no I/O; ``hack/gen_crds.py`` writes the files.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

import headway
from headway.api.base import ApiModel
from headway.api.spec import ModelDeploymentSpec
from headway.api.status import ModelDeploymentStatus

CRD_NAME = f"{headway.PLURAL}.{headway.GROUP}"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Lifecycle phase."},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stable.bento", "description": "Bento serving production."},
    {"name": "Candidate", "type": "string", "jsonPath": ".status.candidate.bento", "description": "Bento being rolled out."},
    {"name": "Traffic", "type": "string", "jsonPath": ".status.traffic.split",
     "description": "Live traffic share per variant, percent (stable/candidate, or an experiment's variants)."},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready", "description": "Ready stable replicas / desired."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_KEEP = {
    "type", "description", "default", "enum", "minimum", "maximum", "pattern", "minLength", "maxLength",
    "minItems", "maxItems", "minProperties", "maxProperties", "format", "required", "properties", "items",
    "additionalProperties", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-validations", "anyOf",
    "exclusiveMinimum", "exclusiveMaximum",
}


def _models(root: type[BaseModel]) -> dict[str, type[ApiModel]]:
    """Every ApiModel reachable from root, by class name (the $defs key pydantic uses)."""
    found: dict[str, type[ApiModel]] = {}

    def visit(tp: Any) -> None:
        for arg in typing.get_args(tp):
            visit(arg)
        if isinstance(tp, type) and issubclass(tp, ApiModel) and tp.__name__ not in found:
            found[tp.__name__] = tp
            for field in tp.model_fields.values():
                visit(field.annotation)

    visit(root)
    return found


def _cel(model: type[ApiModel]) -> list[dict[str, str]]:
    rules = []
    for rule in model.__cel__:
        entry = {"rule": rule.cel, "message": rule.message}
        if rule.field_path:
            entry["fieldPath"] = rule.field_path
        rules.append(entry)
    return rules


def _structural(node: dict[str, Any], defs: dict[str, Any], models: dict[str, type[ApiModel]]) -> dict[str, Any]:
    """One pydantic JSON-schema node as a structural OpenAPI node.

    Bounds carry through as they are: pydantic's max_length becomes maxLength on strings,
    maxItems on lists and maxProperties on dicts (and Annotated item/value constraints land on
    ``items`` / ``additionalProperties``). ``propertyNames`` (dict key constraints) is dropped:
    structural schemas cannot say it, so pydantic alone enforces it.
    """
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        target = dict(defs[name])
        if "description" in node:  # the field's own words beat the class docstring
            target["description"] = node["description"]
        target.update({k: v for k, v in node.items() if k != "description"})
        if models and name in models and models[name].__cel__:
            target["x-kubernetes-validations"] = _cel(models[name])
        return _structural(target, defs, models)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {options}")
        merged = dict(options[0])
        merged.update({k: v for k, v in node.items() if k != "default" or v is not None})
        if "$ref" in merged:
            ref = merged.pop("$ref")
            return _structural({"$ref": ref, **merged}, defs, models)
        return _structural(merged, defs, models)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out = {k: v for k, v in node.items() if k in _KEEP}
    if out.get("default", 0) is None:
        del out["default"]
    # Draft 2020-12 exclusive bounds are numbers; OpenAPI v3.0 wants a flag beside minimum.
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in out and not isinstance(out[bound], bool):
            out[flag] = out[bound]
            out[bound] = True
    if "properties" in out:
        out["type"] = "object"
        out["properties"] = {k: _structural(v, defs, models) for k, v in out["properties"].items()}
        out.pop("additionalProperties", None)
    elif out.get("type") == "object":
        extra = out.pop("additionalProperties", True)
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _structural(extra, defs, models)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in out:
        out["items"] = _structural(out["items"], defs, models)
    return out


def build_schema(model: type[BaseModel], *, cel: bool = True) -> dict[str, Any]:
    """The structural OpenAPI schema of one pydantic model, CEL rules included unless cel=False."""
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = raw.pop("$defs", {})
    models = _models(model) if cel else {}
    schema = _structural(raw, defs, models)
    if cel and issubclass(model, ApiModel) and model.__cel__:
        schema["x-kubernetes-validations"] = _cel(model)
    return schema


def crd_envelope(
    *, kind: str, plural: str, singular: str, short_names: tuple[str, ...], categories: list[str], description: str,
    properties: dict[str, Any], printer_columns: list[dict[str, Any]], subresources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The CustomResourceDefinition around one version's schema: what every Headway CRD shares
    (group, version, namespaced scope, labels, the apiVersion/kind/metadata properties, spec required).

    ``properties`` holds the top-level sections besides those three (spec, and status if any)."""
    version: dict[str, Any] = {"name": headway.VERSION, "served": True, "storage": True}
    if subresources is not None:
        version["subresources"] = subresources
    version["additionalPrinterColumns"] = printer_columns
    version["schema"] = {
        "openAPIV3Schema": {
            "type": "object",
            "description": description,
            "required": ["spec"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}, **properties},
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{headway.GROUP}",
            "labels": {"app.kubernetes.io/name": "headway", "app.kubernetes.io/part-of": "headway"},
        },
        "spec": {
            "group": headway.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": categories,
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def build_crd() -> dict[str, Any]:
    """The complete CustomResourceDefinition manifest."""
    spec_schema = build_schema(ModelDeploymentSpec)
    # No CEL under status: the operator writes it (its validity is the code's business), and
    # each rule there (status.stableModel.env, ...) would only spend the CRD's cost budget.
    status_schema = build_schema(ModelDeploymentStatus, cel=False)
    return crd_envelope(
        kind=headway.KIND, plural=headway.PLURAL, singular=headway.SINGULAR, short_names=headway.SHORT_NAMES,
        categories=["headway", "ml"], description="A model served by BentoML and delivered safely by Headway.",
        properties={"spec": spec_schema, "status": status_schema}, printer_columns=PRINTER_COLUMNS, subresources={"status": {}},
    )
