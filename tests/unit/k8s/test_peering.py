"""kopf's peering rule as Headway applies it (headway.k8s.peering.blocking_peers): which entries of
a peering object pause a replica. The end-to-end check with two operators is tests/e2e/test_peering.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from headway.k8s.peering import blocking_peers

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def seen(seconds_ago: float, priority: int, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_a_live_peer_with_a_higher_or_equal_priority_pauses_a_lower_or_lowest_one_does_not() -> None:
    status = {"me": seen(1, 100), "higher": seen(5, 200), "lower": seen(5, 50)}
    assert blocking_peers(status, "me", 100, NOW) == ["higher (priority 200)"]
    assert blocking_peers(status, "higher", 200, NOW) == []  # the active one
    same = {"me": seen(1, 100), "twin": seen(1, 100)}
    assert blocking_peers(same, "me", 100, NOW) == ["twin (priority 100, the same as ours)"]  # kopf pauses both


def test_dead_entries_and_our_own_never_pause() -> None:
    status = {"me": seen(0, 1), "crashed": seen(61, 500), "just-alive": seen(59, 500), "short": seen(11, 500, lifetime=10)}
    assert blocking_peers(status, "me", 1, NOW) == ["just-alive (priority 500)"]


def test_entries_as_kopf_reads_them_defaults_and_junk() -> None:
    status = {"no-lastseen": {"priority": 9}, "zulu": {"priority": 9, "lastseen": "2026-11-29T11:59:30Z"},
              "junk": "x", "bad": {"priority": "high"}, "naive": {"priority": 9, "lastseen": "2026-11-29T11:59:59"}}
    # kopf counts an entry without lastseen as seen now, and 60 s of lifetime by default.
    assert blocking_peers(status, "me", 1, NOW) == ["no-lastseen (priority 9)", "zulu (priority 9)", "naive (priority 9)"]
    assert blocking_peers(None, "me", 1, NOW) == []
