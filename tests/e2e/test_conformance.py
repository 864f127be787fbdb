"""Conformance: every common model kind, every value kind, every path, exact answers.

One real table (:func:`support.real_table`: NaN and ``pd.NA``, nullable ``Int64``/``boolean``/
``string``, object strings with NaN gaps, a ``category``, a 500-level string column, datetimes in ns
and us and time-zone aware, bool, names with spaces and non-ASCII letters) feeds nine model kinds:
scikit-learn classifier and regressor, a Pipeline with a ColumnTransformer, XGBoost, LightGBM with a
native ``category``, CatBoost, statsmodels, and, from a script run as ``__main__`` the way a notebook defines
them, a custom estimator behind a ``FunctionTransformer(my_fn)`` and a two-output
``mlflow.pyfunc.PythonModel``. Tree libraries take the table's non-text columns; the others take all
of it. Each kind is fitted, logged and deployed once (a local process), then every path is checked
against ``model.predict`` on the same rows, bit for bit: the workbench's client, MLflow's own
scoring client, the Open Inference Protocol V2 (JSON with nulls, and Triton's V2 client with binary and
with JSON tensors), every classifier's probabilities and scores through each of them, the
prediction log read back, drift on unshifted rows (nothing flagged), explanations, the profile and
the model card.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pandas as pd
import pytest
from support import TREE_COLUMNS, real_table, real_table_pipeline

import workbench as wb
from workbench.errors import InvalidInputError, MlflowCompatibilityWarning
from workbench.tables import json_values

pytestmark = pytest.mark.slow

KINDS = ["sklearn-classifier", "sklearn-regressor", "sklearn-pipeline", "xgboost", "lightgbm", "catboost",
         "statsmodels", "notebook-class", "pyfunc-two-outputs"]
#: Kinds fitted in this process (the others come from statsmodels and a notebook-like script).
FITTED = KINDS[:6]
#: Classifiers: each offers its probabilities (and scores) besides its answer.
CLASSIFIERS = ["sklearn-classifier", "sklearn-pipeline", "xgboost", "lightgbm", "catboost"]
#: Kinds on the table's non-text columns, which Triton's client sends as typed tensors.
TREE_KINDS = ["sklearn-classifier", "sklearn-regressor", "xgboost", "lightgbm", "catboost"]
#: The methods besides predict that a client may ask a classifier for (where it has them).
METHODS = ("predict_proba", "decision_function")
STATSMODELS_COLUMNS = ["age", "marriage share", "educ", "occupation"]
#: CatBoost reads no ``pd.NA`` in a nullable boolean column: the tree columns but that one.
CATBOOST_COLUMNS = [c for c in TREE_COLUMNS if c != "churchgoer"]


@dataclass
class Served:
    """One model kind, logged, registered and deployed, with what ``model.predict`` says on ROWS."""

    kind: str
    uri: str
    columns: list[str]
    #: ``model.predict`` on the rows, one column per output (``predict`` for single-output models).
    expected: pd.DataFrame
    deployment: wb.Deployment
    #: A classifier's other methods on the rows (``predict_proba``, ``decision_function``), and its classes.
    methods: dict[str, np.ndarray]
    classes: list[Any] | None


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return real_table()


@pytest.fixture(scope="module")
def rows(table) -> pd.DataFrame:
    """Unshifted traffic: 300 rows drawn from the training table (every kind of gap among them)."""
    features = table[0]
    sample = features.sample(300, random_state=7)
    for column in ("children", "religious", "churchgoer", "husband job", "city"):
        assert sample[column].isna().any(), column
    return sample


def _fit_in_process(kind: str, features: pd.DataFrame, affairs: pd.Series, cheated: pd.Series) -> tuple[Any, list[str], pd.Series]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if kind == "sklearn-classifier":
        return HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=60, random_state=0), TREE_COLUMNS, cheated
    if kind == "sklearn-regressor":
        return HistGradientBoostingRegressor(categorical_features="from_dtype", max_iter=60, random_state=0), TREE_COLUMNS, affairs
    if kind == "sklearn-pipeline":
        return real_table_pipeline(), list(features.columns), cheated
    if kind == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(enable_categorical=True, tree_method="hist", n_estimators=40,
                                     random_state=0), TREE_COLUMNS, cheated
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=40, verbose=-1, random_state=0), TREE_COLUMNS, cheated
    if kind == "catboost":
        import catboost

        return (catboost.CatBoostClassifier(iterations=40, verbose=0, random_seed=0, cat_features=["occupation"],
                                            allow_writing_files=False),
                CATBOOST_COLUMNS, cheated)
    raise AssertionError(kind)


def _statsmodels(features: pd.DataFrame, affairs: pd.Series) -> Any:
    import statsmodels.formula.api as smf

    data = features[STATSMODELS_COLUMNS].assign(affairs=affairs)
    return smf.ols("affairs ~ age + Q('marriage share') + educ + C(occupation)", data=data).fit()


@pytest.fixture(scope="module")
def served(table, rows, tmp_path_factory) -> Iterator[dict[str, Served]]:
    """Every kind fitted, logged with its training data, registered and deployed once."""
    import warnings

    features, affairs, cheated = table
    prefix = f"conf-{uuid.uuid4().hex[:6]}"
    models: dict[str, tuple[str, list[str], pd.DataFrame]] = {}
    methods: dict[str, tuple[dict[str, np.ndarray], list[Any] | None]] = {}
    for kind in FITTED:
        model, columns, target = _fit_in_process(kind, features, affairs, cheated)
        model.fit(features[columns], target)
        with wb.start_run(experiment=f"{prefix}-conformance", run_name=kind), warnings.catch_warnings():
            warnings.simplefilter("ignore", MlflowCompatibilityWarning)
            logged = wb.log_model(model, training_data=features[columns], training_labels=target)
        version = wb.register(logged, f"{prefix}-{kind}")
        models[kind] = (version.uri, columns, pd.DataFrame({"predict": model.predict(rows[columns])}))
        classes = getattr(model, "classes_", None)
        methods[kind] = ({m: np.asarray(getattr(model, m)(rows[columns])) for m in METHODS if hasattr(model, m)},
                         np.asarray(classes).tolist() if classes is not None else None)
    results = _statsmodels(features, affairs)
    with wb.start_run(experiment=f"{prefix}-conformance", run_name="statsmodels"):
        logged = wb.log_model(results, training_data=features[STATSMODELS_COLUMNS], training_labels=affairs)
    version = wb.register(logged, f"{prefix}-statsmodels")
    models["statsmodels"] = (version.uri, STATSMODELS_COLUMNS,
                             pd.DataFrame({"predict": results.predict(rows[STATSMODELS_COLUMNS]).to_numpy()}))

    # A notebook's own classes and functions: defined in __main__ of another process.
    out = tmp_path_factory.mktemp("notebook")
    script = Path(__file__).with_name("notebook_models.py")
    done = subprocess.run([sys.executable, str(script), str(out), prefix], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for kind, uri in json.loads((out / "models.json").read_text()).items():
        full = pd.read_parquet(out / f"{kind}.parquet")
        models[kind] = (uri, list(features.columns), full.iloc[rows.index].reset_index(drop=True))

    deployed: dict[str, Served] = {}
    try:
        for kind in KINDS:
            uri, columns, expected = models[kind]
            deployment = wb.deploy(uri, target="local", name=f"{prefix}-{kind}")
            deployed[kind] = Served(kind, uri, columns, expected, deployment, *methods.get(kind, ({}, None)))
        yield deployed
    finally:
        for item in deployed.values():
            wb.stop(item.deployment.name)


def _as_frame(answer: Any, outputs: list[str]) -> pd.DataFrame:
    """An /invocations answer as one column per output."""
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        answer = pd.DataFrame(answer)
    if isinstance(answer, pd.DataFrame):
        frame = answer.reset_index(drop=True)
        if len(outputs) == 1 and frame.shape[1] == 1:  # a Series answers as records of one column
            frame.columns = outputs
        return frame
    return pd.DataFrame({outputs[0]: np.asarray(answer).reshape(-1)})


def _assert_exact(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every output equal to model.predict's, bit for bit (floats compared exactly, never approximately)."""
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        want = expected[column].to_numpy()
        have = np.asarray(got[column].to_numpy()).astype(want.dtype)
        np.testing.assert_array_equal(have, want, err_msg=f"output {column!r} differs from model.predict")
        if want.dtype.kind == "f":
            assert have.tobytes() == want.tobytes(), f"output {column!r} differs in its last bits"


@pytest.mark.parametrize("kind", KINDS)
def test_deployment_predict_equals_model_predict(served, rows, kind) -> None:
    item = served[kind]
    answer = item.deployment.predict(rows[item.columns])
    _assert_exact(_as_frame(answer, list(item.expected.columns)), item.expected)


@pytest.mark.parametrize("kind", KINDS)
def test_mlflow_scoring_client_gets_the_same_answers(served, rows, kind) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    item = served[kind]
    url = urlparse(item.deployment.url)
    client = ScoringServerClient(url.hostname, url.port)
    # MLflow's encoder writes NaN as a bare literal and cannot write pd.NA: give it None there.
    frame = rows[item.columns].astype(object).where(rows[item.columns].notna(), None)
    answer = client.invoke(frame).get_predictions()
    _assert_exact(_as_frame(answer, list(item.expected.columns)), item.expected)


@pytest.mark.parametrize("kind", KINDS)
def test_v2_json_with_nulls_gets_the_same_answers(served, rows, kind) -> None:
    item = served[kind]
    base = f"{item.deployment.url}/v2/models/{item.deployment.model_name}"
    metadata = httpx.get(base, timeout=30).json()
    datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    inputs = [{"name": c, "datatype": datatypes[c], "shape": [len(rows)], "data": json_values(rows[c])}
              for c in item.columns]
    response = httpx.post(f"{base}/infer", json={"inputs": inputs}, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    _assert_exact(pd.DataFrame({k: outputs[k] for k in item.expected.columns}), item.expected)


def _assert_bits(have: Any, want: np.ndarray, what: str) -> None:
    """``have`` equal to ``want`` in shape and to the last bit."""
    have = np.asarray(have).astype(want.dtype).reshape(want.shape)
    np.testing.assert_array_equal(have, want, err_msg=what)
    assert have.tobytes() == want.tobytes(), f"{what} differs in its last bits"


def _triton_inputs(triton: Any, rows: pd.DataFrame, columns: list[str], binary: bool) -> list[Any]:
    """The columns as Triton tensors: categories as BYTES, bools as BOOL, numbers (nullable integers
    and booleans with gaps too) as FP64 with NaN for the gaps."""
    inputs = []
    for column in columns:
        values = rows[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            array, datatype = values.astype(object).to_numpy(), "BYTES"
        elif pd.api.types.is_bool_dtype(values.dtype) and not values.isna().any():
            array, datatype = values.to_numpy(dtype=bool), "BOOL"
        else:
            array, datatype = values.astype("float64").to_numpy(), "FP64"
        tensor = triton.InferInput(column, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("kind", TREE_KINDS)
def test_tritons_v2_client_gets_the_same_answers(served, rows, kind, binary) -> None:
    """Triton's HTTP client in its default mode (binary tensors both ways) and with JSON tensors,
    NaN gaps included; a classifier's probabilities too; the log holds the rows sent."""
    import tritonclient.http as triton

    item = served[kind]
    url = urlparse(item.deployment.url)
    client = triton.InferenceServerClient(f"{url.hostname}:{url.port}")
    before = item.deployment.predictions(limit=10_000).next_since
    inputs = _triton_inputs(triton, rows, item.columns, binary)
    if binary:  # the client's defaults: binary inputs, every output asked for in binary
        result = client.infer(item.deployment.model_name, inputs)
    else:
        result = client.infer(item.deployment.model_name, inputs,
                              outputs=[triton.InferRequestedOutput("predict", binary_data=False)])
    assert ("binary_data_size" in result.get_output("predict").get("parameters", {})) is binary
    _assert_exact(pd.DataFrame({"predict": result.as_numpy("predict")}), item.expected)
    logged = item.deployment.predictions(since=before).rows()[item.columns]
    pd.testing.assert_frame_equal(logged, rows[item.columns].reset_index(drop=True), check_categorical=False)
    for method, want in item.methods.items():
        result = client.infer(item.deployment.model_name, inputs,
                              outputs=[triton.InferRequestedOutput(method, binary_data=binary)])
        assert result.get_output(method)["shape"] == list(want.shape)
        _assert_bits(result.as_numpy(method), want, f"{method} through Triton's client")


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_probabilities_and_scores_through_every_client(served, rows, kind) -> None:
    """predict_proba (and decision_function where the model has it), bit for bit, through
    dep.predict(output=...), MLflow's client with params={"predict_method": ...} and V2 outputs."""
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    item = served[kind]
    assert "predict_proba" in item.methods and item.classes is not None
    url = urlparse(item.deployment.url)
    mlflow_client = ScoringServerClient(url.hostname, url.port)
    frame = rows[item.columns].astype(object).where(rows[item.columns].notna(), None)
    base = f"{item.deployment.url}/v2/models/{item.deployment.model_name}"
    datatypes = {i["name"]: i["datatype"] for i in httpx.get(base, timeout=30).json()["inputs"]}
    inputs = [{"name": c, "datatype": datatypes[c], "shape": [len(rows)], "data": json_values(rows[c])}
              for c in item.columns]
    for method, want in item.methods.items():
        got = item.deployment.predict(rows[item.columns], output=method)
        assert list(got.index) == list(rows.index)
        assert list(got.columns) == (item.classes if want.ndim == 2 else [method])
        _assert_bits(got.to_numpy(), want, f"dep.predict(output={method!r})")
        answer = mlflow_client.invoke(frame, params={"predict_method": method}).get_predictions()
        _assert_bits(np.asarray(answer), want, f"{method} through MLflow's client")
        response = httpx.post(f"{base}/infer", json={"inputs": inputs, "outputs": [{"name": method}]}, timeout=60)
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["name"] == method and output["shape"] == list(want.shape)
        _assert_bits(output["data"], want, f"{method} through V2")
    unknown = httpx.post(f"{base}/infer", json={"inputs": inputs, "outputs": [{"name": "predict_probability"}]})
    assert unknown.status_code == 400 and "predict_proba" in unknown.json()["error"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_prediction_log_reads_back_what_was_sent(served, rows, kind) -> None:
    item = served[kind]
    before = item.deployment.predictions(limit=10_000).next_since
    item.deployment.predict(rows[item.columns])
    page = item.deployment.predictions(since=before)
    logged = page.rows()[item.columns]
    sent = rows[item.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(logged, sent, check_categorical=False)
    for column in item.columns:
        if isinstance(sent[column].dtype, pd.CategoricalDtype):
            assert isinstance(logged[column].dtype, pd.CategoricalDtype)
    outputs = page.rows()[list(item.expected.columns)]
    _assert_exact(outputs, item.expected)


@pytest.mark.parametrize("kind", KINDS)
def test_unshifted_traffic_flags_no_drift(served, table, rows, kind) -> None:
    item = served[kind]
    direct = wb.detect_drift(item.uri, rows[item.columns])
    assert direct.drifted_features == [] and {f.feature for f in direct.features} == set(item.columns)
    # Live: a window (the monitor's last 1,000 rows) of other rows drawn from the training table.
    item.deployment.predict(table[0].sample(1000, random_state=11)[item.columns])
    monitor = wb.LiveMonitor(item.uri, sources=item.deployment.log_sources, window=1000)
    report = monitor.update()
    assert report is not None
    assert report.drift.drifted_features == []
    tested = {f.feature for f in report.drift.features if f.test is not None}
    assert tested == set(item.columns), "every column, datetimes included, is tested live"


@pytest.mark.parametrize("kind", KINDS)
def test_explanations_cover_every_column(served, rows, kind) -> None:
    item = served[kind]
    target = "score" if kind == "pyfunc-two-outputs" else None
    local = wb.explain_local(item.uri, rows[item.columns].head(8), target=target)
    assert local.additive and local.features == item.columns
    reference = wb.load_profile(item.uri).sample
    assert len(wb.explain_local(item.uri, reference[item.columns].head(5), target=target)) == 5


def test_a_multi_output_model_names_its_outputs_before_explaining(served, rows) -> None:
    item = served["pyfunc-two-outputs"]
    with pytest.raises(InvalidInputError, match=r"2 outputs \(\['label', 'score'\]\): name the one to explain with target="):
        wb.explain_local(item.uri, rows[item.columns].head(3))
    with pytest.raises(InvalidInputError, match="'probability' is not one of .*'label', 'score'"):
        wb.explain_global(item.uri, target="probability")


@pytest.mark.parametrize("kind", KINDS)
def test_profile_and_model_card_describe_every_column(served, kind) -> None:
    item = served[kind]
    profile = wb.load_profile(item.uri)
    described = profile.to_frame().set_index("feature")
    assert set(item.columns) <= set(described.index)
    for column in item.columns:
        assert described.loc[column, "count"] > 0
    card = wb.model_card(item.uri).to_markdown()
    for column in item.columns:
        assert column in card


def _rss_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status: memory is read on Linux only")


def test_a_frame_larger_than_a_request_goes_in_parts_and_memory_comes_back(served, rows) -> None:
    """dep.predict splits a frame over the server's limits (learned from the model's metadata) into
    requests that fit both, and answers once, in order, exactly; the server's memory returns to
    within 20 % of its idle size after the largest requests it takes."""
    item = served["xgboost"]
    base = f"{item.deployment.url}/v2/models/{item.deployment.model_name}"
    limits = httpx.get(base, timeout=30).json()["parameters"]
    max_rows, max_bytes = limits["max_rows"], limits["max_body_bytes"]
    # Both limits agree: the rows allowed, at 25 bytes per value, fit in the bytes allowed.
    assert max_rows * len(item.columns) * 25 <= max_bytes and max_rows < 100_000
    repeats = max_rows * 2 // len(rows) + 1  # more than two requests' worth
    big = pd.concat([rows[item.columns]] * repeats)
    pid = item.deployment.handle.champion.handle.pid  # the local target's one server process
    item.deployment.predict(rows[item.columns])  # warm: the idle size of a server that has answered
    idle = _rss_mb(pid)
    before = item.deployment.predictions(limit=10_000).next_since
    answer = item.deployment.predict(big)
    expected = pd.concat([item.expected] * repeats, ignore_index=True)
    _assert_exact(_as_frame(answer, ["predict"]), expected)
    sizes: list[int] = []
    while True:  # a page holds what fits in its bytes: read on until the end
        page = item.deployment.predictions(since=before)
        sizes += page.records["n_rows"].tolist()
        before = page.next_since
        if not page.more:
            break
    assert sum(sizes) == len(big) and len(sizes) == -(-len(big) // max_rows) and max(sizes) <= max_rows
    after = _rss_mb(pid)
    print(f"server memory: {idle:.0f} MB idle, {after:.0f} MB after {len(big)} rows in {len(sizes)} requests "
          f"of at most {max_rows} rows")
    assert after <= idle * 1.2, f"the server kept {after - idle:.0f} MB after the large requests"
