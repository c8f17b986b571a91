"""What each action of ``kubectl headway`` writes, and what it tells the user will happen.

Pure: a function of the ModelDeployment object (and ``now``), so the words are tested as text.

The controls are the README's annotations (``headway.dev/promote``, ``promote-step``, ``abort``,
``retry``, ``paused``; planning/controls.py says what the operator accepts), set by a merge patch
exactly as ``kubectl annotate`` would. A one-shot control acts once per distinct value, and a
value naming a version acts only on that version: the plugin writes the candidate's revision
(or, when that value was the last one handled, its bento tag: the operator accepts both), so a
control given for one candidate can never act on another one that git rolls out meanwhile —
where the README's ``$(date +%s)`` binds to whatever rolls out when the operator first sees it.

An action the operator would ignore (a promote with nothing rolling out, a retry with nothing
rolled back, an abort during the bake) is refused with the reason instead of being written: the
operator would only report it as a ``ControlIgnored`` Event. An approval (``approve``/``reject``)
is a ModelApproval for the candidate revision and the evidence digest the operator froze in
``status.governance`` (docs/governance.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

import headway
from headway.api.approval import KIND as APPROVAL_KIND
from headway.api.approval import ModelApprovalSpec
from headway.api.spec import RolloutStep
from headway.kubectl_plugin.view import AWAITING_APPROVAL, Model, ago, duration_text, read, step_time
from headway.planning import controls as ctl
from headway.planning import steps as step_table
from headway.planning.strategy import split_of

CONTROLS = ("promote", "promote-step", "abort", "retry", "pause", "resume")
FIELD_MANAGER = "kubectl-headway"


class Refused(Exception):
    """The action makes no sense now (the operator would ignore it): the message says why."""


@dataclass(frozen=True)
class Action:
    """A merge patch of the ModelDeployment (None: nothing to change) and what will happen, in words."""

    patch: dict[str, Any] | None
    message: str
    notes: tuple[str, ...] = field(default=())


def plan_control(obj: dict[str, Any], action: str, now: datetime) -> Action:
    m = read(obj)
    if action == "pause":
        return _pause(m, now)
    if action == "resume":
        return _resume(m, now)
    if action == "retry":
        return _retry(m)
    if action not in ("promote", "promote-step", "abort"):
        raise ValueError(f"unknown action {action!r}")
    rollout = m.status.rollout
    if rollout is None:
        raise Refused(_nothing_rolls_out(m, action))
    notes = _stale(m) + _approvals_missing(m, action)
    steps, bento = m.steps, rollout.bento
    if action == "abort":
        value = _bound(m, "abort", rollout.revision, bento)
        stable = m.status.stable.bento if m.status.stable is not None else "stable"
        if rollout.promoting:
            back = m.status.previous_model.bento if m.status.previous_model is not None else "the previous version"
            message = (f"abort: the promotion of {bento} stops: stable goes back to {back} and {bento} is marked rolled "
                       f"back (Aborted) until spec.model changes or kubectl headway retry")
        else:
            message = (f"abort: {m.name} sends all traffic back to stable {stable}; {bento} goes to 0 replicas and is marked "
                       f"rolled back (Aborted) until spec.model changes or kubectl headway retry")
        return Action(_annotate("abort", value), message, tuple(notes))
    if rollout.promoting:
        raise Refused(f"{action}: {m.name} is already promoting {bento} (no step left to pass); the operator would ignore it")
    k = min(rollout.step, len(steps) - 1)
    if action == "promote":
        value = _bound(m, "promote", rollout.revision, bento)
        rest = len(steps) - k - 1
        skipped = f"skips {_where(steps, k)}" + (" and the step after it" if rest == 1 else f" and the {rest} steps after it" if rest else "")
        ready = m.status.candidate is not None and m.status.candidate.ready_replicas > 0
        when = "now" if ready else f"once {bento} has a ready pod (none yet)"
        message = f"promote: {m.name} {skipped}; stable rolls to {bento} {when}, then the candidate is removed"
        if m.spec is not None and m.spec.rollout is not None and m.spec.rollout.bake_time:
            message += f"; a bake of {m.spec.rollout.bake_time} follows"
        return Action(_annotate("promote", value), message, tuple(notes))
    value = _bound(m, "promote-step", rollout.revision, bento)
    after = ("and is promoted: stable rolls to " + bento) if k + 1 >= len(steps) else \
        f"for step {k + 2}/{len(steps)} ({_label(steps[k + 1])}: {split_of(step_table.step_traffic(steps, k + 1))})"
    if rollout.paused_at:
        message = f"promote-step: the rollout is paused at {_where(steps, k)}: once resumed, {m.name} leaves it {after}"
    elif not rollout.step_started_at:
        message = (f"promote-step: {_where(steps, k)} has not started ({rollout.hold_reason or 'the candidate is not ready for it'}): "
                   f"{m.name} leaves it as soon as it starts, {after}")
    else:
        clock = step_time(m, now)
        left = f", {duration_text(clock[1])} before its end" if clock is not None and clock[1].total_seconds() > 0 else ""
        message = f"promote-step: {m.name} leaves {_where(steps, k)}{left} {after}"
    return Action(_annotate("promote-step", value), message, tuple(notes))


def _retry(m: Model) -> Action:
    rb = m.status.rolled_back
    if rb is None:
        raise Refused(f"retry: nothing is rolled back (phase {m.phase or 'unknown'}): the operator would ignore it")
    value = _bound(m, "retry", rb.revision, rb.bento)
    steps = m.steps
    how = f"from {_where(steps, 0)}" if steps else "in place of stable (no rollout steps)"
    return Action(_annotate("retry", value), f"retry: {m.name} rolls {rb.bento} out again {how}; it was rolled back for {rb.reason}",
                  tuple(_stale(m)))


def _pause(m: Model, now: datetime) -> Action:
    if ctl.paused_by_annotation(m.annotations):
        return Action(None, f"pause: {m.name} is already paused ({ctl.PAUSED}={m.annotations[ctl.PAUSED]}): nothing to change")
    if m.spec is not None and m.spec.paused:
        return Action(None, f"pause: {m.name} is already paused by spec.paused (git): nothing to change")
    rollout, steps = m.status.rollout, m.steps
    patch = {"metadata": {"annotations": {ctl.PAUSED: "true"}}}
    if m.spec is not None and m.spec.experiment is not None:
        raise Refused(f"pause: {m.name} runs an experiment, which has no rollout steps to pause: the operator would ignore it")
    if rollout is None:
        return Action(patch, f"pause: no rollout is in progress; the next one holds before its first step until kubectl headway resume")
    if rollout.promoting:
        return Action(patch, f"pause: the promotion of {rollout.bento} goes on (a promotion does not pause); the next rollout "
                             "holds before its first step until kubectl headway resume")
    k = min(rollout.step, len(steps) - 1)
    split = m.status.traffic.split if m.status.traffic is not None else ""
    if not rollout.step_started_at:
        return Action(patch, f"pause: {m.name} holds before {_where(steps, k)} (traffic stays {split}) until kubectl headway resume")
    if step_table.duration(steps[k]) is None:
        return Action(patch, f"pause: {m.name} holds at {_where(steps, k)} with traffic {split}: a promote-step waits until "
                             "kubectl headway resume")
    clock = step_time(m, now)
    left = f" with {duration_text(clock[1])} left" if clock is not None and clock[1].total_seconds() > 0 else ", past its duration"
    return Action(patch, f"pause: {m.name} stops at {_where(steps, k)}{left}; its clock stops and traffic stays {split} "
                         "until kubectl headway resume")


def _resume(m: Model, now: datetime) -> Action:
    annotated = ctl.PAUSED in m.annotations
    in_git = m.spec is not None and m.spec.paused
    if not annotated:
        if in_git:
            raise Refused(f"resume: {m.name} is paused by spec.paused: true (git), not by {ctl.PAUSED}: set spec.paused to false there")
        return Action(None, f"resume: {m.name} is not paused by {ctl.PAUSED}: nothing to change")
    patch = {"metadata": {"annotations": {ctl.PAUSED: None}}}
    if in_git:
        return Action(patch, f"resume: removes {ctl.PAUSED}, but spec.paused: true (git) keeps {m.name} paused")
    rollout, steps = m.status.rollout, m.steps
    if rollout is None or rollout.promoting:
        return Action(patch, f"resume: removes {ctl.PAUSED}; no rollout step is paused")
    k = min(rollout.step, len(steps) - 1)
    clock = step_time(m, now)
    if rollout.step_started_at and clock is not None:
        return Action(patch, f"resume: {m.name} continues {_where(steps, k)} with {duration_text(clock[1])} left")
    return Action(patch, f"resume: {m.name} continues with {_where(steps, k)}")


def _nothing_rolls_out(m: Model, action: str) -> str:
    if not m.has_status:
        return f"{action}: {m.name} has no status yet (the operator has not reconciled it): nothing rolls out"
    if m.status.bake is not None and action == "abort":
        previous = m.status.previous_model.bento if m.status.previous_model is not None else "the previous version"
        return (f"abort: {m.status.bake.bento} is promoted and baking until {m.status.bake.until}, not rolling out: the operator "
                f"ignores abort during the bake (a breach shown against {previous} restores it); to go back now, set spec.model "
                f"to {previous} in git")
    if m.status.rolled_back is not None:
        return (f"{action}: {m.status.rolled_back.bento} was rolled back ({m.status.rolled_back.reason}), nothing rolls out: "
                "use kubectl headway retry to roll it out again")
    if m.spec is not None and m.spec.experiment is not None:
        return f"{action}: {m.name} runs an experiment, which has no rollout steps: the operator would ignore it"
    return f"{action}: no rollout is in progress (phase {m.phase or 'unknown'}): the operator would ignore it"


def _bound(m: Model, control: str, revision: str, bento: str) -> str:
    """The value that binds ``control`` to this version: its revision, or its bento tag when the
    revision was the last value handled (the same value twice would not act again)."""
    handled = m.status.controls.get(control)
    current = m.annotations.get(ctl.PREFIX + control)
    if current and current != handled:
        waiting = next((d for d in m.status.deferred_controls if d.control == control and d.value == current), None)
        if waiting is not None:
            raise Refused(f"{control}: one is already waiting for {waiting.bento} (set {current}, waiting since {waiting.since}); "
                          "it acts once, and a second request would replace it, not add to it")
        raise Refused(f"{control}: one is already set ({ctl.PREFIX}{control}={current}) and the operator has not handled it yet; "
                      "it acts once, and a second request would replace it, not add to it (is the operator running?)")
    return revision if handled != revision else bento


def _annotate(control: str, value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {ctl.PREFIX + control: value}}}


def _label(step: RolloutStep) -> str:
    kind = step_table.kind_of(step)
    if kind.name == "pause":
        length = step_table.duration(step)
        return "a manual gate" if length is None else f"a pause of {duration_text(length)}"
    return kind.label(step)


def _where(steps: list[RolloutStep], k: int) -> str:
    return f"step {k + 1}/{len(steps)} ({_label(steps[k])})"


def _stale(m: Model) -> list[str]:
    observed = m.status.observed_generation
    if m.generation is None or observed is None or observed >= m.generation:
        return []
    return [f"note: the operator has not acted on the latest spec yet (generation {m.generation}, status of {observed}); "
            "the control names the version shown, and is ignored if git now asks for another one"]


def _approvals_missing(m: Model, action: str) -> list[str]:
    g = m.governance
    if g is None or not g.waiting_for or action == "abort":
        return []
    missing = ", ".join(f"{role} x{n}" for role, n in g.waiting_for)
    return [f"note: approvals are still missing ({missing}): the operator passes a stage that needs them only once they "
            "are given (kubectl headway approve)"]


# --- approvals -------------------------------------------------------------------------------------------


FLAGS = {"role": "--role", "comment": "--comment", "approver": "the approver (your user name)",
         "modelDeployment": "NAME", "revision": "status.governance.revision", "evidenceDigest": "status.governance.evidenceDigest"}


def plan_approval(obj: dict[str, Any], decision: str, role: str, approver: str, comment: str | None,
                  now: datetime) -> tuple[dict[str, Any], str]:
    """The ModelApproval to create, and what it will do; Refused when there is nothing to decide on."""
    m = read(obj)
    candidate, g = m.status.candidate, m.governance
    if candidate is not None:
        revision, bento = candidate.revision, candidate.bento
    elif g is not None and g.revision and g.evidence_digest and m.phase == AWAITING_APPROVAL:
        # Without rollout steps nothing runs before the approvals: the version waiting is governance's.
        revision, bento = g.revision, str(((obj.get("spec") or {}).get("model") or {}).get("bento") or g.revision)
    else:
        raise Refused(f"{decision}: {m.name} has no candidate (phase {m.phase or 'unknown'}): nothing to decide on")
    if g is None or not g.evidence_digest:
        raise Refused(f"{decision}: {m.name} asks for no approval of {bento} ({revision}): status.governance has "
                      "no evidence digest (no spec.governance, or the rollout has not reached a stage that needs approvals)")
    if m.status.rolled_back is not None and m.status.rolled_back.revision == revision:
        raise Refused(f"{decision}: {bento} was rolled back ({m.status.rolled_back.reason}): nothing waits for approvals; "
                      "after kubectl headway retry the new rollout asks again, on its own evidence")
    if g.revision and g.revision != revision:
        raise Refused(f"{decision}: approvals are collected for revision {g.revision}, but the candidate is {revision}: "
                      "wait for the operator to catch up (kubectl headway get --watch)")
    try:
        spec = ModelApprovalSpec.model_validate({
            "modelDeployment": m.name, "revision": revision, "evidenceDigest": g.evidence_digest, "role": role,
            "approver": approver, "decision": decision, **({"comment": comment} if comment else {}),
        })
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise Refused("; ".join(f"{FLAGS.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in errors)) from exc
    name = approval_name(m.name, revision, role, approver)
    body = {"apiVersion": f"{headway.GROUP}/{headway.VERSION}", "kind": APPROVAL_KIND,
            "metadata": {"name": name, "namespace": m.namespace}, "spec": spec.dump()}
    evidence = f"the evidence {g.evidence_digest[:12]} frozen {ago(g.since, now)}" if g.since else f"the evidence {g.evidence_digest[:12]}"
    if decision == "reject":
        return body, (f"reject: {approver} rejects {bento} ({revision}) as {role}: the operator aborts its "
                      "rollout (RolledBack, reason Rejected)")
    missing = dict(g.waiting_for)
    if role in missing:
        missing[role] -= 1
    rest = ", ".join(f"{r} x{n}" for r, n in missing.items() if n > 0)
    if role not in dict(g.waiting_for) and g.waiting_for:
        after = f"note that {role} is not among the roles still needed ({', '.join(r for r, _ in g.waiting_for)})"
    elif rest:
        after = f"still needed after it: {rest}"
    elif m.phase == AWAITING_APPROVAL:
        after = "with it no approval is missing: the rollout goes on once the operator counts it"
    else:
        after = "it counts when the rollout reaches a stage that needs this role"
    return body, f"approve: {approver} approves {bento} ({revision}) as {role} on {evidence}; {after}"


def approval_name(model_deployment: str, revision: str, role: str, approver: str) -> str:
    """docs/governance.md's convention, ``<modeldeployment>-<revision>-<role>-<you>``, made a valid name
    (a user name may hold ``@``, ``:`` or capitals: they become ``-``, lower case)."""
    raw = f"{model_deployment}-{revision}-{role}-{approver}".lower()
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9.-]", "-", raw)).strip("-.")
    return name[:240].rstrip("-.")  # room for the 5 characters generateName adds on a second decision
