"""Steering a rollout from kubectl without touching the git-managed spec.

Controls are annotations on the ModelDeployment. Argo CD (and any GitOps tool that
diffs only the fields it manages) does not report an annotation it never applied as
OutOfSync, and the operator itself never writes them: it only records, in status, the
last value it acted upon. A one-shot control therefore acts once per distinct value, so
the commands use a fresh value each time:

    kubectl annotate md/NAME headway.dev/promote="$(date +%s)" --overwrite       # skip to promotion
    kubectl annotate md/NAME headway.dev/promote-step="$(date +%s)" --overwrite  # pass one step / a manual gate
    kubectl annotate md/NAME headway.dev/abort="$(date +%s)" --overwrite         # back to stable
    kubectl annotate md/NAME headway.dev/retry="$(date +%s)" --overwrite         # retry a rolled-back revision
    kubectl annotate md/NAME headway.dev/paused=true --overwrite                 # pause (a state: remove to resume)
    kubectl annotate md/NAME headway.dev/paused-                                 # resume

Recording the handled value in the same status write as the decision it caused makes a
control exactly-once across operator crashes.

A control acts only on what it was given for. At first sight it is bound to the rollout
in progress (the candidate revision is recorded in ``status.deferredControls`` while it
waits, e.g. a promote before the candidate is ready); one that has nothing to act on
(no rollout, or the version it names is not the one rolling out) is reported once, as a
``ControlIgnored`` Warning Event and a history entry, and marked handled: it never acts
on a later rollout. A value may name the version it is meant for, as a bento tag
(``headway.dev/promote=fraud_scorer:3.2.0``) or a revision: it then acts only if that
version is the one rolling out.
"""

from __future__ import annotations

import difflib
import re

from headway.api.status import DeferredControl, ModelDeploymentStatus, RolledBackStatus
from headway.planning.naming import revision_of

PREFIX = "headway.dev/"
ONE_SHOT = ("promote", "promote-step", "abort", "retry")
PAUSED = PREFIX + "paused"


def pending(annotations: dict[str, str], handled: dict[str, str]) -> dict[str, str]:
    """One-shot controls whose current value has not been acted upon yet: {control: value}."""
    out = {}
    for control in ONE_SHOT:
        value = annotations.get(PREFIX + control)
        if value and handled.get(control) != value:
            out[control] = value
    return out


DEFERRABLE = ("promote", "promote-step", "abort")  # retry acts at once or not at all
KNOWN = (*ONE_SHOT, "paused")
# Not controls: who to call about this model (`headway plan` prints them for sign-off); never reported as typos.
ESCALATION = ("owner", "escalation", "runbook", "pager")


def unknown(annotations: dict[str, str], handled: dict[str, str]) -> dict[str, str]:
    """``headway.dev/`` annotations that are no control (a typo: ``promote_step``), not reported yet."""
    out = {}
    for key, value in annotations.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else None
        if name is not None and name not in KNOWN and name not in ESCALATION and handled.get(name) != value:
            out[name] = value
    return out


def unknown_message(name: str, value: str) -> str:
    close = difflib.get_close_matches(name, KNOWN, n=1)
    hint = f" (did you mean {PREFIX}{close[0]}?)" if close else f" (controls: {', '.join(PREFIX + k for k in KNOWN)})"
    return f"{PREFIX}{name}={value} ignored: not a Headway control{hint}"


_BENTO_TAG = re.compile(r"^([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)$")


def names_other_version(value: str, revision: str, bento: str, known_revisions: set[str]) -> bool:
    """Whether a control's value names a version other than this one (revision, bento).

    A value names a version when it is a bento tag of the same bento (``fraud_scorer:3.1.0``
    for ``fraud_scorer:3.2.0``) or a revision this ModelDeployment has had; anything else (the
    README's ``$(date +%s)``, ``$(date -Iseconds)``) names nothing and binds to the rollout
    in progress.
    """
    if value in (revision, bento):
        return False
    if value in known_revisions:
        return True
    tag = _BENTO_TAG.match(value)
    return tag is not None and tag.group(1) == bento.partition(":")[0]


def paused_by_annotation(annotations: dict[str, str]) -> bool:
    return annotations.get(PAUSED, "").strip().lower() in ("true", "1", "yes")


def bind(pending_controls: dict[str, str], previous: ModelDeploymentStatus, target: str, bento: str
         ) -> tuple[dict[str, str], dict[str, str], dict[str, DeferredControl]]:
    """Split pending controls into those that may act now and those given for another version.

    Returns (active, ignored with why, the deferred bindings still standing).
    """
    bound = {b.control: b for b in previous.deferred_controls if pending_controls.get(b.control) == b.value}
    known = {v.revision for v in (previous.stable, previous.candidate) if v is not None}
    known |= {revision_of(m) for m in (previous.stable_model, previous.previous_model) if m is not None}
    known |= {r.revision for r in (previous.rollout, previous.rolled_back) if r is not None}
    ignored: dict[str, str] = {}
    for control, value in pending_controls.items():
        binding = bound.get(control)
        if binding is not None and binding.revision != target:
            ignored[control] = f"it was given for {binding.bento} ({binding.revision}), which is no longer rolling out"
        elif names_other_version(value, target, bento, known):
            ignored[control] = f"it names {value}, but spec.model is {bento} ({target})"
    return {c: v for c, v in pending_controls.items() if c not in ignored}, ignored, bound


def settle(active: dict[str, str], handled: dict[str, str], ignored: dict[str, str], bound: dict[str, DeferredControl],
           target: str, bento: str, in_progress: bool, rolled_back: RolledBackStatus | None, now: str) -> list[DeferredControl]:
    """Controls the decision did not act on wait for the rollout in progress (returned), or are
    ignored (added to ``ignored``)."""
    deferred = []
    for control, value in active.items():
        if control in handled:
            continue
        if in_progress and control in DEFERRABLE:
            deferred.append(bound.get(control) or DeferredControl(control=control, value=value, revision=target, bento=bento, since=now))
        elif control == "retry":
            ignored[control] = "nothing is rolled back"
        elif rolled_back is not None and rolled_back.revision == target:
            ignored[control] = f"{rolled_back.bento} was rolled back; set headway.dev/retry to roll it out again"
        else:
            ignored[control] = "no rollout is in progress"
    return deferred


def ignored_notes(ignored: dict[str, str], pending_controls: dict[str, str]) -> list[str]:
    """The message of each ignored control (one Warning Event and one history entry each: it never acts later)."""
    return [f"{PREFIX}{control}={pending_controls[control]} ignored: {why}; it will not act later" for control, why in ignored.items()]
