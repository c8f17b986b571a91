"""A tiny fraud classifier served by BentoML that records its inputs, predictions and outcomes.

The lines that matter are marked "monitoring". Serve it with the reference profile
(built from reference.csv by ``headway profile``, see profile-configmap.yaml)::

    headway profile examples/monitoring/reference.csv --prediction label -o /tmp/profile.json
    HEADWAY_PROFILE=/tmp/profile.json bentoml serve service:FraudClassifier --working-dir examples/monitoring

    curl -s localhost:3000/predict -H content-type:application/json -H 'x-request-id: r-1' \\
        -d '{"amount": 320.5, "country": "NG", "channel": "web", "age": 30}'
    curl -s localhost:3000/outcome -H content-type:application/json -d '{"prediction_id": "r-1", "label": "legit"}'
    curl -s localhost:3000/metrics | grep ^headway_

In Kubernetes, the ModelDeployment (model-deployment.yaml) puts the profile's ConfigMap
(profile-configmap.yaml) into HEADWAY_PROFILE_JSON with spec.model.env's
valueFrom.configMapKeyRef; the operator reads the same ConfigMap (spec.monitoring.profile).

The prediction's id is the request's ``x-request-id`` header, read from BentoML's request
context (an argument ``ctx: bentoml.Context``; ``ctx.request`` is the Starlette request).
Gateways built on Envoy (Istio, Envoy Gateway, and other Gateway API implementations) set the
header on every request and their mirrors copy it to the shadow, so in a shadow step both
versions record the same request under the same id: the operator then reports how often they
answer alike (``status.monitoring.prediction.agreement``). Without the header (a direct call)
no id is recorded for agreement, and ``record`` makes one up for the outcome.
"""

from __future__ import annotations

import bentoml

from headway.monitoring import Recorder  # monitoring
from rules import predict


@bentoml.service
class FraudClassifier:
    def __init__(self) -> None:
        # Created in the worker process (where /metrics's multiprocess collector reads it);
        # HEADWAY_PROFILE names the profile file or the mounted ConfigMap's directory.
        self.recorder = Recorder.from_env()  # monitoring

    @bentoml.api
    def predict(self, ctx: bentoml.Context, amount: float | None = None, country: str | None = None,
                channel: str | None = None, age: int | None = None) -> dict[str, str]:
        label = predict(amount, country, channel, age)
        prediction_id = self.recorder.record(  # monitoring
            features={"amount": amount, "country": country, "channel": channel, "age": age},
            prediction=label, prediction_id=ctx.request.headers.get("x-request-id"))  # monitoring: the mirror copies it
        return {"prediction": label, "prediction_id": prediction_id}

    @bentoml.api
    def outcome(self, prediction_id: str, label: str) -> dict[str, bool]:
        """The true label of an earlier prediction, when it is known (a chargeback, a review)."""
        return {"matched": self.recorder.record_outcome(prediction_id, label)}
