"""Notifications, pure: which transitions go where, once, and in what shape.

The history comes from the planner the operator runs (tests/unit/planning/rollout_cases.py): a
rollout that is promoted, then one that the analysis rolls back with its evidence. The payloads are
checked with the receivers' own tooling: Slack's Block Kit models (slack_sdk), the Adaptive Card
JSON schema (the one Teams renders), and PagerDuty's official Events API v2 client, whose requests
are recorded as the reference.
"""

from __future__ import annotations

import importlib.resources
import json
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from slack_sdk.models.blocks import Block

from headway.api.status import AnalysisStatus, HistoryEntry, ModelDeploymentStatus, NotificationDelivery, NotificationStatus, SloVerdict
from headway.planning.notification_payloads import (
    SecretValueError, build_request, evidence_lines, judge, pagerduty_dedup_key, parse_retry_after,
)
from headway.planning.notifications import (
    NOTIFIED, Delivery, NotificationConfig, Outcome, Sink, Subject, delivery_key, due, parse_sinks, problem_events, retry_delay,
    selected, settle,
)
from headway.planning.rollout import Gate
from tests.unit.planning.rollout_cases import OWNER, Cluster, at, canary, rev, rollout_spec, running, ts

SUBJECT = Subject(OWNER.namespace, OWNER.name, OWNER.uid)
SINKS = parse_sinks([
    {"name": "hook", "type": "webhook", "secret": {"name": "hw-notify", "key": "hook"}},
    {"name": "slack-ml", "type": "slack", "secret": {"name": "hw-notify", "key": "slack"}},
    {"name": "teams-ml", "type": "teams", "secret": {"name": "hw-notify", "key": "teams"}},
    {"name": "pager", "type": "pagerduty", "secret": {"name": "hw-notify", "key": "pd"},
     "events": ["RolledBack", "Aborted", "BakeBreach", "Promoted", "DataDrift", "DataDriftCleared", "StepCompleted"]},
    {"name": "team-b-only", "type": "slack", "secret": {"name": "hw-notify", "key": "slack-b"}, "namespaces": ["team-b"]},
])
CONFIG = NotificationConfig(sinks=SINKS, secret_namespace="headway-system")
ALL = {"annotations": {"headway.dev/notify": "hook, slack-ml,teams-ml pager"}}


def promoted_then_rolled_back() -> Cluster:
    """1.0.0 serving; 2.0.0 rolled out over one canary step and promoted; 3.0.0 rolled back by the analysis."""
    cluster = running(rollout_spec("1.0.0", [canary(10, "1m")]))
    cluster.set_model("2.0.0")
    for t in (1, 2, 3, 70, 71, 72):
        cluster.reconcile(at(t))
    cluster.set_model("3.0.0")
    for t in (100, 101, 102):
        cluster.reconcile(at(t))
    analysis = AnalysisStatus(revision=rev("3.0.0"), window_start=ts(101), last_run=ts(103), runs=3, result="Fail",
                              consecutive_failures=3, verdicts=[SloVerdict(slo="errorRate", result="Fail", value=0.034, threshold=0.01,
                                                                           samples=1200, baseline_value=0.002)])
    cluster.reconcile(at(104), Gate("Fail", "errorRate 3.4% > 1% (3 failures in a row)", rollback=True, evidence=analysis.dump()))
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return promoted_then_rolled_back()


def events(deliveries: list[Delivery], sink: str) -> list[str]:
    return [d.entry.event for d in deliveries if d.sink.name == sink]


def delivered(deliveries: list[Delivery], when: int = 110) -> list[Outcome]:
    return [Outcome(d, "Delivered", at(when), 1) for d in deliveries]


# ---------------------------------------------------------------------------------------------
# the operator's settings


def test_sinks_parse_from_the_settings() -> None:
    assert [(s.name, s.type) for s in SINKS] == [("hook", "webhook"), ("slack-ml", "slack"), ("teams-ml", "teams"), ("pager", "pagerduty"),
                                                 ("team-b-only", "slack")]
    assert SINKS[0].secret.name == "hw-notify" and SINKS[0].secret.key == "hook"
    assert SINKS[3].takes("RolledBack") and not SINKS[3].takes("RolloutStarted") and SINKS[0].takes("RolloutStarted")
    eu = parse_sinks([{"name": "pd", "type": "pagerduty", "secret": {"name": "s", "key": "k"}, "url": "https://events.eu.pagerduty.com/"}])
    assert eu[0].url == "https://events.eu.pagerduty.com"
    assert parse_sinks(None) == ()


@pytest.mark.parametrize(("raw", "complaint"), [
    ({"name": "x"}, "must be a list"),
    ([{"name": "x", "type": "email", "secret": {"name": "s", "key": "k"}}], "sinks[0] (x).type: Input should be 'webhook', 'slack'"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s"}}], "sinks[0] (x).secret.key: Field required"),
    ([{"name": "Slack_ML", "type": "slack", "secret": {"name": "s", "key": "k"}}], "sinks[0] (Slack_ML).name: String should match"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "url": "https://hooks.slack.com/x"}],
     "sinks[0] (x).url: only a pagerduty sink takes a url"),
    ([{"name": "x", "type": "pagerduty", "secret": {"name": "s", "key": "k"}, "url": "events.pagerduty.com"}],
     "sinks[0] (x).url: Value error, must be an http:// or https:// URL"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "events": ["RolledBack", "Rollback"]}],
     "sinks[0] (x).events: Value error, Rollback: not notified events"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "namespaces": ["Team A"]}], "Team A: not namespace names"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "channel": "#ml"}], "sinks[0] (x).channel: Extra inputs"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}, "signingSecret": {"name": "s", "key": "sign"}}],
     "sinks[0] (x).signingSecret: only a webhook sink is signed"),
    ([{"name": "x", "type": "webhook", "secret": {"name": "s", "key": "k"}, "signingSecret": {"name": "s"}}],
     "sinks[0] (x).signingSecret.key: Field required"),
    ([{"name": "x", "type": "slack", "secret": {"name": "s", "key": "k"}}, {"name": "x", "type": "teams", "secret": {"name": "s", "key": "t"}}],
     "sinks[1] (x).name: 'x' is used by another sink"),
])
def test_bad_sinks_are_refused_naming_the_sink_and_field(raw: Any, complaint: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_sinks(raw)
    assert complaint in str(raised.value)


# ---------------------------------------------------------------------------------------------
# selection by annotation and label


def test_the_annotation_and_the_label_select_sinks() -> None:
    sinks, problems = selected(ALL, "ml", CONFIG)
    assert [s.name for s in sinks] == ["hook", "slack-ml", "teams-ml", "pager"] and problems == []
    sinks, problems = selected({"labels": {"headway.dev/notify": "pager"}, "annotations": {"headway.dev/notify": "slack-ml"}}, "ml", CONFIG)
    assert [s.name for s in sinks] == ["slack-ml", "pager"] and problems == []
    assert selected({"annotations": {"headway.dev/notify": " "}}, "ml", CONFIG) == ((), [])
    assert selected({}, "ml", CONFIG) == ((), [])


def test_names_that_cannot_be_used_are_reported_naming_the_annotation_or_label() -> None:
    metadata = {"annotations": {"headway.dev/notify": "slack-ml,slak-ml"}, "labels": {"headway.dev/notify": "team-b-only"}}
    sinks, problems = selected(metadata, "ml", CONFIG)
    assert [s.name for s in sinks] == ["slack-ml"]
    assert [(p.field, p.message) for p in problems] == [
        ("metadata.annotations[headway.dev/notify]", "no notification sink named 'slak-ml' in the operator's settings "
                                                     "(it has hook, slack-ml, teams-ml, pager, team-b-only); nothing is sent to it"),
        ("metadata.labels[headway.dev/notify]", "notification sink 'team-b-only' does not serve namespace ml "
                                                "(the operator's settings allow it in team-b)"),
    ]
    assert [s.name for s in selected(metadata, "team-b", CONFIG)[0]] == ["slack-ml", "team-b-only"]
    _, problems = selected({"annotations": {"headway.dev/notify": "slack-ml"}}, "ml", NotificationConfig())
    assert "it has none: notifications are not configured" in problems[0].message
    many = NotificationConfig(sinks=parse_sinks([{"name": f"s{i}", "type": "webhook", "secret": {"name": "s", "key": "k"}} for i in range(7)]))
    sinks, problems = selected({"annotations": {"headway.dev/notify": ",".join(f"s{i}" for i in range(7))}}, "ml", many)
    assert len(sinks) == 5 and [p.message for p in problems] == [f"at most 5 notification sinks per ModelDeployment: 's{i}' is not used"
                                                                 for i in (5, 6)]


def test_a_problem_is_announced_once_when_it_appears_or_changes() -> None:
    _, problems = selected({"annotations": {"headway.dev/notify": "nope"}}, "ml", CONFIG)
    first = settle(None, [], problems, at(0), CONFIG.max_age)
    assert first is not None and first.problems == problems
    (event,) = problem_events(None, first)
    assert event.type == "Warning" and event.reason == "NotificationSinkInvalid" and "metadata.annotations[headway.dev/notify]" in event.message
    assert settle(first, [], problems, at(5), CONFIG.max_age) is first  # unchanged: nothing to write, nothing to say
    assert problem_events(first, first) == []
    fixed = settle(first, [], [], at(9), CONFIG.max_age)
    assert fixed is not None and fixed.problems == [] and problem_events(first, fixed) == []


# ---------------------------------------------------------------------------------------------
# what is due, and once


def test_each_transition_is_due_once_per_sink_in_history_order(cluster: Cluster) -> None:
    deliveries = due(SUBJECT, ALL, cluster.status, CONFIG, at(110))
    expected = ["RolloutStarted", "StepCompleted", "Promoted", "RolloutStarted", "RolledBack"]
    assert events(deliveries, "hook") == events(deliveries, "slack-ml") == events(deliveries, "teams-ml") == expected
    assert events(deliveries, "pager") == ["StepCompleted", "Promoted", "RolledBack"]  # its events filter
    assert not {"Deployed", "StepStarted", "PromotionStarted"} & {d.entry.event for d in deliveries}
    assert len({d.key for d in deliveries}) == len(deliveries)
    rolled_back = [d for d in deliveries if d.entry.event == "RolledBack"]
    assert {d.entry.revision for d in rolled_back} == {rev("3.0.0")}

    # Recorded: never due again, whatever reconciles or processes come next.
    status = cluster.status.model_copy(update={"notifications": settle(None, delivered(deliveries), [], at(110), CONFIG.max_age)})
    assert due(SUBJECT, ALL, status, CONFIG, at(111)) == []
    # A new transition is the only thing due.
    later = status.model_copy(update={"history": [*status.history, HistoryEntry(time=ts(120), event="Aborted", revision=rev("3.0.0"),
                                                                                message="aborted by a user")]})
    assert [(d.sink.name, d.entry.event) for d in due(SUBJECT, ALL, later, CONFIG, at(121))] == [
        ("hook", "Aborted"), ("slack-ml", "Aborted"), ("teams-ml", "Aborted"), ("pager", "Aborted")]


def test_keys_are_the_same_in_every_process_and_differ_per_entry_and_sink(cluster: Cluster) -> None:
    first = due(SUBJECT, ALL, cluster.status, CONFIG, at(110))
    again = due(SUBJECT, ALL, ModelDeploymentStatus.model_validate(json.loads(json.dumps(cluster.status.dump()))), CONFIG, at(200))
    assert [d.key for d in first] == [d.key for d in again]  # a restart resends with the same key
    entry = cluster.status.history[-1]
    assert delivery_key(OWNER.uid, entry, "hook") != delivery_key(OWNER.uid, entry, "slack-ml")
    assert delivery_key(OWNER.uid, entry, "hook") != delivery_key("another-uid", entry, "hook")  # a recreated object
    moved = entry.model_copy(update={"time": ts(999)})
    assert delivery_key(OWNER.uid, entry, "hook") != delivery_key(OWNER.uid, moved, "hook")


def test_a_delivery_finished_but_not_recorded_is_due_again_with_the_same_key(cluster: Cluster) -> None:
    """The operator died between the receiver's 2xx and the status write: at least once, same key."""
    deliveries = due(SUBJECT, ALL, cluster.status, CONFIG, at(110))
    recorded = settle(None, delivered(deliveries[:3]), [], at(110), CONFIG.max_age)
    status = cluster.status.model_copy(update={"notifications": recorded})
    assert [d.key for d in due(SUBJECT, ALL, status, CONFIG, at(112))] == [d.key for d in deliveries[3:]]


def test_stale_entries_are_never_sent(cluster: Cluster) -> None:
    """An operator starting (or a sink named) long after a transition does not announce it."""
    assert due(SUBJECT, ALL, cluster.status, CONFIG, at(104) + timedelta(minutes=11)) == []
    # Within the max age, only the recent part: the rollback at 104 s, not the promotion at 72 s.
    short = NotificationConfig(sinks=SINKS, max_age_seconds=20)
    assert {d.entry.event for d in due(SUBJECT, ALL, cluster.status, short, at(110))} == {"RolledBack", "RolloutStarted"}
    unparseable = cluster.status.model_copy(update={"history": [HistoryEntry(time="yesterday", event="RolledBack")]})
    assert due(SUBJECT, ALL, unparseable, CONFIG, at(110)) == []


def test_awaiting_approval_is_due_with_who_is_awaited() -> None:
    """spec.governance's stage, as the planner records it (a hand-made status: one entry per stage and revision)."""
    entry = HistoryEntry(time=ts(10), event="AwaitingApproval", revision="3f9a0c1b2d", bento="fraud_scorer:3.3.0",
                         message="fraud_scorer:3.3.0 waits for approvals before promotion (after canary 50%): 1 risk",
                         evidence={"stage": "BeforePromotion", "evidenceDigest": "9b2c" * 16,
                                   "waitingFor": [{"role": "risk", "missing": 1}, {"role": "ml-lead", "missing": 2}]})
    status = ModelDeploymentStatus(phase="AwaitingApproval", history=[entry])  # type: ignore[arg-type]
    (slack,) = due(SUBJECT, {"annotations": {"headway.dev/notify": "slack-ml"}}, status, CONFIG, at(20))
    assert slack.notice.title == "Awaiting approval"
    text = json.dumps(build_request(slack, "https://hooks.slack.com/services/T0/B0/x").body)
    assert "Waiting for: 1 x risk, 2 x ml-lead" in text and "9b2c9b2c" in text


# ---------------------------------------------------------------------------------------------
# status.notifications


def test_settle_records_outcomes_and_changes_nothing_when_nothing_finished(cluster: Cluster) -> None:
    deliveries = due(SUBJECT, ALL, cluster.status, CONFIG, at(110))
    failed = Outcome(deliveries[0], "Failed", at(111), 1, "HTTP 404: no_service")
    expired = Outcome(deliveries[1], "Expired", at(112), 9, "still failing: HTTP 503")
    recorded = settle(None, [failed, expired, *delivered(deliveries[2:4])], [], at(112), CONFIG.max_age)
    assert recorded is not None
    first = recorded.deliveries[0]
    assert first == NotificationDelivery(key=deliveries[0].key, sink="hook", event="RolloutStarted", time=deliveries[0].entry.time,
                                         revision=rev("2.0.0"), result="Failed", at=ts(111), attempts=1, message="HTTP 404: no_service")
    assert [d.result for d in recorded.deliveries] == ["Failed", "Expired", "Delivered", "Delivered"]
    assert settle(recorded, [], [], at(113), CONFIG.max_age) is recorded  # a steady reconcile writes nothing
    assert settle(recorded, [failed], [], at(113), CONFIG.max_age) is recorded  # an outcome seen twice is recorded once
    assert settle(None, [], [], at(113), CONFIG.max_age) is None  # nothing to say: no status.notifications at all
    # The record survives the status' wire form (the CRD's schema prunes anything else).
    wire = ModelDeploymentStatus.model_validate(ModelDeploymentStatus(notifications=recorded).dump())
    assert wire.notifications == recorded


def test_records_past_the_max_age_are_pruned_when_another_is_added(cluster: Cluster) -> None:
    deliveries = due(SUBJECT, ALL, cluster.status, CONFIG, at(110))
    recorded = settle(None, delivered(deliveries[:2]), [], at(110), CONFIG.max_age)
    later = at(110) + timedelta(minutes=30)
    fresh_entry = HistoryEntry(time=ts(110 + 1800), event="Aborted", message="aborted")
    new = Delivery(delivery_key(OWNER.uid, fresh_entry, "hook"), SINKS[0], SUBJECT, fresh_entry)
    pruned = settle(recorded, [Outcome(new, "Delivered", later, 1)], [], later, CONFIG.max_age)
    assert pruned is not None and [d.event for d in pruned.deliveries] == ["Aborted"]


# ---------------------------------------------------------------------------------------------
# payloads, checked with the receivers' own tooling


def rolled_back(cluster: Cluster, sink: str) -> Delivery:
    return next(d for d in due(SUBJECT, ALL, cluster.status, CONFIG, at(110)) if d.sink.name == sink and d.entry.event == "RolledBack")


def of_event(cluster: Cluster, sink: str, event: str) -> Delivery:
    return next(d for d in due(SUBJECT, ALL, cluster.status, CONFIG, at(110)) if d.sink.name == sink and d.entry.event == event)


def test_the_evidence_in_words(cluster: Cluster) -> None:
    assert evidence_lines(rolled_back(cluster, "hook").entry.evidence) == [
        "Traffic: stable=100",
        "Analysis: Fail after 3 measurement(s)",
        "errorRate (candidate): Fail, 0.034 against 0.01 (baseline 0.002), 1200 requests",
    ]
    drift = {"features": [{"feature": "income", "result": "Drifted", "psi": 0.3141, "adjustedPValue": 1.2e-6}]}
    assert evidence_lines(drift) == ["income: Drifted, PSI 0.3141, adjusted p 1.2e-06"]
    assert evidence_lines(None) == [] and evidence_lines({"unknown": [1, 2]}) == []


def test_slack_blocks_are_valid_block_kit(cluster: Cluster) -> None:
    for event in ("RolloutStarted", "StepCompleted", "Promoted", "RolledBack"):
        request = build_request(of_event(cluster, "slack-ml", event), "https://hooks.slack.com/services/T000/B000/XXXX\n")
        assert request.url == "https://hooks.slack.com/services/T000/B000/XXXX"  # the Secret's value, newline stripped
        body = request.body
        assert set(body) == {"text", "blocks"} and body["text"].startswith(NOTIFIED[event].title + ": ml/fraud-scorer")
        for block in body["blocks"]:
            parsed = Block.parse(block)
            assert parsed is not None, block
            parsed.validate_json()  # Slack's limits: header 150 characters, 10 fields, 3000 characters a section
            assert parsed.to_dict() == block  # nothing Slack's models do not know
    body = build_request(rolled_back(cluster, "slack-ml"), "https://hooks.slack.com/x").body
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "section", "context"]
    assert body["blocks"][0]["text"]["text"] == "Rolled back: ml/fraud-scorer"
    assert "errorRate (candidate): Fail, 0.034 against 0.01" in body["blocks"][3]["text"]["text"]


def test_slack_text_cannot_make_links_or_mentions(cluster: Cluster) -> None:
    entry = rolled_back(cluster, "slack-ml").entry.model_copy(update={"message": "<!channel> see <https://evil.example|here> & more"})
    delivery = Delivery("k" * 32, SINKS[1], SUBJECT, entry)
    text = json.dumps(build_request(delivery, "https://hooks.slack.com/x").body)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&amp; more" in text


def test_a_long_title_is_cut_to_slacks_limit() -> None:
    subject = Subject("ml", "m" * 200, "uid")
    entry = HistoryEntry(time=ts(0), event="RolledBack", message="x" * 5000)
    body = build_request(Delivery("k" * 32, SINKS[1], subject, entry), "https://hooks.slack.com/x").body
    for block in body["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def adaptive_card_schema() -> jsonschema.Draft6Validator:
    schema = json.loads((importlib.resources.files("adaptive_cards") / "schemas" / "schema-1.4.json").read_text())
    return jsonschema.Draft6Validator(schema)


def test_teams_gets_a_valid_adaptive_card_in_a_message_envelope(cluster: Cluster, adaptive_card_schema: jsonschema.Draft6Validator) -> None:
    for event in ("RolloutStarted", "StepCompleted", "Promoted", "RolledBack"):
        body = build_request(of_event(cluster, "teams-ml", event), "https://prod-00.westeurope.logic.azure.com/workflows/x").body
        assert body["type"] == "message" and len(body["attachments"]) == 1
        attachment = body["attachments"][0]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive" and attachment["contentUrl"] is None
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
        errors = [e.message for e in adaptive_card_schema.iter_errors(card)]
        assert errors == [], errors
    card = build_request(rolled_back(cluster, "teams-ml"), "https://x.example/hook").body["attachments"][0]["content"]
    assert card["body"][0] == {"type": "TextBlock", "text": "Rolled back: ml/fraud-scorer", "weight": "Bolder", "size": "Medium",
                               "wrap": True, "color": "Attention"}
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Revision"] == rev("3.0.0") and facts["Bento"] == "fraud_scorer:3.0.0"
    # The schema check bites: a misspelt property is refused.
    broken = json.loads(json.dumps(card))
    broken["body"][0]["colour"] = broken["body"][0].pop("color")
    assert list(adaptive_card_schema.iter_errors(broken))


@pytest.fixture()
def pagerduty_reference() -> list[tuple[str, dict[str, Any]]]:
    """What PagerDuty's official client sends, recorded by a transport that answers as the Events API does."""
    import httpx2
    import pagerduty

    got: list[tuple[str, dict[str, Any]]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        got.append((request.url.path, body))
        return httpx2.Response(202, json={"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key", "new")})

    client = pagerduty.EventsApiV2Client("R0UT1NGKEY", transport=httpx2.MockTransport(answer))
    client.trigger("summary", "source", dedup_key="d", severity="error",
                   payload={"timestamp": ts(0), "component": "c", "group": "g", "class": "k"}, custom_details={"a": 1})
    client.resolve("d")
    client.send_change_event(payload={"summary": "s", "source": "src", "timestamp": ts(0), "custom_details": {"a": 1}})
    return got


def shape(value: Any) -> Any:
    """Keys and value types, recursively: what two requests must share to be the same kind of request."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


def test_pagerduty_requests_have_the_official_clients_shape(cluster: Cluster, pagerduty_reference: list[tuple[str, dict[str, Any]]]) -> None:
    (trigger_path, trigger), (resolve_path, resolve), (change_path, change) = pagerduty_reference
    assert (trigger_path, resolve_path, change_path) == ("/v2/enqueue", "/v2/enqueue", "/v2/change/enqueue")

    url = "https://events.eu.pagerduty.com"
    pd = SINKS[3].model_copy(update={"url": url})
    ours = {event: build_request(Delivery(d.key, pd, d.subject, d.entry), "R0UT1NGKEY\n")
            for event in ("RolledBack", "Promoted", "StepCompleted") for d in [of_event(cluster, "pager", event)]}
    rolled = ours["RolledBack"]
    assert rolled.url == f"{url}/v2/enqueue"
    assert shape({k: v for k, v in rolled.body.items() if k != "client"})["payload"].keys() == shape(trigger)["payload"].keys()
    assert {k for k in rolled.body if k != "client"} == set(trigger)
    assert shape(rolled.body["payload"]["custom_details"]["evidence"]["analysis"]["verdicts"][0])["value"] == "float"
    assert rolled.body["event_action"] == "trigger" and rolled.body["payload"]["severity"] == "error"
    assert rolled.body["routing_key"] == "R0UT1NGKEY" and rolled.body["dedup_key"] == "headway/ml/fraud-scorer/rollout"
    assert rolled.body["payload"]["summary"].startswith("Rolled back: ml/fraud-scorer: fraud_scorer:3.0.0 rolled back (FailedAnalysis)")
    assert rolled.body["payload"]["source"] == "ml/fraud-scorer"
    # The promotion resolves the rollout alert: the same dedup_key, the shape of the client's resolve.
    assert ours["Promoted"].url == f"{url}/v2/enqueue" and shape(ours["Promoted"].body) == shape(resolve)
    assert ours["Promoted"].body == {"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": "headway/ml/fraud-scorer/rollout"}
    # A step passing pages nobody: a change event, on the service's timeline.
    assert ours["StepCompleted"].url == f"{url}/v2/change/enqueue" and shape(ours["StepCompleted"].body).keys() == shape(change).keys()
    assert shape(ours["StepCompleted"].body)["payload"].keys() == shape(change)["payload"].keys()


def test_pagerduty_alerts_are_one_per_modeldeployment_and_trouble(cluster: Cluster) -> None:
    rolled = rolled_back(cluster, "pager")
    drift = Delivery("k" * 32, SINKS[3], SUBJECT, HistoryEntry(time=ts(0), event="DataDrift", message="income drifted"))
    cleared = Delivery("j" * 32, SINKS[3], SUBJECT, HistoryEntry(time=ts(9), event="DataDriftCleared", message="no drift"))
    assert pagerduty_dedup_key(drift) == pagerduty_dedup_key(cleared) == "headway/ml/fraud-scorer/drift" != pagerduty_dedup_key(rolled)
    assert build_request(cleared, "key").body["event_action"] == "resolve"
    prod = Delivery(rolled.key, rolled.sink, Subject("ml", "fraud-scorer", OWNER.uid, "prod-eu"), rolled.entry)
    assert pagerduty_dedup_key(prod) == "headway/prod-eu/ml/fraud-scorer/rollout"
    assert build_request(prod, "key").body["payload"]["source"] == "prod-eu/ml/fraud-scorer"
    assert build_request(rolled, "key").url == "https://events.pagerduty.com/v2/enqueue"


def test_the_webhook_gets_the_evidence_and_an_idempotency_key(cluster: Cluster) -> None:
    delivery = rolled_back(cluster, "hook")
    request = build_request(delivery, "https://hooks.example.com/headway")
    assert request.headers["Idempotency-Key"] == delivery.key and request.headers["X-Headway-Event"] == "RolledBack"
    assert request.headers["Content-Type"] == "application/json"
    body = request.body
    assert body["id"] == delivery.key and body["event"] == "RolledBack" and body["severity"] == "error"
    assert body["modelDeployment"] == {"namespace": "ml", "name": "fraud-scorer", "uid": OWNER.uid}
    assert body["evidence"] == delivery.entry.evidence and body["evidence"]["analysis"]["verdicts"][0]["value"] == 0.034
    assert body["revision"] == rev("3.0.0") and body["time"] == ts(104)
    # The same bytes on every resend: a function of the delivery, not of when it is sent.
    assert json.dumps(build_request(delivery, "https://hooks.example.com/headway").body) == json.dumps(body)


@pytest.mark.parametrize("secret", ["hooks.slack.com/services/x", "", "https://hooks.slack.com/a b", "ftp://x"])
def test_a_secret_that_is_not_a_url_is_refused_without_showing_it(cluster: Cluster, secret: str) -> None:
    with pytest.raises(SecretValueError) as raised:
        build_request(rolled_back(cluster, "slack-ml"), secret)
    assert "key 'slack' of Secret hw-notify is not an http(s) URL" in str(raised.value)
    assert not secret or secret not in str(raised.value)
    with pytest.raises(SecretValueError, match="not a PagerDuty routing key"):
        build_request(rolled_back(cluster, "pager"), "two words")


# ---------------------------------------------------------------------------------------------
# answers and retries


@pytest.mark.parametrize(("status", "delivered", "retry"), [
    (200, True, False), (202, True, False), (204, True, False),
    (408, False, True), (425, False, True), (429, False, True), (500, False, True), (503, False, True),
    (302, False, False), (400, False, False), (403, False, False), (404, False, False), (410, False, False),
])
def test_what_an_answer_means(status: int, delivered: bool, retry: bool) -> None:
    answer = judge(status, "  no_service\n")
    assert (answer.delivered, answer.retry) == (delivered, retry)
    assert answer.message == f"HTTP {status}: no_service"
    assert len(judge(500, "x" * 10_000).message) < 220


def test_retries_back_off_exponentially_and_honour_retry_after() -> None:
    assert [retry_delay(n, 2.0) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert retry_delay(1, 2.0, retry_after=30) == 30 and retry_delay(5, 2.0, retry_after=3) == 32
    assert retry_delay(1, 2.0, retry_after=86400) == 300
    assert parse_retry_after("120") == 120.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", at(0).timestamp()) == 30.0


def test_every_notified_event_has_a_payload_for_every_sink_type() -> None:
    for event in NOTIFIED:
        entry = HistoryEntry(time=ts(0), event=event, revision="abc", message=f"{event} happened")
        for sink in SINKS[:4]:
            request = build_request(Delivery("k" * 32, sink, SUBJECT, entry), "https://x.example/h" if sink.type != "pagerduty" else "key")
            assert request.body and request.url.startswith("https://")


def test_status_records_carry_the_key_the_receivers_saw(cluster: Cluster) -> None:
    deliveries = due(SUBJECT, ALL, cluster.status, CONFIG, at(110))
    recorded = settle(None, delivered(deliveries), [], at(110), CONFIG.max_age)
    assert isinstance(recorded, NotificationStatus)
    keys = {d.key for d in recorded.deliveries}
    assert keys == {build_request(d, "https://x.example" if d.sink.type != "pagerduty" else "key").headers["Idempotency-Key"]
                    for d in deliveries}
