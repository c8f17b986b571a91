"""``headway profile``: bins and proportions computed by hand, CSV and Parquet alike, and the command's errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from headway.api.profile import PROFILE_KEY, BinnedFeature, ReferenceProfile
from headway.monitoring.profiling import build_profile, numeric_edges, read_table

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "monitoring"

# 6 rows; the hand-computed profile below is for --prediction y --bins 2 --max-categories 2.
CSV = """x,color,flag,y
1,red,0,a
2,red,1,a
3,blue,0,b
4,,1,a
NA,green,0,b
6,red,,a
"""


def numeric(edges: tuple[float, ...], expected: tuple[float, ...]) -> BinnedFeature:
    return BinnedFeature(kind="numeric", edges=edges, expected=expected, samples=6)


def categorical(categories: tuple[str, ...], expected: tuple[float, ...]) -> BinnedFeature:
    return BinnedFeature(kind="categorical", categories=categories, expected=expected, samples=6)


# x: present 1,2,3,4,6 (n=5), k=2: edge s[1*5//2] = s[2] = 3 -> [<3: 1,2] [>=3: 3,4,6], NA missing.
# color: red 3, blue 1, green 1; two kept (ties by name: blue before green), green is other, "" missing.
# flag: 2 distinct values <= 2 bins: a bin per value, edge 1 -> [0: 3 rows] [1: 2 rows], "" missing.
# y: a 4, b 2.
EXPECTED = ReferenceProfile(
    features={
        "x": numeric((3.0,), (2 / 6, 3 / 6, 1 / 6)),
        "color": categorical(("red", "blue"), (3 / 6, 1 / 6, 1 / 6, 1 / 6)),
        "flag": numeric((1.0,), (3 / 6, 2 / 6, 1 / 6)),
    },
    prediction=categorical(("a", "b"), (4 / 6, 2 / 6, 0.0, 0.0)),
)


def close(a: ReferenceProfile, b: ReferenceProfile) -> bool:
    da, db = a.model_dump(exclude={"source"}), b.model_dump(exclude={"source"})
    for name in [*da["features"], "prediction"]:
        fa = da["features"].get(name) if name != "prediction" else da["prediction"]
        fb = db["features"].get(name) if name != "prediction" else db["prediction"]
        assert fa is not None and fb is not None, name
        assert fa["expected"] == pytest.approx(fb["expected"]), name
        fa["expected"] = fb["expected"] = None
        assert fa == fb, name
    return list(da["features"]) == list(db["features"])


@pytest.fixture
def data_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(CSV)
    return path


@pytest.fixture
def data_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({
        "x": pa.array([1.0, 2.0, 3.0, 4.0, float("nan"), 6.0]),
        "color": pa.array(["red", "red", "blue", None, "green", "red"]),
        "flag": pa.array([0, 1, 0, 1, 0, None], type=pa.int64()),
        "y": pa.array(["a", "a", "b", "a", "b", "a"]),
    }), path)
    return path


@pytest.mark.parametrize(("values", "bins", "edges"), [
    (list(range(1, 11)), 5, (3.0, 5.0, 7.0, 9.0)),  # n=10, k=5: s[2], s[4], s[6], s[8]: 2 values per bin
    ([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 5, (3.0, 5.0, 7.0, 9.0)),  # order does not matter
    ([1, 1, 1, 1, 2, 3, 4, 5], 3, (3.0,)),  # n=8, k=3: s[2]=1 is the minimum (dropped), s[5]=3
    ([1, 1, 1, 1, 2, 3, 4], 2, ()),  # n=7, k=2: s[3]=1 is the minimum: one bin
    ([1, 1, 1, 1, 2, 3, 4], 4, (2.0, 3.0, 4.0)),  # 4 distinct values, 4 bins: a bin per value
    ([0, 1, 0, 1, 1], 10, (1.0,)),  # a flag: a bin per value
    ([2.5, 2.5], 10, ()),
    ([], 10, ()),
])
def test_numeric_edges_by_hand(values: list[float], bins: int, edges: tuple[float, ...]) -> None:
    assert numeric_edges([float(v) for v in values], bins) == edges


def test_a_csv_file_profiled_by_hand(data_csv: Path) -> None:
    profile = build_profile(read_table(data_csv), prediction="y", bins=2, max_categories=2, source="train.csv")
    assert close(profile, EXPECTED)
    assert profile.source == "train.csv"


def test_parquet_gives_the_same_profile_as_csv(data_csv: Path, data_parquet: Path) -> None:
    table = read_table(data_parquet)
    assert table["flag"][:2] == [0, 1] and table["color"][3] is None
    assert close(build_profile(table, prediction="y", bins=2, max_categories=2), EXPECTED)


def test_features_forced_categorical_and_the_other_bin(data_csv: Path) -> None:
    table = read_table(data_csv)
    profile = build_profile(table, features=["flag", "color"], categorical=["flag"], bins=2, max_categories=1)
    assert list(profile.features) == ["flag", "color"] and profile.prediction is None
    assert profile.features["flag"] == categorical(("0",), (3 / 6, 2 / 6, 1 / 6))  # "1" is other
    assert profile.features["color"].categories == ("red",)
    assert profile.features["color"].expected == pytest.approx((3 / 6, 2 / 6, 1 / 6))
    everything = build_profile(table)  # default: every column, y too (no prediction named)
    assert list(everything.features) == ["x", "color", "flag", "y"]


def test_the_profile_bins_its_own_data_as_the_recorder_does(data_csv: Path) -> None:
    """The expected proportions are what the recorder counts for the same rows."""
    from prometheus_client import CollectorRegistry

    from headway.monitoring import FEATURE_METRIC, Recorder

    table = read_table(data_csv)
    profile = build_profile(table, prediction="y", bins=2, max_categories=2)
    registry = CollectorRegistry()
    recorder = Recorder(profile, registry=registry)
    for i in range(6):
        recorder.record({name: table[name][i] for name in table})
    for name, feature in profile.features.items():
        counts = [registry.get_sample_value(FEATURE_METRIC, {"feature": name, "bin": b}) for b in feature.bins]
        assert [c / 6 for c in counts] == pytest.approx(list(feature.expected)), name


# -- the command -----------------------------------------------------------------------------------
def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headway.cli", "profile", *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_the_command_writes_json_and_a_configmap(data_csv: Path, tmp_path: Path) -> None:
    out = run(data_csv, "--prediction", "y", "--bins", "2", "--max-categories", "2")
    assert out.returncode == 0, out.stderr
    assert close(ReferenceProfile.model_validate_json(out.stdout), EXPECTED)
    assert "profiled 6 rows of train.csv: 3 features, and the prediction" in out.stderr
    assert re.search(r"\n  x +numeric +2 bins, 16.7% missing\n", out.stderr), out.stderr
    assert re.search(r"\n  color +categorical +2 categories \+ __other__ 16.7%, 16.7% missing\n", out.stderr), out.stderr

    target = tmp_path / "out.json"
    out = run(data_csv, "--feature", "x,color", "--feature", "flag", "--prediction", "y", "--bins", "2",
              "--max-categories", "2", "-o", target)
    assert out.returncode == 0 and out.stdout == "", out.stderr
    assert close(ReferenceProfile.model_validate_json(target.read_text()), EXPECTED)

    out = run(data_csv, "--prediction", "y", "--bins", "2", "--max-categories", "2", "--configmap", "fraud-profile",
              "--namespace", "models")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# The reference profile of train.csv, generated by:\n#   headway profile ")
    manifest = yaml.safe_load(out.stdout)
    assert manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == "fraud-profile"
    assert manifest["metadata"]["namespace"] == "models"
    assert close(ReferenceProfile.model_validate_json(manifest["data"][PROFILE_KEY]), EXPECTED)


@pytest.mark.parametrize(("args", "message"), [
    (["{dir}/nowhere.csv"], "DATA '{dir}/nowhere.csv': no such file"),
    (["{dir}"], "not a file"),
    (["{csv}", "--feature", "x,nope"], "--feature: no column 'nope' in the data (columns: x, color, flag, y)"),
    (["{csv}", "--prediction", "label"], "--prediction: no column 'label' in the data"),
    (["{csv}", "--categorical", "colour"], "--categorical: no column 'colour'"),
    (["{empty}"], "DATA '{empty}': empty: no header row"),
    (["{header}"], "the data has no rows"),
    (["{badname}"], "feature 'bad name': not usable as a feature name"),
    (["{csv}", "--bins", "64"], "--bins 64: must be between 1 and 63"),
    (["{csv}", "--bins", "0"], "--bins 0: must be between 1 and 63"),
    (["{csv}", "--max-categories", "63"], "--max-categories 63: must be between 0 and 62"),
    (["{csv}", "--configmap", "Not_A_Name"], "--configmap 'Not_A_Name': not a valid Kubernetes name"),
    (["{csv}", "--namespace", "models"], "--namespace: only with --configmap"),
    (["{ragged}"], "line 3: 1 fields, the header has 2"),
    (["{notparquet}"], "not readable as Parquet"),
])
def test_the_command_names_what_is_wrong(data_csv: Path, tmp_path: Path, args: list[str], message: str) -> None:
    files = {"csv": data_csv, "dir": tmp_path, "empty": tmp_path / "empty.csv", "header": tmp_path / "header.csv",
             "badname": tmp_path / "badname.csv", "ragged": tmp_path / "ragged.csv",
             "notparquet": tmp_path / "fake.parquet"}
    files["empty"].write_text("")
    files["header"].write_text("a,b\n")
    files["badname"].write_text("ok,bad name\n1,2\n")
    files["ragged"].write_text("a,b\n1,2\n3\n")
    files["notparquet"].write_text("a,b\n1,2\n")
    out = run(*(a.format(**files) for a in args))
    assert out.returncode == 2
    assert message.format(**files) in out.stderr
    assert out.stdout == ""


def test_the_example_profile_is_what_its_command_makes(tmp_path: Path) -> None:
    """examples/monitoring: reference.csv is what make_reference.py writes, and profile-configmap.yaml
    what the command in its first lines makes of it."""
    subprocess.run([sys.executable, str(EXAMPLE / "make_reference.py"), str(tmp_path / "reference.csv")], check=True,
                   timeout=60)
    assert (tmp_path / "reference.csv").read_text() == (EXAMPLE / "reference.csv").read_text()

    text = (EXAMPLE / "profile-configmap.yaml").read_text()
    command = text.splitlines()[1].removeprefix("#").split()
    assert command[:2] == ["headway", "profile"] and command[-2] == "-o"
    out = run(*command[2:-2], cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == text.replace(" -o examples/monitoring/profile-configmap.yaml\n", "\n", 1)
    profile = ReferenceProfile.model_validate_json(yaml.safe_load(text)["data"][PROFILE_KEY])
    assert set(profile.features) == {"amount", "country", "channel", "age"}
    assert profile.prediction is not None and profile.prediction.categories == ("legit", "fraud")
    assert json.loads(yaml.safe_load(text)["data"][PROFILE_KEY])["features"]["amount"]["samples"] == 400
