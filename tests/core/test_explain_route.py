"""The explain route of the inference server, over HTTP on real server processes: explanations come
from the model being served, and bad payloads get exactly the answers infer gives them."""

from __future__ import annotations

import concurrent.futures
import textwrap

import httpx
import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import ExplanationError
from workbench.explain import live_rows
from workbench.predlog import read_predictions

NAME = "credit-pipeline"  # the registered name the server answers with


@pytest.fixture(scope="module")
def server(credit_pipeline, serve_shared):
    return serve_shared(credit_pipeline.uri, env={"WORKBENCH_MAX_BODY_BYTES": "20000"})


def _payload(rows: pd.DataFrame) -> dict:
    datatypes = {"float64": "FP64", "int64": "INT64", "bool": "BOOL"}
    return {"inputs": [
        {"name": c, "shape": [len(rows)], "datatype": datatypes.get(str(rows[c].dtype), "BYTES"),
         "data": rows[c].tolist()}
        for c in rows.columns
    ]}


def test_explain_route_answers_from_the_served_model(server, credit_pipeline, credit_data) -> None:
    X, _ = credit_data
    rows = X.iloc[10:16]
    response = httpx.post(f"{server.url}/v2/models/{NAME}/explain", json={**_payload(rows), "id": "why-1"},
                          timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (NAME, credit_pipeline.version, "why-1")
    assert response.headers["x-request-id"] == "why-1"
    assert body["method"] == "tree" and body["output"] == "probability"
    assert body["features"] == list(X.columns)  # original columns: one-hot parts summed back
    for row in body["rows"]:
        total = sum(row["contributions"].values())
        assert total == pytest.approx(row["prediction"] - row["base_value"], abs=1e-6)

    # The probabilities explained are the ones infer answers with, for the predicted class.
    infer = httpx.post(f"{server.url}/v2/models/{NAME}/infer",
                       json={**_payload(rows), "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}).json()
    outputs = {o["name"]: o for o in infer["outputs"]}
    proba = np.asarray(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    assert [r["target"] for r in body["rows"]] == outputs["predict"]["data"]
    np.testing.assert_allclose([r["prediction"] for r in body["rows"]], proba.max(axis=1))

    # The same explanation the registered version gives in the notebook.
    local = wb.explain_local(credit_pipeline.uri, rows)
    np.testing.assert_allclose([[r["contributions"][f] for f in body["features"]] for r in body["rows"]],
                               local.contributions.to_numpy(), atol=1e-9)


def test_versioned_route_client_and_named_class(server, credit_pipeline, credit_data) -> None:
    X, _ = credit_data
    rows = X.head(3)
    url = f"{server.url}/v2/models/{NAME}/versions/{credit_pipeline.version}/explain"
    body = httpx.post(url, json={**_payload(rows), "parameters": {"target": 0}}, timeout=120).json()
    assert [r["target"] for r in body["rows"]] == [0, 0, 0]

    remote = wb.explain_endpoint(server.url, NAME, rows, version=credit_pipeline.version, target=1)
    local = wb.explain_local(credit_pipeline.uri, rows, target=1)
    assert remote.targets == (1, 1, 1) and remote.method == "tree"
    np.testing.assert_allclose(remote.contributions.to_numpy(), local.contributions.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(remote.base_values, local.base_values, atol=1e-12)
    assert list(remote.data["region"]) == list(rows["region"])

    response = httpx.post(f"{server.url}/v2/models/{NAME}/explain",
                          json={**_payload(rows), "parameters": {"target": 5}})
    assert response.status_code == 400 and "target 5 is not one of the model's classes" in response.json()["error"]


def _bad_bodies(X: pd.DataFrame) -> list[tuple[str, dict]]:
    good = _payload(X.head(1))["inputs"]
    unknown = [dict(t, data=["atlantis"]) if t["name"] == "region" else t for t in good]
    as_text = [dict(t, datatype="BYTES", data=["a"]) if t["name"] == "f0" else t for t in good]
    return [
        ("not an object", {"content": b"[1, 2]"}),
        ("not JSON", {"content": b'{"inputs": ['}),
        ("empty body", {"content": b""}),
        ("no inputs", {"json": {"inputs": []}}),
        ("id not a string", {"json": {"inputs": good, "id": 3}}),
        ("parameters not an object", {"json": {"inputs": good, "parameters": [1]}}),
        ("outputs malformed", {"json": {"inputs": good, "outputs": ["predict"]}}),
        ("unknown output", {"json": {"inputs": good, "outputs": [{"name": "nope"}]}}),
        ("unknown datatype", {"json": {"inputs": [dict(good[0], datatype="FLOAT")]}}),
        ("missing column", {"json": {"inputs": good[:2]}}),
        ("shape and data disagree", {"json": {"inputs": [dict(good[0], shape=[2])] + good[1:]}}),
        ("text in a number column", {"json": {"inputs": as_text}}),
        ("unknown category", {"json": {"inputs": unknown}}),
        ("too large", {"json": {"inputs": [dict(good[0], shape=[5000], data=[1.0] * 5000)]}}),
    ]


def test_bad_payloads_get_exactly_what_infer_answers(server, credit_data) -> None:
    X, _ = credit_data
    statuses = set()
    for case, request in _bad_bodies(X):
        answers = [
            httpx.post(f"{server.url}/v2/models/{NAME}/{route}", headers={"content-type": "application/json"},
                       **request)
            for route in ("infer", "explain")
        ]
        infer, explain = answers
        assert 400 <= infer.status_code < 500, case
        assert (explain.status_code, explain.json()) == (infer.status_code, infer.json()), case
        statuses.add(infer.status_code)
    assert statuses == {400, 413, 422}
    for path in ("/v2/models/other/explain", f"/v2/models/{NAME}/versions/99/explain"):
        response = httpx.post(server.url + path, json=_payload(X.head(1)))
        assert response.status_code == 404 and "not served here" in response.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/{NAME}/explain").status_code == 405


def test_explanations_run_beside_predictions_and_are_not_logged_as_predictions(server, credit_data) -> None:
    X, _ = credit_data
    before = len(read_predictions(server.log_dir, limit=None).rows())

    def infer(i: int) -> int:
        return httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=_payload(X.iloc[i:i + 2]), timeout=60).status_code

    def explain(i: int) -> int:
        return httpx.post(f"{server.url}/v2/models/{NAME}/explain", json=_payload(X.iloc[i:i + 20]),
                          timeout=120).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(infer, i) for i in range(20)] + [pool.submit(explain, i) for i in range(4)]
        assert [j.result() for j in jobs] == [200] * 24
    assert len(read_predictions(server.log_dir, limit=None).rows()) == before + 40


def test_live_traffic_read_from_the_server_is_explained(server, credit_pipeline, credit_data) -> None:
    X, _ = credit_data
    shifted = X.iloc[500:530].assign(f0=X["f0"].iloc[500:530] + 4.0)
    assert httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=_payload(shifted)).status_code == 200
    window = live_rows(server.url, limit=10_000)
    last = window.iloc[-30:]
    np.testing.assert_allclose(last["f0"], shifted["f0"])
    explainer = wb.Explainer().fit(credit_pipeline.uri)
    local = wb.explain_live(explainer, server.url, limit=10_000, rows=np.arange(len(window) - 30, len(window)))
    assert len(local) == 30 and local.additive
    shift = wb.explain_shift(explainer, server.url, limit=10_000, rows=np.arange(len(window) - 30, len(window)),
                             reference=X.iloc[500:530])
    assert shift.live.n_rows == 30 and shift.reference.n_rows == 30
    assert shift.prediction_change == pytest.approx(
        shift.base_value_change + shift.table["mean_contribution_change"].sum(), abs=1e-9)


LINEAR = """
    import mlflow.pyfunc

    class Linear(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return 2.0 * model_input["a"] + model_input["b"]

    mlflow.models.set_model(Linear())
"""


def test_model_agnostic_explanations_on_the_server_match_the_notebook(tmp_path, serve_model) -> None:
    path = tmp_path / "linear.py"
    path.write_text(textwrap.dedent(LINEAR))
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "kind": rng.choice(["x", "y"], 200)})
    with wb.start_run(experiment="explain-tests"):
        logged = wb.log_model(str(path), flavor="pyfunc", name="linear", training_data=data)
    linear = serve_model(logged.model_uri, args=("--name", "linear"))
    explainer = wb.Explainer().fit(logged.model_uri)
    rows = data.head(explainer.chunk_rows + 2)  # two chunks of work on the server's thread
    remote = wb.explain_endpoint(linear.url, "linear", rows)
    local = explainer.explain(rows)
    assert remote.method == "permutation" and len(remote) == len(rows)
    np.testing.assert_allclose(remote.contributions.to_numpy(), local.contributions.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(remote.contributions["a"], 2 * (rows["a"] - explainer.background_["a"].mean()))
    np.testing.assert_allclose(remote.contributions["kind"], 0.0, atol=1e-12)
    assert remote.additive


STRINGS = """
    import mlflow.pyfunc

    class Verdict(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return ["high" if v > 0 else "low" for v in model_input["x"]]

    mlflow.models.set_model(Verdict())
"""


def test_a_model_shap_cannot_explain_gets_422_naming_why(tmp_path, serve_model) -> None:
    path = tmp_path / "verdict.py"
    path.write_text(textwrap.dedent(STRINGS))
    data = pd.DataFrame({"x": np.linspace(-1, 1, 50)})
    with wb.start_run(experiment="explain-tests"):
        logged = wb.log_model(str(path), flavor="pyfunc", name="verdict", training_data=data)
    verdict = serve_model(logged.model_uri, args=("--name", "verdict"))
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [0.5, -0.5]}]}
    assert httpx.post(f"{verdict.url}/v2/models/verdict/infer", json=body).status_code == 200
    response = httpx.post(f"{verdict.url}/v2/models/verdict/explain", json=body, timeout=120)
    assert response.status_code == 422
    assert "not numbers" in response.json()["error"] and "probabilities" in response.json()["error"]
    with pytest.raises(ExplanationError, match="not numbers"):
        wb.explain_endpoint(verdict.url, "verdict", pd.DataFrame({"x": [0.5]}))


def test_openapi_documents_the_explain_routes(server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/v2/models/{model_name}/explain", "/v2/models/{model_name}/versions/{model_version}/explain"):
        operation = doc["paths"][path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/InferenceRequest"}
        assert "ExplanationResponse" in operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
