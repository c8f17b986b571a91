"""ModelDeployment.spec.monitoring: data drift of the inputs, and what new versions answer.

The model server counts each prediction's watched features and output into fixed bins with
``headway.monitoring.Recorder`` (bins from a reference profile, built by ``headway profile``
from training data and stored in a ConfigMap). The operator reads those counts from
Prometheus and:

- every ``interval``, tests the stable version's inputs (and predictions) over the last
  ``window`` against the reference: a G-test of homogeneity per feature (the reference is a
  sample too), its statistic deflated by the traffic's own dispersion, Holm-corrected across
  features; a feature has drifted when the test rejects at ``alpha`` and its PSI is at least
  ``minEffect``. Results in status.monitoring, the ``DataDrift`` condition, an Event when it
  changes;
- during shadow and canary steps, with ``compare``: the candidate's prediction distribution
  against the stable's on the same traffic (the mirror sends both the same requests), by a
  sequential two-sample test (its level spent over the looks, so looking often does not
  inflate false alarms); reported in status, and with ``compare.gate`` a step passes only when
  the answers are shown to differ by less than ``maxDifference`` (a Fail rolls back).

See docs/monitoring.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from headway.api.base import ApiModel
from headway.api.limits import ObjectName
from headway.api.profile import FEATURE_NAME, PROFILE_KEY
from headway.api.types import Duration

# A profile's features are Prometheus label values the recorder writes; the same names here.
FeatureName = Annotated[str, Field(pattern=FEATURE_NAME, max_length=63)]
BinName = Annotated[str, Field(min_length=1, max_length=253)]


class ProfileReference(ApiModel):
    """The ConfigMap (in the ModelDeployment's namespace) holding the reference profile."""

    config_map: ObjectName
    """Name of the ConfigMap (`headway profile DATA --configmap NAME` prints one)."""
    key: str = Field(default=PROFILE_KEY, min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key of the profile's JSON in the ConfigMap."""


class PredictionComparison(ApiModel):
    """How the candidate's answers are compared with the stable's during shadow and canary steps."""

    max_difference: float = Field(default=0.1, gt=0, le=1)
    """Largest acceptable difference between the two prediction distributions, as a total variation distance
    (the share of answers that would have to change bins to turn one distribution into the other): 0.1 = 10%."""
    expected_shift: list[BinName] = Field(default_factory=list, max_length=64)
    """Prediction bins the new version is expected to change (e.g. a class it now predicts more often): left out
    of the comparison, which then tests that the other bins keep their proportions to each other."""
    gate: bool = False
    """Gate the steps on it: a shadow or canary step passes only when the difference is shown to be below
    maxDifference, and a difference shown beyond it rolls the candidate back (reason FailedAnalysis)."""


class Monitoring(ApiModel):
    """Data drift of the stable version's inputs and predictions, and the candidate's answers against the stable's."""

    profile: ProfileReference
    """The reference profile: bins and expected proportions of each feature and of the prediction."""
    features: list[FeatureName] = Field(default_factory=list, max_length=64)
    """Features to watch (names in the profile); empty: every feature of the profile."""
    prediction: bool = True
    """Watch the distribution of the predictions too (if the profile has one)."""
    window: Duration = "1h"
    """The traffic each data-drift test looks at: the last window."""
    interval: Duration = "5m"
    """How often the stable's drift is tested, and how often a candidate's answers are compared."""
    alpha: float = Field(default=0.01, gt=0, le=0.2)
    """Significance level of the drift tests (Holm-corrected across features; spent over looks when comparing)."""
    min_effect: float = Field(default=0.1, ge=0, le=10)
    """Smallest population stability index (PSI) counted as drift: with millions of requests a test rejects for
    differences nobody cares about (0.1 is the usual "moderate shift"; 0: any significant difference)."""
    min_samples: int = Field(default=200, ge=10, le=1_000_000_000)
    """Below this many observations in the window a feature (or a version's predictions) is not judged."""
    compare: PredictionComparison | None = None
    """Compare the candidate's predictions with the stable's during shadow and canary steps."""


__all__ = ["FEATURE_NAME", "BinName", "FeatureName", "Monitoring", "PredictionComparison", "ProfileReference"]
