"""The recorder: counts a model's inputs, outputs and delayed outcomes in the profile's bins.

Used inside the model server (a BentoML service); it depends on ``prometheus_client`` and
``headway.api.profile`` only (no Kubernetes, no kopf)::

    from headway.monitoring import Recorder

    recorder = Recorder.from_env()  # HEADWAY_PROFILE: the profile's path (or the mounted ConfigMap's directory)

    pid = recorder.record(features={"amount": 12.3, "country": "US"}, prediction="fraud")
    ...
    recorder.record_outcome(pid, label="legit")  # later, when the true label is known

Metrics (Prometheus counters; every label value is a name from the profile, so the number of
series is bounded by the profile: at most ``MAX_BINS`` per feature, ``MAX_BINS**2`` outcomes):

``headway_feature_observations_total{feature, bin}``
    one per watched feature of the profile and recorded prediction: ``feature`` is the
    feature's name, ``bin`` its bin (``"0"``..``"k-1"`` for numeric features, the category,
    ``__other__`` or ``__missing__``; see headway.api.profile). Features the profile does not
    list are ignored; listed features absent from ``features`` (or None / NaN) count as
    ``__missing__``.
``headway_prediction_observations_total{bin}``
    the prediction's bin, per recorded prediction (only if the profile has a ``prediction``
    and ``record`` is given one; an explicit ``prediction=None`` counts as ``__missing__``).
``headway_outcomes_total{predicted, actual}``
    per ``record_outcome``: the bin of the prediction that was made (looked up by its id) and
    the bin of the true label, both as the profile's prediction bins. Precision of class c is
    ``outcomes{predicted=c, actual=c} / sum(outcomes{predicted=c})``, recall
    ``outcomes{predicted=c, actual=c} / sum(outcomes{actual=c})``.
``headway_outcomes_unmatched_total``
    outcomes whose prediction id the recorder does not know (never recorded, already given an
    outcome, recorded by another process or replica, or evicted from the bounded map).
``headway_prediction_sketch_total{bucket, sign}``
    per recorded prediction that comes with its request's id (``prediction_id``): one of
    ``2 x 64`` cells chosen by a hash of the id and the prediction's bin (headway.api.sketch).
    In a shadow step, where the mirror sends both versions the same requests with the same
    id (the ``x-request-id`` header), the operator compares the two versions' cells to measure
    the share of requests they answer alike (``status.monitoring.prediction.agreement``; see
    docs/monitoring.md). Predictions recorded without an id are not in it: an id the server
    made up is the other version's noise. Only with a profile that has a prediction.

Every series of the profile's bins is created at 0 when the recorder is made, so rates exist
from the first scrape.

The recorder keeps the predicted bin of the last ``max_pending`` (default 100 000) prediction
ids (least recently recorded evicted first) until their outcome arrives. The map lives in the
process: an outcome must reach the worker that made the prediction, or pass ``prediction=``
to ``record_outcome`` itself. All methods are thread-safe.

In BentoML (1.4) create the recorder in the service module or the service's ``__init__``:
both run in the worker processes, which start with ``PROMETHEUS_MULTIPROC_DIR`` set, so plain
``prometheus_client`` counters (what this module uses) are written to the multiprocess files
that the server's ``/metrics`` endpoint aggregates. (``bentoml.metrics`` is a deprecated alias
of ``prometheus_client``.)
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from headway.api.profile import PROFILE_KEY, ReferenceProfile
from headway.api.sketch import BUCKETS, SIGNS, cell_of
from headway.api.sketch import SKETCH_METRIC as SKETCH_METRIC  # re-exported with the recorder's other names

PROFILE_ENV: Final = "HEADWAY_PROFILE"
MAX_WARNED: Final = 64  # unknown feature names logged, at most (a caller sending arbitrary keys must not flood the log)
log = logging.getLogger(__name__)
DEFAULT_MAX_PENDING: Final = 100_000

FEATURE_METRIC: Final = "headway_feature_observations_total"
PREDICTION_METRIC: Final = "headway_prediction_observations_total"
OUTCOME_METRIC: Final = "headway_outcomes_total"
UNMATCHED_METRIC: Final = "headway_outcomes_unmatched_total"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final = _Unset()  # "no prediction given" (None is a prediction: it counts as missing)


@dataclass(frozen=True)
class _Metrics:
    features: Counter
    prediction: Counter
    outcomes: Counter
    unmatched: Counter
    sketch: Counter


# One set of counters per registry: prometheus_client refuses a second metric of the same name,
# and two recorders in one process (a service and a test, two services) must share them.
_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


def _metrics(registry: CollectorRegistry) -> _Metrics:
    with _METRICS_LOCK:
        found = _METRICS.get(registry)
        if found is None:
            found = _METRICS[registry] = _Metrics(
                features=Counter(FEATURE_METRIC.removesuffix("_total"),
                                 "Recorded model inputs per watched feature and reference-profile bin",
                                 ["feature", "bin"], registry=registry),
                prediction=Counter(PREDICTION_METRIC.removesuffix("_total"),
                                   "Recorded model predictions per reference-profile bin",
                                   ["bin"], registry=registry),
                outcomes=Counter(OUTCOME_METRIC.removesuffix("_total"),
                                 "Delayed outcomes: the predicted bin and the bin of the true label",
                                 ["predicted", "actual"], registry=registry),
                unmatched=Counter(UNMATCHED_METRIC.removesuffix("_total"),
                                  "Outcomes whose prediction id the recorder did not know",
                                  registry=registry),
                sketch=Counter(SKETCH_METRIC.removesuffix("_total"),
                               "Predictions with a request id, per cell of a hash of the id and the prediction's bin "
                               "(compared between versions for their agreement per request)",
                               ["bucket", "sign"], registry=registry),
            )
        return found


def load_profile(path: str | os.PathLike[str]) -> ReferenceProfile:
    """A profile from its JSON file, or from a directory holding ``profile.json`` (a mounted ConfigMap)."""
    file = Path(path)
    if file.is_dir():
        file = file / PROFILE_KEY
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the reference profile {str(file)!r}: {exc.strerror or exc}") from exc
    try:
        return ReferenceProfile.model_validate_json(text)
    except ValueError as exc:
        raise ValueError(f"{str(file)!r} is not a valid reference profile: {exc}") from exc


class Recorder:
    """Counts features, predictions and outcomes in the bins of a reference profile (module docstring)."""

    def __init__(self, profile: ReferenceProfile, *, registry: CollectorRegistry | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 0:
            raise ValueError(f"max_pending must be >= 0, not {max_pending}")
        self.profile = profile
        self.max_pending = max_pending
        self._metrics = _metrics(REGISTRY if registry is None else registry)
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, str] = OrderedDict()  # prediction id -> predicted bin
        self._warned: set[str] = set()  # feature names not in the profile, already logged
        # The children, resolved once: .labels() takes a lock and builds a key on every call.
        self._feature_children = {
            name: {b: self._metrics.features.labels(feature=name, bin=b) for b in feature.bins}
            for name, feature in profile.features.items()
        }
        prediction_bins = profile.prediction.bins if profile.prediction is not None else ()
        self._prediction_children = {b: self._metrics.prediction.labels(bin=b) for b in prediction_bins}
        self._outcome_children = {
            (p, a): self._metrics.outcomes.labels(predicted=p, actual=a) for p in prediction_bins for a in prediction_bins
        }
        self._metrics.unmatched.inc(0)  # no labels: exported at 0 already; explicit for the reader
        self._sketch_children = {
            (b, sign): self._metrics.sketch.labels(bucket=str(b), sign=sign) for b in range(BUCKETS) for sign in SIGNS
        } if profile.prediction is not None else {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Recorder:
        """A recorder for the profile in ``path`` (JSON, or a directory with ``profile.json``)."""
        return cls(load_profile(path), **kwargs)

    @classmethod
    def from_env(cls, variable: str = PROFILE_ENV, **kwargs: Any) -> Recorder:
        """A recorder for the profile whose path is in the environment variable (``HEADWAY_PROFILE``),
        or whose JSON is in ``<variable>_JSON`` (``HEADWAY_PROFILE_JSON``: in a ModelDeployment,
        ``spec.model.env`` with ``valueFrom.configMapKeyRef`` naming the profile's ConfigMap)."""
        path = os.environ.get(variable, "")
        text = os.environ.get(f"{variable}_JSON", "")
        if not path and not text:
            raise ValueError(f"neither {variable} nor {variable}_JSON is set: {variable} names the reference profile's file "
                             f"(or the directory where its ConfigMap is mounted), {variable}_JSON holds its JSON")
        if path:
            return cls.from_file(path, **kwargs)
        try:
            return cls(ReferenceProfile.model_validate_json(text), **kwargs)
        except ValueError as exc:
            raise ValueError(f"{variable}_JSON is not a reference profile: {str(exc).splitlines()[0]}") from None

    @property
    def pending(self) -> int:
        """How many prediction ids wait for their outcome."""
        with self._lock:
            return len(self._pending)

    def record(self, features: Mapping[str, Any] | None = None, prediction: Any = UNSET,
               prediction_id: str | None = None) -> str:
        """Count one prediction's watched features and its prediction; returns its id (given or generated).

        The id is what ``record_outcome`` takes when the true label arrives. Give the request's
        own id (its ``x-request-id`` header, which gateway mirrors copy to the shadow): with it the
        prediction also counts in the agreement sketch (``headway_prediction_sketch_total``).
        """
        features = features or {}
        if len(self._warned) < MAX_WARNED and (unknown := set(features) - set(self.profile.features) - self._warned):
            # Probably a typo: the feature it meant is counted as missing. Said once per name.
            self._warned |= unknown
            log.warning("features %s are not in the reference profile (it has %s): not recorded",
                        sorted(unknown), sorted(self.profile.features))
        for name, feature in self.profile.features.items():
            self._feature_children[name][feature.bin_of(features.get(name))].inc()
        pid = str(prediction_id) if prediction_id is not None else uuid.uuid4().hex
        if prediction is not UNSET and self.profile.prediction is not None:
            predicted = self.profile.prediction.bin_of(prediction)
            self._prediction_children[predicted].inc()
            if prediction_id is not None:  # a generated id is never the other version's: no agreement to count
                self._sketch_children[cell_of(pid, predicted)].inc()
            if self.max_pending:
                with self._lock:
                    self._pending[pid] = predicted
                    self._pending.move_to_end(pid)
                    while len(self._pending) > self.max_pending:
                        self._pending.popitem(last=False)
        return pid

    def record_outcome(self, prediction_id: str, label: Any, *, prediction: Any = UNSET) -> bool:
        """Count the true ``label`` of a recorded prediction; False (and counted unmatched) if the id is unknown.

        Each id takes one outcome. ``prediction=`` gives the prediction itself instead of looking
        the id up (outcomes that reach another process or replica than the prediction).
        """
        if self.profile.prediction is None:
            raise ValueError("the reference profile has no prediction: outcomes are counted in its bins")
        with self._lock:
            predicted = self._pending.pop(str(prediction_id), None)
        if prediction is not UNSET:
            predicted = self.profile.prediction.bin_of(prediction)
        if predicted is None:
            self._metrics.unmatched.inc()
            return False
        self._outcome_children[(predicted, self.profile.prediction.bin_of(label))].inc()
        return True
