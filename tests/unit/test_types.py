from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from headway.api.types import format_duration, parse_duration, parse_quantity


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "-1s", "1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "250ms", "2h"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("value, expected", [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)), ("1Gi", Decimal(2**30)), ("1.5G", Decimal("1.5e9")),
    ("1e3", Decimal(1000)), ("128Mi", Decimal(128 * 2**20)),
])
def test_quantities(value, expected) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["2GB", "one", "", "1.2.3", "Mi", True])
def test_bad_quantities(value) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)
