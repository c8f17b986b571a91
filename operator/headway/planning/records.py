"""Which decisions go into which RolloutRecord, each record's outcome, and which records to keep (pure).

``status.history`` is the write-ahead log of decisions (the newest 20). After each status write the
reconciler asks ``plan_records`` what the RolloutRecords (api/record.py) of the ModelDeployment lack,
given the records it holds (its watch cache) and the status just written; k8s/records.py writes the
answer. Nothing here remembers anything between calls: what is missing is found by comparing the
history with the records, so an operator that died between the status write and the record write
adds the missing decisions at its next reconcile, and never twice (decisions are matched by
(time, event, revision), counted as a multiset). A reconcile with nothing new plans nothing.

**Which rollout a decision belongs to.** History is in order, so it is read as a sequence:

- a rollout begins with ``RolloutStarted`` or ``CandidateReplaced`` (the candidate's revision, at
  the time that becomes ``status.rollout.startedAt``): that (revision, time) names its record.
  ``Updated`` (no rollout steps) and ``Deployed`` (the first version) are one-decision rollouts;
- every decision after the beginning belongs to it (the steps, holds, pauses, analyses, approvals,
  drift seen meanwhile, controls ignored) until it ends: ``Promoted`` (unless ``BakeStarted``
  follows: the bake is part of the rollout), ``BakeCompleted``, ``RolledBack``, ``Aborted``,
  ``Rejected``, ``RolloutCancelled``, or a ``CandidateReplaced`` (which ends this one and begins the
  next). Decisions of the same reconcile after the end (the same second) still belong to it;
- decisions while no rollout is open are in no record, except the ones a beginning of the same
  revision claims when it comes (``Retried`` before ``RolloutStarted``; ``AwaitingApproval`` and
  ``Approved`` before an ``Updated``; anything of its own reconcile), and an end with no beginning
  (a rejection of a version whose rollout never began) which is a record of its own, named by the end;
- the history is a window: what was open at its first entry is the record still ``InProgress``
  that began before it, or one whose end is in the window, or else ``status.rollout`` (or the bake's
  ``rollout``) when it began before the window (that record is then marked incomplete).

**Outcome.** ``InProgress`` while ``status.rollout`` (or ``status.bake``) is this rollout, as the
status says, not the entries; else its last ending decision says it (``RolledBack`` after
``Promoted`` is ``BakeFailed``), ``Unknown`` when it has none.

**Why the records are read from the watch cache, and not a marker in status.** A
``status.recordedUpTo`` would have to be written after the record write (a second status write per
decision, racing the next decision's) or with the decision (then it would claim what a crash before
the record write lost). The records' watch cache costs one list and one watch per namespace; each
reconcile compares in memory and sends nothing when nothing is new.

**Retention.** At most ``keep`` records per ModelDeployment: beyond, the oldest finished ones are
deleted, and a record that would be deleted at once is not created (a rollout still in the history
window would otherwise be created and pruned at every reconcile).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from headway.api.record import (
    APPROVER_MAX, COMMENT_MAX, DIGEST_MAX, EVENT_MAX, MAX_APPROVALS, MAX_BYTES, MAX_DECISIONS, MAX_EVIDENCE_BYTES, MESSAGE_MAX,
    REVISION_MAX, TIME_MAX, RecordedApproval, RecordedDecision, RecordedVersion, RolloutRecordSpec,
)
from headway.api.limits import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX
from headway.api.status import HISTORY_LIMIT, HistoryEntry, ModelDeploymentStatus
from headway.planning.conditions import parse_time
from headway.planning.naming import revision_of

STARTS = frozenset({"RolloutStarted", "CandidateReplaced", "Updated", "Deployed"})
SINGLE = frozenset({"Updated", "Deployed"})  # a beginning that is also the end
ENDS = frozenset({"Promoted", "BakeCompleted", "RolledBack", "Aborted", "Rejected", "RolloutCancelled"})
# What a beginning (or an end with no beginning) of the same revision claims from before it, when no rollout
# was open: a retry, and the approvals a version without rollout steps waited for. Anything else of the same
# reconcile (the same second) is claimed too; other decisions of no rollout stay in none.
CLAIMABLE = frozenset({"Retried", "AwaitingApproval", "Approved"})
IN_PROGRESS = "InProgress"

Key = tuple[str, str, str | None]  # a decision: (time, event, revision)


@dataclass(frozen=True, order=True)
class RolloutKey:
    """A rollout: the candidate revision and when it began (its record's identity)."""

    started_at: str
    revision: str


@dataclass(frozen=True)
class ExistingRecord:
    """A RolloutRecord as the watch cache holds it: what planning reads of it."""

    name: str
    uid: str
    resource_version: str
    model_deployment_uid: str
    key: RolloutKey
    outcome: str
    finished_at: str | None
    decisions: tuple[dict[str, Any], ...]  # as stored (camelCase), oldest first
    approvals: int = 0
    dropped: int = 0
    incomplete: str | None = None

    @property
    def finished(self) -> bool:
        return self.outcome != IN_PROGRESS


def parse_record(obj: dict[str, Any]) -> ExistingRecord | None:
    """The parts of a RolloutRecord planning needs; None for an object that is not one (hand-made,
    or a later version's): it is left alone."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not meta.get("name"):
        return None
    revision, started, outcome = spec.get("revision"), spec.get("startedAt"), spec.get("outcome")
    decisions = spec.get("decisions") or []
    if not (isinstance(revision, str) and isinstance(started, str) and isinstance(outcome, str) and isinstance(decisions, list)):
        return None
    finished = spec.get("finishedAt")
    incomplete = spec.get("incomplete")
    return ExistingRecord(
        name=str(meta["name"]), uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""),
        model_deployment_uid=str(spec.get("modelDeploymentUID") or ""), key=RolloutKey(started, revision), outcome=outcome,
        finished_at=finished if isinstance(finished, str) else None,
        decisions=tuple(d for d in decisions if isinstance(d, dict)),
        approvals=len(spec.get("approvals") or []), dropped=int(spec.get("dropped") or 0),
        incomplete=incomplete if isinstance(incomplete, str) else None,
    )


def decision_key(decision: HistoryEntry | RecordedDecision | dict[str, Any]) -> Key:
    if isinstance(decision, dict):
        return str(decision.get("time", "")), str(decision.get("event", "")), decision.get("revision")
    return decision.time, decision.event, decision.revision


@dataclass(frozen=True)
class NewRecord:
    """A record to create."""

    name: str
    spec: RolloutRecordSpec


@dataclass(frozen=True)
class RecordUpdate:
    """What an existing record gains: decisions appended (after dropping ``drop`` of its oldest but
    the first, to stay within its bounds), approvals appended, and its outcome."""

    record: ExistingRecord
    append: tuple[RecordedDecision, ...]
    approvals: tuple[RecordedApproval, ...]
    drop: int
    outcome: str
    finished_at: str | None
    incomplete: str | None

    @property
    def dropped(self) -> int:
        return self.record.dropped + self.drop


@dataclass(frozen=True)
class RecordsPlan:
    create: tuple[NewRecord, ...] = ()
    update: tuple[RecordUpdate, ...] = ()
    delete: tuple[ExistingRecord, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


# --- which rollout each decision belongs to ------------------------------------------------------


@dataclass
class _Walk:
    """The history read in order (see the module doc); ``out`` collects each rollout's decisions."""

    current: RolloutKey | None = None  # the rollout open at this point of the history
    ended: tuple[RolloutKey, str] | None = None  # the rollout that ended last, and when (its reconcile's decisions follow)
    pending: list[HistoryEntry] = field(default_factory=list)  # decisions of no open rollout (a beginning may claim them)
    out: dict[RolloutKey, list[HistoryEntry]] = field(default_factory=dict)

    def add(self, key: RolloutKey, entry: HistoryEntry) -> None:
        if entry.time >= key.started_at:  # nothing before a rollout began is part of it
            self.out.setdefault(key, []).append(entry)

    def begin(self, entry: HistoryEntry, revision: str) -> None:
        key = RolloutKey(entry.time, revision)
        if self.current is not None and self.current != key and entry.event == "CandidateReplaced":
            self.add(self.current, entry)  # the end of the replaced candidate's rollout
        self.claim(key, entry)
        self.add(key, entry)
        self.current, self.ended = (None, (key, entry.time)) if entry.event in SINGLE else (key, None)

    def claim(self, key: RolloutKey, entry: HistoryEntry) -> None:
        """The pending decisions that the rollout ``entry`` begins (or ends) takes as its first."""
        for claimed in self.pending:
            if claimed.revision == key.revision and (claimed.event in CLAIMABLE or claimed.time == entry.time):
                self.out.setdefault(key, []).append(claimed)
        self.pending = []

    def step(self, entry: HistoryEntry) -> None:
        if entry.event in STARTS and entry.revision:
            self.begin(entry, entry.revision)
            return
        if self.current is None and self.ended is not None:
            key, at = self.ended
            if entry.event == "BakeStarted" and entry.revision == key.revision:
                self.current, self.ended = key, None  # the bake after the promotion continues the rollout
            elif entry.time == at:
                self.add(key, entry)  # the same reconcile as the end
                return
            else:
                self.ended = None
        if self.current is not None:
            current = self.current
            self.add(current, entry)
            if entry.event in ENDS:
                self.current, self.ended = None, (current, entry.time)
            return
        if entry.event in ENDS and entry.revision:
            # An end with no beginning: a version rejected (or aborted) before its rollout began. Named by
            # the end itself, which stays what it is however the window moves.
            key = RolloutKey(entry.time, entry.revision)
            self.claim(key, entry)
            self.out.setdefault(key, []).append(entry)
            self.ended = (key, entry.time)
            return
        if entry.revision:
            self.pending.append(entry)


def assign(history: Sequence[HistoryEntry], initial: RolloutKey | None = None,
           ended: tuple[RolloutKey, str] | None = None) -> dict[RolloutKey, list[HistoryEntry]]:
    """Each rollout's decisions in ``history``, in order. ``initial``: the rollout open before the
    first entry; ``ended``: the one that ended just before it (and when)."""
    walk = _Walk(current=initial, ended=ended if initial is None else None)
    for entry in history:
        walk.step(entry)
    return walk.out


def open_rollout(status: ModelDeploymentStatus) -> RolloutKey | None:
    """The rollout status says is going on: its steps, or the bake after its promotion. started_at ""
    when status does not say when it began (written before startedAt existed)."""
    if status.rollout is not None:
        return RolloutKey(status.rollout.started_at or "", status.rollout.revision)
    if status.bake is not None and status.bake.rollout:
        return RolloutKey(status.bake.rollout, status.bake.revision)
    return None


def _initial(history: Sequence[HistoryEntry], records: Sequence[ExistingRecord],
             opened: RolloutKey | None) -> tuple[RolloutKey | None, tuple[RolloutKey, str] | None]:
    """What was open (or had just ended) at the history window's first entry."""
    if not history:
        return None, None
    first = history[0].time
    window = {decision_key(h) for h in history}
    candidates: list[tuple[RolloutKey, bool]] = []  # (rollout, still open at the first entry)
    for r in records:
        if r.key.started_at > first:
            continue
        if not r.finished:
            candidates.append((r.key, True))
        elif r.finished_at is not None and r.finished_at >= first and r.outcome != "Unknown":
            ending = next((d for d in reversed(r.decisions) if d.get("event") in ENDS or d.get("event") == "CandidateReplaced"), None)
            in_window = ending is not None and decision_key(ending) in window
            candidates.append((r.key, in_window))  # its end is still ahead in the window: open until then
    if opened is not None and opened.started_at and opened.started_at < first:
        candidates.append((opened, True))
    if not candidates:
        return None, None
    key, still_open = max(candidates, key=lambda c: c[0])
    if still_open:
        return key, None
    finished_at = next(r.finished_at for r in records if r.key == key)
    return None, (key, finished_at or first)


# --- what each record becomes ----------------------------------------------------------------------


def outcome_of(events: Sequence[str], is_open: bool) -> str:
    """The record's outcome from its decisions' events (oldest first), or InProgress while open."""
    if is_open:
        return IN_PROGRESS
    promoted, outcome = False, None
    for index, event in enumerate(events):
        if event == "Promoted":
            promoted, outcome = True, "Promoted"
        elif event == "BakeCompleted":
            outcome = "Promoted"
        elif event == "RolledBack":
            outcome = "BakeFailed" if promoted else "RolledBack"
        elif event == "Aborted":
            outcome = "Aborted"
        elif event == "Rejected":
            outcome = "Rejected"
        elif event == "RolloutCancelled":
            outcome = "Cancelled"
        elif event == "CandidateReplaced" and index > _start_index(events):
            outcome = "Replaced"
        elif event in SINGLE:
            outcome = event
    return outcome or "Unknown"


def _start_index(events: Sequence[str]) -> int:
    return next((i for i, e in enumerate(events) if e in STARTS), 0)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_decision(entry: HistoryEntry) -> RecordedDecision:
    """A history entry as a record keeps it (within the record's bounds)."""
    evidence = entry.evidence
    if evidence is not None:
        size = len(json.dumps(evidence, separators=(",", ":"), default=str))
        if size > MAX_EVIDENCE_BYTES:
            evidence = {"omitted": f"{size} bytes of evidence: more than a record keeps for one decision ({MAX_EVIDENCE_BYTES})"}
    return RecordedDecision(
        time=_cut(entry.time, TIME_MAX), event=_cut(entry.event, EVENT_MAX),
        revision=_cut(entry.revision, REVISION_MAX) if entry.revision is not None else None,
        bento=_cut(entry.bento, DNS_SUBDOMAIN_MAX) if entry.bento is not None else None,
        message=_cut(entry.message, MESSAGE_MAX), evidence=evidence,
    )


def approvals_of(entry: HistoryEntry) -> list[RecordedApproval]:
    """The approvals an ``Approved`` decision counted, or the rejection a ``Rejected`` one carries."""
    evidence = entry.evidence or {}
    if entry.event == "Approved":
        found = evidence.get("approvals")
        items = [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []
    elif entry.event == "Rejected":
        found = evidence.get("approval")
        items = [found] if isinstance(found, dict) else []
    else:
        return []
    digest = evidence.get("evidenceDigest")

    def text(value: Any, limit: int) -> str:
        return _cut(value, limit) if isinstance(value, str) else ""

    out = []
    for a in items:
        decision: Literal["approve", "reject"] = "reject" if entry.event == "Rejected" or a.get("decision") == "reject" else "approve"
        stage = a.get("stage") or evidence.get("stage")
        out.append(RecordedApproval(
            time=_cut(entry.time, TIME_MAX), decision=decision, approver=text(a.get("approver"), APPROVER_MAX),
            role=text(a.get("role"), DNS_LABEL_MAX), approval=text(a.get("name"), DNS_SUBDOMAIN_MAX),
            stage=text(stage, DNS_LABEL_MAX) or None, evidence_digest=text(digest, DIGEST_MAX) or None,
            comment=text(a.get("comment"), COMMENT_MAX), created_at=text(a.get("at"), TIME_MAX) or None,
        ))
    return out


def _size(decision: dict[str, Any]) -> int:
    return len(json.dumps(decision, separators=(",", ":"), default=str))


def within_bounds(sizes: Sequence[int]) -> int:
    """How many decisions to drop after the first so that at most MAX_DECISIONS of them, and about
    MAX_BYTES, remain (the first, the rollout's beginning, and the newest stay)."""
    drop, count, total = 0, len(sizes), sum(sizes)
    while count - drop > 2 and (count - drop > MAX_DECISIONS or total > MAX_BYTES):
        total -= sizes[1 + drop]
        drop += 1
    return drop


def record_name(model_deployment: str, key: RolloutKey) -> str:
    """``<modeldeployment>-<revision>-<yyyymmdd-hhmmss>``: the same rollout always gets the same name, so
    a create that raced its own earlier create fails (409) instead of making a second record."""
    try:
        stamp = parse_time(key.started_at).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        stamp = re.sub(r"[^0-9]", "", key.started_at)[:14] or "0"
    revision = re.sub(r"[^a-z0-9]+", "-", key.revision.lower()).strip("-")[:16] or "x"
    suffix = f"-{revision}-{stamp}"
    return model_deployment[: DNS_SUBDOMAIN_MAX - len(suffix)].rstrip("-.") + suffix


def _stable(status: ModelDeploymentStatus, revision: str) -> RecordedVersion | None:
    """The stable version a rollout of ``revision`` rolled over: status.stableModel until the promotion,
    status.previousModel after it (None when neither is known any more)."""
    for model in (status.stable_model, status.previous_model):
        if model is not None and revision_of(model) != revision:
            return RecordedVersion(bento=_cut(model.bento, DNS_SUBDOMAIN_MAX), revision=revision_of(model))
    return None


def _missing(assigned: Iterable[HistoryEntry], record: ExistingRecord) -> list[HistoryEntry]:
    """Decisions of ``assigned`` not in the record yet: each key counted as often as it occurs (a
    multiset), and never older than the record's newest decision (records only grow forward: older
    ones were dropped to keep it within bounds, or belong before it)."""
    have = Counter(decision_key(d) for d in record.decisions)
    newest = max((str(d.get("time", "")) for d in record.decisions), default="")
    out = []
    for entry in assigned:
        k = decision_key(entry)
        if have[k] > 0:
            have[k] -= 1
        elif entry.time >= newest:
            out.append(entry)
    return out


def plan_records(model_deployment: str, uid: str, status: ModelDeploymentStatus, records: Sequence[ExistingRecord],
                 keep: int) -> RecordsPlan:
    """What the ModelDeployment's records must gain, and which to create or delete, so that every
    decision of ``status.history`` that belongs to a rollout is in that rollout's record once."""
    mine = sorted((r for r in records if r.model_deployment_uid == uid), key=lambda r: (r.key, r.name))
    history = status.history
    opened = open_rollout(status)
    initial, ended = _initial(history, [r for r in mine if r.key.started_at], opened)
    assigned = assign(history, initial, ended)
    if opened is not None and not opened.started_at:  # status does not say when: the newest rollout of that revision
        same = [k for k in [*assigned, *(r.key for r in mine)] if k.revision == opened.revision]
        opened = max(same) if same else None
    by_key: dict[RolloutKey, ExistingRecord] = {}
    for r in mine:
        by_key.setdefault(r.key, r)

    creates: dict[RolloutKey, NewRecord] = {}
    updates: dict[RolloutKey, RecordUpdate] = {}
    outcomes: dict[RolloutKey, str] = {}
    window = {decision_key(h) for h in history}
    for key in sorted(set(assigned) | set(by_key)):
        is_open = key == opened
        existing = by_key.get(key)
        if existing is None:
            creates[key] = _new(model_deployment, uid, status, key, assigned[key], is_open)
            outcomes[key] = creates[key].spec.outcome
            continue
        outcomes[key] = existing.outcome
        new = _missing(assigned.get(key, ()), existing)
        if not new and existing.finished and not is_open:
            continue  # a finished record stays as it is (the steady state: nothing computed, nothing sent)
        update = _update(existing, new, is_open, len(history) >= HISTORY_LIMIT and decision_key(existing.decisions[-1]) not in window
                         if existing.decisions else False)
        if update is not None:
            updates[key] = update
            outcomes[key] = update.outcome

    # Retention: the newest ``keep`` records, and every one in progress. Oldest first: by start, then (times are
    # to the second) by end, as one rollout ends before the next begins.
    finished = ({k: r.finished_at for k, r in by_key.items()} | {k: u.finished_at for k, u in updates.items()}
                | {k: c.spec.finished_at for k, c in creates.items()})
    names = {k: r.name for k, r in by_key.items()} | {k: c.name for k, c in creates.items()}
    everything = sorted(names, key=lambda k: (k.started_at, finished[k] or "~", names[k]))
    excess = len(everything) - max(1, keep)
    deletes: list[ExistingRecord] = []
    for key in everything:
        if excess <= 0:
            break
        if outcomes.get(key, IN_PROGRESS) == IN_PROGRESS:
            continue
        excess -= 1
        if key in creates:
            del creates[key]
        else:
            updates.pop(key, None)
            deletes.append(by_key[key])
    return RecordsPlan(tuple(creates.values()), tuple(updates.values()), tuple(deletes))


def _update(existing: ExistingRecord, new: Sequence[HistoryEntry], is_open: bool, gap: bool) -> RecordUpdate | None:
    """What an existing record gains from ``new`` (None: nothing changes). ``gap``: its newest decision
    has left the history window, so decisions between it and ``new`` may have been lost."""
    events = [str(d.get("event", "")) for d in existing.decisions] + [e.event for e in new]
    outcome = outcome_of(events, is_open)
    last = new[-1].time if new else str(existing.decisions[-1].get("time", "")) if existing.decisions else existing.key.started_at
    finished = None if outcome == IN_PROGRESS else last
    incomplete = existing.incomplete
    if new and gap:
        incomplete = (f"decisions between {existing.decisions[-1].get('time')} and {new[0].time} may be missing: "
                      "they left status.history (its newest 20) before they could be recorded")
    if outcome == "Unknown" and existing.outcome == IN_PROGRESS:
        incomplete = "the rollout ended while its last decisions could not be recorded"
    if not new and outcome == existing.outcome and finished == existing.finished_at and incomplete == existing.incomplete:
        return None
    appended = [to_decision(e) for e in new]
    drop = 0
    if appended:
        drop = within_bounds([_size(d) for d in existing.decisions] + [_size(d.dump()) for d in appended])
    from_existing = min(drop, max(0, len(existing.decisions) - 1))
    appended = appended[drop - from_existing:]
    approvals = [a for e in new for a in approvals_of(e)][: max(0, MAX_APPROVALS - existing.approvals)]
    return RecordUpdate(existing, tuple(appended), tuple(approvals), from_existing, outcome, finished, incomplete)


def _new(model_deployment: str, uid: str, status: ModelDeploymentStatus, key: RolloutKey, entries: Sequence[HistoryEntry],
         is_open: bool) -> NewRecord:
    decisions = [to_decision(e) for e in entries]
    drop = within_bounds([_size(d.dump()) for d in decisions])
    if drop:
        decisions = decisions[:1] + decisions[1 + drop:]
    incomplete = None
    if not any(e.event in STARTS and e.time == key.started_at and e.revision == key.revision for e in entries):
        incomplete = ("its beginning (RolloutStarted) is not among its decisions: it had left status.history (the newest 20) "
                      "before it could be recorded, or the version was rejected before its rollout began")
    outcome = outcome_of([e.event for e in entries], is_open)
    bento = next((e.bento for e in entries if e.revision == key.revision and e.bento), None)
    if bento is None:
        bento = (status.rollout.bento if status.rollout is not None and status.rollout.revision == key.revision
                 else status.bake.bento if status.bake is not None and status.bake.revision == key.revision else "")
    approvals = [a for e in entries for a in approvals_of(e)][:MAX_APPROVALS]
    spec = RolloutRecordSpec(
        model_deployment=model_deployment, modelDeploymentUID=uid, revision=_cut(key.revision, REVISION_MAX),
        bento=_cut(bento, DNS_SUBDOMAIN_MAX),
        stable=_stable(status, key.revision) if outcome != "Deployed" else None, started_at=key.started_at,
        finished_at=None if outcome == IN_PROGRESS else (entries[-1].time if entries else key.started_at), outcome=outcome,  # type: ignore[arg-type]
        decisions=decisions, approvals=approvals, dropped=drop, incomplete=incomplete,
    )
    return NewRecord(record_name(model_deployment, key), spec)
