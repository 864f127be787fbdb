"""Explanations: SHAP contributions that add up, agree with SHAP called directly, and come back
per original input column; global importance, dependence, live traffic, errors and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap

import workbench as wb
from workbench.errors import ExplanationError, InvalidInputError, SchemaError
from workbench.explain import METHODS, Explainer, LocalExplanation
from workbench.predlog import LogRecord, PredictionLog

# -- models ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def credit_pipeline(credit_data):
    """One-hot encoded categories and passthrough numbers feeding a random forest."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = credit_data
    y = y ^ (X["region"] == "north").to_numpy()  # make a category matter
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["region", "tier"]), remainder="passthrough"),
        RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0),
    ).fit(X, y)
    return model, X


LINEAR = """
    import mlflow.pyfunc

    class Linear(mlflow.pyfunc.PythonModel):
        # Uses a and b only: its exact SHAP values are known in closed form.
        def predict(self, context, model_input, params=None):
            return 2.0 * model_input["a"] + model_input["b"]

    mlflow.models.set_model(Linear())
"""


@pytest.fixture(scope="module")
def linear_data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    return pd.DataFrame({
        "a": rng.normal(0, 1, n),
        "b": rng.normal(5, 2, n),
        "c": rng.normal(0, 1, n),
        "kind": rng.choice(["x", "y", "z"], n),
    })


@pytest.fixture(scope="module")
def linear_pyfunc(tmp_path_factory, linear_data) -> str:
    """A pyfunc model (from code) logged with its reference profile: explained model-agnostically."""
    path = tmp_path_factory.mktemp("code") / "linear.py"
    path.write_text(textwrap.dedent(LINEAR))
    with wb.start_run(experiment="explain-tests"):
        logged = wb.log_model(str(path), flavor="pyfunc", name="linear", training_data=linear_data)
    return logged.model_uri


def _exact_linear_shap(explainer: Explainer, rows: pd.DataFrame) -> pd.DataFrame:
    """Interventional SHAP values of 2a + b against the explainer's background: w * (x - mean)."""
    background = explainer.background_
    return pd.DataFrame({
        "a": 2.0 * (rows["a"] - background["a"].mean()),
        "b": rows["b"] - background["b"].mean(),
        "c": 0.0,
        "kind": 0.0,
    }).reset_index(drop=True)


def _assert_additive(local: LocalExplanation) -> None:
    np.testing.assert_allclose(local.contributions.sum(axis=1), local.predictions - local.base_values, atol=1e-6)
    assert local.additive


# -- tree models -------------------------------------------------------------------------------


def test_registered_forest_adds_up_and_matches_shap_called_directly(registered_model, numeric_data) -> None:
    X, _ = numeric_data
    rows = X.iloc[100:150]
    local = wb.explain_local("models:/fixture-rf@champion", rows)

    assert (local.method, local.output) == ("tree", "probability")
    assert local.features == list(X.columns)
    _assert_additive(local)
    forest = wb.load_model(registered_model.uri).get_raw_model()
    proba = forest.predict_proba(rows)
    predicted = proba.argmax(axis=1)
    assert list(local.targets) == list(forest.classes_[predicted])
    np.testing.assert_allclose(local.predictions, proba[np.arange(len(rows)), predicted])

    direct = shap.TreeExplainer(forest)
    values = direct.shap_values(rows)
    np.testing.assert_allclose(local.contributions.to_numpy(), values[np.arange(len(rows)), :, predicted], atol=1e-12)
    np.testing.assert_allclose(local.base_values, np.asarray(direct.expected_value)[predicted], atol=1e-12)


def test_a_named_class_is_explained_for_every_row(registered_model, numeric_data) -> None:
    X, _ = numeric_data
    explainer = Explainer().fit(registered_model.uri)
    assert explainer.classes_ == (0, 1)
    forest = wb.load_model(registered_model.uri).get_raw_model()
    for target in (0, "0"):  # "0" as it arrives from the command line or HTTP
        local = explainer.explain(X.head(10), target=target)
        assert local.targets == (0,) * 10
        np.testing.assert_allclose(local.predictions, forest.predict_proba(X.head(10))[:, 0])
        _assert_additive(local)
    with pytest.raises(InvalidInputError, match=r"target 7 is not one of the model's classes/outputs \[0, 1\]"):
        explainer.explain(X.head(2), target=7)
    # A loaded pyfunc model is explained through the estimator inside it.
    from_pyfunc = Explainer().fit(wb.load_model(registered_model.uri)).explain(X.head(10), target=0)
    np.testing.assert_allclose(from_pyfunc.contributions, explainer.explain(X.head(10), target=0).contributions)


def test_pipeline_one_hot_columns_are_summed_into_their_input(credit_pipeline) -> None:
    model, X = credit_pipeline
    rows = X.iloc[:40]
    background = X.iloc[200:400]
    local = Explainer().fit(model, background=background).explain(rows)

    assert local.method == "tree"
    assert local.features == list(X.columns)  # original columns, not one-hot ones
    _assert_additive(local)
    encoded = local.encoded_contributions
    assert encoded is not None
    region_columns = [c for c in encoded.columns if c.startswith("onehotencoder__region_")]
    assert len(region_columns) == 4
    np.testing.assert_allclose(local.contributions["region"], encoded[region_columns].sum(axis=1), atol=1e-12)

    # The same numbers from SHAP directly on the forest and the transformed rows, grouped by hand.
    preprocess, forest = model[:-1], model[-1]
    names = list(preprocess.get_feature_names_out())
    transformed = preprocess.transform(rows)
    values = shap.TreeExplainer(forest).shap_values(transformed)
    predicted = forest.predict_proba(transformed).argmax(axis=1)
    chosen = values[np.arange(len(rows)), :, predicted]
    for column in X.columns:
        prefix = f"onehotencoder__{column}_" if column in ("region", "tier") else f"remainder__{column}"
        group = [i for i, n in enumerate(names) if n.startswith(prefix)]
        np.testing.assert_allclose(local.contributions[column], chosen[:, group].sum(axis=1), atol=1e-12)
    # The category that drives the label is among the most important inputs.
    assert "region" in local.global_importance().ranking[:3]


def test_pipeline_that_mixes_columns_falls_back_to_permutation_or_says_why(credit_pipeline) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    _, X = credit_pipeline
    y = (X["f0"] > 0).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["region", "tier"]), remainder="passthrough"),
        PCA(n_components=4), RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
    ).fit(X, y)
    with pytest.raises(ExplanationError, match="PCA.*mix.*method='permutation'"):
        Explainer(method="tree").fit(model, background=X.iloc[:50])
    explainer = Explainer(background_size=20).fit(model, background=X.iloc[:50])
    assert explainer.method_ == "permutation"
    _assert_additive(explainer.explain(X.iloc[:3]))


def test_gradient_boosting_is_explained_in_probability_space(numeric_data) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = numeric_data
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y)
    background = X.iloc[:100]
    local = Explainer().fit(model, background=background).explain(X.iloc[200:230], target=1)
    assert (local.method, local.output) == ("tree", "probability")
    _assert_additive(local)
    direct = shap.TreeExplainer(model, data=background, model_output="probability",
                                feature_perturbation="interventional")
    np.testing.assert_allclose(local.contributions.to_numpy(), direct.shap_values(X.iloc[200:230]), atol=1e-9)


def test_histogram_boosting_is_explained_in_log_odds(numeric_data) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = numeric_data
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    local = Explainer().fit(model, background=X.iloc[:100]).explain(X.iloc[:30], target=1)
    # SHAP's probability-space TreeSHAP does not add up for this model, so its log odds are explained.
    assert (local.method, local.output) == ("tree", "log_odds")
    np.testing.assert_allclose(local.predictions, model.decision_function(X.iloc[:30]))
    _assert_additive(local)


# -- the model-agnostic path -------------------------------------------------------------------


def test_logistic_regression_gets_the_permutation_explainer_and_matches_shap(numeric_data) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    background = X.iloc[:40]
    rows = X.iloc[300:310]
    explainer = Explainer(background_size=40, max_evals=65).fit(model, background=background)
    local = explainer.explain(rows, target=1)
    assert (explainer.method_, local.method, local.output) == ("permutation", "permutation", "probability")
    _assert_additive(local)

    def positive(values: np.ndarray) -> np.ndarray:
        return model.predict_proba(pd.DataFrame(values, columns=X.columns))[:, 1]

    direct = shap.PermutationExplainer(positive, shap.maskers.Independent(explainer.background_.to_numpy(),
                                                                           max_samples=40), seed=0)
    expected = direct(rows.to_numpy(), max_evals=65, batch_size=65, silent=True)
    np.testing.assert_allclose(local.contributions.to_numpy(), expected.values, atol=1e-10)
    np.testing.assert_allclose(local.base_values, expected.base_values, atol=1e-10)


def test_kernel_explainer_adds_up(numeric_data) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    model = LogisticRegression(max_iter=500).fit(X, y)
    local = Explainer(method="kernel", background_size=20, max_evals=200).fit(model, background=X).explain(X.head(3))
    assert local.method == "kernel"
    _assert_additive(local)


def test_pyfunc_model_is_explained_against_its_reference_profile(linear_pyfunc, linear_data) -> None:
    rows = linear_data.iloc[:25]
    explainer = Explainer().fit(linear_pyfunc)
    assert explainer.method_ == "permutation" and explainer.output_ == "prediction"
    assert len(explainer.background_) == 100  # sampled from the profile stored with the model
    local = explainer.explain(rows)
    _assert_additive(local)
    assert local.targets is None
    np.testing.assert_allclose(local.predictions, 2 * rows["a"] + rows["b"])
    pd.testing.assert_frame_equal(local.contributions, _exact_linear_shap(explainer, rows), atol=1e-9)
    dependence = local.dependence("a")
    np.testing.assert_allclose(dependence.values, rows["a"])
    np.testing.assert_allclose(dependence.contributions, local.contributions["a"])
    assert wb.explain_local(linear_pyfunc, rows.head(2)).method == "permutation"


class _TypeChecking:
    """A model that refuses rows whose column types differ from the ones it was trained on."""

    def __init__(self, dtypes: pd.Series) -> None:
        self.dtypes = dtypes

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        assert X.dtypes.equals(self.dtypes), f"got {X.dtypes.to_dict()}"
        return X["amount"].fillna(0).to_numpy() * (X["member"].to_numpy() + 1) + (X["region"] == "north")


def test_model_agnostic_path_feeds_the_model_its_own_column_types() -> None:
    rng = np.random.default_rng(4)
    n = 80
    data = pd.DataFrame({
        "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(100, 10, n)),
        "count": rng.integers(0, 9, n),
        "member": rng.random(n) < 0.5,
        "region": pd.Series(rng.choice(["north", "south", None], n), dtype=object),
        "since": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "tier": pd.Categorical(rng.choice(["gold", "silver"], n)),
    })
    model = _TypeChecking(data.dtypes)
    local = Explainer(background_size=30).fit(model, background=data).explain(data.head(8))
    _assert_additive(local)
    np.testing.assert_allclose(local.contributions[["count", "since", "tier"]], 0.0, atol=1e-12)
    assert local.data["region"].isna().sum() == data.head(8)["region"].isna().sum()


# -- global ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tree", "permutation"])
def test_global_importance_puts_the_dominant_feature_first(method) -> None:
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(400, 4)), columns=["w", "x", "y", "z"])
    target = 10 * X["x"] + 0.5 * X["z"] + rng.normal(0, 0.1, len(X))
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, target)
    explainer = Explainer(method=method, background_size=30).fit(model, background=X)
    result = explainer.explain_global(max_rows=60)
    assert result.method == method and result.output == "prediction" and result.n_rows == 60
    assert result.ranking[0] == "x"
    assert result.importance.loc[0, "share"] > 0.8
    assert list(result.importance["rank"]) == [1, 2, 3, 4]
    json.dumps(result.to_dict())
    dependence = result.dependence("x")
    assert np.corrcoef(dependence.values, dependence.contributions)[0, 1] > 0.9
    assert len(dependence.summary()) == 10


# -- live traffic ------------------------------------------------------------------------------


def _log_rows(folder: Path, frame: pd.DataFrame, chunk: int = 10) -> None:
    log = PredictionLog(folder)
    try:
        for start in range(0, len(frame), chunk):
            part = frame.iloc[start:start + chunk]
            log.append([LogRecord(
                request_id=f"r{start}", ts=time.time(), model_name="linear", model_version=None, protocol="v2",
                n_rows=len(part), latency_ms=1.0,
                inputs={"columns": list(part.columns), "data": part.to_numpy().tolist()},
                outputs={"predict": (2 * part["a"] + part["b"]).tolist()},
            )])
    finally:
        log.close()


def test_explain_shift_names_the_feature_that_moved_the_answers(linear_pyfunc, linear_data, tmp_path) -> None:
    reference = linear_data.iloc[:60]
    live = reference.assign(b=reference["b"] + 5.0)  # this week, b came in 5 higher
    _log_rows(tmp_path, live)

    explainer = Explainer().fit(linear_pyfunc)
    shift = wb.explain_shift(explainer, tmp_path, reference=reference)
    assert shift.top(1) == ["b"]
    assert shift.prediction_change == pytest.approx(5.0)
    changes = shift.table.set_index("feature")["mean_contribution_change"]
    assert changes["b"] == pytest.approx(5.0) and changes[["a", "c", "kind"]].abs().max() < 1e-9
    assert shift.prediction_change == pytest.approx(shift.base_value_change + changes.sum())
    assert "b (+5)" in shift.summary()
    json.dumps(shift.to_dict())
    assert "Importance shift" in shift._repr_html_()

    # Only the rows another check flagged: a mask over the window, or positions.
    flagged = np.zeros(len(live), dtype=bool)
    flagged[[3, 17, 42]] = True
    for rows in (flagged, [3, 17, 42]):
        local = wb.explain_live(explainer, tmp_path, rows=rows)
        np.testing.assert_allclose(local.data["b"], live["b"].iloc[[3, 17, 42]])
        _assert_additive(local)
    with pytest.raises(InvalidInputError, match="row mask has 2 entries for 60 rows"):
        wb.explain_live(explainer, tmp_path, rows=[True, False])


# -- results -----------------------------------------------------------------------------------


def test_results_have_frame_json_and_notebook_forms(registered_model, numeric_data) -> None:
    X, _ = numeric_data
    local = wb.explain_local(registered_model.uri, X.head(4))
    frame = local.to_frame()
    assert list(frame.columns) == ["target", "prediction", "base_value", *X.columns]
    assert len(frame) == 4
    body = json.loads(json.dumps(local.to_dict()))
    assert body["method"] == "tree" and len(body["rows"]) == 4
    assert set(body["rows"][0]["contributions"]) == set(X.columns)
    again = LocalExplanation.from_dict(body)
    np.testing.assert_allclose(again.contributions, local.contributions)
    np.testing.assert_allclose(again.predictions, local.predictions)
    assert again.targets == local.targets
    row = local.row(0)
    assert list(row.columns) == ["feature", "value", "contribution"]
    assert abs(row["contribution"].iloc[0]) == local.contributions.iloc[0].abs().max()
    assert "Local explanation" in local._repr_html_() and "<table" in local._repr_html_()
    picked = local.select([1, 3])
    np.testing.assert_allclose(picked.predictions, local.predictions[[1, 3]])


# -- errors ------------------------------------------------------------------------------------


class _Noisy:
    """A model whose answers change from call to call (e.g. dropout left on at inference)."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["a"].to_numpy() + self.rng.normal(0, 1, len(X))


def test_contributions_that_do_not_add_up_raise_or_come_back_flagged(linear_data) -> None:
    data = linear_data[["a", "b"]]
    with pytest.raises(ExplanationError, match="do not add up.*check_additivity=False"):
        Explainer(background_size=10).fit(_Noisy(), background=data).explain(data.head(5))
    flagged = Explainer(background_size=10, check_additivity=False).fit(_Noisy(), background=data).explain(data.head(5))
    assert not flagged.additive and flagged.additivity_error > flagged.additivity_tolerance
    assert "NOT ADDITIVE" in flagged._repr_html_()


def test_models_shap_cannot_explain_get_an_error_naming_the_options(numeric_data, tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    linear = LogisticRegression(max_iter=200).fit(X, y)
    with pytest.raises(ExplanationError, match="LogisticRegression.*method='permutation' or method='kernel'"):
        Explainer(method="tree").fit(linear, background=X)
    with pytest.raises(ExplanationError, match="needs a background sample.*training_data=X"):
        Explainer().fit(linear)
    with pytest.raises(InvalidInputError, match="method must be one of auto, tree, permutation, kernel"):
        Explainer(method="magic").fit(linear, background=X)  # type: ignore[arg-type]

    class Labels:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.where(frame["x0"] > 0, "yes", "no")

    with pytest.raises(ExplanationError, match="not numbers"):
        Explainer().fit(Labels(), background=X).explain(X.head(2))
    with pytest.raises(SchemaError, match=r"lacks input column\(s\) \['x5'\]"):
        Explainer().fit(linear, background=X).explain(X.drop(columns="x5").head(2))
    with pytest.raises(ExplanationError, match="not fitted"):
        Explainer().explain(X.head(2))


# -- the command line --------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "workbench"), "explain", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_explains_rows_and_global_importance(registered_model, numeric_data, tmp_path) -> None:
    X, _ = numeric_data
    csv = tmp_path / "rows.csv"
    X.head(5).to_csv(csv, index=False)
    result = _cli("models:/fixture-rf@champion", "--data", str(csv), "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["method"] == "tree" and body["output"] == "probability" and len(body["rows"]) == 5
    expected = wb.explain_local(registered_model.uri, X.head(5))
    np.testing.assert_allclose([r["prediction"] for r in body["rows"]], expected.predictions)
    np.testing.assert_allclose([r["contributions"]["x0"] for r in body["rows"]], expected.contributions["x0"])

    parquet = tmp_path / "rows.parquet"
    X.head(200).to_parquet(parquet)
    result = _cli(registered_model.uri, "--data", str(parquet), "--global")
    assert result.returncode == 0, result.stderr
    assert "mean |contribution| to the probability over 200 rows" in result.stdout
    assert "mean_abs_contribution" in result.stdout and "x0" in result.stdout

    bad = tmp_path / "rows.xlsx"
    bad.write_text("x")
    result = _cli(registered_model.uri, "--data", str(bad))
    assert result.returncode == 1 and "neither CSV (.csv) nor Parquet" in result.stderr


def test_cli_method_choices_are_the_explainers() -> None:
    from workbench.cli.explain import _METHODS

    assert _METHODS == METHODS
