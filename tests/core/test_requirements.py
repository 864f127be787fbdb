"""The requirements log_model writes are enough to load and serve the model, found without MLflow's
subprocess: a fresh process that may import only those distributions (and what they and
mlflow-skinny depend on) loads each model kind and answers exactly as the fitted model does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from xgboost import XGBClassifier

import workbench as wb
from support import real_table, real_table_pipeline

# In the child: any top-level module whose distributions are all outside the allowed set cannot be
# imported, as in an image that installed only the requirements.
_LOAD_WITH_ONLY = textwrap.dedent("""
    import importlib.metadata as md, json, re, sys
    allowed_roots, model_dir, rows_file, out_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
    def requires(name):
        try:
            specs = md.requires(name) or []
        except md.PackageNotFoundError:
            return []
        return [re.split(r"[<>=!~\\[ (;]", s, maxsplit=1)[0] for s in specs if "extra ==" not in s]
    allowed, pending = set(), [canon(n) for n in allowed_roots]
    while pending:
        name = pending.pop()
        if name not in allowed:
            allowed.add(name)
            pending += [canon(d) for d in requires(name)]
    import pandas as pd
    # The test's own transport of the rows, before the gate closes (pandas' strings may need pyarrow to
    # unpickle: what is imported by then stays importable).
    rows = pd.read_pickle(rows_file)
    # The path finder no longer sees the others: `import x` fails, importlib.util.find_spec("x")
    # answers None and sys.modules has no entry, as when x is not installed at all (a library that
    # looks for torch in sys.modules finds nothing).
    blocked = {top for top, dists in md.packages_distributions().items()
               if top not in sys.stdlib_module_names and top not in sys.modules
               and not {canon(d) for d in dists} & allowed}
    from importlib.machinery import PathFinder
    seen = PathFinder.find_spec
    PathFinder.find_spec = classmethod(
        lambda cls, name, path=None, target=None: None if path is None and name in blocked else seen(name, path, target))
    import mlflow.pyfunc
    # The flavor itself, as the workbench's server calls it once a request has the training dtypes
    # (MLflow's own schema enforcement refuses nullable integers with gaps).
    answer = mlflow.pyfunc.load_model(model_dir)._model_impl.predict(rows)
    json.dump({"predictions": [v.item() if hasattr(v, "item") else v for v in list(answer)]}, open(out_file, "w"))
""")


def _requirements(model_dir: Path) -> list[str]:
    return [line.split("==")[0] for line in (model_dir / "requirements.txt").read_text().split() if line]


def _kinds():
    X, y = make_classification(400, 8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f {i}" for i in range(8)])
    table, _, target = real_table()
    return {
        "forest": (RandomForestClassifier(20, random_state=0).fit(frame, y), frame),
        "xgboost": (XGBClassifier(n_estimators=20, max_depth=3).fit(frame, y), frame),
        "pipeline": (real_table_pipeline().fit(table, target), table),
    }


@pytest.mark.slow
def test_logged_requirements_alone_load_and_serve_each_model_kind(session_workspace, tmp_path: Path) -> None:
    for kind, (model, rows) in _kinds().items():
        with wb.start_run(experiment="requirements"):
            logged = wb.log_model(model, training_data=rows)
        model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.model_uri,
                                                             dst_path=str(tmp_path / kind)))
        names = _requirements(model_dir)
        assert names[0] == "mlflow" and {"pandas", "numpy"} <= set(names), names
        assert all("==" in line for line in (model_dir / "requirements.txt").read_text().split())
        head = rows.head(50)
        rows_file, out_file = tmp_path / f"{kind}.pkl", tmp_path / f"{kind}-out.json"
        head.to_pickle(rows_file)
        # mlflow-skinny, not mlflow: the image installs the skinny one (which needs none of the model's libraries).
        roots = ["mlflow-skinny", *names[1:]]
        done = subprocess.run([sys.executable, "-c", _LOAD_WITH_ONLY, json.dumps(roots), str(model_dir),
                               str(rows_file), str(out_file)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{kind}: {names}\n{done.stderr[-3000:]}"
        answer = json.loads(out_file.read_text())
        assert np.array_equal(np.asarray(answer["predictions"]), model.predict(head)), kind


def test_a_requirement_left_out_is_caught_by_the_gate(session_workspace, tmp_path: Path) -> None:
    """The check above can fail: without scikit-learn among the allowed roots, loading is refused."""
    model, rows = _kinds()["forest"]
    with wb.start_run(experiment="requirements"):
        logged = wb.log_model(model, training_data=rows)
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.model_uri, dst_path=str(tmp_path)))
    roots = ["mlflow-skinny", *(n for n in _requirements(model_dir)[1:] if n not in ("scikit-learn", "skops"))]
    rows_file, out_file = tmp_path / "rows.pkl", tmp_path / "out.json"
    rows.head(5).to_pickle(rows_file)
    done = subprocess.run([sys.executable, "-c", _LOAD_WITH_ONLY, json.dumps(roots), str(model_dir),
                           str(rows_file), str(out_file)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr and "sklearn" in done.stderr
