"""scikit-learn's random forests and extra trees, predicted as scikit-learn predicts them with one job.

A forest's ``predict`` hands each tree to joblib, even with one job, and scikit-learn wraps every
tree's call so that its configuration and warning filters reach a worker process: it enters a
config context, saves the warning filters, resets them and adds each back, then restores it all.
For a batch of a few rows that bookkeeping is most of the forest's time (about 35 of 42 us per tree
for the serving benchmark's 50 trees, 16 rows). With one job there is no worker to reach: the trees
run one after another in the calling thread, whose configuration and filters are already in force.

:func:`exact_methods` gives the same computation without the bookkeeping: each tree's own
``predict`` or ``predict_proba`` (``check_input=False``, as the forest calls it), summed into one
float64 array in the forest's order, divided by the number of trees. The float operations and their
order are scikit-learn's own with one job, so the answers are the same bit for bit; the server also
checks that on the model's input example before it uses them (:meth:`ServedModel._learn_outputs`).

Only the exact classes are taken (a subclass may predict differently), with one job, one output for
classifiers, and a :class:`~sklearn.pipeline.Pipeline` whose last step is one of them and which
uses no metadata routing. Everything else is predicted by its own methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["exact_methods"]

Method = Callable[[Any], np.ndarray]


def exact_methods(estimator: Any) -> dict[str, Method]:
    """Faster, bit-identical stand-ins for an estimator's prediction methods, by method name.

    Empty when the estimator is not a one-job forest (or a pipeline ending in one), or when
    scikit-learn cannot be imported.
    """
    try:
        from sklearn.pipeline import Pipeline
    except ImportError:  # an XGBoost-only image
        return {}
    if type(estimator) is Pipeline:
        return _pipeline_methods(estimator)
    return _forest_methods(estimator)


def _forest_methods(forest: Any) -> dict[str, Method]:
    from sklearn.ensemble import (
        ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor,
    )
    from joblib import effective_n_jobs

    kind = type(forest)
    if kind not in (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor, ExtraTreesRegressor):
        return {}
    estimators = getattr(forest, "estimators_", None)
    if not estimators or effective_n_jobs(forest.n_jobs) != 1:
        return {}
    if kind in (RandomForestRegressor, ExtraTreesRegressor):
        return {"predict": lambda X: _mean_regression(forest, X)}
    if forest.n_outputs_ != 1:
        return {}

    def predict_proba(X: Any) -> np.ndarray:
        return _mean_proba(forest, X)

    def predict(X: Any) -> np.ndarray:
        return forest.classes_.take(np.argmax(_mean_proba(forest, X), axis=1), axis=0)

    def predict_log_proba(X: Any) -> np.ndarray:
        return np.log(_mean_proba(forest, X))

    return {"predict": predict, "predict_proba": predict_proba, "predict_log_proba": predict_log_proba}


def _mean_proba(forest: Any, X: Any) -> np.ndarray:
    """``ForestClassifier.predict_proba`` with one job and one output."""
    X = forest._validate_X_predict(X)
    proba = np.zeros((X.shape[0], forest.n_classes_), dtype=np.float64)
    for tree in forest.estimators_:
        proba += tree.predict_proba(X, check_input=False)
    proba /= len(forest.estimators_)
    return proba


def _mean_regression(forest: Any, X: Any) -> np.ndarray:
    """``ForestRegressor.predict`` with one job."""
    X = forest._validate_X_predict(X)
    shape = (X.shape[0], forest.n_outputs_) if forest.n_outputs_ > 1 else (X.shape[0],)
    y_hat = np.zeros(shape, dtype=np.float64)
    for tree in forest.estimators_:
        y_hat += tree.predict(X, check_input=False)
    y_hat /= len(forest.estimators_)
    return y_hat


def _pipeline_methods(pipeline: Any) -> dict[str, Method]:
    """``Pipeline.predict`` and friends without metadata routing: transform, then the last step's."""
    from sklearn import get_config

    if get_config().get("enable_metadata_routing") or not pipeline.steps:
        return {}
    final = _forest_methods(pipeline.steps[-1][1])
    if not final:
        return {}
    transforms = [step for _, step in pipeline.steps[:-1] if step is not None and step != "passthrough"]

    def through(method: Method) -> Method:
        return lambda X: method(_transform(transforms, X))

    return {name: through(method) for name, method in final.items()}


def _transform(transforms: Sequence[Any], X: Any) -> Any:
    for step in transforms:
        X = step.transform(X)
    return X
