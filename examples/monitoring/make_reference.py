"""Writes reference.csv: the (synthetic) data the example fraud classifier was "trained" on.

Deterministic (a fixed seed), so ``python examples/monitoring/make_reference.py`` rewrites the
same file, and ``headway profile`` on it the same profile-configmap.yaml. The label column is
what service.py's rule predicts for the row, so the profile's prediction proportions are the
ones the service produces on reference-like traffic.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rules import predict  # noqa: E402  (the service's own rule)

ROWS = 400
SEED = 12
COUNTRIES = [("US", 0.40), ("DE", 0.15), ("GB", 0.12), ("FR", 0.10), ("IN", 0.08), ("BR", 0.06),
             ("JP", 0.04), ("NG", 0.03), ("NZ", 0.02)]
CHANNELS = [("web", 0.5), ("app", 0.35), ("store", 0.15)]


def pick(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    names, weights = zip(*choices, strict=True)
    return rng.choices(names, weights=weights)[0]


def rows(n: int = ROWS, seed: int = SEED) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        amount = round(rng.lognormvariate(3.5, 1.0), 2)
        country = pick(rng, COUNTRIES)
        channel = pick(rng, CHANNELS)
        age = rng.randint(18, 80) if rng.random() > 0.05 else None  # 5% unknown
        out.append({"amount": amount, "country": country, "channel": channel, "age": "" if age is None else age,
                    "label": predict(amount, country, channel, age)})
    return out


def main(argv: list[str]) -> None:
    """Writes the rows to reference.csv here, or to the path given."""
    with Path(argv[0] if argv else HERE / "reference.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["amount", "country", "channel", "age", "label"])
        writer.writeheader()
        writer.writerows(rows())


if __name__ == "__main__":
    main(sys.argv[1:])
