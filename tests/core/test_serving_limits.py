"""What a hostile web page or a large request can do to the inference server: nothing it should.

Real server processes (``workbench serve``) on loopback: cross-site requests from a real Chromium
page on another port are refused and never logged, bodies must be JSON, rows per request and log
pages are bounded, duplicate columns are refused, 405 answers say what is allowed, and the peak
memory of the largest accepted request stays within a generous bound.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from support import free_port, peak_rss_mb
from workbench.predlog import read_predictions


@pytest.fixture(scope="module")
def rf_server(registered_model, serve_shared):
    """fixture-rf served with a small row limit (so the limit is cheap to reach)."""
    return serve_shared(registered_model.uri, env={"WORKBENCH_MAX_ROWS": "1000"})


def _rows(numeric_data, n: int) -> pd.DataFrame:
    X, _ = numeric_data
    return X.sample(n=n, replace=n > len(X), random_state=1).reset_index(drop=True)


def _v2(rows: pd.DataFrame) -> dict:
    return {"inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
                       for c in rows]}


def _logged(server) -> int:
    """How many requests the server's prediction log holds."""
    try:
        return len(read_predictions(server.log_dir, limit=None))
    except LookupError:  # no log yet: nothing was ever logged
        return 0


def _post_requests(server, status: str | None = None) -> float:
    """POST requests the server answered (with ``status``, if given), from its own metrics."""
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if (line.startswith("rest_server_requests_total{") and 'method="POST"' in line
                and (status is None or f'status_code="{status}"' in line)):
            total += float(line.split()[-1])
    return total


# -- content types and origins -------------------------------------------------------------------


def test_body_routes_read_json_only(rf_server, numeric_data) -> None:
    rows = _rows(numeric_data, 2)
    before = _logged(rf_server)
    body = json.dumps(_v2(rows))
    for path in ("/v2/models/fixture-rf/infer", "/v2/models/fixture-rf/explain"):
        for content_type in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
            # A page's blob body has no content type, but a browser marks the request as its own.
            headers = {"content-type": content_type} if content_type else {"sec-fetch-mode": "no-cors"}
            response = httpx.post(rf_server.url + path, content=body, headers=headers)
            assert response.status_code == 415, (path, content_type, response.text)
            assert "Content-Type: application/json" in response.json()["error"]
    form = httpx.post(f"{rf_server.url}/invocations", content=json.dumps({"dataframe_split": {}}),
                      headers={"content-type": "text/plain"})
    assert form.status_code == 415 and "application/json" in form.json()["message"]
    assert _logged(rf_server) == before
    ok = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/infer", json=_v2(rows))  # plain httpx JSON
    assert ok.status_code == 200 and len(ok.json()["outputs"][0]["data"]) == 2
    vendor = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/infer", content=body,
                        headers={"content-type": "application/vnd.example+json; charset=utf-8"})
    assert vendor.status_code == 200
    assert _logged(rf_server) == before + 2


def test_a_request_marked_as_sent_by_another_origin_is_refused(rf_server, numeric_data) -> None:
    rows = _rows(numeric_data, 1)
    before = _logged(rf_server)
    own = rf_server.url
    other = f"http://127.0.0.1:{free_port()}"
    refused = [
        {"origin": other},
        {"origin": "null"},
        {"origin": other, "sec-fetch-site": "same-site"},
        {"sec-fetch-site": "cross-site"},
        {"origin": own, "sec-fetch-site": "same-site"},  # an Origin can be right while the browser says not
    ]
    for headers in refused:
        for path, payload in (("/v2/models/fixture-rf/infer", _v2(rows)),
                              ("/invocations", {"dataframe_records": rows.to_dict("records")})):
            response = httpx.post(own + path, json=payload, headers=headers)
            assert response.status_code == 403, (headers, path, response.text)
            assert "cross-site request refused" in response.json()["error"]
            assert "WORKBENCH_ALLOWED_ORIGINS" in response.json()["error"]
    assert httpx.get(f"{own}/workbench/predictions", headers={"origin": other}).status_code == 403
    assert _logged(rf_server) == before
    # The server's own pages and a typed address are same-origin; non-browser clients send neither.
    for headers in ({"origin": own}, {"origin": own, "sec-fetch-site": "same-origin"},
                    {"sec-fetch-site": "none"}, {}):
        response = httpx.post(f"{own}/v2/models/fixture-rf/infer", json=_v2(rows), headers=headers)
        assert response.status_code == 200, (headers, response.text)
    assert _logged(rf_server) == before + 4


def test_an_allowed_origin_may_call_and_read_the_answer(registered_model, numeric_data, serve_model) -> None:
    page = "https://dashboard.example.test"
    server = serve_model(registered_model.uri, env={"WORKBENCH_ALLOWED_ORIGINS": f"{page}/"})
    rows = _rows(numeric_data, 1)
    preflight = httpx.options(f"{server.url}/v2/models/fixture-rf/infer", headers={
        "origin": page, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == page
    response = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(rows),
                          headers={"origin": page, "sec-fetch-site": "cross-site"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == page
    other = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(rows),
                       headers={"origin": "https://elsewhere.example.test"})
    assert other.status_code == 403
    assert _logged(server) == 1


def test_mlflow_scoring_client_keeps_working(rf_server, numeric_data, registered_model) -> None:
    import workbench as wb
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    rows = _rows(numeric_data, 3)
    host, port = rf_server.url.removeprefix("http://").split(":")
    predictions = ScoringServerClient(host, int(port)).invoke(rows).get_predictions()
    expected = wb.load_model(registered_model.uri).predict(rows)
    assert np.asarray(predictions).ravel().tolist() == np.asarray(expected).ravel().tolist()


# The page a hostile site would serve: three ways to send the server rows without CORS.
HOSTILE_PAGE = """<!DOCTYPE html>
<html><body>
<form id="f" method="post" enctype="text/plain" action="{target}/invocations" target="sink">
  <input name='{{"dataframe_records": [{record}], "x": "' value='"}}'>
</form>
<iframe name="sink"></iframe>
<script>
  const target = "{target}";
  const v2 = JSON.stringify({v2});
  window.sent = Promise.all([
    fetch(target + "/v2/models/fixture-rf/infer", {{method: "POST", mode: "no-cors", body: v2}}),
    fetch(target + "/v2/models/fixture-rf/infer",
          {{method: "POST", mode: "no-cors", body: v2, headers: {{"Content-Type": "application/json"}}}}),
    fetch(target + "/invocations", {{method: "POST", mode: "no-cors",
          body: JSON.stringify({{dataframe_records: [{record}]}})}}),
  ]).then(() => {{ document.getElementById("f").submit(); return "sent"; }});
</script>
</body></html>
"""


@pytest.fixture()
def hostile_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web server on another port of this machine, serving whatever page the test writes."""
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.ui
def test_a_page_on_another_port_cannot_write_into_the_log(page, hostile_site, registered_model,
                                                         numeric_data, serve_model) -> None:
    server = serve_model(registered_model.uri)
    site, folder = hostile_site
    rows = _rows(numeric_data, 2)
    record = json.dumps(rows.iloc[0].to_dict())
    (folder / "index.html").write_text(HOSTILE_PAGE.format(target=server.url, v2=json.dumps(_v2(rows)),
                                                           record=record))
    page.goto(f"{site}/index.html")
    assert page.evaluate("window.sent") == "sent"
    page.wait_for_load_state("load")
    page.frame_locator("iframe[name=sink]").locator("body").wait_for(state="attached")
    polls = 200  # until the form's request has arrived too
    while _post_requests(server) < 4 and polls:
        page.wait_for_timeout(50)
        polls -= 1
    # Every request reached the server and was refused; none was predicted or logged.
    assert _logged(server) == 0
    assert _post_requests(server) == _post_requests(server, "403") == 4
    # The same server still takes what clients send: httpx JSON is predicted and logged.
    assert httpx.post(f"{server.url}/invocations",
                      json={"dataframe_records": rows.to_dict("records")}).status_code == 200
    assert _logged(server) == 1


# -- sizes -----------------------------------------------------------------------------------------


def test_rows_per_request_are_bounded_with_a_clear_413(rf_server, numeric_data) -> None:
    before = _logged(rf_server)
    big = _rows(numeric_data, 1001)
    cases = [
        ("/v2/models/fixture-rf/infer", {"json": _v2(big)}),
        ("/invocations", {"json": {"dataframe_split": json.loads(big.to_json(orient="split", index=False))}}),
        ("/invocations", {"json": {"dataframe_records": big.to_dict("records")}}),
        ("/invocations", {"json": {"inputs": {c: big[c].tolist() for c in big}}}),
        ("/invocations", {"content": big.to_csv(index=False), "headers": {"content-type": "text/csv"}}),
    ]
    for path, request in cases:
        response = httpx.post(rf_server.url + path, **request)
        assert response.status_code == 413, (path, response.text)
        text = response.text
        assert "1001 rows" in text and "limit of 1000 rows" in text and "WORKBENCH_MAX_ROWS" in text
    assert _logged(rf_server) == before
    at_limit = httpx.post(f"{rf_server.url}/v2/models/fixture-rf/infer", json=_v2(big.head(1000)))
    assert at_limit.status_code == 200 and at_limit.json()["outputs"][0]["shape"] == [1000]


def test_duplicate_columns_in_dataframe_split_are_refused(rf_server, numeric_data) -> None:
    before = _logged(rf_server)
    rows = _rows(numeric_data, 2)
    split = json.loads(rows.to_json(orient="split", index=False))
    split["columns"] = [*split["columns"], "x2"]
    split["data"] = [[*row, 123.0] for row in split["data"]]
    response = httpx.post(f"{rf_server.url}/invocations", json={"dataframe_split": split})
    assert response.status_code == 400
    assert response.json()["message"] == ("dataframe_split['columns'] names column 'x2' more than once: "
                                          "name each column once")
    assert _logged(rf_server) == before


def test_a_method_not_allowed_says_which_are(rf_server) -> None:
    for method, path, allowed in (("GET", "/v2/models/fixture-rf/infer", {"POST"}),
                                  ("PUT", "/invocations", {"POST"}),
                                  ("POST", "/v2/health/live", {"GET", "HEAD"}),
                                  ("DELETE", "/workbench/predictions", {"GET", "HEAD"})):
        response = httpx.request(method, rf_server.url + path)
        assert response.status_code == 405, (method, path)
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
        assert f"{method} is not allowed on {path}" in response.json()["error"]


def test_log_pages_are_bounded_in_bytes_as_well_as_records(registered_model, numeric_data, serve_model) -> None:
    server = serve_model(registered_model.uri, env={"WORKBENCH_LOG_PAGE_BYTES": "60000"})
    rows = _rows(numeric_data, 300)  # each logged record: about 40 kB of inputs
    for _ in range(4):
        assert httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(rows)).status_code == 200
    sizes, seen, since = [], [], 0
    while True:
        response = httpx.get(f"{server.url}/workbench/predictions", params={"since": since, "limit": 10000})
        body = response.json()
        sizes.append(len(response.content))
        seen.extend(r["seq"] for r in body["records"])
        since = body["next_since"]
        if not body["more"]:
            break
        assert len(body["records"]) == 1  # a second 40 kB record would pass the 60 kB page
    assert seen == [1, 2, 3, 4]
    assert max(sizes) < 120_000  # one record and its envelope, never the four
    smaller = httpx.get(f"{server.url}/workbench/predictions", params={"since": 0, "max_bytes": 1}).json()
    assert [r["seq"] for r in smaller["records"]] == [1] and smaller["more"] is True  # at least one record
    too_big = httpx.get(f"{server.url}/workbench/predictions", params={"max_bytes": 60001})
    assert too_big.status_code == 400 and "max_bytes must be between 1 and 60000" in too_big.json()["error"]


@pytest.mark.slow
def test_the_largest_accepted_request_has_bounded_peak_memory(registered_model, numeric_data, serve_model) -> None:
    """Default limits: 100,000 rows per request and 16 MiB per body. The largest request both allow
    is predicted and logged; one row more is refused before it is decoded. Peak memory is read from
    the server process (VmHWM) and asserted against a generous bound; the figure goes in the report."""
    server = serve_model(registered_model.uri)
    rows = _rows(numeric_data, 100_000)  # 100k x 6 full-precision values: about 12 MiB of JSON
    body = json.dumps(_v2(rows)).encode()
    assert len(body) < 16 * 1024 * 1024
    warm = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(rows.head(10)))
    assert warm.status_code == 200
    baseline = peak_rss_mb(server.proc.pid)
    response = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", content=body,
                          headers={"content-type": "application/json"}, timeout=300)
    assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [100_000]
    peak = peak_rss_mb(server.proc.pid)
    print(f"peak server memory: {baseline:.0f} MB before, {peak:.0f} MB after a {len(body) / 2**20:.1f} MiB "
          f"request of 100,000 rows (+{peak - baseline:.0f} MB)")
    assert peak - baseline < 500, f"the largest accepted request added {peak - baseline:.0f} MB at its peak"
    over = pd.concat([rows, rows.head(1)], ignore_index=True)
    refused = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(over), timeout=300)
    assert refused.status_code == 413 and "WORKBENCH_MAX_ROWS" in refused.json()["error"]
    assert len(read_predictions(server.log_dir, limit=None)) == 2


def test_the_router_refuses_cross_site_requests_and_forwards_its_own(rf_server, numeric_data) -> None:
    """The router in front of a deployment: same guard; what it lets through reaches the server
    without the caller's Origin (which the server, on another port, would take for a foreign one)."""
    from starlette.testclient import TestClient

    from workbench.routing.router import RouteTable, create_router

    rows = _rows(numeric_data, 1)
    before = _logged(rf_server)
    app = create_router(RouteTable(champion=(rf_server.url,)), token="admin-token", allowed_origins=())
    with TestClient(app, base_url="http://127.0.0.1:9999") as client:
        refused = client.post("/v2/models/fixture-rf/infer", json=_v2(rows),
                              headers={"origin": "http://127.0.0.1:8888", "sec-fetch-site": "same-site"})
        assert refused.status_code == 403 and "WORKBENCH_ALLOWED_ORIGINS" in refused.json()["error"]
        assert _logged(rf_server) == before
        own = client.post("/v2/models/fixture-rf/infer", json=_v2(rows),
                          headers={"origin": "http://127.0.0.1:9999", "sec-fetch-site": "same-origin"})
        assert own.status_code == 200, own.text
        assert own.headers["x-workbench-variant"] == "champion"
        plain = client.post("/v2/models/fixture-rf/infer", content=json.dumps(_v2(rows)),
                            headers={"content-type": "text/plain"})
        assert plain.status_code == 415  # the server behind it answers, through the router
        table = {"champion": [rf_server.url]}
        not_json = client.put("/workbench/router", content=json.dumps(table),
                              headers={"authorization": "Bearer admin-token", "content-type": "text/plain"})
        assert not_json.status_code == 415 and "application/json" in not_json.json()["error"]
        assert client.put("/workbench/router", json=table,
                          headers={"authorization": "Bearer admin-token"}).status_code == 200
    assert _logged(rf_server) == before + 1


def test_allowing_every_origin_lets_any_page_call(rf_server, numeric_data) -> None:
    from starlette.testclient import TestClient

    from workbench.routing.router import RouteTable, create_router

    before = _logged(rf_server)
    app = create_router(RouteTable(champion=(rf_server.url,)), token="admin-token", allowed_origins=("*",))
    with TestClient(app, base_url="http://127.0.0.1:9999") as client:
        for headers in ({"origin": "https://anywhere.example.test", "sec-fetch-site": "cross-site"},
                        {"sec-fetch-site": "cross-site"}):  # an image or a link: no Origin at all
            response = client.post("/v2/models/fixture-rf/infer", json=_v2(_rows(numeric_data, 1)), headers=headers)
            assert response.status_code == 200, response.text
    assert _logged(rf_server) == before + 2


def test_the_limits_are_told_in_the_metadata_and_agree(registered_model, numeric_data, serve_model) -> None:
    """The rows a request may have shrink with the body limit and the model's width, so a client that
    keeps to the rows the metadata gives is never refused for its bytes: 60,000 bytes for 6 columns
    at 25 bytes a value is 400 rows, fewer than WORKBENCH_MAX_ROWS."""
    server = serve_model(registered_model.uri, env={"WORKBENCH_MAX_BODY_BYTES": "60000"})
    limits = httpx.get(f"{server.url}/v2/models/fixture-rf").json()["parameters"]
    assert limits["max_rows"] == 400 and limits["max_body_bytes"] == 60000
    rows = _rows(numeric_data, 400)
    ok = httpx.post(f"{server.url}/v2/models/fixture-rf/infer", json=_v2(rows))
    assert ok.status_code == 200, ok.text
    over = _rows(numeric_data, 401)
    split = {"dataframe_split": {"columns": list(over.columns), "data": (over * 0).astype(int).values.tolist()}}
    refused = httpx.post(f"{server.url}/invocations", json=split)
    message = refused.json()["message"]
    assert refused.status_code == 413 and "401 rows" in message and "limit of 400 rows" in message
    assert "WORKBENCH_MAX_BODY_BYTES=60000" in message and "6 values" in message



def test_dep_predict_sends_a_small_frame_at_once_and_splits_it_when_the_server_takes_fewer_rows(
        registered_model, numeric_data, monkeypatch) -> None:
    """One request for a small frame (no metadata read before it, so a router shares requests among
    replicas as they come); a server whose row limit is lower answers 413, and the frame then goes in
    parts within the limit it gives, answered as one, exact and in order."""
    import uuid

    import workbench as wb

    monkeypatch.setenv("WORKBENCH_MAX_ROWS", "5")
    wb.configure()
    name = f"limits-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(registered_model.uri, target="local", name=name)
    try:
        rows = _rows(numeric_data, 12)
        before = _post_requests(dep)
        assert dep.predict(rows.head(5)) == wb.load_model(registered_model.uri).predict(rows.head(5)).tolist()
        assert _post_requests(dep) - before == 1  # the frame, and nothing else
        assert dep.predict(rows, request_id="twelve") == wb.load_model(registered_model.uri).predict(rows).tolist()
        assert _post_requests(dep, "413") == 1 and _post_requests(dep) - before == 5  # refused, then 5 + 5 + 2
        logged = read_predictions(Path(dep.log_sources[0]), limit=None).records
        assert sorted(logged["request_id"].iloc[-3:]) == ["twelve", "twelve.2", "twelve.3"]
    finally:
        wb.stop(name)
        monkeypatch.delenv("WORKBENCH_MAX_ROWS")
        wb.configure()
