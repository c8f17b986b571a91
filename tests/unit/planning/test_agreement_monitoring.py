"""Agreement per request in the prediction comparison: when it is asked for, what status shows, the fetch.

The point of it: two versions can answer "fraud" equally often (the distribution comparison
passes) while disagreeing on many requests; the agreement shows that, from the recorders'
sketches, in a shadow step that mirrors every request.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from headway.api.profile import PROFILE_KEY
from headway.api.sketch import cell_key, cell_of
from headway.api.spec import ModelSpec
from headway.api.status import ModelDeploymentStatus
from headway.metrics.base import BinnedCounts, BinnedQuery
from headway.planning.monitoring import MonitorRequest, MonitorResult
from headway.planning.naming import CANDIDATE, STABLE, revision_of
from headway.planning.observe import observe_deployment, parse_status
from headway.planning.plan import Observation, Plan, plan
from headway.reconciler import fetch_monitoring
from headway.telemetry import MonitoringCollector
from tests.unit.planning.test_monitoring import COMPARE_SPEC, LABEL, NEW, PROFILE, serving, started_at
from tests.unit.planning.test_plan_steady import OWNER, deployment

SLICES = 10


def spec_with(step: dict[str, Any]) -> dict[str, Any]:
    return {**COMPARE_SPEC, "rollout": {"steps": [step]}}


def in_step(spec: dict[str, Any]) -> tuple[ModelDeploymentStatus, dict[str, Any]]:
    """A rollout of NEW in the spec's first step, the candidate ready."""
    status = serving()
    live = {STABLE: observe_deployment(deployment(2)),
            CANDIDATE: observe_deployment(deployment(2, revision=revision_of(ModelSpec.model_validate(NEW))))}
    now = datetime.fromisoformat("2026-11-22T12:00:00+00:00")
    for _ in range(4):
        status = parse_status(step(spec, status, live, now).status.dump())
        now += timedelta(seconds=1)
    assert status.rollout is not None and status.rollout.step_started_at is not None, status.phase
    return status, live


def step(spec: dict[str, Any], status: ModelDeploymentStatus, live: dict[str, Any], now: datetime,
         result: MonitorResult | None = None) -> Plan:
    return plan(OWNER, Observation(raw_spec=spec, generation=2, annotations={}, previous=status, live=live, monitoring=result,
                                   default_metrics_url="http://prometheus:9090"), now)


def mirrored_counts(n: int, swapped: float, seed: int = 3) -> dict[str, Any]:
    """Both versions answer the same n requests with the same class shares, but the candidate swaps
    "legit" and "fraud" on a share ``swapped`` of them (as many each way: the distributions stay equal)."""
    rng = random.Random(seed)
    per: dict[str, list[Counter[str]]] = {side: [Counter() for _ in range(SLICES)] for side in ("candidate", "stable")}
    predictions: dict[str, list[Counter[str]]] = {side: [Counter() for _ in range(SLICES)] for side in ("candidate", "stable")}
    for i in range(n):
        t = i * SLICES // n
        answer = "fraud" if rng.random() < 0.5 else "legit"
        other = ({"fraud": "legit", "legit": "fraud"}[answer]) if rng.random() < swapped else answer
        for side, said in (("stable", answer), ("candidate", other)):
            per[side][t][cell_key(*cell_of(f"r{i}", said))] += 1
            predictions[side][t][said] += 1
    return {side: {"prediction": [dict(c) for c in predictions[side]], "sketch": [dict(c) for c in per[side]]}
            for side in ("candidate", "stable")}


def judged(spec: dict[str, Any], counts: dict[str, Any]) -> tuple[MonitorRequest, Plan]:
    status, live = in_step(spec)
    at = started_at(status) + timedelta(minutes=10, seconds=1)
    p = step(spec, status, live, at)
    assert p.monitor is not None and p.monitor.compare is not None
    return p.monitor, step(spec, status, live, at + timedelta(seconds=2), MonitorResult(p.monitor, PROFILE, counts, None, at))


def test_a_shadow_step_that_mirrors_everything_reports_agreement_the_distributions_cannot_see() -> None:
    spec = {**COMPARE_SPEC, "monitoring": {**COMPARE_SPEC["monitoring"], "compare": {"maxDifference": 0.1}}}  # reported, not gated
    request, p = judged(spec, mirrored_counts(8000, swapped=0.2))
    assert request.no_agreement is None
    prediction = p.status.monitoring.prediction  # type: ignore[union-attr]
    assert prediction is not None and prediction.difference is not None and prediction.difference < 0.05  # alike in distribution
    assert prediction.agreement is not None and prediction.agreement_low is not None and prediction.agreement_high is not None
    assert prediction.agreement_low <= 0.8 <= prediction.agreement_high and prediction.agreement_high < 0.9
    assert prediction.agreement_samples == 8000
    assert (f"; agreement {prediction.agreement:.3f} [{prediction.agreement_low:.3f}, {prediction.agreement_high:.3f}] "
            f"over ~8,000 requests both versions answered") in prediction.message
    dumped = prediction.dump()  # the status' camelCase fields, as kubectl shows them
    assert {"agreement", "agreementLow", "agreementHigh", "agreementSamples"} <= set(dumped)


def test_identical_versions_agree_exactly_and_the_gauge_shows_it() -> None:
    request, p = judged(COMPARE_SPEC, mirrored_counts(8000, swapped=0.0))
    prediction = p.status.monitoring.prediction  # type: ignore[union-attr]
    assert prediction is not None and prediction.agreement == 1.0 and prediction.agreement_high == 1.0
    collector = MonitoringCollector()
    collector.set(OWNER.namespace, OWNER.name, p.status.monitoring)
    samples = {s.name: s for family in collector.collect() for s in family.samples}
    assert samples["headway_prediction_agreement"].value == 1.0
    assert samples["headway_prediction_agreement"].labels["revision"] == prediction.revision


@pytest.mark.parametrize(("step_", "why"), [
    ({"canary": {"weight": 20, "duration": "30m"}}, "a canary step splits the requests between the versions"),
    ({"shadow": {"percent": 50, "duration": "30m"}}, "the mirror copies 50% of the requests to the candidate"),
])
def test_steps_whose_versions_do_not_answer_the_same_requests_say_why_there_is_no_agreement(step_: dict[str, Any], why: str) -> None:
    request, p = judged(spec_with(step_), mirrored_counts(8000, swapped=0.0))
    assert request.no_agreement is not None and why in request.no_agreement
    prediction = p.status.monitoring.prediction  # type: ignore[union-attr]
    assert prediction is not None and prediction.agreement is None and prediction.agreement_samples is None
    assert f"; agreement not measured: {why}" in prediction.message


def test_versions_whose_servers_record_no_request_ids_say_so() -> None:
    counts = mirrored_counts(8000, swapped=0.0)
    counts["candidate"].pop("sketch")  # an old recorder, or a service that does not pass the id
    _, p = judged(COMPARE_SPEC, counts)
    prediction = p.status.monitoring.prediction  # type: ignore[union-attr]
    assert prediction is not None and prediction.agreement is None
    assert "agreement not measured: the candidate recorded answers with request ids" in prediction.message
    assert "x-request-id" in prediction.message


# -- the fetch ----------------------------------------------------------------------------------------


class Source:
    """A MetricSource that answers every binned query with nothing and remembers them."""

    def __init__(self) -> None:
        self.queries: list[BinnedQuery] = []

    def binned(self, query: BinnedQuery) -> BinnedCounts:
        self.queries.append(query)
        return {}

    def fetch(self, query: Any) -> Any:
        raise AssertionError("not asked")


class Kube:
    def get(self, kind: Any, namespace: str | None, name: str, subresource: str | None = None) -> dict[str, Any] | None:
        return {"data": {PROFILE_KEY: PROFILE.model_dump_json()}}


@pytest.mark.parametrize(("step_", "sketched"), [
    ({"shadow": {"percent": 100, "duration": "30m"}}, True),
    ({"canary": {"weight": 20, "duration": "30m"}}, False),
])
def test_the_sketches_are_fetched_with_the_comparison_only_when_they_can_be_compared(step_: dict[str, Any], sketched: bool) -> None:
    status, live = in_step(spec_with(step_))
    p = step(spec_with(step_), status, live, started_at(status) + timedelta(minutes=10, seconds=1))
    assert p.monitor is not None and p.monitor.compare is not None
    source = Source()
    result = fetch_monitoring(p.monitor, Kube(), source)  # type: ignore[arg-type]
    assert result.error is None
    asked = {q.variant: q.sketch for q in source.queries if not q.features}
    assert asked == {"candidate": sketched, "stable": sketched}
    assert all(not q.sketch for q in source.queries if q.features)  # the drift check never needs them
    assert LABEL.bins  # the profile the comparison reads has a prediction
