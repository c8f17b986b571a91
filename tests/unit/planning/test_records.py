"""Which decisions go into which RolloutRecord (planning/records.py), checked as an auditor would see it.

A ``Cluster`` below plays the API server: it stores the records the plans create, applies the JSON
patches k8s/records.py sends for updates (with the real ``jsonpatch`` library, and the
resourceVersion check), and deletes. A ``Timeline`` plays the operator's status writes: each
reconcile appends its decisions to ``status.history`` (bounded to 20, oldest dropped, as the
planner does) and sets ``status.rollout``/``status.bake``. Then:

- every decision of a rollout is in its record exactly once, in the order made, whichever
  reconciles wrote records and which died between the status and the record write;
- the outcome is what happened; the record of a rollout in progress says InProgress;
- a reconcile with nothing new plans nothing;
- retention keeps the newest N and never brings a pruned record back;
- the bounds keep the first decision and the newest, and say how many were dropped.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import jsonpatch
import pytest

from headway.api.record import RolloutRecordSpec
from headway.api.status import BakeStatus, HistoryEntry, ModelDeploymentStatus, RolloutStatus, VersionSpec
from headway.k8s.records import render_record, update_ops
from headway.planning import records as rec
from headway.planning.conditions import append_history, rfc3339
from headway.planning.naming import Owner, revision_of
from headway.planning.records import RolloutKey, assign, outcome_of, parse_record, plan_records, record_name

UID = "0b6c8a8e-1111-4222-8333-944455556666"
OWNER = Owner("fraud", "ml", UID)
V1 = VersionSpec(bento="fraud_scorer:1.0.0", image="registry.example.com/fraud:1")
V2 = VersionSpec(bento="fraud_scorer:2.0.0", image="registry.example.com/fraud:2")
V3 = VersionSpec(bento="fraud_scorer:3.0.0", image="registry.example.com/fraud:3")
R1, R2, R3 = revision_of(V1), revision_of(V2), revision_of(V3)
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def entry(time: str, event: str, revision: str | None, message: str = "", evidence: dict[str, Any] | None = None,
          bento: str | None = None) -> HistoryEntry:
    return HistoryEntry(time=time, event=event, revision=revision, bento=bento, message=message or f"{event} {revision}", evidence=evidence)


@dataclass
class Timeline:
    """The status the operator writes, one reconcile at a time."""

    clock: datetime = START
    history: list[HistoryEntry] = field(default_factory=list)
    rollout: RolloutStatus | None = None
    bake: BakeStatus | None = None
    stable: VersionSpec = V1
    previous: VersionSpec | None = None
    every: list[HistoryEntry] = field(default_factory=list)  # every decision ever made, unbounded

    def now(self) -> str:
        return rfc3339(self.clock)

    def reconcile(self, *events: tuple[str, str | None] | tuple[str, str | None, dict[str, Any]], seconds: int = 5) -> ModelDeploymentStatus:
        """One reconcile ``seconds`` after the last, recording ``events`` (event, revision[, evidence])."""
        self.clock += timedelta(seconds=seconds)
        for item in events:
            made = entry(self.now(), item[0], item[1], evidence=item[2] if len(item) > 2 else None)  # type: ignore[misc]
            self.history = append_history(self.history, made)
            self.every.append(made)
        return self.status()

    def status(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus(history=self.history, rollout=self.rollout, bake=self.bake, stable_model=self.stable,
                                     previous_model=self.previous)

    # What the rollout state machine does to status.rollout / status.bake with each kind of decision.
    def deploy(self) -> ModelDeploymentStatus:
        return self.reconcile(("Deployed", R1))

    def start(self, revision: str, bento: str = "fraud_scorer:2.0.0", event: str = "RolloutStarted",
              before: tuple[tuple[str, str | None], ...] = ()) -> ModelDeploymentStatus:
        self.clock += timedelta(seconds=5)
        self.rollout = RolloutStatus(revision=revision, bento=bento, started_at=self.now())
        self.clock -= timedelta(seconds=5)
        return self.reconcile(*before, (event, revision))

    def end(self, *events: tuple[str, str | None]) -> ModelDeploymentStatus:
        self.rollout = None
        return self.reconcile(*events)


@dataclass
class Cluster:
    """The API server's side: records by name, with resourceVersions."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 100
    writes: int = 0

    def existing(self) -> list[rec.ExistingRecord]:
        return [r for r in (parse_record(o) for o in self.objects.values()) if r is not None]

    def sync(self, status: ModelDeploymentStatus, keep: int = 10, uid: str = UID) -> rec.RecordsPlan:
        """One record write after a status write: plan from what is stored, then carry it out."""
        plan = plan_records(OWNER.name, uid, status, self.existing(), keep)
        for new in plan.create:
            assert new.name not in self.objects, "a create of a record that exists: the plan did not see it"
            body = render_record(OWNER, new)
            self.version += 1
            body["metadata"].update(uid=f"uid-{new.name}", resourceVersion=str(self.version))
            self.objects[new.name] = body
            self.writes += 1
        for update in plan.update:
            current = self.objects[update.record.name]
            patched = jsonpatch.apply_patch(current, update_ops(update))
            assert patched["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
            RolloutRecordSpec.model_validate(patched["spec"])  # what the CRD's schema would check
            self.version += 1
            patched["metadata"]["resourceVersion"] = str(self.version)
            self.objects[update.record.name] = patched
            self.writes += 1
        for old in plan.delete:
            del self.objects[old.name]
            self.writes += 1
        return plan

    def records(self) -> list[dict[str, Any]]:
        """Each record's spec, oldest rollout first."""
        return [o["spec"] for o in sorted(self.objects.values(), key=lambda o: (o["spec"]["startedAt"], o["metadata"]["name"]))]

    def decisions(self) -> list[list[tuple[str, str, str | None]]]:
        return [[(d["time"], d["event"], d.get("revision")) for d in r["decisions"]] for r in self.records()]


def keys(entries: list[HistoryEntry]) -> list[tuple[str, str, str | None]]:
    return [(e.time, e.event, e.revision) for e in entries]


def life(t: Timeline) -> list[ModelDeploymentStatus]:
    """A ModelDeployment's life in statuses: deployed, a rollout promoted with a bake, one rolled back, a retry
    that is replaced by another candidate, which is aborted, and a no-steps update approved first."""
    out = [t.deploy()]
    out.append(t.start(R2))
    out.append(t.reconcile(("StepStarted", R2, {"weights": {"stable": 90, "candidate": 10}})))
    out.append(t.reconcile(("StepCompleted", R2), ("StepStarted", R2)))
    out.append(t.reconcile(("DataDrift", R1)))  # drift of the stable seen during the rollout
    out.append(t.reconcile(("StepCompleted", R2), ("PromotionStarted", R2)))
    t.previous, t.stable = V1, V2
    t.bake = BakeStatus(revision=R2, bento=V2.bento, since="x", until="y", rollout=t.rollout.started_at if t.rollout else None)
    out.append(t.end(("Promoted", R2), ("BakeStarted", R2)))
    out.append(t.reconcile(("BakeBaselineStarted", R2)))
    t.bake, t.previous = None, None
    out.append(t.reconcile(("BakeCompleted", R2)))
    out.append(t.reconcile(("DataDrift", R2)))  # outside any rollout: in no record
    out.append(t.start(R3, "fraud_scorer:3.0.0"))
    out.append(t.reconcile(("StepStarted", R3)))
    out.append(t.end(("RolledBack", R3, {"analysis": {"result": "Fail"}})))
    out.append(t.start(R3, "fraud_scorer:3.0.0", before=(("Retried", R3),)))
    out.append(t.reconcile(("Paused", R3), ("Resumed", R3)))
    out.append(t.start("4444444444", "fraud_scorer:4.0.0", event="CandidateReplaced"))
    out.append(t.end(("Aborted", "4444444444"), ("ControlIgnored", None)))  # ignored in the same reconcile: part of it
    out.append(t.reconcile(("AwaitingApproval", "5555555555")))
    approved = {"stage": "BeforePromotion", "evidenceDigest": "ab" * 32,
                "approvals": [{"name": "fraud-5555555555-risk-carol", "approver": "carol", "role": "risk", "decision": "approve",
                               "comment": "fine", "at": "2024-05-01T12:01:00Z"}]}
    t.previous, t.stable = V2, V3
    out.append(t.reconcile(("Approved", "5555555555", approved), ("Updated", "5555555555")))
    return out


EXPECTED_OUTCOMES = ["Deployed", "Promoted", "RolledBack", "Replaced", "Aborted", "Updated"]


def expected_decisions(t: Timeline) -> list[list[tuple[str, str, str | None]]]:
    """Which decisions each record of ``life`` should hold, by the rules of the module doc (written out by hand)."""
    every = keys(t.every)
    events = [k[1] for k in every]

    def span(first: int, last: int) -> list[tuple[str, str, str | None]]:
        return every[first:last + 1]

    return [
        [every[0]],  # Deployed
        span(1, events.index("BakeCompleted")),  # the promotion, its bake, and the stable's drift meanwhile
        span(events.index("RolloutStarted", 2), events.index("RolledBack")),
        span(events.index("Retried"), events.index("CandidateReplaced")),  # the retry, replaced by another candidate
        span(events.index("CandidateReplaced"), events.index("ControlIgnored")),  # aborted; the typo of its reconcile
        span(events.index("AwaitingApproval"), len(every) - 1),  # approved, then updated without steps
    ]


def test_a_whole_life_recorded_at_every_reconcile() -> None:
    t, cluster = Timeline(), Cluster()
    for status in life(t):
        cluster.sync(status)
    assert [r["outcome"] for r in cluster.records()] == EXPECTED_OUTCOMES
    assert cluster.decisions() == expected_decisions(t)
    # Drift of the stable between rollouts is in no record; drift during one is in it.
    assert ("DataDrift", R1) in [(d[1], d[2]) for d in cluster.decisions()[1]]
    assert ("DataDrift", R2) not in [(d[1], d[2]) for r in cluster.decisions() for d in r]
    promoted, rolled, retried = cluster.records()[1:4]
    assert promoted["stable"] == {"bento": V1.bento, "revision": R1} and promoted["bento"] == "fraud_scorer:2.0.0"
    assert promoted["finishedAt"] == promoted["decisions"][-1]["time"]
    assert rolled["decisions"][-1]["evidence"] == {"analysis": {"result": "Fail"}}
    assert [d["event"] for d in retried["decisions"]][:2] == ["Retried", "RolloutStarted"]
    assert all(r.get("incomplete") is None for r in cluster.records())
    updated = cluster.records()[-1]
    assert updated["approvals"] == [{
        "time": updated["decisions"][1]["time"], "decision": "approve", "approver": "carol", "role": "risk",
        "approval": "fraud-5555555555-risk-carol", "stage": "BeforePromotion", "evidenceDigest": "ab" * 32, "comment": "fine",
        "createdAt": "2024-05-01T12:01:00Z",
    }]
    # Steady: planning again from the same status sends nothing.
    writes = cluster.writes
    assert not cluster.sync(t.status())
    assert cluster.writes == writes


@pytest.mark.parametrize("seed", range(12))
def test_an_operator_that_dies_between_status_and_record_writes_loses_nothing_and_doubles_nothing(seed: int) -> None:
    """Any reconcile's record write may not happen (the process died after the status write); the next
    one that writes records catches up. The records end the same as with every write made."""
    rng = random.Random(seed)
    t, cluster = Timeline(), Cluster()
    statuses = life(t)
    for i, status in enumerate(statuses):
        if i == len(statuses) - 1 or rng.random() < 0.5:
            cluster.sync(status)
    cluster.sync(t.status())
    assert cluster.decisions() == expected_decisions(t)
    assert [r["outcome"] for r in cluster.records()] == EXPECTED_OUTCOMES


def test_a_write_that_is_planned_twice_from_a_stale_read_is_refused_not_doubled() -> None:
    """Two plans from the same record (a cache behind the API server): the second patch carries the
    resourceVersion it was planned from, which the server refuses (409); nothing is appended twice."""
    t, cluster = Timeline(), Cluster()
    cluster.sync(t.deploy())
    cluster.sync(t.start(R2))
    status = t.reconcile(("StepStarted", R2))
    stale = cluster.existing()
    cluster.sync(status)
    (again,) = plan_records(OWNER.name, UID, status, stale, 10).update
    stored = cluster.objects[again.record.name]
    patched = jsonpatch.apply_patch(stored, update_ops(again))
    # The API server's check: the patched object's resourceVersion must be the stored one, else 409 Conflict.
    assert patched["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]
    assert plan_records(OWNER.name, UID, status, cluster.existing(), 10).update == ()
    assert [d["event"] for d in cluster.records()[1]["decisions"]] == ["RolloutStarted", "StepStarted"]


def test_in_progress_until_status_says_it_ended() -> None:
    t, cluster = Timeline(), Cluster()
    cluster.sync(t.deploy())
    cluster.sync(t.start(R2))
    cluster.sync(t.reconcile(("StepStarted", R2)))
    (_, running) = cluster.records()
    assert running["outcome"] == "InProgress" and "finishedAt" not in running
    # Promoted with a bake: still in progress (the bake is part of the rollout).
    t.bake = BakeStatus(revision=R2, bento=V2.bento, since="x", until="y", rollout=t.rollout.started_at if t.rollout else None)
    t.previous, t.stable = V1, V2
    cluster.sync(t.end(("PromotionStarted", R2), ("Promoted", R2), ("BakeStarted", R2)))
    assert cluster.records()[1]["outcome"] == "InProgress"
    t.bake = None
    cluster.sync(t.reconcile(("RolledBack", R2)))
    assert cluster.records()[1]["outcome"] == "BakeFailed"
    assert cluster.records()[1]["finishedAt"] == t.now()


@pytest.mark.parametrize(("events", "outcome"), [
    (["RolloutStarted", "StepStarted", "PromotionStarted", "Promoted"], "Promoted"),
    (["RolloutStarted", "Promoted", "BakeStarted", "BakeCompleted"], "Promoted"),
    (["RolloutStarted", "Promoted", "BakeStarted", "RolledBack"], "BakeFailed"),
    (["RolloutStarted", "StepStarted", "RolledBack"], "RolledBack"),
    (["RolloutStarted", "PromotionStarted", "Aborted"], "Aborted"),
    (["RolloutStarted", "AwaitingApproval", "Rejected"], "Rejected"),
    (["RolloutStarted", "RolloutCancelled"], "Cancelled"),
    (["RolloutStarted", "StepStarted", "CandidateReplaced"], "Replaced"),
    (["CandidateReplaced", "StepStarted", "Promoted"], "Promoted"),
    (["Retried", "RolloutStarted", "StepStarted"], "Unknown"),
    (["AwaitingApproval", "Approved", "Updated"], "Updated"),
    (["Deployed"], "Deployed"),
])
def test_outcomes(events: list[str], outcome: str) -> None:
    assert outcome_of(events, is_open=False) == outcome
    assert outcome_of(events, is_open=True) == "InProgress"


def test_a_rejection_before_the_rollout_began_is_a_record_of_its_own() -> None:
    """spec.governance with no rollout steps: the candidate waits for approvals, an approver rejects it."""
    t, cluster = Timeline(), Cluster()
    cluster.sync(t.deploy())
    cluster.sync(t.reconcile(("AwaitingApproval", R2)))
    rejection = {"approval": {"name": "x", "approver": "dave", "role": "risk", "decision": "reject", "comment": "no"}}
    status = t.reconcile(("Rejected", R2, rejection))
    cluster.sync(status)
    rejected = cluster.records()[-1]
    assert [d["event"] for d in rejected["decisions"]] == ["AwaitingApproval", "Rejected"]
    assert rejected["outcome"] == "Rejected" and rejected["startedAt"] == t.now()
    assert [a["approver"] for a in rejected["approvals"]] == ["dave"] and rejected["approvals"][0]["decision"] == "reject"
    # The window moves on (the AwaitingApproval leaves it): the record is still found, not made again.
    for i in range(25):
        cluster.sync(t.reconcile(("DataDrift", R1)))
    assert len(cluster.records()) == 2 and cluster.records()[-1]["decisions"] == rejected["decisions"]


def test_retention_keeps_the_newest_and_never_brings_a_pruned_record_back() -> None:
    t, cluster = Timeline(), Cluster()
    cluster.sync(t.deploy(), keep=2)
    for revision in (R2, R3, "4444444444"):
        cluster.sync(t.start(revision), keep=2)
        cluster.sync(t.end(("RolledBack", revision)), keep=2)
    assert [r["revision"] for r in cluster.records()] == [R3, "4444444444"]
    # Every earlier rollout is still in status.history: planning again creates nothing, deletes nothing.
    writes = cluster.writes
    for _ in range(3):
        assert not cluster.sync(t.status(), keep=2)
    assert cluster.writes == writes
    # A rollout in progress is never deleted, even beyond the limit.
    cluster.sync(t.start("5555555555"), keep=1)
    assert [r["outcome"] for r in cluster.records()] == ["InProgress"]


def test_records_of_another_modeldeployment_of_the_same_name_are_left_alone() -> None:
    """A ModelDeployment deleted and created again: the old one's records (until the garbage collector
    removes them) are neither continued nor counted nor deleted."""
    old, cluster = Timeline(clock=START - timedelta(days=1)), Cluster()
    cluster.sync(old.deploy(), uid="the-deleted-one")
    t = Timeline()
    cluster.sync(t.deploy(), keep=1)
    cluster.sync(t.start(R2), keep=1)
    assert [(r["modelDeploymentUID"], r["outcome"]) for r in cluster.records()] == [("the-deleted-one", "Deployed"), (UID, "InProgress")]


def test_a_rollout_that_began_before_records_were_written_is_recorded_from_what_status_still_holds() -> None:
    t, cluster = Timeline(), Cluster()
    t.deploy()
    t.start(R2)
    for _ in range(12):
        t.reconcile(("StepStarted", R2), ("StepCompleted", R2))
    cluster.sync(t.status())  # the first record write: RolloutStarted has left the 20 newest
    (record,) = cluster.records()
    assert t.rollout is not None and record["startedAt"] == t.rollout.started_at
    assert record["outcome"] == "InProgress" and record["incomplete"]
    assert [d["event"] for d in record["decisions"]] == [e.event for e in t.history]


def test_decisions_lost_to_the_window_are_said_to_be_missing() -> None:
    t, cluster = Timeline(), Cluster()
    cluster.sync(t.deploy())
    cluster.sync(t.start(R2))
    for _ in range(15):  # 30 decisions while no record was written
        t.reconcile(("StepStarted", R2), ("StepCompleted", R2))
    cluster.sync(t.status())
    record = cluster.records()[1]
    assert "may be missing" in record["incomplete"]
    assert record["decisions"][0]["event"] == "RolloutStarted" and len(record["decisions"]) == 1 + 20


def test_bounds_keep_the_first_decision_and_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec, "MAX_DECISIONS", 6)
    t, cluster = Timeline(), Cluster()
    cluster.sync(t.deploy())
    cluster.sync(t.start(R2))
    for _ in range(10):
        cluster.sync(t.reconcile(("StepStarted", R2)))
    record = cluster.records()[1]
    assert [d["event"] for d in record["decisions"]] == ["RolloutStarted"] + ["StepStarted"] * 5
    assert record["decisions"][-1]["time"] == t.now() and record["dropped"] == 5
    assert not cluster.sync(t.status())  # what was dropped is not added back from status.history


def test_oversized_messages_and_evidence_are_cut_within_the_crd_bounds() -> None:
    big = entry("2024-05-01T12:00:00Z", "RolloutStarted", R2, message="x" * 10_000, evidence={"blob": "y" * 100_000})
    decision = rec.to_decision(big)
    assert len(decision.message) == 4096 and decision.message.endswith("…")
    assert decision.evidence is not None and "omitted" in decision.evidence


def test_the_walk_reads_history_as_a_sequence() -> None:
    h = [entry("t1", "DataDrift", R1), entry("t2", "RolloutStarted", R2), entry("t3", "StepStarted", R2),
         entry("t4", "CandidateReplaced", R3), entry("t5", "RolloutCancelled", R3), entry("t5", "ControlIgnored", None),
         entry("t6", "SpecRejected", None)]
    out = assign(h)
    assert {k: [e.event for e in v] for k, v in out.items()} == {
        RolloutKey("t2", R2): ["RolloutStarted", "StepStarted", "CandidateReplaced"],
        RolloutKey("t4", R3): ["CandidateReplaced", "RolloutCancelled", "ControlIgnored"],
    }
    # Open before the window: its decisions continue it.
    assert [e.event for e in assign(h[2:3], initial=RolloutKey("t2", R2))[RolloutKey("t2", R2)]] == ["StepStarted"]


def test_record_names_are_the_rollouts() -> None:
    assert record_name("fraud", RolloutKey("2024-05-01T12:00:05Z", R2)) == f"fraud-{R2}-20240501-120005"
    long = record_name("m" * 253, RolloutKey("2024-05-01T12:00:05Z", R2))
    assert len(long) == 253 and long.endswith(f"-{R2}-20240501-120005")


def test_every_subset_of_record_writes_gives_the_same_records_for_a_short_life() -> None:
    """Exhaustively: 2^7 ways for the record writes of a rollout with a bake to happen or not."""
    t = Timeline()
    statuses = [t.deploy(), t.start(R2), t.reconcile(("StepStarted", R2))]
    t.bake = BakeStatus(revision=R2, bento=V2.bento, since="x", until="y", rollout=t.rollout.started_at if t.rollout else None)
    t.previous, t.stable = V1, V2
    statuses.append(t.end(("PromotionStarted", R2), ("Promoted", R2), ("BakeStarted", R2)))
    statuses.append(t.reconcile(("BakeBaselineStarted", R2)))
    t.bake = None
    statuses.append(t.reconcile(("BakeCompleted", R2), ("DataDrift", R2)))
    statuses.append(t.reconcile(("DataDrift", R2)))
    reference = None
    for mask in itertools.product((False, True), repeat=len(statuses)):
        cluster = Cluster()
        for write, status in zip(mask, statuses):
            if write:
                cluster.sync(status)
        cluster.sync(t.status())
        got = (cluster.decisions(), [r["outcome"] for r in cluster.records()])
        reference = reference or got
        assert got == reference, mask
    assert reference is not None and reference[1] == ["Deployed", "Promoted"]
    # The drift seen in the reconcile that completed the bake is part of it; the next one's is not.
    assert [e for _, e, _ in reference[0][1]][-2:] == ["BakeCompleted", "DataDrift"]


def test_rollouts_that_began_in_the_same_second_are_ordered_by_their_end() -> None:
    """Times are to the second: a first version deployed and its first rollout begun within one second.
    Retention deletes the one that ended first, whatever the revisions' hashes say."""
    for revision in ("0000000000", "ffffffffff"):  # both sides of the first version's revision
        t, cluster = Timeline(), Cluster()
        cluster.sync(t.deploy(), keep=2)
        t.clock -= timedelta(seconds=5)  # the rollout begins in the same second
        cluster.sync(t.start(revision), keep=2)
        cluster.sync(t.end(("RolledBack", revision)), keep=1)
        assert [r["revision"] for r in cluster.records()] == [revision], revision


def test_a_beginning_claims_only_its_retry_approvals_and_its_own_reconcile() -> None:
    h = [entry("t1", "ExperimentDecided", R2), entry("t2", "AwaitingApproval", R2), entry("t3", "Approved", R2),
         entry("t3", "StepHeld", R2), entry("t4", "DataDrift", R2), entry("t5", "Retried", R2), entry("t5", "RolloutStarted", R2)]
    assert [e.event for e in assign(h)[RolloutKey("t5", R2)]] == ["AwaitingApproval", "Approved", "Retried", "RolloutStarted"]
