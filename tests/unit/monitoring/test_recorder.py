"""The recorder: bins, counts, outcomes and the bounded map of pending predictions (a private registry)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from headway.api.profile import MISSING, OTHER, BinnedFeature, ReferenceProfile
from headway.api.sketch import BUCKETS, cell_key, cell_of
from headway.monitoring import FEATURE_METRIC, OUTCOME_METRIC, PREDICTION_METRIC, SKETCH_METRIC, UNMATCHED_METRIC, Recorder
from headway.planning.agreement import sketch_agreement

AMOUNT = BinnedFeature(kind="numeric", edges=(10.0, 100.0), expected=(0.3, 0.4, 0.2, 0.1), samples=10)
COUNTRY = BinnedFeature(kind="categorical", categories=("US", "DE"), expected=(0.5, 0.3, 0.2, 0.0), samples=10)
LABEL = BinnedFeature(kind="categorical", categories=("fraud", "legit"), expected=(0.1, 0.9, 0.0, 0.0), samples=10)
PROFILE = ReferenceProfile(features={"amount": AMOUNT, "country": COUNTRY}, prediction=LABEL, source="by hand")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def feature(registry: CollectorRegistry, name: str, bin_name: str) -> float | None:
    return registry.get_sample_value(FEATURE_METRIC, {"feature": name, "bin": bin_name})


def predicted(registry: CollectorRegistry, bin_name: str) -> float | None:
    return registry.get_sample_value(PREDICTION_METRIC, {"bin": bin_name})


def outcome(registry: CollectorRegistry, p: str, a: str) -> float | None:
    return registry.get_sample_value(OUTCOME_METRIC, {"predicted": p, "actual": a})


def unmatched(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(UNMATCHED_METRIC)


def series(registry: CollectorRegistry, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for m in registry.collect() for s in m.samples if s.name == metric}


def test_every_bin_exists_at_zero_before_anything_is_recorded(registry: CollectorRegistry) -> None:
    Recorder(PROFILE, registry=registry)
    assert series(registry, FEATURE_METRIC) == {
        **{(("bin", b), ("feature", "amount")): 0.0 for b in ("0", "1", "2", MISSING)},
        **{(("bin", b), ("feature", "country")): 0.0 for b in ("US", "DE", OTHER, MISSING)},
    }
    assert series(registry, PREDICTION_METRIC) == {(("bin", b),): 0.0 for b in ("fraud", "legit", OTHER, MISSING)}
    assert len(series(registry, OUTCOME_METRIC)) == 16 and set(series(registry, OUTCOME_METRIC).values()) == {0.0}
    assert unmatched(registry) == 0.0


@pytest.mark.parametrize(("value", "bin_name"), [
    (-5, "0"), (9.999, "0"), (10, "1"), (10.0, "1"), ("42", "1"), (99.9, "1"), (100, "2"), (1e9, "2"),
    (None, MISSING), (float("nan"), MISSING), ("abc", MISSING),
])
def test_numeric_values_fall_in_the_bins_of_the_edges(registry: CollectorRegistry, value: object, bin_name: str) -> None:
    Recorder(PROFILE, registry=registry).record({"amount": value, "country": "US"})
    assert feature(registry, "amount", bin_name) == 1.0
    assert sum(series(registry, FEATURE_METRIC).values()) == 2.0  # amount and country, once each


def test_features_categories_missing_and_unknown_names(registry: CollectorRegistry) -> None:
    recorder = Recorder(PROFILE, registry=registry)
    recorder.record({"amount": 5, "country": "US", "extra": "ignored"})
    recorder.record({"amount": 50, "country": "FR"})
    recorder.record({"country": "DE"})  # amount absent: missing
    recorder.record({"amount": 500, "country": None})
    recorder.record(None)
    assert [feature(registry, "amount", b) for b in ("0", "1", "2", MISSING)] == [1, 1, 1, 2]
    assert [feature(registry, "country", b) for b in ("US", "DE", OTHER, MISSING)] == [1, 1, 1, 2]
    assert feature(registry, "extra", "ignored") is None  # only the profile's features have series
    assert sum(series(registry, PREDICTION_METRIC).values()) == 0  # no prediction given: none counted
    assert recorder.pending == 0


def test_predictions_are_counted_and_ids_returned(registry: CollectorRegistry) -> None:
    recorder = Recorder(PROFILE, registry=registry)
    assert recorder.record({"amount": 1}, prediction="fraud", prediction_id="r-1") == "r-1"
    generated = {recorder.record({"amount": 1}, prediction="legit") for _ in range(3)}
    assert len(generated) == 3 and all(len(g) == 32 for g in generated)
    recorder.record({}, prediction="maybe")
    recorder.record({}, prediction=None)  # explicitly None: missing
    assert [predicted(registry, b) for b in ("fraud", "legit", OTHER, MISSING)] == [1, 3, 1, 1]
    assert recorder.pending == 6


def test_outcomes_pair_the_prediction_with_the_label(registry: CollectorRegistry) -> None:
    recorder = Recorder(PROFILE, registry=registry)
    recorder.record({}, prediction="fraud", prediction_id="a")
    recorder.record({}, prediction="fraud", prediction_id="b")
    recorder.record({}, prediction="legit", prediction_id="c")
    assert recorder.record_outcome("a", "fraud") is True
    assert recorder.record_outcome("b", "legit") is True
    assert recorder.record_outcome("c", "chargeback") is True  # not a category: other
    assert recorder.record_outcome("a", "fraud") is False  # one outcome per prediction
    assert recorder.record_outcome("never", "fraud") is False
    assert recorder.record_outcome("elsewhere", "fraud", prediction="legit") is True  # predicted given, not looked up
    assert {k: v for k, v in series(registry, OUTCOME_METRIC).items() if v} == {
        (("actual", "fraud"), ("predicted", "fraud")): 1.0,
        (("actual", "legit"), ("predicted", "fraud")): 1.0,
        (("actual", OTHER), ("predicted", "legit")): 1.0,
        (("actual", "fraud"), ("predicted", "legit")): 1.0,
    }
    assert unmatched(registry) == 2.0
    assert recorder.pending == 0


def test_the_map_of_pending_predictions_is_bounded_least_recent_first(registry: CollectorRegistry) -> None:
    recorder = Recorder(PROFILE, registry=registry, max_pending=3)
    for pid in ("p1", "p2", "p3", "p4"):
        recorder.record({}, prediction="fraud", prediction_id=pid)
    recorder.record({}, prediction="legit", prediction_id="p2")  # recorded again: the most recent, and now legit
    recorder.record({}, prediction="fraud", prediction_id="p5")  # evicts p3 (p1 went with p4)
    assert recorder.pending == 3
    assert [recorder.record_outcome(p, "fraud") for p in ("p1", "p2", "p3", "p4", "p5")] == [False, True, False, True, True]
    assert outcome(registry, "legit", "fraud") == 1.0 and outcome(registry, "fraud", "fraud") == 2.0
    assert unmatched(registry) == 2.0

    none_kept = Recorder(PROFILE, registry=CollectorRegistry(), max_pending=0)
    none_kept.record({}, prediction="fraud", prediction_id="x")
    assert none_kept.pending == 0 and none_kept.record_outcome("x", "fraud") is False
    with pytest.raises(ValueError, match="max_pending"):
        Recorder(PROFILE, registry=registry, max_pending=-1)


def test_recording_from_many_threads_loses_nothing(registry: CollectorRegistry) -> None:
    recorder = Recorder(PROFILE, registry=registry)  # 100k: nothing evicted, so every outcome matches
    per_thread, threads = 2000, 8

    def work(t: int) -> None:
        for i in range(per_thread):
            pid = recorder.record({"amount": i % 200, "country": "US"}, prediction="fraud", prediction_id=f"{t}-{i}")
            if i % 2:
                recorder.record_outcome(pid, "legit")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = per_thread * threads
    assert feature(registry, "country", "US") == total
    assert [feature(registry, "amount", b) for b in ("0", "1", "2")] == [total * 10 / 200, total * 90 / 200, total * 100 / 200]
    assert outcome(registry, "fraud", "legit") == total / 2  # each outcome follows its prediction at once: all matched
    assert unmatched(registry) == 0
    assert recorder.pending == total / 2  # the even ones wait for their outcome


def test_recorders_on_one_registry_share_the_counters(registry: CollectorRegistry) -> None:
    first = Recorder(PROFILE, registry=registry)
    second = Recorder(ReferenceProfile(features={"amount": AMOUNT}), registry=registry)  # no duplicate-metric error
    first.record({"amount": 1})
    second.record({"amount": 2})
    assert feature(registry, "amount", "0") == 2.0
    with pytest.raises(ValueError, match="no prediction"):
        second.record_outcome("x", "fraud")


def test_loading_the_profile_from_a_file_a_directory_or_the_environment(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profile.json").write_text(PROFILE.model_dump_json())
    assert Recorder.from_file(tmp_path / "profile.json", registry=CollectorRegistry()).profile == PROFILE
    assert Recorder.from_file(tmp_path, registry=CollectorRegistry()).profile == PROFILE  # a mounted ConfigMap
    monkeypatch.setenv("HEADWAY_PROFILE", str(tmp_path / "profile.json"))
    assert Recorder.from_env(registry=CollectorRegistry()).profile == PROFILE

    monkeypatch.delenv("HEADWAY_PROFILE")
    with pytest.raises(ValueError, match="neither HEADWAY_PROFILE nor HEADWAY_PROFILE_JSON is set"):
        Recorder.from_env()
    # The JSON itself, as spec.model.env's valueFrom.configMapKeyRef puts it in the model server's environment.
    monkeypatch.setenv("HEADWAY_PROFILE_JSON", PROFILE.model_dump_json())
    assert Recorder.from_env(registry=CollectorRegistry()).profile == PROFILE
    monkeypatch.setenv("HEADWAY_PROFILE_JSON", "{not json")
    with pytest.raises(ValueError, match="HEADWAY_PROFILE_JSON is not a reference profile"):
        Recorder.from_env()
    monkeypatch.delenv("HEADWAY_PROFILE_JSON")
    with pytest.raises(ValueError, match="cannot read the reference profile .*nowhere.json"):
        Recorder.from_file(tmp_path / "nowhere.json")
    (tmp_path / "bad.json").write_text('{"version": 1, "features": {"bad name": {}}}')
    with pytest.raises(ValueError, match="bad.json' is not a valid reference profile"):
        Recorder.from_file(tmp_path / "bad.json")


def test_the_recorder_loads_no_kubernetes_and_no_operator_code() -> None:
    code = ("import sys, headway.monitoring; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes', 'headway')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert eval(out) == ["headway", "headway.api", "headway.api.profile", "headway.api.sketch", "headway.monitoring",
                         "headway.monitoring.recorder"]


def test_a_feature_the_profile_lacks_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(PROFILE, registry=CollectorRegistry())
    with caplog.at_level("WARNING", logger="headway.monitoring.recorder"):
        recorder.record(features={"amonut": 3.0})
        recorder.record(features={"amonut": 4.0})
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "['amonut'] are not in the reference profile" in warnings[0]


# -- the agreement sketch ---------------------------------------------------------------------------


def sketch(registry: CollectorRegistry) -> dict[tuple[int, str], float]:
    return {(int(labels["bucket"]), labels["sign"]): value
            for (labels, value) in ((dict(k), v) for k, v in series(registry, SKETCH_METRIC).items())}


def test_the_sketch_has_its_128_cells_at_zero_and_counts_answers_with_a_request_id(registry: CollectorRegistry) -> None:
    recorder = Recorder(PROFILE, registry=registry)
    assert sketch(registry) == {(b, s): 0.0 for b in range(BUCKETS) for s in ("+", "-")}
    recorder.record({"amount": 5}, prediction="fraud", prediction_id="req-1")
    recorder.record({"amount": 5}, prediction="fraud", prediction_id="req-1")  # a retry: counted again
    recorder.record({"amount": 5}, prediction="nobody-knows", prediction_id="req-2")  # its bin: __other__
    recorder.record({"amount": 5}, prediction="legit")  # no request id: the made-up one is no other version's
    recorder.record({"amount": 5}, prediction_id="req-3")  # no prediction: nothing to agree on
    expected = Counter({cell_of("req-1", "fraud"): 2.0, cell_of("req-2", OTHER): 1.0})
    assert {k: v for k, v in sketch(registry).items() if v} == expected
    assert sum(series(registry, PREDICTION_METRIC).values()) == 4  # the distribution still counts every prediction


def test_a_profile_without_a_prediction_makes_no_sketch(registry: CollectorRegistry) -> None:
    Recorder(ReferenceProfile(features={"amount": AMOUNT}), registry=registry).record({"amount": 1}, prediction_id="r")
    assert sketch(registry) == {}


def counts_of(registry: CollectorRegistry) -> list[dict[str, float]]:
    """The sketch as the operator's fetch hands it over: one slice of {cell key: count}."""
    return [{cell_key(b, s): v for (b, s), v in sketch(registry).items()}]


def test_two_versions_recording_the_same_requests_agree_as_often_as_they_answer_alike() -> None:
    """Two recorders (two versions' servers) see the same 4,000 request ids; the candidate answers a
    tenth of them differently. Identical answers read as agreement exactly 1."""
    stable, same, shifted = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    recorders = [Recorder(PROFILE, registry=r) for r in (stable, same, shifted)]
    for i in range(4000):
        label = "fraud" if i % 7 == 0 else "legit"
        recorders[0].record(prediction=label, prediction_id=f"id-{i}")
        recorders[1].record(prediction=label, prediction_id=f"id-{i}")
        recorders[2].record(prediction=("legit" if label == "fraud" else "fraud") if i % 10 == 0 else label, prediction_id=f"id-{i}")
    identical = sketch_agreement(counts_of(same), counts_of(stable))
    assert (identical.agreement, identical.high, identical.disagreements, identical.samples) == (1.0, 1.0, 0.0, 4000.0)
    assert identical.low is not None and 0.998 < identical.low < 1.0  # a few disagreements may hide in equal signs
    differing = sketch_agreement(counts_of(shifted), counts_of(stable))
    assert differing.low is not None and differing.high is not None and differing.low <= 0.9 <= differing.high
    assert differing.high < 0.97
