"""Kubernetes-style conditions, events and history entries — pure helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from headway.api.status import HISTORY_LIMIT, Condition, HistoryEntry


def rfc3339(now: datetime) -> str:
    return now.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """The inverse of rfc3339 (timestamps as status and the API server write them)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class EventIntent:
    """An Event to post about the ModelDeployment: one per decision."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def set_condition(
    previous: list[Condition],
    type_: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> Condition:
    """A condition whose lastTransitionTime moves only when its status changes."""
    old = next((c for c in previous if c.type == type_), None)
    changed = old is None or old.status != status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=rfc3339(now) if changed or old is None else old.last_transition_time,
        observed_generation=generation,
    )


def append_history(history: list[HistoryEntry], entry: HistoryEntry) -> list[HistoryEntry]:
    """The history with one more entry, the oldest dropped beyond the bound."""
    return [*history, entry][-HISTORY_LIMIT:]


def history_entry(
    now: datetime, event: str, message: str, revision: str | None = None, bento: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> HistoryEntry:
    return HistoryEntry(time=rfc3339(now), event=event, message=message, revision=revision, bento=bento, evidence=evidence)
