"""The inference server over HTTP, as real server processes: every route, datatype and bad input."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import workbench as wb
from support import peak_rss_mb
from workbench.predlog import read_predictions

# -- models ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(11)
    n = 400
    frame = pd.DataFrame({
        "amount": rng.normal(100, 20, n),
        "count": rng.integers(0, 50, n).astype("int64"),
        "ratio": rng.random(n).astype("float32"),
        "member": rng.random(n) < 0.3,
        "region": rng.choice(["north", "south", "east"], n),
    })
    label = pd.Series((frame["amount"] > 100) ^ frame["member"], name="label").astype(int)
    return frame, label


@pytest.fixture(scope="module")
def mixed_model(mixed_data) -> wb.ModelVersion:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = mixed_data
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="error"), ["region"]), remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    with wb.start_run(experiment="serving-tests"):
        logged = wb.log_model(model, training_data=X, training_labels=y)
    return wb.register(logged, "serving-mixed")


def _code_model(tmp: Path, name: str, body: str, signature=None, input_example=None) -> str:
    """Log a pyfunc model from code (the server process imports it from the logged file)."""
    path = tmp / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    with wb.start_run(experiment="serving-tests"):
        logged = wb.log_model(str(path), flavor="pyfunc", name=name, signature=signature,
                              input_example=input_example)
    return logged.model_uri


IDENTITY = """
    import mlflow.pyfunc

    class Identity(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    mlflow.models.set_model(Identity())
"""

SLOW = """
    import time
    import mlflow.pyfunc

    class Slow(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            time.sleep(0.25)
            return model_input["x"] * 2

    mlflow.models.set_model(Slow())
"""


@pytest.fixture(scope="module")
def rf_server(registered_model, serve_shared):
    return serve_shared(f"models:/{registered_model.name}@champion")


@pytest.fixture(scope="module")
def mixed_server(mixed_model, serve_shared):
    return serve_shared(mixed_model.uri, env={"WORKBENCH_MAX_BODY_BYTES": "20000"})


def _local_model(version: wb.ModelVersion):
    return wb.load_model(version.uri)


# -- health and metadata -----------------------------------------------------------------------


def test_health_and_server_metadata(rf_server) -> None:
    assert httpx.get(f"{rf_server.url}/v2/health/live").json() == {"live": True}
    ready = httpx.get(f"{rf_server.url}/v2/health/ready").json()
    assert ready["ready"] is True and ready["log"]["ok"] is True and ready["log"]["state"] == "sqlite"
    meta = httpx.get(f"{rf_server.url}/v2").json()
    assert meta["name"] == "workbench" and "extensions" in meta
    assert httpx.get(f"{rf_server.url}/ping").status_code == 200


def test_model_metadata_comes_from_the_signature(rf_server, registered_model) -> None:
    for path in ("/v2/models/fixture-rf", f"/v2/models/fixture-rf/versions/{registered_model.version}"):
        meta = httpx.get(rf_server.url + path).json()
        assert meta["name"] == "fixture-rf"
        assert meta["versions"] == [registered_model.version]
        assert meta["inputs"] == [{"name": f"x{i}", "datatype": "FP64", "shape": [-1]} for i in range(6)]
        assert meta["outputs"] == [  # the classifier's probabilities too, with its classes
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2], "parameters": {"columns": [0, 1]}},
            {"name": "predict_log_proba", "datatype": "FP64", "shape": [-1, 2], "parameters": {"columns": [0, 1]}},
        ]
        assert httpx.get(rf_server.url + path + "/ready").json() == {"name": "fixture-rf", "ready": True}


def test_unknown_model_or_version_is_404_with_the_served_name(rf_server) -> None:
    response = httpx.get(f"{rf_server.url}/v2/models/other")
    assert response.status_code == 404
    assert response.json() == {"error": "model 'other' is not served here; this server serves 'fixture-rf'"}
    response = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/versions/99/infer", json={"inputs": []})
    assert response.status_code == 404 and "version '99' is not served here" in response.json()["error"]
    assert httpx.get(f"{rf_server.url}/nowhere").status_code == 404


# -- Open Inference Protocol inference ---------------------------------------------------------


def test_infer_column_shaped_and_row_shaped(rf_server, numeric_data, registered_model) -> None:
    X, _ = numeric_data
    rows = X.head(5)
    expected = _local_model(registered_model).predict(rows).tolist()
    by_column = {
        "id": "req-1",
        "inputs": [{"name": c, "shape": [5], "datatype": "FP64", "data": rows[c].tolist()} for c in rows],
    }
    response = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/infer", json=by_column)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1" and body["model_name"] == "fixture-rf"
    assert body["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [5], "data": expected}]
    assert response.headers["x-request-id"] == "req-1"

    by_row = {"inputs": [{"name": "input-0", "shape": [5, 6], "datatype": "FP32",
                          "data": rows.to_numpy().tolist()}]}
    body = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/versions/1/infer", json=by_row).json()
    assert body["outputs"][0]["data"] == expected
    assert len(body["id"]) == 32  # generated when the client sends none


def test_requested_outputs_include_class_probabilities(rf_server, numeric_data, registered_model) -> None:
    X, _ = numeric_data
    rows = X.head(3)
    request = {
        "inputs": [{"name": "x", "shape": [3, 6], "datatype": "FP64", "data": rows.to_numpy().ravel().tolist()}],
        "outputs": [{"name": "predict_proba"}],
    }
    body = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/infer", json=request).json()
    (out,) = body["outputs"]
    assert out["name"] == "predict_proba" and out["shape"] == [3, 2] and out["datatype"] == "FP64"
    expected = _local_model(registered_model).get_raw_model().predict_proba(rows)
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 2), expected)

    request["outputs"] = [{"name": "nonsense"}]
    response = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/infer", json=request)
    assert response.status_code == 400
    assert "unknown output 'nonsense'" in response.json()["error"] and "predict_proba" in response.json()["error"]


def test_mixed_column_types(mixed_server, mixed_data, mixed_model) -> None:
    X, _ = mixed_data
    rows = X.head(4)
    request = {"inputs": [
        {"name": "amount", "shape": [4], "datatype": "FP64", "data": rows["amount"].tolist()},
        {"name": "count", "shape": [4, 1], "datatype": "INT32", "data": [[int(v)] for v in rows["count"]]},
        {"name": "ratio", "shape": [4], "datatype": "FP16", "data": rows["ratio"].astype(float).tolist()},
        {"name": "member", "shape": [4], "datatype": "BOOL", "data": rows["member"].tolist()},
        {"name": "region", "shape": [4], "datatype": "BYTES", "data": rows["region"].tolist()},
    ]}
    response = httpx.post(f"{mixed_server.url}/v2/models/serving-mixed/infer", json=request)
    assert response.status_code == 200, response.text
    expected = _local_model(mixed_model).predict(rows).tolist()
    assert response.json()["outputs"][0]["data"] == expected


@pytest.mark.parametrize("datatype,values", [
    ("BOOL", [[True, False], [False, True]]),
    ("UINT8", [[0, 255], [7, 8]]),
    ("UINT16", [[0, 65535], [1, 2]]),
    ("UINT32", [[0, 4294967295], [1, 2]]),
    ("UINT64", [[0, 2**63], [1, 2]]),
    ("INT8", [[-128, 127], [0, 1]]),
    ("INT16", [[-32768, 32767], [0, 1]]),
    ("INT32", [[-2**31, 2**31 - 1], [0, 1]]),
    ("INT64", [[-2**63, 2**63 - 1], [0, 1]]),
    ("FP16", [[0.5, -1.25], [2.0, 3.5]]),
    ("FP32", [[0.25, 1e30], [2.0, -3.5]]),
    ("FP64", [[1e-300, 1e300], [2.5, -3.5]]),
    ("BYTES", [["a", "β"], ["c", ""]]),
])
def test_every_v2_datatype_round_trips(identity_server, datatype: str, values: list) -> None:
    request = {"inputs": [{"name": "t", "shape": [2, 2], "datatype": datatype, "data": values}]}
    response = httpx.post(f"{identity_server.url}/v2/models/identity/infer", json=request)
    assert response.status_code == 200, response.text
    (out,) = response.json()["outputs"]
    assert out["datatype"] == datatype
    assert out["shape"] == [2, 2]
    assert out["data"] == [v for row in values for v in row]


def _binary_request(inputs: list[tuple[str, str, list[int], bytes]], **extra) -> tuple[bytes, dict[str, str]]:
    """A V2 request in the binary tensor data extension: its body and headers."""
    header = json.dumps({"inputs": [{"name": n, "datatype": d, "shape": shape,
                                     "parameters": {"binary_data_size": len(raw)}} for n, d, shape, raw in inputs],
                         **extra}).encode()
    return header + b"".join(raw for *_, raw in inputs), {"inference-header-content-length": str(len(header))}


def _bytes_elements(values: list[str]) -> bytes:
    return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)


@pytest.mark.parametrize("datatype,values", [
    ("BOOL", [[True, False], [False, True]]),
    ("UINT8", [[0, 255], [1, 2]]),
    ("UINT64", [[0, 2**63], [1, 2]]),
    ("INT16", [[-32768, 32767], [0, 1]]),
    ("INT64", [[-2**63, 2**63 - 1], [0, 1]]),
    ("FP16", [[0.5, -1.25], [2.0, 3.5]]),
    ("FP32", [[0.1, 1e30], [2.0, -3.5]]),
    ("FP64", [[0.1, 1e300], [np.nan, -3.5]]),
    ("BYTES", [["a", "β"], ["c", ""]]),
])
def test_binary_tensors_round_trip_to_the_bit(identity_server, datatype: str, values: list) -> None:
    """The binary tensor data extension, both ways: little-endian values (BYTES length-prefixed)
    come back as the same bytes, in the binary answer the request asks for."""
    from workbench.serving.codecs import V2_DATATYPES

    if datatype == "BYTES":
        raw = _bytes_elements([v for row in values for v in row])
    else:
        raw = np.array(values, dtype=V2_DATATYPES[datatype]).astype(V2_DATATYPES[datatype].newbyteorder("<")).tobytes()
    body, headers = _binary_request([("t", datatype, [2, 2], raw)],
                                    outputs=[{"name": "predict", "parameters": {"binary_data": True}}])
    response = httpx.post(f"{identity_server.url}/v2/models/identity/infer", content=body,
                          headers={**headers, "content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    (out,) = header["outputs"]
    assert out["datatype"] == datatype and out["shape"] == [2, 2] and "data" not in out
    assert out["parameters"]["binary_data_size"] == len(raw)
    assert response.content[length:] == raw
    body, headers = _binary_request([("t", datatype, [2, 2], raw)])
    as_json = httpx.post(f"{identity_server.url}/v2/models/identity/infer", content=body, headers=headers)
    (out,) = as_json.json()["outputs"]  # no output asked for in binary: a JSON answer
    assert "inference-header-content-length" not in as_json.headers and len(out["data"]) == 4


BAD_BINARY = [
    ("header not a number", {"inference-header-content-length": "ten"}, None,
     400, "Inference-Header-Content-Length must be the byte length"),
    ("header past the body", {"inference-header-content-length": "100000"}, None,
     400, "says the JSON part is 100000 bytes, but the body has"),
    ("bytes left over", {}, b"\0" * 8, 400, "bytes after the binary inputs it declares"),
    ("size past the data", {}, -4, 400, "declares 8 bytes of binary data, but only 4 are left"),
    ("size and shape disagree", {}, "shape", 422, "has shape [2] of FP64 (16 bytes) but binary_data_size 8"),
    ("not octet-stream", {"content-type": "text/plain"}, None, 415, "application/octet-stream"),
]


@pytest.mark.parametrize("case,headers,change,status,message", BAD_BINARY, ids=[c[0] for c in BAD_BINARY])
def test_bad_binary_framing_gets_a_clear_4xx(mixed_server, case, headers, change, status, message) -> None:
    inputs = [("amount", "FP64", [1], np.array([1.5]).tobytes()), ("count", "INT64", [1], np.array([3]).tobytes())]
    if change == "shape":
        inputs[0] = ("amount", "FP64", [2], np.array([1.5]).tobytes())
    body, base = _binary_request(inputs)
    if isinstance(change, bytes):
        body += change
    elif isinstance(change, int):
        body = body[:change]
    response = httpx.post(f"{mixed_server.url}/v2/models/serving-mixed/infer", content=body,
                          headers={**base, **headers})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_a_bytes_element_running_past_its_data_is_a_clear_400(identity_server) -> None:
    raw = (100).to_bytes(4, "little") + b"abc"
    body, headers = _binary_request([("t", "BYTES", [1], raw)])
    response = httpx.post(f"{identity_server.url}/v2/models/identity/infer", content=body, headers=headers)
    assert response.status_code == 400 and "a BYTES element of 100 bytes runs past its data" in response.json()["error"]


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory, serve_shared):
    uri = _code_model(tmp_path_factory.mktemp("identity"), "identity", IDENTITY)
    return serve_shared(uri, args=("--name", "identity"))


# -- MLflow scoring protocol -------------------------------------------------------------------


def test_invocations_accepts_every_mlflow_format(rf_server, numeric_data, registered_model) -> None:
    X, _ = numeric_data
    rows = X.head(4)
    expected = {"predictions": _local_model(registered_model).predict(rows).tolist()}
    payloads = [
        {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))},
        {"dataframe_records": rows.to_dict(orient="records")},
        {"instances": rows.to_dict(orient="records")},
        {"inputs": {c: rows[c].tolist() for c in rows}},
    ]
    for payload in payloads:
        response = httpx.post(f"{rf_server.url}/invocations", json=payload)
        assert response.status_code == 200, (payload, response.text)
        assert response.json() == expected
    csv = httpx.post(f"{rf_server.url}/invocations", content=rows.to_csv(index=False),
                     headers={"content-type": "text/csv"})
    assert csv.json() == expected


def test_invocations_answers_like_mlflow_models_serve(rf_server, numeric_data, registered_model) -> None:
    """Same request to MLflow's own scoring app (in process) and to ours: same body."""
    from mlflow.pyfunc import scoring_server
    from starlette.testclient import TestClient

    X, _ = numeric_data
    payload = {"dataframe_split": json.loads(X.head(3).to_json(orient="split", index=False))}
    mlflow_app = scoring_server.init(_local_model(registered_model))
    theirs = TestClient(mlflow_app).post("/invocations", json=payload)
    ours = httpx.post(f"{rf_server.url}/invocations", json=payload)
    assert ours.status_code == theirs.status_code == 200
    assert ours.json() == theirs.json()

    bad = {"dataframe_split": {"columns": ["x0"], "data": [[1.0]]}}
    theirs = TestClient(mlflow_app).post("/invocations", json=bad)
    ours = httpx.post(f"{rf_server.url}/invocations", json=bad)
    assert ours.status_code == theirs.status_code == 400
    # the server writes MLflow's error body itself (no MLflow import): every field but the message agrees
    assert {k: v for k, v in ours.json().items() if k != "message"} == {
        k: v for k, v in theirs.json().items() if k != "message"}
    assert ours.json()["error_code"] == "INVALID_PARAMETER_VALUE"


# -- bad input ---------------------------------------------------------------------------------

BAD_V2 = [
    ("missing column", {"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
     422, "missing input column(s) ['count', 'ratio', 'member', 'region']"),
    ("wrong type", {"inputs": [{"name": "r", "shape": [1, 5], "datatype": "BYTES", "data": ["a", "b", "c", "d", "e"]}]},
     422, "column 'amount' expects numbers"),
    ("wrong shape", {"inputs": [{"name": "r", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
     422, "send one input per column"),
    ("shape and data disagree", {"inputs": [{"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
     422, "has shape [2] (2 values) but 1 data values"),
    ("unknown datatype", {"inputs": [{"name": "amount", "shape": [1], "datatype": "FLOAT", "data": [1.0]}]},
     400, "datatype 'FLOAT' is not one of"),
    ("no inputs", {"inputs": []}, 400, "non-empty 'inputs' list"),
    ("not an object", [1, 2, 3], 400, "JSON object with an 'inputs' list"),
    ("unknown category", {"inputs": [
        {"name": "amount", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "count", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "ratio", "shape": [1], "datatype": "FP32", "data": [0.5]},
        {"name": "member", "shape": [1], "datatype": "BOOL", "data": [True]},
        {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["atlantis"]},
    ]}, 422, "the model could not predict on this input"),
    ("fractional count", {"inputs": [
        {"name": "amount", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "count", "shape": [1], "datatype": "FP64", "data": [1.5]},
        {"name": "ratio", "shape": [1], "datatype": "FP32", "data": [0.5]},
        {"name": "member", "shape": [1], "datatype": "BOOL", "data": [True]},
        {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["north"]},
    ]}, 422, "column 'count' expects whole numbers (long); got 1.5"),
]


@pytest.mark.parametrize("case,body,status,message", BAD_V2, ids=[c[0] for c in BAD_V2])
def test_bad_v2_requests_get_4xx_naming_the_problem(mixed_server, case, body, status, message) -> None:
    response = httpx.post(f"{mixed_server.url}/v2/models/serving-mixed/infer", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_malformed_empty_and_oversized_bodies(mixed_server) -> None:
    url = f"{mixed_server.url}/v2/models/serving-mixed/infer"
    response = httpx.post(url, content=b'{"inputs": [', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = httpx.post(url, content=b"", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "body is empty" in response.json()["error"]
    response = httpx.post(url, content=b"", headers={"origin": mixed_server.url})  # a page: JSON is required
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    response = httpx.post(url, content=b"")  # not a browser, no content type: read as JSON
    assert response.status_code == 400 and "body is empty" in response.json()["error"]
    big = {"inputs": [{"name": "amount", "shape": [5000], "datatype": "FP64", "data": [1.0] * 5000}]}
    response = httpx.post(url, json=big)
    assert response.status_code == 413 and "limit of 20000 bytes" in response.json()["error"]
    # chunked upload without a content-length: still cut off at the limit
    response = httpx.post(url, content=iter([b'{"inputs": [' + b" " * 30000 + b"]}"]),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_bad_invocations_requests(mixed_server) -> None:
    url = f"{mixed_server.url}/invocations"
    cases = [
        (httpx.post(url, content=b"a,b\n1,2", headers={"content-type": "text/plain"}), 415, "not supported"),
        (httpx.post(url, json={"dataframe_split": {"columns": ["amount"], "data": [[1.0, 2.0]]}}), 400,
         "row 0 has 2 values for 1 columns"),
        (httpx.post(url, json={"rows": []}), 400, "exactly one of the keys"),
        (httpx.post(url, json={"dataframe_records": [{"amount": "lots"}]}), 400, "missing input column"),
        (httpx.post(url, content=b"{", headers={"content-type": "application/json"}), 400, "not valid JSON"),
        (httpx.post(url, content=b"\xff\xfe,\n", headers={"content-type": "text/csv"}), 400, "not a readable CSV"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["message"]
        assert response.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    assert httpx.get(f"{mixed_server.url}/v2/health/ready").status_code == 200


# -- metrics, log, shutdown --------------------------------------------------------------------


def test_metrics_are_exposed_in_prometheus_format(rf_server, numeric_data) -> None:
    X, _ = numeric_data
    httpx.post(f"{rf_server.url}/invocations", json={"dataframe_records": X.head(2).to_dict("records")})
    httpx.post(f"{rf_server.url}/invocations", json={"dataframe_records": [{"x0": 1}]})
    text = httpx.get(f"{rf_server.url}/metrics").text
    for family in ("model_infer_request_success_total", "model_infer_request_failure_total",
                   "model_infer_request_duration_seconds_bucket", "model_infer_batch_size_bucket",
                   "rest_server_requests_total", "prediction_log_records_total"):
        assert family in text
    assert 'model_infer_request_failure_total{code="400",model_name="fixture-rf",model_version="1"}' in text
    assert 'rest_server_requests_total{method="POST",path="/invocations",status_code="200"}' in text


def test_prediction_log_counts_every_answer_under_concurrent_load(
    registered_model, numeric_data, serve_model
) -> None:
    server = serve_model(f"models:/{registered_model.name}/{registered_model.version}")
    X, _ = numeric_data
    rows = X.to_dict(orient="records")

    def call(i: int) -> int:
        payload = {"dataframe_records": [rows[i % len(rows)]]} if i % 7 else {"dataframe_records": [{"x0": "bad"}]}
        return httpx.post(f"{server.url}/invocations", json=payload, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(600)))
    ok = statuses.count(200)
    assert ok + statuses.count(400) == 600 and ok == 600 - len(range(0, 600, 7))

    # Read it back over HTTP, page by page, as a monitor following this replica would.
    seen, since = [], 0
    while True:
        page = httpx.get(f"{server.url}/workbench/predictions", params={"since": since, "limit": 250}).json()
        if not page["records"]:
            break
        seen.extend(page["records"])
        since = page["next_since"]
    assert len(seen) == ok
    assert len({r["request_id"] for r in seen}) == ok
    assert [r["seq"] for r in seen] == sorted(r["seq"] for r in seen)
    assert all(r["inputs"]["columns"] == [f"x{i}" for i in range(6)] for r in seen)

    metrics = httpx.get(f"{server.url}/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith("model_infer_batch_size_count")]
    batches = float(batched[0].split()[-1])
    assert batches < ok  # concurrent requests were predicted together

    # The same log from the core, after the server is gone: nothing acknowledged is lost.
    server.stop()
    assert "stopped cleanly" in server.output.read_text()
    page = read_predictions(server.log_dir, since=0, limit=None)
    assert len(page) == ok
    rows_frame = page.rows()
    assert list(rows_frame.columns[:7]) == [f"x{i}" for i in range(6)] + ["predict"]


def test_sigterm_finishes_in_flight_requests_and_flushes_the_log(tmp_path, serve_model) -> None:
    from mlflow.models import infer_signature

    example = pd.DataFrame({"x": [1.0, 2.0]})
    uri = _code_model(tmp_path, "slow", SLOW, signature=infer_signature(example, example["x"] * 2),
                      input_example=example)
    server = serve_model(uri, env={"WORKBENCH_MAX_BATCH_SIZE": "1"}, args=("--name", "slow"))

    def call(i: int) -> httpx.Response:
        return httpx.post(f"{server.url}/invocations", json={"inputs": {"x": [float(i)]}}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, i) for i in range(6)]
        time.sleep(0.6)  # some answered, most still queued behind the 0.25 s model
        server.proc.send_signal(signal.SIGTERM)
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 6
    # a Series answer comes back as MLflow writes it: records
    assert sorted(r.json()["predictions"][0]["x"] for r in responses) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    server.proc.wait(timeout=30)
    assert "stopped cleanly" in server.output.read_text()
    assert len(read_predictions(server.log_dir, limit=None)) == 6


def test_a_killed_server_keeps_every_acknowledged_prediction(registered_model, numeric_data, serve_model) -> None:
    server = serve_model(registered_model.uri)
    X, _ = numeric_data
    for i in range(25):
        assert httpx.post(f"{server.url}/invocations",
                          json={"dataframe_records": X.iloc[[i]].to_dict("records")}).status_code == 200
    server.proc.kill()  # no chance to flush anything: SIGKILL
    server.proc.wait()
    assert len(read_predictions(server.log_dir, limit=None)) == 25


def test_a_busy_port_is_a_clear_error(registered_model, rf_server) -> None:
    port = rf_server.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "workbench"), "serve", registered_model.uri, "--port", port],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port 0" in result.stderr


# -- OpenAPI and fuzzing -----------------------------------------------------------------------


def test_openapi_document_lists_every_route(rf_server) -> None:
    doc = httpx.get(f"{rf_server.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/{model_name}",
                 "/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer",
                 "/invocations", "/metrics", "/workbench/predictions", "/v2/models/{model_name}/feedback",
                 "/workbench/feedback"):
        assert path in doc["paths"]


FUZZ_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_headers_conformance", "response_schema_conformance", "unsupported_method",
               "allow_header_conformance")


@pytest.mark.slow
def test_fuzzing_the_openapi_document_finds_no_server_error(mixed_server, tmp_path) -> None:
    """No 5xx, and every answer as the document says: its status, content type, headers and body
    schema; a method a route does not take is a 405 with an Allow header."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{mixed_server.url}/openapi.json",
         "--checks", ",".join(FUZZ_CHECKS), "--max-examples", "40", "--seed", "7", "--no-color",
         "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its example cache goes there
    )
    assert result.returncode == 0, result.stdout[-5000:]
    peak = peak_rss_mb(mixed_server.proc.pid)
    print(result.stdout[-600:], f"peak server memory: {peak:.0f} MB")  # figures for the report
    assert peak < 1024, f"fuzzing took the server to {peak:.0f} MB"
    assert httpx.get(f"{mixed_server.url}/v2/health/ready").status_code == 200
