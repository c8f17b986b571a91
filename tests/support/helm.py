"""A thin wrapper over helm-python-sdk: lint and render a chart offline with Helm's own engine.

helm-python-sdk (module ``helm_python``) binds Helm's Go SDK through a C ABI, so these are the
real ``helm lint`` and ``helm template`` code paths, including ``values.schema.json``
validation, without a helm binary and without a cluster (``lookup`` returns nothing).

    lint("charts/headway")                       -> LintResult(errors=[], warnings=[], ...)
    template("charts/headway", {"replicaCount": 2}) -> [{"kind": "Deployment", ...}, ...]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import helm_python
import yaml

__all__ = ["HelmValuesError", "LintMessage", "LintResult", "lint", "render", "template"]

HelmValuesError = helm_python.HelmValuesError  # raised for values the chart's schema rejects

# Severities of helm lint's support.Message.
_SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


@dataclass(frozen=True)
class LintMessage:
    severity: str  # info | warning | error | unknown
    path: str
    message: str


@dataclass(frozen=True)
class LintResult:
    messages: list[LintMessage] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[LintMessage]:
        return [m for m in self.messages if m.severity == "error"]

    @property
    def warnings(self) -> list[LintMessage]:
        return [m for m in self.messages if m.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.raw.get("errors")


def lint(
    chart_dir: str | os.PathLike[str],
    values: dict[str, Any] | None = None,
    *,
    strict: bool = False,
    namespace: str | None = None,
    kube_version: str | None = None,
) -> LintResult:
    """``helm lint chart_dir`` (with ``values`` as ``-f``): findings as data, never an exception."""
    options: dict[str, Any] = {}
    if strict:
        options["strict"] = True
    if namespace is not None:
        options["namespace"] = namespace
    if kube_version is not None:
        options["kube_version"] = kube_version
    report = helm_python.lint(os.fspath(chart_dir), values, **options)
    messages = [
        LintMessage(_SEVERITY.get(int(m.get("severity", 0)), "unknown"), m.get("path", ""), m.get("error", ""))
        for m in report.get("messages") or []
    ]
    return LintResult(messages=messages, raw=report)


def render(
    chart_dir: str | os.PathLike[str],
    values: dict[str, Any] | None = None,
    *,
    namespace: str = "headway-system",
    release: str = "headway",
) -> dict[str, str]:
    """``helm template``'s raw output: template path -> rendered text (NOTES.txt included)."""
    with helm_python.Chart.load(os.fspath(chart_dir)) as chart:
        return chart.render(values=values, name=release, namespace=namespace, is_install=True)


def template(
    chart_dir: str | os.PathLike[str],
    values: dict[str, Any] | None = None,
    namespace: str = "headway-system",
    release: str = "headway",
    *,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """Render the chart and parse every manifest with PyYAML, sorted by template path.

    Empty documents and NOTES.txt are dropped. ``include_crds`` adds the files of ``crds/``
    first, as ``helm template --include-crds`` does. Raises ``HelmValuesError`` when the values
    break ``values.schema.json`` and ``helm_python.HelmRenderError`` when a template fails.
    """
    with helm_python.Chart.load(os.fspath(chart_dir)) as chart:
        rendered = chart.render(values=values, name=release, namespace=namespace, is_install=True)
        crds = chart.crds if include_crds else []
    documents: list[dict[str, Any]] = []
    for crd in crds:
        documents.extend(_parse(crd["data"], crd["filename"]))
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or not path.endswith((".yaml", ".yml", ".tpl")):
            continue
        documents.extend(_parse(rendered[path], path))
    return documents


def _parse(text: str, source: str) -> list[dict[str, Any]]:
    documents = []
    for document in yaml.safe_load_all(text):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ValueError(f"{source}: a rendered document is not a mapping: {document!r}")
        documents.append(document)
    return documents
