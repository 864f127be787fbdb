"""The inference routes' short way (``POST /invocations``, ``POST /v2/models/{name}[/versions/{v}]/infer``
dispatched before Starlette's middleware and router): it refuses what the long way refuses, answers
what it answers, logs every answer and nothing refused, and counts requests by route, on a real server.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import numpy as np
import pandas as pd
import pytest

import workbench as wb

MAX_BODY = 4096


@pytest.fixture(scope="module")
def hot_server(registered_model, serve_shared):
    """fixture-rf served with a small body limit and one allowed page origin."""
    return serve_shared(registered_model.uri, env={"WORKBENCH_MAX_BODY_BYTES": str(MAX_BODY),
                                                   "WORKBENCH_ALLOWED_ORIGINS": "https://app.example.test"})


def _routes(url: str) -> dict[str, str]:
    return {"invocations": f"{url}/invocations", "v2": f"{url}/v2/models/fixture-rf/infer",
            "v2 versioned": f"{url}/v2/models/fixture-rf/versions/1/infer"}


def _body(kind: str, rows: pd.DataFrame) -> dict:
    if kind == "invocations":
        return {"dataframe_split": rows.to_dict(orient="split", index=False)}
    return {"inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
                       for c in rows]}


def _answer(kind: str, response: httpx.Response) -> list:
    body = response.json()
    return body["predictions"] if kind == "invocations" else body["outputs"][0]["data"]


def _logged(url: str) -> int:
    return len(httpx.get(f"{url}/workbench/predictions", params={"limit": 10_000}).json()["records"])


def test_answers_are_the_models_and_each_is_logged_once(hot_server, numeric_data, registered_model) -> None:
    X, _ = numeric_data
    model = wb.load_model(registered_model.uri)
    before = _logged(hot_server.url)
    sent = 0
    # Concurrent requests of one to three rows: predicted together in batches, each answer its own.
    jobs = [(kind, X.iloc[i:i + 1 + i % 3]) for i in range(60) for kind in _routes(hot_server.url)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: (job, httpx.post(_routes(hot_server.url)[job[0]], json=_body(*job))), jobs))
    for (kind, rows), response in answers:
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"]
        assert np.array_equal(np.asarray(_answer(kind, response)), model.predict(rows)), kind
        sent += 1
    assert _logged(hot_server.url) - before == sent


@pytest.mark.parametrize("kind", ["invocations", "v2", "v2 versioned"])
def test_the_guard_refuses_on_the_inference_routes_and_nothing_is_logged(hot_server, numeric_data, kind) -> None:
    X, _ = numeric_data
    url = _routes(hot_server.url)[kind]
    port = hot_server.url.rsplit(":", 1)[1]
    before = _logged(hot_server.url)
    rebound = httpx.post(url, json=_body(kind, X.head(1)),
                         headers={"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}",
                                  "sec-fetch-site": "same-origin"})
    assert rebound.status_code == 403 and "WORKBENCH_ALLOWED_HOSTS" in rebound.json()["error"]
    # A page on another origin that cannot set Origin (a no-cors fetch still sends Sec-Fetch-Site).
    cross = httpx.post(url, json=_body(kind, X.head(1)), headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
    other = httpx.post(url, json=_body(kind, X.head(1)), headers={"origin": "https://evil.example"})
    assert other.status_code == 403 and "https://evil.example" in other.json()["error"]
    assert _logged(hot_server.url) == before

    # The allowed page's origin is answered, with the CORS header that lets it read the answer.
    allowed = httpx.post(url, json=_body(kind, X.head(1)), headers={"origin": "https://app.example.test"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.test"
    assert _logged(hot_server.url) == before + 1


@pytest.mark.parametrize("kind", ["invocations", "v2", "v2 versioned"])
def test_body_limits_and_content_types_still_refuse_on_the_inference_routes(hot_server, numeric_data, kind) -> None:
    X, _ = numeric_data
    url = _routes(hot_server.url)[kind]
    before = _logged(hot_server.url)
    large = httpx.post(url, json=_body(kind, X.head(200)))
    assert large.status_code == 413
    message = large.json()["message"] if kind == "invocations" else large.json()["error"]
    assert f"limit of {MAX_BODY} bytes" in message
    if kind == "invocations":
        assert large.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"

    # Without a Content-Length (chunked), the limit holds while the body is read.
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    chunked = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    form = httpx.post(url, content=b"{}", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    assert _logged(hot_server.url) == before


def test_paths_near_the_inference_routes_answer_as_before(hot_server, numeric_data) -> None:
    X, _ = numeric_data
    url = hot_server.url
    other = httpx.post(f"{url}/v2/models/other/infer", json=_body("v2", X.head(1)))
    assert other.status_code == 404 and "'fixture-rf'" in other.json()["error"]
    version = httpx.post(f"{url}/v2/models/fixture-rf/versions/9/infer", json=_body("v2", X.head(1)))
    assert version.status_code == 404 and "version '9'" in version.json()["error"]
    for path in ("/v2/models//infer", "/v2/models/fixture-rf/versions//infer", "/v2/models/a/b/infer",
                 "/invocations/extra"):
        missing = httpx.post(f"{url}{path}", json={})
        assert missing.status_code == 404 and "no route" in missing.json()["error"], path
    wrong_method = httpx.get(f"{url}/invocations")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_request_metrics_count_the_inference_routes_by_template(hot_server, numeric_data) -> None:
    X, _ = numeric_data
    url = hot_server.url
    for kind, route in _routes(url).items():
        assert httpx.post(route, json=_body(kind, X.head(1))).status_code == 200
    httpx.post(f"{url}/v2/models/other/infer", json=_body("v2", X.head(1)))
    text = httpx.get(f"{url}/metrics").text
    for template, status in (("/invocations", 200), ("/v2/models/{model_name}/infer", 200),
                             ("/v2/models/{model_name}/versions/{model_version}/infer", 200),
                             ("/v2/models/{model_name}/infer", 404)):
        assert f'rest_server_requests_total{{method="POST",path="{template}",status_code="{status}"}}' in text
        assert f'rest_server_request_duration_seconds_count{{method="POST",path="{template}"}}' in text


# -- batching: a batch that had company waits briefly for it ---------------------------------------


def test_a_batch_that_had_company_waits_for_it_and_a_lone_client_never_waits(registered_model, numeric_data,
                                                                             tmp_path) -> None:
    import asyncio

    from workbench.predlog import PredictionLog, read_predictions
    from workbench.serving.batching import Batcher, RequestInfo
    from workbench.serving.metrics import ServerMetrics
    from workbench.serving.model import ServedModel

    X, _ = numeric_data
    served = ServedModel.load(registered_model.uri)
    model = wb.load_model(registered_model.uri)
    metrics = ServerMetrics.create()
    log = PredictionLog(tmp_path / "log")
    batches = metrics.batch_size.labels(served.name, served.version or "")

    def batch_count() -> int:
        return int(next(s.value for s in batches.collect()[0].samples if s.name.endswith("_count")))

    async def scenario() -> list[tuple[pd.DataFrame, object]]:
        batcher = Batcher(served, log, metrics)
        batcher.start()
        rows = [X.iloc[[i]] for i in range(8)]

        def ask(frame: pd.DataFrame):
            columns = {c: frame[c].to_numpy() for c in frame}
            return asyncio.ensure_future(batcher.infer(served.to_batch(columns), RequestInfo(protocol="test"),
                                                       lambda prediction: prediction))

        try:
            first = await asyncio.gather(*(ask(r) for r in rows[:4]))  # four clients at once: one batch
            assert batch_count() == 1
            # The four come back one after the other: the first is not predicted alone while the
            # others are on their way, but waits (briefly) for them.
            lone = ask(rows[4])
            await asyncio.sleep(0)  # the batcher wakes up with one request queued
            rest = [ask(r) for r in rows[5:8]]
            second = await asyncio.gather(lone, *rest)
            assert batch_count() == 2
            # One client alone, request after request: each predicted at once, alone.
            alone = [await ask(rows[0]), await ask(rows[1])]
            assert batch_count() == 4
        finally:
            await batcher.stop()
        return list(zip(rows + rows[:2], [*first, *second, *alone]))

    answered = asyncio.run(scenario())
    log.close()
    for rows, prediction in answered:
        assert np.array_equal(prediction.raw, model.predict(rows))  # each its own answer, bit for bit
    assert len(read_predictions(tmp_path / "log", limit=None)) == 10


def test_an_answer_is_encoded_while_its_record_commits_and_returned_only_once_committed(
        registered_model, numeric_data, tmp_path, monkeypatch) -> None:
    """The log's writer has taken a batch's records but not written them yet: the answers are
    encoded by then (that work overlaps the commit), and none is returned before the commit."""
    import asyncio
    import threading

    from workbench.predlog import PredictionLog, read_predictions
    from workbench.predlog import log as log_module
    from workbench.serving.batching import Batcher, RequestInfo
    from workbench.serving.metrics import ServerMetrics
    from workbench.serving.model import ServedModel

    X, _ = numeric_data
    served = ServedModel.load(registered_model.uri)
    model = wb.load_model(registered_model.uri)
    release = threading.Event()
    tell_taken = log_module.tell_taken

    def held(group) -> None:  # noqa: ANN001 - the writer thread, after telling, waits before it writes
        tell_taken(group)
        assert release.wait(10)

    monkeypatch.setattr(log_module, "tell_taken", held)
    log = PredictionLog(tmp_path / "log")
    encoded: list[str] = []

    async def scenario() -> list[str]:
        batcher = Batcher(served, log, ServerMetrics.create())
        batcher.start()
        try:
            asks = [asyncio.ensure_future(batcher.infer(
                served.to_batch({c: X.iloc[[i]][c].to_numpy() for c in X}), RequestInfo(protocol="test"),
                lambda prediction, i=i: encoded.append(i) or f"answer {i}: {prediction.raw.tolist()}"))
                for i in range(3)]
            deadline = asyncio.get_running_loop().time() + 10
            while len(encoded) < 3 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert sorted(encoded) == [0, 1, 2]  # encoded while the records wait to be written
            await asyncio.sleep(0.2)
            assert not any(a.done() for a in asks)  # and nothing returned before the commit
            assert len(read_predictions(tmp_path / "log", limit=None)) == 0
            release.set()
            return list(await asyncio.gather(*asks))
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    log.close()
    assert answers == [f"answer {i}: {model.predict(X.iloc[[i]]).tolist()}" for i in range(3)]
    assert len(read_predictions(tmp_path / "log", limit=None)) == 3
