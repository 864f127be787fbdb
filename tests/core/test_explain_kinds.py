"""Explanations of model kinds beyond scikit-learn classifiers: classifiers that answer with labels
(CatBoost), and isolation forests, explained by SHAP's TreeExplainer."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import shap

import workbench as wb
from tests.conftest import need
from tests.support import real_table
from workbench.explain import Explainer


@pytest.fixture(scope="module")
def table():
    features, _, _ = real_table(1200)
    return features


@pytest.fixture(scope="module")
def catboost_version(table):
    """A CatBoost classifier answering husbands' occupations as words, with a category input and
    gaps in a numeric one, logged and registered with its profile."""
    need(importlib.util.find_spec("catboost") is not None, "catboost is not installed")
    from catboost import CatBoostClassifier

    known = table["husband job"].notna()
    X = table.loc[known, ["rate marriage", "age", "marriage share", "children", "educ", "occupation"]]
    X = X.reset_index(drop=True)
    y = table.loc[known, "husband job"].astype(str).reset_index(drop=True).rename("husband job")
    model = CatBoostClassifier(iterations=40, depth=4, verbose=0, random_seed=0, thread_count=1, allow_writing_files=False,
                               cat_features=["occupation"]).fit(X, y)
    with wb.start_run(experiment="explain-kinds"):
        logged = wb.log_model(model, training_data=X, training_labels=y)
    return wb.register(logged, "explain-catboost"), model, X


def test_a_classifier_answering_labels_is_explained_per_class(catboost_version) -> None:
    version, model, X = catboost_version
    rows = X.iloc[[3, 40, 300]]
    explainer = Explainer().fit(version.uri)
    explanation = explainer.explain(rows)

    assert explanation.method == "tree"
    # Each row's explanation is for the class the model answers, named as the model names it.
    assert list(explanation.targets) == list(np.ravel(model.predict(rows)))
    scores = model.predict(rows, prediction_type="RawFormulaVal")
    column = [list(model.classes_).index(t) for t in explanation.targets]
    assert explanation.output == "log_odds"
    np.testing.assert_allclose(explanation.predictions, scores[np.arange(3), column], rtol=1e-9)
    np.testing.assert_allclose(explanation.contributions.sum(axis=1) + explanation.base_values,
                               explanation.predictions, atol=1e-6)

    farmer = explainer.explain(rows, target="farmer")
    assert farmer.targets == ("farmer",) * 3
    assert len(set(farmer.base_values)) == 1  # one base value per class, whatever the row
    direct = shap.TreeExplainer(model).shap_values(rows)[:, :, list(model.classes_).index("farmer")]
    np.testing.assert_allclose(farmer.contributions.to_numpy(), direct, atol=1e-9)

    # In probabilities (the model-agnostic explainer calls predict_proba): the same classes.
    probability = Explainer(method="permutation", max_evals=2 * X.shape[1] + 1).fit(version.uri).explain(rows)
    assert probability.output == "probability" and probability.targets == explanation.targets
    np.testing.assert_allclose(probability.predictions, model.predict_proba(rows)[np.arange(3), column], rtol=1e-12)
    np.testing.assert_allclose(probability.contributions.sum(axis=1) + probability.base_values,
                               probability.predictions, atol=1e-9)


def test_an_isolation_forest_is_explained_by_its_trees(table) -> None:
    from sklearn.ensemble import IsolationForest

    numbers = table.select_dtypes("number")  # nullable integers with gaps among them
    forest = IsolationForest(n_estimators=50, random_state=0).fit(numbers)
    with wb.start_run(experiment="explain-kinds"):
        logged = wb.log_model(forest, training_data=numbers)
    explainer = Explainer().fit(logged.model_uri)
    explanation = explainer.explain(numbers.head(3))

    assert explainer.method_ == "tree" and explanation.output == "path_length"
    # The mean path length is what the anomaly score is made of: score = -2 ** (-length / c).
    lengths = explanation.predictions
    assert np.all(np.diff(forest.score_samples(numbers.head(3))) * np.diff(lengths) > 0)
    np.testing.assert_allclose(explanation.contributions.sum(axis=1) + explanation.base_values, lengths, atol=1e-9)
