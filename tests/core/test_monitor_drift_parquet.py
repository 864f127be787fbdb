"""Drift and profiles straight from Parquet, read a few columns at a time: the same report as the
DataFrame ``pd.read_parquet`` makes, and clear errors for paths and files that cannot be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

import workbench.parquet
from workbench.errors import InvalidInputError, MonitoringError
from workbench.monitor import DriftDetector, detect_drift
from workbench.profile import ReferenceProfile

BIN = Path(sys.executable).parent / "workbench"


def awkward_table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Every kind of column a user's table has, gaps included."""
    rng = np.random.default_rng(seed)
    gaps = rng.random((6, n)) < 0.08
    x = rng.normal(shift, 1.0, n)
    x[gaps[0]] = np.nan
    x[:3] = [np.inf, -np.inf, np.nan]
    counts = pd.array(rng.poisson(4 + 2 * shift, n), dtype="Int64")
    counts[gaps[1]] = pd.NA
    levels = [f"city {k}" for k in range(40)]
    weights = np.linspace(1, 2 + 4 * shift, 40)
    city = pd.Categorical(rng.choice(levels, n, p=weights / weights.sum()), categories=levels + ["never seen"])
    city[gaps[2]] = np.nan
    plan = pd.Series(rng.choice(["basic", "plus", "pro"], n), dtype="str")
    plan[gaps[3]] = None
    when = pd.Series(pd.Timestamp("2026-01-01", tz="Europe/Paris")
                     + pd.to_timedelta(rng.exponential(30 + 20 * shift, n), unit="D"))
    when[gaps[4]] = pd.NaT
    flag = pd.array(rng.random(n) < 0.3 + 0.2 * shift, dtype="boolean")
    flag[gaps[5]] = pd.NA
    return pd.DataFrame({"x": x, "counts": counts, "city": city, "plan": plan, "when": when, "flag": flag,
                         "y": rng.uniform(0, 1, n).astype(np.float32)})


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    a["dataset"].pop("created")
    b["dataset"].pop("created")
    return a == b


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parquet")
    reference = awkward_table(8000, 0)
    reference.iloc[:5000].to_parquet(folder / "reference.parquet", row_group_size=1500)
    (folder / "reference-parts").mkdir()
    reference.iloc[:2500].to_parquet(folder / "reference-parts" / "part-0.parquet")
    reference.iloc[2500:5000].to_parquet(folder / "reference-parts" / "part-1.parquet")
    awkward_table(6500, 1, shift=0.5).to_parquet(folder / "current.parquet", row_group_size=2000)
    return folder


def test_parquet_gives_the_report_its_dataframe_gets(files, monkeypatch) -> None:
    # Groups of two columns: the table passes through in several reads, as a long one would.
    monkeypatch.setattr(workbench.parquet, "GROUP_BYTES", 2 * 8 * 6500)
    in_memory = detect_drift(pd.read_parquet(files / "reference.parquet"), pd.read_parquet(files / "current.parquet"))
    # The table is as awkward as promised, and the report sees it.
    assert in_memory.drifted_features and in_memory.multivariate is not None
    assert in_memory["counts"].current_missing_rate > 0.05 and in_memory["city"].test == "jensenshannon"
    assert in_memory.multivariate.n_current == 5000  # sampled: the window has 6,500 rows
    for reference, current in (
        (files / "reference.parquet", files / "current.parquet"),
        (str(files / "reference.parquet"), str(files / "current.parquet")),
        (files / "reference-parts", ds.dataset(files / "current.parquet")),
    ):
        assert same(detect_drift(reference, current).to_dict(), in_memory.to_dict())
    # A fitted detector scores Parquet windows too.
    detector = DriftDetector().fit(files / "reference.parquet")
    assert same(detector.score(files / "current.parquet").to_dict(), in_memory.to_dict())


def test_a_parquet_profile_is_the_dataframes_profile(files, monkeypatch) -> None:
    monkeypatch.setattr(workbench.parquet, "GROUP_BYTES", 3 * 8 * 5000)
    frame = pd.read_parquet(files / "reference.parquet")
    expected = ReferenceProfile.from_data(frame)
    for source in (files / "reference.parquet", files / "reference-parts"):
        made = ReferenceProfile.from_data(source)
        assert made.to_dict() | {"created": ""} == expected.to_dict() | {"created": ""}
        assert made.data_hash == expected.data_hash
        pd.testing.assert_frame_equal(made.sample, expected.sample)
    assert list(made.sample.dtypes.astype(str)) == list(frame.dtypes.astype(str))
    # A profile made only to test drift against skips the hash, and nothing else.
    quick = ReferenceProfile.from_data(files / "reference.parquet", hash_data=False)
    assert quick.data_hash == "" and quick.to_dict() | {"created": "", "data_hash": ""} == made.to_dict() | {
        "created": "", "data_hash": ""}


def test_paths_and_files_that_cannot_be_read_fail_with_advice(files, tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="no Parquet file or folder at .*missing.parquet: check the path"):
        detect_drift(files / "reference.parquet", tmp_path / "missing.parquet")
    (tmp_path / "notes.parquet").write_text("x,y\n1,2\n")
    with pytest.raises(InvalidInputError, match="cannot read .*notes.parquet as Parquet"):
        ReferenceProfile.from_data(str(tmp_path / "notes.parquet"))
    # A folder whose files disagree on a column's type.
    (tmp_path / "mixed").mkdir()
    pd.DataFrame({"x": [1.0, 2.0], "plan": ["a", "b"]}).to_parquet(tmp_path / "mixed" / "a.parquet")
    pd.DataFrame({"x": ["one", "two"], "plan": ["a", "b"]}).to_parquet(tmp_path / "mixed" / "b.parquet")
    with pytest.raises(InvalidInputError, match="must give each column the same type"):
        detect_drift(files / "reference.parquet", tmp_path / "mixed")
    # A current table with none of the reference's columns.
    pd.DataFrame({"other": [1.0, 2.0]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(MonitoringError, match="none of the reference features"):
        detect_drift(files / "reference.parquet", tmp_path / "other.parquet")
    with pytest.raises(InvalidInputError, match="read the file with pd.read_parquet"):
        ReferenceProfile.from_data(files / "reference.parquet", target=pd.Series([1, 2]))


def test_the_drift_command_reads_a_folder_of_parquet_files(files) -> None:
    env = {**os.environ, "WORKBENCH_HOME": str(files / "home")}

    def drift(current: Path) -> dict[str, Any]:
        result = subprocess.run([str(BIN), "drift", "--reference", str(files / "reference.parquet"),
                                 "--current", str(current), "--no-multivariate", "--json"],
                                capture_output=True, text=True, env=env, timeout=180)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    # The folder holds the reference's own rows: nothing drifted, every row counted.
    data = drift(files / "reference-parts")
    assert data["dataset"]["n_current"] == 5000 and data["dataset"]["n_drifted"] == 0
    expected = detect_drift(pd.read_parquet(files / "reference.parquet"), pd.read_parquet(files / "current.parquet"),
                            multivariate=False)
    shifted = drift(files / "current.parquet")
    assert [f["feature"] for f in shifted["features"] if f["drifted"]] == expected.drifted_features
