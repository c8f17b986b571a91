"""Scalar types shared by the spec: durations, quantities, names, label maps.

Each type validates in pydantic (the operator parses every spec it reads) and carries
the JSON-schema hints the CRD generator turns into OpenAPI: a pattern where a pattern
can say it, ``x-kubernetes-int-or-string`` for quantities.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration, as kubectl and the API server parse durations


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("30s", "1h30m", "250ms") into a timedelta."""
    if not isinstance(text, str) or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m, 1h30m or 250ms")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds > _MAX_SECONDS:  # a timedelta would overflow (OverflowError, not a ValueError)
        raise ValueError(f"{text!r} is longer than the longest duration, 2562047h (about 292 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    total_ms = round(value.total_seconds() * 1000)
    if total_ms % 1000:
        return f"{total_ms}ms"
    seconds = total_ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _check_duration(value: Any) -> str:
    parse_duration(value)
    return str(value)


# Field before BeforeValidator: the other order drops the pattern from the JSON schema.
Duration = Annotated[
    str,
    # 32 characters: "1h30m15s250ms" is 13; nobody writes a longer duration by hand.
    Field(pattern=DURATION_PATTERN, max_length=32, description="A duration such as 30s, 5m, 1h30m or 250ms."),
    BeforeValidator(_check_duration),
]

# Kubernetes' own quantity grammar (k8s.io/apimachinery/pkg/api/resource).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes resource quantity ("500m", "2Gi", "1e3", 2) into a Decimal."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 1.5Gi or 512Mi")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError) as exc:  # pragma: no cover - the regex admits only valid parts
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from exc


QUANTITY_MAX_LENGTH = 64  # "123456789012345678901234567890.123456789Gi" is 42


def _check_int_or_string(value: Any) -> Any:
    # The API server's int-or-string takes integers and strings only: not booleans (which
    # pydantic's int would take as 0/1) and not numbers with a fraction.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{value!r} is not an integer or a string such as 500m, 2 or 1.5Gi")
    if isinstance(value, str) and len(value) > QUANTITY_MAX_LENGTH:
        raise ValueError(f"a quantity is at most {QUANTITY_MAX_LENGTH} characters")
    return value


# Quantities are validated by the operator (parse_quantity), not the schema: the
# structural-schema rules allow no pattern on an int-or-string value, and the API server's
# cost estimator ignores maxLength there (it treats the value as dyn).
Quantity = Annotated[
    int | str,
    BeforeValidator(_check_int_or_string),
    PlainSerializer(lambda v: v, return_type=Any),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "A Kubernetes quantity, e.g. 500m, 2, 1.5Gi, 512Mi.",
        }
    ),
]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=40)]

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_KEY_MAX_LENGTH = 317  # a DNS subdomain prefix (253), "/", a name (63)
LABEL_VALUE_MAX_LENGTH = 63

# Map keys: a CRD cannot bound them (no propertyNames in a structural schema), pydantic does.
LabelKey = Annotated[str, Field(min_length=1, max_length=LABEL_KEY_MAX_LENGTH)]
# Qualified names (resource names such as nvidia.com/gpu) have the label key grammar.
QualifiedName = LabelKey
# The syntax (and the 63 again, with a clearer message) is checked by check_label_value.
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX_LENGTH)]


def check_label_key(key: str) -> None:
    name = key.rsplit("/", 1)[-1]
    prefix = key.rsplit("/", 1)[0] if "/" in key else ""
    if not re.fullmatch(LABEL_KEY_PATTERN, key) or len(name) > 63 or len(prefix) > 253:
        raise ValueError(f"{key!r} is not a valid label key")


def check_label_value(value: str) -> None:
    if len(value) > 63 or not re.fullmatch(LABEL_VALUE_PATTERN, value):
        raise ValueError(f"{value!r} is not a valid label value (63 characters at most: alphanumerics, '-', '_', '.')")
