"""`headway audit md/NAME` (headway/audit.py): what an auditor reads, and the errors they get.

The rendering is checked on records as the operator writes them; the command runs in-process
against the API emulator, reading with a kubeconfig as kubectl would.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import headway
from headway import audit
from headway.api import crd, record
from headway.k8s.client import Kube, make_api_client
from headway.k8s.records import ROLLOUT_RECORD
from headway.reconciler import MODEL_DEPLOYMENT
from headway.sandbox.apiserver import KubeEmulator

NOW = datetime(2024, 5, 8, 12, 0, tzinfo=timezone.utc)
UID = "b5d0a1c2-0000-4000-8000-000000000001"


def decision(time: str, event: str, message: str, evidence: dict[str, Any] | None = None, revision: str = "3f9a0c1b2d") -> dict[str, Any]:
    out: dict[str, Any] = {"time": time, "event": event, "revision": revision, "bento": "fraud_scorer:3.3.0", "message": message}
    if evidence is not None:
        out["evidence"] = evidence
    return out


ANALYSIS = {"result": "Pass", "verdicts": [{"slo": "errorRate", "variant": "candidate", "result": "Pass", "value": 0.0021,
                                             "threshold": 0.01, "samples": 1200}]}
APPROVED = {"stage": "BeforePromotion", "evidenceDigest": "9b2c6f0e4d1a" + "0" * 52,
            "approvals": [{"name": "fraud-3f9a0c1b2d-risk-carol", "approver": "carol", "role": "risk", "decision": "approve"}]}


def a_record(name: str, started: str, outcome: str, decisions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    spec = {"modelDeployment": "fraud", "modelDeploymentUID": UID, "revision": decisions[0].get("revision", "3f9a0c1b2d"),
            "bento": "fraud_scorer:3.3.0", "startedAt": started, "outcome": outcome, "decisions": decisions, **extra}
    if outcome != "InProgress":
        spec["finishedAt"] = decisions[-1]["time"]
    return {"apiVersion": f"{headway.GROUP}/{headway.VERSION}", "kind": record.KIND,
            "metadata": {"name": name, "namespace": "ml", "labels": {"headway.dev/modeldeployment": "fraud",
                                                                      "app.kubernetes.io/managed-by": "headway"},
                         "managedFields": [{"manager": "headway"}]},
            "spec": spec}


PROMOTED = a_record("fraud-3f9a0c1b2d-20240501-120000", "2024-05-01T12:00:00Z", "Promoted", [
    decision("2024-05-01T12:00:00Z", "RolloutStarted", "rolling out fraud_scorer:3.3.0 (3f9a0c1b2d) over stable fraud_scorer:3.2.0: 2 steps"),
    decision("2024-05-01T12:00:05Z", "StepStarted", "step 1/2: canary 10%", {"weights": {"stable": 90, "candidate": 10}}),
    decision("2024-05-01T12:10:05Z", "StepCompleted", "step 1/2 | done\nanalysis passed", {"weights": {"stable": 90, "candidate": 10},
                                                                                       "analysis": ANALYSIS}),
    decision("2024-05-01T12:11:00Z", "Approved", "approved before promotion by carol (risk)", APPROVED),
    decision("2024-05-01T12:11:00Z", "PromotionStarted", "promoting"),
    decision("2024-05-01T12:12:00Z", "Promoted", "promoted", {"weights": {"stable": 100}, "readyReplicas": 4}),
], stable={"bento": "fraud_scorer:3.2.0", "revision": "1a2b3c4d5e"},
    approvals=[{"time": "2024-05-01T12:11:00Z", "decision": "approve", "approver": "carol", "role": "risk",
                "approval": "fraud-3f9a0c1b2d-risk-carol", "stage": "BeforePromotion", "evidenceDigest": "9b2c6f0e4d1a" + "0" * 52,
                "comment": "SLOs met"}])
ROLLED_BACK = a_record("fraud-7777777777-20240507-090000", "2024-05-07T09:00:00Z", "RolledBack", [
    decision("2024-05-07T09:00:00Z", "RolloutStarted", "rolling out 3.4.0", revision="7777777777"),
    decision("2024-05-07T09:05:00Z", "RolledBack", "rolled back (FailedAnalysis)",
             {"weights": {"stable": 100}, "analysis": {"result": "Inconclusive", "error": "Prometheus unreachable"}}, revision="7777777777"),
], incomplete="decisions between a and b may be missing")


# --- rendering -----------------------------------------------------------------------------------


def test_markdown_has_a_section_per_rollout_with_every_decision_in_order() -> None:
    text = audit.render_markdown(audit.select([ROLLED_BACK, PROMOTED]), "ml", "fraud")
    assert text.index("## 1. fraud_scorer:3.3.0 (3f9a0c1b2d): Promoted") < text.index("## 2. fraud_scorer:3.3.0 (7777777777): RolledBack")
    rows = [line for line in text.splitlines() if line.startswith("| 2024-")]
    assert [row.split(" | ")[1] for row in rows] == ["RolloutStarted", "StepStarted", "StepCompleted", "Approved", "PromotionStarted",
                                                    "Promoted", "RolloutStarted", "RolledBack"]
    # One row per decision whatever the message holds: pipes escaped, newlines as <br>.
    assert "| step 1/2 \\| done<br>analysis passed |" in text
    assert "weights stable=90 candidate=10; analysis Pass: candidate/errorRate=Pass (0.0021 vs 0.01, n=1200)" in text
    assert "approved by carol (risk)" in text and "evidence 9b2c6f0e4d1a…" in text
    assert "analysis Inconclusive: metrics unavailable: Prometheus unreachable" in text
    assert "- Rolled over: fraud_scorer:3.2.0 (1a2b3c4d5e)" in text
    assert '- Approval: carol (risk): approve, BeforePromotion, ModelApproval fraud-3f9a0c1b2d-risk-carol' in text and '"SLOs met"' in text
    assert "- Incomplete: decisions between a and b may be missing" in text


def test_csv_is_one_row_per_decision_with_the_evidence_as_json() -> None:
    rows = list(csv.DictReader(io.StringIO(audit.render_csv(audit.select([PROMOTED, ROLLED_BACK])))))
    assert list(rows[0]) == audit.CSV_COLUMNS
    assert [(r["time"], r["event"]) for r in rows] == [(d["time"], d["event"]) for r in (PROMOTED, ROLLED_BACK) for d in r["spec"]["decisions"]]
    completed = rows[2]
    assert completed["message"] == "step 1/2 | done\nanalysis passed" and completed["outcome"] == "Promoted"
    assert json.loads(completed["evidence"]) == PROMOTED["spec"]["decisions"][2]["evidence"]
    assert rows[0]["evidence"] == "" and rows[-1]["record"] == "fraud-7777777777-20240507-090000"


def test_json_is_the_records_as_a_list_without_managed_fields() -> None:
    document = json.loads(audit.render_json(audit.select([PROMOTED])))
    assert document["kind"] == "List"
    (item,) = document["items"]
    assert item["spec"] == PROMOTED["spec"] and "managedFields" not in item["metadata"]


def test_rollouts_that_began_in_the_same_second_are_listed_in_the_order_they_ended() -> None:
    deployed = a_record("fraud-ffffffffff-20240501-120000", "2024-05-01T12:00:00Z", "Deployed",
                        [decision("2024-05-01T12:00:00Z", "Deployed", "first version", revision="ffffffffff")])
    rollout = a_record("fraud-0000000000-20240501-120000", "2024-05-01T12:00:00Z", "InProgress",
                       [decision("2024-05-01T12:00:00Z", "RolloutStarted", "rolling out", revision="0000000000")])
    assert [r["spec"]["outcome"] for r in audit.select([rollout, deployed])] == ["Deployed", "InProgress"]


def test_since_keeps_the_decisions_from_then_on() -> None:
    since = audit.parse_since("2d", NOW)
    chosen = audit.select([PROMOTED, ROLLED_BACK], since)
    assert [r["metadata"]["name"] for r in chosen] == ["fraud-7777777777-20240507-090000"]
    chosen = audit.select([PROMOTED, ROLLED_BACK], audit.parse_since("2024-05-01T12:11:00Z", NOW))
    assert [d["event"] for d in chosen[0]["spec"]["decisions"]] == ["Approved", "PromotionStarted", "Promoted"]
    assert len(chosen[0]["spec"]["approvals"]) == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", datetime(2024, 5, 8, 10, 30, tzinfo=timezone.utc)),
    ("7d", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
    ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
])
def test_since_forms(text: str, expected: datetime) -> None:
    assert audit.parse_since(text, NOW) == expected


@pytest.mark.parametrize(("argv", "message"), [
    (["deploy/fraud"], "give md/NAME, not deploy/"),
    (["md/Fraud_1"], "is not a ModelDeployment name"),
    (["md/fraud", "--since", "last week"], "--since 'last week': neither a duration"),
    (["md/fraud", "--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig /nonexistent/kubeconfig: no such file"),
])
def test_bad_input_is_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.main(argv, NOW) == 1
    assert message in capsys.readouterr().err


# --- against an API server -----------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[KubeEmulator, Kube, Path]]:
    with KubeEmulator.running_in_thread() as emulator:
        emulator.create_namespace("ml")
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace="ml")
        kube = Kube(make_api_client(str(kubeconfig)))
        emulator.install_crd(crd.build_crd())
        yield emulator, kube, kubeconfig


def create_md(kube: Kube) -> str:
    created = kube.create(MODEL_DEPLOYMENT, "ml", {"apiVersion": MODEL_DEPLOYMENT.api_version, "kind": headway.KIND,
                                                   "metadata": {"name": "fraud", "namespace": "ml"},
                                                   "spec": {"model": {"bento": "fraud_scorer:3.2.0", "image": "r/f:3.2.0"}}})
    return str(created["metadata"]["uid"])


def stored(body: dict[str, Any], uid: str) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    out["metadata"].pop("managedFields")
    out["spec"]["modelDeploymentUID"] = uid
    return out


def test_the_command_prints_the_records_of_the_modeldeployment(server: tuple[KubeEmulator, Kube, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    emulator, kube, kubeconfig = server
    emulator.install_crd(record.build_crd())
    uid = create_md(kube)
    for body in (ROLLED_BACK, PROMOTED):
        kube.create(ROLLOUT_RECORD, "ml", stored(body, uid))
    other = stored(PROMOTED, "another-uid")  # a ModelDeployment of the same name, deleted: not this one's
    other["metadata"]["name"] = "fraud-old"
    kube.create(ROLLOUT_RECORD, "ml", other)

    assert audit.main(["md/fraud", "--kubeconfig", str(kubeconfig), "--format", "json"], NOW) == 0  # namespace: the context's
    items = json.loads(capsys.readouterr().out)["items"]
    assert [i["metadata"]["name"] for i in items] == [PROMOTED["metadata"]["name"], ROLLED_BACK["metadata"]["name"]]
    assert [i["spec"]["decisions"] for i in items] == [PROMOTED["spec"]["decisions"], ROLLED_BACK["spec"]["decisions"]]

    assert audit.main(["modeldeployment/fraud", "-n", "ml", "--kubeconfig", str(kubeconfig), "--since", "2d"], NOW) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Audit trail: ModelDeployment ml/fraud") and "1 rollout (" in text and "RolledBack" in text


def test_missing_modeldeployment_records_and_crd_are_said(server: tuple[KubeEmulator, Kube, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    emulator, kube, kubeconfig = server
    base = ["md/fraud", "-n", "ml", "--kubeconfig", str(kubeconfig)]
    assert audit.main(base, NOW) == 1
    assert "ModelDeployment ml/fraud not found" in capsys.readouterr().err
    create_md(kube)
    assert audit.main(base, NOW) == 1
    assert f"does not serve {record.CRD_NAME}: apply crds/{record.CRD_NAME}.yaml" in capsys.readouterr().err
    emulator.install_crd(record.build_crd())
    assert audit.main(base, NOW) == 1
    assert "no RolloutRecords for ModelDeployment ml/fraud" in capsys.readouterr().err
