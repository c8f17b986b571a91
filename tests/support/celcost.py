"""A conservative estimate of the CEL cost a kube-apiserver computes when a CRD is registered.

kube-apiserver refuses a CustomResourceDefinition whose ``x-kubernetes-validations`` rules
are too expensive *in the worst case*, before any object exists. This module re-does that
estimate in Python, always on the high side, so a unit test can refuse what the server
would refuse. How the server does it (Kubernetes 1.30+; cel-go's ``checker/cost.go``):

* **Per rule** (``apiextensions-apiserver/pkg/apiserver/schema/cel/compilation.go``):
  cel-go's ``EstimateCost`` gives the rule's worst-case cost ``MaxCost``, sizing every string,
  list and map the rule touches from the schema: ``maxLength`` * 4 (bytes per code point)
  for strings, ``maxItems`` / ``maxProperties`` for lists and maps, and for unbounded ones
  what fits in a request (``MaxRequestSizeBytes`` = 3 MiB, divided by the element's minimal
  JSON size: ``cel/model/schemas.go``, ``estimateMaxArrayItemsFromMinSize``,
  ``estimateMaxStringLengthPerRequest``).
* **Cardinality** (``pkg/apis/apiextensions/validation/cel_validation.go``): the rule runs
  once per occurrence of its schema node, so ``MaxCost`` is multiplied by the product of the
  ``maxItems`` / ``maxProperties`` of every list and map around it (``childContext``,
  ``extractMaxElements``); when one of them is unbounded, by ``MaxRequestSizeBytes /
  (minSerializedSize + 1)`` instead (``celmodel.MaxCardinality``).
* **Limits** (``pkg/apis/apiextensions/validation/validation.go``):
  ``StaticEstimatedCostLimit`` = 10,000,000 per rule and ``StaticEstimatedCRDCostLimit`` =
  100,000,000 for the sum over the whole schema (spec and status alike).

What this estimator does differently, always towards a higher figure:

* cel-go's per-node costs are followed (ident/select 1, literal 0, list literal 10, map
  literal 30, ``has`` 1, ``&&``/``||`` no own cost, string comparison ``0.1`` per byte of the
  shorter side, ``startsWith`` 0.1 per byte of the prefix, ``matches`` ``0.1 * 0.25`` per byte
  pair, ``sum``/``min``/``max`` one per element), and each comprehension (``all``,
  ``exists``, ``exists_one``, ``map``, ``filter``) is charged the *largest* per-iteration
  overhead cel-go's macro expansions have (3) plus one.
* The size of a map key, which the server does not know (it uses 0), is taken as a whole
  request.
* A function or construct it does not know raises ``CostEstimateError``: an unknown cost
  is never taken as zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CRD_COST_LIMIT",
    "MAX_REQUEST_SIZE_BYTES",
    "PER_RULE_COST_LIMIT",
    "CostEstimateError",
    "RuleCost",
    "estimate_rule",
    "estimate_schema",
    "unbounded_nodes",
]

# k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation: StaticEstimatedCostLimit.
PER_RULE_COST_LIMIT = 10_000_000
# ... and StaticEstimatedCRDCostLimit.
CRD_COST_LIMIT = 100_000_000
# k8s.io/apiserver/pkg/cel: MaxRequestSizeBytes.
MAX_REQUEST_SIZE_BYTES = 3 * 1024 * 1024

# cel-go common/cost.go and checker/cost.go.
STRING_TRAVERSAL_COST_FACTOR = 0.1
REGEX_STRING_LENGTH_COST_FACTOR = 0.25
CREATE_LIST_BASE_COST = 10
CREATE_MAP_BASE_COST = 30
# The largest loop-condition-plus-bookkeeping cost of cel-go's macro expansions
# (exists: @not_strictly_false(!accu) = 3), plus one for safety.
COMPREHENSION_OVERHEAD = 4

# Minimal JSON sizes (k8s.io/apiserver/pkg/cel/types.go).
MIN_STRING_SIZE = 2
MIN_BOOL_SIZE = 4
MIN_NUMBER_SIZE = 1
MIN_CONTAINER_SIZE = 2


class CostEstimateError(Exception):
    """The estimator cannot bound this rule (an unknown function, field or construct)."""


# --------------------------------------------------------------------------------------
# Types: the CEL view of a schema node, with the sizes the server would assume
# --------------------------------------------------------------------------------------


@dataclass
class CelType:
    kind: str  # object, list, map, string, int, double, bool, dyn, null
    max_size: int = 1  # strings: bytes; lists and maps: elements
    elem: CelType | None = None  # list items, map values
    key: CelType | None = None  # map keys
    fields: dict[str, CelType] = field(default_factory=dict)
    min_serialized: int = 1


def _ceil(x: float) -> int:
    return int(math.ceil(x))


def decl_type(schema: dict[str, Any]) -> CelType:
    """The CEL type of a structural schema node, sized as ``SchemaDeclType`` sizes it."""
    if schema.get("x-kubernetes-int-or-string"):
        return CelType("dyn", MAX_REQUEST_SIZE_BYTES - 2, min_serialized=1)
    kind = schema.get("type")
    if kind == "array":
        items = decl_type(schema.get("items") or {})
        if "maxItems" in schema:
            size = max(0, int(schema["maxItems"]))
        else:
            size = (MAX_REQUEST_SIZE_BYTES - 2) // (items.min_serialized + 1)
        return CelType("list", size, elem=items, min_serialized=MIN_CONTAINER_SIZE)
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            values = decl_type(extra)
            if "maxProperties" in schema:
                size = max(0, int(schema["maxProperties"]))
            else:
                size = (MAX_REQUEST_SIZE_BYTES - 2) // (values.min_serialized + 6)
            # The server sizes keys as 0 (StringType has no MaxElements); a whole request here.
            key = CelType("string", MAX_REQUEST_SIZE_BYTES - 2, min_serialized=MIN_STRING_SIZE)
            return CelType("map", size, elem=values, key=key, min_serialized=MIN_CONTAINER_SIZE)
        required = set(schema.get("required") or ())
        fields = {}
        min_size = 2
        for name, prop in (schema.get("properties") or {}).items():
            fields[name] = decl_type(prop)
            if name in required and "default" not in prop:
                min_size += len(name) + fields[name].min_serialized + 4
        return CelType("object", 1, fields=fields, min_serialized=min_size)
    if kind == "string":
        if "maxLength" in schema:
            size = max(0, int(schema["maxLength"])) * 4  # code points to bytes
        else:
            size = MAX_REQUEST_SIZE_BYTES - 2  # format duration/date/date-time are smaller there: we stay high
        return CelType("string", size, min_serialized=MIN_STRING_SIZE)
    if kind == "integer":
        return CelType("int", min_serialized=MIN_NUMBER_SIZE)
    if kind == "number":
        return CelType("double", min_serialized=MIN_NUMBER_SIZE)
    if kind == "boolean":
        return CelType("bool", min_serialized=MIN_BOOL_SIZE)
    return CelType("dyn", MAX_REQUEST_SIZE_BYTES - 2, min_serialized=1)


def with_object_meta(t: CelType) -> CelType:
    """The root of a resource also exposes apiVersion, kind and metadata.name/generateName."""
    string = CelType("string", MAX_REQUEST_SIZE_BYTES - 2, min_serialized=MIN_STRING_SIZE)
    meta = CelType("object", fields={"name": string, "generateName": string}, min_serialized=2)
    fields = {"apiVersion": string, "kind": string, "metadata": meta, **t.fields}
    return CelType("object", fields=fields, min_serialized=t.min_serialized)


# --------------------------------------------------------------------------------------
# A parser for the CEL subset CRD rules use
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<float>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>0x[0-9a-fA-F]+u?|\d+u?)
  | (?P<string>[rR]?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
)""",
    re.VERBOSE,
)


@dataclass
class Node:
    kind: str  # lit, ident, select, has, call, list, map
    value: Any = None  # literal value / identifier / field / function name
    args: list[Node] = field(default_factory=list)
    target: Node | None = None


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CostEstimateError(f"cannot tokenize {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise CostEstimateError(f"unexpected end of {self.text!r}")
        tok = self.tokens[self.i]
        if expected is not None and tok[1] != expected:
            raise CostEstimateError(f"expected {expected!r}, got {tok[1]!r} in {self.text!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.i != len(self.tokens):
            raise CostEstimateError(f"trailing {self.peek()!r} in {self.text!r}")
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.peek() == "?":
            self.take("?")
            yes = self.expr()
            self.take(":")
            no = self.expr()
            return Node("call", "_?_:_", [cond, yes, no])
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            left = Node("call", op, [left, right])
        return left

    def unary(self) -> Node:
        if self.peek() in ("!", "-"):
            op = self.take()[1]
            return Node("call", "unary" + op, [self.unary()])
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                kind, name = self.take()
                if kind != "ident":
                    raise CostEstimateError(f"expected a field name after '.', got {name!r}")
                if self.peek() == "(":
                    node = Node("call", name, self.arguments(), target=node)
                else:
                    node = Node("select", name, target=node)
            else:
                index = self.expr()
                self.take("]")
                node = Node("call", "_[_]", [node, index])
        return node

    def arguments(self) -> list[Node]:
        self.take("(")
        args = []
        while self.peek() != ")":
            args.append(self.expr())
            if self.peek() == ",":
                self.take(",")
        self.take(")")
        return args

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "int":
            return Node("lit", int(text.rstrip("u"), 0))
        if kind == "float":
            return Node("lit", float(text))
        if kind == "string":
            body = text[1:] if text[0] in "rR" else text
            return Node("lit", body[1:-1])
        if kind == "ident":
            if text in ("true", "false"):
                return Node("lit", text == "true")
            if text == "null":
                return Node("lit", None)
            if self.peek() == "(":
                args = self.arguments()
                if text == "has":
                    if len(args) != 1 or args[0].kind != "select":
                        raise CostEstimateError("has() takes one field selection")
                    return Node("has", args[0].value, target=args[0].target)
                return Node("call", text, args)
            return Node("ident", text)
        if text == "(":
            node = self.expr()
            self.take(")")
            return node
        if text == "[":
            elems = []
            while self.peek() != "]":
                elems.append(self.expr())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return Node("list", args=elems)
        if text == "{":
            entries = []
            while self.peek() != "}":
                entries.append(self.expr())
                self.take(":")
                entries.append(self.expr())
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
            return Node("map", args=entries)
        raise CostEstimateError(f"unexpected {text!r} in {self.text!r}")


def parse(rule: str) -> Node:
    return _Parser(rule).parse()


# --------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------

_BOOL = CelType("bool")
_INT = CelType("int")
_DOUBLE = CelType("double")
_MACROS = {"all", "exists", "exists_one", "existsOne", "map", "filter"}
_LIST_TRAVERSALS = {"sum", "min", "max", "isSorted", "indexOf", "lastIndexOf"}
_STRING_TRAVERSALS = {"lowerAscii", "upperAscii", "trim", "substring", "charAt", "url", "quantity", "isQuantity", "ip", "cidr", "isIP", "isCIDR", "isURL"}


def _size(t: CelType) -> int:
    return t.max_size if t.kind in ("string", "list", "map", "dyn") else 1


def _union(a: CelType, b: CelType) -> CelType:
    if a.kind != b.kind:
        return CelType("dyn", max(_size(a), _size(b)))
    bigger = a if _size(a) >= _size(b) else b
    return bigger


class _Coster:
    def __init__(self, self_type: CelType) -> None:
        self.scopes: list[dict[str, CelType]] = [{"self": self_type}]

    def lookup(self, name: str) -> CelType:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise CostEstimateError(f"unknown identifier {name!r}")

    def cost(self, node: Node) -> tuple[int, CelType]:
        if node.kind == "lit":
            v = node.value
            if isinstance(v, bool):
                return 0, _BOOL
            if isinstance(v, int):
                return 0, _INT
            if isinstance(v, float):
                return 0, _DOUBLE
            if isinstance(v, str):
                return 0, CelType("string", len(v.encode()))
            return 0, CelType("null")
        if node.kind == "ident":
            return 1, self.lookup(node.value)
        if node.kind == "select":
            assert node.target is not None
            cost, t = self.cost(node.target)
            return cost + 1, self.field(t, node.value)
        if node.kind == "has":
            assert node.target is not None
            cost, t = self.cost(node.target)
            self.field(t, node.value)  # the field must exist (the server's type check)
            return cost + 1, _BOOL
        if node.kind == "list":
            total, elem = CREATE_LIST_BASE_COST, None
            for e in node.args:
                c, t = self.cost(e)
                total += c
                elem = t if elem is None else _union(elem, t)
            return total, CelType("list", len(node.args), elem=elem or CelType("dyn", 0))
        if node.kind == "map":
            total = CREATE_MAP_BASE_COST + sum(self.cost(e)[0] for e in node.args)
            return total, CelType("map", len(node.args) // 2, elem=CelType("dyn", MAX_REQUEST_SIZE_BYTES), key=CelType("dyn", MAX_REQUEST_SIZE_BYTES))
        if node.kind == "call":
            if node.value in _MACROS and node.target is not None:
                return self.macro(node)
            return self.call(node)
        raise CostEstimateError(f"unknown node {node.kind}")

    def field(self, t: CelType, name: str) -> CelType:
        if t.kind == "object":
            if name not in t.fields:
                raise CostEstimateError(f"no field {name!r} (the server would refuse the rule)")
            return t.fields[name]
        if t.kind == "map":
            assert t.elem is not None
            return t.elem
        if t.kind == "dyn":
            return CelType("dyn", MAX_REQUEST_SIZE_BYTES)
        raise CostEstimateError(f"cannot select {name!r} from a {t.kind}")

    def macro(self, node: Node) -> tuple[int, CelType]:
        assert node.target is not None
        range_cost, range_type = self.cost(node.target)
        if range_type.kind == "list":
            var_type = range_type.elem or CelType("dyn", MAX_REQUEST_SIZE_BYTES)
        elif range_type.kind == "map":
            var_type = range_type.key or CelType("string", MAX_REQUEST_SIZE_BYTES)
        else:
            raise CostEstimateError(f"{node.value}() over a {range_type.kind}")
        count = _size(range_type)
        if not node.args or node.args[0].kind != "ident":
            raise CostEstimateError(f"{node.value}() needs a variable name")
        self.scopes.append({node.args[0].value: var_type})
        try:
            bodies = [self.cost(arg) for arg in node.args[1:]]
        finally:
            self.scopes.pop()
        body_cost = sum(c for c, _ in bodies)
        fn = node.value
        if fn == "map":
            # accu + [transform]: list concatenation 1, list literal 10, accu 1
            step, init, result_type = body_cost + 12, CREATE_LIST_BASE_COST, CelType("list", count, elem=bodies[-1][1])
        elif fn == "filter":
            step, init, result_type = body_cost + 13, CREATE_LIST_BASE_COST, CelType("list", count, elem=var_type)
        else:  # all, exists, exists_one: accu && p / accu || p / p ? accu + 1 : accu
            step, init, result_type = body_cost + 3, 0, _BOOL
        total = range_cost + init + 2 + count * (step + COMPREHENSION_OVERHEAD)
        return total, result_type

    def call(self, node: Node) -> tuple[int, CelType]:
        fn = node.value
        target_cost, target_type = (0, None)
        if node.target is not None:
            target_cost, target_type = self.cost(node.target)
        costs_types = [self.cost(a) for a in node.args]
        args_cost = target_cost + sum(c for c, _ in costs_types)
        types = [t for _, t in costs_types]
        if fn in ("&&", "||"):
            return args_cost, _BOOL
        if fn == "_?_:_":
            cond, yes, no = costs_types
            return cond[0] + max(yes[0], no[0]), _union(yes[1], no[1])
        if fn in ("unary!", "unary-"):
            return 1 + args_cost, types[0]
        if fn in ("==", "!=", "<", "<=", ">", ">="):
            smallest = min(_size(types[0]), _size(types[1]))
            return max(1, _ceil(smallest * STRING_TRAVERSAL_COST_FACTOR)) + args_cost, _BOOL
        if fn in ("+", "-", "*", "/", "%"):
            if fn == "+" and types[0].kind == "string":
                size = _size(types[0]) + _size(types[1])
                return max(1, _ceil(size * STRING_TRAVERSAL_COST_FACTOR)) + args_cost, CelType("string", size)
            if fn == "+" and types[0].kind == "list":
                return 1 + args_cost, CelType("list", _size(types[0]) + _size(types[1]), elem=types[0].elem)
            return 1 + args_cost, types[0]
        if fn == "in":
            return _size(types[1]) + args_cost, _BOOL
        if fn == "_[_]":
            container = types[0]
            if container.kind in ("list", "map") and container.elem is not None:
                return 1 + args_cost, container.elem
            return 1 + args_cost, CelType("dyn", MAX_REQUEST_SIZE_BYTES)
        if fn == "size":
            return 1 + args_cost, _INT
        if fn in ("startsWith", "endsWith"):
            return max(1, _ceil(_size(types[0]) * STRING_TRAVERSAL_COST_FACTOR)) + args_cost, _BOOL
        if fn == "contains" and target_type is not None:
            t = _ceil(_size(target_type) * STRING_TRAVERSAL_COST_FACTOR)
            a = _ceil(_size(types[0]) * STRING_TRAVERSAL_COST_FACTOR)
            return max(1, t * a) + args_cost, _BOOL
        if fn == "matches":
            subject = target_type if target_type is not None else types[0]
            pattern = types[-1]
            s = _ceil((_size(subject) + 1) * STRING_TRAVERSAL_COST_FACTOR)
            r = _ceil(_size(pattern) * REGEX_STRING_LENGTH_COST_FACTOR)
            return max(1, s * r) + args_cost, _BOOL
        if fn in _LIST_TRAVERSALS and target_type is not None:
            if target_type.kind == "list":
                elem = target_type.elem or CelType("dyn", MAX_REQUEST_SIZE_BYTES)
                per = 1 + (_ceil(_size(elem) * STRING_TRAVERSAL_COST_FACTOR) if elem.kind in ("string", "dyn") else 0)
                return _size(target_type) * per + args_cost, elem if fn in ("sum", "min", "max") else _INT
            return max(1, _ceil(_size(target_type) * STRING_TRAVERSAL_COST_FACTOR)) + args_cost, _INT
        if fn in _STRING_TRAVERSALS:
            subject = target_type if target_type is not None else types[0]
            return max(1, _ceil(_size(subject) * STRING_TRAVERSAL_COST_FACTOR)) + args_cost, CelType("string", _size(subject))
        if fn in ("int", "uint", "double", "bool", "string", "type", "dyn", "duration", "timestamp"):
            subject = types[0] if types else _INT
            return max(1, _ceil(_size(subject) * STRING_TRAVERSAL_COST_FACTOR)) + args_cost, CelType("dyn", max(_size(subject), 32))
        raise CostEstimateError(f"no cost model for function {fn!r}: add one to tests/support/celcost.py (never assume zero)")


def estimate_rule(rule: str, self_type: CelType) -> int:
    """The worst-case cost of one evaluation of ``rule`` with ``self`` of ``self_type``."""
    cost, result = _Coster(self_type).cost(parse(rule))
    if result.kind not in ("bool", "dyn"):
        raise CostEstimateError(f"rule does not evaluate to a bool: {rule!r}")
    return cost


# --------------------------------------------------------------------------------------
# The whole schema
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleCost:
    path: str  # e.g. spec.model.env[*].valueFrom
    index: int  # position in x-kubernetes-validations
    rule: str
    cost: int  # one evaluation
    cardinality: int  # how often it can run in one object
    bounded: bool  # every list and map around it has maxItems / maxProperties

    @property
    def total(self) -> int:
        return self.cost * self.cardinality

    def describe(self) -> str:
        where = f"{self.path}.x-kubernetes-validations[{self.index}]"
        how = "product of the maxItems/maxProperties around it" if self.bounded else "UNBOUNDED list/map around it: sized from the 3 MiB request limit"
        return (
            f"{where}: {self.cost:,} per evaluation x {self.cardinality:,} evaluations ({how}) = {self.total:,} "
            f"= {100 * self.total / PER_RULE_COST_LIMIT:.2f}% of the per-rule limit {PER_RULE_COST_LIMIT:,}\n    rule: {self.rule}"
        )


def _walk(
    schema: dict[str, Any], path: str, cardinality: int | None, root: bool
) -> Iterator[tuple[str, dict[str, Any], int | None, bool]]:
    """(path, node, cardinality or None when unbounded, is_resource_root) for every node."""
    yield path, schema, cardinality, root
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), dict):
        factor = schema.get("maxItems")
        child = None if cardinality is None or factor is None else cardinality * int(factor)
        yield from _walk(schema["items"], f"{path}[*]", child, False)
    for name, prop in (schema.get("properties") or {}).items():
        yield from _walk(prop, f"{path}.{name}" if path else name, cardinality, False)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        factor = schema.get("maxProperties")
        child = None if cardinality is None or factor is None else cardinality * int(factor)
        yield from _walk(extra, f"{path}[*]", child, False)


def estimate_schema(schema: dict[str, Any]) -> list[RuleCost]:
    """Every rule of an openAPIV3Schema with its conservative worst-case cost and cardinality."""
    found = []
    for path, node, cardinality, root in _walk(schema, "", 1, True):
        rules = node.get("x-kubernetes-validations") or []
        if not rules:
            continue
        self_type = decl_type(node)
        if root:
            self_type = with_object_meta(self_type)
        if cardinality is None:
            # celmodel.MaxCardinality: as many as fit in a request at their smallest.
            count = MAX_REQUEST_SIZE_BYTES // (self_type.min_serialized + 1)
        else:
            count = cardinality
        for i, rule in enumerate(rules):
            text = rule["rule"]
            try:
                cost = estimate_rule(text, self_type)
            except CostEstimateError as exc:
                raise CostEstimateError(f"{path or '<root>'}.x-kubernetes-validations[{i}]: {exc}") from exc
            if rule.get("messageExpression"):
                # Counted once, not times the cardinality, as the server does.
                message_cost, _ = _Coster(self_type).cost(parse(rule["messageExpression"]))
                found.append(RuleCost(path or "<root>", i, rule["messageExpression"], message_cost, 1, True))
            found.append(RuleCost(path or "<root>", i, text, cost, count, cardinality is not None))
    return found


def unbounded_nodes(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Every list without maxItems, map without maxProperties and string without maxLength.

    A string with an ``enum`` is bounded by its values; an int-or-string is not a string to
    the server's estimator (it is ``dyn``, sized from the request limit whatever maxLength says),
    so it is left to the operator's own parser.
    """
    found = []
    for path, node, _, _ in _walk(schema, prefix, 1, False):
        kind = node.get("type")
        if node.get("x-kubernetes-int-or-string"):
            continue
        if kind == "array" and "maxItems" not in node:
            found.append(f"{path}: list without maxItems")
        elif kind == "object" and isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
            found.append(f"{path}: map without maxProperties")
        elif kind == "string" and "maxLength" not in node and "enum" not in node:
            found.append(f"{path}: string without maxLength")
    return found
