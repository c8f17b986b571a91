"""The agreement sketch from Prometheus: per slice and cell, counter differences per pod, summed over pods."""

from __future__ import annotations

from datetime import timedelta

from headway.api.analysis_spec import SeriesLabels
from headway.metrics.base import BinnedQuery
from tests.unit.metrics.test_prometheus_slices import T0, FakeClient, source


def query(sketch: bool) -> BinnedQuery:
    return BinnedQuery("ml", "fraud", "candidate", T0, T0 + timedelta(seconds=90), 3, SeriesLabels(), frozenset(), True,
                       "abc123", sketch=sketch)


def test_the_sketch_is_counted_per_slice_and_cell_over_the_pods() -> None:
    client = FakeClient({
        "headway_prediction_sketch_total{": [
            ({"pod": "a", "bucket": "7", "sign": "+"}, [10.0, 14.0, 15.0, 15.0]),
            ({"pod": "b", "bucket": "7", "sign": "+"}, [0.0, 1.0, 3.0, 1.0]),  # b restarts in the last slice
            ({"pod": "a", "bucket": "63", "sign": "-"}, [None, 2.0, 2.0, 5.0]),  # a series new in the first slice
        ],
        "headway_prediction_observations_total{": [({"pod": "a", "bin": "fraud"}, [0.0, 5.0, 6.0, 6.0])],
    })
    counts = source(client).binned(query(sketch=True))
    assert counts["sketch"] == [{"7+": 5.0, "63-": 2.0}, {"7+": 3.0, "63-": 0.0}, {"7+": 1.0, "63-": 3.0}]
    assert counts["prediction"] == [{"fraud": 5.0}, {"fraud": 1.0}, {"fraud": 0.0}]
    sketch_query = next(q for q, *_ in client.ranges if "sketch" in q)
    assert sketch_query.startswith("sum by (pod, bucket, sign) (headway_prediction_sketch_total{")
    assert 'variant="candidate"' in sketch_query and 'revision="abc123"' in sketch_query


def test_without_the_flag_the_sketch_is_not_queried() -> None:
    client = FakeClient({})
    assert source(client).binned(query(sketch=False)) == {}
    assert [q for q, *_ in client.ranges if "sketch" in q] == []
