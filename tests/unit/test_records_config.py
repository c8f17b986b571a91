"""`--rollout-records` / HEADWAY_ROLLOUT_RECORDS (headway/config.py)."""

from __future__ import annotations

import argparse

import pytest

from headway import config


def parse(argv: list[str]) -> config.OperatorConfig:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_args(parser.parse_args(argv))


def test_default_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWAY_ROLLOUT_RECORDS", raising=False)
    assert parse([]).rollout_records == 10
    assert parse(["--rollout-records", "0"]).rollout_records == 0
    monkeypatch.setenv("HEADWAY_ROLLOUT_RECORDS", "3")
    assert parse([]).rollout_records == 3
    assert parse(["--rollout-records", "5"]).rollout_records == 5  # the flag wins


def test_a_negative_count_is_refused_naming_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWAY_ROLLOUT_RECORDS", raising=False)
    with pytest.raises(ValueError, match="--rollout-records must be 0"):
        parse(["--rollout-records", "-1"])


def test_a_malformed_environment_value_is_an_argument_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HEADWAY_ROLLOUT_RECORDS", "ten")
    with pytest.raises(SystemExit):
        parse([])
    assert "--rollout-records: invalid int value: 'ten'" in capsys.readouterr().err
