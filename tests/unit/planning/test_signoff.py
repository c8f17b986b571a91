"""`headway plan`: the deployment plan a manifest implies, as reviewed golden Markdown.

The goldens under golden/signoff/ are the documents a reviewer signs: read them once when they
change. Set HEADWAY_UPDATE_GOLDEN=1 to rewrite them, then review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from headway.planning.signoff import (
    ApprovalPolicy, RequiredApproval, not_planned_markdown, signoff_markdown, slo_bound,
)
from headway.planning.validation import check_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden" / "signoff"
EXAMPLES = {
    "canary": ROOT / "examples" / "canary.yaml",
    "slo-analysis": ROOT / "examples" / "slo-analysis.yaml",
    "autoscaling": ROOT / "examples" / "autoscaling.yaml",
    "monitoring": ROOT / "examples" / "monitoring" / "model-deployment.yaml",
}

ESCALATED = """\
apiVersion: serving.headway.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: churn
  namespace: growth
  annotations:
    headway.dev/owner: team-growth
    headway.dev/escalation: "alice@example.com, bob@example.com ,#growth-oncall"
    headway.dev/runbook: https://runbooks.example.com/churn
spec:
  model: {bento: churn:2.0.0, image: registry.example.com/churn:2.0.0}
  resources: {requests: {cpu: 500m, memory: 1Gi}}
  autoscaling:
    minReplicas: 2
    maxReplicas: 8
    metrics: [{cpu: {averageUtilization: 70}}, {inFlight: {average: 8}}]
  cost: {labels: {team: growth}, monthlyBudget: 1500, enforce: true, maxIncrease: 20}
  rollout:
    steps:
      - canary: {weight: 5, duration: 5m}
      - pause: {duration: 2m}
      - canary: {weight: 50, duration: 10m}
    bakeTime: 1h
    bakeBaseline: {none: true}
  analysis:
    slos:
      - latency: {percentile: 99.9, max: 1s}
      - query:
          name: failed-share
          numerator: sum(increase(scoring_failures_total{variant="{{variant}}"}[{{window}}]))
          denominator: sum(increase(scorings_total{variant="{{variant}}"}[{{window}}]))
          max: 0.02
      - query:
          name: queue-depth
          promql: max(queue_depth{variant="{{variant}}"})
          max: 100
    failureLimit: 1
    onInconclusive: rollback
"""


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def plan_of(doc: dict[str, Any], approvals: ApprovalPolicy | None = None) -> str:
    spec, problems = parse_spec(doc["spec"])
    assert spec is not None and not problems
    assert not check_spec(doc["metadata"]["name"], spec)
    meta = doc["metadata"]
    kwargs = {"approvals": approvals} if approvals is not None else {}
    return signoff_markdown(spec, name=meta["name"], namespace=meta.get("namespace"), annotations=meta.get("annotations"), **kwargs)


def assert_golden_text(text: str, path: Path) -> None:
    if os.environ.get("HEADWAY_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"golden file {path} is missing (run with HEADWAY_UPDATE_GOLDEN=1 and review it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"the plan differs from {path}; if intended, rerun with HEADWAY_UPDATE_GOLDEN=1 and review"


def example_plan(case: str) -> str:
    (doc,) = [d for d in _documents(EXAMPLES[case].read_text()) if d.get("kind") == "ModelDeployment"]
    return plan_of(doc)


@pytest.mark.parametrize("case", sorted(EXAMPLES))
def test_examples_match_golden_plans(case: str) -> None:
    assert_golden_text(example_plan(case), GOLDEN / f"{case}.md")


def test_escalation_annotations_match_golden_plan() -> None:
    assert_golden_text(plan_of(_documents(ESCALATED)[0]), GOLDEN / "escalation.md")


# --- what a reviewer would notice --------------------------------------------------------------


def test_slo_analysis_states_bounds_and_rollback() -> None:
    plan = example_plan("slo-analysis")
    assert plan.startswith("# Deployment plan: ml/fraud-scorer\n")
    for said in ("error rate ≤ 1%", "p99 latency ≤ 250ms", "precision ≥ 90%", "approval-rate ≥ 30%",
                 "rolls back after 2 consecutive failed verdicts", "after 20 in a row (inconclusiveLimit), onInconclusive hold",
                 "probability at most 5%", "docs/verdicts.md", "every 30s from http://prometheus.monitoring:9090",
                 "minRequests**: 200", "for 30m after promotion", "100% of requests mirrored",
                 'kubectl annotate md/fraud-scorer -n ml headway.dev/abort="$(date +%s)" --overwrite',
                 "no approval policy (spec.governance) is configured"):
        assert said in plan, said
    assert plan.count("**not set**") == 4  # no escalation annotation: every one is flagged
    # the steps, in order
    steps = [line for line in plan.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |") or line.startswith("| 3 |")]
    assert [s.split("|")[2].strip() for s in steps] == ["shadow", "canary", "canary"]
    assert "10% of live traffic" in steps[1] and "50% of live traffic" in steps[2]


def test_canary_without_analysis_says_nothing_rolls_back() -> None:
    plan = example_plan("canary")
    assert "no SLO analysis judges it and nothing rolls back automatically" in plan
    assert "**None** (spec.analysis not set)" in plan
    assert "until a person promotes it: `kubectl annotate md/fraud-scorer -n ml headway.dev/promote-step=" in plan
    assert "Bake**: none" in plan


def test_autoscaling_and_monitoring() -> None:
    plan = example_plan("autoscaling")
    assert "HorizontalPodAutoscaler (engine auto) per variant, 2–10 replicas; on cpu 60%, memory 75%" in plan
    assert "scale down: stabilisation 300s, at most 1 pod per minute" in plan
    mon = example_plan("monitoring")
    assert "maxDifference 5% (total variation); gate" in mon
    assert "yes: SLO verdicts and prediction comparison" in mon
    assert "answers shown to differ from stable's by more than 5%" in mon
    assert "PSI is at least 0.1" in mon and "last 1h" in mon


def test_escalation_contacts_and_missing_pager() -> None:
    plan = plan_of(_documents(ESCALATED)[0])
    assert "| Owner | `headway.dev/owner` | team-growth |" in plan
    assert "| Escalation contacts | `headway.dev/escalation` | alice@example.com, bob@example.com, #growth-oncall |" in plan
    assert "| Runbook | `headway.dev/runbook` | https://runbooks.example.com/churn |" in plan
    assert "| Pager | `headway.dev/pager` | **not set** |" in plan
    assert "1 of 4 escalation annotations are not set." in plan
    # the rest of that manifest, as a reviewer reads it
    for said in ("p99.9 latency ≤ 1s", "at most 0.1% of requests slower than 1s", "failed-share ≤ 2%", "queue-depth ≤ 100",
                 "**Untested**: queue-depth", "rolls back after 1 consecutive failed verdict ", "onInconclusive rollback",
                 "without traffic (bakeBaseline none)", "is reported (Warning Event BakeBreach", "KEDA", "Budget**: 1500 per month",
                 "by more than 20% is held", "| 2 | pause | unchanged (the step before's) | 2m | no |"):
        assert said in plan, said


def test_approvals_come_from_the_policy_passed() -> None:
    policy = ApprovalPolicy(required=(RequiredApproval("ml-lead"), RequiredApproval("risk", 2, "before the first canary")), risk_tier="high")
    plan = plan_of(_documents(ESCALATED)[0], approvals=policy)
    assert "From spec.governance (risk tier high):" in plan
    assert "- 2 approvals by role `risk`, before the first canary" in plan
    assert "no approval policy" not in plan
    assert plan.count("| risk | | | |") == 2 and "| ml-lead | | | |" in plan


def test_bounds_in_words() -> None:
    spec, _ = parse_spec({"model": {"bento": "m:1", "image": "m:1"}, "analysis": {"slos": [
        {"errorRate": {"max": 0.0025}}, {"latency": {"percentile": 95, "max": "300ms"}},
        {"query": {"name": "score", "promql": "avg(x)", "min": 0.5, "max": 2}}]}})
    assert spec is not None and spec.analysis is not None
    assert [slo_bound(s) for s in spec.analysis.slos] == ["error rate ≤ 0.25%", "p95 latency ≤ 300ms", "score ≥ 0.5 and ≤ 2"]


def test_in_cluster_service_only_without_traffic() -> None:
    spec, _ = parse_spec({"model": {"bento": "m:1", "image": "m:1"}, "rollout": {"steps": [{"canary": {"weight": 10, "duration": "1m"}}]}})
    assert spec is not None
    plan = signoff_markdown(spec, name="m")
    assert "# Deployment plan: m (namespace not set: the one it is applied to)" in plan
    assert "in-cluster Service only (no spec.traffic)" in plan
    assert "kubectl annotate md/m headway.dev/abort=" in plan
    assert not_planned_markdown([]) == ""


# --- the command -------------------------------------------------------------------------------


def run_plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headway.cli", "plan", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_cli_prints_the_golden_plan_and_writes_a_file(tmp_path: Path) -> None:
    done = run_plan("-f", "examples/slo-analysis.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (GOLDEN / "slo-analysis.md").read_text(encoding="utf-8")
    out = tmp_path / "plan.md"
    done = run_plan("-f", "examples/slo-analysis.yaml", "-o", str(out))
    assert done.returncode == 0 and done.stdout == ""
    assert out.read_text(encoding="utf-8") == (GOLDEN / "slo-analysis.md").read_text(encoding="utf-8")


def test_cli_plans_several_files_and_lists_other_kinds(tmp_path: Path) -> None:
    escalated = tmp_path / "escalated.yaml"
    escalated.write_text(ESCALATED + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: growth}\n")
    done = run_plan("-f", "examples/monitoring/profile-configmap.yaml", "-f", "examples/canary.yaml", "-f", str(escalated))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("# Deployment plan: ") == 2
    assert "# Deployment plan: ml/fraud-scorer" in done.stdout and "# Deployment plan: growth/churn" in done.stdout
    assert "## Not planned" in done.stdout
    assert "- ConfigMap `fraud-classifier-profile` (examples/monitoring/profile-configmap.yaml)" in done.stdout
    assert f"- Secret `growth/token` ({escalated})" in done.stdout


BAD = """\
apiVersion: serving.headway.dev/v1alpha1
kind: ModelDeployment
metadata: {name: broken, namespace: ml}
spec:
  model: {bento: fraud_scorer:3.3.0}
  analysis:
    slos: [{errorRate: {max: 2}}]
---
apiVersion: serving.headway.dev/v1alpha1
kind: ModelDeployment
metadata: {name: semantic, namespace: ml}
spec:
  model: {bento: fraud_scorer:3.3.0, image: registry.example.com/fraud-scorer:3.3.0}
  replicas: 2
  autoscaling: {maxReplicas: 4, metrics: [{cpu: {averageUtilization: 60}}]}
  rollout:
    steps: [{shadow: {duration: 5m}}]
"""


def test_cli_names_every_problem_by_field_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    done = run_plan("-f", "examples/canary.yaml", "-f", str(bad))
    assert done.returncode == 2
    assert done.stdout == ""  # nothing is planned when any manifest is invalid
    assert "Traceback" not in done.stderr
    for said in ("ModelDeployment ml/broken: spec.model.image: required",
                 "ModelDeployment ml/broken: spec.analysis.slos[0].errorRate.max:",
                 "ModelDeployment ml/semantic: spec.replicas: set replicas or autoscaling, not both",
                 "ModelDeployment ml/semantic: spec.rollout.steps[0].shadow: shadow needs a traffic provider that can mirror",
                 "headway plan: 4 problems; nothing planned"):
        assert said in done.stderr, done.stderr


@pytest.mark.parametrize(("content", "said"), [
    (None, "cannot read"),
    ("kind: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "document 1: not a Kubernetes object"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "no ModelDeployment in"),
    ("apiVersion: v1\nkind: ModelDeployment\nmetadata: {annotations: {headway.dev/owner: 3}}\nspec: {}\n", "apiVersion: 'v1' is not"),
])
def test_cli_refuses_unusable_input_without_a_traceback(tmp_path: Path, content: str | None, said: str) -> None:
    path = tmp_path / "manifest.yaml"
    if content is not None:
        path.write_text(content)
    done = run_plan("-f", str(path))
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
    if "apiVersion" in said:
        assert "metadata.name: required" in done.stderr
        assert "metadata.annotations: must map names to strings" in done.stderr
        assert "spec.model: required" in done.stderr
