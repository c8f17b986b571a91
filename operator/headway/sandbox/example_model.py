"""The bundled example's model, without BentoML: its scoring, its traffic and its reference profile.

:mod:`headway.sandbox.example_service` serves it; the load generator
(:func:`headway.sandbox.dataplane.example_payload`) sends its requests; the sandbox and the
tests put :func:`reference_profile` in the ConfigMap that ``spec.monitoring.profile`` names.
All three agree because they are this module.

- ``features``: up to 8 numbers; the traffic sends four, uniform in [-2, 2] (named f0..f3 in
  the profile).
- the prediction: ``flagged`` (fraud probability >= 0.5), recorded as the category "True" or
  "False"; ``shift`` (``--fault shift=+1.5``) adds logits to the score, so a shifted version
  flags more often while its errors and latency stay as they are.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence

from headway.api.profile import ReferenceProfile

# A fixed "model": logistic regression weights over up to 8 features.
WEIGHTS = (0.8, -0.5, 1.2, 0.3, -0.9, 0.4, 0.05, -0.2)
BIAS = -0.1
TRAFFIC_FEATURES = 4  # what the load generator sends
FEATURE_NAMES = tuple(f"f{i}" for i in range(TRAFFIC_FEATURES))
PREDICTION = "flagged"


def example_features(rng: random.Random, drift: float = 0.0) -> list[float]:
    """One request's features: four numbers uniform in [-2, 2] (``drift`` moves the first one)."""
    return [round(rng.uniform(-2.0, 2.0) + (drift if i == 0 else 0.0), 3) for i in range(TRAFFIC_FEATURES)]


def score(features: Sequence[float], shift: float = 0.0) -> tuple[float, bool]:
    """(fraud probability, flagged) of one request; ``shift`` logits added to the score."""
    logit = BIAS + shift + sum(w * float(x) for w, x in zip(WEIGHTS, features[: len(WEIGHTS)]))
    probability = 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, logit))))
    return probability, probability >= 0.5


@functools.cache
def reference_profile(rows: int = 10_000, seed: int = 11) -> ReferenceProfile:
    """The profile of the example's traffic and answers (as ``headway profile`` would build it
    from ``rows`` logged requests): deciles of f0..f3, and the share of flagged answers."""
    from headway.monitoring.profiling import build_profile

    rng = random.Random(seed)
    samples = [example_features(rng) for _ in range(rows)]
    table: dict[str, list[object]] = {name: [s[i] for s in samples] for i, name in enumerate(FEATURE_NAMES)}
    table[PREDICTION] = [score(s)[1] for s in samples]
    return build_profile(table, prediction=PREDICTION, categorical=[PREDICTION], bins=10,
                         source="headway.sandbox.example_model (the load generator's traffic)")
