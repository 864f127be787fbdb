"""Exact values on the wire: column types recorded at log time, JSON that loses nothing."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from support import real_table

import workbench as wb
from workbench.errors import MlflowCompatibilityWarning, SchemaError
from workbench.profile import numeric_values
from workbench.predlog import LogRecord, PredictionLog, read_predictions
from workbench.tables import TableSchema, encode_split


def _through_json(frame: pd.DataFrame) -> pd.DataFrame:
    """What a server restores from the JSON a client writes with encode_split."""
    wire = json.loads(json.dumps(encode_split(frame)))
    columns = dict(zip(wire["columns"], zip(*wire["data"]))) if wire["data"] else {c: [] for c in wire["columns"]}
    return TableSchema.from_frame(frame).restore_frame(columns)


def test_every_value_kind_of_a_real_table_round_trips_exactly() -> None:
    table, _, _ = real_table()
    back = _through_json(table)
    pd.testing.assert_frame_equal(back, table, check_exact=True)
    assert back.dtypes.to_dict() == table.dtypes.to_dict()


def test_floats_keep_their_last_bit_where_pandas_to_json_rounds() -> None:
    X, _ = load_diabetes(return_X_y=True, as_frame=True)
    back = _through_json(X)
    assert back.to_numpy().tobytes() == X.to_numpy().tobytes()
    # What Deployment.predict used to send: 10 significant digits, so values moved.
    rounded = pd.read_json(pd.io.common.StringIO(X.to_json(orient="split", index=False)), orient="split")
    assert (rounded.to_numpy() != X.to_numpy()).any()


def test_datetimes_keep_unit_zone_and_range() -> None:
    frame = pd.DataFrame({
        "ns": pd.to_datetime(["2020-01-01 00:00:00.123456789", None]).as_unit("ns"),
        "us beyond ns range": pd.to_datetime(["2300-01-01 00:00:00.000001", "1650-06-01"], format="ISO8601").as_unit("us"),
        "paris": pd.to_datetime(["2021-03-28 01:59:59.5", "2021-10-31 01:00:00"], format="ISO8601")
                   .tz_localize("UTC").tz_convert("Europe/Paris"),
    })
    pd.testing.assert_frame_equal(_through_json(frame), frame, check_exact=True)


def test_numbers_for_a_datetime_column_are_epoch_milliseconds_as_pandas_to_json_writes_them() -> None:
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-05-01 12:30:00", "1999-12-31 23:59:59.123"], format="ISO8601").as_unit("us")})
    sent = json.loads(frame.to_json(orient="split", index=False))
    restored = TableSchema.from_frame(frame).restore_frame(dict(zip(sent["columns"], zip(*sent["data"]))))
    pd.testing.assert_frame_equal(restored, frame)


def test_what_a_column_cannot_hold_is_refused_naming_the_column_and_the_fix() -> None:
    schema = TableSchema.from_frame(pd.DataFrame({
        "rate": [1.5], "n kids": pd.array([1], dtype="Int64"), "job": pd.Categorical(["farmer"], categories=["farmer", "teacher"]),
        "seen": pd.to_datetime(["2024-01-01"]),
    }))
    with pytest.raises(SchemaError, match=r"column 'rate' expects numbers \(double\); got 'high' \(str\)"):
        schema["rate"].restore(["high"])
    with pytest.raises(SchemaError, match=r"column 'n kids' expects whole numbers \(long\); got 1.5"):
        schema["n kids"].restore([1.5])
    with pytest.raises(SchemaError, match=r"'pilot' is not one of its levels \('farmer', 'teacher'\): send one of them"):
        schema["job"].restore(["pilot"])
    with pytest.raises(SchemaError, match=r"column 'seen' expects ISO 8601 dates or times"):
        schema["seen"].restore(["next tuesday"])
    # Gaps are not errors: each column takes them in its own way.
    assert schema["n kids"].restore([None, 2]).isna().tolist() == [True, False]
    assert pd.isna(schema["rate"].restore([None])[0])


def test_seconds_of_a_datetime_do_not_depend_on_its_unit_or_zone() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-01-01 10:00:00.25", None, "1970-01-01"], format="ISO8601"))
    expected = numeric_values(stamps.dt.as_unit("ns"))
    assert expected.tolist() == [1704103200.25, 0.0]
    assert numeric_values(stamps.dt.as_unit("us")).tolist() == expected.tolist()
    assert numeric_values(stamps.dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")).tolist() == expected.tolist()


def test_the_prediction_log_reads_each_column_back_in_its_type(tmp_path) -> None:
    table, _, _ = real_table(40)
    schema = TableSchema.from_frame(table)
    restored = {c.name: c.restore(json.loads(json.dumps(encode_split(table[[c.name]])))["data"][i][0]
                                  for i in range(len(table))) for c in schema.columns}
    from workbench.serving.codecs import InputBatch

    log = PredictionLog(tmp_path)
    try:
        log.append([LogRecord("r1", 0.0, "m", "1", "invocations", len(table), 1.0,
                              InputBatch(restored, len(table)).log_inputs(), {"predict": np.zeros(len(table))})])
    finally:
        log.close()
    rows = read_predictions(tmp_path).rows()
    pd.testing.assert_frame_equal(rows[list(table.columns)], table, check_categorical=False)


def test_log_model_says_which_columns_mlflow_scoring_would_refuse() -> None:
    table, affairs, _ = real_table(200)
    features = table[["age", "religious", "occupation", "visit local"]]
    model = DummyRegressor().fit(features, affairs)
    with wb.start_run(experiment="tables-tests"), pytest.warns(MlflowCompatibilityWarning) as said:
        wb.log_model(model, training_data=features, training_labels=affairs)
    message = str(said[0].message)
    for column in ("'religious' (nullable integers with gaps)", "'occupation' (category columns)",
                   "'visit local' (time-zone aware datetimes)", "cast those columns"):
        assert column in message
    plain = LinearRegression().fit(table[["age"]], affairs)
    with wb.start_run(experiment="tables-tests"), warnings.catch_warnings():
        warnings.simplefilter("error", MlflowCompatibilityWarning)
        wb.log_model(plain, training_data=table[["age"]], training_labels=affairs)
