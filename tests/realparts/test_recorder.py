"""The recorder in a real ``bentoml serve``: a service written here records with headway.monitoring,
and the server's own ``/metrics`` shows exactly the counts of what was sent.

The service runs 2 workers (BentoML's Prometheus multiprocess mode: each worker writes its
own files, /metrics sums them), its recorder made either in the service's ``__init__`` or at
module import; both run in the workers, which start with PROMETHEUS_MULTIPROC_DIR set. It
reads each request's ``x-request-id`` header from BentoML's context (``ctx: bentoml.Context``)
as the prediction's id, as docs/monitoring.md tells users to: the agreement sketch counts
exactly the cells of those ids and answers.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
import requests

from headway.api.profile import MISSING, OTHER, BinnedFeature, ReferenceProfile
from headway.api.sketch import BUCKETS, cell_of
from headway.monitoring import FEATURE_METRIC, OUTCOME_METRIC, PREDICTION_METRIC, SKETCH_METRIC, UNMATCHED_METRIC
from headway.sandbox.processes import BentoServer, parse_samples

pytestmark = pytest.mark.realparts

PROFILE = ReferenceProfile(
    features={
        "amount": BinnedFeature(kind="numeric", edges=(10.0, 100.0), expected=(0.3, 0.5, 0.2, 0.0), samples=100),
        "country": BinnedFeature(kind="categorical", categories=("US", "DE"), expected=(0.6, 0.3, 0.1, 0.0),
                                 samples=100),
    },
    prediction=BinnedFeature(kind="categorical", categories=("fraud", "legit"), expected=(0.2, 0.8, 0.0, 0.0),
                             samples=100),
)

SERVICE = '''
import os

import bentoml

from headway.monitoring import Recorder

MODULE_RECORDER = Recorder.from_env() if os.environ.get("MAKE_AT") == "module" else None


@bentoml.service(workers=2)
class Scorer:
    def __init__(self) -> None:
        self.recorder = MODULE_RECORDER or Recorder.from_env()

    @bentoml.api
    def predict(self, ctx: bentoml.Context, amount: float | None = None, country: str | None = None) -> dict:
        label = "fraud" if (amount or 0) > 100 else "legit"
        pid = self.recorder.record(features={"amount": amount, "country": country, "unwatched": 1},
                                   prediction=label, prediction_id=ctx.request.headers.get("x-request-id"))
        return {"label": label, "id": pid, "pid": os.getpid()}

    @bentoml.api
    def outcome(self, prediction_id: str, label: str, predicted: str | None = None) -> dict:
        extra = {} if predicted is None else {"prediction": predicted}
        return {"matched": self.recorder.record_outcome(prediction_id, label, **extra), "pid": os.getpid()}
'''

# (amount, country) -> bins: amount 0 [<10], 1 [10, 100), 2 [>=100]; the prediction is fraud above 100.
REQUESTS = [
    *[({"amount": 5.0, "country": "US"}, ("0", "US", "legit"))] * 7,
    *[({"amount": 10.0, "country": "DE"}, ("1", "DE", "legit"))] * 5,
    *[({"amount": 250.0, "country": "FR"}, ("2", OTHER, "fraud"))] * 4,
    *[({"country": "US"}, (MISSING, "US", "legit"))] * 3,
    *[({"amount": 99.5}, ("1", MISSING, "legit"))] * 2,
]


def counts(text: str, metric: str, *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels[k] for k in keys): value for labels, value in parse_samples(text, metric)}


@pytest.mark.parametrize("make_at", ["init", "module"])
def test_recorded_counts_appear_on_the_servers_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        make_at: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "recorded_service.py").write_text(textwrap.dedent(SERVICE))
    (tmp_path / "profile.json").write_text(PROFILE.model_dump_json())
    monkeypatch.setenv("HEADWAY_PROFILE", str(tmp_path / "profile.json"))  # BentoServer passes the environment on
    monkeypatch.setenv("MAKE_AT", make_at)
    server = BentoServer(workdir=tmp_path / "server", label="recorded", service="recorded_service:Scorer",
                         working_dir=project)
    try:
        server.start(timeout=120)

        # Before any prediction: every bin's series, at 0.
        before = server.metrics_text()
        assert counts(before, FEATURE_METRIC, "feature", "bin") == {
            **{("amount", b): 0.0 for b in ("0", "1", "2", MISSING)},
            **{("country", b): 0.0 for b in ("US", "DE", OTHER, MISSING)},
        }
        bins = ("fraud", "legit", OTHER, MISSING)
        assert counts(before, PREDICTION_METRIC, "bin") == {(b,): 0.0 for b in bins}
        assert counts(before, OUTCOME_METRIC, "predicted", "actual") == {(p, a): 0.0 for p in bins for a in bins}
        assert counts(before, UNMATCHED_METRIC) == {(): 0.0}
        assert counts(before, SKETCH_METRIC, "bucket", "sign") == {(str(b), s): 0.0 for b in range(BUCKETS) for s in "+-"}

        # Predictions: a new connection each, so both workers may answer.
        answers = []
        for i, (payload, _) in enumerate(REQUESTS):
            response = requests.post(f"{server.url}/predict", json=payload, headers={"x-request-id": f"r-{i}"}, timeout=10)
            assert response.status_code == 200, response.text
            answers.append(response.json())
        assert [a["label"] for a in answers] == [bins_ for _, (_, _, bins_) in REQUESTS]
        assert [a["id"] for a in answers] == [f"r-{i}" for i in range(len(REQUESTS))]

        # Outcomes: the actual label of each fraud prediction, one unknown id, and one with its prediction given.
        # An outcome matches if it reaches the worker that made the prediction (the map is per process).
        expected_outcomes: Counter[tuple[str, str]] = Counter()
        unmatched = 0
        for i, (_, (_, _, label)) in enumerate(REQUESTS):
            actual = "legit" if i % 2 else label
            response = requests.post(f"{server.url}/outcome", json={"prediction_id": f"r-{i}", "label": actual}, timeout=10)
            assert response.status_code == 200, response.text
            if response.json()["matched"]:
                expected_outcomes[(label, actual)] += 1
            else:
                unmatched += 1
        for payload in ({"prediction_id": "never-made", "label": "fraud"},
                        {"prediction_id": "elsewhere", "label": "fraud", "predicted": "fraud"}):
            matched = requests.post(f"{server.url}/outcome", json=payload, timeout=10).json()["matched"]
            assert matched is (payload["prediction_id"] == "elsewhere")
        expected_outcomes[("fraud", "fraud")] += 1
        unmatched += 1

        after = server.metrics_text()
        expected_features: Counter[tuple[str, str]] = Counter()
        expected_predictions: Counter[tuple[str]] = Counter()
        for _, (amount_bin, country_bin, label) in REQUESTS:
            expected_features[("amount", amount_bin)] += 1
            expected_features[("country", country_bin)] += 1
            expected_predictions[(label,)] += 1
        assert {k: v for k, v in counts(after, FEATURE_METRIC, "feature", "bin").items() if v} == expected_features
        assert {k: v for k, v in counts(after, PREDICTION_METRIC, "bin").items() if v} == expected_predictions
        assert {k: v for k, v in counts(after, OUTCOME_METRIC, "predicted", "actual").items() if v} == expected_outcomes
        assert counts(after, UNMATCHED_METRIC) == {(): float(unmatched)}
        # The agreement sketch: one count per prediction, in the cell of its id and answer, over both workers.
        expected_sketch = Counter((str(b), s) for b, s in (cell_of(f"r-{i}", label) for i, (_, (_, _, label)) in enumerate(REQUESTS)))
        assert {k: v for k, v in counts(after, SKETCH_METRIC, "bucket", "sign").items() if v} == expected_sketch
        assert sum(expected_outcomes.values()) + unmatched == len(REQUESTS) + 2
        assert "unwatched" not in after  # features outside the profile make no series
    finally:
        server.stop()
