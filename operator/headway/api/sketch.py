"""The agreement sketch: how a recorded answer is hashed into ``headway_prediction_sketch_total``.

Two parties must hash alike, as they bin alike with the profile (``headway.api.profile``):
the recorder inside each version's model server (``headway.monitoring.recorder``) counts
every answer that comes with a request id, and the operator (``headway.planning.agreement``)
compares the candidate's counts with the stable's. Hence this module, which both import.

Each answer with request id ``i`` and prediction bin ``y`` adds 1 to the series
``{bucket=b(i), sign=s(i, y)}``:

- ``b(i)``: one of ``BUCKETS`` buckets, from a keyed BLAKE2b hash of the id alone, so both
  versions put a request in the same bucket whatever they answer;
- ``s(i, y)``: ``+`` or ``-``, from a keyed hash of the id *and* the bin, so an identical
  answer has the same sign on both sides and a different one an independent sign.

Per bucket, (``+`` count) - (``-`` count) is a sum of random signs (the AMS sketch of Alon,
Matias and Szegedy, 1996): the difference of the two versions' sums cancels exactly for the
requests they answered alike, and each request answered differently adds 2 to its expected
square. ``headway.planning.agreement`` turns that into the share of identical answers. The
number of series is fixed (``2 x BUCKETS``), whatever the traffic.

The hash is part of the wire format: changing ``BUCKETS``, the key or the encoding makes
versions that run different recorders incomparable (their agreement would read as noise).
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

SKETCH_METRIC: Final = "headway_prediction_sketch_total"
BUCKETS: Final = 64  # 128 series per pod; see docs/monitoring.md for the interval this buys
_KEY: Final = b"headway-agreement-sketch-v1"

Sign = Literal["+", "-"]
SIGNS: Final[tuple[Sign, Sign]] = ("+", "-")


def bucket_of(request_id: str) -> int:
    """The bucket of a request id: the same on every version and replica."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8, key=_KEY, person=b"bucket").digest()
    return int.from_bytes(digest, "big") % BUCKETS  # 64 divides 2**64: uniform


def sign_of(request_id: str, prediction_bin: str) -> Sign:
    """The sign of an answer: a hash of the id and the answer's bin (length-prefixed: no two pairs encode alike)."""
    data = f"{len(prediction_bin)}:{prediction_bin}{request_id}".encode("utf-8", "surrogatepass")
    return "+" if hashlib.blake2b(data, digest_size=1, key=_KEY, person=b"sign").digest()[0] & 1 else "-"


def cell_of(request_id: str, prediction_bin: str) -> tuple[int, Sign]:
    """(bucket, sign): the series one recorded answer adds 1 to."""
    return bucket_of(request_id), sign_of(request_id, prediction_bin)


def cell_key(bucket: int, sign: str) -> str:
    """A cell as a bin name in binned counts (``metrics.base.BinnedCounts``): ``"17+"``."""
    return f"{bucket}{sign}"


def parse_cell_key(key: str) -> tuple[int, Sign] | None:
    """(bucket, sign) of a cell's name; None for a name that is not one (the caller checks the bucket's range)."""
    head, sign = key[:-1], key[-1:]
    if sign not in SIGNS or not head.isascii() or not head.isdigit():
        return None
    return int(head), ("+" if sign == "+" else "-")
