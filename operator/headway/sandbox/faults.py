"""Fault injection for the sandbox's model servers: a spec as typed on the command line.

A fault spec is a comma-separated list of ``NAME=VALUE`` parts::

    errors=5%                       5 % of the calls fail with HTTP 500
    latency=+300ms@10%              10 % of the calls take 300 ms longer ("+" optional;
                                    units ms or s; "@share" optional, default 100 %)
    errors=5%,latency=+300ms@10%    both, drawn independently
    errors=5%,seed=7                a seed for the server's random draws (default 0)
    shift=+1.5                      the bundled example's fraud score moved by 1.5 logits: its
                                    answers change (more flagged), its errors and latency do not

:meth:`FaultSpec.parse` turns it into a :class:`FaultSpec` (a ``ValueError`` names the bad
part), :meth:`FaultSpec.to_env` into the ``HEADWAY_FAULT_*`` variables a model server reads.

How the faults reach a server
-----------------------------
- The bundled example (:mod:`headway.sandbox.example_service`) reads the variables itself:
  its handler sleeps or raises ``InternalServerError``.
- A user's own BentoML service is served through :mod:`headway.sandbox.fault_wrapper`
  (``bentoml serve headway.sandbox.fault_wrapper:service`` with
  ``HEADWAY_FAULT_TARGET=<module:Service>``): it imports the user's service and adds
  :class:`FaultMiddleware` with ``Service.add_asgi_middleware``. BentoML places user
  middlewares *inside* its own metrics middleware (``_bentoml_impl/server/app.py``:
  ``RunnerTrafficMetricsMiddleware`` comes first in the list, i.e. outermost), so an
  injected 500 is counted in ``bentoml_service_request_total{http_response_code="500"}`` and
  an injected delay in ``bentoml_service_request_duration_seconds``, exactly as the
  verdicts read them (tests/sandbox/test_faults.py checks this against a real server).

This module imports neither BentoML nor Starlette: the CLI can parse specs without them.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

ERROR_RATE_VAR = "HEADWAY_FAULT_ERROR_RATE"  # fraction of calls failing with 500, in [0, 1]
DELAY_MS_VAR = "HEADWAY_FAULT_DELAY_MS"  # latency added to a delayed call, in ms
DELAY_FRACTION_VAR = "HEADWAY_FAULT_DELAY_FRACTION"  # fraction of calls delayed, in [0, 1] (default 1)
SEED_VAR = "HEADWAY_FAULT_SEED"  # seed of the server's RNG (default 0)
SHIFT_VAR = "HEADWAY_FAULT_SHIFT"  # the bundled example's score moved by this many logits (its answers change)
FAULT_VARS = (ERROR_RATE_VAR, DELAY_MS_VAR, DELAY_FRACTION_VAR, SEED_VAR, SHIFT_VAR)
# For the wrapper: the user's service (``module:Attribute``) it imports and wraps.
TARGET_VAR = "HEADWAY_FAULT_TARGET"

EXAMPLES = "e.g. errors=5%, latency=+300ms@10%, errors=5%,latency=+300ms@10%, shift=+1.5"
_MAX_SHIFT = 20.0  # logits: more flags everything or nothing
_PERCENT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)%$")
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s)$")
_MAX_DELAY_MS = 600_000.0  # 10 minutes: more is a typo


@dataclass(frozen=True)
class FaultSpec:
    """What a model server does wrong: a share of 500s and a share of slow calls."""

    error_rate: float = 0.0  # fraction of calls answered with HTTP 500
    delay_ms: float = 0.0  # added latency of a delayed call
    delay_fraction: float = 1.0  # fraction of calls delayed (when delay_ms > 0)
    seed: int = 0
    shift: float = 0.0  # logits added to the bundled example's fraud score (its answers change)

    def __post_init__(self) -> None:
        if not (isinstance(self.shift, (int, float)) and math.isfinite(self.shift) and abs(self.shift) <= _MAX_SHIFT):
            raise ValueError(f"shift={self.shift!r} is not a number of logits between -{_MAX_SHIFT:g} and +{_MAX_SHIFT:g}")
        for name in ("error_rate", "delay_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name}={value!r} is not a fraction between 0 and 1")
        if not (isinstance(self.delay_ms, (int, float)) and 0.0 <= self.delay_ms <= _MAX_DELAY_MS):
            raise ValueError(f"delay_ms={self.delay_ms!r} is not between 0 and {_MAX_DELAY_MS:g}")

    # -- the command line ------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``errors=5%,latency=+300ms@10%,seed=7`` -> FaultSpec; ``none`` -> no faults.

        Raises ValueError naming the bad part (``"latency=+300ms@150%: the share after @
        must be a percentage between 0 and 100"``).
        """
        stripped = text.strip()
        if not stripped:
            raise ValueError(f"empty fault spec ({EXAMPLES})")
        if stripped.lower() == "none":
            return cls()
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for raw in stripped.split(","):
            part = raw.strip()
            if not part:
                raise ValueError(f"{stripped}: empty part between commas ({EXAMPLES})")
            name, eq, value = part.partition("=")
            name, value = name.strip().lower(), value.strip()
            if not eq or not name:
                raise ValueError(f"{part}: expected NAME=VALUE ({EXAMPLES})")
            if name in seen:
                raise ValueError(f"{part}: {name} given twice")
            seen.add(name)
            if name in ("errors", "error", "error-rate"):
                values["error_rate"] = _percentage(part, value, "the error share")
            elif name in ("latency", "delay"):
                values["delay_ms"], values["delay_fraction"] = _latency(part, value)
            elif name == "shift":
                try:
                    values["shift"] = float(value)
                except ValueError:
                    raise ValueError(f"{part}: the shift is a number of logits such as +1.5 or -0.5") from None
                if not math.isfinite(values["shift"]) or abs(values["shift"]) > _MAX_SHIFT:
                    raise ValueError(f"{part}: the shift must be between -{_MAX_SHIFT:g} and +{_MAX_SHIFT:g} logits")
            elif name == "seed":
                try:
                    values["seed"] = int(value)
                except ValueError:
                    raise ValueError(f"{part}: the seed must be a whole number") from None
            else:
                raise ValueError(f"{part}: unknown fault {name!r}; known: errors, latency, shift, seed ({EXAMPLES})")
        return cls(**values)

    def __str__(self) -> str:
        """The spec in the command-line form (``parse(str(spec)) == spec``); ``none`` if no faults."""
        parts = []
        if self.error_rate:
            parts.append(f"errors={_fmt(self.error_rate * 100)}%")
        if self.delay_ms:
            share = "" if self.delay_fraction == 1.0 else f"@{_fmt(self.delay_fraction * 100)}%"
            parts.append(f"latency=+{_fmt(self.delay_ms)}ms{share}")
        if self.shift:
            parts.append(f"shift={self.shift:+.6g}")
        if self.seed and parts:
            parts.append(f"seed={self.seed}")
        return ",".join(parts) or "none"

    @property
    def active(self) -> bool:
        """True if the spec makes a server misbehave at all."""
        return self.error_rate > 0 or (self.delay_ms > 0 and self.delay_fraction > 0) or self.shift != 0

    def __bool__(self) -> bool:
        return self.active

    # -- environment variables -------------------------------------------------------------------
    def to_env(self) -> dict[str, str]:
        """The HEADWAY_FAULT_* variables of this spec (only those that differ from the default)."""
        env: dict[str, str] = {}
        if self.error_rate:
            env[ERROR_RATE_VAR] = _fmt(self.error_rate)
        if self.delay_ms:
            env[DELAY_MS_VAR] = _fmt(self.delay_ms)
            if self.delay_fraction != 1.0:
                env[DELAY_FRACTION_VAR] = _fmt(self.delay_fraction)
        if self.seed:
            env[SEED_VAR] = str(self.seed)
        if self.shift:
            env[SHIFT_VAR] = _fmt(self.shift)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FaultSpec:
        """The spec the HEADWAY_FAULT_* variables of ``env`` describe; ValueError names a bad one."""

        def number(var: str, default: float) -> float:
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{var}={raw!r} is not a finite number")
            return value

        error_rate, delay_ms = number(ERROR_RATE_VAR, 0.0), number(DELAY_MS_VAR, 0.0)
        delay_fraction = number(DELAY_FRACTION_VAR, 1.0)
        for var, value in ((ERROR_RATE_VAR, error_rate), (DELAY_FRACTION_VAR, delay_fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{var}={value} is not a fraction in [0, 1]")
        if not 0.0 <= delay_ms <= _MAX_DELAY_MS:
            raise ValueError(f"{DELAY_MS_VAR}={delay_ms} is not between 0 and {_MAX_DELAY_MS:g}")
        raw_seed = env.get(SEED_VAR, "").strip() or "0"
        try:
            seed = int(raw_seed)
        except ValueError:
            raise ValueError(f"{SEED_VAR}={raw_seed!r} is not a whole number") from None
        shift = number(SHIFT_VAR, 0.0)
        if abs(shift) > _MAX_SHIFT:
            raise ValueError(f"{SHIFT_VAR}={shift} is not between -{_MAX_SHIFT:g} and +{_MAX_SHIFT:g}")
        return cls(error_rate, delay_ms, delay_fraction, seed, shift)


def parse_fault_spec(text: str) -> FaultSpec:
    """Alias of :meth:`FaultSpec.parse`, handy as an argparse ``type=``."""
    return FaultSpec.parse(text)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _percentage(part: str, value: str, what: str) -> float:
    match = _PERCENT.match(value)
    if not match:
        raise ValueError(f"{part}: {what} must be a percentage such as 5% (got {value!r})")
    percent = float(match.group(1))
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"{part}: {what} must be a percentage between 0 and 100")
    return percent / 100.0


def _latency(part: str, value: str) -> tuple[float, float]:
    duration, at, share = value.partition("@")
    duration = duration.strip()
    if duration.startswith("+"):
        duration = duration[1:].strip()
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"{part}: the added latency must be a duration such as +300ms or +1.5s (got {duration!r})")
    delay_ms = float(match.group(1)) * (1000.0 if match.group(2) == "s" else 1.0)
    if delay_ms > _MAX_DELAY_MS:
        raise ValueError(f"{part}: the added latency must be at most 600s")
    fraction = 1.0
    if at:
        match = _PERCENT.match(share.strip())
        if not match or not 0.0 <= float(match.group(1)) <= 100.0:
            raise ValueError(f"{part}: the share after @ must be a percentage between 0 and 100")
        fraction = float(match.group(1)) / 100.0
    return delay_ms, fraction


# -- the ASGI middleware ---------------------------------------------------------------------------
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INJECTED_ERROR = "injected failure (HEADWAY_FAULT_ERROR_RATE)"


class FaultMiddleware:
    """Pure ASGI middleware: fails or delays calls of ``paths`` as ``spec`` says.

    For ``Service.add_asgi_middleware(FaultMiddleware, spec=..., paths=...)``. Two random
    draws per faulted call (fail?, slow?), from one RNG seeded with ``spec.seed``, so the
    sequence is reproducible and independent of the settings. A delay comes first (a slow
    failure is slow too), then either a 500 or the wrapped app. ``paths`` empty: every
    POST is faulted. Other requests (health probes, /metrics, docs) pass untouched.
    """

    def __init__(self, app: ASGIApp, spec: FaultSpec, paths: Iterable[str] = ()) -> None:
        self.app = app
        self.spec = spec
        self.paths = frozenset(paths)
        self.rng = random.Random(spec.seed)
        self.injected_errors = 0
        self.injected_delays = 0

    def _faulted(self, scope: Scope) -> bool:
        if scope.get("type") != "http":
            return False
        if self.paths:
            return str(scope.get("path", "")).rstrip("/") in self.paths or str(scope.get("path", "")) in self.paths
        return scope.get("method") == "POST"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.spec.active or not self._faulted(scope):
            await self.app(scope, receive, send)
            return
        fail = self.rng.random() < self.spec.error_rate
        slow = self.rng.random() < self.spec.delay_fraction
        if self.spec.delay_ms > 0 and slow:
            self.injected_delays += 1
            await asyncio.sleep(self.spec.delay_ms / 1000.0)
        if not fail:
            await self.app(scope, receive, send)
            return
        self.injected_errors += 1
        body = json.dumps({"error": INJECTED_ERROR}).encode()
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
