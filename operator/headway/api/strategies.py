"""How a new version reaches production: rollout steps (spec.rollout) or an A/B/n experiment (spec.experiment).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from headway.api.base import ApiModel, Rule, exactly_one_of
from headway.api.limits import DNS_LABEL_MAX
from headway.api.serving import ModelSpec
from headway.api.types import DnsLabel, Duration


class ShadowStep(ApiModel):
    """Mirror a share of live traffic to the candidate; its responses are discarded."""

    percent: int = Field(default=100, ge=1, le=100)
    """Share of requests mirrored, percent."""
    duration: Duration
    """How long the step lasts at least."""


class CanaryStep(ApiModel):
    """Send a share of live traffic to the candidate."""

    weight: int = Field(ge=0, le=100)
    """Candidate's share of traffic, percent."""
    duration: Duration
    """How long the step lasts at least."""


class PauseStep(ApiModel):
    """Hold the rollout: for a duration, or (without one) until a person promotes it."""

    duration: Duration | None = None
    """How long to pause; without it, wait for a manual promote."""


class RolloutStep(ApiModel):
    """One step: exactly one of shadow, canary and pause."""

    __cel__ = (exactly_one_of("each step sets exactly one of shadow, canary and pause", "shadow", "canary", "pause"),)

    shadow: ShadowStep | None = None
    """Mirror traffic to the candidate."""
    canary: CanaryStep | None = None
    """Send weighted traffic to the candidate."""
    pause: PauseStep | None = None
    """Wait, for a duration or for a person."""


class BakeBaseline(ApiModel):
    """What the new stable is compared with during the bake: exactly one of mirror, weight and none.

    Without it: mirror 100 where the traffic provider can mirror (gatewayApi, istio), else weight 5
    (provider none: the replica ratio). The previous version runs the replicas its share needs (at
    least one) and gets its share once they are available; the bake then judges the new stable
    against it, over the same requests at the same time, with the verdicts of the rollout steps:
    a breach the previous version shares never restores it."""

    __cel__ = (exactly_one_of("bakeBaseline sets exactly one of mirror, weight and none", "mirror", "weight", "none"),)

    mirror: int | None = Field(default=None, ge=1, le=100)
    """Percent of live requests copied to the previous version, whose responses are discarded: no user sees it.
    Needs a provider that can mirror (gatewayApi or istio). It runs ceil(mirror% of the stable's replicas) pods:
    100 (the default) doubles the pods for the bake; less is cheaper and compares on fewer requests."""
    weight: int | None = Field(default=None, ge=1, le=50)
    """Percent of live traffic the previous version serves during the bake (users see it). With provider none it
    is the replica ratio: the previous version runs ceil(weight% of the stable's replicas) pods beside the stable's."""
    none: Literal[True] | None = None
    """No baseline: the previous version stays available without traffic and the bake judges the new stable alone;
    a breach is reported (Warning Event, Degraded) and restores the previous version only with rollbackWithoutBaseline."""


class Rollout(ApiModel):
    """How a new spec.model reaches production."""

    __cel__ = (
        Rule("!has(self.bakeBaseline) || has(self.bakeTime)", "bakeBaseline needs bakeTime: without it there is no bake",
             ".bakeBaseline", lambda m: m.bake_baseline is None or m.bake_time is not None),
    )

    # Real rollouts take 3 to 10 steps (shadow, canaries at 1/5/25/50%, pauses); 32 is plenty.
    steps: list[RolloutStep] = Field(default_factory=list, max_length=32)
    """Steps run in order for every new version; after the last one the candidate is promoted."""
    bake_time: Duration | None = None
    """After promotion keep the previous version available and keep judging the new stable this long (with
    spec.analysis), against the previous version (bakeBaseline). A breach shown against it restores the previous
    version; a breach it shares never does."""
    bake_baseline: BakeBaseline | None = None
    """What the bake compares the new stable with (default: mirror 100 where the provider can mirror, else weight 5)."""
    rollback_without_baseline: bool = False
    """Restore the previous version on a bake breach that was not compared with it (bakeBaseline none, the
    previous version not yet available, or fewer than minRequests of its requests so far). Default false: such
    a breach is reported (Warning Event BakeBreach, condition Degraded, history) and the new stable keeps serving."""


class ExperimentVariant(ApiModel):
    """One arm of an A/B/n experiment."""

    name: DnsLabel
    """Variant name (becomes the headway.dev/variant label)."""
    weight: int = Field(ge=0, le=100)
    """Share of traffic, percent."""
    model: ModelSpec | None = None
    """The version this arm serves; the one arm without it serves spec.model."""


class HeaderMatch(ApiModel):
    """An exact header or cookie match."""

    # Header names are short tokens; values as long as a large cookie (4 KiB, browsers' limit).
    name: str = Field(min_length=1, max_length=256)
    """Header or cookie name."""
    value: str = Field(max_length=4096)
    """Exact value."""


class MatchRule(ApiModel):
    """Pin requests to a variant before weights apply: exactly one of header and cookie."""

    __cel__ = (exactly_one_of("each match sets exactly one of header and cookie", "header", "cookie"),)

    header: HeaderMatch | None = None
    """Match a request header."""
    cookie: HeaderMatch | None = None
    """Match a cookie."""
    variant: DnsLabel
    """Variant that receives matching requests."""


class Decide(ApiModel):
    """How the experiment's winner is decided."""

    metric: str = Field(min_length=1, max_length=DNS_LABEL_MAX)
    """Name of a query SLO, or errorRate / latency."""
    significance: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the test between variants."""
    min_samples: int = Field(default=1000, ge=1)
    """Requests each variant needs before a decision."""
    promote_winner: bool = False
    """Promote the winner to stable once decided (otherwise only record it)."""


class Experiment(ApiModel):
    """A/B/n: long-running variants with fixed weights, instead of a rollout."""

    __cel__ = (
        Rule(
            "self.variants.map(v, v.weight).sum() == 100",
            "experiment variant weights must sum to 100",
            ".variants",
            lambda m: sum(v.weight for v in m.variants) == 100,
        ),
        Rule(
            "self.variants.filter(v, !has(v.model)).size() == 1",
            "exactly one variant omits model: it serves spec.model",
            ".variants",
            lambda m: sum(v.model is None for v in m.variants) == 1,
        ),
        Rule(
            "!has(self.match) || self.match.all(m, self.variants.exists(v, v.name == m.variant))",
            "every match names a variant of the experiment",
            ".match",
            lambda m: all(any(v.name == rule.variant for v in m.variants) for rule in m.match),
        ),
    )

    # A/B/n with n <= 8: each arm is a Deployment and needs its share of traffic to decide.
    variants: list[ExperimentVariant] = Field(
        min_length=2, max_length=8, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    )
    """The arms; names are unique and weights sum to 100."""
    match: list[MatchRule] = Field(default_factory=list, max_length=16)  # HTTPRoute allows 16 rules
    """Header/cookie rules that pin requests to a variant before weights apply."""
    decide: Decide | None = None
    """Decide a winner with a significance test between variants."""
