"""End to end: the real operator notifies a local receiver of each transition, once, in each receiver's shape.

The receiver (tests/support/notification_receiver.py) listens on 127.0.0.1 and answers as Slack,
Teams Workflows, PagerDuty's Events API v2 and a plain webhook do. The sinks' URLs and PagerDuty's
routing key are in a Secret, as in production; the operator reads it through the API. Covered:
each transition arrives once per sink with the receiver's payload shape; a receiver that answers
500s gets the same request again until it accepts; a restart sends nothing twice (and a delivery
cut off by a crash is resent with the same key); transitions older than the max age are not sent
when notifications start; an unknown sink is reported; and the operator runs with exactly the
chart's RBAC for Secrets.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from standardwebhooks.webhooks import Webhook

from headway.k8s.client import Kind, Kube, make_api_client
from headway.notify import SECRET
from headway.planning.conditions import parse_time
from headway.reconciler import MODEL_DEPLOYMENT
from tests.e2e.fixtures import SHARED_SCHEMAS, load_yaml
from tests.e2e.harness import HTTPROUTE, IMAGE, IMAGE_V2, REAL_KUBECONFIG, Env, OperatorProcess, install_crd, new_namespace, wait_for
from tests.support.helm import template
from tests.support.notification_receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

V1 = {"bento": "fraud_scorer:3.2.0", "image": IMAGE}
V2 = {"bento": "fraud_scorer:3.3.0", "image": IMAGE_V2}
TRAFFIC = {"provider": "gatewayApi", "gatewayApi": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
# Prometheus is unreachable: the first measurement is inconclusive, and that rolls back (with the evidence).
ANALYSIS = {"prometheus": {"url": "http://127.0.0.1:9"}, "interval": "1s", "slos": [{"errorRate": {"max": 0.01}}],
            "inconclusiveLimit": 1, "onInconclusive": "rollback"}
PATHS = {"hook": "/hook", "slack": "/slack/T000/B000/XXXX", "teams": "/teams/workflows/abc", "pd-change": "/pd/v2/change/enqueue",
         "pd": "/pd/v2/enqueue"}
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes: the Standard Webhooks minimum


def sinks(receiver: Receiver, secret: str = "headway-notify", signing: str | None = None) -> list[dict[str, Any]]:
    """The four sinks; with ``signing``, the webhook is signed with that Secret's key "hook"."""
    hook: dict[str, Any] = {"name": "hook", "type": "webhook", "secret": {"name": secret, "key": "hook"}}
    if signing is not None:
        hook["signingSecret"] = {"name": signing, "key": "hook"}
    return [
        hook,
        {"name": "slack", "type": "slack", "secret": {"name": secret, "key": "slack"}},
        {"name": "teams", "type": "teams", "secret": {"name": secret, "key": "teams"}},
        {"name": "pager", "type": "pagerduty", "secret": {"name": secret, "key": "pagerduty"}, "url": f"{receiver.url}/pd"},
    ]


def create_secret(kube: Kube, namespace: str, receiver: Receiver, name: str = "headway-notify") -> None:
    values = {"hook": receiver.url + PATHS["hook"], "slack": receiver.url + PATHS["slack"], "teams": receiver.url + PATHS["teams"],
              "pagerduty": ROUTING_KEY + "\n"}
    kube.create(SECRET, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                                    "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}})


@dataclass
class Notified:
    env: Env
    receiver: Receiver

    def start(self, *extra: str) -> None:
        """(Re)start the operator with the sinks configured; its Secrets are in the test's namespace."""
        self.env.operator.kill()
        self.env.operator.extra_args = ["--notification-sinks", yaml.safe_dump(sinks(self.receiver), default_flow_style=True),
                                        "--notification-secret-namespace", self.env.namespace,
                                        "--allowed-prometheus-url", ANALYSIS["prometheus"]["url"], *extra]
        self.env.operator.start()

    def create(self, name: str, notify: str, model: dict[str, str] = V1, steps: list[dict[str, Any]] | None = None) -> None:
        manifest = self.env.manifest(name, {"model": model, "replicas": 2, "traffic": TRAFFIC,
                                            "rollout": {"steps": steps or [{"canary": {"weight": 50, "duration": "1s"}}]}})
        manifest["metadata"]["annotations"] = {"headway.dev/notify": notify}
        self.env.kube.create(MODEL_DEPLOYMENT, self.env.namespace, manifest)
        self.env.wait_phase(name, "Succeeded")

    def deliveries(self, name: str) -> list[dict[str, Any]]:
        return list(((self.env.status(name).get("notifications") or {}).get("deliveries")) or [])

    def wait_delivered(self, name: str, event: str, sinks: set[str]) -> list[dict[str, Any]]:
        def probe() -> list[dict[str, Any]] | None:
            found = [d for d in self.deliveries(name) if d["event"] == event]
            return found if {d["sink"] for d in found} >= sinks else None

        return wait_for(f"{name}: {event} recorded as notified to {sorted(sinks)}", probe)


@pytest.fixture()
def notified(env: Env) -> Iterator[Notified]:
    if not env.kube.serves(HTTPROUTE):
        pytest.skip("the cluster does not serve Gateway API HTTPRoutes")
    with receiving() as receiver:
        create_secret(env.kube, env.namespace, receiver)
        yield Notified(env, receiver)


def bodies(receiver: Receiver, path: str) -> list[Any]:
    return [r.body for r in receiver.at(path)]


def test_each_transition_reaches_each_sink_once_in_its_own_shape(notified: Notified) -> None:
    env, receiver = notified.env, notified.receiver
    notified.start()
    notified.create("fraud", "hook, slack,teams,pager")
    env.patch_spec("fraud", {"model": V2})
    env.wait_history("fraud", "Promoted")
    records = notified.wait_delivered("fraud", "Promoted", {"hook", "slack", "teams", "pager"})
    assert all(r["result"] == "Delivered" and r["attempts"] == 1 for r in records)
    ns = env.namespace

    # The webhook: each transition, in order, its key in the Idempotency-Key header and in status.
    hook = receiver.at(PATHS["hook"])
    assert [r.body["event"] for r in hook] == ["RolloutStarted", "StepCompleted", "Promoted"]
    assert all(r.headers["idempotency-key"] == r.body["id"] and r.headers["content-type"] == "application/json" for r in hook)
    assert {r.body["id"] for r in hook} == {d["key"] for d in notified.deliveries("fraud") if d["sink"] == "hook"}
    assert hook[0].body["modelDeployment"]["name"] == "fraud" and hook[0].body["bento"] == "fraud_scorer:3.3.0"
    assert hook[1].body["evidence"]["weights"] == {"stable": 50, "candidate": 50}
    # Slack: text and blocks.
    slack = bodies(receiver, PATHS["slack"])
    assert [b["blocks"][0]["text"]["text"] for b in slack] == [f"Rollout started: {ns}/fraud", f"Step passed: {ns}/fraud",
                                                                f"Promoted: {ns}/fraud"]
    assert all(set(b) == {"text", "blocks"} and b["blocks"][0]["type"] == "header" for b in slack)
    # Teams: an Adaptive Card in a message.
    teams = bodies(receiver, PATHS["teams"])
    assert len(teams) == 3 and all(b["type"] == "message" and b["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
                                   for b in teams)
    assert teams[2]["attachments"][0]["content"]["body"][0]["text"] == f"Promoted: {ns}/fraud"
    # PagerDuty: the rollout's start and step are change events; the promotion resolves the rollout alert.
    changes = bodies(receiver, PATHS["pd-change"])
    assert [c["payload"]["summary"].split(":")[0] for c in changes] == ["Rollout started", "Step passed"]
    assert all(c["routing_key"] == ROUTING_KEY and c["payload"]["source"] == f"{ns}/fraud" for c in changes)
    (resolve,) = bodies(receiver, PATHS["pd"])
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": f"headway/{ns}/fraud/rollout"}

    # A rollout the analysis rolls back: an alert with the evidence.
    env.patch_spec("fraud", {"model": V1, "analysis": ANALYSIS})
    env.wait_phase("fraud", "RolledBack")
    notified.wait_delivered("fraud", "RolledBack", {"hook", "slack", "teams", "pager"})
    trigger = bodies(receiver, PATHS["pd"])[-1]
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == f"headway/{ns}/fraud/rollout"
    assert trigger["payload"]["severity"] == "error" and trigger["payload"]["class"] == "RolledBack"
    assert trigger["payload"]["custom_details"]["evidence"]["analysis"]["result"] == "Inconclusive"
    rolled = bodies(receiver, PATHS["hook"])[-1]
    assert rolled["event"] == "RolledBack" and rolled["evidence"]["analysis"]["revision"] == rolled["revision"]
    assert "*Evidence*" in bodies(receiver, PATHS["slack"])[-1]["blocks"][3]["text"]["text"]

    # Once: more reconciles send nothing more.
    count = len(receiver.all())
    env.reconciled_again("fraud")
    assert len(receiver.all()) == count
    assert env.operator.metric("headway_notifications_total", 'result="delivered"') == count


def test_a_receiver_outage_is_retried_and_a_restart_sends_nothing_twice(notified: Notified) -> None:
    env, receiver = notified.env, notified.receiver
    notified.start("--notification-backoff-seconds", "0.2")
    notified.create("fraud", "hook", steps=[{"canary": {"weight": 20, "duration": "1h"}}])
    receiver.fail(PATHS["hook"], [500, 503, 500])
    env.patch_spec("fraud", {"model": V2})
    (record,) = notified.wait_delivered("fraud", "RolloutStarted", {"hook"})
    assert record["result"] == "Delivered" and record["attempts"] == 4
    got = receiver.at(PATHS["hook"], accepted_only=False)
    assert [r.status for r in got] == [500, 503, 500, 200]
    assert {r.headers["idempotency-key"] for r in got} == {record["key"]} and all(r.body == got[0].body for r in got)

    # A restart: the status says what was sent, so nothing is sent again.
    env.operator.restart()
    env.reconciled_again("fraud")
    assert len(receiver.all()) == 4

    # A crash while a delivery is in flight: the next process sends it again, with the same key.
    receiver.stall(PATHS["hook"], 3.0)
    env.annotate("fraud", "headway.dev/abort", "1")
    wait_for("the Aborted notification to reach the receiver", lambda: len(receiver.arrived) == 5)
    env.operator.kill()
    receiver.stall(PATHS["hook"], 0.0)
    env.operator.start()
    (aborted,) = notified.wait_delivered("fraud", "Aborted", {"hook"})
    wait_for("both answers recorded", lambda: len(receiver.at(PATHS["hook"])) == 3)
    sent = [r for r in receiver.at(PATHS["hook"]) if r.body["event"] == "Aborted"]
    assert len(sent) == 2 and {r.headers["idempotency-key"] for r in sent} == {aborted["key"]}
    assert [d["event"] for d in notified.deliveries("fraud")] == ["RolloutStarted", "Aborted"]


def test_transitions_older_than_the_max_age_are_not_sent_when_notifications_start(notified: Notified) -> None:
    env, receiver = notified.env, notified.receiver
    notified.create("fraud", "hook")  # the operator runs without notifications
    env.patch_spec("fraud", {"model": V2})
    promoted = next(h for h in env.wait_history("fraud", "Promoted")["history"] if h["event"] == "Promoted")
    wait_for("the promotion to be older than the max age (5 s)",
             lambda: (datetime.now(timezone.utc) - parse_time(promoted["time"])).total_seconds() > 6, timeout=60)

    notified.start("--notification-max-age-seconds", "5")
    env.reconciled_again("fraud")
    assert receiver.all() == [] and notified.deliveries("fraud") == []

    env.patch_spec("fraud", {"model": V1, "rollout": {"steps": [{"canary": {"weight": 20, "duration": "1h"}}]}})
    notified.wait_delivered("fraud", "RolloutStarted", {"hook"})
    assert [b["event"] for b in bodies(receiver, PATHS["hook"])] == ["RolloutStarted"]


def test_an_unknown_sink_is_reported_and_the_others_are_notified(notified: Notified) -> None:
    env, receiver = notified.env, notified.receiver
    notified.start()
    notified.create("fraud", "hook,slakc", steps=[{"canary": {"weight": 20, "duration": "1h"}}])
    problems = wait_for("the problem in status", lambda: (env.status("fraud").get("notifications") or {}).get("problems"))
    assert problems == [{"field": "metadata.annotations[headway.dev/notify]",
                         "message": "no notification sink named 'slakc' in the operator's settings (it has hook, slack, teams, pager); "
                                    "nothing is sent to it"}]
    wait_for("a Warning Event", lambda: "NotificationSinkInvalid" in env.event_reasons("fraud"))
    env.patch_spec("fraud", {"model": V2})
    notified.wait_delivered("fraud", "RolloutStarted", {"hook"})
    assert {r.path for r in receiver.all()} == {PATHS["hook"]}
    assert env.event_reasons("fraud").count("NotificationSinkInvalid") == 1


# ---------------------------------------------------------------------------------------------
# the chart's RBAC


RELEASE_NAMESPACE, RELEASE = "headway-system", "headway"
SERVICE_ACCOUNT = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
RBAC_KINDS = {
    "ServiceAccount": Kind("", "v1", "serviceaccounts", "ServiceAccount"),
    "Role": Kind("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    "RoleBinding": Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
}
CHART = Path(__file__).resolve().parents[2] / "charts" / "headway"


@pytest.mark.skipif(bool(REAL_KUBECONFIG), reason="needs the emulator's record of authorised requests")
def test_the_operator_reads_only_the_sinks_secrets_with_the_charts_rbac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headway.sandbox.apiserver import KubeEmulator

    with KubeEmulator.running_in_thread() as emulator, receiving() as receiver:
        emulator.start_deployment_controller(delay=0.3)
        admin = Kube(make_api_client(str(emulator.write_kubeconfig(tmp_path / "admin.kubeconfig"))))
        install_crd(admin)
        emulator.install_crd(load_yaml(SHARED_SCHEMAS / "gateway-api" / "standard_gateway.networking.k8s.io_httproutes.yaml"))
        namespace = new_namespace(admin)
        emulator.create_namespace(RELEASE_NAMESPACE)  # `helm install --create-namespace`
        # What `helm install` creates (namespaced mode, with sinks), and the Secret the admin made.
        values = {"watchNamespaces": [namespace], "notifications": {"sinks": sinks(receiver, "hw-notify", signing="hw-signing")}}
        rendered = template(CHART, values, namespace=RELEASE_NAMESPACE, release=RELEASE)
        for doc in rendered:
            if doc["kind"] in RBAC_KINDS:
                admin.create(RBAC_KINDS[doc["kind"]], doc["metadata"]["namespace"], doc)
        create_secret(admin, RELEASE_NAMESPACE, receiver, "hw-notify")
        create_secret(admin, RELEASE_NAMESPACE, receiver, "someone-elses")
        admin.create(SECRET, RELEASE_NAMESPACE, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hw-signing"},
                                                 "data": {"hook": base64.b64encode(SIGNING_SECRET.encode()).decode()}})
        (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
        for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            if var["name"].startswith("HEADWAY_NOTIFICATION"):  # as the kubelet resolves them
                monkeypatch.setenv(var["name"], var.get("value") or RELEASE_NAMESPACE)

        kubeconfig = emulator.write_kubeconfig(tmp_path / "operator.kubeconfig", token=emulator.token_for(SERVICE_ACCOUNT))
        operator = OperatorProcess(kubeconfig=kubeconfig, namespace=namespace, log_dir=tmp_path)
        operator.start()
        env = Env(kube=admin, kubeconfig=tmp_path / "admin.kubeconfig", namespace=namespace, operator=operator, emulated=True)
        try:
            notified = Notified(env, receiver)
            notified.create("fraud", "hook,pager")
            env.patch_spec("fraud", {"model": V2})
            notified.wait_delivered("fraud", "Promoted", {"hook", "pager"})
        finally:
            operator.kill()
        decisions = emulator.authorizations(SERVICE_ACCOUNT)
        assert sorted({(d.verb, d.path) for d in decisions if not d.allowed}) == []
        reads = {d.path for d in decisions if d.permission == ("", "secrets", "get")}
        assert reads == {f"/api/v1/namespaces/{RELEASE_NAMESPACE}/secrets/{name}" for name in ("hw-notify", "hw-signing")}
        # The webhook was signed with the signing Secret: the receiver's reference verifier accepts each request.
        hooks = receiver.at(PATHS["hook"])
        assert [r.body["event"] for r in hooks] == ["RolloutStarted", "StepCompleted", "Promoted"]
        assert all(Webhook(SIGNING_SECRET).verify(r.raw, r.headers) == r.body for r in hooks)
        assert "Forbidden" not in operator.logs()
        # The grant is by name: the operator's credentials cannot read another Secret.
        as_operator = Kube(make_api_client(str(kubeconfig)))
        with pytest.raises(Exception) as denied:
            as_operator.get(SECRET, RELEASE_NAMESPACE, "someone-elses")
        assert getattr(denied.value, "status", None) == 403
