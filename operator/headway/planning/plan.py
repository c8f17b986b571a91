"""Plan one reconcile of a ModelDeployment: the whole decision, as data.

``plan()`` is pure: from the spec as written, the annotations (kubectl controls), the
previous status, what the Deployments report, the analysis gate and ``now``, it returns
the workloads to run, the traffic split, the new status and the Events to post. A new
operator process that reads the same inputs decides the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from headway.api.spec import ModelDeploymentSpec, ModelSpec
from headway.api.status import (
    AnalysisStatus, Condition, ConditionType, DeferredControl, DrainingStatus, ExperimentDecision, HistoryEntry, ModelDeploymentStatus, Phase, ProblemStatus, TrafficStatus, VariantStatus,
)
from headway.planning import controls as ctl
from headway.planning.conditions import EventIntent, append_history, history_entry, parse_time, rfc3339, set_condition
from headway.planning.naming import CANDIDATE, PREVIOUS, STABLE, Owner, VariantWorkload, revision_of
from headway.planning.analysis import failing_arms
from headway.planning.observe import DeploymentState, serving_pods
from headway.planning.rollout import Gate, PinPlan, RolloutDecision, TrafficPlan, decide, replicas_for_share
from headway.planning.validation import Problem, check_spec, ignored_fields, metrics_url_problems, parse_spec

NEVER_SERVED = (None, Phase.PENDING, Phase.FAILED)
DRAIN = timedelta(seconds=10)  # an experiment variant keeps running this long after its weight went to 0


@dataclass(frozen=True)
class Observed:
    raw_spec: dict[str, Any]
    generation: int | None
    annotations: dict[str, str]
    previous: ModelDeploymentStatus
    live: dict[str, DeploymentState]  # by variant
    gate: Gate | None = None
    analysis: AnalysisStatus | None = None  # the latest analysis (measured now, or the previous one)
    decision: ExperimentDecision | None = None  # the experiment's significance test, if any
    allowed_metrics_urls: frozenset[str] | None = None  # Prometheus URLs the operator may call (None: unchecked)


@dataclass
class Plan:
    """Workloads to run (None: leave every child untouched), traffic, status, Events."""

    spec: ModelDeploymentSpec | None
    workloads: list[VariantWorkload] | None
    traffic: TrafficPlan | None
    status: ModelDeploymentStatus
    events: list[EventIntent] = field(default_factory=list)
    keep: tuple[str, ...] = ()  # variants whose children stay as they are (draining)


def stable_replicas(spec: ModelDeploymentSpec) -> int:
    return spec.replicas if spec.replicas is not None else 1


def _provider(spec: ModelDeploymentSpec) -> str:
    return spec.traffic.provider if spec.traffic else "none"


def _variant_status(name: str, model: ModelSpec, state: DeploymentState, replicas: int, weight: int, owner: Owner,
                    workload_variant: str | None = None) -> VariantStatus:
    rev = revision_of(model)
    return VariantStatus(
        name=name, bento=model.bento, image=model.image, revision=rev, deployment=owner.variant_name(workload_variant or name),
        replicas=replicas, ready_replicas=state.ready_replicas if state.exists else 0,
        available=state.exists and state.available and state.complete and state.revision == rev, weight=weight,
    )


def _steady_phase(previous: ModelDeploymentStatus, state: DeploymentState, stable: VariantStatus | None) -> tuple[Phase, tuple[str, str, str], tuple[str, str, str]]:
    """Phase, Ready and Progressing of a ModelDeployment with one version, from its Deployment."""
    never_served = previous.phase in NEVER_SERVED
    rolled = stable is not None and state.revision == stable.revision
    if not state.exists or stable is None:
        return Phase.PENDING, ("False", "NotCreated", "the model server's Deployment does not exist yet"), ("True", "Creating", "creating the model server")
    if state.deadline_exceeded:
        why = f"{stable.bento} ({stable.image}) does not become available: {state.message or 'progress deadline exceeded'}"
        ready = ("True", "Available", f"serving the previous pods; {why}") if state.available else ("False", "ProgressDeadlineExceeded", why)
        return (Phase.FAILED if never_served else Phase.DEGRADED), ready, ("False", "ProgressDeadlineExceeded", why)
    if not state.available:
        return ((Phase.PENDING if never_served else Phase.DEGRADED),
                ("False", "Unavailable", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready"),
                ("True", "RollingOut", f"waiting for {stable.bento} to become available"))
    if not (state.complete and rolled):
        return (Phase.PROGRESSING, ("True", "Available", f"serving; rolling out {stable.bento}: {state.ready_replicas}/{state.replicas} ready"),
                ("True", "RollingOut", f"rolling out {stable.bento}"))
    return (Phase.SUCCEEDED, ("True", "Available", f"{state.ready_replicas}/{state.replicas} replicas of {stable.bento} ready"),
            ("False", "Complete", f"{stable.bento} is rolled out"))


def _drain(previous: ModelDeploymentStatus, current: set[str], owner: Owner, now: datetime) -> tuple[list[DrainingStatus], tuple[str, ...]]:
    """Variants no longer in the spec: no traffic at once, deleted after DRAIN."""
    since = {d.variant: d.since for d in previous.draining}
    names = [v.name for v in previous.variants if v.deployment != owner.variant_name(STABLE)] + list(since)
    draining = []
    for name in dict.fromkeys(names):
        if name in current:
            continue
        started = since.get(name, rfc3339(now))
        if now - parse_time(started) < DRAIN:
            draining.append(DrainingStatus(variant=name, since=started))
    return draining, tuple(d.variant for d in draining)


@dataclass
class ExperimentPlan:
    workloads: list[VariantWorkload]
    traffic: TrafficPlan
    variants: list[VariantStatus]
    draining: list[DrainingStatus]
    keep: tuple[str, ...]
    suspended: list[str]
    decision: ExperimentDecision | None
    waiting: list[str] = field(default_factory=list)  # arms not available yet
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[EventIntent] = field(default_factory=list)


def _drain_events(previous: ModelDeploymentStatus, draining: list[DrainingStatus]) -> list[EventIntent]:
    """One Event per variant that starts draining."""
    before = {d.variant for d in previous.draining}
    return [EventIntent("Normal", "VariantDraining", f"variant {d.variant} removed from the experiment: weight 0, deleted after {int(DRAIN.total_seconds())}s")
            for d in draining if d.variant not in before]


def _experiment(spec: ModelDeploymentSpec, obs: Observed, owner: Owner, now: datetime) -> ExperimentPlan:
    assert spec.experiment is not None
    total = stable_replicas(spec)
    pinned = {m.variant for m in spec.experiment.match}
    control = next(v for v in spec.experiment.variants if v.model is None)
    arms = {v.name: v for v in spec.experiment.variants}
    out = ExperimentPlan([], TrafficPlan(weights={}), [], [], (), [], obs.decision)

    def key(name: str) -> str:
        return STABLE if name == control.name else name

    def note(event: str, message: str, kind: Literal["Normal", "Warning"] = "Normal", evidence: dict[str, Any] | None = None) -> None:
        out.history.append(history_entry(now, event, message, evidence=evidence))
        out.events.append(EventIntent(kind, event, message))

    # Arms the analysis rolled back stay at weight 0 until their model changes.
    tag = {v.name: f"{v.name}@{revision_of(v.model)}" for v in spec.experiment.variants if v.model is not None}
    suspended = [t for t in obs.previous.suspended_variants if t in tag.values()]
    if obs.gate is not None and obs.gate.rollback and obs.analysis is not None and obs.analysis.purpose == "experiment":
        for name in failing_arms(obs.analysis):
            if name in tag and tag[name] not in suspended:
                suspended.append(tag[name])
                note("RolledBack", f"experiment variant {name} rolled back: its traffic goes to {control.name}: {obs.gate.message}",
                     "Warning", obs.gate.evidence)
    out.suspended = suspended
    off = {t.split("@", 1)[0] for t in suspended}

    weights: dict[str, int] = {}
    available: set[str] = set()
    states = {v.name: obs.live.get(key(v.name), DeploymentState(exists=False)) for v in spec.experiment.variants}
    previously = {p.name: p for p in obs.previous.variants}
    for v in spec.experiment.variants:
        rev = revision_of(v.model or spec.model)
        was = previously.get(v.name)
        if serving_pods(states[v.name], rev, was is not None and was.revision == rev and was.ready_replicas > 0) > 0:
            available.add(v.name)  # its pods serve (even while it scales up: Available may be False then)
        weights[key(v.name)] = v.weight
    # A variant gets traffic only once it is available and not rolled back; else its share goes to control.
    serving = {n for n in available if n not in off} | {control.name}
    out.waiting = [v.name for v in spec.experiment.variants if v.model is not None and v.name not in available and v.name not in off]
    for v in spec.experiment.variants:
        if v.name not in serving:
            weights[STABLE] += weights[key(v.name)]
            weights[key(v.name)] = 0
    pins = tuple(
        PinPlan("header" if m.header else "cookie", (m.header or m.cookie).name, (m.header or m.cookie).value,  # type: ignore[union-attr]
                key(m.variant))
        for m in spec.experiment.match if m.variant in serving
    )
    decision = obs.decision
    if decision is not None and decision.decided_at is not None and (obs.previous.experiment_decision is None
                                                                     or obs.previous.experiment_decision.decided_at is None):
        note("ExperimentDecided", f"{decision.metric}: {decision.result}" + (f", winner {decision.winner}" if decision.winner else "")
             + f" (p={decision.p_value}): {decision.reason}", evidence=decision.dump())
    decide = spec.experiment.decide
    size = {v.name: max(v.weight, weights[key(v.name)]) for v in spec.experiment.variants}
    if (decision is not None and decision.result == "Winner" and decision.winner in serving and decide is not None
            and decide.promote_winner and decision.winner in arms):
        size[decision.winner] = 100  # capacity first: traffic moves once the winner can carry it all
        if states[decision.winner].current_available >= replicas_for_share(total, 100):
            weights = {k: 0 for k in weights} | {key(decision.winner): 100}
            pins = ()
            if not decision.promoted:
                decision = decision.model_copy(update={"promoted": True})
                note("WinnerPromoted", f"all traffic to the winner {decision.winner} (decide.promoteWinner); put its model in spec.model to make it stable")
    out.decision = decision
    # Each arm is sized for the larger of its share in the spec and the share it carries now
    # (control carries the shares of arms not serving yet; a promoted winner carries all):
    # capacity comes before traffic. Rolled-back arms run no pods.
    for v in spec.experiment.variants:
        model = v.model or spec.model
        replicas = 0 if v.name in off else replicas_for_share(total, size[v.name]) or (1 if v.name in pinned or v.model is None else 0)
        out.workloads.append(VariantWorkload(key(v.name), model, replicas))
        out.variants.append(_variant_status(v.name, model, states[v.name], replicas, weights[key(v.name)], owner, key(v.name)))
    out.traffic = TrafficPlan(weights=weights, pins=pins)
    current = {v.name for v in spec.experiment.variants}
    out.draining, out.keep = _drain(obs.previous, current, owner, now)
    out.variants += [s.model_copy(update={"weight": 0}) for s in obs.previous.variants if s.name in out.keep]
    return out


def _split(variants: list[VariantStatus] | None, traffic: TrafficPlan | None) -> str:
    """Every variant's live share in one line (kubectl get's TRAFFIC column)."""
    if variants:
        return " ".join(f"{v.name}={v.weight}" for v in variants)
    if traffic is None:
        return f"{STABLE}=100"
    text = " ".join(f"{variant}={weight}" for variant, weight in traffic.weights.items())
    if traffic.mirror:
        text += f" (mirror {traffic.mirror[1]}% to {traffic.mirror[0]})"
    return text


def _bind_controls(spec: ModelDeploymentSpec, previous: ModelDeploymentStatus, pending: dict[str, str]
                   ) -> tuple[dict[str, str], dict[str, str], dict[str, DeferredControl]]:
    """Split pending controls into those that may act now and those given for another version."""
    target = revision_of(spec.model)
    bound = {b.control: b for b in previous.deferred_controls if pending.get(b.control) == b.value}
    known = {v.revision for v in (previous.stable, previous.candidate) if v is not None}
    known |= {revision_of(m) for m in (previous.stable_model, previous.previous_model) if m is not None}
    known |= {r.revision for r in (previous.rollout, previous.rolled_back) if r is not None}
    ignored: dict[str, str] = {}
    for control, value in pending.items():
        binding = bound.get(control)
        if binding is not None and binding.revision != target:
            ignored[control] = f"it was given for {binding.bento} ({binding.revision}), which is no longer rolling out"
        elif ctl.names_other_version(value, target, spec.model.bento, known):
            ignored[control] = f"it names {value}, but spec.model is {spec.model.bento} ({target})"
    return {c: v for c, v in pending.items() if c not in ignored}, ignored, bound


def _settle_controls(spec: ModelDeploymentSpec, d: RolloutDecision, active: dict[str, str], ignored: dict[str, str],
                     bound: dict[str, DeferredControl], now: datetime) -> list[DeferredControl]:
    """Controls the decision did not act on wait for the rollout in progress, or are ignored (added to ``ignored``)."""
    target = revision_of(spec.model)
    in_progress = d.rollout is not None and d.rollout.revision == target
    deferred = []
    for control, value in active.items():
        if control in d.handled:
            continue
        if in_progress and control in ctl.DEFERRABLE:
            deferred.append(bound.get(control) or DeferredControl(control=control, value=value, revision=target, bento=spec.model.bento, since=rfc3339(now)))
        elif control == "retry":
            ignored[control] = "nothing is rolled back"
        elif d.rolled_back is not None and d.rolled_back.revision == target:
            ignored[control] = f"{d.rolled_back.bento} was rolled back; set headway.dev/retry to roll it out again"
        else:
            ignored[control] = "no rollout is in progress"
    return deferred


def _note_ignored(ignored: dict[str, str], pending: dict[str, str], events: list[EventIntent], history: list[HistoryEntry],
                  now: datetime) -> list[HistoryEntry]:
    """One Warning Event and one history entry per ignored control (it is marked handled: never again)."""
    for control, why in ignored.items():
        message = f"{ctl.PREFIX}{control}={pending[control]} ignored: {why}; it will not act later"
        events.append(EventIntent("Warning", "ControlIgnored", message))
        history = append_history(history, history_entry(now, "ControlIgnored", message))
    return history


def _ignore_pending(obs: Observed, why: str, events: list[EventIntent], history: list[HistoryEntry],
                    now: datetime) -> tuple[list[HistoryEntry], dict[str, str]]:
    """Every pending control reported as ignored for one reason; returns the history and what was ignored."""
    pending = ctl.pending(obs.annotations, obs.previous.controls)
    return _note_ignored({c: why for c in pending}, pending, events, history, now), pending


def plan(owner: Owner, obs: Observed, now: datetime) -> Plan:
    previous = obs.previous
    spec, problems = parse_spec(obs.raw_spec)
    if spec is not None:
        problems = check_spec(owner.name, spec) + metrics_url_problems(spec, obs.allowed_metrics_urls)
    events: list[EventIntent] = []
    history = list(previous.history)
    conditions: list[Condition] = []

    def cond(type_: str, status: Literal["True", "False", "Unknown"], reason: str, message: str) -> None:
        conditions.append(set_condition(previous.conditions, type_, status, reason, message, now, obs.generation))

    ignored = ignored_fields(obs.raw_spec) if spec is not None else []
    new_problems = [ProblemStatus(field=p.field, message=p.message) for p in problems]
    text = "; ".join(str(p) for p in problems)
    if problems and new_problems != previous.problems:
        untouched = "the running model is untouched" if previous.stable is not None else "nothing is deployed until it is fixed"
        events.append(EventIntent("Warning", "InvalidSpec", f"spec not applied, {untouched}: {text}"))
        history = append_history(history, history_entry(now, "SpecRejected", text, evidence={"problems": [p.dump() for p in new_problems]}))
    elif not problems and previous.problems:
        events.append(EventIntent("Normal", "SpecValid", "the spec is valid again and is being applied"))
    ignored_paths = [path for path, _ in ignored]
    if ignored and ignored_paths != previous.ignored_fields:
        events.append(EventIntent("Warning", "FieldsNotActedOn", "; ".join(f"{p}: {why}" for p, why in ignored)))

    stable_state = obs.live.get(STABLE, DeploymentState(exists=False))
    update: dict[str, Any] = {}
    workloads: list[VariantWorkload] | None = None
    traffic: TrafficPlan | None = None
    keep: tuple[str, ...] = ()
    phase_override: Phase | None = None
    message = ""

    if spec is not None and not problems:
        total = stable_replicas(spec)
        if spec.experiment is not None:
            exp = _experiment(spec, obs, owner, now)
            workloads, traffic, variants, draining, keep = exp.workloads, exp.traffic, exp.variants, exp.draining, exp.keep
            for entry in exp.history:
                history = append_history(history, entry)
            events += exp.events
            update.update(suspended_variants=exp.suspended, experiment_decision=exp.decision)
            history, ignored_now = _ignore_pending(obs, "this ModelDeployment runs an experiment: steer it through spec.experiment",
                                                   events, history, now)
            update.update(controls={**previous.controls, **ignored_now}, deferred_controls=[])
            stable_model = spec.model
            if previous.stable_model is None or revision_of(previous.stable_model) != revision_of(spec.model):
                event, words = ("Deployed", "deploying") if previous.stable_model is None else ("Updated", "control moves to")
                message = f"{words} {spec.model.bento} with an experiment of {len(spec.experiment.variants)} variants"
                history = append_history(history, history_entry(now, event, message, revision_of(spec.model), spec.model.bento))
                events.append(EventIntent("Normal", event, message))
            update.update(stable_model=stable_model, previous_model=previous.previous_model, rollout=None, rolled_back=None, variants=variants, draining=draining, candidate=None)
            stable_status: VariantStatus | None = next(v for v in variants if v.deployment == owner.variant_name(STABLE)).model_copy(update={"name": STABLE})
            for v in variants:
                was = next((p for p in previous.variants if p.name == v.name), None)
                if was is not None and was.weight != v.weight:
                    events.append(EventIntent("Normal", "WeightChanged", f"variant {v.name}: {was.weight}% -> {v.weight}%"))
            events += _drain_events(previous, draining)
            if exp.waiting:
                phase_override, message = Phase.PROGRESSING, f"waiting for variants to become available: {', '.join(exp.waiting)}"
        else:
            pending = ctl.pending(obs.annotations, previous.controls)
            paused = spec.paused or ctl.paused_by_annotation(obs.annotations)
            candidate_state = obs.live.get(CANDIDATE, DeploymentState(exists=False))
            active, skipped, bound = _bind_controls(spec, previous, pending)
            d = decide(spec, previous, stable_state, candidate_state, active, paused, obs.gate, now)
            for entry in d.history:
                history = append_history(history, entry)
            events += d.events
            deferred = _settle_controls(spec, d, active, skipped, bound, now)
            history = _note_ignored(skipped, pending, events, history, now)
            phase_override, message, traffic = d.phase, d.message, d.traffic
            workloads = [VariantWorkload(STABLE, d.stable_model, total)]
            candidate_status = None
            if d.candidate_model is not None:
                replicas = replicas_for_share(total, d.candidate_share)
                if (d.rolled_back is not None and replicas == 0 and _provider(spec) != "none"
                        and now - parse_time(d.rolled_back.at) < DRAIN):
                    # Traffic has just moved off the candidate: let the data plane converge before
                    # its pods go (requests in flight finish; no 5xx from a vanished backend).
                    replicas = candidate_state.replicas if candidate_state.exists else 0
                applied = d.traffic.weights.get(CANDIDATE, 0)
                if _provider(spec) == "none" and applied > 0 and not (d.rollout and d.rollout.promoting):
                    # No router: the split is the replica ratio (both variants' pods behind one
                    # Service). Stable shrinks only for the share the candidate already carries.
                    workloads[0] = VariantWorkload(STABLE, d.stable_model, max(1, total - replicas_for_share(total, applied)))
                workloads.append(VariantWorkload(CANDIDATE, d.candidate_model, replicas))
                candidate_status = _variant_status(CANDIDATE, d.candidate_model, candidate_state, replicas, d.traffic.weights.get(CANDIDATE, 0), owner)
            if d.bake is not None and d.previous_model is not None:
                # During the bake the previous version stays available, scaled down to one pod.
                workloads.append(VariantWorkload(PREVIOUS, d.previous_model, 1))
            update.update(
                stable_model=d.stable_model, previous_model=d.previous_model, rollout=d.rollout, rolled_back=d.rolled_back,
                candidate=candidate_status, bake=d.bake, deferred_controls=deferred,
                controls={**previous.controls, **d.handled, **{c: pending[c] for c in skipped}},
            )
            # An experiment removed from the spec: its variants drain like removed variants.
            draining, keep = _drain(previous, set(), owner, now)
            events += _drain_events(previous, draining)
            update.update(draining=draining, variants=[v.model_copy(update={"weight": 0}) for v in previous.variants if v.name in keep])
            stable_status = _variant_status(STABLE, d.stable_model, stable_state, workloads[0].replicas, d.traffic.weights.get(STABLE, 100), owner)
        update["stable"] = stable_status
    else:
        stable_status = previous.stable
        if previous.rollout is not None and previous.rollout.paused_at is None and not previous.rollout.promoting:
            # Frozen while the spec is invalid: the step's clock stops, as when paused (decide() resumes it).
            update["rollout"] = previous.rollout.model_copy(update={"paused_at": rfc3339(now)})
        elif previous.rollout is not None:
            update["rollout"] = previous.rollout
        # Nothing acts on an invalid spec; a control left pending would act on whatever the fixed spec rolls out.
        history, ignored_now = _ignore_pending(obs, "the spec is invalid; nothing acts until it is fixed", events, history, now)
        if ignored_now:
            update.update(controls={**previous.controls, **ignored_now}, deferred_controls=[])

    # Phase and conditions.
    phase, ready, progressing = _steady_phase(previous, stable_state, stable_status)
    if stable_status is None and problems:
        phase = Phase.FAILED
        ready = ("False", "InvalidSpec", "nothing is deployed: the spec is invalid")
        progressing = ("False", "InvalidSpec", "nothing is deployed until the spec is fixed")
    if phase_override is not None and phase in (Phase.SUCCEEDED, Phase.PROGRESSING):
        phase = phase_override
        if phase in (Phase.PROGRESSING, Phase.PROMOTING, Phase.PAUSED, Phase.DEGRADED):
            progressing = ("True", phase.value, message)
        elif phase == Phase.ROLLED_BACK:
            progressing = ("False", "RolledBack", message)
    if problems and stable_status is not None and phase not in (Phase.FAILED,):
        phase = Phase.DEGRADED
        message = f"the spec is invalid, nothing changes until it is fixed: {text}"
        frozen = update.get("rollout")
        if frozen is not None:  # a rollout stands where it was: say so, not "complete"
            where = f"step {frozen.step + 1}" if not frozen.promoting else "promotion"
            split = previous.traffic.split if previous.traffic is not None else ""
            progressing = ("True", "InvalidSpec", f"rollout of {frozen.bento} frozen at {where}" + (f" ({split})" if split else "")
                           + " until the spec is fixed; the step's clock is stopped")
    cond(ConditionType.READY, *ready)  # type: ignore[arg-type]
    cond(ConditionType.PROGRESSING, *progressing)  # type: ignore[arg-type]
    if problems:
        cond(ConditionType.DEGRADED, "True", "InvalidSpec", text)
    elif phase in (Phase.DEGRADED, Phase.FAILED):
        cond(ConditionType.DEGRADED, "True", progressing[1] if phase_override == Phase.DEGRADED else ready[1], message or ready[2])
    elif phase == Phase.ROLLED_BACK:
        cond(ConditionType.DEGRADED, "True", "RolledBack", message)
    else:
        cond(ConditionType.DEGRADED, "False", "AsExpected", "")
    if obs.gate is None:
        cond(ConditionType.SLOS_MET, "Unknown", "NoAnalysis", "no SLO analysis is configured")
    else:
        status_map: dict[str, Literal["True", "False", "Unknown"]] = {"Pass": "True", "Fail": "False", "Inconclusive": "Unknown"}
        cond(ConditionType.SLOS_MET, status_map[obs.gate.result], obs.gate.result, obs.gate.message)
    if ignored:
        cond(ConditionType.SPEC_SUPPORTED, "False", "FieldsNotActedOn", "; ".join(f"{p}: {why}" for p, why in ignored))
    else:
        cond(ConditionType.SPEC_SUPPORTED, "True", "AllFieldsActedOn", "")

    if phase != previous.phase and previous.phase is not None:
        kind: Literal["Normal", "Warning"] = "Warning" if phase in (Phase.DEGRADED, Phase.FAILED, Phase.ROLLED_BACK) else "Normal"
        events.append(EventIntent(kind, f"Phase{phase.value}", f"phase {previous.phase.value} -> {phase.value}: {message or ready[2]}"))

    weights = traffic.weights if traffic else {STABLE: 100}
    split = _split(update.get("variants") if spec is not None and spec.experiment is not None else None, traffic)
    typos = ctl.unknown(obs.annotations, previous.controls)
    for name, value in typos.items():
        typo = ctl.unknown_message(name, value)
        events.append(EventIntent("Warning", "ControlIgnored", typo))
        history = append_history(history, history_entry(now, "ControlIgnored", typo))
    if typos:
        update["controls"] = {**update.get("controls", previous.controls), **typos}
    status = previous.model_copy(update={
        **update,
        "observed_generation": obs.generation,
        "phase": phase,
        "traffic": TrafficStatus(
            stable_weight=weights.get(STABLE, 100), candidate_weight=weights.get(CANDIDATE, 0),
            mirror_percent=traffic.mirror[1] if traffic and traffic.mirror else 0, split=split,
        ) if spec is not None and not problems else previous.traffic,
        "ready": f"{stable_state.ready_replicas}/{stable_state.replicas}" if stable_state.exists else None,
        "conditions": conditions,
        "problems": new_problems,
        "ignored_fields": ignored_paths,
        "history": history,
        "analysis": obs.analysis if obs.analysis is not None else previous.analysis,
    })
    ok = spec is not None and not problems
    return Plan(spec=spec if ok else None, workloads=workloads if ok else None, traffic=traffic if ok else None,
                status=status, events=events, keep=keep)


__all__ = ["DRAIN", "Gate", "Observed", "Plan", "Problem", "plan", "stable_replicas"]
