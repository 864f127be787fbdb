"""Reference profiles: what they record, and their round trip through files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.errors import InvalidInputError
from workbench.profile import CategoricalProfile, NumericProfile, ReferenceProfile, data_hash


@pytest.fixture()
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 5000
    x = rng.normal(10, 2, n)
    x[:50] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 100, n),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.1,
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )


def test_numeric_features_get_quantiles_histogram_and_missing_rate(frame: pd.DataFrame) -> None:
    profile = ReferenceProfile.from_data(frame)
    x = profile.features["x"]
    assert isinstance(x, NumericProfile)
    values = frame["x"].dropna().to_numpy()
    assert x.count == 4950 and x.missing == 50
    assert x.missing_rate == pytest.approx(0.01)
    assert x.mean == pytest.approx(values.mean())
    assert x.std == pytest.approx(values.std(ddof=1))
    assert x.quantiles[500] == pytest.approx(np.median(values))
    assert x.quantiles[0] == values.min() and x.quantiles[-1] == values.max()
    assert x.bin_counts.sum() == 4950
    assert np.isinf(x.bin_edges[0]) and np.isinf(x.bin_edges[-1])
    # deciles: each bin holds about a tenth of the data
    assert np.all(np.abs(x.bin_counts / 4950 - 0.1) < 0.01)
    assert isinstance(profile.features["when"], NumericProfile)


def test_categorical_features_get_counts(frame: pd.DataFrame) -> None:
    profile = ReferenceProfile.from_data(frame, max_categories=2)
    city = profile.features["city"]
    assert isinstance(city, CategoricalProfile)
    counts = frame["city"].value_counts()
    assert dict(city.categories) == {"paris": counts["paris"], "lyon": counts["lyon"]}
    assert city.other == counts["nice"]
    assert isinstance(profile.features["flag"], CategoricalProfile)
    assert set(profile.features["flag"].categories) == {"True", "False"}


def test_sample_is_bounded_and_reproducible(frame: pd.DataFrame) -> None:
    a = ReferenceProfile.from_data(frame, sample_size=300)
    b = ReferenceProfile.from_data(frame, sample_size=300)
    assert len(a.sample) == 300
    pd.testing.assert_frame_equal(a.sample, b.sample)


def test_round_trip_through_files(frame: pd.DataFrame, tmp_path: Path) -> None:
    profile = ReferenceProfile.from_data(frame, target=pd.Series(frame["k"] > 50, name="y"))
    loaded = ReferenceProfile.load(profile.save(tmp_path / "p"))
    assert loaded.to_dict() == profile.to_dict()
    assert loaded.target == "y" and loaded.feature_names == list(frame.columns)
    pd.testing.assert_frame_equal(loaded.sample, profile.sample)
    np.testing.assert_array_equal(loaded.features["x"].bin_edges, profile.features["x"].bin_edges)


def test_data_hash_changes_with_content(frame: pd.DataFrame) -> None:
    changed = frame.copy()
    changed.loc[10, "k"] += 1
    assert data_hash(frame) == data_hash(frame.copy())
    assert data_hash(frame) != data_hash(changed)


def test_data_hash_is_the_hash_recorded_by_earlier_versions() -> None:
    """Hashes recorded before stay valid: SHA-256 of the names and dtypes, then of pandas' row
    hashes of the whole frame, for every kind of column and for no rows or no columns."""
    import hashlib
    import json

    from support import real_table

    def recorded(data: pd.DataFrame) -> str:
        digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in data.dtypes.items()]).encode())
        if len(data):
            digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    table, _, _ = real_table(300)
    for data in (table, table.head(0), table[[]], table.iloc[::-1]):
        assert data_hash(data) == recorded(data)


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="pandas DataFrame"):
        ReferenceProfile.from_data(np.zeros((3, 2)))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="duplicate column names"):
        ReferenceProfile.from_data(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(InvalidInputError, match="no reference profile"):
        ReferenceProfile.load(tmp_path)


def test_a_column_up_to_the_sample_bound_gets_numpys_quantiles_bit_for_bit() -> None:
    from workbench.profile import QUANTILE_SAMPLE

    rng = np.random.default_rng(3)
    values = np.round(rng.exponential(size=5000), 2)  # ties, as real measurements have
    x = ReferenceProfile.from_data(pd.DataFrame({"x": values})).features["x"]
    assert np.array_equal(x.quantiles, np.quantile(values, np.linspace(0, 1, 1001)))
    assert QUANTILE_SAMPLE >= 5000


def test_a_million_rows_keep_exact_counts_extremes_and_close_quantiles() -> None:
    from workbench.profile import QUANTILE_SAMPLE

    rng = np.random.default_rng(4)
    values = rng.lognormal(size=1_000_000)
    assert len(values) > QUANTILE_SAMPLE
    frame = pd.DataFrame({"x": values, "n": rng.integers(0, 50, size=len(values))})
    profile = ReferenceProfile.from_data(frame)
    x = profile.features["x"]
    assert (x.count, x.min, x.max) == (len(values), values.min(), values.max())
    assert x.quantiles[0] == values.min() and x.quantiles[-1] == values.max()
    counts, _ = np.histogram(values, bins=x.bin_edges)
    assert counts.tolist() == x.bin_counts.tolist() and x.bin_counts.sum() == len(values)
    exact = np.quantile(values, np.linspace(0, 1, 1001))[1:-1]
    # Each sketch point's rank among all the values is within a few 1/sqrt(sample) of its own.
    ranks = np.searchsorted(np.sort(values), x.quantiles[1:-1]) / len(values)
    assert np.abs(ranks - np.linspace(0, 1, 1001)[1:-1]).max() < 5 / np.sqrt(QUANTILE_SAMPLE)
    assert not np.array_equal(x.quantiles[1:-1], exact)  # sampled, so not numpy's over every value
    assert profile.features["n"].bin_counts.sum() == len(values)
    assert ReferenceProfile.from_data(frame).features["x"].quantiles.tolist() == x.quantiles.tolist()  # seeded
