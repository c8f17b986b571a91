"""The reference profile: how each watched feature, and the model's prediction, is binned.

A profile is built once from training (or reference) data by ``headway profile`` and stored
as JSON in a ConfigMap that ``spec.monitoring.profile`` names. The same profile is read by
two parties that must agree on every bin:

- the recorder inside the model server (``headway.monitoring.recorder``), which counts each
  prediction's features and output into ``headway_feature_observations_total{feature, bin}``
  and ``headway_prediction_observations_total{bin}``: fixed bins, so the cardinality
  is bounded by the profile (at most ``MAX_BINS`` per feature);
- the operator, which compares those counts with the profile's ``expected`` proportions
  (data drift) and the candidate's with the stable's (prediction drift).

Bins (``BinnedFeature.bins``):

- numeric: ``edges`` are the k-1 ascending inner cut points of k bins, named "0".."k-1":
  bin i holds values v with ``edges[i-1] <= v < edges[i]`` (bin 0: below ``edges[0]``; the
  last bin: ``edges[-1]`` and above);
- categorical: one bin per category in ``categories`` (named by the category), and
  ``OTHER`` for every value not listed (the cap on categories);
- both: ``MISSING`` for None and NaN.

``expected`` holds the reference proportion of every bin, in the order of ``bins`` (so it
sums to 1); ``samples`` how many reference values they come from.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OTHER = "__other__"
MISSING = "__missing__"
MAX_FEATURES = 64  # per profile: status reports each one (and the prediction)
RESERVED_FEATURE = "prediction"  # status' name for the model's output
MAX_BINS = 64  # per feature: a profile that needs more is refused (cardinality of the recorder's series)
PROFILE_KEY = "profile.json"  # the ConfigMap key that holds the profile
FEATURE_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$"


class BinnedFeature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    expected: tuple[float, ...]
    samples: int = Field(ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> BinnedFeature:
        if self.kind == "numeric":
            if self.categories:
                raise ValueError("a numeric feature has edges, not categories")
            if any(not math.isfinite(e) for e in self.edges) or list(self.edges) != sorted(set(self.edges)):
                raise ValueError("edges must be finite and strictly ascending")
        elif self.edges:
            raise ValueError("a categorical feature has categories, not edges")
        elif len(set(self.categories)) != len(self.categories) or {OTHER, MISSING} & set(self.categories):
            raise ValueError(f"categories must be distinct and not {OTHER!r} or {MISSING!r}")
        if len(self.expected) != len(self.bins):
            raise ValueError(f"expected has {len(self.expected)} proportions for {len(self.bins)} bins {list(self.bins)}")
        if len(self.bins) > MAX_BINS:
            raise ValueError(f"{len(self.bins)} bins; at most {MAX_BINS} (fewer edges or categories)")
        if any(p < 0 or not math.isfinite(p) for p in self.expected) or abs(sum(self.expected) - 1.0) > 1e-6:
            raise ValueError("expected must be proportions that sum to 1")
        return self

    @property
    def bins(self) -> tuple[str, ...]:
        """The bin names, in the order of ``expected``."""
        if self.kind == "numeric":
            return (*(str(i) for i in range(len(self.edges) + 1)), MISSING)
        return (*self.categories, OTHER, MISSING)

    def bin_of(self, value: Any) -> str:
        """The bin a value falls in (see the module docstring)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        if self.kind == "categorical":
            text = str(value)
            return text if text in self.categories else OTHER
        try:
            number = float(value)
        except (TypeError, ValueError):
            return MISSING
        if math.isnan(number):
            return MISSING
        return str(bisect.bisect_right(self.edges, number))

    def describe(self, bin_name: str) -> str:
        """A bin as a reader understands it: "[0.5, 1.2)", "US", "other", "missing"."""
        if bin_name == MISSING:
            return "missing"
        if bin_name == OTHER:
            return "other"
        if self.kind == "categorical":
            return bin_name
        i = int(bin_name)
        low = f"{self.edges[i - 1]:g}" if i > 0 else "-inf"
        high = f"{self.edges[i]:g}" if i < len(self.edges) else "+inf"
        return f"[{low}, {high})"


class ReferenceProfile(BaseModel):
    """A reference profile (the JSON in the ConfigMap's ``profile.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    features: dict[str, BinnedFeature] = Field(default_factory=dict)
    prediction: BinnedFeature | None = None  # the model's output (class, or binned value)
    source: str = ""  # where it was built from, for the reader

    @model_validator(mode="after")
    def _names(self) -> ReferenceProfile:
        import re

        if len(self.features) > MAX_FEATURES:
            raise ValueError(f"{len(self.features)} features; at most {MAX_FEATURES} (watch fewer: headway profile --feature)")
        if RESERVED_FEATURE in self.features:
            raise ValueError(f"a feature may not be named {RESERVED_FEATURE!r}: status reports the model's output under "
                             f"that name (rename the column)")
        bad = [name for name in self.features if not re.match(FEATURE_NAME, name)]
        if bad:
            raise ValueError(f"feature names {bad} are not usable as Prometheus label values here; "
                             f"use letters, digits, _ . : - (at most 63), starting with a letter or _")
        return self
