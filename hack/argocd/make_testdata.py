#!/usr/bin/env python3
"""Write the testdata of the Argo CD health check and actions from the operator's own planner.

Every ModelDeployment under ``serving.headway.dev/ModelDeployment/testdata/`` and
``.../actions/testdata/`` carries a status that ``headway.planning.plan.plan()`` derived, reconcile
after reconcile, from a spec, the control annotations and what the Deployments report (the
Deployments converge on what each plan asked for, as in tests/unit/planning/rollout_cases.py).
Nothing in a status is written by hand, so the Lua is tested against what the operator really
writes; tests/unit/test_argocd_lua.py checks that the committed files are what this script
produces, so they never rot when the planner changes.

    .venv/bin/python hack/argocd/make_testdata.py          # rewrite the files
    .venv/bin/python hack/argocd/make_testdata.py --check  # exit 1 if a file differs

Every object is the planner's, as is (``suspended_awaitingApproval.yaml`` too: a rollout under
spec.governance that waits for approvals before its first canary step).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))

from headway.api.spec import ModelSpec  # noqa: E402
from headway.api.status import ModelDeploymentStatus  # noqa: E402
from headway.planning.analysis import Gate  # noqa: E402
from headway.planning.measure import Judgement  # noqa: E402
from headway.planning.naming import Owner, VariantWorkload, revision_of  # noqa: E402
from headway.planning.observe import DeploymentState, Observation, parse_status  # noqa: E402
from headway.planning.plan import Plan, plan  # noqa: E402

HERE = Path(__file__).resolve().parent / "serving.headway.dev" / "ModelDeployment"
HEALTH_DATA = HERE / "testdata"
ACTION_DATA = HERE / "actions" / "testdata"

OWNER = Owner("fraud-scorer", "ml", "uid-1")
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
ACTION_TIME = 1795348800
"""What ``os.time()`` returns in the action tests (2026-11-22T12:00:00Z): the harness fixes the
clock, Argo CD's sandbox gives the real one."""
TRACKING = {"argocd.argoproj.io/tracking-id": "fraud-scorer:serving.headway.dev/ModelDeployment:ml/fraud-scorer"}
GATEWAY = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
STEPS: list[dict[str, Any]] = [
    {"shadow": {"percent": 50, "duration": "1m"}},
    {"canary": {"weight": 10, "duration": "2m"}},
    {"pause": {}},
    {"canary": {"weight": 50, "duration": "1m"}},
]


def model(version: str) -> dict[str, Any]:
    return {"bento": f"fraud_scorer:{version}", "image": f"registry.example.com/fraud-scorer:{version}"}


def rollout_spec(version: str, steps: list[dict[str, Any]] | None = STEPS) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": model(version), "replicas": 4, "traffic": GATEWAY}
    if steps is not None:
        spec["rollout"] = {"steps": steps}
    return spec


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def deployment_state(w: VariantWorkload, ready: int | None = None, deadline: bool = False) -> DeploymentState:
    """A Deployment that has converged on ``w`` (``ready`` fewer: not yet; ``deadline``: it gave up)."""
    ready = w.replicas if ready is None else ready
    return DeploymentState(
        exists=True, revision=revision_of(w.model), replicas=w.replicas, ready_replicas=ready, available_replicas=ready,
        current_available=ready, available=ready > 0 or w.replicas == 0, complete=ready == w.replicas and not deadline,
        deadline_exceeded=deadline, message=("progress deadline exceeded" if deadline else f"{ready}/{w.replicas} replicas ready"),
    )


@dataclass
class Cluster:
    """One ModelDeployment and its Deployments; each reconcile commits the planned status through its wire form."""

    spec: dict[str, Any]
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    live: dict[str, DeploymentState] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # variants whose pods never become ready
    stuck: set[str] = field(default_factory=set)  # variants whose Deployment exceeds its progress deadline
    frozen: bool = False  # the Deployments stop converging (their controller has not caught up)
    committed: bool = False  # a status has been written (an object with no status yet has none)

    def reconcile(self, seconds: float, gate: Gate | None = None) -> Plan:
        obs = Observation(raw_spec=self.spec, generation=self.generation, annotations=dict(self.annotations),
                          previous=self.status, live=dict(self.live))
        result = plan(OWNER, obs, at(seconds), Judgement(gate=gate))
        self.status = parse_status(result.status.dump())
        assert self.status == result.status, "status does not survive its wire form"
        self.committed = True
        if result.workloads is not None and not self.frozen:
            live = {}
            for w in result.workloads:
                ready = 0 if w.variant in self.broken or w.variant in self.stuck else None
                live[w.variant] = deployment_state(w, ready, deadline=w.variant in self.stuck)
            for variant in result.keep:
                if variant in self.live:
                    live[variant] = self.live[variant]
            self.live = live
        return result

    def run(self, *seconds: float) -> Cluster:
        for s in seconds:
            self.reconcile(s)
        return self

    def git(self, spec: dict[str, Any]) -> Cluster:
        """A new spec from git: the API server bumps metadata.generation."""
        self.spec, self.generation = spec, self.generation + 1
        return self

    def annotate(self, control: str, value: str | None) -> Cluster:
        if value is None:
            self.annotations.pop("headway.dev/" + control, None)
        else:
            self.annotations["headway.dev/" + control] = value
        return self

    def obj(self, extra_annotations: dict[str, str] | None = None) -> dict[str, Any]:
        annotations = {**(extra_annotations or {}), **self.annotations}
        metadata: dict[str, Any] = {"name": OWNER.name, "namespace": OWNER.namespace, "generation": self.generation}
        if annotations:
            metadata["annotations"] = annotations
        out: dict[str, Any] = {"apiVersion": "serving.headway.dev/v1alpha1", "kind": "ModelDeployment", "metadata": metadata,
                               "spec": self.spec}
        if self.committed:
            out["status"] = self.status.dump()
        return out


def serving(version: str = "1.0.0", steps: list[dict[str, Any]] | None = STEPS) -> Cluster:
    """The first version deployed and available (Succeeded)."""
    return Cluster(spec=rollout_spec(version, steps)).run(0, 1)


def rolling_out(*seconds: float) -> Cluster:
    """serving(1.0.0), then git asks for 2.0.0 at t=60, reconciled at ``seconds``."""
    return serving().git(rollout_spec("2.0.0")).run(60, *seconds)


# The rollout: shadow 50% 1m (t=70..130) -> canary 10% 2m (130..250) -> manual gate (250) -> canary 50% 1m -> promotion.
def _no_status() -> Cluster:
    return Cluster(spec=rollout_spec("1.0.0"))


def _pending() -> Cluster:
    c = Cluster(spec=rollout_spec("1.0.0"))
    c.frozen = True  # the Deployment is not created yet when the first status is written
    return c.run(0)


def _pending_not_ready() -> Cluster:
    c = Cluster(spec=rollout_spec("1.0.0"), broken={"stable"})
    return c.run(0, 1)


def _stale_generation() -> Cluster:
    c = serving()
    c.generation += 1  # git changed the spec; the operator has not seen it yet
    return c


def _progressing_waiting() -> Cluster:
    c = serving().git(rollout_spec("2.0.0"))
    c.frozen = True
    return c.run(60)


def _promoting() -> Cluster:
    c = rolling_out(70, 130, 140, 250, 1000).annotate("promote-step", "1795436200").run(1010, 1020, 1079)
    c.frozen = True  # the stable Deployment has not rolled to 2.0.0 yet
    return c.run(1080)


def _paused_annotation() -> Cluster:
    return rolling_out(70, 130, 140).annotate("paused", "true").run(150)


def _aborted() -> Cluster:
    return rolling_out(70, 130, 140).annotate("abort", "1795436000").run(150)


def _failed_analysis() -> Cluster:
    c = rolling_out(70, 130, 140)
    c.reconcile(200, Gate(result="Fail", message="errorRate 4.1% > 1% (p=0.002)", rollback=True))
    return c


def _candidate_unavailable() -> Cluster:
    c = rolling_out(70, 130, 140)
    c.broken.add("candidate")
    c.live["candidate"] = DeploymentState(exists=True, revision=c.live["candidate"].revision, replicas=1, message="0/1 replicas ready")
    return c.run(150)


def _invalid_spec() -> Cluster:
    return serving().git({**rollout_spec("1.0.0"), "model": {**model("2.0.0"), "image": "Not A Reference"}}).run(60)


def _stable_unavailable() -> Cluster:
    c = serving()
    c.broken.add("stable")
    c.live["stable"] = DeploymentState(exists=True, revision=c.live["stable"].revision, replicas=4, message="0/4 replicas ready")
    return c.run(60)


def _failed_deadline() -> Cluster:
    return Cluster(spec=rollout_spec("1.0.0"), stuck={"stable"}).run(0, 1)


def _failed_invalid_first_spec() -> Cluster:
    return Cluster(spec={**rollout_spec("1.0.0"), "model": {**model("1.0.0"), "image": "UPPER"}}).run(0)


def _awaiting_approval() -> Cluster:
    governed = {**rollout_spec("2.0.0"), "governance": {"requiredApprovals": [{"role": "ml-lead", "stage": "BeforeFirstCanary"}]}}
    return serving().git(governed).run(60, 70, 130)  # the shadow minute has passed: ml-lead must approve the canary


@dataclass(frozen=True)
class Case:
    file: str
    make: Callable[[], Cluster]
    phase: str | None  # the phase the planner must have produced (None: no status)
    header: str = ""  # a comment at the top of the file
    extra_annotations: dict[str, str] | None = None


HEALTH: tuple[Case, ...] = (
    Case("progressing_noStatus.yaml", _no_status, None, "Just created: the operator has not written a status yet."),
    Case("progressing_pending.yaml", _pending, "Pending", "First version: its Deployment does not exist yet."),
    Case("progressing_pendingNotReady.yaml", _pending_not_ready, "Pending", "First version: no pod ready yet."),
    Case("healthy_succeeded.yaml", lambda: serving(), "Succeeded", "Steady: one version serving all traffic."),
    Case("progressing_staleGeneration.yaml", _stale_generation, "Succeeded",
         "git changed the spec (metadata.generation 2) and the operator has not acted on it (status.observedGeneration 1)."),
    Case("progressing_waitingForCandidate.yaml", _progressing_waiting, "Progressing", "A rollout began: the candidate is not ready for step 1 yet."),
    Case("progressing_shadowStep.yaml", lambda: rolling_out(70), "Progressing", "Step 1/4: shadow 50%."),
    Case("progressing_canaryStep.yaml", lambda: rolling_out(70, 130, 140), "Progressing", "Step 2/4: canary 10%."),
    Case("progressing_noSteps.yaml", lambda: serving(steps=None).git(rollout_spec("2.0.0", None)).run(60), "Progressing",
         "No rollout steps: the stable Deployment rolls to the new model."),
    Case("suspended_manualGate.yaml", lambda: rolling_out(70, 130, 140, 250), "Paused", "Step 3/4: a manual gate (pause: {})."),
    Case("suspended_pausedAnnotation.yaml", _paused_annotation, "Paused", "Paused with the headway.dev/paused annotation at step 2/4.",
         TRACKING),
    Case("suspended_awaitingApproval.yaml", _awaiting_approval, "AwaitingApproval",
         "spec.governance: after the shadow step, the rollout waits for an ml-lead approval before the first canary."),
    Case("progressing_promoting.yaml", _promoting, "Promoting", "The last step passed: the stable Deployment rolls to 2.0.0."),
    Case("degraded_rolledBackAborted.yaml", _aborted, "RolledBack", "Aborted with headway.dev/abort at step 2/4."),
    Case("degraded_rolledBackFailedAnalysis.yaml", _failed_analysis, "RolledBack", "Rolled back by the analysis at step 2/4."),
    Case("degraded_candidateUnavailable.yaml", _candidate_unavailable, "Degraded", "The candidate lost its pods at step 2/4: holding on stable."),
    Case("degraded_invalidSpec.yaml", _invalid_spec, "Degraded", "git asks for an invalid spec; the previous version keeps serving."),
    Case("degraded_stableUnavailable.yaml", _stable_unavailable, "Degraded", "The stable Deployment lost its pods after it had served."),
    Case("degraded_failedDeadline.yaml", _failed_deadline, "Failed", "The first version never became available (ProgressDeadlineExceeded)."),
    Case("degraded_failedInvalidSpec.yaml", _failed_invalid_first_spec, "Failed", "The first spec is invalid: nothing deployed."),
)


def _annotated(control: str, value: str | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What an action should return: the object with one annotation set (None: removed)."""
    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        meta = dict(obj["metadata"])
        annotations = dict(meta.get("annotations") or {})
        if value is None:
            annotations.pop("headway.dev/" + control, None)
        else:
            annotations["headway.dev/" + control] = value
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        return {**obj, "metadata": meta}
    return apply


STAMP = str(ACTION_TIME)

# (action, input case, output file, what the output is): inputs are copied into actions/testdata.
ACTIONS: tuple[tuple[str, Case, str, Callable[[dict[str, Any]], dict[str, Any]]], ...] = (
    ("promote", HEALTH[7], "canaryStep_promoted.yaml", _annotated("promote", STAMP)),
    ("promote-step", HEALTH[9], "manualGate_stepPromoted.yaml", _annotated("promote-step", STAMP)),
    ("abort", HEALTH[7], "canaryStep_aborted.yaml", _annotated("abort", STAMP)),
    ("abort", HEALTH[12], "promoting_aborted.yaml", _annotated("abort", STAMP)),
    ("retry", HEALTH[13], "rolledBackAborted_retried.yaml", _annotated("retry", STAMP)),
    ("pause", HEALTH[7], "canaryStep_paused.yaml", _annotated("paused", "true")),
    ("resume", HEALTH[10], "pausedAnnotation_resumed.yaml", _annotated("paused", None)),
)
RESUME_ONLY = Case("suspended_pausedAnnotationOnly.yaml", _paused_annotation, "Paused",
                   "Paused with the headway.dev/paused annotation, its only annotation: resume must drop the whole map.")


def _dump(obj: dict[str, Any], header: str) -> str:
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + "# Generated by hack/argocd/make_testdata.py from the operator's planner: do not edit.\n" + yaml.safe_dump(
        obj, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)


def build() -> dict[Path, str]:
    """Every testdata file: path -> text."""
    files: dict[Path, str] = {}
    objects: dict[str, dict[str, Any]] = {}
    for case in (*HEALTH, RESUME_ONLY):
        cluster = case.make()
        obj = cluster.obj(case.extra_annotations)
        got = obj.get("status", {}).get("phase")
        if got != case.phase:
            raise SystemExit(f"{case.file}: the planner produced phase {got!r}, expected {case.phase!r}")
        objects[case.file] = obj
        if case is not RESUME_ONLY:
            files[HEALTH_DATA / case.file] = _dump(obj, case.header)
    for action, case, out, expect in (*ACTIONS, ("resume", RESUME_ONLY, "pausedAnnotationOnly_resumed.yaml", _annotated("paused", None))):
        files[ACTION_DATA / case.file] = _dump(objects[case.file], case.header)
        files[ACTION_DATA / out] = _dump(expect(objects[case.file]), f"{case.file} after the {action} action (os.time() = {ACTION_TIME}).")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs from what the planner produces")
    args = parser.parse_args(argv)
    files = build()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    known = set(files)
    extra = [p for d in (HEALTH_DATA, ACTION_DATA) if d.exists() for p in d.glob("*.yaml") if p not in known]
    if args.check:
        for p in stale + extra:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in extra:
        p.unlink()
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
