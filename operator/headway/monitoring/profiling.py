"""``headway profile``: a reference profile (headway.api.profile) from training data in CSV or Parquet.

How the bins are chosen:

- a column is numeric if every non-missing value is a number (in CSV: parses as one), unless
  ``--categorical`` names it; otherwise it is categorical;
- numeric: for ``--bins k`` over the n sorted non-missing values s, the edges are
  ``s[i*n // k]`` for i = 1..k-1, deduplicated, without the minimum (bin 0 would be empty)
  and without non-finite values. Bin i holds ``edges[i-1] <= v < edges[i]``, so with distinct
  values each bin holds about n/k of them. A column with at most k distinct values gets a bin
  per value (the edges are its values but the smallest);
- categorical: the ``--max-categories`` most frequent values (ties: by name) get a bin each,
  the rest share ``__other__``;
- missing values (in CSV: an empty cell, NA, N/A, NaN, null, None; in Parquet: null, NaN)
  count in ``__missing__``.

``expected`` is the share of the reference rows in each bin, computed with the recorder's own
``BinnedFeature.bin_of``, so the profile and the recorder agree on every value.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import shlex
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headway.api.profile import (
    FEATURE_NAME, MAX_BINS, MAX_FEATURES, MISSING, OTHER, PROFILE_KEY, RESERVED_FEATURE, BinnedFeature, ReferenceProfile,
)

DEFAULT_BINS = 10
DEFAULT_MAX_CATEGORIES = 20
MAX_NUMERIC_BINS = MAX_BINS - 1  # + __missing__
MAX_CATEGORIES = MAX_BINS - 2  # + __other__ and __missing__
CSV_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})  # compared case-insensitively, stripped
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ProfileError(ValueError):
    """A problem with the data or the options, worded for the command line."""


Table = dict[str, list[Any]]  # column -> values (None for missing), all of the same length


# -- reading ---------------------------------------------------------------------------------------
def read_table(path: str | Path, columns: Sequence[str] | None = None) -> Table:
    """The columns of a CSV or Parquet file (Parquet by suffix: .parquet, .pq, .parq)."""
    file = Path(path)
    if not file.exists():
        raise ProfileError(f"DATA {str(file)!r}: no such file")
    if not file.is_file():
        raise ProfileError(f"DATA {str(file)!r}: not a file")
    if file.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(file)
    return _read_csv(file)


def _read_csv(file: Path) -> Table:
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise ProfileError(f"DATA {str(file)!r}: empty: no header row")
            names = [h.strip() for h in header]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ProfileError(f"DATA {str(file)!r}: columns {duplicates} appear more than once in the header")
            table: Table = {name: [] for name in names}
            for line, row in enumerate(reader, start=2):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(names):
                    raise ProfileError(f"DATA {str(file)!r} line {line}: {len(row)} fields, the header has {len(names)}")
                for name, cell in zip(names, row, strict=True):
                    table[name].append(None if cell.strip().lower() in CSV_MISSING else cell.strip())
            return table
    except UnicodeDecodeError as exc:
        raise ProfileError(f"DATA {str(file)!r}: not UTF-8 text (CSV), and not named .parquet: {exc}") from exc
    except csv.Error as exc:
        raise ProfileError(f"DATA {str(file)!r}: not readable as CSV: {exc}") from exc


def _read_parquet(file: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ProfileError("reading Parquet needs pyarrow: pip install 'headway[profile]'") from exc
    try:
        data = pq.read_table(file)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise ProfileError(f"DATA {str(file)!r}: not readable as Parquet: {exc}") from exc
    return {str(name): list(values) for name, values in data.to_pydict().items()}


# -- binning ---------------------------------------------------------------------------------------
def _as_number(value: Any) -> float | None:
    """The value as a number, or None if it is not one (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def numeric_edges(numbers: Sequence[float], bins: int) -> tuple[float, ...]:
    """The inner edges of ``bins`` quantile bins of ``numbers`` (see the module docstring)."""
    ordered = sorted(x for x in numbers if not math.isnan(x))
    if not ordered:
        return ()
    distinct = sorted(set(ordered))
    if len(distinct) <= bins:  # few values (a flag, a small count): a bin per value
        edges = distinct
    else:
        n = len(ordered)
        edges = sorted({ordered[i * n // bins] for i in range(1, bins)})
    return tuple(e for e in edges if e > ordered[0] and math.isfinite(e))


def _proportions(feature: BinnedFeature, values: Sequence[Any]) -> tuple[float, ...]:
    counts = Counter(feature.bin_of(v) for v in values)
    return tuple(counts.get(b, 0) / len(values) for b in feature.bins)


def bin_column(values: Sequence[Any], *, categorical: bool | None = None, bins: int = DEFAULT_BINS,
               max_categories: int = DEFAULT_MAX_CATEGORIES) -> BinnedFeature:
    """The binned feature of one column (``categorical``: None decides from the values)."""
    if not values:
        raise ProfileError("no values to profile")
    present = [v for v in values if not _is_missing(v)]
    numbers = [_as_number(v) for v in present]
    if categorical is None:
        categorical = not present or any(x is None for x in numbers)
    if categorical:
        counts = Counter(str(v) for v in present)
        for reserved in (OTHER, MISSING):
            counts.pop(reserved, None)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        categories = tuple(name for name, _ in ranked[:max_categories])
        shell = BinnedFeature(kind="categorical", categories=categories,
                              expected=(*(0.0 for _ in categories), 0.0, 1.0), samples=len(values))
    else:
        edges = numeric_edges([x for x in numbers if x is not None], bins)
        shell = BinnedFeature(kind="numeric", edges=edges, expected=(*(0.0 for _ in edges), 0.0, 1.0),
                              samples=len(values))
    return BinnedFeature(**{**shell.model_dump(), "expected": _proportions(shell, values)})  # validated again


def build_profile(table: Mapping[str, Sequence[Any]], *, features: Sequence[str] | None = None,
                  prediction: str | None = None, categorical: Sequence[str] = (), bins: int = DEFAULT_BINS,
                  max_categories: int = DEFAULT_MAX_CATEGORIES, source: str = "") -> ReferenceProfile:
    """A reference profile of ``features`` (default: every column but the prediction) and ``prediction``."""
    if not 1 <= bins <= MAX_NUMERIC_BINS:
        raise ProfileError(f"--bins {bins}: must be between 1 and {MAX_NUMERIC_BINS} "
                           f"(a feature has at most {MAX_BINS} bins, one of them {MISSING})")
    if not 0 <= max_categories <= MAX_CATEGORIES:
        raise ProfileError(f"--max-categories {max_categories}: must be between 0 and {MAX_CATEGORIES} "
                           f"(a feature has at most {MAX_BINS} bins, two of them {OTHER} and {MISSING})")
    columns = list(table)
    if not columns:
        raise ProfileError("the data has no columns")
    rows = len(table[columns[0]])
    if rows == 0:
        raise ProfileError("the data has no rows")
    known = set(columns)

    def check(option: str, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ProfileError(f"{option}: no column {', '.join(map(repr, unknown))} in the data "
                               f"(columns: {', '.join(columns)})")

    if prediction is not None:
        check("--prediction", [prediction])
    check("--categorical", list(categorical))
    if features:
        check("--feature", list(features))
        chosen = list(dict.fromkeys(features))
    else:
        chosen = [c for c in columns if c != prediction]
    bad = [n for n in chosen if not re.match(FEATURE_NAME, n)]
    if bad:
        raise ProfileError(f"feature {', '.join(map(repr, bad))}: not usable as a feature name (a Prometheus label "
                           f"value here): letters, digits, _ . : - (at most 63), starting with a letter or _; "
                           f"rename the column, or leave it out with --feature")
    if len(chosen) > MAX_FEATURES:
        raise ProfileError(f"{len(chosen)} features; a profile watches at most {MAX_FEATURES}: choose them with --feature")
    if RESERVED_FEATURE in chosen:
        raise ProfileError(f"feature {RESERVED_FEATURE!r}: the name status gives the model's output; rename the column, "
                           f"or pass it as --prediction if it is the model's output")
    forced = set(categorical)

    def binned(name: str) -> BinnedFeature:
        return bin_column(table[name], categorical=True if name in forced else None, bins=bins,
                          max_categories=max_categories)

    return ReferenceProfile(
        features={name: binned(name) for name in chosen},
        prediction=binned(prediction) if prediction is not None else None,
        source=source,
    )


# -- output ----------------------------------------------------------------------------------------
def profile_json(profile: ReferenceProfile) -> str:
    return profile.model_dump_json(indent=2) + "\n"


def configmap_yaml(profile: ReferenceProfile, name: str, namespace: str | None = None, comment: str = "") -> str:
    """A ConfigMap manifest holding the profile's JSON under ``profile.json``."""
    for option, value in (("--configmap", name), ("--namespace", namespace)):
        if value is not None and (len(value) > 253 or not re.match(DNS_NAME, value)):
            raise ProfileError(f"{option} {value!r}: not a valid Kubernetes name (lower case letters, digits, - and .)")
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += ["apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    lines += ["  labels:", "    app.kubernetes.io/managed-by: headway-profile", "data:", f"  {PROFILE_KEY}: |"]
    lines += [f"    {line}" for line in profile_json(profile).splitlines()]
    return "\n".join(lines) + "\n"


def summary(profile: ReferenceProfile, rows: int, data: str) -> str:
    """The few lines printed to stderr: each feature's kind, bins and missing share."""
    out = [f"profiled {rows} rows of {data}: {len(profile.features)} features"
           + (", and the prediction" if profile.prediction is not None else "")]
    entries = list(profile.features.items())
    if profile.prediction is not None:
        entries.append(("(prediction)", profile.prediction))
    width = max((len(name) for name, _ in entries), default=0)
    for name, feature in entries:
        missing = feature.expected[-1]
        detail = (f"{len(feature.categories)} categories" + (f" + {OTHER} {feature.expected[-2]:.1%}"
                                                              if feature.expected[-2] else "")
                  if feature.kind == "categorical" else f"{len(feature.edges) + 1} bins")
        out.append(f"  {name:<{width}}  {feature.kind:<11}  {detail}" + (f", {missing:.1%} missing" if missing else ""))
    return "\n".join(out) + "\n"


# -- command line ----------------------------------------------------------------------------------
def _names(values: Sequence[str] | None) -> list[str]:
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="headway profile",
        description="Build a reference profile (bins and expected proportions per feature and for the prediction) "
                    "from training data, for the recorder (headway.monitoring.Recorder) and spec.monitoring.",
    )
    p.add_argument("data", metavar="DATA", help="the data: a CSV file with a header row, or Parquet (.parquet, .pq)")
    p.add_argument("--feature", action="append", metavar="NAME",
                   help="a feature to watch (repeat, or a comma list); default: every column but the prediction")
    p.add_argument("--prediction", metavar="COLUMN", help="the column holding the model's output")
    p.add_argument("--categorical", action="append", metavar="NAME",
                   help="treat these columns as categorical even if numeric (e.g. class ids 0/1; repeat, or a comma list)")
    p.add_argument("--bins", type=int, default=DEFAULT_BINS, metavar="N",
                   help=f"quantile bins per numeric feature (default {DEFAULT_BINS}, at most {MAX_NUMERIC_BINS})")
    p.add_argument("--max-categories", type=int, default=DEFAULT_MAX_CATEGORIES, metavar="N",
                   help=f"categories kept per categorical feature, the rest are {OTHER} "
                        f"(default {DEFAULT_MAX_CATEGORIES}, at most {MAX_CATEGORIES})")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--configmap", metavar="NAME", help=f"print a ConfigMap manifest with the profile under {PROFILE_KEY}")
    p.add_argument("--namespace", metavar="NS", help="the ConfigMap's namespace (with --configmap)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.namespace and not args.configmap:
        p.error("--namespace: only with --configmap")
    try:
        table = read_table(args.data)
        source = Path(args.data).name
        profile = build_profile(table, features=_names(args.feature), prediction=args.prediction,
                                categorical=_names(args.categorical), bins=args.bins,
                                max_categories=args.max_categories, source=source)
        rows = len(next(iter(table.values())))
        if args.configmap:
            command = shlex.join(["headway", "profile", *(sys.argv[1:] if argv is None else argv)])
            text = configmap_yaml(profile, args.configmap, args.namespace,
                                  comment=f"The reference profile of {source}, generated by:\n  {command}")
        else:
            text = profile_json(profile)
    except ProfileError as exc:
        p.exit(2, f"headway profile: error: {exc}\n")
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            p.exit(2, f"headway profile: error: -o {args.output!r}: {exc.strerror or exc}\n")
    else:
        sys.stdout.write(text)
    sys.stderr.write(summary(profile, rows, source) + ("" if not args.output else f"wrote {args.output}\n"))
    return 0
