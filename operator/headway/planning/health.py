"""The stable version's health in steady state, and the DeploymentComplete condition — pure.

A rollout's analysis stops with the bake; after it nothing measured the stable, so "its SLOs are
met" meant "were met when it was promoted". With ``spec.analysis`` the stable is now measured in
steady state too, over consecutive windows of ``WINDOW_INTERVALS`` analysis intervals, each measured
once when it ends (an SLO breached an hour ago does not keep it False, and series that stopped
arriving show within two windows). It is the same measurement as a rollout's (the same queries,
one variant, no baseline) and judged by the same SLO tests on that window alone; it is recorded in
``status.health``, never in ``status.analysis`` (the last rollout's evidence stays for the audit),
and it never rolls anything back: a breach of the stable has no version to go back to.

DeploymentComplete is True only when the deployment is running (phase Succeeded: the stable is
available with its desired replicas, nothing rolling out, baking or rolled back), monitored (every
SLO's series present over the window), performant (no SLO shown breached over the window) and
governed (no approval awaited or refused). Its cost, per ModelDeployment with an analysis: one
Prometheus measurement and one status write per window (5 intervals: 2.5 minutes at the default
30s), a fifth of a rollout's cadence; steady state stays cheap for the API server.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Literal

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import HealthStatus, ModelDeploymentStatus, Phase, SloHealth
from headway.api.types import parse_duration
from headway.planning.analysis import AnalysisRequest
from headway.planning.conditions import parse_time, rfc3339
from headway.planning.naming import STABLE, revision_of
from headway.planning.verdict_types import VariantData, slo_name
from headway.planning.verdicts import assess

WINDOW_INTERVALS = 5  # the health window, in analysis intervals
Triple = tuple[Literal["True", "False", "Unknown"], str, str]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def request(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: datetime) -> AnalysisRequest | None:
    """The health measurement of the stable, when nothing else is measured: no rollout, bake or
    experiment. Windows of WINDOW_INTERVALS intervals follow one another: the request is the same
    until the next window ends, so one measurement answers it."""
    if spec is None or spec.analysis is None or spec.experiment is not None or status.stable_model is None:
        return None
    if status.rollout is not None or status.bake is not None:
        return None
    window = parse_duration(spec.analysis.interval) * WINDOW_INTERVALS
    revision = revision_of(status.stable_model)
    # Each ModelDeployment's grid is offset by its revision's hash: they do not all query Prometheus at once.
    offset = timedelta(seconds=int(revision[:8], 16) % max(1, int(window.total_seconds())))  # revision_of: sha256 hex
    end = _EPOCH + offset + window * math.floor((now - _EPOCH - offset) / window)
    return AnalysisRequest("steady", revision, end - window, ((STABLE, None),))


def due_at(spec: ModelDeploymentSpec, health: HealthStatus | None, req: AnalysisRequest) -> datetime:
    """Now for a window not measured yet; else when the next window ends."""
    assert spec.analysis is not None
    window = parse_duration(spec.analysis.interval) * WINDOW_INTERVALS
    ends = req.window_start + window  # the last window that ended
    if health is None or health.revision != req.revision or health.window_start != rfc3339(req.window_start):
        return ends
    return ends + window


def _present(spec: ModelDeploymentSpec, data: VariantData) -> dict[str, bool]:
    """Per SLO, whether its series answered over the window (a count of 0 is present: no traffic is not no metrics)."""
    assert spec.analysis is not None
    out: dict[str, bool] = {}
    for slo in spec.analysis.slos:
        name = slo_name(slo)
        if slo.latency is not None:
            out[name] = data.latency is not None
        elif slo.query is not None and slo.query.numerator is not None:
            num, den = data.ratios.get(slo.query.name, (None, None))
            out[name] = num is not None and den is not None and not (math.isnan(num) or math.isnan(den))
        elif slo.query is not None:
            value = data.queries.get(slo.query.name)
            out[name] = value is not None and not math.isnan(value)
        else:
            out[name] = data.requests.total is not None
    if not spec.analysis.slos:
        out["traffic"] = data.requests.total is not None
    return out


def assess_health(spec: ModelDeploymentSpec, req: AnalysisRequest, data: VariantData | None, error: str | None,
                  taken_at: datetime) -> HealthStatus:
    """status.health from one measurement of the stable's window."""
    assert spec.analysis is not None
    base = HealthStatus(revision=req.revision, window_start=rfc3339(req.window_start), checked_at=rfc3339(taken_at))
    if error is not None or data is None:
        return base.model_copy(update={"error": error or "no data for the stable"})
    present = _present(spec, data)
    verdicts = assess(spec.analysis.slos, data, None, spec.analysis.min_requests)
    slos = [SloHealth(slo=v.slo, present=present.get(v.slo, True), result=v.result, value=v.value, threshold=v.threshold,
                      samples=v.samples) for v in verdicts]
    return base.model_copy(update={"slos": slos, "missing": [name for name, ok in present.items() if not ok]})


def current(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, previous: HealthStatus | None) -> HealthStatus | None:
    """The health kept in status: only for the stable revision that was measured."""
    if previous is None or spec is None or spec.analysis is None or status.stable_model is None:
        return None
    return previous if previous.revision == revision_of(status.stable_model) else None


def stale(spec: ModelDeploymentSpec, health: HealthStatus, now: datetime) -> bool:
    """A measurement older than a window and a minute: the operator could not measure since (too old to stand for now)."""
    assert spec.analysis is not None
    return now - parse_time(health.checked_at) > parse_duration(spec.analysis.interval) * (2 * WINDOW_INTERVALS) + timedelta(minutes=1)


def complete(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: datetime) -> Triple:
    """DeploymentComplete: (status, reason, message)."""
    if spec is None or status.problems:
        return "False", "InvalidSpec", "the spec is invalid: nothing changes until it is fixed"
    if status.phase != Phase.SUCCEEDED:
        phase = status.phase.value if status.phase is not None else "Pending"
        return "False", phase, f"phase {phase}: the desired version is not the one serving, or is not available yet"
    gov = status.governance
    if spec.analysis is None or not spec.analysis.slos:
        return "False", "NotMonitored", "spec.analysis names no SLOs: nothing shows the stable performs"
    health = status.health
    interval = parse_duration(spec.analysis.interval)
    if health is None:
        return "Unknown", "NotMeasured", (f"the stable's SLOs are measured over windows of {WINDOW_INTERVALS} x {spec.analysis.interval}; "
                                          "not measured yet")
    if health.error is not None:
        return "Unknown", "MetricsUnavailable", f"the stable's SLOs could not be measured at {health.checked_at}: {health.error}"
    if stale(spec, health, now):
        return "Unknown", "MeasurementStale", f"the stable's SLOs were last measured at {health.checked_at}"
    window = f"over the {WINDOW_INTERVALS * interval.total_seconds():g}s to {health.checked_at}"
    if health.missing:
        return "False", "MetricsMissing", f"no series for {', '.join(health.missing)} {window}: the stable's metrics are not flowing"
    breached = [s for s in health.slos if s.result == "Fail"]
    if breached:
        what = ", ".join(f"{s.slo} {_fmt(s.value)} (bound {_fmt(s.threshold)})" for s in breached)
        return "False", "SLOsBreached", f"shown breached {window}: {what}"
    tier = f", governance {gov.risk_tier} satisfied" if gov is not None else ""
    return ("True", "Complete", f"stable {status.stable.bento if status.stable else ''} available, every SLO's series present "
            f"and none breached {window}{tier}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
