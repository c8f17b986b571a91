"""The sandbox's bundled example model: a tiny fraud scorer whose faults are set by env vars.

Served by :class:`headway.sandbox.processes.BentoServer` (when it is given no service of the
user's) as::

    bentoml serve headway.sandbox.example_service:FraudScorer --host 127.0.0.1 --port N

Faults (read once, at import, in the server's worker process; see
:mod:`headway.sandbox.faults`, whose ``FaultSpec.to_env`` writes them):

- ``HEADWAY_FAULT_ERROR_RATE``: fraction of ``score`` calls that fail with HTTP 500. The
  handler raises ``bentoml.exceptions.InternalServerError`` (error_code 500), which BentoML
  turns into a 500 response and counts as ``http_response_code="500"`` in
  ``bentoml_service_request_total``.
- ``HEADWAY_FAULT_DELAY_MS``: latency added to a ``score`` call, in milliseconds.
- ``HEADWAY_FAULT_DELAY_FRACTION``: fraction of calls that get the delay (default 1.0).
- ``HEADWAY_FAULT_SEED``: seed of the per-process RNG (default 0), so a server's sequence
  of errors and delays is reproducible for a given sequence of requests.
- ``HEADWAY_FAULT_SHIFT``: logits added to the score (its answers change; see
  :mod:`headway.sandbox.example_model`).

Every answered call is recorded by :class:`headway.monitoring.Recorder` with the example's
reference profile (features f0..f3, prediction ``flagged``), as a user's model would: the
operator's drift checks (``spec.monitoring``) read those counts. The request's
``x-request-id`` header (the load generator sends it, the same on a mirrored copy) is the
prediction's id, so a shadow step measures how often both versions answer alike.

The service has one worker (``workers=1``), so there is exactly one RNG per server. (A
user's own service gets the same faults from :mod:`headway.sandbox.fault_wrapper`.)
"""

from __future__ import annotations

import asyncio
import os
import random

import bentoml
from bentoml.exceptions import InternalServerError

from headway.monitoring import Recorder
from headway.sandbox.example_model import FEATURE_NAMES, reference_profile, score
from headway.sandbox.faults import FaultSpec

_FAULTS = FaultSpec.from_env(os.environ)  # ValueError on a bad variable: the server does not start
ERROR_RATE = _FAULTS.error_rate
DELAY_SECONDS = _FAULTS.delay_ms / 1000.0
DELAY_FRACTION = _FAULTS.delay_fraction
SEED = _FAULTS.seed
SHIFT = _FAULTS.shift
# In the worker process (module level): its counters go to BentoML's /metrics. No outcomes are
# recorded, so no prediction ids are kept.
RECORDER = Recorder(reference_profile(), max_pending=0)


# One worker: one RNG per server. No access log: it costs CPU the 2 shared cores need
# (failed calls still log their traceback).
@bentoml.service(name="fraud_scorer", workers=1, traffic={"timeout": 30}, logging={"access": {"enabled": False}})
class FraudScorer:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)

    @bentoml.api
    async def score(self, features: list[float], ctx: bentoml.Context) -> dict[str, float | bool]:
        # Both draws happen on every call, so errors and delays stay independent and the
        # sequence is the same whatever the settings.
        fail = self.rng.random() < ERROR_RATE
        slow = self.rng.random() < DELAY_FRACTION
        if DELAY_SECONDS > 0 and slow:
            await asyncio.sleep(DELAY_SECONDS)
        if fail:
            raise InternalServerError("injected failure (HEADWAY_FAULT_ERROR_RATE)")
        probability, flagged = score(features, SHIFT)
        RECORDER.record(features=dict(zip(FEATURE_NAMES, features)), prediction=flagged,
                        prediction_id=ctx.request.headers.get("x-request-id"))
        return {"fraud_probability": probability, "flagged": flagged}
