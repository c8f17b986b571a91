"""Sending notifications: off the reconcile path, retried with backoff, recorded in status once done.

The reconciler calls two methods, around its status write:

- ``settle`` (before the write): ``status.notifications`` gains the deliveries this process
  finished since the last write (delivered, refused, expired) and the selection's problems. The
  write that records a decision also records what was notified; a finished delivery wakes its
  ModelDeployment (``on_done``) so that it is written soon even in a steady state.
- ``dispatch`` (after the write succeeded, or found nothing to change): the deliveries the durable
  status calls for (``planning.notifications.due``) are queued. Only what is in status is ever
  announced: a decision that a 409 discarded is never notified (argo-rollouts #3535 sent the state
  before the transition).

Delivery is at least once, with the same key every time. A delivery runs on a small pool of
threads; each (ModelDeployment, sink) pair is a lane that sends in history order, so a receiver
never sees "Promoted" before "Rollout started". An attempt reads the sink's Secret, and a signed
webhook's signing Secret (so a rotated URL or key is used at once), posts with a timeout (a signed
webhook signed then, for that attempt's time), and on a retryable answer (timeouts, 408, 425, 429,
5xx; a missing Secret) tries again after ``retry_delay`` (2 s doubling to 5 min, at least the
receiver's Retry-After) until the history entry is older than the max age: then it is Expired. A
process that dies between a receiver's 2xx and the status write sends that delivery again after
the restart, with the same key (Idempotency-Key; PagerDuty's dedup_key); everything recorded in
status is never sent again, by this process or the next.

Nothing here logs or records a Secret's value: errors name the Secret and key, never the URL.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import Counter

from headway.api.status import ModelDeploymentStatus
from headway.k8s.client import ApiError, Kind, Kube
from headway.planning.conditions import EventIntent
from headway.planning.notification_payloads import (
    Answer, HttpRequest, SecretValueError, build_request, judge, parse_retry_after, signature_headers,
)
from headway.planning.notifications import (
    PRUNE_MARGIN, Delivery, NotificationConfig, Outcome, Result, SecretRef, Subject, due, expires_at, fresh, problem_events, retry_delay,
    selected, settle,
)

log = logging.getLogger(__name__)

SECRET = Kind("", "v1", "secrets", "Secret")
NOTIFICATIONS = Counter("headway_notifications_total",
                        "Notification deliveries by sink and result: delivered, failed, expired (final), retried (an attempt "
                        "that will be repeated).", ["sink", "result"])
Key = tuple[str, str]  # (namespace, name) of a ModelDeployment
Lane = tuple[str, str, str]  # (namespace, name, sink): sent in order, one at a time


class SecretUnavailable(Exception):
    """A sink's Secret (its URL's or key's, or a webhook's signing Secret) cannot be read now (missing, no
    such key, forbidden): retried until the entry expires; nothing is sent meanwhile."""


def read_secret(kube: Kube, namespace: str, ref: SecretRef) -> str:
    """The value of one key of a Secret (I/O), stripped of surrounding whitespace (a file's newline)."""
    where = f"Secret {namespace}/{ref.name}"
    try:
        secret = kube.get(SECRET, namespace, ref.name)
    except ApiError as exc:
        raise SecretUnavailable(f"{where} cannot be read: {exc.status} {exc.reason}") from None
    except Exception as exc:  # the client's transport errors
        raise SecretUnavailable(f"{where} cannot be read: {type(exc).__name__}") from None
    if secret is None:
        raise SecretUnavailable(f"{where} does not exist")
    data = secret.get("data") or {}
    if ref.key not in data:
        raise SecretUnavailable(f"{where} has no key {ref.key!r}")
    try:
        return base64.b64decode(data[ref.key], validate=True).decode("utf-8").strip()
    except (ValueError, UnicodeDecodeError):
        raise SecretValueError(f"key {ref.key!r} of {where} is not base64-encoded UTF-8 text") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured: report its 3xx rather than re-POST elsewhere."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)  # honours HTTPS_PROXY/NO_PROXY like every urllib client


def post_json(request: HttpRequest, timeout: float) -> Answer:
    """POST the request's body as JSON (I/O); the answer judged by ``notification_payloads.judge``.
    No answer at all (refused, timed out, TLS) is worth a retry. The URL never appears in a message."""
    data = json.dumps(request.body, separators=(",", ":"), ensure_ascii=False).encode()
    headers = dict(request.headers)
    if request.signing_keys:  # signed when sent: the timestamp is this attempt's
        headers.update(signature_headers(request.signing_keys, request.message_id, int(time.time()), data))
    req = urllib.request.Request(request.url, data=data, headers=headers, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return judge(response.status, response.read(4096).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        body = exc.read(4096).decode("utf-8", "replace") if exc.fp is not None else ""
        return judge(exc.code, body, parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None, time.time()))
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        message = f"no answer: {reason}" if str(reason) else f"no answer: {type(reason).__name__}"
        return Answer(False, True, message.replace(request.url, "<the sink's URL>"))


@dataclass
class _Job:
    delivery: Delivery
    owner: Key
    attempts: int = 0
    last: str = ""  # the last answer, for the record


class Notifier:
    """Deliveries per ModelDeployment and sink, in order, off the reconcile path (see the module doc).

    ``read_secret(ref)`` gives a sink's Secret value; ``post(request, timeout)`` sends one request (and
    signs it when it has ``signing_keys``: ``post_json`` does);
    ``on_done(key)`` wakes a ModelDeployment whose delivery finished; ``clock`` (monotonic) schedules
    retries and ``wall`` dates outcomes and judges the stale rule: tests inject all four."""

    def __init__(self, config: NotificationConfig, read_secret: Callable[[SecretRef], str], on_done: Callable[[Key], None], *,
                 post: Callable[[HttpRequest, float], Answer] = post_json, workers: int = 2,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.config = config
        self._read_secret, self._on_done, self._post = read_secret, on_done, post
        self._clock, self._wall = clock, wall
        self._cond = threading.Condition()
        self._lanes: dict[Lane, deque[_Job]] = {}
        self._heap: list[tuple[float, int, Lane]] = []
        self._token: dict[Lane, int] = {}  # the heap entry that attempts a lane's head next (older entries are void)
        self._running: set[Lane] = set()  # lanes whose head is being attempted
        self._seq = itertools.count()
        self._queued: set[str] = set()  # keys in a lane
        self._finished: dict[Key, dict[str, Outcome]] = {}  # done here, not yet seen in a durable status
        self._recent: dict[str, float] = {}  # keys seen recorded: never queued again by this process
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"headway-notify-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # -- the reconciler's side ------------------------------------------------------------
    def settle(self, subject: Subject, metadata: Mapping[str, Any], status: ModelDeploymentStatus,
               now: datetime) -> tuple[ModelDeploymentStatus, list[EventIntent]]:
        """The status to write, with the deliveries finished here recorded, and a Warning Event when
        the selection's problems changed."""
        _, problems = selected(metadata, subject.namespace, self.config)
        new = settle(status.notifications, self.outcomes((subject.namespace, subject.name)), problems, now, self.config.max_age)
        if new is status.notifications:
            return status, []
        return status.model_copy(update={"notifications": new}), problem_events(status.notifications, new)

    def dispatch(self, subject: Subject, metadata: Mapping[str, Any], status: ModelDeploymentStatus, now: datetime) -> int:
        """Queue what the durable ``status`` calls for; forget outcomes it now records. Returns how many were queued."""
        key = (subject.namespace, subject.name)
        recorded = {d.key for d in status.notifications.deliveries} if status.notifications is not None else set()
        self.persisted(key, recorded)
        return self.submit(key, due(subject, metadata, status, self.config, now))

    # -- queue ------------------------------------------------------------------------------
    def submit(self, owner: Key, deliveries: list[Delivery]) -> int:
        queued = 0
        with self._cond:
            if self._stopped:
                return 0
            finished = self._finished.get(owner, {})
            for delivery in deliveries:
                if delivery.key in self._queued or delivery.key in finished or delivery.key in self._recent:
                    continue
                lane = (owner[0], owner[1], delivery.sink.name)
                self._lanes.setdefault(lane, deque()).append(_Job(delivery, owner))
                self._queued.add(delivery.key)
                queued += 1
                if lane not in self._token and lane not in self._running:
                    self._schedule(lane, 0.0)
        return queued

    def outcomes(self, owner: Key) -> list[Outcome]:
        """Deliveries finished here that status does not record yet."""
        with self._cond:
            return list(self._finished.get(owner, {}).values())

    def persisted(self, owner: Key, keys: set[str]) -> None:
        """Status records ``keys``: their outcomes are no longer needed (and never queued again here)."""
        now = self._clock()
        wall, keep = self._wall(), self.config.max_age + PRUNE_MARGIN
        horizon = keep.total_seconds()
        with self._cond:
            finished = self._finished.get(owner) or {}
            for key, done in list(finished.items()):
                if key in keys:
                    del finished[key]
                    self._recent[key] = now
                elif not fresh(done.delivery.entry.time, wall, keep):  # settle prunes it unrecorded: nothing will ask again
                    del finished[key]
            if not finished:
                self._finished.pop(owner, None)
            for key in [k for k, t in self._recent.items() if now - t > horizon]:
                del self._recent[key]

    def pending(self, owner: Key | None = None) -> int:
        """Deliveries queued or in flight (of one ModelDeployment, or all)."""
        with self._cond:
            return sum(len(jobs) for lane, jobs in self._lanes.items() if owner is None or lane[:2] == owner)

    def forget(self, owner: Key) -> None:
        """A deleted ModelDeployment: drop its queued deliveries and outcomes (an attempt in flight ends unrecorded)."""
        with self._cond:
            for lane in [lane for lane in self._lanes if lane[:2] == owner]:
                for job in self._lanes.pop(lane):
                    self._queued.discard(job.delivery.key)
                self._token.pop(lane, None)
            self._finished.pop(owner, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- workers ----------------------------------------------------------------------------
    def _schedule(self, lane: Lane, delay: float) -> None:
        """Under the lock: attempt the lane's head after ``delay`` seconds."""
        seq = next(self._seq)
        self._token[lane] = seq
        heapq.heappush(self._heap, (self._clock() + delay, seq, lane))
        self._cond.notify()

    def _resume(self, lane: Lane) -> None:
        """Under the lock: a lane forgotten during an attempt and queued again meanwhile starts now."""
        if self._lanes.get(lane) and lane not in self._token:
            self._schedule(lane, 0.0)

    def _next(self) -> tuple[Lane, _Job] | None:
        with self._cond:
            while not self._stopped:
                if self._heap and self._heap[0][0] <= self._clock():
                    _, seq, lane = heapq.heappop(self._heap)
                    jobs = self._lanes.get(lane)
                    if self._token.get(lane) != seq or not jobs:
                        continue  # void: forgotten, or scheduled again meanwhile
                    del self._token[lane]
                    self._running.add(lane)
                    return lane, jobs[0]
                self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - self._clock()))
            return None

    def _work(self) -> None:
        while (got := self._next()) is not None:
            lane, job = got
            try:
                self._attempt(lane, job)
            except Exception:  # a bug must not kill the lane: the delivery is retried as if it had no answer
                log.exception("notification %s to %s: attempt failed", job.delivery.key, job.delivery.sink.name)
                self._retry(lane, job, Answer(False, True, "internal error (see the operator's log)"))

    def _attempt(self, lane: Lane, job: _Job) -> None:
        delivery = job.delivery
        expires = expires_at(delivery.entry, self.config.max_age)
        if job.attempts == 0 and self._wall() > expires:  # its turn came after it went stale (an earlier one was retried)
            self._finish(lane, job, "Expired", "older than the max age when its turn came; not sent")
            return
        job.attempts += 1
        try:
            signing = delivery.sink.signing_secret
            request = build_request(delivery, self._read_secret(delivery.sink.secret),
                                    self._read_secret(signing) if signing is not None else None)
        except SecretValueError as exc:
            self._finish(lane, job, "Failed", str(exc))
            return
        except SecretUnavailable as exc:
            self._retry(lane, job, Answer(False, True, str(exc)))
            return
        answer = self._post(request, self.config.timeout_seconds)
        if answer.delivered:
            self._finish(lane, job, "Delivered", "")
        elif not answer.retry:
            self._finish(lane, job, "Failed", answer.message)
        else:
            self._retry(lane, job, answer)

    def _retry(self, lane: Lane, job: _Job, answer: Answer) -> None:
        job.last = answer.message
        now = self._wall()
        left = (expires_at(job.delivery.entry, self.config.max_age) - now).total_seconds()
        if left <= 0:
            self._finish(lane, job, "Expired", f"still failing when the entry passed the max age: {answer.message}")
            return
        delay = min(retry_delay(job.attempts, self.config.backoff_seconds, answer.retry_after), left)
        NOTIFICATIONS.labels(job.delivery.sink.name, "retried").inc()
        log.info("notification %s (%s of %s/%s) to %s: attempt %d: %s; retrying in %.1fs", job.delivery.key, job.delivery.entry.event,
                 job.owner[0], job.owner[1], job.delivery.sink.name, job.attempts, answer.message, delay)
        with self._cond:
            self._running.discard(lane)
            if self._lanes.get(lane) and self._lanes[lane][0] is job:
                self._schedule(lane, delay)
            else:
                self._resume(lane)

    def _finish(self, lane: Lane, job: _Job, result: Result, message: str) -> None:
        outcome = Outcome(job.delivery, result, self._wall(), job.attempts, message or ("" if result == "Delivered" else job.last))
        with self._cond:
            self._running.discard(lane)
            jobs = self._lanes.get(lane)
            if not jobs or jobs[0] is not job:
                self._resume(lane)
                return  # forgotten meanwhile
            jobs.popleft()
            self._queued.discard(job.delivery.key)
            self._finished.setdefault(job.owner, {})[job.delivery.key] = outcome
            if jobs:
                self._schedule(lane, 0.0)
            else:
                del self._lanes[lane]
        NOTIFICATIONS.labels(job.delivery.sink.name, result.lower()).inc()
        level = logging.INFO if result == "Delivered" else logging.WARNING
        log.log(level, "notification %s (%s of %s/%s) to %s: %s after %d attempt(s)%s", job.delivery.key, job.delivery.entry.event,
                job.owner[0], job.owner[1], job.delivery.sink.name, result, job.attempts, f": {outcome.message}" if outcome.message else "")
        self._on_done(job.owner)


def build_notifier(kube: Kube, config: NotificationConfig, on_done: Callable[[Key], None]) -> Notifier | None:
    """The operator's notifier (None without sinks). The sinks' Secrets are read from
    ``config.secret_namespace``, by name: the chart grants get on exactly those Secrets."""
    if not config.enabled:
        return None
    namespace = config.secret_namespace
    if not namespace:
        raise ValueError("notification sinks need the namespace of their Secrets (--notification-secret-namespace)")
    log.info("notifications: %s (Secrets in %s, max age %.0fs)",
             ", ".join(f"{s.name} ({s.type})" for s in config.sinks), namespace, config.max_age_seconds)
    return Notifier(config, lambda ref: read_secret(kube, namespace, ref), on_done)


__all__ = ["NOTIFICATIONS", "Notifier", "SecretUnavailable", "build_notifier", "post_json", "read_secret"]
