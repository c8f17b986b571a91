"""Reading a ModelDeployment as the plugin shows it: spec, status and governance, tolerant of what it cannot parse.

Pure. The plugin may be older or newer than the operator that wrote the status: a field this
version cannot read is skipped (and named) rather than making the whole object unreadable, and
``status.governance`` (written by an operator with governance) is read from its wire form,
so the plugin shows it whether or not its own API models know the section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from headway.api.spec import ModelDeploymentSpec, RolloutStep
from headway.api.status import ModelDeploymentStatus
from headway.planning import steps as step_table
from headway.planning.conditions import parse_time
from headway.planning.validation import parse_spec

AWAITING_APPROVAL = "AwaitingApproval"


@dataclass(frozen=True)
class PolicyRule:
    role: str
    count: int
    stage: str


@dataclass(frozen=True)
class CountedApproval:
    name: str
    approver: str
    role: str
    decision: str
    comment: str
    at: str
    stage: str = ""


@dataclass(frozen=True)
class Governance:
    """``status.governance`` as the operator writes it (camelCase on the wire)."""

    risk_tier: str = ""
    policy: tuple[PolicyRule, ...] = ()
    stage: str = ""  # BeforeFirstCanary or BeforePromotion: where the rollout waits (or last waited)
    since: str = ""
    revision: str = ""
    evidence_digest: str = ""
    approvals: tuple[CountedApproval, ...] = ()
    waiting_for: tuple[tuple[str, int], ...] = ()  # (role, approvals still missing)
    approved_stages: tuple[str, ...] = ()
    rejected: CountedApproval | None = None

    @staticmethod
    def parse(raw: Any) -> Governance | None:
        if not isinstance(raw, dict):
            return None

        def text(d: Any, key: str) -> str:
            value = d.get(key) if isinstance(d, dict) else None
            return "" if value is None else str(value)

        def items(key: str) -> list[Any]:
            value = raw.get(key)
            return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []

        def count(d: dict[str, Any], key: str) -> int:
            try:
                return int(d.get(key) or 0)
            except (TypeError, ValueError):
                return 0

        def record(a: dict[str, Any]) -> CountedApproval:
            return CountedApproval(text(a, "name"), text(a, "approver"), text(a, "role"), text(a, "decision"),
                                   text(a, "comment"), text(a, "at"), text(a, "stage"))

        rejected = raw.get("rejected")
        stages = raw.get("approvedStages")
        return Governance(
            risk_tier=text(raw, "riskTier"),
            policy=tuple(PolicyRule(text(p, "role"), count(p, "count"), text(p, "stage")) for p in items("policy")),
            stage=text(raw, "stage"),
            since=text(raw, "since"),
            revision=text(raw, "revision"),
            evidence_digest=text(raw, "evidenceDigest"),
            approvals=tuple(record(a) for a in items("approvals")),
            waiting_for=tuple((text(w, "role"), count(w, "missing")) for w in items("waitingFor")),
            approved_stages=tuple(str(s) for s in stages) if isinstance(stages, list) else (),
            rejected=record(rejected) if isinstance(rejected, dict) else None,
        )


@dataclass(frozen=True)
class Approval:
    """A ModelApproval object, as listed from the API."""

    name: str
    model_deployment: str
    revision: str
    evidence_digest: str
    role: str
    approver: str
    decision: str
    comment: str
    created: str

    @staticmethod
    def parse(obj: dict[str, Any]) -> Approval:
        spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
        return Approval(str(meta.get("name", "")), str(spec.get("modelDeployment", "")), str(spec.get("revision", "")),
                        str(spec.get("evidenceDigest", "")), str(spec.get("role", "")), str(spec.get("approver", "")),
                        str(spec.get("decision", "")), str(spec.get("comment") or ""), str(meta.get("creationTimestamp") or ""))


@dataclass(frozen=True)
class Model:
    """One ModelDeployment as read from the API server."""

    name: str
    namespace: str
    generation: int | None
    annotations: dict[str, str]
    spec: ModelDeploymentSpec | None
    spec_problems: tuple[str, ...]
    status: ModelDeploymentStatus
    has_status: bool
    phase: str  # as written: a phase this version's enum lacks (AwaitingApproval) is still shown
    governance: Governance | None
    unreadable: tuple[str, ...] = field(default=())  # status fields this plugin could not read

    @property
    def steps(self) -> list[RolloutStep]:
        return list(self.spec.rollout.steps) if self.spec is not None and self.spec.rollout is not None else []

    @property
    def slo_count(self) -> int:
        return len(self.spec.analysis.slos) if self.spec is not None and self.spec.analysis is not None else 0


def read(obj: dict[str, Any]) -> Model:
    meta = obj.get("metadata") or {}
    raw_spec = obj.get("spec") or {}
    spec, problems = parse_spec(raw_spec)
    raw_status = obj.get("status")
    status, unreadable = _status(raw_status if isinstance(raw_status, dict) else {})
    phase = str((raw_status or {}).get("phase") or "") if isinstance(raw_status, dict) else ""
    return Model(
        name=str(meta.get("name", "")), namespace=str(meta.get("namespace", "")), generation=meta.get("generation"),
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        spec=spec, spec_problems=tuple(str(p) for p in problems), status=status, has_status=bool(raw_status),
        phase=phase, governance=Governance.parse((raw_status or {}).get("governance") if isinstance(raw_status, dict) else None),
        unreadable=unreadable,
    )


def _status(raw: dict[str, Any]) -> tuple[ModelDeploymentStatus, tuple[str, ...]]:
    """The status this version can read; a field it cannot (a newer operator's) is left out and named."""
    fields = {k: v for k, v in raw.items() if k not in ("phase", "governance")}
    try:
        return ModelDeploymentStatus.model_validate(fields), ()
    except ValidationError:
        pass
    kept: dict[str, Any] = {}
    bad = []
    for key, value in fields.items():
        try:
            ModelDeploymentStatus.model_validate({**kept, key: value})
            kept[key] = value
        except ValidationError:
            bad.append(key)
    return ModelDeploymentStatus.model_validate(kept), tuple(bad)


# --- time ------------------------------------------------------------------------------------------


def duration_text(d: timedelta) -> str:
    """``1h5m``, ``2m30s``, ``45s``: as kubectl prints ages (seconds shown below 10 minutes)."""
    seconds = max(0, math.floor(d.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes >= 10 or (minutes and not secs):
        return f"{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def ago(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "?"
    try:
        then = parse_time(timestamp)
    except ValueError:
        return timestamp
    return "just now" if then >= now else f"{duration_text(now - then)} ago"


# --- steps -----------------------------------------------------------------------------------------


def step_label(step: RolloutStep) -> str:
    """``canary 10% 2m``, ``shadow 50% 1m``, ``pause (manual gate)``, ``pause 30s``."""
    kind = step_table.kind_of(step)
    text = kind.label(step)
    length = step_table.duration(step)
    if kind.name != "pause" and length is not None:
        text += f" {duration_text(length)}"
    return text


def step_time(model: Model, now: datetime) -> tuple[timedelta, timedelta] | None:
    """(elapsed, left) of the running step, its clock stopped while paused; None: no clock runs.

    The operator shifts the step's start by the time it was paused when it resumes (rollout.py,
    ``_clock``), so what has elapsed is ``pausedAt or now`` minus ``stepStartedAt``."""
    rollout, steps = model.status.rollout, model.steps
    if rollout is None or rollout.promoting or not rollout.step_started_at or rollout.step >= len(steps):
        return None
    length = step_table.duration(steps[rollout.step])
    if length is None:
        return None
    started = parse_time(rollout.step_started_at)
    until = parse_time(rollout.paused_at) if rollout.paused_at else now
    elapsed = max(timedelta(0), until - started)
    return elapsed, max(timedelta(0), length - elapsed)
