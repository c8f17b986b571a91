"""A tiny fraud classifier served by BentoML that records its inputs, predictions and outcomes.

The three lines that matter are marked "monitoring". Serve it with the reference profile
(built from reference.csv by ``headway profile``, see profile-configmap.yaml)::

    headway profile examples/monitoring/reference.csv --prediction label -o /tmp/profile.json
    HEADWAY_PROFILE=/tmp/profile.json bentoml serve service:FraudClassifier --working-dir examples/monitoring

    curl -s localhost:3000/predict -H content-type:application/json \\
        -d '{"amount": 320.5, "country": "NG", "channel": "web", "age": 30, "request_id": "r-1"}'
    curl -s localhost:3000/outcome -H content-type:application/json -d '{"prediction_id": "r-1", "label": "legit"}'
    curl -s localhost:3000/metrics | grep ^headway_

In Kubernetes, the ModelDeployment (model-deployment.yaml) puts the profile's ConfigMap
(profile-configmap.yaml) into HEADWAY_PROFILE_JSON with spec.model.env's
valueFrom.configMapKeyRef; the operator reads the same ConfigMap (spec.monitoring.profile).
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
    def predict(self, amount: float | None = None, country: str | None = None, channel: str | None = None,
                age: int | None = None, request_id: str | None = None) -> dict[str, str]:
        label = predict(amount, country, channel, age)
        prediction_id = self.recorder.record(  # monitoring
            features={"amount": amount, "country": country, "channel": channel, "age": age},
            prediction=label, prediction_id=request_id)
        return {"prediction": label, "prediction_id": prediction_id}

    @bentoml.api
    def outcome(self, prediction_id: str, label: str) -> dict[str, bool]:
        """The true label of an earlier prediction, when it is known (a chargeback, a review)."""
        return {"matched": self.recorder.record_outcome(prediction_id, label)}
