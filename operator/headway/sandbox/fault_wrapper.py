"""A user's BentoML service with injected faults: what ``bentoml serve`` gets instead of it.

Served as::

    HEADWAY_FAULT_TARGET=my_project.service:Summarizer HEADWAY_FAULT_ERROR_RATE=0.05 \\
        bentoml serve headway.sandbox.fault_wrapper:service --working-dir /path/to/my_project

At import (in the ``bentoml serve`` process and again in each worker) this module imports the
target — ``module:Attribute`` (relative to the working directory, which BentoML puts on
``sys.path``), a bare ``module`` holding one root service, or the path of a built bento
directory — and adds :class:`~headway.sandbox.faults.FaultMiddleware` to it with
``Service.add_asgi_middleware``. ``service`` is the user's own Service object: its name,
APIs, configuration and dependencies are unchanged, so BentoML's metrics carry the user's
``service_name``. BentoML runs user middlewares inside its metrics middleware, so the
injected 500s and delays are counted in ``bentoml_service_request_total`` and
``bentoml_service_request_duration_seconds``.

Only the API routes of the service (``@bentoml.api`` methods, under its ``path_prefix``)
are faulted; health probes, ``/metrics`` and the docs are not.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any

from headway.sandbox.faults import TARGET_VAR, FaultMiddleware, FaultSpec

def load_target(target: str) -> Any:
    """The new-style BentoML Service named by ``target`` (``module:Attr``, ``module``, bento dir)."""
    import bentoml
    from _bentoml_sdk import Service

    if os.path.isdir(os.path.expanduser(target)):
        svc: Any = bentoml.load(os.path.expanduser(target))
    else:
        module_name, _, attrs = target.partition(":")
        module = importlib.import_module(module_name)
        if attrs:
            svc = module
            for attr in attrs.split("."):
                svc = svc.dependencies[attr].on if isinstance(svc, Service) else getattr(svc, attr)
        else:
            found = [v for v in vars(module).values() if isinstance(v, Service)]
            dependents = {dep.on for v in found for dep in v.dependencies.values() if dep.on is not None}
            roots = [v for v in found if v not in dependents]
            if len(roots) != 1:
                raise ImportError(f"{module_name} holds {len(roots)} root BentoML services; name one as {module_name}:Attribute")
            svc = roots[0]
    if not isinstance(svc, Service):
        raise TypeError(f"{target} is {type(svc).__name__}, not a BentoML service (@bentoml.service)")
    return svc


def api_paths(svc: Any) -> set[str]:
    """The HTTP paths of the service's APIs (``path_prefix`` + each API's route)."""
    prefix = str(getattr(svc, "path_prefix", "") or "").strip("/")
    paths = set()
    for method in svc.apis.values():
        route = str(method.route).strip("/")
        paths.add("/" + "/".join(p for p in (prefix, route) if p))
    return paths


def wrap(svc: Any, spec: FaultSpec) -> Any:
    """Add the fault middleware to ``svc`` (once per process); returns ``svc``."""
    if not any(cls is FaultMiddleware for cls, _ in svc.middlewares):
        svc.add_asgi_middleware(FaultMiddleware, spec=spec, paths=sorted(api_paths(svc)))
    return svc


def _from_environment() -> Any:
    target = os.environ.get(TARGET_VAR, "").strip()
    if not target:
        raise RuntimeError(f"{TARGET_VAR} is not set: the service to wrap (module:Attribute or a bento directory)")
    spec = FaultSpec.from_env(os.environ)
    from bentoml._internal.context import server_context

    worker = server_context.worker_index or 1  # 1, 2, ... in the workers; None in the parent
    if worker > 1:  # each worker its own sequence: workers=1 (the example's) keeps the seed's
        spec = dataclasses.replace(spec, seed=spec.seed + 7919 * (worker - 1))
    return wrap(load_target(target), spec)


service = _from_environment()
