"""Notifications of a ModelDeployment's transitions: which history entries go to which sinks, once.

Pure. A transition is recorded in ``status.history`` before anything follows it (write-ahead), so a
notification is a function of the ModelDeployment's metadata (which sinks it selects), its durable
status (the history and what was already delivered) and the clock:

- ``selected(metadata, namespace, config)``: the sinks the ``headway.dev/notify`` annotation and
  label name, and a problem naming the annotation or label for each name that cannot be used (an
  unknown sink, a sink that does not serve the namespace, too many names). Never an exception.
- ``due(subject, metadata, status, config, now)``: every (history entry, sink) pair whose event is
  notified (``NOTIFIED``), that the sink takes, that is at most ``max_age`` old and is not yet in
  ``status.notifications.deliveries``. Its key hashes the ModelDeployment's uid, the entry (time,
  event, revision, message) and the sink: every attempt and every resend after a restart carries
  the same key, which receivers deduplicate on (a webhook's Idempotency-Key, PagerDuty's
  dedup_key groups alerts per ModelDeployment).
- ``settle(previous, outcomes, problems, now, max_age)``: ``status.notifications`` with the
  deliveries the sender finished (delivered, refused, expired) recorded, so a later reconcile (or
  another operator process) never sends them again.

The stale rule: an entry older than ``max_age`` (10 minutes by default) is never sent. A first
start, an upgrade to a version with notifications, or a sink newly named by the annotation sends
only what happened in the last ``max_age``; a receiver down for longer than that misses the
transition (recorded as Expired). docs/notifications.md has the reasoning.

The payloads for each kind of sink are in ``notification_payloads.py``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from headway.api.status import NOTIFICATION_DELIVERIES, HistoryEntry, ModelDeploymentStatus, NotificationDelivery, NotificationStatus, ProblemStatus
from headway.planning.conditions import EventIntent, parse_time, rfc3339

NOTIFY_KEY = "headway.dev/notify"  # the annotation (comma-separated sink names) and the label (one sink name)
ANNOTATION_FIELD = f"metadata.annotations[{NOTIFY_KEY}]"
LABEL_FIELD = f"metadata.labels[{NOTIFY_KEY}]"
MAX_SINKS = 5  # per ModelDeployment: 20 history entries x 5 sinks bound status.notifications.deliveries
PRUNE_MARGIN = timedelta(minutes=10)  # a record outlives the max age by this much (clock skew between processes)
PAGERDUTY_URL = "https://events.pagerduty.com"
SinkType = Literal["webhook", "slack", "teams", "pagerduty"]
Severity = Literal["info", "success", "warning", "error"]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@dataclass(frozen=True)
class Notice:
    """How one kind of history entry is announced."""

    title: str
    severity: Severity
    pagerduty: Literal["change", "trigger", "resolve"]  # a PagerDuty change event, or an alert event's action
    incident: str | None = None  # the PagerDuty alert this event opens or resolves, per ModelDeployment


# The history events that are notified. Everything else (StepStarted, PromotionStarted, BakeStarted,
# ControlIgnored, ...) stays in status and Events only: the list, plus what closes or reopens
# it (a candidate replaced restarts the rollout; Approved answers AwaitingApproval; a breach after
# promotion is a rollback the bake did not make; drift cleared resolves drift).
NOTIFIED: dict[str, Notice] = {
    "RolloutStarted": Notice("Rollout started", "info", "change"),
    "CandidateReplaced": Notice("Rollout restarted with a new candidate", "info", "change"),
    "StepCompleted": Notice("Step passed", "info", "change"),
    "AwaitingApproval": Notice("Awaiting approval", "warning", "change"),
    "Approved": Notice("Approved", "info", "change"),
    "Rejected": Notice("Rejected by an approver", "warning", "change"),  # a person's decision: nobody to page
    "Promoted": Notice("Promoted", "success", "resolve", "rollout"),
    "Updated": Notice("Updated without rollout steps", "success", "change"),
    "RolledBack": Notice("Rolled back", "error", "trigger", "rollout"),
    "Aborted": Notice("Rollout aborted", "warning", "trigger", "rollout"),
    "BakeBreach": Notice("SLOs breached after promotion", "warning", "trigger", "rollout"),
    "DataDrift": Notice("Data drift", "warning", "trigger", "drift"),
    "DataDriftCleared": Notice("Data drift cleared", "success", "resolve", "drift"),
}


class SecretRef(BaseModel):
    """A key of a Secret in the operator's own namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class Sink(BaseModel):
    """Where notifications go, as the operator's settings name it (never a ModelDeployment: tenants
    are not trusted with URLs). The Secret holds the URL (webhook, slack, teams) or the routing key
    (pagerduty)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    type: SinkType
    secret: SecretRef
    url: str | None = Field(default=None, max_length=2048)
    """pagerduty only: the Events API's base URL (default https://events.pagerduty.com; the EU service's
    is https://events.eu.pagerduty.com)."""
    events: tuple[str, ...] | None = None
    """The history events this sink gets (default: every notified one)."""
    namespaces: tuple[str, ...] | None = None
    """The namespaces whose ModelDeployments may select this sink (default: any)."""
    signing_secret: SecretRef | None = Field(default=None, alias="signingSecret")
    """webhook only: a Secret key holding a Standard Webhooks signing secret (``whsec_`` + base64 of 24
    to 64 random bytes; two, space-separated, while rotating): every request then carries ``webhook-id``,
    ``webhook-timestamp`` and ``webhook-signature`` (HMAC-SHA256 of id, timestamp and body) for the
    receiver to verify."""

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [e for e in events or () if e not in NOTIFIED]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not notified events (these are: {', '.join(NOTIFIED)})")
        return events

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, namespaces: tuple[str, ...] | None) -> tuple[str, ...] | None:
        bad = [n for n in namespaces or () if len(n) > 63 or not re.match(DNS_LABEL, n)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not namespace names")
        return namespaces

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/") if url else url

    def takes(self, event: str) -> bool:
        return self.events is None or event in self.events


@dataclass(frozen=True)
class NotificationConfig:
    """The operator's notification settings (flags, environment, chart values)."""

    sinks: tuple[Sink, ...] = ()
    secret_namespace: str | None = None  # where the sinks' Secrets are: the operator's own namespace
    max_age_seconds: float = 600.0  # the stale rule: an entry older than this is never sent
    timeout_seconds: float = 10.0  # one request
    backoff_seconds: float = 2.0  # the first retry's delay; it doubles up to BACKOFF_CAP_SECONDS
    cluster: str = ""  # named in every notification when several clusters share a channel

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.max_age_seconds)

    def sink(self, name: str) -> Sink | None:
        return next((s for s in self.sinks if s.name == name), None)


BACKOFF_CAP_SECONDS = 300.0


def parse_sinks(raw: object, where: str = "notification sinks") -> tuple[Sink, ...]:
    """The sinks of the operator's settings (a list of mappings, parsed from YAML or JSON); ValueError
    naming the sink and field that is wrong."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where}: must be a list of sinks (name, type, secret: {{name, key}})")
    sinks: list[Sink] = []
    for index, item in enumerate(raw):
        label = f"{where}[{index}]" + (f" ({item['name']})" if isinstance(item, dict) and isinstance(item.get("name"), str) else "")
        try:
            sink = Sink.model_validate(item)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            at = ".".join(str(p) for p in first.get("loc", ()))
            raise ValueError(f"{label}{'.' + at if at else ''}: {first.get('msg', 'invalid')}") from None
        if sink.url is not None and sink.type != "pagerduty":
            raise ValueError(f"{label}.url: only a pagerduty sink takes a url; a {sink.type} sink's URL is its Secret's value")
        if sink.signing_secret is not None and sink.type != "webhook":
            raise ValueError(f"{label}.signingSecret: only a webhook sink is signed; {sink.type} verifies its own URL's token")
        if any(s.name == sink.name for s in sinks):
            raise ValueError(f"{label}.name: {sink.name!r} is used by another sink")
        sinks.append(sink)
    return tuple(sinks)


@dataclass(frozen=True)
class Subject:
    """The ModelDeployment notified about, and the cluster it runs in."""

    namespace: str
    name: str
    uid: str
    cluster: str = ""


@dataclass(frozen=True)
class Delivery:
    """One history entry to one sink."""

    key: str
    sink: Sink
    subject: Subject
    entry: HistoryEntry

    @property
    def notice(self) -> Notice:
        return NOTIFIED[self.entry.event]


Result = Literal["Delivered", "Failed", "Expired"]


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery: recorded in status, never sent again."""

    delivery: Delivery
    result: Result
    at: datetime
    attempts: int
    message: str = ""

    def record(self) -> NotificationDelivery:
        entry = self.delivery.entry
        return NotificationDelivery(key=self.delivery.key, sink=self.delivery.sink.name, event=entry.event, time=entry.time,
                                    revision=entry.revision, result=self.result, at=rfc3339(self.at), attempts=self.attempts,
                                    message=self.message[:512])


def _names(value: str) -> list[str]:
    return [n for n in re.split(r"[\s,]+", value) if n]


def selected(metadata: Mapping[str, Any], namespace: str, config: NotificationConfig) -> tuple[tuple[Sink, ...], list[ProblemStatus]]:
    """The sinks a ModelDeployment selects, and what is wrong with its selection (each problem names
    the annotation or label). Names: the annotation's comma- or space-separated list, then the label's one."""
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    wanted: list[tuple[str, str]] = []  # (name, field)
    for field_, value in ((ANNOTATION_FIELD, annotations.get(NOTIFY_KEY)), (LABEL_FIELD, labels.get(NOTIFY_KEY))):
        if isinstance(value, str):
            wanted += [(n, field_) for n in _names(value) if all(n != w for w, _ in wanted)]
    sinks: list[Sink] = []
    problems: list[ProblemStatus] = []
    for name, field_ in wanted:
        sink = config.sink(name)
        if sink is None:
            have = ", ".join(s.name for s in config.sinks) or "none: notifications are not configured"
            problems.append(ProblemStatus(field=field_, message=f"no notification sink named {name!r} in the operator's settings "
                                                                f"(it has {have}); nothing is sent to it"))
        elif sink.namespaces is not None and namespace not in sink.namespaces:
            problems.append(ProblemStatus(field=field_, message=f"notification sink {name!r} does not serve namespace {namespace} "
                                                                f"(the operator's settings allow it in {', '.join(sink.namespaces)})"))
        elif len(sinks) == MAX_SINKS:
            problems.append(ProblemStatus(field=field_, message=f"at most {MAX_SINKS} notification sinks per ModelDeployment: "
                                                                f"{name!r} is not used"))
        else:
            sinks.append(sink)
    return tuple(sinks), problems[:8]


def delivery_key(uid: str, entry: HistoryEntry, sink: str) -> str:
    """The same for every attempt and every process: the entry is never rewritten once in status."""
    parts = [uid, entry.time, entry.event, entry.revision or "", entry.message, sink]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def fresh(entry_time: str, now: datetime, max_age: timedelta) -> bool:
    """Whether a history entry is young enough to be notified (the stale rule)."""
    try:
        return now - parse_time(entry_time) <= max_age
    except ValueError:
        return False


def due(subject: Subject, metadata: Mapping[str, Any], status: ModelDeploymentStatus, config: NotificationConfig,
        now: datetime) -> list[Delivery]:
    """The deliveries status calls for and does not record yet, oldest entry first."""
    sinks, _ = selected(metadata, subject.namespace, config)
    if not sinks:
        return []
    done = {d.key for d in status.notifications.deliveries} if status.notifications is not None else set()
    out: list[Delivery] = []
    for entry in status.history:
        if entry.event not in NOTIFIED or not fresh(entry.time, now, config.max_age):
            continue
        for sink in sinks:
            key = delivery_key(subject.uid, entry, sink.name)
            if sink.takes(entry.event) and key not in done:
                out.append(Delivery(key, sink, subject, entry))
    return out


def settle(previous: NotificationStatus | None, outcomes: Iterable[Outcome], problems: Sequence[ProblemStatus], now: datetime,
           max_age: timedelta) -> NotificationStatus | None:
    """status.notifications with the finished deliveries recorded (``previous`` itself when nothing
    changed, so that a steady reconcile writes nothing). Records are pruned only when one is added:
    those whose entry is past the max age (plus a margin) can never be due again."""
    deliveries = list(previous.deliveries) if previous is not None else []
    known = {d.key for d in deliveries}
    added = []
    for outcome in outcomes:
        if outcome.delivery.key not in known:
            known.add(outcome.delivery.key)
            added.append(outcome.record())
    if added:
        deliveries = [d for d in [*deliveries, *added] if fresh(d.time, now, max_age + PRUNE_MARGIN)][-NOTIFICATION_DELIVERIES:]
    if previous is None and not deliveries and not problems:
        return None
    new = NotificationStatus(deliveries=deliveries, problems=list(problems))
    return previous if previous == new else new


def problem_events(previous: NotificationStatus | None, new: NotificationStatus | None) -> list[EventIntent]:
    """One Warning when the selection's problems change (not at every reconcile)."""
    before = previous.problems if previous is not None else []
    now = new.problems if new is not None else []
    if not now or now == before:
        return []
    return [EventIntent("Warning", "NotificationSinkInvalid", "; ".join(f"{p.field}: {p.message}" for p in now))]


def retry_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: exponential from ``base`` (doubling, at most 5 minutes),
    never sooner than the receiver's Retry-After."""
    delay = min(BACKOFF_CAP_SECONDS, base * 2 ** max(0, attempt - 1))
    if retry_after is not None:
        delay = max(delay, min(BACKOFF_CAP_SECONDS, retry_after))
    return delay


def expires_at(entry: HistoryEntry, max_age: timedelta) -> datetime:
    """When the entry becomes stale: no attempt is made after this."""
    return parse_time(entry.time) + max_age


__all__ = [
    "ANNOTATION_FIELD", "LABEL_FIELD", "MAX_SINKS", "NOTIFIED", "NOTIFY_KEY", "PAGERDUTY_URL", "PRUNE_MARGIN", "Delivery", "Notice",
    "NotificationConfig", "Outcome", "SecretRef", "Sink", "Subject", "delivery_key", "due", "expires_at", "fresh",
    "parse_sinks", "problem_events", "retry_delay", "selected", "settle",
]
