"""Explanation benchmark: workbench.explain side by side with SHAP called directly on the same model.

Cases (models trained on 5,000 rows of 20 float features: the serving benchmark's data, normal
features and a label from three of them):

- tree: the serving benchmark's RandomForest (50 trees, max depth 8), 1,000 rows explained with
  TreeExplainer; and the same forest grown on ``make_classification`` data with 2 informative
  features, whose trees have about half the leaves (TreeSHAP's cost grows with the leaves);
- tree, pipeline: 2 one-hot encoded categorical columns + the 20 floats in front of the same forest
  (the workbench explains the transformed columns and sums the one-hot ones back per input; SHAP
  directly gets the transformed rows, so the ratio shows the cost of that bookkeeping);
- permutation: the same forest, 100 rows, background 100, the default budget (10 antithetic
  permutations = 410 evaluations per row) and a small one (1 permutation = 41);
- permutation, logistic regression: a cheap model, so the ratio shows the workbench's own overhead
  (encoding of the perturbed rows, the extra call that checks additivity);
- kernel: logistic regression, 20 rows, background 50, 500 samples per row.

"ours" is ``Explainer.explain`` on an already fitted explainer (fitting, i.e. loading the model and
building SHAP's explainer, is timed apart); "shap" is the same SHAP explainer class called directly
with the same settings. Medians of repeated runs, alternating which side goes first; each side is
warmed up once (numba compiles SHAP's maskers on first use: a few seconds per process).

Run: .venv/bin/python benchmarks/explain/run.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

from _common import save, table  # noqa: E402


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(ours: Callable[[], Any], direct: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds of each side over ``repeats`` runs, alternating the order."""
    ours(), direct()  # warm-up
    a, b = [], []
    for i in range(repeats):
        if i % 2:
            b.append(timed(direct))
            a.append(timed(ours))
        else:
            a.append(timed(ours))
            b.append(timed(direct))
    return statistics.median(a), statistics.median(b)


COLD = """
import json, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
X = pd.DataFrame(np.random.default_rng(0).normal(size=(500, 20)))
X.columns = [f"f{i:02d}" for i in X.columns]
model = LogisticRegression().fit(X, X["f00"] > 0)
start = time.perf_counter()
from workbench.explain import Explainer
explainer = Explainer(method="permutation").fit(model, background=X)
imported = time.perf_counter()
explainer.explain(X.head(1))
first = time.perf_counter()
explainer.explain(X.head(1))
second = time.perf_counter()
print(json.dumps({"import_and_fit_s": imported - start, "first_row_s": first - imported,
                  "next_row_s": second - first}))
"""


def cold_start() -> dict[str, float]:
    """Import + fit, then the first and second one-row permutation explanation, in a new process
    (numba compiles SHAP's maskers on the first one)."""
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True).stdout
    return {k: float(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import numpy as np
    import pandas as pd
    import shap
    from sklearn.compose import make_column_transformer
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from workbench.explain import Explainer

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, 20)), columns=[f"f{i:02d}" for i in range(20)])
    y = (X["f00"] + X["f01"] - X["f02"] > 0).astype(int)
    X_sparse, y_sparse = make_classification(n_samples=5000, n_features=20, n_informative=2, random_state=0)
    X_sparse = pd.DataFrame(X_sparse, columns=X.columns)
    mixed = X.assign(region=rng.choice(["north", "south", "east", "west"], len(X)),
                     tier=rng.choice(["gold", "silver", "bronze"], len(X)))
    background = X.sample(100, random_state=1)
    forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y)
    sparse_forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X_sparse, y_sparse)
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["region", "tier"]), remainder="passthrough"),
        RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0),
    ).fit(mixed, y)
    linear = LogisticRegression(max_iter=1000).fit(X, y)
    results: list[dict[str, Any]] = []

    def record(case: str, rows: int, fit_s: float, ours_s: float, shap_s: float, **extra: Any) -> None:
        results.append({"case": case, "rows": rows, "fit_s": fit_s, "ours_s": ours_s, "shap_s": shap_s,
                        "ratio": ours_s / shap_s, "ms_per_row": 1000 * ours_s / rows, **extra})
        print(f"  {case}: ours {ours_s:.3f} s, shap {shap_s:.3f} s", flush=True)

    # -- tree --------------------------------------------------------------------------------------
    def leaves(model: Any) -> float:
        return float(np.mean([tree.tree_.n_leaves for tree in model.estimators_]))

    for case, model, data in (("tree: forest", forest, X), ("tree: forest, sparser trees", sparse_forest, X_sparse)):
        rows = data.iloc[1000:2000]
        fit_s = timed(lambda: Explainer().fit(model, background=data.iloc[:100]))
        explainer = Explainer().fit(model, background=data.iloc[:100])
        direct_tree = shap.TreeExplainer(model)
        ours, direct = side_by_side(lambda: explainer.explain(rows),
                                    lambda: direct_tree.shap_values(rows, check_additivity=False), args.repeats)
        record(case, len(rows), fit_s, ours, direct, method=explainer.method_, leaves_per_tree=leaves(model))

    mixed_rows = mixed.iloc[1000:2000]
    mixed_background = mixed.sample(100, random_state=1)
    fit_s = timed(lambda: Explainer().fit(pipeline, background=mixed_background))
    explainer = Explainer().fit(pipeline, background=mixed_background)
    direct_pipe = shap.TreeExplainer(pipeline[-1])
    ours, direct = side_by_side(
        lambda: explainer.explain(mixed_rows),
        lambda: direct_pipe.shap_values(pipeline[:-1].transform(mixed_rows), check_additivity=False),
        args.repeats,
    )
    record("tree: one-hot pipeline + forest", len(mixed_rows), fit_s, ours, direct, method=explainer.method_)

    # -- model-agnostic ------------------------------------------------------------------------------
    def permutation_case(case: str, model: Any, n_rows: int, max_evals: int, repeats: int) -> None:
        explain_rows = X.iloc[2000:2000 + n_rows]
        fit_s = timed(lambda: Explainer(method="permutation", max_evals=max_evals).fit(model, background=background))
        ours_explainer = Explainer(method="permutation", max_evals=max_evals).fit(model, background=background)

        def f(values: np.ndarray) -> np.ndarray:
            return model.predict_proba(pd.DataFrame(values, columns=X.columns))

        def direct() -> Any:
            masker = shap.maskers.Independent(ours_explainer.background_.to_numpy(), max_samples=100)
            return shap.PermutationExplainer(f, masker, seed=0)(
                explain_rows.to_numpy(), max_evals=max_evals, batch_size=max_evals, silent=True)

        ours, direct_s = side_by_side(lambda: ours_explainer.explain(explain_rows), direct, repeats)
        record(case, n_rows, fit_s, ours, direct_s, method="permutation", max_evals=max_evals, background=100)

    n_features = X.shape[1]
    permutation_case("permutation: forest, default budget", forest, 100, 10 * (2 * n_features + 1),
                     max(1, args.repeats // 2))
    permutation_case("permutation: forest, 1 permutation", forest, 100, 2 * n_features + 1, args.repeats)
    permutation_case("permutation: logistic regression", linear, 200, 10 * (2 * n_features + 1), args.repeats)

    kernel_rows = X.iloc[3000:3020]
    kernel_explainer = Explainer(method="kernel", background_size=50, max_evals=500).fit(linear, background=X)

    def kernel_direct() -> Any:
        def f(values: np.ndarray) -> np.ndarray:
            return linear.predict_proba(pd.DataFrame(values, columns=X.columns))

        explainer = shap.KernelExplainer(f, kernel_explainer.background_.to_numpy(), seed=0)
        return explainer.shap_values(kernel_rows.to_numpy(), nsamples=500, silent=True)

    ours, direct = side_by_side(lambda: kernel_explainer.explain(kernel_rows), kernel_direct, args.repeats)
    record("kernel: logistic regression", len(kernel_rows), 0.0, ours, direct, method="kernel", max_evals=500,
           background=50)

    print()
    print(table(results, ["case", "rows", "fit_s", "ours_s", "shap_s", "ratio", "ms_per_row", "leaves_per_tree"]))
    cold = cold_start()
    print("\nfirst explanation in a fresh process (what a server's first explain request pays):")
    print(table([cold], list(cold)))
    path = save("explain", {"repeats": args.repeats, "shap": shap.__version__, "results": results,
                            "cold_start": cold})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
