"""Models whose answers depend on which rows are predicted together (float32 networks), and tensor
models: served exactly, one request at a time, and logged under their training columns' names."""

from __future__ import annotations

import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

import workbench as wb
from tests.conftest import need
from workbench.predlog import recent_rows


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return pd.DataFrame(load_digits().data / 16, columns=[f"px{i}" for i in range(64)])


def float32_net():
    """A two-layer float32 network in numpy: a row's answer changes in its last bits with the number
    of rows multiplied at once (the math library sums in another order), as PyTorch's do."""
    import mlflow.pyfunc

    class Float32Net(mlflow.pyfunc.PythonModel):  # defined here: pickled by value, served elsewhere
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.w1 = rng.normal(size=(64, 32)).astype(np.float32)
            self.w2 = rng.normal(size=(32, 10)).astype(np.float32)

        def predict(self, context, model_input, params=None):
            x = np.asarray(model_input, dtype=np.float32)
            return np.tanh(x @ self.w1) @ self.w2

    return Float32Net()


def _post_together(url: str, bodies: list[dict]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: httpx.post(f"{url}/invocations", json=b, timeout=60), bodies))


def test_a_float32_network_is_answered_exactly_whatever_else_is_asked(digits, serve_model) -> None:
    net = float32_net()
    with wb.start_run(experiment="composition"):
        logged = wb.log_model(net, training_data=digits)  # found out: its answers depend on the batch
    # Requests held for company (300 ms) would be predicted as one batch of 12 rows.
    server = serve_model(logged.model_uri, env={"WORKBENCH_MAX_BATCH_WAIT_MS": "300"})
    parts = [digits.iloc[i:i + n] for i, n in zip((0, 1, 3, 4, 7, 8), (1, 2, 1, 3, 1, 4))]
    answers = _post_together(server.url, [{"dataframe_split": p.to_dict(orient="split")} for p in parts])

    for part, response in zip(parts, answers):
        assert response.status_code == 200, response.text
        got = np.asarray(response.json()["predictions"], dtype=np.float32)
        assert np.array_equal(got, net.predict(None, part)), "the answer depends on the other requests"
    metrics = httpx.get(f"{server.url}/metrics").text
    batches = [line for line in metrics.splitlines() if line.startswith("model_infer_batch_size_count")]
    assert batches and float(batches[0].split()[-1]) == len(parts)  # one request per prediction


def test_a_batch_invariant_model_is_left_unmarked_and_a_declaration_is_kept(digits) -> None:
    from sklearn.linear_model import LogisticRegression
    from workbench.serving.flavors import read_mlmodel
    from workbench.registry import local_model_folder

    labels = (digits["px20"] > 0.5).astype(int).rename("bright")
    model = LogisticRegression(max_iter=500).fit(digits, labels)
    with wb.start_run(experiment="composition"):
        found = wb.log_model(model, training_data=digits, training_labels=labels)
        declared = wb.log_model(model, training_data=digits, batch_invariant=False, name="declared")
    assert "metadata" not in read_mlmodel(local_model_folder(found.model_uri, "/nonexistent"))
    assert read_mlmodel(local_model_folder(declared.model_uri, "/nonexistent"))["metadata"] == {
        "workbench_batch_invariant": False}


def test_tensor_requests_are_logged_under_the_profile_columns(digits, serve_model) -> None:
    net = float32_net()
    tensors = digits.to_numpy(dtype=np.float32)
    with wb.start_run(experiment="composition"):
        logged = wb.log_model(net, training_data=digits, input_example=tensors[:5],
                              signature=infer_signature(tensors[:5], net.predict(None, tensors[:5])))
    server = serve_model(logged.model_uri, args=("--name", "net"))
    clean = digits.sample(300, random_state=1)
    shifted = clean.assign(px20=clean["px20"] + 0.4)
    for rows in (clean, shifted):
        body = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
                            "data": rows.to_numpy(np.float32).ravel().tolist()}]}
        response = httpx.post(f"{server.url}/v2/models/net/infer", json=body, timeout=60)
        assert response.status_code == 200, response.text

    logged_rows = recent_rows(str(server.log_dir), 600).frame
    assert [c for c in logged_rows.columns if c.startswith(("px", "input-"))] == list(digits.columns)
    calm = wb.detect_drift(logged.model_uri, logged_rows.iloc[:300])
    assert not calm.drifted_features and not calm.drifted
    assert "px20" in wb.detect_drift(logged.model_uri, logged_rows.iloc[300:]).drifted_features


def test_a_pytorch_network_logs_with_defaults_and_is_served_exactly(digits, serve_model) -> None:
    need(importlib.util.find_spec("torch") is not None, "torch is not installed")
    import torch

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    with wb.start_run(experiment="composition"):
        logged = wb.log_model(network, training_data=digits)
    server = serve_model(logged.model_uri, args=("--name", "net"))
    rows = np.ascontiguousarray(digits.iloc[:7].to_numpy(np.float32))  # the tensor as a client sends it
    body = {"inputs": [{"name": "x", "shape": [7, 64], "datatype": "FP32", "data": rows.ravel().tolist()}]}
    response = httpx.post(f"{server.url}/v2/models/net/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    expected = wb.load_model(logged.model_uri).predict(rows)
    with torch.no_grad():
        assert np.array_equal(network(torch.from_numpy(rows)).numpy(), expected)
    answer = response.json()["outputs"][0]
    assert np.array_equal(np.asarray(answer["data"], dtype=np.float32).reshape(answer["shape"]), expected)
    assert list(recent_rows(str(server.log_dir), 7).frame.filter(like="px").columns) == list(digits.columns)
    assert json.loads(mlflow.models.Model.load(logged.model_uri).signature.to_dict()["inputs"])[0]["type"] == "tensor"
