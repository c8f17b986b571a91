"""``headway.api.spec`` names every spec model, wherever it is defined (callers import from it)."""

from __future__ import annotations

import importlib
import inspect

import pytest

from headway.api import spec
from headway.api.base import ApiModel

PARTS = ["headway.api.serving", "headway.api.strategies", "headway.api.routing", "headway.api.analysis_spec", "headway.api.limits"]


@pytest.mark.parametrize("module_name", PARTS)
def test_every_model_is_reexported_by_spec(module_name: str) -> None:
    module = importlib.import_module(module_name)
    models = {n for n, obj in vars(module).items() if inspect.isclass(obj) and issubclass(obj, ApiModel) and obj.__module__ == module_name}
    assert models <= set(spec.__all__), f"not re-exported by headway.api.spec: {sorted(models - set(spec.__all__))}"
    for name in models:
        assert getattr(spec, name) is getattr(module, name)


def test_every_spec_field_type_is_reachable_from_spec() -> None:
    """The models ModelDeploymentSpec is made of, all the way down, are importable from headway.api.spec."""
    seen: set[type[ApiModel]] = set()
    todo: list[type[ApiModel]] = [spec.ModelDeploymentSpec]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            for arg in _classes(field.annotation):
                if issubclass(arg, ApiModel):
                    todo.append(arg)
    assert {m.__name__ for m in seen} <= set(spec.__all__)


def _classes(annotation: object) -> list[type]:
    if inspect.isclass(annotation):
        return [annotation]
    return [c for arg in getattr(annotation, "__args__", ()) for c in _classes(arg)]
