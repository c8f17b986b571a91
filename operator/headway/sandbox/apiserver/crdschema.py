"""Validate Kubernetes objects against a CustomResourceDefinition the way kube-apiserver does.

There is no API server on the machines that run our tests, so this module re-implements the
parts of the apiextensions-apiserver request path that decide whether a custom object is
accepted, in the order the server runs them:

1. **Version lookup.** The object's ``apiVersion``/``kind`` must name a version the CRD serves
   (kubectl: ``no matches for kind "X" in version "g/v"``).
2. **Strict field validation** (kubectl's default, ``--validate=strict``): fields the schema does
   not specify are rejected as ``unknown field "spec.foo"``; with ``strict=False`` they are
   pruned silently, as the server's pruning does.
3. **Defaulting** (``default``), after dropping non-nullable ``null`` fields, recursively and
   top-down exactly like ``structuraldefaulting.Default``.
4. **OpenAPI v3 validation** (kube-openapi): type, enum, pattern, bounds, lengths, sizes,
   ``required``, ``format``, ``nullable``, ``x-kubernetes-int-or-string``, ``allOf`` /
   ``anyOf`` / ``oneOf`` / ``not``; then ``metadata`` (ObjectMeta: name, namespace, labels...)
   and ``x-kubernetes-list-type`` ``map``/``set`` uniqueness.
5. **CEL** ``x-kubernetes-validations`` — skipped, with the server's "some validation rules were
   not checked" error, when step 4 found a *blocking* error (type, required, enum, too long,
   too many), as ``customResourceStrategy.Validate`` does.

Errors are the server's ``field.Error`` strings, e.g.
``spec.model.image: Required value`` or
``spec.autoscaling.maxReplicas: Invalid value: maxReplicas must be greater than or equal to minReplicas``
(a failed CEL rule on an object or array shows no value, as since Kubernetes 1.30; older
servers printed ``Invalid value: "object": ...``).

CEL library
-----------
Rules are evaluated with ``common-expression-language`` (module ``cel``, Python bindings of
the Rust ``cel`` crate) rather than ``cel-python`` (``celpy``), because it is closer to the
cel-go configuration Kubernetes uses: it has heterogeneous equality and cross-type numeric
comparison (``1 == 1.0``, ``1 < 1.5``, ``[1, 2].exists(x, x == 'a')`` evaluate in cel-go and in
the Rust crate but raise "no matching overload" in celpy), the three-argument ``map`` macro,
and an RE2-like regex engine; it also compiles ~20x faster, which matters for the Gateway API
CRDs with hundreds of rules. Neither library ships the Kubernetes CEL libraries, so the list
and string extensions our CRD and the third-party CRDs use are registered below
(``sum min max isSorted indexOf lastIndexOf lowerAscii upperAscii split join replace trim
substring charAt``).

What is approximated (and where this differs from a real API server)
--------------------------------------------------------------------
* No CEL *type checking* at CRD registration and no cost budget: a rule that names a field the
  schema lacks only fails when it is evaluated, and expensive rules are not refused.
* Transition rules (any rule mentioning ``oldSelf``) are skipped on creates; ``review(old=...)``
  evaluates them on updates (items correlate with old ones in ``map`` lists only, as on the server;
  ``optionalOldSelf`` is not supported).
* A rule using a function we do not provide (``quantity()``, ``url()``, ``ip()``, ``format()``,
  the ``.?`` optional syntax, ...) is *not* silently passed: it yields
  ``<path>: cannot evaluate CEL rule '<rule>': <reason>``.
* The Rust crate counts ``size()`` of a string in UTF-8 bytes, cel-go in code points (only
  differs for non-ASCII strings); ``string(duration)`` formats as ``1m30s`` not ``90s``.
* ``format`` checks cover the common string formats (date-time, date, duration, byte, uuid,
  ipv4, ipv6, cidr, hostname, email, mac); unknown formats are ignored, as the server does.
* Patterns use Python ``re`` (RE2 and Python agree on the constructs CRDs use: classes,
  anchors, alternation, repetition; Python additionally knows look-around and back-references,
  which RE2 would refuse when the CRD is created).
* Unknown fields are reported *and* validation continues with them pruned (the server stops
  at the strict-decoding error); duplicate YAML keys are not detected.
* The status subresource: like a create, ``status`` is dropped before validation when the CRD
  has ``subresources.status`` (pass ``subresource="status"`` to validate a status write).
* ``metadata`` is checked for the ObjectMeta rules a create enforces (name, generateName,
  namespace, labels, annotations, finalizers, ownerReferences) — not for managedFields.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import ipaddress
import json
import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cel
import yaml

__all__ = [
    "CelRuleStats",
    "CrdValidator",
    "FieldError",
    "Review",
    "apply_defaults",
    "assert_structural",
    "iter_cel_rules",
    "load_crd",
    "load_yaml_documents",
    "structural_problems",
    "validate",
]

JSON = Any
Schema = dict[str, Any]

# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


class _JsonLikeLoader(yaml.SafeLoader):
    """A SafeLoader that keeps timestamps as strings, like kubectl's YAML-to-JSON step."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml_documents(path: str | Path) -> list[Any]:
    """Every non-empty YAML document of a file, timestamps kept as strings."""
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=_JsonLikeLoader) if doc is not None]


def load_crd(path: str | Path) -> dict[str, Any]:
    """The CustomResourceDefinition in a YAML (or JSON) file; the first one if there are several."""
    for doc in load_yaml_documents(path):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            return doc
    raise ValueError(f"{path}: no CustomResourceDefinition found")


# --------------------------------------------------------------------------------------
# Field errors, formatted like k8s.io/apimachinery/pkg/util/validation/field
# --------------------------------------------------------------------------------------

REQUIRED = "Required value"
INVALID = "Invalid value"
NOT_SUPPORTED = "Unsupported value"
DUPLICATE = "Duplicate value"
FORBIDDEN = "Forbidden"
TOO_LONG = "Too long"
TOO_MANY = "Too many"
TYPE_INVALID = "Invalid value (type)"  # rendered as "Invalid value"; kept apart because it blocks CEL
NO_MATCH = "no matches"
UNKNOWN_FIELD = "unknown field"
CEL_GAP = "cannot evaluate"

# Error types after which the server does not run CEL rules (hasBlockingErr in strategy.go).
_BLOCKING = {NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID}


class _Omit:
    """field.OmitValueType: the error shows no value (objects and arrays in CEL errors)."""

    def __repr__(self) -> str:
        return "<omit>"


OMIT = _Omit()


@dataclass(frozen=True)
class FieldError:
    """One validation error; ``str()`` gives the text kube-apiserver would return."""

    type: str
    path: str
    value: Any = OMIT
    detail: str = ""

    def __str__(self) -> str:
        if self.type == UNKNOWN_FIELD:
            return f'unknown field "{self.path}"'
        if self.type in (NO_MATCH, CEL_GAP):
            return f"{self.path}: {self.detail}" if self.path else self.detail
        kind = INVALID if self.type == TYPE_INVALID else self.type
        if self.type in (REQUIRED, FORBIDDEN, TOO_LONG) or self.value is OMIT:
            body = kind
        else:
            body = f"{kind}: {_go_value(self.value)}"
        if self.detail:
            body += f": {self.detail}"
        return f"{self.path or '<nil>'}: {body}"

    @property
    def blocking(self) -> bool:
        """Whether the API server would skip CEL rules because of this error."""
        return self.type in _BLOCKING


def _go_float(value: float) -> str:
    """Go's %v for a float64 (shortest representation, exponent from 1e21)."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _go_num(value: int | float) -> str:
    return str(value) if isinstance(value, int) else _go_float(value)


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _go_value(value: Any) -> str:
    """How field.Error prints a bad value: %v for scalars, %q for strings, %#v otherwise."""
    if value is None:
        return '"null"'  # field.Error turns a nil value into the string "null", printed with %q
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _go_num(value)
    if isinstance(value, str):
        return _go_quote(value)
    return _go_sharp_v(value)


def _go_sharp_v(value: Any) -> str:
    """Go's %#v of an unstructured JSON value (map[string]interface {}{...})."""
    if isinstance(value, dict):
        inner = ", ".join(f"{_go_quote(k)}:{_go_sharp_v(v)}" for k, v in sorted(value.items()))
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list):
        return f"[]interface {{}}{{{', '.join(_go_sharp_v(v) for v in value)}}}"
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_quote(value)
    return repr(value)


# --------------------------------------------------------------------------------------
# Paths: kube-openapi writes map keys as ".key", field.Path (CEL, list types) as "[key]"
# --------------------------------------------------------------------------------------

Segment = tuple[str, str | int]  # ("f", name) | ("i", index) | ("k", map key)


def _render(path: tuple[Segment, ...], *, keys_as_index: bool = False) -> str:
    out = ""
    for kind, part in path:
        if kind == "i":
            out += f"[{part}]"
        elif kind == "k" and keys_as_index:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------


def _jsonify(value: Any) -> JSON:
    """Deep copy as plain JSON data (dates from YAML become RFC 3339 strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonify(v) for v in value]
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text.replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _json_type(value: Any) -> str:
    """The JSON type name kube-openapi reports for a value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_ok(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    return actual == expected


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _canonical(value: Any) -> str:
    """A hashable canonical form for uniqueness checks (1 and 1.0 collide, as in JSON)."""
    if _is_number(value) and float(value).is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------
# Formats (kube-openapi's strfmt registry, restricted to what CRDs commonly use)
# --------------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$|^[-+]?0$")
_GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# strfmt.ParseDuration also accepts "5 minutes", "1 day"... (the OpenAPI "duration" format).
_STRFMT_DURATION = re.compile(r"^(?:[0-9]+\s*(?:ns|us|µs|ms|s|m|h|d|w|sec|secs|second|seconds|min|mins|minute|minutes|hour|hours|day|days|week|weeks)\s*)+$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def parse_go_duration(text: str) -> dt.timedelta | None:
    """Go's time.ParseDuration ("1h30m", "250ms", "-1.5h"); None if text is not one."""
    if not _GO_DURATION.match(text):
        return None
    sign = -1 if text.startswith("-") else 1
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in _GO_DURATION_PART.findall(text))
    return dt.timedelta(seconds=sign * seconds)


def _parse_datetime(text: str) -> dt.datetime | None:
    if not _DATE_TIME.match(text):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return None


def _valid_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _valid_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return "/" in text
    except ValueError:
        return False


def _valid_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except (ValueError, TypeError):
        return False


_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda s: _parse_datetime(s) is not None,
    "datetime": lambda s: _parse_datetime(s) is not None,
    "date": lambda s: bool(_DATE.match(s)),
    "duration": lambda s: parse_go_duration(s) is not None or bool(_STRFMT_DURATION.match(s)),
    "byte": _valid_base64,
    "uuid": lambda s: bool(_UUID.match(s)),
    "ipv4": lambda s: _valid_ip(s, 4),
    "ipv6": lambda s: _valid_ip(s, 6),
    "cidr": _valid_cidr,
    "hostname": lambda s: bool(_HOSTNAME.match(s)),
    "email": lambda s: bool(_EMAIL.match(s)),
    "mac": lambda s: bool(_MAC.match(s)),
}


def go_anchors(pattern: str) -> str:
    r"""RE2's ``$`` (no multi-line flag) matches only at the end of the text; Python's also
    matches before a trailing newline ("a:1\n" would pass ``^[a-z:0-9]+$``). Use ``\Z``."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append("\\Z" if ch == "$" and not in_class else ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(go_anchors(pattern))


# --------------------------------------------------------------------------------------
# ObjectMeta (what the API server validates in metadata on create)
# --------------------------------------------------------------------------------------

DNS1123_SUBDOMAIN = re.compile(go_anchors(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))
DNS1123_LABEL = re.compile(go_anchors(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
_QUALIFIED_NAME = re.compile(go_anchors(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"))
_LABEL_VALUE = re.compile(go_anchors(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"))
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
}
_OWNER_REFERENCE_FIELDS = {"apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"}


def _dns_subdomain_errors(value: str) -> list[str]:
    out = []
    if len(value) > 253:
        out.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        out.append(_SUBDOMAIN_MSG)
    return out


def _qualified_name_errors(key: str) -> list[str]:
    """IsQualifiedName: an optional DNS-subdomain prefix and a name of at most 63 characters."""
    out: list[str] = []
    prefix, _, name = key.rpartition("/")
    if "/" in key:
        if not prefix:
            out.append("prefix part must be non-empty")
        else:
            out += [f"prefix part {m}" for m in _dns_subdomain_errors(prefix)]
    if not name:
        out.append("name part must be non-empty")
    elif len(name) > 63:
        out.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME.match(name):
        out.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return out


def _label_value_errors(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        out.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
            "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return out


def _validate_metadata(meta: Any, namespaced: bool | None, prefix: str = "metadata") -> list[FieldError]:
    """ValidateObjectMeta for a create (name and namespace only when present)."""
    errs: list[FieldError] = []
    if not isinstance(meta, dict):
        return [FieldError(TYPE_INVALID, prefix, _json_type(meta), f"{prefix} in body must be of type object: {_go_quote(_json_type(meta))}")]
    for key in meta:
        if key not in _OBJECT_META_FIELDS:
            errs.append(FieldError(UNKNOWN_FIELD, f"{prefix}.{key}"))
    name = meta.get("name")
    if name is not None:
        if not isinstance(name, str):
            errs.append(FieldError(TYPE_INVALID, f"{prefix}.name", _json_type(name), "must be a string"))
        else:
            errs += [FieldError(INVALID, f"{prefix}.name", name, m) for m in _dns_subdomain_errors(name)]
    generate = meta.get("generateName")
    if isinstance(generate, str) and generate:
        base = generate[:-1] if generate.endswith("-") else generate
        errs += [FieldError(INVALID, f"{prefix}.generateName", generate, m) for m in _dns_subdomain_errors(base or "a")]
    namespace = meta.get("namespace")
    if namespace is not None:
        if namespaced is False:
            errs.append(FieldError(FORBIDDEN, f"{prefix}.namespace", detail="not allowed on this type"))
        elif not isinstance(namespace, str) or len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
            errs.append(FieldError(INVALID, f"{prefix}.namespace", namespace, _LABEL_MSG))
    for kind in ("labels", "annotations"):
        values = meta.get(kind)
        if values is None:
            continue
        if not isinstance(values, dict):
            errs.append(FieldError(TYPE_INVALID, f"{prefix}.{kind}", _json_type(values), f"{prefix}.{kind} in body must be of type object"))
            continue
        for key, value in values.items():
            errs += [FieldError(INVALID, f"{prefix}.{kind}", key, m) for m in _qualified_name_errors(str(key))]
            if not isinstance(value, str):
                errs.append(FieldError(TYPE_INVALID, f"{prefix}.{kind}[{key}]", _json_type(value), "must be a string"))
            elif kind == "labels":
                errs += [FieldError(INVALID, f"{prefix}.labels", value, m) for m in _label_value_errors(value)]
        if kind == "annotations" and sum(len(str(k)) + len(str(v)) for k, v in values.items()) > 256 * 1024:
            errs.append(FieldError(TOO_LONG, f"{prefix}.annotations", detail="may not be longer than 262144"))
    finalizers = meta.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            errs.append(FieldError(TYPE_INVALID, f"{prefix}.finalizers", _json_type(finalizers), "must be a list of strings"))
        else:
            for i, fin in enumerate(finalizers):
                errs += [FieldError(INVALID, f"{prefix}.finalizers[{i}]", fin, m) for m in _qualified_name_errors(fin)]
    owners = meta.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list):
            errs.append(FieldError(TYPE_INVALID, f"{prefix}.ownerReferences", _json_type(owners), "must be a list"))
        else:
            for i, ref in enumerate(owners):
                path = f"{prefix}.ownerReferences[{i}]"
                if not isinstance(ref, dict):
                    errs.append(FieldError(TYPE_INVALID, path, _json_type(ref), "must be an object"))
                    continue
                errs += [FieldError(UNKNOWN_FIELD, f"{path}.{k}") for k in ref if k not in _OWNER_REFERENCE_FIELDS]
                errs += [FieldError(REQUIRED, f"{path}.{k}") for k in ("apiVersion", "kind", "name", "uid") if not ref.get(k)]
    return errs


# --------------------------------------------------------------------------------------
# CEL: the Kubernetes library functions the Rust crate lacks
# --------------------------------------------------------------------------------------


def _cel_sum(items: list[Any]) -> Any:
    """lists library: sum() of ints, doubles or durations (0 for an empty list)."""
    if not items:
        return 0
    return functools.reduce(operator.add, items)


def _cel_min(items: list[Any]) -> Any:
    if not items:
        raise ValueError("min() called on an empty list")
    return min(items)


def _cel_max(items: list[Any]) -> Any:
    if not items:
        raise ValueError("max() called on an empty list")
    return max(items)


def _cel_is_sorted(items: list[Any]) -> bool:
    return all(a <= b for a, b in zip(items, items[1:], strict=False))


def _cel_index_of(container: Any, needle: Any, *start: int) -> int:
    """lists.indexOf(x) and strings.indexOf(substr[, start]) (code points, like cel-go)."""
    if isinstance(container, str):
        return container.find(needle, *start)
    for i, item in enumerate(container):
        if _json_equal(item, needle):
            return i
    return -1


def _cel_last_index_of(container: Any, needle: Any, *end: int) -> int:
    if isinstance(container, str):
        return container.rfind(needle, 0, end[0] + len(needle)) if end else container.rfind(needle)
    for i in range(len(container) - 1, -1, -1):
        if _json_equal(container[i], needle):
            return i
    return -1


def _ascii(text: str, convert: Callable[[str], str]) -> str:
    return "".join(convert(c) if c.isascii() else c for c in text)


def _cel_split(text: str, sep: str, *limit: int) -> list[str]:
    """strings.split(sep[, n]): n < 0 splits all, n == 0 gives [], n > 0 at most n parts."""
    n = limit[0] if limit else -1
    if n == 0:
        return []
    if sep == "":
        parts = list(text)
        return parts if n < 0 or n >= len(parts) else parts[: n - 1] + ["".join(parts[n - 1 :])]
    return text.split(sep) if n < 0 else text.split(sep, n - 1)


def _cel_join(items: list[str], *sep: str) -> str:
    return (sep[0] if sep else "").join(items)


def _cel_replace(text: str, old: str, new: str, *limit: int) -> str:
    return text.replace(old, new, limit[0] if limit else -1)


def _cel_substring(text: str, start: int, *end: int) -> str:
    stop = end[0] if end else len(text)
    if not 0 <= start <= stop <= len(text):
        raise IndexError(f"substring({start}, {stop}) out of range for a string of length {len(text)}")
    return text[start:stop]


def _cel_char_at(text: str, index: int) -> str:
    if not 0 <= index <= len(text):
        raise IndexError(f"index out of range: {index}")
    return text[index : index + 1]


K8S_CEL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sum": _cel_sum,
    "min": _cel_min,
    "max": _cel_max,
    "isSorted": _cel_is_sorted,
    "indexOf": _cel_index_of,
    "lastIndexOf": _cel_last_index_of,
    "lowerAscii": lambda s: _ascii(s, str.lower),
    "upperAscii": lambda s: _ascii(s, str.upper),
    "split": _cel_split,
    "join": _cel_join,
    "replace": _cel_replace,
    "trim": lambda s: s.strip(),
    "substring": _cel_substring,
    "charAt": _cel_char_at,
}

# Named functions the Rust crate provides itself (CEL standard library and optionals).
_CEL_BUILTINS = {
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string", "bytes",
    "duration", "timestamp", "type", "dyn", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getFullYear", "getHours", "getMilliseconds", "getMinutes", "getMonth", "getSeconds",
    "of", "none", "ofNonZeroValue", "hasValue", "value", "orValue", "or",
}
_SUPPORTED_FUNCTIONS = _CEL_BUILTINS | set(K8S_CEL_FUNCTIONS)
_NAMED_FUNCTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_OLD_SELF = re.compile(r"\boldSelf\b")

# CEL reserved words are escaped as __word__ when they name a property (Kubernetes rule).
_CEL_RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
}
_CEL_ACCESSIBLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


def escape_cel_property(name: str) -> str | None:
    """How a property is named in CEL (``namespace`` -> ``__namespace__``); None if inaccessible."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not _CEL_ACCESSIBLE.match(name):
        return None
    return name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


@dataclass
class _Compiled:
    program: Any | None
    problem: str | None  # why the rule cannot be evaluated here


@functools.lru_cache(maxsize=8192)
def _compile(rule: str) -> _Compiled:
    try:
        program = cel.compile(rule)
    except Exception as exc:  # noqa: BLE001 - the library raises ValueError/RuntimeError
        return _Compiled(None, f"the CEL library cannot parse it: {_one_line(str(exc))}")
    unsupported = sorted(f for f in program.functions() if _NAMED_FUNCTION.match(f) and f not in _SUPPORTED_FUNCTIONS)
    if unsupported:
        return _Compiled(None, f"function(s) {', '.join(unsupported)} not supported by this validator")
    return _Compiled(program, None)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _to_cel(value: Any, schema: Schema | None) -> Any:
    """UnstructuredToVal: schema-typed conversion (integer -> int, number -> double, formats, escaping)."""
    if value is None or schema is None:
        return value
    if schema.get("x-kubernetes-int-or-string"):
        return value
    typ = schema.get("type")
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props or schema.get("x-kubernetes-embedded-resource"):
            out = {}
            for key, item in value.items():
                sub = (props or {}).get(key)
                if sub is None and not (schema.get("x-kubernetes-embedded-resource") and key in ("apiVersion", "kind", "metadata")):
                    continue
                name = escape_cel_property(key)
                if name is not None:
                    out[name] = _to_cel(item, sub)
            return out
        if isinstance(extra, dict):
            return {key: _to_cel(item, extra) for key, item in value.items()}
        return value
    if isinstance(value, list):
        items = schema.get("items")
        return [_to_cel(item, items if isinstance(items, dict) else None) for item in value]
    if typ == "integer" and _is_number(value):
        return int(value)
    if typ == "number" and _is_number(value):
        return float(value)
    if typ == "string" and isinstance(value, str):
        fmt = schema.get("format")
        if fmt == "duration":
            duration = parse_go_duration(value)
            return value if duration is None else duration
        if fmt in ("date-time", "datetime"):
            stamp = _parse_datetime(value)
            return value if stamp is None else stamp
        if fmt == "date" and _DATE.match(value):
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)
        if fmt == "byte" and _valid_base64(value):
            return base64.b64decode(value)
    return value


def _cel_error_text(exc: BaseException) -> str:
    """The cel-go wording for the runtime errors the Rust crate raises."""
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0] if exc.args else ''}"
    text = _one_line(str(exc))
    if isinstance(exc, IndexError) and "out of bounds" in text:
        return text.replace("index out of bounds", "index out of bounds").strip()
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "integer overflow"
    if "No such overload" in text:
        return "no such overload"
    return text


def _is_library_gap(exc: BaseException) -> bool:
    text = str(exc)
    return "Undefined variable or function" in text or "failed to parse" in text.lower()


@dataclass
class CelRuleStats:
    """How often one rule was evaluated, failed, or could not be evaluated."""

    evaluated: int = 0
    failed: int = 0
    gaps: list[str] = field(default_factory=list)


def iter_cel_rules(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every x-kubernetes-validations rule below a schema, with the schema path it sits at."""
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path or "<root>", rule
    for key, sub in (schema.get("properties") or {}).items():
        yield from iter_cel_rules(sub, f"{path}.{key}" if path else key)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from iter_cel_rules(schema["additionalProperties"], f"{path}[*]")
    if isinstance(schema.get("items"), dict):
        yield from iter_cel_rules(schema["items"], f"{path}[*]")


def _field_path_segments(field_path: str, schema: Schema) -> list[tuple[str, str]] | None:
    """A rule's fieldPath ('.spec.x', ".labels['a.b']") as (kind, name) segments, kind 'f' or 'k'."""
    tokens = re.findall(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]", field_path)
    if "".join(f".{a}" if a else f"['{b}']" for a, b in tokens) != field_path:
        return None
    out: list[tuple[str, str]] = []
    node: Schema | None = schema
    for dotted, quoted in tokens:
        name = dotted or quoted.replace("\\'", "'").replace("\\\\", "\\")
        props = (node or {}).get("properties")
        if props is not None:
            out.append(("f", name))
            node = props.get(name)
        elif isinstance((node or {}).get("additionalProperties"), dict):
            out.append(("k", name))
            node = node["additionalProperties"] if node else None
        else:
            out.append(("f", name))
            node = None
    return out


# --------------------------------------------------------------------------------------
# The validator
# --------------------------------------------------------------------------------------


_MISSING: Any = object()  # no correlated old value (a create, or a new list item)


@dataclass
class Review:
    """``CrdValidator.review``: the object as stored, its unknown fields, its validation errors."""

    obj: dict[str, Any]
    unknown: list[FieldError]
    errors: list[FieldError]


class CrdValidator:
    """Validates objects against one CRD; keeps per-rule CEL statistics in ``cel_stats``."""

    def __init__(self, crd: dict[str, Any]) -> None:
        self.crd = crd
        spec = crd.get("spec") or {}
        self.group: str = spec.get("group", "")
        self.kind: str = (spec.get("names") or {}).get("kind", "")
        self.namespaced: bool | None = {"Namespaced": True, "Cluster": False}.get(spec.get("scope", ""))
        self.cel_stats: dict[str, CelRuleStats] = {}

    # -- versions ------------------------------------------------------------------------

    def version_entry(self, version: str) -> dict[str, Any] | None:
        """The spec.versions entry of a served version, or None."""
        for entry in (self.crd.get("spec") or {}).get("versions") or []:
            if entry.get("name") == version and entry.get("served", True):
                return entry
        return None

    def schema(self, version: str) -> Schema:
        """The openAPIV3Schema of a version (per-version schema, else the legacy top-level one)."""
        entry = self.version_entry(version) or {}
        schema = (entry.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            schema = ((self.crd.get("spec") or {}).get("validation") or {}).get("openAPIV3Schema")
        return schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

    def _resolve_version(self, obj: dict[str, Any], version: str | None) -> tuple[str | None, list[FieldError]]:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind", self.kind)
        if version is None:
            if not isinstance(api_version, str) or "/" not in api_version:
                return None, [FieldError(NO_MATCH, "", detail=f'no matches for kind "{kind}" in version "{api_version}"')]
            group, version = api_version.split("/", 1)
            if group != self.group or kind != self.kind:
                return None, [FieldError(NO_MATCH, "", detail=f'no matches for kind "{kind}" in version "{api_version}"')]
        if self.version_entry(version) is None:
            gv = f"{self.group}/{version}"
            return None, [FieldError(NO_MATCH, "", detail=f'no matches for kind "{self.kind}" in version "{gv}"')]
        return version, []

    def _default_version(self, obj: dict[str, Any]) -> str:
        api_version = obj.get("apiVersion")
        if isinstance(api_version, str) and "/" in api_version:
            return api_version.split("/", 1)[1]
        versions = (self.crd.get("spec") or {}).get("versions") or []
        storage = [v["name"] for v in versions if v.get("storage")]
        return storage[0] if storage else versions[0]["name"]

    # -- public entry points -------------------------------------------------------------

    def apply_defaults(self, obj: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        """A copy of obj with the schema's defaults applied (and non-nullable nulls dropped)."""
        out = _jsonify(obj)
        apply_schema_defaults(out, self.schema(version or self._default_version(obj)))
        return out  # type: ignore[no-any-return]

    def errors(
        self,
        obj: dict[str, Any],
        version: str | None = None,
        *,
        strict: bool = True,
        subresource: str | None = None,
    ) -> list[FieldError]:
        """Every error the API server would report for a create of obj, as FieldError values."""
        if not isinstance(obj, dict):
            return [FieldError(TYPE_INVALID, "", _json_type(obj), "an object must be a JSON/YAML mapping")]
        resolved, errs = self._resolve_version(obj, version)
        if resolved is None:
            return errs
        review = self.review(obj, resolved, subresource=subresource)
        return errs + (review.unknown if strict else []) + review.errors

    def review(
        self,
        obj: dict[str, Any],
        version: str,
        *,
        subresource: str | None = None,
        old: dict[str, Any] | None = None,
    ) -> Review:
        """What the server makes of a write of obj (a served version): the object it would store
        (unknown fields pruned, ``metadata`` included; defaults applied), the unknown fields, and
        the validation errors. With ``old`` (an update), CEL transition rules (``oldSelf``) are
        evaluated against it; without, they are skipped as on a create."""
        schema = self.schema(version)
        entry = self.version_entry(version) or {}
        work: dict[str, Any] = _jsonify(obj)
        has_status_subresource = "status" in (entry.get("subresources") or (self.crd.get("spec") or {}).get("subresources") or {})
        if subresource is None and has_status_subresource:
            work.pop("status", None)

        unknown: list[FieldError] = []
        _prune_unknown(work, schema, (), unknown, root=True)
        apply_schema_defaults(work, schema)

        errs: list[FieldError] = []
        schema_errs: list[FieldError] = []
        if "metadata" in work:
            meta_errs = _validate_metadata(work["metadata"], self.namespaced)
            unknown_meta = [e for e in meta_errs if e.type == UNKNOWN_FIELD]
            unknown += unknown_meta
            if isinstance(work["metadata"], dict):
                for err in unknown_meta:
                    if err.path.count(".") == 1:  # ObjectMeta's own unknown fields are pruned too
                        work["metadata"].pop(err.path.split(".", 1)[1], None)
            schema_errs += [e for e in meta_errs if e.type != UNKNOWN_FIELD]
        _validate_node(work, schema, (), schema_errs, root=True)
        _validate_list_types(work, schema, (), schema_errs)
        errs += schema_errs
        if any(e.blocking for e in schema_errs):
            errs.append(
                FieldError(
                    INVALID,
                    "",
                    None,
                    "some validation rules were not checked because the object was invalid; "
                    "correct the existing errors to complete validation",
                )
            )
        else:
            old_work = _MISSING if old is None else _jsonify(old)
            self._validate_cel(work, schema, (), errs, root=True, old=old_work)
        return Review(work, unknown, errs)

    def validate(
        self,
        obj: dict[str, Any],
        version: str | None = None,
        *,
        strict: bool = True,
        subresource: str | None = None,
    ) -> list[str]:
        """The API server's error strings for a create of obj; [] when it would be accepted."""
        return [str(e) for e in self.errors(obj, version, strict=strict, subresource=subresource)]

    # -- CEL -----------------------------------------------------------------------------

    def _validate_cel(
        self, value: Any, schema: Schema, path: tuple[Segment, ...], errs: list[FieldError], *, root: bool = False, old: Any = _MISSING
    ) -> None:
        if value is None or not isinstance(schema, dict):
            return
        rules = schema.get("x-kubernetes-validations") or []
        if rules:
            cel_schema = schema
            if root:  # the resource root sees apiVersion, kind and metadata.name/generateName
                cel_schema = dict(schema)
                cel_schema["properties"] = {
                    **(schema.get("properties") or {}),
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}},
                }
            self_value = _to_cel(value, cel_schema)
            old_value = _MISSING if old is _MISSING or old is None else _to_cel(old, cel_schema)
            for rule in rules:
                self._evaluate_rule(rule, self_value, value, schema, path, errs, old_value=old_value)
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            old_map = old if isinstance(old, dict) else {}
            for key, item in value.items():
                if key in props:
                    if not (root and key == "metadata"):
                        self._validate_cel(item, props[key], (*path, ("f", key)), errs, old=old_map.get(key, _MISSING))
                elif isinstance(extra, dict):
                    self._validate_cel(item, extra, (*path, ("k", key)), errs, old=old_map.get(key, _MISSING))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            keys = schema.get("x-kubernetes-list-map-keys") or []
            old_items: dict[str, Any] = {}
            if schema.get("x-kubernetes-list-type") == "map" and keys and isinstance(old, list):
                # Only items of map lists correlate with an old item (by their keys).
                old_items = {_canonical([o.get(k) for k in keys]): o for o in old if isinstance(o, dict)}
            for i, item in enumerate(value):
                old_item = old_items.get(_canonical([item.get(k) for k in keys]), _MISSING) if old_items and isinstance(item, dict) else _MISSING
                self._validate_cel(item, schema["items"], (*path, ("i", i)), errs, old=old_item)

    def _evaluate_rule(
        self,
        rule: dict[str, Any],
        self_value: Any,
        raw: Any,
        schema: Schema,
        path: tuple[Segment, ...],
        errs: list[FieldError],
        *,
        old_value: Any = _MISSING,
    ) -> None:
        source = str(rule.get("rule", "")).strip()
        transition = bool(_OLD_SELF.search(source))
        if not source or (transition and old_value is _MISSING):
            return  # empty, or a transition rule without an old value (a create): not evaluated
        stats = self.cel_stats.setdefault(source, CelRuleStats())
        where = _render(path, keys_as_index=True)
        compiled = _compile(source)
        if compiled.program is None:
            gap = f"cannot evaluate CEL rule {source!r}: {compiled.problem}"
            stats.gaps.append(gap)
            errs.append(FieldError(CEL_GAP, where, detail=gap))
            return
        message = str(rule.get("message", "")).strip()
        shown = OMIT if schema.get("type") in ("object", "array") else raw
        try:
            variables = {"self": self_value, **({"oldSelf": old_value} if transition else {})}
            context = cel.Context(variables=variables, functions=K8S_CEL_FUNCTIONS)
            result = compiled.program.execute(context)
        except Exception as exc:  # noqa: BLE001 - the Rust bindings raise several types
            if _is_library_gap(exc):
                gap = f"cannot evaluate CEL rule {source!r}: {_one_line(str(exc))}"
                stats.gaps.append(gap)
                errs.append(FieldError(CEL_GAP, where, detail=gap))
                return
            stats.evaluated += 1
            stats.failed += 1
            text = _cel_error_text(exc)
            if text == "no such overload":
                detail = f"'{text}': call arguments did not match a supported operator, function or macro signature for rule: {message or source}"
            else:
                detail = f"{text} evaluating rule: {message or source}"
            errs.append(FieldError(INVALID, where, schema.get("type") or "", detail))
            return
        stats.evaluated += 1
        if result is True:
            return
        if not isinstance(result, bool):
            gap = f"cannot evaluate CEL rule {source!r}: it returned {type(result).__name__}, not a bool"
            stats.gaps.append(gap)
            errs.append(FieldError(CEL_GAP, where, detail=gap))
            return
        stats.failed += 1
        detail = message or f"failed rule: {source}"
        expression = rule.get("messageExpression")
        if expression:
            detail = self._message_expression(str(expression), context) or detail
        error_path = path
        if rule.get("fieldPath"):
            segments = _field_path_segments(str(rule["fieldPath"]), schema)
            if segments is not None:
                error_path = (*path, *segments)  # type: ignore[arg-type]
        target = _render(error_path, keys_as_index=True)
        reason = rule.get("reason") or "FieldValueInvalid"
        if reason == "FieldValueForbidden":
            errs.append(FieldError(FORBIDDEN, target, detail=detail))
        elif reason == "FieldValueRequired":
            errs.append(FieldError(REQUIRED, target, detail=detail))
        elif reason == "FieldValueDuplicate":
            errs.append(FieldError(DUPLICATE, target, shown))
        else:
            errs.append(FieldError(INVALID, target, shown, detail))

    @staticmethod
    def _message_expression(expression: str, context: Any) -> str | None:
        compiled = _compile(expression)
        if compiled.program is None:
            return None
        try:
            text = compiled.program.execute(context)
        except Exception:  # noqa: BLE001 - the server logs the failure and uses message
            return None
        if not isinstance(text, str) or not text.strip() or "\n" in text.strip() or len(text.strip()) > 5000:
            return None
        return text.strip()


# --------------------------------------------------------------------------------------
# Pruning / unknown fields
# --------------------------------------------------------------------------------------


def _prune_unknown(value: Any, schema: Schema | None, path: tuple[Segment, ...], unknown: list[FieldError], *, root: bool = False) -> None:
    """Drop (and record) fields the structural schema does not specify, as the server prunes."""
    if schema is None or not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            child = (*path, ("f", key))
            if root and key in ("apiVersion", "kind", "metadata"):
                continue  # TypeMeta and ObjectMeta are handled by the server itself
            if key in props:
                _prune_unknown(value[key], props[key], child, unknown)
            elif isinstance(extra, dict):
                _prune_unknown(value[key], extra, (*path, ("k", key)), unknown)
            elif extra is True or preserve:
                continue
            elif embedded and key in ("apiVersion", "kind", "metadata"):
                continue
            else:
                unknown.append(FieldError(UNKNOWN_FIELD, _render(child)))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _prune_unknown(item, schema["items"], (*path, ("i", i)), unknown)


# --------------------------------------------------------------------------------------
# Defaulting
# --------------------------------------------------------------------------------------


def _non_nullable_null(value: Any, schema: Schema | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable", False)


def apply_schema_defaults(value: Any, schema: Schema | None) -> None:
    """structuraldefaulting.Default in place, after PruneNonNullableNullsWithoutDefaults."""
    if schema is None or not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for key, prop in props.items():
            if "default" in prop and (key not in value or _non_nullable_null(value[key], prop)):
                value[key] = copy.deepcopy(prop["default"])
        for key in list(value):
            sub = props.get(key, extra)
            if sub is None:
                continue
            if _non_nullable_null(value[key], sub):
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                else:
                    del value[key]  # pruned: a non-nullable null without default
                    continue
            apply_schema_defaults(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        for i, item in enumerate(value):
            if _non_nullable_null(item, items) and "default" in items:
                value[i] = copy.deepcopy(items["default"])
            apply_schema_defaults(value[i], items)


# --------------------------------------------------------------------------------------
# OpenAPI v3 value validation (kube-openapi)
# --------------------------------------------------------------------------------------


def _validate_node(
    value: Any,
    schema: Schema,
    path: tuple[Segment, ...],
    errs: list[FieldError],
    *,
    root: bool = False,
    junctor: bool = False,
) -> None:
    """kube-openapi's SchemaValidator for one node; ``junctor`` inside allOf/anyOf/oneOf/not."""
    if not isinstance(schema, dict):
        return
    where = _render(path)
    name = where or ""
    actual = _json_type(value)
    typ = schema.get("type")

    if value is None:
        if schema.get("nullable"):
            return
        if typ:
            errs.append(FieldError(TYPE_INVALID, where, "null", f'{name} in body must be of type {typ}: "null"'))
        return

    if schema.get("x-kubernetes-int-or-string") and not junctor:
        if actual not in ("integer", "string"):
            errs.append(FieldError(TYPE_INVALID, where, actual, f"{name} in body must be of type integer,string: {_go_quote(actual)}"))
            return
    elif isinstance(typ, str) and typ and not _type_ok(typ, value):
        errs.append(FieldError(TYPE_INVALID, where, actual, f"{name} in body must be of type {typ}: {_go_quote(actual)}"))
        return

    if "enum" in schema and isinstance(schema["enum"], list) and not any(_json_equal(value, e) for e in schema["enum"]):
        allowed = ", ".join(_go_quote(e if isinstance(e, str) else json.dumps(e)) for e in schema["enum"])
        errs.append(FieldError(NOT_SUPPORTED, where, value, f"supported values: {allowed}"))

    if isinstance(value, str):
        length = len(value)
        if "maxLength" in schema and length > schema["maxLength"]:
            errs.append(FieldError(TOO_LONG, where, value, f"may not be longer than {schema['maxLength']}"))
        if "minLength" in schema and length < schema["minLength"]:
            errs.append(FieldError(INVALID, where, value, f"{name} in body should be at least {schema['minLength']} chars long"))
        if "pattern" in schema and not _regex(schema["pattern"]).search(value):
            errs.append(FieldError(INVALID, where, value, f"{name} in body should match '{schema['pattern']}'"))
        fmt = schema.get("format")
        if fmt in _FORMATS and not _FORMATS[fmt](value):
            errs.append(FieldError(INVALID, where, value, f"{name} in body must be of type {fmt}: {_go_quote(value)}"))

    if _is_number(value):
        _validate_number(value, schema, where, errs)

    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(FieldError(TOO_MANY, where, len(value), f"must have at most {schema['maxItems']} items"))
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(FieldError(INVALID, where, len(value), f"{name} in body should have at least {schema['minItems']} items"))
        if schema.get("uniqueItems") and len({_canonical(v) for v in value}) != len(value):
            errs.append(FieldError(DUPLICATE, where, value, f"{name} in body shouldn't contain duplicates"))
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _validate_node(item, items, (*path, ("i", i)), errs, junctor=junctor)

    if isinstance(value, dict):
        count = len(value)
        if "maxProperties" in schema and count > schema["maxProperties"]:
            errs.append(FieldError(TOO_MANY, where, count, f"must have at most {schema['maxProperties']} items"))
        if "minProperties" in schema and count < schema["minProperties"]:
            errs.append(FieldError(INVALID, where, count, f"{name} in body should have at least {schema['minProperties']} properties"))
        for key in schema.get("required") or []:
            if key not in value:
                errs.append(FieldError(REQUIRED, _render((*path, ("f", key)))))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if root and key == "metadata":
                # ObjectMeta is validated by the server; the schema may only restrict name/generateName.
                meta_props = (props.get("metadata") or {}).get("properties") or {}
                if isinstance(item, dict):
                    for meta_key in ("name", "generateName"):
                        if meta_key in meta_props and meta_key in item:
                            _validate_node(item[meta_key], meta_props[meta_key], (*path, ("f", "metadata"), ("f", meta_key)), errs)
                continue
            if key in props:
                _validate_node(item, props[key], (*path, ("f", key)), errs, junctor=junctor)
            elif isinstance(extra, dict):
                _validate_node(item, extra, (*path, ("k", key)), errs, junctor=junctor)

    _validate_junctors(value, schema, path, errs)


def _validate_number(value: int | float, schema: Schema, where: str, errs: list[FieldError]) -> None:
    name = where
    if "minimum" in schema:
        bound = schema["minimum"]
        if schema.get("exclusiveMinimum") is True:
            if not value > bound:
                errs.append(FieldError(INVALID, where, value, f"{name} in body should be greater than {_go_num(bound)}"))
        elif not value >= bound:
            errs.append(FieldError(INVALID, where, value, f"{name} in body should be greater than or equal to {_go_num(bound)}"))
    elif _is_number(schema.get("exclusiveMinimum")) and not value > schema["exclusiveMinimum"]:  # JSON Schema draft 6+ style
        errs.append(FieldError(INVALID, where, value, f"{name} in body should be greater than {_go_num(schema['exclusiveMinimum'])}"))
    if "maximum" in schema:
        bound = schema["maximum"]
        if schema.get("exclusiveMaximum") is True:
            if not value < bound:
                errs.append(FieldError(INVALID, where, value, f"{name} in body should be less than {_go_num(bound)}"))
        elif not value <= bound:
            errs.append(FieldError(INVALID, where, value, f"{name} in body should be less than or equal to {_go_num(bound)}"))
    elif _is_number(schema.get("exclusiveMaximum")) and not value < schema["exclusiveMaximum"]:
        errs.append(FieldError(INVALID, where, value, f"{name} in body should be less than {_go_num(schema['exclusiveMaximum'])}"))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and not isinstance(multiple, bool) and multiple > 0:
        quotient = value / multiple
        if abs(quotient - round(quotient)) > 1e-9:
            errs.append(FieldError(INVALID, where, value, f"{name} in body should be a multiple of {_go_num(multiple)}"))


def _passes(value: Any, schema: Schema, path: tuple[Segment, ...]) -> bool:
    sub: list[FieldError] = []
    _validate_node(value, schema, path, sub, junctor=True)
    return not sub


def _validate_junctors(value: Any, schema: Schema, path: tuple[Segment, ...], errs: list[FieldError]) -> None:
    """allOf / anyOf / oneOf / not: value validations only, as structural schemas allow."""
    where = _render(path)
    any_of = schema.get("anyOf") or []
    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict):
            _validate_node(value, sub, path, errs, junctor=True)
    if any_of and not any(_passes(value, s, path) for s in any_of if isinstance(s, dict)):
        errs.append(FieldError(INVALID, where, value, f"{where} in body must validate at least one schema (anyOf)"))
    one_of = schema.get("oneOf") or []
    if one_of:
        valid = sum(1 for s in one_of if isinstance(s, dict) and _passes(value, s, path))
        if valid != 1:
            suffix = f". Found {valid} valid alternatives" if valid > 1 else ""
            errs.append(FieldError(INVALID, where, value, f"{where} in body must validate one and only one schema (oneOf){suffix}"))
    negated = schema.get("not")
    if isinstance(negated, dict) and _passes(value, negated, path):
        errs.append(FieldError(INVALID, where, value, f"{where} in body must not validate the schema (not)"))


# --------------------------------------------------------------------------------------
# x-kubernetes-list-type map / set (structurallisttype.ValidateListSetsAndMaps)
# --------------------------------------------------------------------------------------


def _validate_list_types(value: Any, schema: Schema | None, path: tuple[Segment, ...], errs: list[FieldError]) -> None:
    if schema is None or not isinstance(schema, dict) or value is None:
        return
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else None
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: set[str] = set()
            for i, item in enumerate(value):
                key = _canonical(item)
                if key in seen:
                    errs.append(FieldError(DUPLICATE, _render((*path, ("i", i)), keys_as_index=True), item))
                seen.add(key)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                present = {k: item[k] for k in keys if k in item}
                for k in keys:
                    if k not in item:
                        errs.append(FieldError(REQUIRED, _render((*path, ("i", i), ("f", k)), keys_as_index=True)))
                key = _canonical([present.get(k) for k in keys])
                if len(present) == len(keys) and key in seen:
                    errs.append(FieldError(DUPLICATE, _render((*path, ("i", i)), keys_as_index=True), present))
                seen.add(key)
        for i, item in enumerate(value):
            _validate_list_types(item, items, (*path, ("i", i)), errs)
    elif isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for key, item in value.items():
            if key in props:
                _validate_list_types(item, props[key], (*path, ("f", key)), errs)
            elif extra is not None:
                _validate_list_types(item, extra, (*path, ("k", key)), errs)


# --------------------------------------------------------------------------------------
# Module-level API
# --------------------------------------------------------------------------------------


def validate(
    obj: dict[str, Any],
    crd: dict[str, Any],
    version: str | None = None,
    *,
    strict: bool = True,
    subresource: str | None = None,
) -> list[str]:
    """Errors kube-apiserver (with kubectl's strict field validation) would report; [] if valid.

    ``version`` defaults to the one in obj's apiVersion; a version the CRD does not serve is
    an error. ``strict=False`` prunes unknown fields silently instead of reporting them.
    """
    return CrdValidator(crd).validate(obj, version, strict=strict, subresource=subresource)


def apply_defaults(obj: dict[str, Any], crd: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """A copy of obj with the CRD's defaults applied, as the API server stores it."""
    return CrdValidator(crd).apply_defaults(obj, version)


# --------------------------------------------------------------------------------------
# Structural schema check (apiextensions' structural schema rules)
# --------------------------------------------------------------------------------------

_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTORS = (
    "type", "description", "default", "additionalProperties", "nullable", "title",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _is_int_or_string_idiom(junctor: str, subs: Any, node: Schema) -> bool:
    if not node.get("x-kubernetes-int-or-string"):
        return False
    if junctor == "anyOf":
        return subs == _INT_OR_STRING_ANY_OF
    if junctor == "allOf" and isinstance(subs, list) and subs:
        return isinstance(subs[0], dict) and subs[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    return False


def _schema_problems(node: Any, where: str, out: list[str], *, needs_type: bool, is_root: bool = False) -> None:
    if not isinstance(node, dict):
        out.append(f"{where}: a schema must be an object")
        return
    if "$ref" in node:
        out.append(f"{where}: $ref is not allowed")
    typ = node.get("type")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if isinstance(typ, list):
        out.append(f"{where}.type: must be a single type, not a union {typ}")
    elif typ is not None and typ not in _TYPES:
        out.append(f"{where}.type: {typ!r} is not a structural type (null types and nullable unions are not allowed)")
    elif needs_type and not typ and not int_or_string and preserve is not True:
        out.append(f"{where}.type: Required value: must not be empty for specified object fields and array items")
    if int_or_string and typ:
        out.append(f"{where}.type: must be empty when x-kubernetes-int-or-string is true")
    if preserve is False:
        out.append(f"{where}.x-kubernetes-preserve-unknown-fields: must be true or undefined")
    if is_root and typ != "object":
        out.append(f"{where}.type: must be object at the root")
    if "properties" in node and "additionalProperties" in node and node["additionalProperties"] not in (None,):
        out.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if node.get("additionalProperties") is False:
        out.append(f"{where}.additionalProperties: false is not allowed (use no additionalProperties)")
    if node.get("uniqueItems") is True:
        out.append(f"{where}.uniqueItems: cannot be true (use x-kubernetes-list-type: set)")
    if "items" in node and not isinstance(node["items"], dict):
        out.append(f"{where}.items: must be a single schema")
    if node.get("x-kubernetes-embedded-resource") and (typ != "object" or not ("properties" in node or preserve is True)):
        out.append(f"{where}: x-kubernetes-embedded-resource needs type object and properties or x-kubernetes-preserve-unknown-fields")
    _list_type_problems(node, where, out)

    for key, sub in (node.get("properties") or {}).items():
        if is_root and key == "metadata":
            _metadata_problems(sub, f"{where}.properties[metadata]", out)
            continue
        _schema_problems(sub, f"{where}.properties[{key}]", out, needs_type=True)
    if isinstance(node.get("additionalProperties"), dict):
        _schema_problems(node["additionalProperties"], f"{where}.additionalProperties", out, needs_type=True)
    if isinstance(node.get("items"), dict):
        _schema_problems(node["items"], f"{where}.items", out, needs_type=True)
    for junctor in _JUNCTORS:
        if junctor not in node:
            continue
        subs = node[junctor]
        if _is_int_or_string_idiom(junctor, subs, node):
            continue
        for i, sub in enumerate(subs if isinstance(subs, list) else [subs]):
            _junctor_problems(sub, node, f"{where}.{junctor}[{i}]", out)


def _junctor_problems(sub: Any, outer: Schema, where: str, out: list[str]) -> None:
    """Inside allOf/anyOf/oneOf/not: only value validations on fields the outer schema specifies."""
    if not isinstance(sub, dict):
        out.append(f"{where}: a schema must be an object")
        return
    if "$ref" in sub:
        out.append(f"{where}: $ref is not allowed")
    for key in _FORBIDDEN_IN_JUNCTORS:
        if key in sub:
            out.append(f"{where}.{key}: must not be set inside allOf, anyOf, oneOf or not")
    outer_props = outer.get("properties") or {}
    for key, prop in (sub.get("properties") or {}).items():
        if key in outer_props:
            _junctor_problems(prop, outer_props[key], f"{where}.properties[{key}]", out)
        elif isinstance(outer.get("additionalProperties"), dict):
            _junctor_problems(prop, outer["additionalProperties"], f"{where}.properties[{key}]", out)
        elif outer.get("x-kubernetes-preserve-unknown-fields") is not True:
            out.append(f"{where}.properties[{key}]: must have a corresponding property outside of the junctor")
    if isinstance(sub.get("items"), dict):
        if isinstance(outer.get("items"), dict):
            _junctor_problems(sub["items"], outer["items"], f"{where}.items", out)
        else:
            out.append(f"{where}.items: must have a corresponding items outside of the junctor")
    if isinstance(sub.get("additionalProperties"), dict) and not isinstance(outer.get("additionalProperties"), dict):
        out.append(f"{where}.additionalProperties: must have a corresponding additionalProperties outside of the junctor")
    for junctor in _JUNCTORS:
        if junctor in sub:
            nested = sub[junctor]
            for i, inner in enumerate(nested if isinstance(nested, list) else [nested]):
                _junctor_problems(inner, outer, f"{where}.{junctor}[{i}]", out)


def _metadata_problems(node: Any, where: str, out: list[str]) -> None:
    if not isinstance(node, dict) or node.get("type") != "object":
        out.append(f"{where}.type: must be object")
        return
    for key in node.get("properties") or {}:
        if key not in ("name", "generateName"):
            out.append(f"{where}.properties[{key}]: only name and generateName may be restricted in metadata")
    for key in node:
        if key not in ("type", "properties", "description"):
            out.append(f"{where}.{key}: only restrictions on name and generateName are allowed in metadata")


def _list_type_problems(node: Schema, where: str, out: list[str]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if keys is not None and list_type != "map":
        out.append(f"{where}.x-kubernetes-list-map-keys: only allowed with x-kubernetes-list-type: map")
    if list_type is None:
        return
    if list_type not in ("atomic", "set", "map"):
        out.append(f"{where}.x-kubernetes-list-type: must be atomic, set or map")
    if node.get("type") != "array":
        out.append(f"{where}.x-kubernetes-list-type: only allowed on arrays")
    items: Schema = node["items"] if isinstance(node.get("items"), dict) else {}
    if list_type == "set" and items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
        out.append(f"{where}.items: set items must be scalars or atomic")
    if list_type == "map":
        if items.get("type") != "object":
            out.append(f"{where}.items.type: must be object for x-kubernetes-list-type: map")
        if not keys:
            out.append(f"{where}.x-kubernetes-list-map-keys: Required value for x-kubernetes-list-type: map")
        props = items.get("properties") or {}
        required = set(items.get("required") or [])
        for key in keys or []:
            prop = props.get(key)
            if prop is None:
                out.append(f"{where}.x-kubernetes-list-map-keys: {key!r} is not a property of the items")
            elif prop.get("type") not in ("string", "integer", "number", "boolean") and not prop.get("x-kubernetes-int-or-string"):
                out.append(f"{where}.x-kubernetes-list-map-keys: {key!r} must be a scalar")
            elif key not in required and "default" not in prop:
                out.append(f"{where}.x-kubernetes-list-map-keys: {key!r} must be required or have a default")


def _default_problems(schema: Any, where: str, out: list[str]) -> None:
    """Defaults must be valid (and fully specified) against their own schema, as the server checks."""
    if not isinstance(schema, dict):
        return
    if "default" in schema:
        default = copy.deepcopy(schema["default"])
        unknown: list[FieldError] = []
        _prune_unknown(default, schema, (), unknown)
        apply_schema_defaults(default, schema)
        errors: list[FieldError] = list(unknown)
        _validate_node(default, schema, (), errors)
        for err in errors:
            out.append(f"{where}.default: {err}")
    for key, sub in (schema.get("properties") or {}).items():
        _default_problems(sub, f"{where}.properties[{key}]", out)
    for key in ("additionalProperties", "items"):
        if isinstance(schema.get(key), dict):
            _default_problems(schema[key], f"{where}.{key}", out)


def structural_problems(crd: dict[str, Any]) -> list[str]:
    """Why the API server would refuse the CRD's schemas as non-structural; [] if structural."""
    out: list[str] = []
    spec = crd.get("spec") or {}
    schemas: list[tuple[str, Any]] = []
    for i, version in enumerate(spec.get("versions") or []):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is not None:
            schemas.append((f"spec.versions[{i}].schema.openAPIV3Schema", schema))
    legacy = (spec.get("validation") or {}).get("openAPIV3Schema")
    if legacy is not None:
        schemas.append(("spec.validation.openAPIV3Schema", legacy))
    if not schemas:
        out.append("spec.versions[*].schema.openAPIV3Schema: Required value")
    for where, schema in schemas:
        _schema_problems(schema, where, out, needs_type=True, is_root=True)
        _default_problems(schema, where, out)
    return out


def assert_structural(crd: dict[str, Any]) -> None:
    """Raise AssertionError listing every structural-schema violation of the CRD."""
    problems = structural_problems(crd)
    name = (crd.get("metadata") or {}).get("name", "<unnamed CRD>")
    assert not problems, f"{name} is not structural:\n  " + "\n  ".join(problems)
