"""The pydantic base every API model derives from: camelCase on the wire, CEL rules attached."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """camelCase aliases, unknown fields ignored (the API server prunes them anyway).

    Subclasses list CEL rules in ``__cel__`` as (rule, message, fieldPath or None); the
    CRD generator copies them into ``x-kubernetes-validations``.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
    )

    __cel__: ClassVar[tuple[tuple[str, str, str | None], ...]] = ()

    def dump(self) -> dict[str, Any]:
        """The object as it appears in a manifest: aliases, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def exactly_one(*fields: str) -> str:
    """A CEL rule: exactly one of the given optional fields is set."""
    checks = ", ".join(f"has(self.{f})" for f in fields)
    return f"[{checks}].filter(x, x).size() == 1"
