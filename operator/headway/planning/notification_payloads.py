"""The request each kind of sink gets for a delivery, in the receiver's own shape, and what its answer means.

Pure. A payload is a function of the delivery alone (the ModelDeployment's identity, the history
entry with its evidence, the sink): never of the object's state when it is sent, so a late or
repeated send says what happened at the transition (argo-rollouts #3535 sent the state before the
transition), and every resend's body is byte-for-byte the same (a signed webhook's signature
headers are the attempt's: they cover its time).

- ``slack``: an incoming webhook's message, ``text`` (the fallback shown in notifications) and
  ``blocks`` (header, the message, fields, the evidence, a context line with the key).
- ``teams``: an Adaptive Card in a message's ``attachments``, the envelope both Teams Workflows
  ("Post to a channel when a webhook request is received") and the older incoming webhooks accept.
- ``pagerduty``: Events API v2. A rollback, an abort, a breach after promotion and drift are
  alert events (``trigger``) whose ``dedup_key`` names the ModelDeployment and the kind of trouble,
  so that a resend, or a second rollback while the first alert is open, adds to one alert; a
  promotion ``resolve``\\ s the rollout alert and drift cleared the drift one. Everything else is a
  change event (``/v2/change/enqueue``): it shows on the service's timeline and pages nobody.
- ``webhook``: the delivery as JSON, with the full evidence, and its key in an ``Idempotency-Key``
  header (the IETF httpapi draft's name) for the receiver to drop repeats. With a signing secret,
  signed as the Standard Webhooks specification says (https://www.standardwebhooks.com/, the scheme
  of Svix and others, verifiable with its reference libraries): ``webhook-id`` (the delivery's key,
  the same on every attempt), ``webhook-timestamp`` (seconds, when the attempt is sent) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from headway.planning.notifications import PAGERDUTY_URL, Delivery, SecretRef

USER_AGENT = "headway-operator"
SLACK_HEADER_MAX = 150  # Slack's header block text limit
SLACK_TEXT_MAX = 3000  # a section's text
SLACK_FIELD_MAX = 2000  # one field of a section
PAGERDUTY_SUMMARY_MAX = 1024
EVIDENCE_LINES = 12
TEAMS_COLOURS = {"info": "Default", "success": "Good", "warning": "Warning", "error": "Attention"}
PAGERDUTY_SEVERITY = {"info": "info", "success": "info", "warning": "warning", "error": "error"}


@dataclass(frozen=True)
class HttpRequest:
    """A JSON POST."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)
    """Sign each attempt (``signature_headers``) with these keys: a signature covers the sent bytes and the time."""
    message_id: str = ""
    """The ``webhook-id`` a signed request carries: the delivery's key."""


@dataclass(frozen=True)
class Answer:
    """What a receiver's answer means for the delivery."""

    delivered: bool
    retry: bool  # not delivered, and worth another attempt
    message: str = ""
    retry_after: float | None = None  # seconds the receiver asked to wait


class SecretValueError(ValueError):
    """The Secret's value cannot be what the sink needs (said without the value: it is a secret)."""


def title(delivery: Delivery) -> str:
    s = delivery.subject
    where = f"{s.namespace}/{s.name}" + (f" ({s.cluster})" if s.cluster else "")
    return f"{delivery.notice.title}: {where}"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def evidence_lines(evidence: dict[str, Any] | None) -> list[str]:
    """The evidence a person reads first, in lines: traffic, the analysis's verdicts, drifted features,
    approvals. The full evidence goes to webhooks and PagerDuty's custom details."""
    if not evidence:
        return []
    lines: list[str] = []
    weights = evidence.get("weights")
    if isinstance(weights, dict) and weights:
        line = "Traffic: " + " ".join(f"{k}={v}" for k, v in weights.items())
        mirror = evidence.get("mirror")
        if isinstance(mirror, dict) and mirror.get("percent"):
            line += f" (mirror {mirror.get('percent')}% to {mirror.get('variant')})"
        lines.append(line)
    analysis = evidence.get("analysis")
    if isinstance(analysis, dict):
        if analysis.get("result"):
            lines.append(f"Analysis: {analysis['result']} after {analysis.get('runs', 0)} measurement(s)"
                         + (f"; {analysis['error']}" if analysis.get("error") else ""))
        for v in analysis.get("verdicts") or []:
            if not isinstance(v, dict):
                continue
            line = f"{v.get('slo')} ({v.get('variant', 'candidate')}): {v.get('result')}"
            if v.get("value") is not None:
                line += f", {_num(v['value'])}" + (f" against {_num(v['threshold'])}" if v.get("threshold") is not None else "")
            if v.get("baselineValue") is not None:
                line += f" (baseline {_num(v['baselineValue'])})"
            if v.get("samples"):
                line += f", {v['samples']} requests"
            lines.append(line)
    for f in evidence.get("features") or []:
        if isinstance(f, dict):
            line = f"{f.get('feature')}: {f.get('result')}"
            if f.get("psi") is not None:
                line += f", PSI {_num(f['psi'])}"
            if f.get("adjustedPValue") is not None:
                line += f", adjusted p {_num(f['adjustedPValue'])}"
            lines.append(line)
    waiting = evidence.get("waitingFor")
    if isinstance(waiting, list) and waiting:
        lines.append("Waiting for: " + ", ".join(f"{w.get('missing')} x {w.get('role')}" for w in waiting if isinstance(w, dict)))
    approvals = evidence.get("approvals")
    if isinstance(approvals, list) and approvals:
        lines.append("Approved by: " + ", ".join(f"{a.get('approver')} ({a.get('role')})" for a in approvals if isinstance(a, dict)))
    if evidence.get("evidenceDigest"):
        lines.append(f"Evidence digest: {evidence['evidenceDigest']}")
    return lines[:EVIDENCE_LINES]


def facts(delivery: Delivery) -> list[tuple[str, str]]:
    entry, s = delivery.entry, delivery.subject
    out = [("ModelDeployment", f"{s.namespace}/{s.name}")]
    if s.cluster:
        out.append(("Cluster", s.cluster))
    if entry.bento:
        out.append(("Bento", entry.bento))
    if entry.revision:
        out.append(("Revision", entry.revision))
    out += [("Event", entry.event), ("Time", entry.time)]
    return out


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn reserves &, < and > (links and mentions): a bento tag or message must not make one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(delivery: Delivery) -> dict[str, Any]:
    entry = delivery.entry
    head = title(delivery)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:SLACK_HEADER_MAX], "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(entry.message or head)[:SLACK_TEXT_MAX]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_slack_escape(v)}"[:SLACK_FIELD_MAX]}
                                       for k, v in facts(delivery)][:10]},
    ]
    lines = evidence_lines(entry.evidence)
    if lines:
        text = "*Evidence*\n" + "\n".join(f"• {_slack_escape(line)}" for line in lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_MAX]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Headway · notification {delivery.key}"}]})
    return {"text": _slack_escape(f"{head}: {entry.message}" if entry.message else head)[:SLACK_TEXT_MAX], "blocks": blocks}


def teams_body(delivery: Delivery) -> dict[str, Any]:
    entry = delivery.entry
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title(delivery), "weight": "Bolder", "size": "Medium", "wrap": True,
         "color": TEAMS_COLOURS[delivery.notice.severity]},
        {"type": "TextBlock", "text": entry.message or title(delivery), "wrap": True},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(delivery)]},
    ]
    lines = evidence_lines(entry.evidence)
    if lines:
        body.append({"type": "TextBlock", "text": "Evidence", "weight": "Bolder", "wrap": True, "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": "\n".join(f"- {line}" for line in lines), "wrap": True})
    body.append({"type": "TextBlock", "text": f"Headway notification {delivery.key}", "isSubtle": True, "size": "Small", "wrap": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body}
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                                                "content": card}]}


def details(delivery: Delivery) -> dict[str, Any]:
    """The delivery as data: the generic webhook's body, PagerDuty's custom details."""
    entry, s = delivery.entry, delivery.subject
    return {
        "id": delivery.key,
        "event": entry.event,
        "title": delivery.notice.title,
        "severity": delivery.notice.severity,
        "summary": title(delivery),
        "message": entry.message,
        "time": entry.time,
        "cluster": s.cluster or None,
        "modelDeployment": {"namespace": s.namespace, "name": s.name, "uid": s.uid},
        "revision": entry.revision,
        "bento": entry.bento,
        "evidence": entry.evidence,
    }


def pagerduty_dedup_key(delivery: Delivery) -> str:
    """One alert per ModelDeployment and kind of trouble (rollout, drift): resends and repeats add to it,
    and the event that ends the trouble resolves it. PagerDuty allows 255 characters."""
    s = delivery.subject
    incident = delivery.notice.incident or "rollout"
    return "/".join(p for p in ("headway", s.cluster, s.namespace, s.name, incident) if p)[:255]


def pagerduty_request(delivery: Delivery, routing_key: str) -> HttpRequest:
    base = (delivery.sink.url or PAGERDUTY_URL).rstrip("/")
    notice, entry, s = delivery.notice, delivery.entry, delivery.subject
    source = "/".join(p for p in (s.cluster, s.namespace, s.name) if p)
    summary = (f"{title(delivery)}: {entry.message}" if entry.message else title(delivery))[:PAGERDUTY_SUMMARY_MAX]
    if notice.pagerduty == "change":
        body: dict[str, Any] = {"routing_key": routing_key, "payload": {
            "summary": summary, "source": source, "timestamp": entry.time, "custom_details": details(delivery)}}
        return HttpRequest(f"{base}/v2/change/enqueue", body, _headers(delivery))
    body = {"routing_key": routing_key, "event_action": notice.pagerduty, "dedup_key": pagerduty_dedup_key(delivery)}
    if notice.pagerduty == "trigger":
        body["payload"] = {"summary": summary, "source": source, "severity": PAGERDUTY_SEVERITY[notice.severity],
                           "timestamp": entry.time, "component": s.name, "group": s.namespace, "class": entry.event,
                           "custom_details": details(delivery)}
        body["client"] = "Headway"
    return HttpRequest(f"{base}/v2/enqueue", body, _headers(delivery))


def _headers(delivery: Delivery) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Idempotency-Key": delivery.key,
            "X-Headway-Event": delivery.entry.event}


def _url(value: str, delivery: Delivery) -> str:
    url = value.strip()
    if not url.lower().startswith(("https://", "http://")) or any(c.isspace() for c in url):
        ref = delivery.sink.secret
        raise SecretValueError(f"key {ref.key!r} of Secret {ref.name} is not an http(s) URL (the {delivery.sink.type} sink "
                               f"{delivery.sink.name!r} posts to the URL it holds)")
    return url


def _signing_keys(value: str, ref: SecretRef, delivery: Delivery) -> tuple[bytes, ...]:
    """The keys of a Standard Webhooks signing secret value: ``whsec_`` + base64 (or base64 alone, as
    the specification's reference libraries read it) of 24 to 64 random bytes; several, separated by
    white space, during a rotation (each request is then signed with each). SecretValueError naming
    the Secret when a value is not one."""
    keys = []
    for word in value.split():
        text = word.removeprefix("whsec_")
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        keys.append(key)
    if not keys or any(not 24 <= len(key) <= 64 for key in keys):
        raise SecretValueError(f"key {ref.key!r} of Secret {ref.name} is not a signing secret (whsec_ and the base64 of "
                               f"24 to 64 random bytes: \"whsec_$(openssl rand -base64 32)\"); the {delivery.sink.type} sink "
                               f"{delivery.sink.name!r} signs with it")
    return tuple(keys)


def signature_headers(keys: tuple[bytes, ...], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks' headers of one attempt sending ``body`` at ``timestamp`` (epoch seconds): one
    ``v1`` signature per key, space-separated (a receiver accepts any it knows)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def build_request(delivery: Delivery, secret: str, signing_secret: str | None = None) -> HttpRequest:
    """The request for a delivery, given its sink's Secret value (a URL, or PagerDuty's routing key)
    and, for a signed webhook, its signing secret's value. SecretValueError when a value cannot be that."""
    sink = delivery.sink
    if sink.type == "pagerduty":
        key = secret.strip()
        if not key or any(c.isspace() for c in key):
            raise SecretValueError(f"key {sink.secret.key!r} of Secret {sink.secret.name} is not a PagerDuty routing key")
        return pagerduty_request(delivery, key)
    url = _url(secret, delivery)
    if sink.type == "slack":
        return HttpRequest(url, slack_body(delivery), _headers(delivery))
    if sink.type == "teams":
        return HttpRequest(url, teams_body(delivery), _headers(delivery))
    ref = sink.signing_secret
    keys = _signing_keys(signing_secret, ref, delivery) if signing_secret is not None and ref is not None else ()
    return HttpRequest(url, details(delivery), _headers(delivery), keys, delivery.key)


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if now_epoch is None:
        return None
    return max(0.0, when.timestamp() - now_epoch)


def judge(status: int, body: str, retry_after: float | None = None) -> Answer:
    """A receiver's HTTP answer: 2xx delivered; 408, 425, 429 and 5xx worth retrying (rate limits,
    outages); any other code is a refusal that a retry would not change (a revoked Slack webhook's
    404 or 410, PagerDuty's 400 for an invalid event)."""
    said = " ".join(body.split())[:200]
    message = f"HTTP {status}" + (f": {said}" if said else "")
    if 200 <= status < 300:
        return Answer(True, False, message)
    if status in (408, 425, 429) or status >= 500:
        return Answer(False, True, message, retry_after)
    return Answer(False, False, message)


__all__ = ["Answer", "HttpRequest", "SecretValueError", "build_request", "details", "evidence_lines", "judge",
           "pagerduty_dedup_key", "parse_retry_after", "signature_headers", "slack_body", "teams_body", "title"]
