"""End to end: RolloutRecords and `headway audit` (issue 13, item 4).

The real operator process runs a ModelDeployment through its first version, a rollout that is
promoted (killed with SIGKILL in the middle of it) and a rollout that its analysis rolls back,
decided by an operator that wrote no records (``--rollout-records 0``): what an operator that died
between its status writes and its record writes leaves behind. The next operator, with records,
catches up. Then `headway audit` (run as a user would, with a kubeconfig) must list exactly the
decisions status.history holds, in the order they were made, each once, and at least every one
the Events announced.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from tests.e2e.harness import IMAGE, IMAGE_V2, Env, wait_for

pytestmark = pytest.mark.e2e

V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
V3 = {"bento": "fraud_scorer:3.4.0", "image": IMAGE_V2, "env": [{"name": "THRESHOLD", "value": "0.7"}]}
PROMETHEUS = "http://127.0.0.1:9"  # nothing listens: every measurement is inconclusive, which rolls back
ANALYSIS = {"prometheus": {"url": PROMETHEUS}, "interval": "1s", "slos": [{"errorRate": {"max": 0.01}}],
            "inconclusiveLimit": 1, "onInconclusive": "rollback"}


def restart(env: Env, *args: str) -> None:
    env.operator.kill()
    env.operator.extra_args = ["--allowed-prometheus-url", PROMETHEUS, *args]
    env.operator.start()


def audit(env: Env, fmt: str) -> str:
    result = subprocess.run([sys.executable, "-m", "headway.cli", "audit", "md/fraud", "-n", env.namespace, "--kubeconfig",
                             str(env.kubeconfig), "--format", fmt], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def key(d: dict[str, Any]) -> tuple[Any, ...]:
    return d["time"], d["event"], d.get("revision"), d.get("message"), json.dumps(d.get("evidence"), sort_keys=True)


def test_audit_lists_each_decision_of_a_promotion_and_a_rollback_once_across_restarts(env: Env) -> None:
    restart(env)
    env.create_md("fraud", {"model": V1, "replicas": 2, "traffic": {"provider": "none"},
                            "rollout": {"steps": [{"canary": {"weight": 50, "duration": "1s"}}]}})
    env.wait_phase("fraud", "Succeeded")

    # A promotion, with the operator killed mid-rollout.
    env.patch_spec("fraud", {"model": V2})
    env.wait_history("fraud", "StepStarted")
    restart(env)
    env.wait_history("fraud", "Promoted")
    env.wait_phase("fraud", "Succeeded")

    # A rollback decided while no record was written; then an operator that writes them again.
    restart(env, "--rollout-records", "0")
    env.patch_spec("fraud", {"model": V3, "analysis": ANALYSIS})
    env.wait_phase("fraud", "RolledBack")
    restart(env)

    history = env.status("fraud")["history"]
    assert len(history) < 20, "the comparison below needs every decision still in status.history"
    seen: list[Any] = []

    def caught_up() -> dict[str, Any] | None:
        document = json.loads(audit(env, "json"))
        seen[:] = [(i["spec"]["outcome"], [d["event"] for d in i["spec"]["decisions"]]) for i in document["items"]]
        return document if [outcome for outcome, _ in seen] == ["Deployed", "Promoted", "RolledBack"] else None

    try:
        document = wait_for("the rollback's record, caught up", caught_up)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: records {seen}, history {[h['event'] for h in env.status('fraud')['history']]}") from None
    records = document["items"]
    recorded = [key(d) for r in records for d in r["spec"]["decisions"]]
    assert recorded == [key(h) for h in history]  # exactly the decisions made, in order, each once
    assert len(set(recorded)) == len(recorded)
    promoted, rolled_back = records[1]["spec"], records[2]["spec"]
    assert [d["event"] for d in promoted["decisions"]] == ["RolloutStarted", "StepStarted", "StepCompleted", "PromotionStarted", "Promoted"]
    assert promoted["stable"]["bento"] == V1["bento"] and rolled_back["stable"]["bento"] == V2["bento"]
    assert rolled_back["decisions"][-1]["event"] == "RolledBack" and rolled_back["decisions"][-1]["evidence"]["analysis"]["result"]
    assert all(r["spec"].get("incomplete") is None for r in records)

    # Every decision an Event announced is in the records (an Event may be lost to a SIGKILL; a record entry may not).
    names = {d["event"] for r in records for d in r["spec"]["decisions"]}
    announced = Counter(e for e in env.event_reasons("fraud") if e in names)
    assert announced <= Counter(d["event"] for r in records for d in r["spec"]["decisions"])

    markdown = audit(env, "markdown")
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| 20")]
    assert [(row[0].lstrip("| "), row[1]) for row in rows] == [(k[0], k[1]) for k in recorded]
    assert "## 2. fraud_scorer:3.3.0" in markdown and ": Promoted" in markdown and ": RolledBack" in markdown

    if shutil.which("kubectl"):
        table = subprocess.run(["kubectl", "--kubeconfig", str(env.kubeconfig), "-n", env.namespace, "get", "rr"],
                               capture_output=True, text=True, timeout=30)
        assert table.returncode == 0, table.stderr
        assert table.stdout.split("\n")[0].split() == ["NAME", "MODELDEPLOYMENT", "REVISION", "BENTO", "OUTCOME", "STARTED", "AGE"]
        assert sorted(line.split()[4] for line in table.stdout.strip().splitlines()[1:]) == ["Deployed", "Promoted", "RolledBack"]
