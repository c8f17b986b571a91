"""Agreement per request from the two versions' sign sketches (headway.planning.agreement, headway.api.sketch).

The counts are exact: every simulated request is hashed with the recorder's own hash
(``cell_of``) and counted in the slice each side's counters put it in.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from scipy.stats import binomtest, chisquare

from headway.api.sketch import BUCKETS, cell_key, cell_of, parse_cell_key
from headway.planning.agreement import MAX_UNMATCHED, sketch_agreement

CLASSES = ("legit", "fraud", "review")


def window(seed: int, n: int = 2000, agreement: float = 0.9, slices: int = 4, loss: float = 0.0, lag: float = 0.05,
           shared: bool = True, start: int = 0) -> tuple[list[dict[str, float]], list[dict[str, float]], float]:
    """(candidate slices, stable slices, true agreement among the requests both counted).

    Requests arrive uniformly over ``slices`` slices of length 1; each side's counters are read at
    its own offset (up to ``lag``), so requests near a boundary fall in different slices on the two
    sides, and the window's edges cut some off one side only. The candidate loses ``loss`` of them,
    and counts nothing before slice ``start`` (its server still starting)."""
    rng = random.Random(seed)
    offsets = rng.uniform(0, lag), rng.uniform(0, lag)
    candidate: list[Counter[str]] = [Counter() for _ in range(slices)]
    stable: list[Counter[str]] = [Counter() for _ in range(slices)]
    alike = both = 0
    for i in range(n):
        at = rng.uniform(-lag, slices + lag)
        answer = rng.choices(CLASSES, weights=(70, 20, 10))[0]
        other = answer if rng.random() < agreement else rng.choice([c for c in CLASSES if c != answer])
        rid = f"{seed}-{i}"
        s_slice, c_slice = math.floor(at - offsets[0]), math.floor(at - offsets[1])
        seen_s = 0 <= s_slice < slices
        seen_c = 0 <= c_slice < slices and rng.random() >= loss and c_slice >= start
        if seen_s:
            stable[s_slice][cell_key(*cell_of(rid, answer))] += 1
        if seen_c:
            candidate[c_slice][cell_key(*cell_of(rid if shared else f"own-{rid}", other))] += 1
        if seen_s and seen_c:
            both += 1
            alike += answer == other
    return [dict(c) for c in candidate], [dict(s) for s in stable], alike / both


@pytest.mark.parametrize(("agreement", "loss"), [(1.0, 0.0), (0.99, 0.0), (0.7, 0.0), (0.9, 0.1)])
def test_the_interval_holds_the_true_agreement_in_most_windows(agreement: float, loss: float) -> None:
    seeds = range(100)
    held, errors = 0, []
    for seed in seeds:
        candidate, stable, truth = window(seed, n=1200, agreement=agreement, loss=loss)
        a = sketch_agreement(candidate, stable, alpha=0.05)
        assert a.agreement is not None and a.low is not None and a.high is not None, a.reason
        held += a.low <= truth <= a.high
        errors.append(a.agreement - truth)
    assert held >= 90, f"{held} of {len(seeds)} intervals hold the truth"
    assert abs(sum(errors) / len(errors)) < 0.01  # unbiased: no drift of the mean error over 100 windows


def test_identical_answers_read_as_agreement_exactly_one() -> None:
    candidate, stable, truth = window(7, agreement=1.0, lag=0.0)  # the same requests in the same slices
    assert truth == 1.0 and candidate == stable
    a = sketch_agreement(candidate, stable)
    assert (a.agreement, a.high, a.disagreements, a.unmatched) == (1.0, 1.0, 0.0, 0.0)
    assert a.low is not None and 1 - 4 / a.samples < a.low < 1.0  # ~4 disagreements could hide in equal signs
    assert a.words().startswith("agreement 1.000 [0.998, 1.000] over ~")


def test_more_disagreement_reads_lower() -> None:
    readings = [sketch_agreement(*window(3, n=4000, agreement=share)[:2]).agreement for share in (0.99, 0.8, 0.5)]
    assert readings[0] > readings[1] > readings[2]  # type: ignore[operator]


def test_versions_that_do_not_share_request_ids_get_no_agreement_at_all() -> None:
    """Unshared ids would read as agreement 1 (every cell unmatched, all of it subtracted): refused."""
    candidate, stable, _ = window(5, agreement=1.0, shared=False)
    a = sketch_agreement(candidate, stable)
    assert a.agreement is None and a.unmatched > MAX_UNMATCHED
    assert "do not see the same request ids" in a.words() and "x-request-id" in a.words()


def test_a_shadow_that_started_late_is_measured_on_the_slices_both_versions_served() -> None:
    """The shadow's server answered nothing in the first 5 of 8 slices of a short step: ~45% of the
    recorded answers are unmatched over the whole window, yet the ids are shared where both served —
    measured, not refused (a refusal over the whole window refused nearly all of these)."""
    held = whole_window_refusals = 0
    for seed in range(20):
        late, stable, truth = window(seed, n=1600, agreement=0.9, slices=8, start=5)
        assert late[:5] == [{}, {}, {}, {}, {}]
        a = sketch_agreement(late, stable)
        whole_window_refusals += a.unmatched > MAX_UNMATCHED
        assert a.agreement is not None and a.low is not None and a.high is not None, a.reason
        held += a.low <= truth <= a.high
        assert abs(a.agreement - truth) < 0.08 and a.samples < 700
    assert held >= 17, f"{held} of 20 intervals hold the truth"
    assert whole_window_refusals >= 15
    # The shadow served only the last of 8 slices (~200 requests answered by both): counted on that
    # slice, not through the whole window's unmatched noise, which refused some of these as "~0".
    for seed in range(40):
        late, stable, _ = window(seed, n=1600, agreement=0.9, slices=8, start=7)
        a = sketch_agreement(late, stable, min_samples=100)
        assert a.agreement is not None and 130 < a.samples < 270, (seed, a.samples, a.reason)
    # Unshared ids still read as unmatched where both served.
    candidate, stable, _ = window(5, agreement=1.0, slices=8, shared=False)
    refused = sketch_agreement([{} for _ in range(4)] + candidate[4:], stable)
    assert refused.agreement is None and "answers recorded while both versions served" in refused.words()
    # No slice in common: nothing to judge the ids on.
    candidate, stable, _ = window(6, slices=4)
    apart = sketch_agreement(candidate[:2] + [{}, {}], [{}, {}] + stable[2:])
    assert apart.agreement is None and "never recorded answers in the same slice" in apart.words()


def test_a_side_without_ids_and_too_few_requests_are_named() -> None:
    candidate, stable, _ = window(2)
    assert "the candidate recorded answers with request ids" in sketch_agreement([], stable).words()
    assert "neither version recorded" in sketch_agreement([{}, {}], [{}, {}]).words()
    assert "neither version recorded" in sketch_agreement([], []).words()
    few = sketch_agreement(candidate, stable, min_samples=10_000)
    assert few.agreement is None and few.samples > 1500
    assert "requests answered by both versions so far, fewer than 10000" in few.words()


def test_names_that_are_not_cells_and_odd_counts_are_ignored() -> None:
    candidate, stable, _ = window(4, agreement=0.8)
    base = sketch_agreement(candidate, stable)
    noisy = [{**c, "17": 5.0, "x+": 3.0, f"{BUCKETS}+": 9.0, "3-": c.get("3-", 0.0)} for c in candidate]
    odd = [{**s, "5+": s.get("5+", 0.0) + 0.0, "bogus": float("nan")} for s in stable]
    assert sketch_agreement(noisy, odd) == base
    assert sketch_agreement([{"1+": -4.0, "1-": float("nan")}, *candidate[1:]], stable).candidate < base.candidate


def test_bad_arguments_name_themselves() -> None:
    candidate, stable, _ = window(1)
    with pytest.raises(ValueError, match="alpha must be in"):
        sketch_agreement(candidate, stable, alpha=1.5)
    with pytest.raises(ValueError, match="groups must be between 1 and the 4 slices"):
        sketch_agreement(candidate, stable, groups=5)


def test_a_forced_grouping_gives_the_same_answer_on_one_slice() -> None:
    candidate, stable, _ = window(9, slices=1)
    assert sketch_agreement(candidate, stable) == sketch_agreement(candidate, stable, groups=1)


# -- the hash both recorders use -------------------------------------------------------------------


def test_the_hash_is_fixed_the_same_id_lands_in_the_same_bucket_and_only_the_answer_moves_the_sign() -> None:
    # The wire format: a recorder of another release must hash alike, or versions become incomparable.
    assert cell_of("req-1", "fraud") == (cell_of("req-1", "legit")[0], cell_of("req-1", "fraud")[1])
    assert [cell_of(f"req-{i}", "fraud") for i in range(3)] == [(24, "+"), (2, "+"), (24, "-")]
    assert parse_cell_key(cell_key(17, "+")) == (17, "+") and parse_cell_key("17") is None and parse_cell_key("a-") is None


def test_buckets_are_uniform_and_signs_of_different_answers_independent() -> None:
    ids = [f"r{i}" for i in range(20_000)]
    buckets = Counter(cell_of(i, "x")[0] for i in ids)
    assert chisquare([buckets[b] for b in range(BUCKETS)]).pvalue > 1e-3
    plus = sum(cell_of(i, "fraud")[1] == "+" for i in ids)
    assert binomtest(plus, len(ids)).pvalue > 1e-3
    same = sum(cell_of(i, "fraud")[1] == cell_of(i, "legit")[1] for i in ids)  # independent: equal half the time
    assert binomtest(same, len(ids)).pvalue > 1e-3
