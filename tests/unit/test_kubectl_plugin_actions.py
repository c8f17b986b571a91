"""``kubectl headway`` actions: the annotation each one writes, and what it tells the user, in each state.

The states are the planner-made objects of test_kubectl_plugin.py. A refused action is one the
operator would ignore (planning/controls.py, rollout.py): the test names why. The command itself
runs here with a fake API client (no server): a dry run writes nothing, a conflict re-reads, and a
watch prints one block per change and stops when the object is deleted.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from headway.kubectl_plugin import actions, command
from headway.kubectl_plugin.actions import Refused, approval_name, plan_approval, plan_control
from headway.kubectl_plugin.kube import ConfigError, KubeError, Target, connect
from headway.planning.controls import bind, pending
from headway.planning.observe import parse_status
from tests.unit.test_kubectl_plugin import CASES, DIGEST, Case

REV = "5d8bcc5ca5"  # fraud_scorer:2.0.0's revision in every case


def case(name: str) -> Case:
    return CASES[name]()


def act(name: str, action: str) -> actions.Action:
    c = case(name)
    return plan_control(c.obj, action, c.now)


def refusal(name: str, action: str) -> str:
    c = case(name)
    with pytest.raises(Refused) as exc:
        plan_control(c.obj, action, c.now)
    return str(exc.value)


def annotations(a: actions.Action) -> dict[str, Any]:
    assert a.patch is not None
    return dict(a.patch["metadata"]["annotations"])


# --- what each action says and writes -------------------------------------------------------------


def test_promote_step_names_the_step_it_leaves_and_the_one_it_enters() -> None:
    a = act("canary-passing", "promote-step")
    assert annotations(a) == {"headway.dev/promote-step": REV}
    assert a.message == ("promote-step: fraud-scorer leaves step 2/4 (canary 10%), 1m45s before its end for step 3/4 "
                         "(a manual gate: stable=90 candidate=10)")
    assert act("manual-gate", "promote-step").message == \
        "promote-step: fraud-scorer leaves step 3/4 (a manual gate) for step 4/4 (canary 50%: stable=50 candidate=50)"


def test_promote_step_waits_for_a_paused_or_unstarted_step() -> None:
    assert act("paused-annotation", "promote-step").message == (
        "promote-step: the rollout is paused at step 2/4 (canary 10%): once resumed, fraud-scorer leaves it for step 3/4 "
        "(a manual gate: stable=90 candidate=10)")
    assert refusal("deferred-promote-step", "promote-step").startswith(
        "promote-step: one is already waiting for fraud_scorer:2.0.0 (set 5d8bcc5ca5, waiting since 2026-11-22T12:01:20Z)")


def test_promote_abort_and_retry_say_what_the_operator_does() -> None:
    assert act("shadow-evidence", "promote").message == (
        "promote: fraud-scorer skips step 1/4 (shadow 50%) and the 3 steps after it; stable rolls to fraud_scorer:2.0.0 now, "
        "then the candidate is removed")
    assert "once fraud_scorer:2.0.0 has a ready pod (none yet)" in act("deferred-promote-step", "promote").message
    assert act("canary-passing", "abort").message == (
        "abort: fraud-scorer sends all traffic back to stable fraud_scorer:1.0.0; fraud_scorer:2.0.0 goes to 0 replicas and is "
        "marked rolled back (Aborted) until spec.model changes or kubectl headway retry")
    assert act("promoting", "abort").message.startswith(
        "abort: the promotion of fraud_scorer:2.0.0 stops: stable goes back to fraud_scorer:1.0.0")
    retry = act("rolled-back", "retry")
    assert annotations(retry) == {"headway.dev/retry": REV}
    assert retry.message == "retry: fraud-scorer rolls fraud_scorer:2.0.0 out again from step 1/4 (shadow 50%); it was rolled back for FailedAnalysis"


@pytest.mark.parametrize(("name", "action", "why"), [
    ("succeeded", "promote", "promote: no rollout is in progress (phase Succeeded): the operator would ignore it"),
    ("succeeded", "retry", "retry: nothing is rolled back (phase Succeeded): the operator would ignore it"),
    ("no-status", "abort", "abort: fraud-scorer has no status yet (the operator has not reconciled it): nothing rolls out"),
    ("rolled-back", "promote-step", "promote-step: fraud_scorer:2.0.0 was rolled back (FailedAnalysis), nothing rolls out: "
                                    "use kubectl headway retry to roll it out again"),
    ("promoting", "promote", "promote: fraud-scorer is already promoting fraud_scorer:2.0.0 (no step left to pass); "
                             "the operator would ignore it"),
    ("bake", "abort", "abort: fraud_scorer:2.0.0 is promoted and baking until 2026-11-22T12:12:50Z, not rolling out: the "
                      "operator ignores abort during the bake (a breach shown against fraud_scorer:1.0.0 restores it); to go "
                      "back now, set spec.model to fraud_scorer:1.0.0 in git"),
    ("experiment", "promote-step", "promote-step: fraud-scorer runs an experiment, which has no rollout steps: the operator would ignore it"),
    ("experiment", "pause", "pause: fraud-scorer runs an experiment, which has no rollout steps to pause: the operator would ignore it"),
])
def test_actions_the_operator_would_ignore_are_refused_with_the_reason(name: str, action: str, why: str) -> None:
    assert refusal(name, action) == why


def test_pause_and_resume_set_and_remove_the_annotation() -> None:
    pause = act("canary-passing", "pause")
    assert annotations(pause) == {"headway.dev/paused": "true"}
    assert pause.message == ("pause: fraud-scorer stops at step 2/4 (canary 10%) with 1m45s left; its clock stops and traffic "
                             "stays stable=90 candidate=10 until kubectl headway resume")
    assert act("manual-gate", "pause").message == ("pause: fraud-scorer holds at step 3/4 (a manual gate) with traffic "
                                                   "stable=90 candidate=10: a promote-step waits until kubectl headway resume")
    resume = act("paused-annotation", "resume")
    assert annotations(resume) == {"headway.dev/paused": None}  # a merge patch's null removes it
    assert resume.message == "resume: fraud-scorer continues step 2/4 (canary 10%) with 1m20s left"
    # Nothing to change: no patch, and words that say so.
    assert act("paused-annotation", "pause").patch is None
    assert act("canary-passing", "resume") == actions.Action(None, "resume: fraud-scorer is not paused by headway.dev/paused: nothing to change")


def test_resume_cannot_undo_spec_paused_from_git() -> None:
    c = case("canary-passing")
    c.obj["spec"]["paused"] = True
    with pytest.raises(Refused, match="paused by spec.paused: true \\(git\\), not by headway.dev/paused: set spec.paused to false there"):
        plan_control(c.obj, "resume", c.now)
    assert plan_control(c.obj, "pause", c.now).patch is None


# --- the value binds the control to the candidate ------------------------------------------------------


def test_the_value_is_one_the_operator_binds_to_the_candidate_and_acts_on() -> None:
    """The written value names the candidate: the operator's own bind() keeps it for this rollout, and
    treats it as pending (not handled yet); the next request alternates to the bento tag, so a second
    promote-step for the same candidate is a new value that acts again."""
    c = case("canary-passing")
    status = parse_status(c.obj["status"])
    value = annotations(plan_control(c.obj, "promote-step", c.now))["headway.dev/promote-step"]
    todo = pending({"headway.dev/promote-step": value}, status.controls)
    active, ignored, _ = bind(todo, status, REV, "fraud_scorer:2.0.0")
    assert (active, ignored) == ({"promote-step": REV}, {})
    # The operator handled it: the next request writes the bento tag, which binds the same way.
    c.obj["metadata"]["annotations"] = {"headway.dev/promote-step": REV}
    c.obj["status"]["controls"] = {"promote-step": REV}
    again = annotations(plan_control(c.obj, "promote-step", c.now))["headway.dev/promote-step"]
    assert again == "fraud_scorer:2.0.0"
    handled = parse_status(c.obj["status"])
    assert bind(pending({"headway.dev/promote-step": again}, handled.controls), handled, REV, "fraud_scorer:2.0.0")[:2] == (
        {"promote-step": "fraud_scorer:2.0.0"}, {})
    # ... and a candidate git replaces meanwhile is not what it names: the operator ignores it.
    assert bind({"promote-step": REV}, handled, "0123456789", "fraud_scorer:2.1.0")[1] == {
        "promote-step": "it names 5d8bcc5ca5, but spec.model is fraud_scorer:2.1.0 (0123456789)"}


def test_a_control_not_handled_yet_is_not_written_again() -> None:
    c = case("canary-passing")
    c.obj["metadata"]["annotations"] = {"headway.dev/abort": "1700000000"}
    with pytest.raises(Refused, match=r"abort: one is already set \(headway.dev/abort=1700000000\) and the operator has not handled"):
        plan_control(c.obj, "abort", c.now)


def test_a_spec_the_operator_has_not_seen_is_noted() -> None:
    c = case("canary-passing")
    c.obj["metadata"]["generation"] = 3
    assert plan_control(c.obj, "promote", c.now).notes == (
        "note: the operator has not acted on the latest spec yet (generation 3, status of 2); the control names the version "
        "shown, and is ignored if git now asks for another one",)


def test_missing_approvals_are_noted_on_promote() -> None:
    notes = act("awaiting-approval", "promote").notes
    assert notes == ("note: approvals are still missing (risk x2): the operator passes a stage that needs them only once they "
                     "are given (kubectl headway approve)",)


# --- approvals -------------------------------------------------------------------------------------------


def test_approve_builds_the_model_approval_for_the_candidate_and_the_frozen_evidence() -> None:
    c = case("awaiting-approval")
    body, message = plan_approval(c.obj, "approve", "risk", "carol", "PSI within bounds", c.now)
    assert body == {"apiVersion": "serving.headway.dev/v1alpha1", "kind": "ModelApproval",
                    "metadata": {"name": f"fraud-scorer-{REV}-risk-carol", "namespace": "ml"},
                    "spec": {"modelDeployment": "fraud-scorer", "revision": REV, "evidenceDigest": DIGEST, "role": "risk",
                             "approver": "carol", "decision": "approve", "comment": "PSI within bounds"}}
    assert message == (f"approve: carol approves fraud_scorer:2.0.0 ({REV}) as risk on the evidence 9b2c6f0e4d1a frozen 50s ago; "
                       "still needed after it: risk x1")
    assert plan_approval(c.obj, "approve", "ml-lead", "bob", None, c.now)[1].endswith(
        "note that ml-lead is not among the roles still needed (risk)")
    assert plan_approval(c.obj, "reject", "risk", "carol", None, c.now)[1] == (
        f"reject: carol rejects fraud_scorer:2.0.0 ({REV}) as risk: the operator aborts its rollout (RolledBack, reason Rejected)")


@pytest.mark.parametrize(("name", "why"), [
    ("succeeded", "approve: fraud-scorer has no candidate (phase Succeeded): nothing to decide on"),
    ("canary-passing", "approve: fraud-scorer asks for no approval of fraud_scorer:2.0.0 (5d8bcc5ca5): status.governance has no "
                       "evidence digest (no spec.governance, or the rollout has not reached a stage that needs approvals)"),
    ("rejected", "approve: fraud_scorer:2.0.0 was rolled back (Rejected): nothing waits for approvals; after kubectl headway retry "
                 "the new rollout asks again, on its own evidence"),
])
def test_approve_is_refused_with_nothing_to_decide_on(name: str, why: str) -> None:
    c = case(name)
    with pytest.raises(Refused) as exc:
        plan_approval(c.obj, "approve", "risk", "carol", None, c.now)
    assert str(exc.value) == why


def test_approve_names_the_flag_of_a_bad_value() -> None:
    c = case("awaiting-approval")
    with pytest.raises(Refused, match=r"^--role: String should match pattern"):
        plan_approval(c.obj, "approve", "Risk Officers", "carol", None, c.now)
    with pytest.raises(Refused, match=r"^--comment: String should have at most 1024 characters"):
        plan_approval(c.obj, "approve", "risk", "carol", "x" * 1025, c.now)


def test_approval_names_follow_the_convention_and_are_valid_for_any_user_name() -> None:
    assert approval_name("fraud-scorer", REV, "risk", "carol") == f"fraud-scorer-{REV}-risk-carol"
    assert approval_name("fraud-scorer", REV, "risk", "oidc:Carol@Example.com") == f"fraud-scorer-{REV}-risk-oidc-carol-example.com"
    assert len(approval_name("m" * 200, REV, "risk", "u" * 200)) == 240


# --- the command, with a fake API --------------------------------------------------------------------------


class FakeClient:
    """Answers as the API would: the object, a conflict when told, a watch of queued events."""

    def __init__(self, obj: dict[str, Any], conflicts: int = 0, events: list[dict[str, Any]] | None = None) -> None:
        self.obj, self.conflicts, self.events = obj, conflicts, events or []
        self.patches: list[dict[str, Any]] = []
        self.gets = 0

    def get_model_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return self.obj

    def patch_model_deployment(self, namespace: str, name: str, patch: dict[str, Any], field_manager: str) -> dict[str, Any]:
        assert field_manager == "kubectl-headway"
        if self.conflicts:
            self.conflicts -= 1
            raise KubeError(409, "Conflict", "the object has been modified")
        self.patches.append(patch)
        return self.obj

    def list_approvals(self, namespace: str) -> list[dict[str, Any]]:
        return []

    def watch_model_deployment(self, namespace: str, name: str, resource_version: str) -> Iterator[dict[str, Any]]:
        yield from self.events


def run(client: FakeClient, *argv: str, now: datetime) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def connect(target: Target) -> tuple[Any, str]:
        assert target == Target(None, None, "ml")
        return client, "ml"

    code = command.run(list(argv), out, err, lambda: now, connect)
    return code, out.getvalue(), err.getvalue()


def with_rv(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["resourceVersion"] = "41"
    return obj


def test_dry_run_writes_nothing_and_a_conflict_reads_the_object_again() -> None:
    c = case("canary-passing")
    client = FakeClient(with_rv(c.obj), conflicts=1)
    code, out, _ = run(client, "promote-step", "md/fraud-scorer", "-n", "ml", "--dry-run", now=c.now)
    assert code == 0 and out.endswith("(dry run: nothing written)\n") and client.patches == []
    code, out, _ = run(client, "-n", "ml", "promote-step", "fraud-scorer", now=c.now)
    assert code == 0 and out.startswith("promote-step: fraud-scorer leaves step 2/4")
    assert client.gets == 3  # the dry run, the conflicting read, the read after the conflict
    assert client.patches == [{"metadata": {"annotations": {"headway.dev/promote-step": REV}, "resourceVersion": "41"}}]


def test_a_refused_action_exits_1_and_bad_usage_exits_2() -> None:
    c = case("succeeded")
    assert run(FakeClient(c.obj), "retry", "md/fraud-scorer", "-n", "ml", now=c.now) == (
        1, "", "error: retry: nothing is rolled back (phase Succeeded): the operator would ignore it\n")
    assert run(FakeClient(c.obj), "get", "deploy/fraud-scorer", "-n", "ml", now=c.now) == (
        2, "", "error: 'deploy' is not a ModelDeployment: kubectl headway works on md/NAME (modeldeployments.serving.headway.dev)\n")


def test_watch_prints_a_block_per_change_when_stdout_is_not_a_terminal() -> None:
    first, second = case("canary-passing"), case("manual-gate")
    changed = with_rv(second.obj)
    client = FakeClient(with_rv(first.obj), events=[{"type": "MODIFIED", "object": changed}, {"type": "DELETED", "object": changed}])
    code, out, err = run(client, "get", "md/fraud-scorer", "--watch", "-n", "ml", now=second.now)
    assert (code, err) == (0, "")
    blocks = out.split("Name:          fraud-scorer\n")
    assert len(blocks) == 3 and blocks[0] == ""  # the first drawing, then one per change
    assert "  Step:        2/4 canary 10% 2m" in blocks[1] and "  Step:        3/4 pause (manual gate)" in blocks[2]
    assert out.endswith("modeldeployment.serving.headway.dev/fraud-scorer deleted\n")
    assert "\x1b[" not in out  # neither colour nor screen clearing in a pipe


def test_kubeconfig_files_merge_and_the_namespace_comes_from_the_chosen_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$KUBECONFIG with two files joined by ':' merges them as kubectl does (the first current-context wins),
    --context picks one, -n wins over its namespace."""

    def kubeconfig(path: Path, context: str, server: str, namespace: str) -> str:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": server}}],
            "users": [{"name": context, "user": {"token": f"token-{context}"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}]}))
        return str(path)

    first = kubeconfig(tmp_path / "a", "prod", "https://prod.example.com", "ml")
    second = kubeconfig(tmp_path / "b", "staging", "https://staging.example.com", "ml-staging")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    client, namespace = connect(Target(None, None, None))
    assert namespace == "ml" and client._api.configuration.host == "https://prod.example.com"
    client, namespace = connect(Target(None, "staging", None))
    assert namespace == "ml-staging" and client._api.configuration.host == "https://staging.example.com"
    assert connect(Target(second, None, "other"))[1] == "other"
    with pytest.raises(ConfigError, match="nope"):
        connect(Target(None, "nope", None))
