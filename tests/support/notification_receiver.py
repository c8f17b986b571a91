"""A local HTTP receiver for notification tests: answers like Slack, Teams, PagerDuty or a webhook, and records what it got.

Listens on 127.0.0.1 only. Each path answers like the service its first segment names:
``/slack/...`` 200 ``ok`` (Slack's incoming webhooks), ``/teams/...`` 202 (Teams Workflows),
``/pd/...`` 202 with ``{"status": "success", "message": "Event processed", "dedup_key": ...}``
(PagerDuty's Events API v2), anything else 200. ``fail(path, [500, 503], headers)`` makes the
next requests to a path answer those codes first (a receiver having an outage); ``stall(path, seconds)``
makes it answer late (a timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    status: int  # what the receiver answered
    at: float  # time.monotonic() when it came
    raw: bytes = b""  # the body's bytes, as a signature covers them


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []  # when answered
        self.arrived: list[tuple[str, str]] = []  # (path, Idempotency-Key) as each request came, before any stall
        self._lock = threading.Lock()
        self._failures: dict[str, list[int]] = {}
        self._fail_headers: dict[str, dict[str, str]] = {}
        self._stalls: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                came = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with receiver._lock:
                    receiver.arrived.append((self.path, self.headers.get("Idempotency-Key") or ""))
                status, headers, answer = receiver._answer(self.path, body)
                stall = receiver._stalls.get(self.path, 0.0)
                if stall:
                    time.sleep(stall)
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status, came, raw))
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, path: str, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        """The next requests to ``path`` answer ``statuses`` (with ``headers``, e.g. Retry-After or Location), then as usual."""
        with self._lock:
            self._failures[path] = list(statuses)
            self._fail_headers[path] = dict(headers or {})

    def stall(self, path: str, seconds: float) -> None:
        self._stalls[path] = seconds

    def _answer(self, path: str, body: Any) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            failures = self._failures.get(path) or []
            if failures:
                return failures.pop(0), self._fail_headers.get(path, {}), b"temporarily unavailable"
        service = path.strip("/").split("/", 1)[0]
        if service == "slack":
            return 200, {"Content-Type": "text/plain"}, b"ok"
        if service == "teams":
            return 202, {}, b""
        if service == "pd":
            dedup = body.get("dedup_key", "generated-by-pagerduty") if isinstance(body, dict) else ""
            answer = {"status": "success", "message": "Event processed", "dedup_key": dedup}
            return 202, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        return 200, {}, b""

    def at(self, path: str, accepted_only: bool = True) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path and (not accepted_only or 200 <= r.status < 300)]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
