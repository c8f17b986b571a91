"""One false-rollback budget for a whole rollout, and windows that restart after a shared incident.

The Fail tests' evidence is carried from window to window of a rollout (its steps, then the
bake after its promotion), so alpha bounds the false rollbacks of the whole rollout; after a
breach shared with the baseline, the window restarts once the baseline is back within the SLO
(analysis.py, docs/verdicts.md "The false-rollback budget"). Everything runs through the
operator's own functions: ``analysis.request``/``current``/``carried``/``record``/``gate`` and
``verdicts.assess``, or ``measure.judge`` which calls them. Seeded, no wall clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from headway.api.spec import ModelDeploymentSpec
from headway.api.status import AnalysisStatus, BakeStatus, ModelDeploymentStatus, RolloutStatus
from headway.planning import analysis, stats
from headway.planning.conditions import rfc3339
from headway.planning.measure import Judgement, Measurement, judge, measure_request
from headway.planning.naming import Owner
from headway.planning.verdicts import Carried, Evidence, RequestCounts, Slice, VariantData, Verdict, assess

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
OWNER = Owner("fraud-scorer", "ml", "uid-1")
URL = "http://prometheus.monitoring:9090"
MODEL = {"bento": "fraud_scorer:2.0.0", "image": "registry.example.com/fraud:2"}
INTERVAL = 30.0


def rollout_spec(steps: int, slos: list[dict[str, object]], failure_limit: int = 1, minutes: int = 5) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({
        "model": MODEL,
        "rollout": {"steps": [{"canary": {"weight": 10, "duration": f"{minutes}m"}}] * steps, "bakeTime": "1h"},
        "analysis": {"interval": "30s", "slos": slos, "failureLimit": failure_limit, "minRequests": 200,
                     "prometheus": {"url": URL}},
    })


def in_step(status: ModelDeploymentStatus, step: int, start: datetime) -> ModelDeploymentStatus:
    rollout = status.rollout or RolloutStatus(revision="rev2", bento="fraud_scorer:2.0.0", started_at=rfc3339(T0))
    return status.model_copy(update={"rollout": rollout.model_copy(update={"step": step, "step_started_at": rfc3339(start)})})


def in_bake(status: ModelDeploymentStatus, start: datetime) -> ModelDeploymentStatus:
    bake = BakeStatus(revision="rev2", bento="fraud_scorer:2.0.0", since=rfc3339(start), until=rfc3339(start + timedelta(hours=1)),
                      baseline="mirror", baseline_percent=10, baseline_since=rfc3339(start))
    return status.model_copy(update={"rollout": None, "bake": bake})


# --- item 2: alpha over the whole rollout ------------------------------------------------------------


def _false_rollback(rng: np.random.Generator, spec: ModelDeploymentSpec, steps: int, alpha: float, carry: bool) -> bool:
    """A version exactly at the relative test's margin (errors 1.25x stable's: the worst case the null
    allows) through ``steps`` canary steps and a bake, 20 looks each; failureLimit 1, so any Fail rolls back."""
    cfg = spec.analysis
    assert cfg is not None
    status = ModelDeploymentStatus()
    start = T0
    for w, share in enumerate([0.1, 0.25, 0.5, *[0.5] * (steps - 3), 0.1][: steps] + [0.1]):
        status = in_step(status, w, start) if w < steps else in_bake(status, start)
        n_c = rng.poisson(100 * share * INTERVAL, 20).cumsum()
        n_b = rng.poisson(100 * (1 - share) * INTERVAL, 20).cumsum()
        k_c = rng.binomial(np.diff(n_c, prepend=0), 0.0125).cumsum()
        k_b = rng.binomial(np.diff(n_b, prepend=0), 0.01).cumsum()
        for t in range(20):
            now = start + timedelta(seconds=INTERVAL * (t + 1))
            req = analysis.current(analysis.request(spec, status, now), status)
            assert req is not None and req.purpose == ("step" if w < steps else "bake")
            verdicts = assess(cfg.slos, VariantData(RequestCounts(float(n_c[t]), float(k_c[t]))),
                              VariantData(RequestCounts(float(n_b[t]), float(k_b[t]))), cfg.min_requests, alpha,
                              carried=analysis.carried(status.analysis, req) if carry else None)
            recorded = analysis.record(cfg, status.analysis, req, [(req.targets[0][0], v) for v in verdicts], None, now)
            status = status.model_copy(update={"analysis": recorded})
            if analysis.gate(cfg, recorded, req).rollback:
                return True
        start = now + timedelta(seconds=10)
    return False


@pytest.mark.parametrize("steps, runs, per_window_above", [(3, 150, 0.5), (8, 100, 1.0)])
def test_a_good_version_over_the_steps_and_the_bake_stays_within_alpha(steps: int, runs: int, per_window_above: float) -> None:
    """alpha = 20% (so that false Fails are frequent enough to count). Judged per window, each window
    spends its own alpha: about alpha over three steps and a bake, well beyond it over eight; carried
    over the rollout the same data stay within alpha."""
    alpha = 0.2
    spec = rollout_spec(steps, [], failure_limit=1)
    per_window = sum(_false_rollback(np.random.default_rng(seed), spec, steps, alpha, carry=False) for seed in range(runs)) / runs
    carried = sum(_false_rollback(np.random.default_rng(seed), spec, steps, alpha, carry=True) for seed in range(runs)) / runs
    assert carried <= alpha / 2, (per_window, carried)
    assert per_window > per_window_above * alpha and per_window > 2 * carried, (per_window, carried)


# --- carrying: the construction, and status as its only memory --------------------------------------------


def _slices(k: np.ndarray, n: np.ndarray, name: str, upto: int) -> VariantData:
    rows = range(min(upto, n.shape[0]))
    slices = tuple(Slice(f"{name}-{p}", INTERVAL * t, RequestCounts(float(n[t, p]), float(k[t, p]))) for t in rows for p in range(n.shape[1]))
    return VariantData(RequestCounts(float(n[:upto].sum()), float(k[:upto].sum())), slices=slices)


def _window(rng: np.random.Generator, rate: float, pods: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n = rng.poisson(20 * INTERVAL, (8, pods)).astype(float)
    return rng.binomial(n.astype(int), rate).astype(float), n


def test_carried_evidence_is_the_same_bets_over_one_sequence_survives_a_status_round_trip_and_counts_once() -> None:
    rng = np.random.default_rng(21)
    spec = rollout_spec(2, [{"errorRate": {"max": 0.02}}])
    cfg = spec.analysis
    assert cfg is not None
    windows = [(_window(rng, 0.03), _window(rng, 0.01, 9)) for _ in range(2)]
    status = ModelDeploymentStatus()
    looks: list[AnalysisStatus] = []
    for w, ((kc, nc), (kb, nb)) in enumerate(windows):
        start = T0 + timedelta(minutes=10 * w)
        status = in_step(status, w, start)
        for t in (4, 8):
            now = start + timedelta(seconds=INTERVAL * t)
            req = analysis.current(analysis.request(spec, status, now), status)
            assert req is not None
            carried = analysis.carried(status.analysis, req)
            assert carried is not None
            verdicts = [("candidate", v) for v in assess(cfg.slos, _slices(kc, nc, "c", t), _slices(kb, nb, "s", t), 200, carried=carried)]
            recorded = analysis.record(cfg, status.analysis, req, verdicts, None, now)
            # Measured again (a replayed plan, or the same counts read twice): the same status, nothing counted twice.
            assert analysis.record(cfg, status.analysis, req, verdicts, None, now) == recorded
            again = analysis.record(cfg, recorded, req, verdicts, None, now + timedelta(seconds=1))
            assert (again.carried, again.evidence) == (recorded.carried, recorded.evidence)
            # Status is the only memory: what comes back from the API server decides the same.
            status = ModelDeploymentStatus.model_validate(json.loads(json.dumps(status.model_copy(update={"analysis": recorded}).dump())))
            assert status.analysis == recorded
            looks.append(recorded)
    first, second = looks[1], looks[3]
    assert first.windows == 1 and first.carried == [] and second.windows == 2
    assert second.verdicts[0].dispersion is not None and second.verdicts[0].dispersion >= 1.0  # status shows the slices' dispersion
    assert second.verdicts[0].baseline_recent is not None  # and the baseline's recent rate
    assert [(e.slo, e.test) for e in second.carried] == [("errorRate", "breach"), ("errorRate", "relative")]

    # The breach test's wealth per bet fraction: chain 0 (weight 1/2) bet on both windows' pod-intervals as one
    # sequence, chain 1 (weight 1/6) on the second window's only.
    (kc0, nc0), _ = windows[0]
    (kc1, nc1), _ = windows[1]
    w0 = np.array(stats.log_wealths((kc0[:, 0] / (0.02 * nc0[:, 0])).tolist()))
    w1 = np.array(stats.log_wealths((kc1[:, 0] / (0.02 * nc1[:, 0])).tolist()))
    both = np.array(stats.log_wealths((np.concatenate([kc0[:, 0], kc1[:, 0]]) / (0.02 * np.concatenate([nc0[:, 0], nc1[:, 0]]))).tolist()))
    assert np.allclose(both, w0 + w1)
    breach = next(e for e in second.evidence if e.test == "breach")
    assert np.allclose(breach.log_wealth, np.logaddexp(np.log(1 / 2) + w0 + w1, np.log(1 / 6) + w1), atol=1e-5)
    carried_in = next(e for e in second.carried if e.test == "breach")
    assert np.allclose(carried_in.log_wealth, np.logaddexp(np.log(1 / 2) + w0, np.log(1 / 6)), atol=1e-5)
    verdict = assess(cfg.slos, _slices(kc1, nc1, "c", 8), _slices(*windows[1][1], "s", 8), 200,
                     carried=analysis.carried(looks[2], analysis.AnalysisRequest("step", "rev2", T0 + timedelta(minutes=10),
                                                                                 (("candidate", "stable"),), rfc3339(T0))))[0]
    assert "carried from 1 earlier window" in verdict.reason


def test_what_cannot_be_carried_is_dropped_never_reset() -> None:
    """A new rollout carries nothing; a changed SLO (another null) starts from this window's own chain; a
    window that goes back over time already judged keeps only its own chain; an SLO added later starts
    with every chain at 1."""
    e = Evidence("errorRate", "breach", 0.01, tuple([-3.0] * len(stats.BET_FRACTIONS)))
    c = Carried(evidence=(e,), log_all=math.log(2 / 3), log_fresh=math.log(1 / 6), windows=2)
    assert c.start("errorRate", "breach", 0.01) == e.log_wealth
    assert c.start("errorRate", "breach", 0.02) == (math.log(1 / 6),) * len(stats.BET_FRACTIONS)
    assert c.start("latency-p99", "breach", 0.01) == (math.log(2 / 3),) * len(stats.BET_FRACTIONS)

    spec = rollout_spec(3, [{"errorRate": {"max": 0.01}}])
    status = in_step(ModelDeploymentStatus(), 0, T0)
    req = analysis.current(analysis.request(spec, status, T0 + timedelta(minutes=1)), status)
    assert req is not None
    wealth = [-3.0] * len(stats.BET_FRACTIONS)
    last = AnalysisStatus(revision="rev2", purpose="step", window_start=rfc3339(T0), last_run=rfc3339(T0 + timedelta(minutes=5)),
                          result="Inconclusive", rollout=rfc3339(T0), window_opened=rfc3339(T0),
                          evidence=[{"slo": "errorRate", "test": "breach", "null": 0.01, "logWealth": wealth}])  # type: ignore[list-item]
    later = analysis.AnalysisRequest("step", "rev2", T0 + timedelta(minutes=6), req.targets, rfc3339(T0))
    going_back = analysis.AnalysisRequest("step", "rev2", T0 + timedelta(minutes=2), req.targets, rfc3339(T0))
    retried = analysis.AnalysisRequest("step", "rev2", T0 + timedelta(minutes=6), req.targets, rfc3339(T0 + timedelta(minutes=6)))
    carried = analysis.carried(last, later)
    assert carried is not None and carried.windows == 2
    assert np.allclose(carried.evidence[0].log_wealth, np.logaddexp(-3.0, math.log(1 / 6)), atol=1e-5)
    back = analysis.carried(last, going_back)
    assert back is not None and np.allclose(back.evidence[0].log_wealth, math.log(1 / 6), atol=1e-5)
    fresh = analysis.carried(last, retried)  # a retry after a rollback is another rollout
    assert fresh is not None and (fresh.evidence, fresh.windows, fresh.log_all) == ((), 1, math.log(1 / 2))


def test_a_window_measured_alone_keeps_its_own_alpha() -> None:
    """Without ``carried`` (an experiment, or a caller judging one window) alpha holds per window, as before;
    within a rollout the split is fixed: the breach test keeps half of an SLO's alpha even with no baseline."""
    cfg = rollout_spec(1, [{"errorRate": {"max": 0.01}}]).analysis
    assert cfg is not None
    slos = cfg.slos
    data = VariantData(RequestCounts(1500, 29))
    alone = assess(slos, data, None, 200)[0]
    within = assess(slos, data, None, 200, carried=Carried())[0]
    assert alone.statistic == pytest.approx(within.evidence[0].log_e)  # the same evidence, judged at two levels
    assert alone.result == "Fail" and within.result == "Inconclusive", (alone.reason, within.reason)


# --- item 4: incidents end ------------------------------------------------------------------------------


Rate = Callable[[str, int], float]  # (variant, interval index since T0) -> error rate


class Traffic:
    """Per pod and 30 s interval counts on a fixed grid from T0: 1 candidate pod, 9 stable pods, 20 req/s each
    (the candidate's pod ``candidate_rps``)."""

    def __init__(self, seed: int, intervals: int, rate: Rate, candidate_rps: float = 20.0) -> None:
        rng = np.random.default_rng(seed)
        self.rate = rate
        self.n = {v: rng.poisson(rps * INTERVAL, (intervals, pods)).astype(float)
                  for v, pods, rps in (("candidate", 1, candidate_rps), ("stable", 9, 20.0))}
        self.k = {v: np.array([rng.binomial(self.n[v][i].astype(int), rate(v, i)) for i in range(intervals)], dtype=float)
                  for v in self.n}

    def data(self, variant: str, start: datetime, now: datetime) -> VariantData:
        """What the fetcher gives for [start, now]: totals and one slice per pod and whole interval."""
        first = math.ceil((start - T0).total_seconds() / INTERVAL)
        last = int((now - T0).total_seconds() // INTERVAL)
        n, k = self.n[variant][first:last], self.k[variant][first:last]
        offset = (T0 + timedelta(seconds=INTERVAL * first) - start).total_seconds()
        slices = tuple(Slice(f"{variant}-{p}", offset + INTERVAL * t, RequestCounts(n[t, p], k[t, p]))
                       for t in range(n.shape[0]) for p in range(n.shape[1]))
        return VariantData(RequestCounts(float(n.sum()), float(k.sum())), slices=slices)


def drive(traffic: Traffic, looks: int, slos: list[dict[str, object]] | None = None, failure_limit: int = 2,
          switch: Callable[[ModelDeploymentStatus, int], None] | None = None) -> list[tuple[int, ModelDeploymentStatus, Judgement]]:
    """One long canary step judged through ``measure.judge`` at every interval: (look, status, judgement)."""
    spec = rollout_spec(1, slos or [{"errorRate": {"max": 0.01}}], failure_limit, minutes=240)
    status = in_step(ModelDeploymentStatus(), 0, T0)
    out = []
    for look in range(1, looks + 1):
        now = T0 + timedelta(seconds=INTERVAL * look)
        req = measure_request(OWNER, spec, status, now, None, None)
        assert req is not None and req.due_at <= now
        data: dict[str, VariantData | None] = {v: traffic.data(v, req.window_start, now) for v in req.variants}
        j = judge(OWNER, spec, status, Measurement(req, data, None, now), now, None, None)
        assert j.status is not None
        status = status.model_copy(update={"analysis": j.status, "history": [*status.history, *j.history]})
        out.append((look, status, j))
        if switch is not None:
            switch(status, look)
        if j.gate is not None and j.gate.rollback:
            break
    return out


def incident(start: int, end: int, rate: float = 0.06, candidate_after: float = 0.002) -> Rate:
    """Every pod of both variants fails ``rate`` of its requests in intervals [start, end); 0.2% otherwise."""
    def errors(variant: str, i: int) -> float:
        if start <= i < end:
            return rate
        return candidate_after if variant == "candidate" and i >= end else 0.002
    return errors


def test_a_shared_incident_is_followed_by_a_restart_and_a_pass_before_the_window_recovers() -> None:
    traffic = Traffic(41, 80, incident(4, 14))
    looks = drive(traffic, 80)
    shared = [look for look, _, j in looks if any(v.shared for _, v in j.verdicts)]
    restarts = [(look, status, j) for look, status, j in looks if j.events]
    assert shared and len(restarts) == 1
    look, status, j = restarts[0]
    assert shared[0] <= look and look >= 14 + 4  # the baseline's last 4 intervals clean: after the incident
    (event,) = j.events
    assert (event.type, event.reason) == ("Normal", "AnalysisRestarted")
    entry = status.history[-1]
    assert entry.event == "AnalysisRestarted" and entry.evidence is not None
    evidence = entry.evidence
    assert evidence["restart"] == 1 and evidence["restartedAt"] == rfc3339(T0 + timedelta(seconds=INTERVAL * look))
    assert evidence["incidents"][0]["slo"] == "errorRate" and evidence["incidents"][0]["seenAt"] == rfc3339(T0 + timedelta(seconds=INTERVAL * shared[0]))
    assert evidence["incidents"][0]["baselineValue"] > 0.01 and evidence["baselineRecent"]["errorRate"] <= 0.01
    assert evidence["breachEvidenceDropped"]["errorRate"] > 0
    assert status.analysis is not None and status.analysis.window_start == evidence["restartedAt"] and status.analysis.restarts == 1
    assert status.analysis.window_opened == rfc3339(T0) and status.analysis.incidents == []
    # The relative test's chain goes on; the breach test's starts again from the new window's own chain.
    carried = {e.test: e for e in status.analysis.carried}
    assert np.allclose(carried["breach"].log_wealth, math.log(analysis.chain_weight(1)), atol=1e-5)
    passed = next(p for p, _, j in looks if p > look and j.gate is not None and j.gate.result == "Pass")
    assert passed - look <= 10, (look, passed)
    # The window the step began with still holds the incident: its error rate is above the max, so it could not pass.
    since_step = traffic.data("candidate", T0, T0 + timedelta(seconds=INTERVAL * passed))
    assert (since_step.requests.errors or 0.0) / (since_step.requests.total or 1.0) > 0.01
    assert not any(j.gate is not None and j.gate.rollback for _, _, j in looks)


def test_a_thin_canary_is_not_held_by_an_incident_it_cannot_show_alone() -> None:
    """At 1 req/s the canary's own breach test cannot show a ten-minute incident of the whole service
    (2.5% errors against a max of 1%), yet the incident's errors stay in its window: without a restart its
    error rate over the window stays near the max and the met test cannot pass for hours. The baseline
    shows the breach, so the incident is recorded as shared, and the window restarts once the baseline
    is back within it."""
    traffic = Traffic(45, 120, incident(4, 24, rate=0.025, candidate_after=0.0), candidate_rps=1.0)
    looks = drive(traffic, 120)
    shared = [look for look, _, j in looks if any(v.shared for _, v in j.verdicts)]
    restarted = [look for look, _, j in looks if j.events]
    assert shared and shared[0] <= 24 and restarted and 24 < restarted[0] <= 24 + 10, (shared[:3], restarted)
    reason = next(v.reason for _, v in looks[shared[0] - 1][2].verdicts if v.shared)
    assert "the baseline breaches the SLO" in reason, reason
    passed = next(look for look, _, j in looks if j.gate is not None and j.gate.result == "Pass")
    assert passed > restarted[0]
    # The step's own window (the incident in it) could not have shown the SLO met by then.
    since_step = traffic.data("candidate", T0, T0 + timedelta(seconds=INTERVAL * passed))
    assert (since_step.requests.errors or 0.0) / (since_step.requests.total or 1.0) > 0.005
    assert not any(j.gate is not None and j.gate.rollback for _, _, j in looks)


def test_a_regression_after_a_restart_still_fails() -> None:
    """The same incident; from the restart on the candidate fails 4% of its requests (max 1%, stable 0.2%)."""
    restarted: list[int] = []

    def rate(variant: str, i: int) -> float:
        if 4 <= i < 14:
            return 0.06
        return 0.04 if variant == "candidate" and restarted and i >= restarted[0] else 0.002

    traffic = Traffic(42, 80, rate)

    def switch(status: ModelDeploymentStatus, look: int) -> None:
        if not restarted and status.analysis is not None and status.analysis.restarts:
            restarted.append(look)
            fresh = Traffic(42, 80, rate)  # the same seed: the same requests, the candidate's errors from now on
            traffic.k = fresh.k

    looks = drive(traffic, 80, switch=switch)
    assert restarted, "no restart"
    last, status, j = looks[-1]
    assert j.gate is not None and j.gate.rollback, [v.reason for _, v in j.verdicts]
    assert last - restarted[0] <= 10
    assert status.analysis is not None and status.analysis.restarts == 1


@pytest.mark.parametrize("rate", [
    # The baseline alone breaches for five minutes; the candidate is fine: no shared breach, no restart.
    lambda v, i: 0.06 if v == "stable" and 4 <= i < 14 else 0.002,
    # The candidate alone breaches: a Fail, never a restart.
    lambda v, i: 0.06 if v == "candidate" and 4 <= i < 14 else 0.002,
    # Both at 0.8% against 1%: the baseline's recent rate wanders around the max, but no breach is shown.
    lambda v, i: 0.008,
])
def test_a_window_never_restarts_unless_the_shared_incident_rule_fired(rate: Rate) -> None:
    looks = drive(Traffic(43, 40, rate), 40, failure_limit=100)
    assert not any(j.events for _, _, j in looks)
    assert all(s.analysis is not None and s.analysis.restarts == 0 and s.analysis.window_start == rfc3339(T0) for _, s, _ in looks)


def test_restarts_follow_the_rule_in_random_traffic() -> None:
    """Random incidents, shared or not, of random length and height: every restart comes after a look whose
    breach was shared with the baseline, in the same window, and at most three per window."""
    rng = np.random.default_rng(44)
    seen = 0
    for seed in range(6):
        a, b = sorted(int(x) for x in rng.integers(2, 30, 2))
        height, who = float(rng.choice([0.02, 0.06, 0.2])), str(rng.choice(["both", "stable", "candidate"]))
        if seed == 0:  # at least one incident that the rule sees
            a, b, height, who = 3, 15, 0.2, "both"

        def rate(v: str, i: int, a: int = a, b: int = b + 1, height: float = height, who: str = who) -> float:
            return height if a <= i < b and who in ("both", v) else 0.002

        looks = drive(Traffic(100 + seed, 50, rate), 50, failure_limit=100)
        fired = False
        for _, status, j in looks:
            fired = fired or any(v.shared for _, v in j.verdicts)
            if j.events:
                assert fired
                seen += 1
                fired = False  # a new window: the rule must fire again
            assert status.analysis is not None and status.analysis.restarts <= analysis.MAX_RESTARTS
    assert seen > 0


def test_a_shared_breach_set_aside_is_not_carried_into_the_next_step() -> None:
    """A step that ends during a shared incident (promote-step): its breach evidence measured the incident."""
    spec = rollout_spec(2, [{"errorRate": {"max": 0.01}}])
    cfg = spec.analysis
    assert cfg is not None
    status = in_step(ModelDeploymentStatus(), 0, T0)
    now = T0 + timedelta(minutes=4)
    req = analysis.current(analysis.request(spec, status, now), status)
    assert req is not None
    shared = Verdict("errorRate", "Inconclusive", 0.06, 0.01, 2400, 0.06, None, None, "breached, but so is the baseline",
                     evidence=(Evidence("errorRate", "breach", 0.01, tuple([9.0] * 9)), Evidence("errorRate", "relative", 0.25, tuple([-1.0] * 9))),
                     shared=True, baseline_recent=0.06)
    recorded = analysis.record(cfg, None, req, [("candidate", shared)], None, now)
    assert [i.slo for i in recorded.incidents] == ["errorRate"] and recorded.window_start == rfc3339(T0)  # not over: no restart
    status = in_step(status.model_copy(update={"analysis": recorded}), 1, now + timedelta(seconds=5))
    nxt = analysis.current(analysis.request(spec, status, now + timedelta(minutes=1)), status)
    assert nxt is not None
    carried = analysis.carried(recorded, nxt)
    assert carried is not None and carried.set_aside == frozenset()
    by_test = {e.test: e for e in carried.evidence}
    assert np.allclose(by_test["breach"].log_wealth, math.log(1 / 6), atol=1e-5)
    assert np.allclose(by_test["relative"].log_wealth, np.logaddexp(-1.0, math.log(1 / 6)), atol=1e-5)
