"""What of the training data a build context (and so an image) carries: none by default, a bounded
sample on request; the model served from that folder, as the image serves it, still explains."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from support import real_table, real_table_pipeline

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.packaging import prepare_context
from workbench.tables import json_values

NAME = "packaging-rows"


def _training_rows(credit_data) -> set[tuple]:
    X, y = credit_data
    return set(map(tuple, X.itertuples(index=False))) | set(map(tuple, X.assign(label=y).itertuples(index=False)))


def _example_rows(model_dir: Path) -> list[tuple]:
    example = json.loads((model_dir / "input_example.json").read_text())
    serving = json.loads((model_dir / "serving_input_example.json").read_text())["dataframe_split"]
    return [tuple(r) for r in example["data"]] + [tuple(r) for r in serving["data"]]


def test_a_build_context_carries_no_training_rows_by_default(credit_pipeline, credit_data, tmp_path) -> None:
    ctx = prepare_context(credit_pipeline.uri, tmp_path / "ctx")
    model_dir = ctx.path / "model"
    sample = pd.read_parquet(model_dir / "reference_profile" / "sample.parquet")
    X, _ = credit_data
    assert list(sample.columns) == list(X.columns) and len(sample) == 100  # features only, no label
    training = _training_rows(credit_data)
    assert not training & set(map(tuple, sample.itertuples(index=False)))
    assert not training & set(_example_rows(model_dir))
    assert set(sample["region"]) <= set(X["region"])  # drawn from the summaries: real categories
    assert X["f0"].min() <= sample["f0"].min() and sample["f0"].max() <= X["f0"].max()
    assert ctx.labels["io.workbench.model.training_rows"] == "0"
    assert ctx.training_rows.describe() == "no training rows (100 rows drawn from per-feature summaries)"
    assert 'io.workbench.model.training_rows="0"' in ctx.dockerfile.read_text()


def test_the_packaged_model_still_serves_and_explains_without_training_rows(
    credit_pipeline, credit_data, serve_model, tmp_path
) -> None:
    """The image runs `workbench serve /opt/model` on the context's model folder: the same here."""
    ctx = prepare_context(credit_pipeline.uri, tmp_path / "ctx")
    server = serve_model(str(ctx.path / "model"), args=("--name", NAME))
    X, _ = credit_data
    rows = X.iloc[:4]
    payload = {"inputs": [{"name": c, "shape": [4], "datatype": "FP64" if rows[c].dtype == "float64" else "BYTES",
                           "data": rows[c].tolist()} for c in rows]}
    expected = wb.load_model(credit_pipeline.uri).predict(rows).tolist()
    predicted = httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=payload, timeout=60)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["outputs"][0]["data"] == expected
    metadata = httpx.get(f"{server.url}/v2/models/{NAME}").json()
    # learnt at start: the answer, then the classifier's probabilities and scores (named by the classes)
    assert metadata["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert [o["name"] for o in metadata["outputs"][1:]] == ["predict_proba", "predict_log_proba"]
    explained = httpx.post(f"{server.url}/v2/models/{NAME}/explain", json=payload, timeout=180)
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert len(body["rows"]) == 4 and set(body["features"]) == set(X.columns)
    assert body["additivity_error"] is None or body["additivity_error"] <= body["additivity_tolerance"]


def test_include_sample_keeps_a_bounded_random_sample(credit_pipeline, credit_data, tmp_path) -> None:
    ctx = prepare_context(credit_pipeline.uri, tmp_path / "ctx", include_sample=True, sample_rows=50)
    sample = pd.read_parquet(ctx.path / "model" / "reference_profile" / "sample.parquet")
    assert len(sample) == 50
    assert set(map(tuple, sample.itertuples(index=False))) <= _training_rows(credit_data)
    assert ctx.labels["io.workbench.model.training_rows"] == "50"
    assert ctx.training_rows.describe() == "50 training rows (a random sample, kept on request)"
    with pytest.raises(InvalidInputError, match="between 1 and 10000"):
        prepare_context(credit_pipeline.uri, tmp_path / "too-many", include_sample=True, sample_rows=20_000)
    assert not (tmp_path / "too-many").exists()  # nothing half-written


def test_a_real_tables_background_keeps_every_training_dtype_and_still_explains(serve_model, tmp_path) -> None:
    """Nullable integers, categories, datetimes with a zone: the drawn rows have the training dtypes,
    so the image's server restores, predicts and explains them like real requests."""
    features, _, cheated = real_table()
    model = real_table_pipeline().fit(features, cheated)
    with wb.start_run(experiment="packaging-tests"):
        logged = wb.log_model(model, training_data=features, training_labels=cheated)
    version = wb.register(logged, "packaging-real-table")
    ctx = prepare_context(version.uri, tmp_path / "ctx")
    sample = pd.read_parquet(ctx.path / "model" / "reference_profile" / "sample.parquet")
    typed = [c for c in features if features[c].dtype != object]  # Parquet reads object text back as str
    assert sample[typed].dtypes.to_dict() == features[typed].dtypes.to_dict()
    server = serve_model(str(ctx.path / "model"), args=("--name", "real"))
    metadata = httpx.get(f"{server.url}/v2/models/real").json()
    assert metadata["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [-1]}  # the example predicted
    rows = features.sample(5, random_state=1)
    payload = {"inputs": [{"name": c, "shape": [5], "datatype": i["datatype"], "data": json_values(rows[c])}
                          for c, i in zip(rows, metadata["inputs"], strict=True)]}
    explained = httpx.post(f"{server.url}/v2/models/real/explain", json=payload, timeout=300)
    assert explained.status_code == 200, explained.text
    assert explained.json()["features"] == list(features.columns)
    predicted = httpx.post(f"{server.url}/v2/models/real/infer", json=payload, timeout=60).json()
    assert predicted["outputs"][0]["data"] == model.predict(rows).tolist()
