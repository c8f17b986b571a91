"""The pydantic base every API model derives from: camelCase on the wire, CEL rules attached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel, to_snake


class Rule(NamedTuple):
    """A cross-field rule, said twice: in CEL for the API server and in Python for the operator.

    The CRD generator copies ``cel``/``message``/``field_path`` into ``x-kubernetes-validations``;
    ``headway.planning.validation.check_spec`` runs ``holds`` on every parsed object, so a spec
    the API server would refuse is never acted on by the operator either (it may see specs the
    API server never validated: stored before a rule existed, or an emulator, or a test).
    Both must say the same thing; tests/unit/test_manifests.py runs the invalid corpus through both.
    """

    cel: str
    message: str
    field_path: str | None
    holds: Callable[[Any], bool]


class ApiModel(BaseModel):
    """camelCase aliases, unknown fields ignored (the API server prunes them anyway).

    Subclasses list their cross-field rules in ``__cel__`` (see ``Rule``).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
    )

    __cel__: ClassVar[tuple[Rule, ...]] = ()

    def dump(self) -> dict[str, Any]:
        """The object as it appears in a manifest: aliases, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def exactly_one(*fields: str) -> str:
    """A CEL rule: exactly one of the given optional fields is set."""
    checks = ", ".join(f"has(self.{f})" for f in fields)
    return f"[{checks}].filter(x, x).size() == 1"


def exactly_one_of(message: str, *fields: str) -> Rule:
    """The Rule: exactly one of the given optional fields (camelCase names) is set."""
    attributes = [to_snake(f) for f in fields]
    return Rule(exactly_one(*fields), message, None, lambda m: sum(getattr(m, a) is not None for a in attributes) == 1)
