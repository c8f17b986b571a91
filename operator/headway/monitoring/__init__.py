"""Model monitoring inside the model server: the recorder (recorder.py) and ``headway profile`` (profiling.py).

``from headway.monitoring import Recorder`` loads only prometheus_client and the profile's
format (headway.api.profile): no Kubernetes client, no kopf, so a BentoML service can use it.
"""

from headway.monitoring.recorder import (
    FEATURE_METRIC,
    OUTCOME_METRIC,
    PREDICTION_METRIC,
    PROFILE_ENV,
    SKETCH_METRIC,
    UNMATCHED_METRIC,
    Recorder,
    load_profile,
)

__all__ = [
    "FEATURE_METRIC",
    "OUTCOME_METRIC",
    "PREDICTION_METRIC",
    "PROFILE_ENV",
    "SKETCH_METRIC",
    "UNMATCHED_METRIC",
    "Recorder",
    "load_profile",
]
