"""spec.monitoring as planning sees it: when to count, and what the counts say.

Like the analysis, planning never reads Prometheus or the profile's ConfigMap. It says what
it needs (``MonitorRequest``) and a fetcher outside planning answers with a ``MonitorResult``
(the profile and the recorder's bin counts per slice) in a later observation. Two parts,
each on its own fixed time grid so that a request is the same at every reconcile until it is
answered (the measurer runs one fetch per distinct request):

- **data drift** of the stable version: at every multiple of ``interval`` (Unix time), the
  last ``window`` in slices of ``interval`` (at most ``MAX_SLICES``), tested against the
  profile by ``drift.data_drift`` (Holm across the features, the prediction included);
- **prediction comparison** during a shadow or canary step (with ``compare``): at every
  ``interval`` since the step began, the candidate's prediction counts against the stable's
  over the step so far, on the same slices, by ``drift.prediction_drift`` at look k (the
  looks of a step are counted in status, and its level is spent over them); in a shadow step
  that mirrors every request, also the share of requests both versions answered alike, from
  the recorders' sketches (``agreement.sketch_agreement``: reported, never a gate).

``assess`` records an answer in ``status.monitoring`` only when it answers the current
request's grid point and is newer than what status holds (a late or repeated answer changes
nothing), derives the ``DataDrift`` condition and the Events of a change, and, with
``compare.gate``, the prediction gate a step needs to pass (``step_gate``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from headway.api.monitoring_spec import Monitoring, ProfileReference
from headway.api.profile import BinnedFeature, ReferenceProfile
from headway.api.spec import ModelDeploymentSpec, SeriesLabels
from headway.api.status import (
    Condition, ConditionType, DriftBin, FeatureDrift, HistoryEntry, ModelDeploymentStatus, MonitoringStatus,
    PredictionComparisonStatus,
)
from headway.api.types import parse_duration
from headway.planning import agreement, drift
from headway.planning.analysis import Gate
from headway.planning.conditions import EventIntent, history_entry, parse_time, rfc3339, set_condition
from headway.planning.naming import Owner, desired_version, revision_of
from headway.planning.steps import kind_of

MAX_SLICES = 60  # slices per window: the dispersion's degrees of freedom, and bounded queries
SLICES_PER_INTERVAL = 5
DEFAULT_SCRAPE = timedelta(seconds=15)  # the PodMonitor's scrape interval without an analysis or monitoring
MIN_SCRAPE = timedelta(seconds=5)  # never more often
PREDICTION = "prediction"  # the name of the prediction among the features
SKETCH = "sketch"  # the agreement sketch's series in a comparison's counts (headway.api.sketch)
MIN_COMPARE_SLICES = 2  # a comparison needs the dispersion between slices (drift.prediction_drift)
BinnedCounts = dict[str, list[dict[str, float]]]  # as metrics.base.BinnedCounts: {series: [{bin: count}]}


@dataclass(frozen=True)
class Window:
    """One variant's counts to fetch: ``slices`` equal slices of [start, end] of ``revision``."""

    variant: str
    revision: str
    start: datetime
    end: datetime
    slices: int


@dataclass(frozen=True)
class MonitorRequest:
    """What the plan needs counted, on fixed grids (see the module docstring)."""

    namespace: str
    name: str
    profile: ProfileReference
    labels: SeriesLabels
    url: str | None
    features: tuple[str, ...]  # the features to count (empty: every one of the profile)
    prediction: bool
    drift: Window | None  # the stable's inputs (and predictions) over the last window
    compare: tuple[Window, Window] | None  # (candidate, stable) predictions since the step began
    due_at: datetime
    # Why the comparison measures no agreement per request (None: the fetch counts both sides' sketches too).
    no_agreement: str | None = None


@dataclass(frozen=True)
class MonitorResult:
    """The fetcher's answer: the profile read from its ConfigMap and the counts, or why not."""

    request: MonitorRequest
    profile: ReferenceProfile | None
    counts: dict[str, BinnedCounts] = field(default_factory=dict)  # "drift", "candidate", "stable" (the comparison)
    error: str | None = None
    taken_at: datetime = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Assessment:
    """status.monitoring after this plan, the DataDrift condition, its Events and history."""

    status: MonitoringStatus | None
    condition: tuple[Literal["True", "False", "Unknown"], str, str] | None
    events: tuple[EventIntent, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


def _grid(now: datetime, every: timedelta, origin: datetime) -> datetime:
    """The latest point of the grid origin + k * every that is not after now."""
    seconds = every.total_seconds()
    k = math.floor((now - origin).total_seconds() / seconds)
    return origin + timedelta(seconds=k * seconds)


def _origin(owner: Owner, every: timedelta) -> datetime:
    """Each ModelDeployment's grid, offset by a hash of its uid: a fleet's checks do not all fall
    due at the same instant (and time out together in the measurer's queue)."""
    digest = int(hashlib.sha256(owner.uid.encode()).hexdigest()[:8], 16)
    return _EPOCH + timedelta(seconds=digest % max(1, int(every.total_seconds())))  # whole seconds: status keeps no more


def scrape_interval(spec: ModelDeploymentSpec) -> timedelta:
    """How often the PodMonitor scrapes the model servers: twice per analysis interval and five times
    per monitoring interval, never more often than every MIN_SCRAPE (rendering/monitoring.py renders it)."""
    wanted = [DEFAULT_SCRAPE]
    if spec.analysis is not None:
        wanted.append(parse_duration(spec.analysis.interval) / 2)
    if spec.monitoring is not None:
        wanted.append(parse_duration(spec.monitoring.interval) / SLICES_PER_INTERVAL)
    return max(min(wanted), MIN_SCRAPE)


def _slices(spec: ModelDeploymentSpec, span: timedelta, every: timedelta) -> int:
    """Slices of a window: a fifth of the interval each, at least two scrapes long, at most MAX_SLICES.

    The dispersion is estimated from the slices' differences: a few slices leave it nearly
    unknown (an F test on few degrees of freedom is nearly powerless); slices shorter than two
    scrapes would hold no sample of some pods and split one version's counts from the other's."""
    length = max(every.total_seconds() / SLICES_PER_INTERVAL, 2 * scrape_interval(spec).total_seconds())
    return max(1, min(MAX_SLICES, math.floor(span.total_seconds() / length)))


def comparing(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> tuple[str, datetime] | None:
    """(candidate revision, step start) while a running (not paused) shadow or canary step of the
    version spec.model names compares predictions."""
    rollout, steps = status.rollout, (spec.rollout.steps if spec.rollout else [])
    if (spec.monitoring is None or spec.monitoring.compare is None or not spec.monitoring.prediction or rollout is None
            or rollout.promoting or rollout.step_started_at is None or rollout.paused_at is not None or spec.paused
            or rollout.step >= len(steps) or not kind_of(steps[rollout.step]).analysed or status.stable is None
            or rollout.revision != revision_of(desired_version(spec))):
        return None
    return rollout.revision, parse_time(rollout.step_started_at)


def agreement_unmeasurable(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> str | None:
    """Why the comparing step cannot measure agreement per request (None: it can): the two versions must
    answer the same requests, which only a shadow step mirroring all of them sends (``comparing`` holds)."""
    assert spec.rollout is not None and status.rollout is not None
    kind = kind_of(spec.rollout.steps[status.rollout.step]).name
    if kind != "shadow":
        return (f"a {kind} step splits the requests between the versions, so none is answered by both "
                f"(a shadow step with percent 100 measures it)")
    mirrored = status.traffic.mirror_percent if status.traffic is not None else 0
    if mirrored < 100:
        return f"the mirror copies {mirrored}% of the requests to the candidate; agreement needs all of them (shadow percent 100)"
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _settings(spec: ModelDeploymentSpec, default_url: str | None) -> tuple[SeriesLabels, str | None]:
    labels = (spec.analysis.series_labels if spec.analysis else None) or SeriesLabels()
    url = (spec.analysis.prometheus.url if spec.analysis and spec.analysis.prometheus else None) or default_url
    return labels, url


def monitor_request(owner: Owner, spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: datetime,
                    default_url: str | None) -> MonitorRequest | None:
    """The counts ``status`` calls for at ``now``, with when they are due; None: nothing to monitor."""
    if spec is None or spec.monitoring is None or status.stable is None or not status.stable.revision:
        return None
    mon = spec.monitoring
    every, window = parse_duration(mon.interval), parse_duration(mon.window)
    previous = status.monitoring or MonitoringStatus()
    labels, url = _settings(spec, default_url)
    dues: list[datetime] = []
    drift_part = None
    point = _grid(now, every, _origin(owner, every))
    checked = parse_time(previous.checked_at) if previous.checked_at else None
    if checked is None or point > checked or previous.revision != status.stable.revision:
        drift_part = Window("stable", status.stable.revision, point - window, point, _slices(spec, window, every))
    else:
        dues.append(point + every)
    compare_part = None
    no_agreement = None
    if (compared := comparing(spec, status)) is not None:
        no_agreement = agreement_unmeasurable(spec, status)
        revision, since = compared
        at = _grid(now, every, since)
        last = previous.prediction
        done = (last is not None and last.revision == revision and parse_time(last.since) == since and last.until is not None
                and parse_time(last.until) >= at)
        if at > since and not done:
            slices = _slices(spec, at - since, every)
            compare_part = (Window("candidate", revision, since, at, slices), Window("stable", status.stable.revision, since, at, slices))
        else:
            dues.append(max(at, since) + every)
    due = (max(w.end for w in ([drift_part] if drift_part else []) + (list(compare_part) if compare_part else []))
           if drift_part is not None or compare_part is not None else min(dues))
    return MonitorRequest(owner.namespace, owner.name, mon.profile, labels, url, tuple(mon.features), mon.prediction,
                          drift_part, compare_part, due, no_agreement if compare_part is not None else None)


def _bins(feature: BinnedFeature, top: tuple[drift.BinShare, ...]) -> list[DriftBin]:
    return [DriftBin(bin=feature.describe(b.bin), observed=round(b.observed, 6), expected=round(b.reference, 6)) for b in top]


def _feature_status(f: drift.FeatureDrift, feature: BinnedFeature) -> FeatureDrift:
    judged = f.judged
    return FeatureDrift(
        feature=f.feature, result=f.result, samples=round(f.samples, 3), reference_samples=f.reference_samples,
        statistic=round(f.statistic, 6) if judged else None, dof=f.dof if judged else None,
        p_value=f.p_value if judged else None, adjusted_p_value=f.adjusted_p if judged else None,
        dispersion=round(f.phi, 4) if judged else None, psi=round(f.psi, 6) if judged else None,
        psi_critical=round(f.psi_critical, 6) if judged else None, top_bins=_bins(feature, f.top) if judged else [],
    )


def watched(mon: Monitoring, profile: ReferenceProfile) -> tuple[dict[str, BinnedFeature], list[str]]:
    """The features to test (the prediction as "prediction"), and the watched names the profile lacks."""
    names = list(mon.features) or list(profile.features)
    missing = [n for n in names if n not in profile.features]
    chosen = {n: profile.features[n] for n in names if n in profile.features}
    if mon.prediction and profile.prediction is not None:
        chosen[PREDICTION] = profile.prediction
    return chosen, missing


def _series(name: str) -> str:
    return PREDICTION if name == PREDICTION else f"feature:{name}"


def _padded(series: list[dict[str, float]] | None, slices: int) -> list[dict[str, float]]:
    """A version's slices; none at all (no series in Prometheus: no recorder, or no traffic) is zero counts."""
    return list(series) if series else [{} for _ in range(slices)]


def _data_drift(mon: Monitoring, result: MonitorResult, part: Window) -> MonitoringStatus:
    assert result.profile is not None
    features, missing = watched(mon, result.profile)
    counts = result.counts.get("drift", {})
    report = drift.data_drift(features, {n: counts.get(_series(n), []) for n in features}, alpha=mon.alpha,
                              min_samples=mon.min_samples, min_effect=mon.min_effect)
    return MonitoringStatus(
        checked_at=rfc3339(part.end), revision=part.revision, window=mon.window,
        features=[_feature_status(f, features[f.feature]) for f in report.features], drifted=list(report.drifted),
        missing_features=missing,
    )


def _look(previous: PredictionComparisonStatus | None, revision: str) -> int:
    """Looks are counted over the candidate's whole rollout (its steps, pauses and restarts): the
    level spent at look k is alpha * 6 / (pi^2 k^2), so over every look it is at most alpha."""
    return previous.look + 1 if previous is not None and previous.revision == revision else 1


def _comparison(mon: Monitoring, result: MonitorResult, parts: tuple[Window, Window], previous: PredictionComparisonStatus | None
                ) -> PredictionComparisonStatus:
    assert mon.compare is not None and result.profile is not None
    candidate, stable = parts
    look = _look(previous, candidate.revision)
    prediction = result.profile.prediction
    if prediction is None:
        return _not_compared(mon, parts, previous, "the profile has no prediction to compare")
    bins = list(prediction.bins)
    expected = [b for b in bins if prediction.describe(b) in mon.compare.expected_shift or b in mon.compare.expected_shift]
    verdict = drift.prediction_drift(
        _padded(result.counts.get("candidate", {}).get(PREDICTION), candidate.slices),
        _padded(result.counts.get("stable", {}).get(PREDICTION), stable.slices),
        look=look, bins=bins, alpha=mon.alpha, bound=mon.compare.max_difference, min_samples=mon.min_samples,
        expected_shift=expected, min_slices=MIN_COMPARE_SLICES,
    )
    finite = math.isfinite(verdict.tv_upper)
    # A look that could not decide (too few predictions or slices) spends no level: the next one
    # that can is tested at this look's alpha (the union bound needs only the looks that can reject).
    decidable = (verdict.candidate_samples >= mon.min_samples and verdict.stable_samples >= mon.min_samples
                 and verdict.slices >= MIN_COMPARE_SLICES)
    if not decidable:
        look -= 1  # and no level (alpha) is reported for it
    passed = verdict.result == "Pass" or (previous is not None and previous.revision == candidate.revision and previous.passed)
    agreed = _agreement(mon, result)
    return PredictionComparisonStatus(
        revision=candidate.revision, result=verdict.result, message=f"{verdict.message}; {agreed.words()}", since=rfc3339(candidate.start),
        until=rfc3339(candidate.end), look=look, passed=passed, candidate_samples=round(verdict.candidate_samples, 3),
        stable_samples=round(verdict.stable_samples, 3), difference=round(verdict.tv_distance, 6),
        difference_upper=round(verdict.tv_upper, 6) if finite else None, max_difference=mon.compare.max_difference,
        p_value=verdict.p_value, alpha=verdict.alpha_k if decidable else None, dispersion=round(verdict.phi, 4),
        top_bins=[DriftBin(bin=prediction.describe(b.bin), observed=round(b.observed, 6), expected=round(b.reference, 6)) for b in verdict.top],
        agreement=_rounded(agreed.agreement), agreement_low=_rounded(agreed.low), agreement_high=_rounded(agreed.high),
        agreement_samples=round(agreed.samples, 1) if agreed.measured else None,
    )


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _agreement(mon: Monitoring, result: MonitorResult) -> agreement.Agreement:
    """The share of requests both versions answered alike (a shadow step's mirror sends them the same ids)."""
    why = result.request.no_agreement
    if why is not None:
        return agreement.not_measured(why)
    candidate, stable = result.counts.get("candidate", {}), result.counts.get("stable", {})
    try:
        return agreement.sketch_agreement(candidate.get(SKETCH) or [], stable.get(SKETCH) or [], alpha=mon.alpha,
                                          min_samples=mon.min_samples)
    except Exception as exc:  # it is reported, never a gate: odd counts must not cost the comparison its look
        return agreement.not_measured(f"could not be estimated: {type(exc).__name__}: {exc}")


def _not_compared(mon: Monitoring, parts: tuple[Window, Window], previous: PredictionComparisonStatus | None,
                  why: str) -> PredictionComparisonStatus:
    """An Inconclusive look that spends no level: the comparison could not be made."""
    assert mon.compare is not None
    candidate = parts[0]
    same = previous is not None and previous.revision == candidate.revision
    return PredictionComparisonStatus(
        revision=candidate.revision, result="Inconclusive", message=f"not compared: {why}", since=rfc3339(candidate.start),
        until=rfc3339(candidate.end), look=previous.look if same and previous is not None else 0,
        passed=bool(same and previous is not None and previous.passed), candidate_samples=0,
        stable_samples=0, max_difference=mon.compare.max_difference,
    )


def _new_drift(result: MonitorResult, req: MonitorRequest, stable_revision: str | None, checked_at: str | None,
               window: timedelta) -> bool:
    """The result holds a drift window of the current stable (and of spec.monitoring.window), later
    than the last one recorded (an answer for an earlier grid point than now still counts: a fetch
    may outlast an interval)."""
    part = result.request.drift
    return (part is not None and _same_settings(result.request, req) and part.revision == stable_revision
            and part.end - part.start == window and (checked_at is None or part.end > parse_time(checked_at)))


def _new_comparison(result: MonitorResult, req: MonitorRequest, compared: tuple[str, datetime] | None,
                    last: PredictionComparisonStatus | None) -> bool:
    parts = result.request.compare
    if parts is None or compared is None or not _same_settings(result.request, req):
        return False
    revision, since = compared
    if parts[0].revision != revision or parts[0].start != since:
        return False
    same_step = last is not None and last.revision == revision and parse_time(last.since) == since and last.until is not None
    return not same_step or parts[0].end > parse_time(last.until)  # type: ignore[union-attr,arg-type]


def _same_settings(a: MonitorRequest, b: MonitorRequest) -> bool:
    return (a.namespace, a.name, a.profile, a.labels, a.url, a.features, a.prediction) == (
        b.namespace, b.name, b.profile, b.labels, b.url, b.features, b.prediction)


def assess(owner: Owner, spec: ModelDeploymentSpec | None, previous: ModelDeploymentStatus, result: MonitorResult | None,
           now: datetime, default_url: str | None) -> Assessment:
    """status.monitoring after recording ``result`` (what it answers that status has not recorded yet)."""
    if spec is None or spec.monitoring is None:
        return Assessment(None, None)
    mon, old = spec.monitoring, previous.monitoring or MonitoringStatus()
    status = old
    compared = comparing(spec, previous)
    rollout = previous.rollout
    if status.prediction is not None and (rollout is None or rollout.promoting or rollout.revision != status.prediction.revision):
        # A comparison lasts while its candidate's rollout does (through pauses and steps: its looks
        # keep counting, so the level spent over them stays below alpha).
        status = status.model_copy(update={"prediction": None})
    events: list[EventIntent] = []
    history: list[HistoryEntry] = []
    req = monitor_request(owner, spec, previous, now, default_url)
    if result is not None and req is not None:
        stable = previous.stable.revision if previous.stable else None
        drift_new = _new_drift(result, req, stable, old.checked_at if old.revision == stable else None, parse_duration(mon.window))
        compare_new = _new_comparison(result, req, compared, status.prediction)
        if drift_new or compare_new:
            try:
                status = _record(mon, status, result, drift_new, compare_new)
            except Exception as exc:  # odd data must not stop the reconcile (a rollback, an abort): report it
                status = _failed(mon, status, result, drift_new, compare_new, f"could not assess the counts: {type(exc).__name__}: {exc}")
            events, history = _news(old, status, now)
    condition = drift_condition(status)
    # One Event when drift starts, and one when the set of drifted features changes (not at every
    # check, nor again after a check that could not be made: `drifted` is the last judged set).
    if condition[0] == "True" and set(old.drifted) != set(status.drifted):
        events.append(EventIntent("Warning", "DataDrift", condition[2]))
        history.append(history_entry(now, "DataDrift", condition[2], revision=status.revision,
                                     evidence={"features": [f.dump() for f in status.features if f.result == "Drifted"]}))
    elif condition[0] == "False" and old.drifted:
        events.append(EventIntent("Normal", "DataDriftCleared", condition[2]))
        history.append(history_entry(now, "DataDriftCleared", condition[2], revision=status.revision))
    return Assessment(status, condition, tuple(events), tuple(history))


def _record(mon: Monitoring, status: MonitoringStatus, result: MonitorResult, drift_new: bool, compare_new: bool) -> MonitoringStatus:
    """The status with the result's new parts recorded (or its error)."""
    if result.error is not None or result.profile is None:
        return _failed(mon, status, result, drift_new, compare_new, result.error or "no profile")
    prediction = status.prediction
    if compare_new and result.request.compare is not None:
        prediction = _comparison(mon, result, result.request.compare, status.prediction)
    if drift_new and result.request.drift is not None:  # the drift check's error is its own: cleared by its success only
        status = _data_drift(mon, result, result.request.drift)
    return status.model_copy(update={"prediction": prediction})


def _failed(mon: Monitoring, status: MonitoringStatus, result: MonitorResult, drift_new: bool, compare_new: bool,
            error: str) -> MonitoringStatus:
    """A check that could not be made: no features (the last results are not this check's), the error;
    the grid point counts as checked, so the next try is one interval later, not at every reconcile."""
    update: dict[str, Any] = {}
    if drift_new and result.request.drift is not None:
        # `drifted` keeps the last judged set: drift that goes on after a failed check is not announced again.
        part = result.request.drift
        update.update(error=error, checked_at=rfc3339(part.end), revision=part.revision, window=mon.window, features=[])
    if compare_new and result.request.compare is not None:
        update["prediction"] = _not_compared(mon, result.request.compare, status.prediction, error)
    return status.model_copy(update=update)


def _news(old: MonitoringStatus, new: MonitoringStatus, now: datetime) -> tuple[list[EventIntent], list[HistoryEntry]]:
    """Events and history of what changed: a failing or recovered check, features the profile lacks,
    a decisive comparison."""
    events: list[EventIntent] = []
    history: list[HistoryEntry] = []
    if new.error is not None and new.error != old.error:
        events.append(EventIntent("Warning", "MonitoringFailed", f"monitoring check failed: {new.error}"))
    elif new.error is None and old.error is not None:
        events.append(EventIntent("Normal", "MonitoringRecovered", "monitoring checks work again"))
    if new.missing_features and set(new.missing_features) != set(old.missing_features):
        events.append(EventIntent("Warning", "MonitoringFeaturesMissing",
                                  f"spec.monitoring.features: {', '.join(new.missing_features)} not in the profile; not watched"))
    p, before = new.prediction, old.prediction
    if p is not None and p.result != "Inconclusive" and (before is None or before.result != p.result or before.since != p.since
                                                          or before.revision != p.revision):
        reason = "PredictionsDiffer" if p.result == "Fail" else "PredictionsAgree"
        kind: Literal["Normal", "Warning"] = "Warning" if p.result == "Fail" else "Normal"
        events.append(EventIntent(kind, reason, f"{p.revision}: {p.message}"))
        history.append(history_entry(now, reason, p.message, revision=p.revision, evidence={"predictions": p.dump()}))
    return events, history


def drift_condition(status: MonitoringStatus) -> tuple[Literal["True", "False", "Unknown"], str, str]:
    """DataDrift: True when a watched feature drifted in the last check, False when none did."""
    if status.checked_at is None:
        return "Unknown", "NotChecked", "no drift check yet"
    if status.error is not None and not status.features:
        return "Unknown", "CheckFailed", status.error
    judged = [f for f in status.features if f.result != "Insufficient"]
    if status.drifted and judged:
        details = "; ".join(f"{f.feature} (PSI {f.psi:.3g}, p {f.adjusted_p_value:.2g})" for f in status.features if f.result == "Drifted")
        return "True", "Drifted", f"{len(status.drifted)} of {len(judged)} features drifted over the last {status.window}: {details}"
    if not judged:
        return "Unknown", "InsufficientData", (f"too few observations over the last {status.window} to judge "
                                               f"{', '.join(f.feature for f in status.features) or 'any feature'}")
    return "False", "NoDrift", f"no drift shown in {len(judged)} features over the last {status.window}"


def condition_of(previous: list[Condition], a: Assessment, now: datetime, generation: int | None) -> list[Condition]:
    if a.condition is None:
        return []
    return [set_condition(previous, ConditionType.DATA_DRIFT, *a.condition, now, generation)]


def step_gate(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, monitoring: MonitoringStatus | None) -> Gate | None:
    """The prediction comparison's gate for the current step (None: compare.gate is off or no step compares)."""
    if spec is None or spec.monitoring is None or spec.monitoring.compare is None or not spec.monitoring.compare.gate:
        return None
    rollout, steps = status.rollout, (spec.rollout.steps if spec.rollout else [])
    if (rollout is None or rollout.promoting or rollout.step_started_at is None or rollout.step >= len(steps)
            or not kind_of(steps[rollout.step]).analysed or rollout.revision != revision_of(desired_version(spec))):
        return None
    # Paused, or resumed in this very reconcile (the step's start moved): not compared in this step
    # yet, so the step cannot end on it.
    revision, since = rollout.revision, parse_time(rollout.step_started_at)
    p = monitoring.prediction if monitoring is not None else None
    if p is not None and p.revision == revision and p.result == "Fail" and parse_time(p.since) == since:
        return Gate("Fail", f"predictions differ from stable's: {p.message}", rollback=True, evidence={"predictions": p.dump()})
    if p is not None and p.revision == revision and p.passed:  # shown in an earlier look of this rollout: still compared
        return Gate("Pass", f"predictions: shown to answer like stable in this rollout; now: {p.message}", evidence={"predictions": p.dump()})
    if p is None or p.revision != revision or parse_time(p.since) != since:
        return Gate("Inconclusive", "predictions: not compared yet in this step")
    return Gate(p.result, f"predictions: {p.message}", evidence={"predictions": p.dump()})


def combine(analysis_gate: Gate | None, predictions: Gate | None) -> Gate | None:
    """A step's gate from the SLO analysis and the prediction comparison: a rollback by either, else the worse."""
    if predictions is None:
        return analysis_gate
    if analysis_gate is None:
        return predictions
    if analysis_gate.rollback:
        return analysis_gate
    order = {"Fail": 2, "Inconclusive": 1, "Pass": 0}
    worse = max((analysis_gate, predictions), key=lambda g: order[g.result])
    evidence = {**(analysis_gate.evidence or {}), **(predictions.evidence or {})}
    return Gate(worse.result, f"{analysis_gate.message}; {predictions.message}", rollback=predictions.rollback,
                evidence=evidence or None)
