"""Per-request agreement between two versions, from counters only: pure, no I/O, no clock.

What is measured
----------------
In a shadow step the mirror sends every request to both versions with the same request id
(the ``x-request-id`` header). The agreement is the share of those requests whose prediction
falls in the same bin on both sides (for a classifier: the same class). The distribution
comparison (``drift.prediction_drift``) cannot see it: two models can answer "fraud" equally
often while disagreeing on every request. The mirror drops the shadow's responses, and
Prometheus counters cannot be joined request by request, so each recorder adds every answer
to a **sign sketch** (``headway.api.sketch``): request i with prediction bin y adds 1 to the
counter of bucket b(i) and sign s(i, y) ∈ {+1, -1}, both keyed hashes.

The estimator
-------------
Per bucket b and group of slices, S_b = (+ count) - (- count) on each side, and
ΔS_b = S_b(candidate) - S_b(stable), ΔN_b the difference of the two sides' counts. A request
both versions answered alike adds the same sign to both sides: it cancels exactly. One they
answered differently adds X = s(i, y1) - s(i, y2) ∈ {-2, 0, 0, +2} (E X² = 2). One only a side
counted in this group (lost by the mirror, or in flight when a slice ended: each side's
counters are scraped at their own instants) adds ±1 to ΔS_b and to ΔN_b. The signs of
different requests are independent, so given which requests fall where,

    E Σ_b ΔS_b² = 2 D + U            (D: disagreements, U: requests one side only counted)
    E Σ_b ΔN_b² = U (1 - 1/B) + ΔN² / B   (over the random buckets; ΔN = Σ_b ΔN_b)

hence Û = (Σ_b ΔN_b² - ΔN²/B) · B/(B-1) and D̂ = (Σ_b ΔS_b² - Û) / 2, both unbiased. Written
per bucket, z_b = (ΔS_b² - B/(B-1) ΔN_b² + ΔN²/(B(B-1))) / 2 and D̂ = Σ_b z_b: a request only
one side counted, alone in its bucket, adds exactly 0 (ΔS_b² = ΔN_b² = 1), so unmatched
requests cost almost nothing until two share a bucket. The agreement is 1 - D̂ / N̂, with
N̂ = (N(candidate) + N(stable) - Û) / 2 the requests both sides counted in the same group.

Its variance, and slices
------------------------
Given the bucket loads V_b = 2 D_b + U_b, Var Σ_b ΔS_b² = Σ_b (2 V_b² - 4 D_b - 2 U_b) (the
fourth moments of the ±1 and {-2, 0, 2} terms), which over random buckets is about
2 (2D + U)² / B + 4 D: Var D̂ ≈ 2 D²/B + D. The first term is the sketch's (a relative error of
√(2/B) ≈ 18% of D with B = 64, however many requests); the second is the coin each
disagreement tosses (its two signs are equal half the time). The slices the operator already
fetches are independent sketches (different requests), so pooling the window into G groups of
slices divides the first term by G — but every boundary between groups splits the requests in
flight there into two unmatched ones, whose pairs in a bucket add 2 U_g²/B each. Many groups pay
when disagreement is large, one group when it is small. The groups' disagreement rates
D̂_g/N̂_g are combined with weights N̂_g²/Var D̂_g, Var predicted as (2 (2 r N̂_g + u_g)²/B + 4 r N̂_g)/4
with r the disagreement rate of the finest grouping (at least one disagreement per window) and
u_g the plain count difference of the group: a group that is mostly unmatched (the candidate's
server still starting, a mirror outage) weighs little; equal groups weigh alike and the estimate
is ΣD̂/ΣN̂. The grouping (1, 2, 4, ... groups, or every slice) is the one whose combination has
the smallest predicted variance (with the groups' Û, where in-flight requests show). Both
choices depend on the counts and on one common rate, not on a grouping's own sign noise:
choosing by each grouping's own variance estimate favoured the ones whose D̂ happened to be low,
and weighting by Û (which shares the group's hash noise) biased the agreement down under
mirror losses (hack/bench_agreement.py).

The interval (level 1 - alpha, normal) uses the chosen grouping's *empirical* variance: the
buckets of a group are exchangeable, so Var Σ_b z_b ≈ B/(B-1) Σ_b (z_b - z̄)², combined over the
groups with the weights. It needs no model of the traffic (bursts, duplicated ids, mirror
losses show in it) and is slightly conservative (bucket loads vary). With few disagreements the normal approximation
fails (D̂ = 2K, K ~ Binomial(D, 1/2): no disagreement may show at all), so the bounds are
widened to at least the Wilson interval of that model, D̂ + z²/2 ± z √(D̂ + z²/4) (in the
requests the weighted estimate is worth, 1/Σ c_g² N̂_g for coefficients c_g), its lower end
taken at the whole disagreements seen (2⌊D̂/2⌋: a D̂ below 2 is the unmatched terms' noise, and
an interval that excluded agreement 1 for it missed the truth in 10% of identical windows).
Two versions whose sketches are identical get agreement exactly 1, with a lower bound of
1 - z²/N̂.

When it is not measured
-----------------------
When the ids are not shared, every request is unmatched: Û ≈ N(candidate) + N(stable) and D̂ ≈ 0
— an agreement of 1 from versions that never saw the same request. So the estimate is refused
when more than ``max_unmatched`` of the answers recorded in the slices where both sides recorded
some were counted by one side only (Û/(N_c + N_s) is a χ²-like sum over B buckets: with no shared
ids it reads about 1 ± 0.2, never near 0.25; slices only one side counted in — the shadow's
server still starting, a mirror outage — hold unmatched requests whatever the ids, and are left
out of this test), when either side recorded no answer with an id, and below
``min_samples`` requests answered by both. Canary steps split requests between the versions:
no request is answered twice, and the caller does not ask (``planning.monitoring``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from headway.api.sketch import BUCKETS, parse_cell_key

DEFAULT_ALPHA = 0.05
MAX_UNMATCHED = 0.25  # share of recorded answers seen by one version only, above which the ids are not shared
ID_HINT = "the model server passes the request's x-request-id header to record(prediction_id=...)"

Slice = Mapping[str, float]  # {cell key ("17+"): count} as BinnedCounts' "sketch" series hold them


@dataclass(frozen=True)
class Agreement:
    """The share of requests both versions answered alike, with its interval; or why it is not measured."""

    agreement: float | None  # None: not measured (``reason``)
    low: float | None
    high: float | None
    samples: float  # requests answered by both versions (estimated, on the slices both recorded answers in)
    candidate: float  # answers with a request id the candidate recorded
    stable: float
    unmatched: float  # share of the recorded answers counted by one version only (estimated, whole window)
    disagreements: float  # D̂
    groups: int  # slices pooled into this many groups (0: not measured)
    reason: str | None = None

    @property
    def measured(self) -> bool:
        return self.agreement is not None

    def words(self) -> str:
        if self.agreement is None or self.low is None or self.high is None:
            return f"agreement not measured: {self.reason}"
        return (f"agreement {self.agreement:.3f} [{self.low:.3f}, {self.high:.3f}] over ~{self.samples:,.0f} requests "
                f"both versions answered")


def not_measured(reason: str, candidate: float = 0.0, stable: float = 0.0, unmatched: float = 0.0, samples: float = 0.0
                 ) -> Agreement:
    return Agreement(None, None, None, samples, candidate, stable, unmatched, 0.0, 0, reason)


def _count(value: float) -> float:
    return value if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else 0.0


def _cells(slices: Sequence[Slice], length: int, buckets: int) -> Any:
    """(slices, buckets, 2) counts: [..., 0] the + cells, [..., 1] the - ones; names that are not cells are ignored."""
    import numpy as np

    cells = np.zeros((length, buckets, 2))
    for t, counts in enumerate(slices[:length]):
        for key, value in counts.items():
            cell = parse_cell_key(key)
            if cell is not None and cell[0] < buckets:
                cells[t, cell[0], 0 if cell[1] == "+" else 1] += _count(value)
    return cells


@dataclass(frozen=True)
class _Group:
    disagreements: float  # D̂ of the group
    variance: float  # its empirical variance
    unmatched: float  # Û
    matched: float  # N̂
    net: float  # |N(candidate) - N(stable)|: unmatched requests at least, known without the hash's noise


def _group(c: Any, s: Any, a: int, b: int, buckets: int) -> _Group:
    """The estimate over slices [a, b) (c, s: cumulative sums over slices, with a leading zero slice)."""
    kappa = buckets / (buckets - 1)
    dc, ds = c[b] - c[a], s[b] - s[a]
    d_sign = (dc[:, 0] - dc[:, 1]) - (ds[:, 0] - ds[:, 1])
    d_count = dc.sum(axis=1) - ds.sum(axis=1)
    total = float(d_count.sum())
    z = (d_sign ** 2 - kappa * d_count ** 2 + total ** 2 / (buckets * (buckets - 1))) / 2
    unmatched = max(0.0, kappa * (float((d_count ** 2).sum()) - total ** 2 / buckets))
    counted_c, counted_s = float(dc.sum()), float(ds.sum())
    matched = min(max((counted_c + counted_s - unmatched) / 2, 0.0), counted_c, counted_s)
    return _Group(float(z.sum()), kappa * float(((z - z.mean()) ** 2).sum()), unmatched, matched, abs(counted_c - counted_s))


def _groupings(slices: int) -> list[int]:
    """1, 2, 4, ... groups, and one per slice."""
    counts, g = [1], 2
    while g < slices:
        counts.append(g)
        g *= 2
    return counts + ([slices] if slices > 1 else [])


def _split(c: Any, s: Any, slices: int, groups: int, buckets: int) -> list[_Group]:
    edges = [(g * slices + groups // 2) // groups for g in range(groups + 1)]  # contiguous, nearly equal
    return [_group(c, s, edges[g], edges[g + 1], buckets) for g in range(groups)]


def _predicted_variance(part: _Group, rate: float, buckets: int, unmatched: float) -> float:
    """Var D̂ of a group from its size, a disagreement rate and its unmatched requests (the module docstring)."""
    return (2 * (2 * rate * part.matched + unmatched) ** 2 / buckets + 4 * rate * part.matched) / 4


@dataclass(frozen=True)
class _Combined:
    rate: float  # disagreements per request answered by both
    predicted: float  # its predicted variance, with the groups' Û (chooses the grouping: in-flight requests show there)
    variance: float  # its empirical variance (the interval)
    effective: float  # requests the estimate is worth, as an unweighted count (the Wilson bound)


def _combine(parts: list[_Group], rate: float, buckets: int) -> _Combined | None:
    """The groups' disagreement rates, weighted by their predicted precision n²/Var D̂ (equal groups: D̂/N̂).

    A group that is mostly unmatched requests (the candidate not serving yet, a mirror outage)
    says little about disagreements and gets little weight; with no unmatched requests the weights
    are the groups' sizes and the estimate is ΣD̂/ΣN̂. The weights take the unmatched requests from
    the plain count difference, not from Û: Û shares its hash noise with the group's own D̂ (D̂
    falls when Û rises), and weighting by it biased the agreement down by ~1 point under mirror
    losses (hack/bench_agreement.py)."""
    used = [p for p in parts if p.matched > 0]
    if not used:
        return None
    weights = [p.matched / max(_predicted_variance(p, rate, buckets, p.net), 1e-12) for p in used]  # w·n = n²/Var
    total = sum(w * p.matched for w, p in zip(weights, used))
    coefficients = [w / total for w in weights]
    return _Combined(
        rate=sum(c * p.disagreements for c, p in zip(coefficients, used)),
        predicted=sum(c * c * _predicted_variance(p, rate, buckets, p.unmatched) for c, p in zip(coefficients, used)),
        variance=sum(c * c * p.variance for c, p in zip(coefficients, used)),
        effective=1 / sum(c * c * p.matched for c, p in zip(coefficients, used)),
    )


def sketch_agreement(candidate: Sequence[Slice], stable: Sequence[Slice], *, alpha: float = DEFAULT_ALPHA,
                     min_samples: float = 1, max_unmatched: float = MAX_UNMATCHED, buckets: int = BUCKETS,
                     groups: int | None = None) -> Agreement:
    """The agreement of two versions' sketches over the same slices (see the module docstring).

    ``candidate`` and ``stable`` hold one ``{cell key: count}`` per slice, oldest first, over the
    same time grid (a side with no slices counted nothing). ``groups`` forces a grouping of the
    slices (the benchmark's alternatives); None chooses it.
    """
    import numpy as np

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if buckets < 2:
        raise ValueError(f"buckets must be at least 2, not {buckets}")
    length = max(len(candidate), len(stable))
    if length == 0:
        return not_measured(f"neither version recorded answers with request ids ({ID_HINT})")
    c_cells, s_cells = _cells(candidate, length, buckets), _cells(stable, length, buckets)
    n_c, n_s = float(c_cells.sum()), float(s_cells.sum())
    if n_c == 0 or n_s == 0:
        who = "neither version" if n_c == n_s else "the candidate" if n_c == 0 else "the stable version"
        return not_measured(f"{who} recorded answers with request ids ({ID_HINT})", n_c, n_s)
    zero = np.zeros((1, buckets, 2))
    c, s = np.concatenate([zero, c_cells]).cumsum(axis=0), np.concatenate([zero, s_cells]).cumsum(axis=0)
    whole = _group(c, s, 0, length, buckets)
    unmatched = whole.unmatched / (n_c + n_s)
    # Whether the ids are shared is judged on the slices in which both versions recorded answers: a
    # slice only one side counted in (the shadow's server still starting, a mirror outage) holds
    # unmatched requests whatever the ids are, and weighs little in the estimate (``_combine``).
    both = (c_cells.sum(axis=(1, 2)) > 0) & (s_cells.sum(axis=(1, 2)) > 0)
    if not both.any():
        return not_measured("the two versions never recorded answers in the same slice of the window", n_c, n_s, unmatched)
    c_both, s_both = c_cells[both].sum(axis=0), s_cells[both].sum(axis=0)
    overlap = _group(np.stack([zero[0], c_both]), np.stack([zero[0], s_both]), 0, 1, buckets)
    overlap_share = overlap.unmatched / float(c_both.sum() + s_both.sum())
    if overlap_share > max_unmatched:
        return not_measured(f"{overlap_share:.0%} of the {float(c_both.sum() + s_both.sum()):,.0f} answers recorded while "
                            f"both versions served were counted by one version only (more than {max_unmatched:.0%}): the "
                            f"versions do not see the same request ids; check that the mirror copies all requests and "
                            f"{ID_HINT}", n_c, n_s, unmatched, overlap.matched)
    # Requests both answered, counted on those slices too: over the whole window, the hash noise of
    # Û (about 18% of the unmatched requests) would swamp it when most of them are one-sided.
    answered = overlap.matched
    if answered < min_samples:
        return not_measured(f"~{answered:,.0f} requests answered by both versions so far, fewer than {min_samples:g}",
                            n_c, n_s, unmatched, answered)
    finest = _split(c, s, length, length, buckets)
    matched_finest = sum(p.matched for p in finest)
    pilot = sum(p.disagreements for p in finest) / matched_finest if matched_finest > 0 else 0.0
    rate = min(1.0, max(pilot, 1 / answered))  # at least one disagreement in the window: no group weighs infinitely
    if groups is not None and not 1 <= groups <= length:
        raise ValueError(f"groups must be between 1 and the {length} slices, not {groups}")
    best: tuple[_Combined, int] | None = None
    for count in ([groups] if groups is not None else _groupings(length)):
        parts = finest if count == length else [whole] if count == 1 else _split(c, s, length, count, buckets)
        combined = _combine(parts, rate, buckets)
        if combined is not None and (best is None or combined.predicted < best[0].predicted):
            best = (combined, count)
    if best is None:  # a forced grouping whose groups share no request
        return not_measured("no request answered by both versions within a group of slices", n_c, n_s, unmatched, answered)
    estimate, chosen = best
    z = NormalDist().inv_cdf(1 - alpha / 2)
    spread = z * math.sqrt(estimate.variance)
    fewest, most = estimate.rate - spread, estimate.rate + spread  # the disagreement rate's bounds
    # A few disagreements: D̂ = 2K with K ~ Binomial(D, 1/2), variance D; at least its Wilson interval,
    # in the requests the estimate is worth, whose lower end counts whole disagreements seen (less
    # than one is the unmatched terms' noise).
    n = estimate.effective
    d = max(estimate.rate * n, 0.0)
    seen = 2.0 * math.floor(d / 2 + 1e-9)
    fewest = min(fewest, (seen + z * z / 2 - z * math.sqrt(seen + z * z / 4)) / n)
    most = max(most, (d + z * z / 2 + z * math.sqrt(d + z * z / 4)) / n)
    return Agreement(
        agreement=min(1.0, max(0.0, 1 - estimate.rate)), low=max(0.0, 1 - most), high=min(1.0, 1 - max(fewest, 0.0)),
        samples=answered, candidate=n_c, stable=n_s, unmatched=unmatched,
        disagreements=max(0.0, estimate.rate) * answered, groups=chosen,
    )
