"""The example "model": a fixed rule, so the example needs no training and no model store."""

from __future__ import annotations

RISKY_COUNTRIES = frozenset({"NG", "BR"})


def predict(amount: float | None, country: str | None, channel: str | None, age: int | None) -> str:
    """"fraud" or "legit"."""
    score = 0.0
    if amount is not None and amount > 150:
        score += 0.5
    if country in RISKY_COUNTRIES:
        score += 0.3
    if channel == "web":
        score += 0.1
    if age is None or age < 22:
        score += 0.2
    return "fraud" if score >= 0.6 else "legit"
