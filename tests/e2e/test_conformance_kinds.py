"""Conformance beyond the one-table matrix: the model kinds people bring, each on data of its own.

A text pipeline (TF-IDF on real sentences with gaps, a category, a logistic regression answering
words), k-means, an isolation forest, a PyTorch network on an ``[n, 64]`` tensor, a version logged
and registered with plain MLflow (then given a profile with ``wb.attach_profile``), a SARIMAX
forecaster asked for dates, and a 300-column table (numbers with gaps, categories up to 1,000
levels). Each is fitted, logged and deployed once (a local process); then every client a user
picks, with its default settings, gets ``model.predict``'s answer bit for bit: the workbench's
``dep.predict``, MLflow's scoring client, and Triton's V2 client with binary and with JSON tensors.
The log reads back what was sent, unshifted traffic flags no drift, and three rows are explained.
"""

from __future__ import annotations

import importlib.util
import inspect
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from support import real_table

import workbench as wb
from tests.conftest import need
from workbench.errors import MlflowCompatibilityWarning

pytestmark = pytest.mark.slow

KINDS = ["text-pipeline", "kmeans", "isolation-forest", "pytorch", "plain-mlflow", "forecaster", "wide-table"]
#: Kinds whose inputs are a table's columns (the forecaster's are dates, ahead of its training data).
TABULAR = [k for k in KINDS if k != "forecaster"]


@dataclass
class Kind:
    """One kind: what it was trained on, the traffic it gets, and ``model.predict`` on that traffic."""

    training: pd.DataFrame
    traffic: pd.DataFrame
    expected: np.ndarray
    uri: str = ""
    deployment: wb.Deployment | None = None
    #: Send the traffic as one tensor (a network's ``[n, 64]``) rather than a tensor per column.
    tensor: bool = False


def _sentences() -> tuple[pd.DataFrame, pd.Series]:
    """Real English sentences: the first lines of the docstrings of the standard library's public
    functions, labelled with their module; some texts and kinds missing."""
    import collections
    import email.utils
    import json
    import os.path
    import shutil
    import statistics
    import string
    import textwrap

    texts, kinds, labels = [], [], []
    for module in (collections, email.utils, json, os.path, shutil, statistics, string, textwrap):
        for name, member in inspect.getmembers(module):
            doc = inspect.getdoc(member) if not name.startswith("_") else None
            if doc and (inspect.isfunction(member) or inspect.isclass(member)):
                texts.append(doc.split("\n\n")[0].replace("\n", " "))
                kinds.append("class" if inspect.isclass(member) else "function")
                labels.append(module.__name__.split(".")[0])
    frame = pd.DataFrame({"text": texts, "kind": pd.Categorical(kinds)})
    frame.loc[frame.index % 11 == 3, "text"] = None
    frame.loc[frame.index % 7 == 2, "kind"] = None
    return frame, pd.Series(labels, name="module")


def _text_pipeline() -> tuple[Any, pd.DataFrame, pd.Series | None]:
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = _sentences()
    text = make_pipeline(SimpleImputer(strategy="constant", fill_value=""), _flatten(), TfidfVectorizer())
    model = make_pipeline(make_column_transformer((text, ["text"]), (OneHotEncoder(handle_unknown="ignore"), ["kind"])),
                          LogisticRegression(max_iter=2000))
    return model.fit(X, y), X, y


def _flatten() -> Any:
    """The imputed text column (one column) as the 1-D array of strings TF-IDF takes."""
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(np.ravel)


def _kmeans() -> tuple[Any, pd.DataFrame, pd.Series | None]:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine

    X = load_wine(as_frame=True).data
    return KMeans(4, n_init=3, random_state=0).fit(X), X, None


def _isolation_forest() -> tuple[Any, pd.DataFrame, pd.Series | None]:
    from sklearn.ensemble import IsolationForest

    features = real_table()[0]
    X = features[[c for c in features.columns if pd.api.types.is_float_dtype(features[c])
                  and not features[c].isna().any()]]
    assert X.shape[1] >= 2
    return IsolationForest(n_estimators=50, random_state=0).fit(X), X, None


def _wide_table() -> tuple[Any, pd.DataFrame, pd.Series | None]:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 3000
    numbers = pd.DataFrame(rng.normal(size=(n, 280)), columns=[f"x{i:03d}" for i in range(280)])
    numbers = numbers.mask(rng.random(numbers.shape) < 0.05)
    levels = [5, 20, 50, 200, 1000] * 4
    cats = pd.DataFrame({f"c{i:02d}": pd.Categorical(rng.integers(0, k, n).astype(str)) for i, k in enumerate(levels)})
    cats = cats.mask(rng.random(cats.shape) < 0.03)
    X = pd.concat([numbers, cats], axis=1)
    y = pd.Series(numbers["x000"].fillna(0) * 2 + (cats["c00"] == "1") + rng.normal(size=n), name="target")
    encode = make_column_transformer((OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30),
                                      list(cats.columns)), remainder="passthrough", sparse_threshold=0)
    model = make_pipeline(encode, HistGradientBoostingRegressor(max_iter=40, random_state=0))
    return model.fit(X, y), X, y


def _digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    return pd.DataFrame(load_digits().data / 16, columns=[f"px{i}" for i in range(64)]).astype("float32")


def _forecaster() -> tuple[Any, pd.Series]:
    """SARIMAX on a real monthly series (sunspots), as a pyfunc asked for the dates to forecast."""
    import mlflow.pyfunc
    import statsmodels.api as sm

    data = sm.datasets.sunspots.load_pandas().data
    series = pd.Series(data["SUNACTIVITY"].to_numpy(),
                       index=pd.date_range("1700-01-01", periods=len(data), freq="YS", tz="UTC"))
    results = sm.tsa.SARIMAX(series, order=(2, 0, 1), trend="c").fit(disp=False)

    class Forecaster(mlflow.pyfunc.PythonModel):  # defined here: pickled by value, served elsewhere
        def __init__(self, fitted: Any) -> None:
            self.fitted = fitted

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
            dates = pd.to_datetime(model_input["date"], utc=True)
            end = dates.max()
            path = self.fitted.predict(start=self.fitted.model._index[0], end=end)
            return path.reindex(pd.DatetimeIndex(dates)).to_numpy()

    return Forecaster(results), series


def _deployed(name: str, uri: str) -> wb.Deployment:
    return wb.deploy(uri, target="local", name=name)


@pytest.fixture(scope="module")
def kinds() -> Iterator[dict[str, Kind]]:
    """Every kind fitted, logged (registered with plain MLflow for that kind), deployed once."""
    import mlflow
    import mlflow.sklearn

    prefix = f"kinds-{uuid.uuid4().hex[:6]}"
    made: dict[str, Kind] = {}
    fitters: dict[str, Callable[[], tuple[Any, pd.DataFrame, pd.Series | None]]] = {
        "text-pipeline": _text_pipeline, "kmeans": _kmeans, "isolation-forest": _isolation_forest,
        "wide-table": _wide_table}
    try:
        for kind, fit in fitters.items():
            model, X, y = fit()
            traffic = X.sample(min(300, len(X) // 3), random_state=7)
            with wb.start_run(experiment=prefix, run_name=kind), warnings.catch_warnings():
                warnings.simplefilter("ignore", MlflowCompatibilityWarning)
                logged = wb.log_model(model, training_data=X, training_labels=y)
            made[kind] = Kind(X, traffic, np.asarray(model.predict(traffic)), wb.register(logged, f"{prefix}-{kind}").uri)

        # A network on an [n, 64] tensor, logged with the defaults.
        import torch

        torch.manual_seed(0)
        network = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
        digits = _digits()
        with wb.start_run(experiment=prefix, run_name="pytorch"):
            logged = wb.log_model(network, training_data=digits)
        traffic = digits.sample(300, random_state=7)
        with torch.no_grad():
            expected = network(torch.from_numpy(np.ascontiguousarray(traffic.to_numpy()))).numpy()
        made["pytorch"] = Kind(digits, traffic, expected, wb.register(logged, f"{prefix}-pytorch").uri, tensor=True)

        # An existing MLflow user's version: logged and registered with MLflow alone, then profiled.
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.datasets import load_breast_cancer

        X, y = load_breast_cancer(return_X_y=True, as_frame=True)
        forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
        with mlflow.start_run(experiment_id=mlflow.set_experiment(prefix).experiment_id):
            # MLflow's skops format refuses a forest's trees unless trusted: the classic format, as
            # most existing MLflow models are.
            info = mlflow.sklearn.log_model(forest, name="model", input_example=X.head(3),
                                            serialization_format="cloudpickle")
        version = mlflow.register_model(info.model_uri, f"{prefix}-plain-mlflow")
        uri = f"models:/{version.name}/{version.version}"
        wb.attach_profile(uri, X, y)
        traffic = X.sample(200, random_state=7)
        made["plain-mlflow"] = Kind(X, traffic, forest.predict(traffic), uri)

        forecaster, series = _forecaster()
        future = pd.DataFrame({"date": pd.date_range(series.index[-1], periods=30, freq="YS", tz="UTC")[1:]})
        history = pd.DataFrame({"date": series.index})
        with wb.start_run(experiment=prefix, run_name="forecaster"):
            logged = wb.log_model(forecaster, training_data=history)
        made["forecaster"] = Kind(history, future, forecaster.predict(None, future),
                                  wb.register(logged, f"{prefix}-forecaster").uri)

        for kind, item in made.items():
            item.deployment = _deployed(f"{prefix}-{kind}", item.uri)
        yield made
    finally:
        for item in made.values():
            if item.deployment is not None:
                wb.stop(item.deployment.name)


def _exact(got: Any, want: np.ndarray, what: str) -> None:
    """``got`` equal to ``want`` in shape, values and every bit (floats are never compared approximately)."""
    have = np.asarray(got)
    if have.dtype == object and have.size and isinstance(have.flat[0], bytes):
        have = np.array([v.decode() for v in have.ravel()], dtype=object)  # Triton's BYTES, as its users decode them
    if want.dtype.kind in "fiub":
        have = have.astype(want.dtype)
    have = have.reshape(want.shape)
    np.testing.assert_array_equal(have, want, err_msg=what)
    if want.dtype.kind == "f":
        assert have.tobytes() == want.tobytes(), f"{what} differs in its last bits"


@pytest.mark.parametrize("kind", KINDS)
def test_dep_predict_answers_what_the_model_answers(kinds, kind) -> None:
    item = kinds[kind]
    assert item.deployment is not None
    _exact(item.deployment.predict(item.traffic), item.expected, "dep.predict")


@pytest.mark.parametrize("kind", KINDS)
def test_mlflow_scoring_client_with_its_defaults(kinds, kind) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    item = kinds[kind]
    assert item.deployment is not None
    url = urlparse(item.deployment.url)
    frame = item.traffic.astype(object).where(item.traffic.notna(), None) if not item.tensor else item.traffic
    if kind == "forecaster":
        frame = item.traffic.assign(date=item.traffic["date"].map(lambda t: t.isoformat()))
    answer = ScoringServerClient(url.hostname, url.port).invoke(frame).get_predictions()
    _exact(answer, item.expected, "MLflow's scoring client")


def _triton_inputs(triton: Any, item: Kind, binary: bool) -> list[Any]:
    """The traffic as Triton tensors: one FP32 ``[n, 64]`` tensor for the network; else a tensor per
    column, text and categories and dates as BYTES (None for a gap), numbers as FP64 (NaN for a gap)."""
    rows = item.traffic
    if item.tensor:
        tensor = triton.InferInput("x", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(rows.to_numpy(np.float32)), binary_data=binary)
        return [tensor]
    inputs = []
    for column in rows.columns:
        values = rows[column]
        if pd.api.types.is_numeric_dtype(values.dtype):
            array, datatype = values.astype("float64").to_numpy(), "FP64"
        elif pd.api.types.is_datetime64_any_dtype(values.dtype):
            array, datatype = np.array([t.isoformat() for t in values], dtype=object), "BYTES"
        else:
            array, datatype = values.astype(object).where(values.notna(), "").to_numpy(), "BYTES"
        tensor = triton.InferInput(column, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("kind", KINDS)
def test_tritons_client_in_both_modes(kinds, kind, binary) -> None:
    import tritonclient.http as triton

    item = kinds[kind]
    assert item.deployment is not None
    url = urlparse(item.deployment.url)
    client = triton.InferenceServerClient(f"{url.hostname}:{url.port}")
    inputs = _triton_inputs(triton, item, binary)
    if binary:  # the client's defaults
        result = client.infer(item.deployment.model_name, inputs)
    else:
        name = client.get_model_metadata(item.deployment.model_name)["outputs"][0]["name"]
        result = client.infer(item.deployment.model_name, inputs,
                              outputs=[triton.InferRequestedOutput(name, binary_data=False)])
    (output,) = [o["name"] for o in result.get_response()["outputs"]][:1]
    _exact(result.as_numpy(output), item.expected, f"Triton's client ({'binary' if binary else 'JSON'})")


@pytest.mark.parametrize("kind", TABULAR)
def test_the_log_reads_back_the_rows_and_unshifted_traffic_flags_no_drift(kinds, kind) -> None:
    item = kinds[kind]
    assert item.deployment is not None
    before = item.deployment.predictions(limit=100_000).next_since
    item.deployment.predict(item.traffic)
    logged = item.deployment.predictions(since=before, limit=100_000).rows()[list(item.traffic.columns)]
    pd.testing.assert_frame_equal(logged, item.traffic.reset_index(drop=True), check_categorical=False,
                                  check_dtype=False)
    report = wb.detect_drift(item.uri, item.traffic)
    assert not report.drifted and report.drifted_features == [], report.summary()


@pytest.mark.parametrize("kind", TABULAR)
def test_three_rows_are_explained(kinds, kind) -> None:
    item = kinds[kind]
    # The network answers ten scores, one per digit: name the one to explain.
    explanation = wb.explain_local(item.uri, item.traffic.head(3), target=3 if item.tensor else None)
    assert len(explanation) == 3 and explanation.additive


def test_torch_is_installed_for_this_suite() -> None:
    need(importlib.util.find_spec("torch") is not None, "torch is not installed: `make setup` installs the test extra")
