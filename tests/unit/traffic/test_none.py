"""The none provider: no route object, problems for what needs a proxy, replica splits."""

from __future__ import annotations

import itertools

import pytest

from headway.traffic.none import PROVIDER, effective_weights, replica_split
from tests.unit.traffic.cases import CASES, TRAFFIC, assert_golden

NO_TRAFFIC = TRAFFIC["none"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert_golden("none", case, PROVIDER.render(CASES[case], NO_TRAFFIC))


@pytest.mark.parametrize("case", ["steady", "canary"])
def test_a_weighted_split_is_fine(case: str) -> None:
    assert PROVIDER.check(CASES[case], NO_TRAFFIC) == []


@pytest.mark.parametrize("case", ["shadow", "shadow-canary"])
def test_shadow_is_a_problem(case: str) -> None:
    problems = PROVIDER.check(CASES[case], NO_TRAFFIC)
    assert [(p.field, p.message) for p in problems] == [
        ("spec.rollout.steps", "shadow needs a traffic provider that can mirror (gatewayApi or istio); provider none cannot")
    ]


def test_pins_are_a_problem() -> None:
    problems = PROVIDER.check(CASES["experiment"], NO_TRAFFIC)
    assert [p.field for p in problems] == ["spec.experiment.match"]
    assert "provider none cannot" in problems[0].message


def test_no_kinds() -> None:
    assert PROVIDER.name == "none" and PROVIDER.kinds == ()


# --- replica_split ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "split"),
    [
        (10, {"stable": 100}, {"stable": 10}),
        (20, {"stable": 95, "candidate": 5}, {"stable": 19, "candidate": 1}),
        (10, {"stable": 75, "candidate": 25}, {"stable": 8, "candidate": 2}),  # 7.5/2.5: a tie goes to the larger weight
        (10, {"control": 50, "a": 30, "b": 20}, {"control": 5, "a": 3, "b": 2}),
        (7, {"control": 50, "a": 30, "b": 20}, {"control": 4, "a": 2, "b": 1}),
        (4, {"stable": 100, "candidate": 0}, {"stable": 4, "candidate": 0}),
        # 5% of 3 replicas cannot be expressed: the candidate gets 1 of 3 (33%).
        (3, {"stable": 95, "candidate": 5}, {"stable": 2, "candidate": 1}),
        # Fewer replicas than positive weights: each still gets one, the sum exceeds total.
        (1, {"stable": 95, "candidate": 5}, {"stable": 1, "candidate": 1}),
        (0, {"stable": 95, "candidate": 5}, {"stable": 0, "candidate": 0}),
    ],
)
def test_replica_split(total: int, weights: dict[str, int], split: dict[str, int]) -> None:
    assert replica_split(total, weights) == split


def test_replica_split_properties() -> None:
    for total in range(1, 25):
        for a, b in itertools.product(range(0, 101, 5), repeat=2):
            if a + b > 100:
                continue
            weights = {"stable": 100 - a - b, "candidate": a, "shadow": b}
            split = replica_split(total, weights)
            positive = [v for v, w in weights.items() if w > 0]
            assert sum(split.values()) == max(total, len(positive))
            assert all(split[v] >= 1 for v in positive)
            assert all(split[v] == 0 for v, w in weights.items() if w == 0)
            quota = {v: total * w / 100 for v, w in weights.items()}
            if all(quota[v] >= 1 for v in positive):  # no minimum-of-one correction needed
                assert all(abs(split[v] - quota[v]) < 1 for v in weights)


@pytest.mark.parametrize(("total", "weights"), [(-1, {"s": 100}), (3, {"s": 0, "c": 0}), (3, {}), (3, {"s": 110, "c": -10})])
def test_replica_split_refuses_nonsense(total: int, weights: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        replica_split(total, weights)


def test_effective_weights_show_the_approximation() -> None:
    assert effective_weights(replica_split(3, {"stable": 95, "candidate": 5})) == pytest.approx({"stable": 66.67, "candidate": 33.33}, abs=0.01)
    assert effective_weights({"stable": 0}) == {"stable": 0.0}
