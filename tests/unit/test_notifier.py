"""The notifier (headway/notify.py): real HTTP to a receiver on 127.0.0.1, retries, order, and the reconciler's contract.

Nothing here sleeps to let time pass: tests wait for what the receiver got or for an outcome. The
stale rule is driven by an injected wall clock.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from headway.api.status import HistoryEntry, ModelDeploymentStatus
from headway.k8s.client import ApiError
from headway.notify import Notifier, SecretUnavailable, post_json, read_secret
from headway.planning.conditions import rfc3339
from headway.planning.notification_payloads import HttpRequest, SecretValueError
from headway.planning.notifications import Delivery, NotificationConfig, Outcome, SecretRef, Subject, delivery_key, parse_sinks
from headway.sandbox.processes import free_port
from tests.support.notification_receiver import Receiver, receiving

SUBJECT = Subject("ml", "fraud-scorer", "uid-1")
SINKS = parse_sinks([
    {"name": "hook", "type": "webhook", "secret": {"name": "hw", "key": "hook"}},
    {"name": "slack", "type": "slack", "secret": {"name": "hw", "key": "slack"}},
])


def until(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def entry(event: str, when: datetime, message: str = "") -> HistoryEntry:
    return HistoryEntry(time=rfc3339(when), event=event, revision="abc1234567", bento="fraud_scorer:2.0.0", message=message or event)


def delivery(event: str, when: datetime, sink: int = 0) -> Delivery:
    e = entry(event, when)
    return Delivery(delivery_key(SUBJECT.uid, e, SINKS[sink].name), SINKS[sink], SUBJECT, e)


class Woken:
    """on_done: which ModelDeployments were woken, how often."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, key: tuple[str, str]) -> None:
        with self._lock:
            self.keys.append(key)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def make(receiver: Receiver, *, wall: Callable[[], datetime] | None = None, secrets: Callable[[SecretRef], str] | None = None,
         **config: Any) -> tuple[Notifier, Woken]:
    woken = Woken()
    settings = NotificationConfig(sinks=SINKS, secret_namespace="headway-system", **{"backoff_seconds": 0.02, **config})
    urls = {"hook": f"{receiver.url}/hook", "slack": f"{receiver.url}/slack/T0/B0"}
    notifier = Notifier(settings, secrets or (lambda ref: urls[ref.key]), woken,
                        **({"wall": wall} if wall is not None else {}))
    return notifier, woken


def outcome(notifier: Notifier, key: str) -> Outcome:
    return until(f"the outcome of {key}", lambda: next((o for o in notifier.outcomes(("ml", "fraud-scorer")) if o.delivery.key == key), None))


# ---------------------------------------------------------------------------------------------
# one request


def test_post_json_judges_the_receivers_answer(receiver: Receiver) -> None:
    request = HttpRequest(f"{receiver.url}/hook", {"a": "é"}, {"Content-Type": "application/json", "Idempotency-Key": "k1"})
    answer = post_json(request, 5)
    assert answer.delivered and not answer.retry
    (got,) = receiver.at("/hook")
    assert got.body == {"a": "é"} and got.headers["idempotency-key"] == "k1"

    receiver.fail("/hook", [503], {"Retry-After": "7"})
    answer = post_json(request, 5)
    assert not answer.delivered and answer.retry and answer.retry_after == 7.0 and answer.message == "HTTP 503: temporarily unavailable"
    receiver.fail("/hook", [404])
    answer = post_json(request, 5)
    assert not answer.delivered and not answer.retry and answer.message.startswith("HTTP 404")


def test_a_redirect_is_reported_not_followed(receiver: Receiver) -> None:
    receiver.fail("/hook", [302], {"Location": f"{receiver.url}/elsewhere"})
    answer = post_json(HttpRequest(f"{receiver.url}/hook", {}, {}), 5)
    assert not answer.delivered and not answer.retry and answer.message.startswith("HTTP 302")
    assert receiver.at("/elsewhere", accepted_only=False) == []


def test_no_answer_is_worth_a_retry_and_never_shows_the_url(receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/s3cr3t"
    answer = post_json(HttpRequest(url, {}, {}), 2)
    assert answer.retry and "no answer" in answer.message and "s3cr3t" not in answer.message
    receiver.stall("/slow", 2.0)
    answer = post_json(HttpRequest(f"{receiver.url}/slow", {}, {}), 0.2)
    assert answer.retry and "timed out" in answer.message


# ---------------------------------------------------------------------------------------------
# the Secret


class FakeKube:
    def __init__(self, objects: dict[str, Any], error: ApiError | None = None) -> None:
        self.objects, self.error, self.asked = objects, error, []

    def get(self, kind: Any, namespace: str, name: str) -> Any:
        self.asked.append((kind.plural, namespace, name))
        if self.error is not None:
            raise self.error
        return self.objects.get(name)


def test_read_secret_says_what_is_missing_without_the_value() -> None:
    url = "https://hooks.slack.com/services/T0/B0/s3cr3t"
    kube = FakeKube({"hw": {"data": {"slack": base64.b64encode(f"{url}\n".encode()).decode(), "bad": "%%%"}}})
    assert read_secret(kube, "headway-system", SecretRef(name="hw", key="slack")) == url  # type: ignore[arg-type]
    assert kube.asked == [("secrets", "headway-system", "hw")]
    with pytest.raises(SecretUnavailable, match="Secret headway-system/hw has no key 'teams'"):
        read_secret(kube, "headway-system", SecretRef(name="hw", key="teams"))  # type: ignore[arg-type]
    with pytest.raises(SecretUnavailable, match="Secret headway-system/other does not exist"):
        read_secret(kube, "headway-system", SecretRef(name="other", key="slack"))  # type: ignore[arg-type]
    with pytest.raises(SecretValueError, match="not base64"):
        read_secret(kube, "headway-system", SecretRef(name="hw", key="bad"))  # type: ignore[arg-type]
    denied = FakeKube({}, ApiError(403, "Forbidden", 'secrets "hw" is forbidden'))
    with pytest.raises(SecretUnavailable, match="cannot be read: 403 Forbidden"):
        read_secret(denied, "headway-system", SecretRef(name="hw", key="slack"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# deliveries


def test_a_failing_receiver_is_retried_with_the_same_key_and_body_until_it_accepts(receiver: Receiver) -> None:
    notifier, woken = make(receiver)
    try:
        receiver.fail("/hook", [500, 503, 429])
        d = delivery("RolledBack", datetime.now(timezone.utc))
        assert notifier.submit(("ml", "fraud-scorer"), [d]) == 1
        done = outcome(notifier, d.key)
        assert done.result == "Delivered" and done.attempts == 4
        got = receiver.at("/hook", accepted_only=False)
        assert [r.status for r in got] == [500, 503, 429, 200]
        assert {r.headers["idempotency-key"] for r in got} == {d.key} and all(r.body == got[0].body for r in got)
        assert woken.keys == [("ml", "fraud-scorer")]  # once, when it finished
    finally:
        notifier.stop()


def test_retry_after_is_honoured(receiver: Receiver) -> None:
    notifier, _ = make(receiver)
    try:
        receiver.fail("/hook", [429], {"Retry-After": "1"})
        d = delivery("RolledBack", datetime.now(timezone.utc))
        notifier.submit(("ml", "fraud-scorer"), [d])
        assert outcome(notifier, d.key).result == "Delivered"
        first, second = receiver.at("/hook", accepted_only=False)
        assert (first.status, second.status) == (429, 200)
        assert second.at - first.at >= 1.0  # not the 0.02 s backoff: the receiver asked for a second
    finally:
        notifier.stop()


def test_a_refusal_is_final_and_recorded(receiver: Receiver) -> None:
    notifier, woken = make(receiver)
    try:
        receiver.fail("/hook", [410])
        d = delivery("RolledBack", datetime.now(timezone.utc))
        notifier.submit(("ml", "fraud-scorer"), [d])
        done = outcome(notifier, d.key)
        assert (done.result, done.attempts, done.message) == ("Failed", 1, "HTTP 410: temporarily unavailable")
        assert len(receiver.at("/hook", accepted_only=False)) == 1
    finally:
        notifier.stop()


def test_one_sink_gets_its_deliveries_in_history_order(receiver: Receiver) -> None:
    notifier, _ = make(receiver)
    try:
        now = datetime.now(timezone.utc)
        deliveries = [delivery(e, now + timedelta(seconds=i)) for i, e in enumerate(["RolloutStarted", "StepCompleted", "Promoted"])]
        receiver.fail("/hook", [503, 503])  # the first one is retried: the others wait for it
        notifier.submit(("ml", "fraud-scorer"), deliveries)
        for d in deliveries:
            outcome(notifier, d.key)
        accepted = [r.body["event"] for r in receiver.at("/hook")]
        assert accepted == ["RolloutStarted", "StepCompleted", "Promoted"]
    finally:
        notifier.stop()


def test_a_delivery_is_queued_once_and_never_again_once_recorded(receiver: Receiver) -> None:
    notifier, _ = make(receiver)
    try:
        receiver.stall("/hook", 0.3)
        d = delivery("Promoted", datetime.now(timezone.utc))
        assert notifier.submit(("ml", "fraud-scorer"), [d]) == 1
        assert notifier.submit(("ml", "fraud-scorer"), [d]) == 0  # in flight
        outcome(notifier, d.key)
        assert notifier.submit(("ml", "fraud-scorer"), [d]) == 0  # finished, waiting to be recorded
        notifier.persisted(("ml", "fraud-scorer"), {d.key})
        assert notifier.outcomes(("ml", "fraud-scorer")) == []
        assert notifier.submit(("ml", "fraud-scorer"), [d]) == 0  # recorded (a cache behind the write cannot resend it)
        assert len(receiver.at("/hook")) == 1
    finally:
        notifier.stop()


def test_a_receiver_down_past_the_max_age_expires_the_delivery(receiver: Receiver) -> None:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    offset = [timedelta(0)]
    notifier, woken = make(receiver, wall=lambda: start + offset[0], max_age_seconds=60)
    try:
        receiver.fail("/hook", [503] * 10_000)
        first, second = delivery("RolledBack", start), delivery("Promoted", start + timedelta(seconds=1))
        notifier.submit(("ml", "fraud-scorer"), [first, second])
        until("a failed attempt", lambda: receiver.at("/hook", accepted_only=False))
        offset[0] = timedelta(seconds=120)  # two minutes later: both entries are past the max age
        done = outcome(notifier, first.key)
        assert done.result == "Expired" and done.attempts >= 1
        assert done.message.startswith("still failing when the entry passed the max age: HTTP 503")
        late = outcome(notifier, second.key)
        assert (late.result, late.attempts) == ("Expired", 0)  # never sent: stale when its turn came
        assert {r.headers["idempotency-key"] for r in receiver.all()} == {first.key}
    finally:
        notifier.stop()


def test_a_missing_secret_is_retried_and_a_bad_one_fails(receiver: Receiver) -> None:
    calls = [0]

    def secrets(ref: SecretRef) -> str:
        if ref.key == "slack":
            return "hooks.slack.com/no-scheme"
        calls[0] += 1
        if calls[0] < 3:
            raise SecretUnavailable("Secret headway-system/hw does not exist")
        return f"{receiver.url}/hook"

    notifier, _ = make(receiver, secrets=secrets)
    try:
        now = datetime.now(timezone.utc)
        hook, slack = delivery("RolledBack", now), delivery("RolledBack", now, sink=1)
        notifier.submit(("ml", "fraud-scorer"), [hook, slack])
        assert (outcome(notifier, hook.key).result, outcome(notifier, hook.key).attempts) == ("Delivered", 3)
        failed = outcome(notifier, slack.key)
        assert failed.result == "Failed" and "key 'slack' of Secret hw is not an http(s) URL" in failed.message
        assert [r.path for r in receiver.all()] == ["/hook"]
    finally:
        notifier.stop()


def test_forget_drops_a_deleted_modeldeployments_deliveries(receiver: Receiver) -> None:
    notifier, _ = make(receiver)
    try:
        receiver.fail("/hook", [503] * 10_000)
        d = delivery("RolledBack", datetime.now(timezone.utc))
        notifier.submit(("ml", "fraud-scorer"), [d])
        until("a failed attempt", lambda: receiver.at("/hook", accepted_only=False))
        notifier.forget(("ml", "fraud-scorer"))
        until("nothing pending", lambda: notifier.pending() == 0)
        assert notifier.outcomes(("ml", "fraud-scorer")) == []
    finally:
        notifier.stop()


# ---------------------------------------------------------------------------------------------
# the reconciler's contract: dispatch after a durable write, settle into the next one


def test_dispatch_then_settle_records_each_delivery_once(receiver: Receiver) -> None:
    notifier, woken = make(receiver)
    try:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        status = ModelDeploymentStatus(history=[entry("RolloutStarted", now), entry("StepStarted", now), entry("Promoted", now)])
        metadata = {"annotations": {"headway.dev/notify": "hook,slack"}}
        assert notifier.dispatch(SUBJECT, metadata, status, now) == 4  # two notified entries x two sinks
        assert notifier.dispatch(SUBJECT, metadata, status, now) == 0  # the next reconcile, before they finish
        until("four deliveries", lambda: len(notifier.outcomes(("ml", "fraud-scorer"))) == 4)
        until("woken", lambda: woken.keys)
        written, events = notifier.settle(SUBJECT, metadata, status, now)
        assert events == [] and written.notifications is not None
        assert sorted((d.sink, d.event, d.result) for d in written.notifications.deliveries) == [
            ("hook", "Promoted", "Delivered"), ("hook", "RolloutStarted", "Delivered"),
            ("slack", "Promoted", "Delivered"), ("slack", "RolloutStarted", "Delivered")]
        assert notifier.dispatch(SUBJECT, metadata, written, now) == 0  # durable: done with
        assert notifier.outcomes(("ml", "fraud-scorer")) == []
        assert notifier.settle(SUBJECT, metadata, written, now) == (written, [])  # a steady reconcile: no write
        assert len(receiver.at("/hook")) == 2 and len(receiver.at("/slack/T0/B0")) == 2

        # A new process (nothing in memory) reading the written status sends nothing again.
        fresh, _ = make(receiver)
        try:
            assert fresh.dispatch(SUBJECT, metadata, written, now) == 0
        finally:
            fresh.stop()
        # A process that died before the write resends, with the same keys.
        again, _ = make(receiver)
        try:
            assert again.dispatch(SUBJECT, metadata, status, now) == 4
            until("the resends", lambda: len(receiver.at("/hook")) == 4)
            keys = [r.headers["idempotency-key"] for r in receiver.at("/hook")]
            assert keys[:2] == keys[2:]
        finally:
            again.stop()
    finally:
        notifier.stop()


def test_an_outcome_too_old_to_be_recorded_is_not_kept(receiver: Receiver) -> None:
    """A delivery that finished while its ModelDeployment's writes kept failing, until its entry was past
    the max age: settle would prune its record, so the notifier lets it go too (and never resends it)."""
    start = datetime.now(timezone.utc).replace(microsecond=0)
    offset = [timedelta(0)]
    notifier, _ = make(receiver, wall=lambda: start + offset[0], max_age_seconds=60)
    try:
        d = delivery("RolledBack", start)
        notifier.submit(("ml", "fraud-scorer"), [d])
        outcome(notifier, d.key)
        offset[0] = timedelta(hours=1)
        status = ModelDeploymentStatus(history=[d.entry])
        written, _ = notifier.settle(SUBJECT, {"annotations": {"headway.dev/notify": "hook"}}, status, start + offset[0])
        assert written.notifications is None  # nothing worth recording any more
        assert notifier.dispatch(SUBJECT, {"annotations": {"headway.dev/notify": "hook"}}, written, start + offset[0]) == 0
        assert notifier.outcomes(("ml", "fraud-scorer")) == []
        assert len(receiver.at("/hook")) == 1
    finally:
        notifier.stop()


def test_settle_reports_an_unknown_sink_once(receiver: Receiver) -> None:
    notifier, _ = make(receiver)
    try:
        now = datetime.now(timezone.utc)
        metadata = {"annotations": {"headway.dev/notify": "hook,pager"}}
        written, events = notifier.settle(SUBJECT, metadata, ModelDeploymentStatus(), now)
        assert written.notifications is not None
        assert [p.field for p in written.notifications.problems] == ["metadata.annotations[headway.dev/notify]"]
        assert [e.reason for e in events] == ["NotificationSinkInvalid"] and "'pager'" in events[0].message
        assert notifier.settle(SUBJECT, metadata, written, now) == (written, [])
    finally:
        notifier.stop()


# ---------------------------------------------------------------------------------------------
# signed webhooks


SIGNING_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SIGNED = parse_sinks([{"name": "signed", "type": "webhook", "secret": {"name": "hw", "key": "hook"},
                       "signingSecret": {"name": "hw-signing", "key": "signed"}}])


def signed_notifier(receiver: Receiver, signing_secret: str) -> Notifier:
    settings = NotificationConfig(sinks=SIGNED, secret_namespace="headway-system", backoff_seconds=0.02)
    values = {"hook": f"{receiver.url}/signed", "signed": signing_secret}
    return Notifier(settings, lambda ref: values[ref.key], Woken())


def test_a_signed_webhook_verifies_with_the_standard_webhooks_library_on_every_attempt(receiver: Receiver) -> None:
    """A receiver verifies each attempt with the Standard Webhooks reference library: the same
    webhook-id (the delivery's key) every time, the signature over the bytes it got; a changed body,
    another secret or a replayed old timestamp is refused."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    notifier = signed_notifier(receiver, SIGNING_SECRET)
    try:
        receiver.fail("/signed", [503], {"Retry-After": "1"})  # the retry comes in a later second
        e = entry("RolledBack", datetime.now(timezone.utc))
        d = Delivery(delivery_key(SUBJECT.uid, e, "signed"), SIGNED[0], SUBJECT, e)
        notifier.submit(("ml", "fraud-scorer"), [d])
        assert outcome(notifier, d.key).result == "Delivered"
        attempts = receiver.at("/signed", accepted_only=False)
        assert len(attempts) == 2
        verifier = Webhook(SIGNING_SECRET)
        for got in attempts:
            assert got.headers["webhook-id"] == d.key == got.headers["idempotency-key"]
            assert verifier.verify(got.raw, got.headers) == got.body  # raises when the signature does not match
        first, got = attempts
        assert int(got.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])  # signed when sent
        with pytest.raises(WebhookVerificationError):
            verifier.verify(got.raw.replace(b"RolledBack", b"Promoted"), got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(bytes(32)).decode()).verify(got.raw, got.headers)
    finally:
        notifier.stop()


def test_during_a_rotation_each_request_is_signed_with_both_secrets(receiver: Receiver) -> None:
    """Two secrets in the Secret's value: receivers holding either verify (Standard Webhooks' zero-downtime rotation)."""
    from standardwebhooks.webhooks import Webhook

    new = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
    notifier = signed_notifier(receiver, f"{SIGNING_SECRET} {new}\n")
    try:
        e = entry("Promoted", datetime.now(timezone.utc))
        d = Delivery(delivery_key(SUBJECT.uid, e, "signed"), SIGNED[0], SUBJECT, e)
        notifier.submit(("ml", "fraud-scorer"), [d])
        assert outcome(notifier, d.key).result == "Delivered"
        (got,) = receiver.at("/signed")
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        assert Webhook(SIGNING_SECRET).verify(got.raw, got.headers) == Webhook(new).verify(got.raw, got.headers) == got.body
    finally:
        notifier.stop()


@pytest.mark.parametrize("value", [
    "correct horse battery staple",  # not base64
    "whsec_" + base64.b64encode(bytes(16)).decode(),  # too short a key
    "whsec_" + base64.b64encode(bytes(65)).decode(),  # too long
    f"{SIGNING_SECRET} whsec_%%%",  # a rotation whose second secret is not one
])
def test_a_signing_secret_that_is_not_one_fails_the_delivery_naming_it(receiver: Receiver, value: str) -> None:
    notifier = signed_notifier(receiver, value)  # words that are not base64; 16 bytes, too short a key
    try:
        e = entry("Promoted", datetime.now(timezone.utc))
        d = Delivery(delivery_key(SUBJECT.uid, e, "signed"), SIGNED[0], SUBJECT, e)
        notifier.submit(("ml", "fraud-scorer"), [d])
        done = outcome(notifier, d.key)
        assert done.result == "Failed" and "key 'signed' of Secret hw-signing is not a signing secret" in done.message
        assert not any(word in done.message for word in value.split())
        assert receiver.at("/signed", accepted_only=False) == []  # nothing unsigned went out
    finally:
        notifier.stop()


def test_an_unreadable_signing_secret_is_retried_and_nothing_unsigned_is_sent(receiver: Receiver) -> None:
    values = {"hook": f"{receiver.url}/signed"}
    asked: list[str] = []

    def read(ref: SecretRef) -> str:
        asked.append(ref.key)
        if ref.key not in values:
            raise SecretUnavailable(f"Secret headway-system/{ref.name} has no key {ref.key!r}")
        return values[ref.key]

    settings = NotificationConfig(sinks=SIGNED, secret_namespace="headway-system", backoff_seconds=0.02)
    notifier = Notifier(settings, read, Woken())
    try:
        e = entry("RolledBack", datetime.now(timezone.utc))
        d = Delivery(delivery_key(SUBJECT.uid, e, "signed"), SIGNED[0], SUBJECT, e)
        notifier.submit(("ml", "fraud-scorer"), [d])
        until("a few attempts without the signing Secret", lambda: asked.count("signed") >= 3)
        assert receiver.at("/signed", accepted_only=False) == []
        values["signed"] = SIGNING_SECRET  # the admin creates it
        assert outcome(notifier, d.key).result == "Delivered"
        from standardwebhooks.webhooks import Webhook

        (got,) = receiver.at("/signed")
        assert Webhook(SIGNING_SECRET).verify(got.raw, got.headers) == got.body
    finally:
        notifier.stop()
