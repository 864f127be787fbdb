"""Forests are served through stand-ins that skip joblib's per-tree bookkeeping and answer bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier, RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import workbench as wb
from support import TREE_COLUMNS, real_table, real_table_pipeline
from workbench.serving import model as served_module
from workbench.serving.ensembles import exact_methods
from workbench.serving.model import ServedModel, _identical as _same


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return real_table(600)


def _forests(table) -> dict[str, tuple[object, pd.DataFrame]]:
    features, affairs, cheated = table
    numbers = features[[c for c in TREE_COLUMNS if features[c].dtype.kind in "fiub"]].astype("float64")
    labels = np.where(cheated == 1, "cheated", "faithful")
    three = pd.cut(affairs, [-1, 0, 1, np.inf], labels=False)
    on_table = real_table_pipeline()
    on_table.steps[-1] = ("forest", RandomForestClassifier(n_estimators=15, random_state=0))
    return {
        "forest with gaps": (RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0).fit(numbers, cheated),
                             numbers),
        "extra trees, text labels": (ExtraTreesClassifier(n_estimators=20, random_state=0)
                                     .fit(numbers.fillna(0), labels), numbers.fillna(0)),
        "three classes": (RandomForestClassifier(n_estimators=15, random_state=1).fit(numbers, three), numbers),
        "regression": (RandomForestRegressor(n_estimators=15, random_state=0).fit(numbers, affairs), numbers),
        "two targets": (ExtraTreesRegressor(n_estimators=10, random_state=0)
                        .fit(numbers.fillna(0), np.c_[affairs, cheated]), numbers.fillna(0)),
        "pipeline, real table": (on_table.fit(features, cheated), features),
        "scaled pipeline": (make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0))
                            .fit(numbers, cheated), numbers),
    }


def test_forests_answer_bit_for_bit_as_scikit_learn_with_one_job(table) -> None:
    for kind, (estimator, X) in _forests(table).items():
        methods = exact_methods(estimator)
        is_classifier = hasattr(estimator, "predict_proba")
        assert sorted(methods) == (["predict", "predict_log_proba", "predict_proba"] if is_classifier
                                   else ["predict"]), kind
        for rows in (X.head(1), X.iloc[5:21], X):
            for name, method in methods.items():
                assert _same(method(rows), getattr(estimator, name)(rows)), (kind, name, len(rows))


def test_what_is_not_a_one_job_forest_keeps_its_own_methods(table) -> None:
    features, _, cheated = table
    X = features[["age", "marriage share", "educ"]]

    class Calibrated(RandomForestClassifier):
        def predict_proba(self, X):
            return super().predict_proba(X) ** 2

    two_targets = np.c_[cheated, 1 - cheated]
    assert exact_methods(RandomForestClassifier(n_estimators=4, n_jobs=2).fit(X, cheated)) == {}
    assert exact_methods(Calibrated(n_estimators=4).fit(X, cheated)) == {}
    assert exact_methods(GradientBoostingClassifier(n_estimators=4).fit(X, cheated)) == {}
    assert exact_methods(RandomForestClassifier(n_estimators=4).fit(X, two_targets)) == {}
    assert exact_methods(RandomForestClassifier(n_estimators=4)) == {}  # not fitted


def test_the_server_uses_a_stand_in_only_where_it_gave_the_models_answer(registered_model, numeric_data,
                                                                        monkeypatch) -> None:
    X, _ = numeric_data
    own = wb.load_model(registered_model.uri)
    served = ServedModel.load(registered_model.uri)
    assert sorted(served.exact) == ["predict", "predict_log_proba", "predict_proba"]
    batch = served.to_batch({c: X[c].head(40).tolist() for c in X.columns})
    (prediction,) = served.predict([batch], ("predict", "predict_proba"))
    assert _same(prediction.outputs["predict"], own.predict(X.head(40)))
    assert _same(prediction.outputs["predict_proba"], served.estimator.predict_proba(X.head(40)))

    # A stand-in that answers otherwise on the input example is never used.
    def wrong(estimator):
        right = exact_methods(estimator)
        return {**right, "predict_proba": lambda rows: right["predict_proba"](rows)[:, ::-1]}

    monkeypatch.setattr(served_module, "exact_methods", wrong)
    checked = ServedModel.load(registered_model.uri)
    assert sorted(checked.exact) == ["predict", "predict_log_proba"]
    (prediction,) = checked.predict([batch], ("predict_proba",))
    assert _same(prediction.outputs["predict_proba"], served.estimator.predict_proba(X.head(40)))
