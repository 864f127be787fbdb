"""The router finds replicas by name: a route table that says ``discover`` names DNS records (Docker
Swarm's ``tasks.SERVICE``, a Kubernetes headless Service) and the router shares requests among the
addresses they resolve to, looked up again while it runs (the two-node swarm test sees replicas on
both nodes this way)."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from workbench.routing.router import RouteTable, create_router


def test_a_discovering_router_reaches_the_addresses_a_name_resolves_to(registered_model, serve_shared,
                                                                       numeric_data) -> None:
    server = serve_shared(registered_model.uri)
    port = httpx.URL(server.url).port
    table = RouteTable(champion=(f"http://localhost:{port}",), champion_version=registered_model.version,
                       discover=True, shared_log=True)
    assert RouteTable.from_dict(table.to_dict()) == table
    X, _ = numeric_data
    with TestClient(create_router(table, token="t", allowed_origins=()), base_url="http://127.0.0.1:9") as client:
        described = client.get("/workbench/router").json()
        assert described["discover"] and described["replicas"]["champion"] == [f"http://127.0.0.1:{port}"]
        answer = client.post("/invocations", json={"dataframe_split": X.head(2).to_dict("split")})
        assert answer.status_code == 200, answer.text
        # a name that resolves to nothing: a 503 that says so
        client.put("/workbench/router", headers={"authorization": "Bearer t"},
                   json={**table.to_dict(), "champion": ["http://no-such-replica.invalid:1"]})
        gone = client.post("/invocations", json={"dataframe_split": X.head(2).to_dict("split")})
        assert gone.status_code == 503 and "no champion server answered" in gone.json()["error"]


def test_a_router_without_discover_uses_its_urls_as_they_are() -> None:
    table = RouteTable(champion=("http://localhost:1",))
    with TestClient(create_router(table, token="t", allowed_origins=()), base_url="http://127.0.0.1:9") as client:
        assert "replicas" not in client.get("/workbench/router").json()
