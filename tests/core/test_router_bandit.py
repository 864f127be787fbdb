"""The router's bandit mode in front of two real model servers (one per version, each with its own
prediction log): choice, stickiness per key, feedback fanned out and merged, rewards that move the
shares, what GET /workbench/router and the metrics show, and a restart that keeps the rewards."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from workbench.routing.router import RouteTable, create_router

TOKEN = "admin-token"


@pytest.fixture(scope="module")
def versions(register_versions):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return register_versions([RandomForestClassifier(n_estimators=10, random_state=0),
                              LogisticRegression(max_iter=300)], "router-bandit-tests", "arms")


@pytest.fixture(scope="module")
def servers(versions, serve_shared):
    return serve_shared(versions[0].uri), serve_shared(versions[1].uri)


def _table(versions, servers, **overrides) -> RouteTable:
    champion, challenger = servers
    fields = dict(champion=(champion.url,), challenger=(challenger.url,), mode="bandit",
                  champion_version=versions[0].version, challenger_version=versions[1].version)
    return RouteTable(**{**fields, **overrides})


def _client(table: RouteTable, config: Path | None = None) -> TestClient:
    app = create_router(table, token=TOKEN, config_path=config, allowed_origins=())
    return TestClient(app, base_url="http://127.0.0.1:9999")


def _predict(client: TestClient, rows, key: str | None = None) -> tuple[str, str]:
    """(variant that answered, request id) of one request through the router."""
    headers = {"x-workbench-key": key} if key else {}
    response = client.post("/invocations", json={"dataframe_split": rows.to_dict("split")}, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["x-workbench-variant"], response.headers["x-request-id"]


def _feedback(client: TestClient, body, name: str) -> tuple[int, dict]:
    response = client.post(f"/v2/models/{name}/feedback", json=body)
    return response.status_code, response.json()


def test_bandit_routes_by_rewards_fed_back_through_the_router(versions, servers, numeric_data, tmp_path) -> None:
    X, _ = numeric_data
    name = versions[0].name
    with _client(_table(versions, servers), tmp_path / "router.json") as client:
        state = client.get("/workbench/router").json()
        assert state["mode"] == "bandit" and state["strategy"] == "thompson"
        assert {a["arm"]: a["share"] for a in state["bandit"]["arms"]} == pytest.approx(
            {"champion": 0.5, "challenger": 0.5}, abs=1e-6)

        answered = [_predict(client, X.iloc[[i]]) for i in range(40)]
        assert {variant for variant, _ in answered} == {"champion", "challenger"}  # both explored

        # the challenger's answers were right, the champion's wrong: rewards 1 and 0
        items = [{"request_id": rid, "row": 0, "reward": 1.0 if variant == "challenger" else 0.0}
                 for variant, rid in answered]
        code, body = _feedback(client, items, name)
        assert code == 200, body
        assert [r["status"] for r in body["results"]] == ["recorded"] * len(items)
        by_variant = {v: sum(1 for variant, _ in answered if variant == v) for v in ("champion", "challenger")}
        assert body["bandit"]["rewarded"] == by_variant
        assert body["bandit"]["shares"]["challenger"] > 0.9
        assert body["recorded"] == len(items)

        # feedback sent again is a duplicate everywhere, and counts no second time
        code, again = _feedback(client, items[:3], name)
        assert code == 200 and [r["status"] for r in again["results"]] == ["duplicate"] * 3
        assert again["bandit"]["rewarded"] == {"champion": 0, "challenger": 0}

        # unknown ids: 404, like a server; a mix: 200 with each item's own status
        code, unknown = _feedback(client, {"request_id": "never-answered", "reward": 1}, name)
        assert code == 404 and unknown["results"][0]["status"] == "unknown"
        variant, rid = _predict(client, X.iloc[[0]])
        code, mixed = _feedback(client, [{"request_id": "never-answered", "truth": 1},
                                         {"request_id": rid, "truth": 1}], name)
        assert code == 200 and [r["status"] for r in mixed["results"]] == ["unknown", "recorded"]
        assert mixed["results"][1]["model_version"] == (versions[1] if variant == "challenger" else versions[0]).version

        # a malformed body: the servers' own refusal, as they give it, nothing recorded
        bad = {"row": 0, "reward": 1}
        response = client.post(f"/v2/models/{name}/feedback", json=bad)
        direct = httpx.post(f"{servers[0].url}/v2/models/{name}/feedback", json=bad)
        assert response.status_code == direct.status_code >= 400 and "results" not in response.json()
        assert response.json() == direct.json()

        state = client.get("/workbench/router").json()["bandit"]
        arms = {a["arm"]: a for a in state["arms"]}
        assert arms["challenger"]["rewards"] == by_variant["challenger"]
        assert arms["challenger"]["reward_sum"] == by_variant["challenger"]
        assert arms["champion"]["reward_sum"] == 0 and arms["challenger"]["share"] > 0.9
        assert arms["champion"]["share"] >= state["floor"] > 0  # still explored
        assert state["changes"] and state["changes"][-1]["shares"]["challenger"] > 0.9
        later = [_predict(client, X.iloc[[i]])[0] for i in range(40)]
        assert later.count("challenger") >= 30

        metrics = client.get("/workbench/router/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("router_bandit_share{")
                    and 'variant="challenger"' in x)
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(arms["challenger"]["share"])
        assert f'router_bandit_rewards{{variant="champion",version="{versions[0].version}"}} ' \
               f'{float(by_variant["champion"])}' in metrics

    # a restarted router (same config folder, same versions) carries on with the rewards counted
    with _client(_table(versions, servers), tmp_path / "router.json") as client:
        restarted = client.get("/workbench/router").json()["bandit"]
        assert {a["arm"]: a["rewards"] for a in restarted["arms"]} == {a: arms[a]["rewards"] for a in arms}
        assert restarted["run"] == state["run"] and restarted["changes"] == state["changes"]
        # another strategy for the same versions keeps them too; other versions start afresh
        table = _table(versions, servers, strategy="epsilon_greedy", epsilon=0.2)
        put = client.put("/workbench/router", json=table.to_dict(), headers={"authorization": f"Bearer {TOKEN}"})
        assert put.status_code == 200 and put.json()["bandit"]["strategy"] == "epsilon_greedy"
        assert {a["arm"]: a["share"] for a in put.json()["bandit"]["arms"]} == pytest.approx(
            {"champion": 0.1, "challenger": 0.9})
        other = _table(versions, servers, challenger_version="99")
        put = client.put("/workbench/router", json=other.to_dict(), headers={"authorization": f"Bearer {TOKEN}"})
        assert [a["rewards"] for a in put.json()["bandit"]["arms"]] == [0, 0]


def test_the_same_key_reaches_the_same_version(versions, servers, numeric_data) -> None:
    X, _ = numeric_data
    with _client(_table(versions, servers, strategy="epsilon_greedy")) as client:
        for key in ("customer-1", "customer-2", "customer-3", "customer-4"):
            seen = {_predict(client, X.iloc[[i]], key=key)[0] for i in range(6)}
            assert len(seen) == 1, (key, seen)
        keys = [f"k{i}" for i in range(30)]
        assert len({_predict(client, X.iloc[[0]], key=k)[0] for k in keys}) == 2  # keys spread over both


def test_feedback_while_a_server_is_down_asks_to_send_again(versions, servers, numeric_data) -> None:
    X, _ = numeric_data
    table = _table(versions, servers, challenger=(servers[1].url, "http://127.0.0.1:9"))
    with _client(table) as client:
        _, rid = _predict(client, X.iloc[[0]])
        code, known = _feedback(client, {"request_id": rid, "truth": 0}, versions[0].name)
        assert code == 200 and known["results"][0]["status"] == "recorded"
        code, body = _feedback(client, {"request_id": "somewhere-else", "truth": 0}, versions[0].name)
        assert code == 503 and "send the feedback again" in body["error"]


def test_route_tables_stored_before_the_bandit_still_load() -> None:
    old = {"champion": ["http://127.0.0.1:1"], "challenger": ["http://127.0.0.1:2"], "mode": "split",
           "challenger_share": 0.2, "champion_version": "1", "challenger_version": "2"}
    table = RouteTable.from_dict(json.loads(json.dumps(old)))
    assert (table.mode, table.challenger_share, table.bandit) == ("split", 0.2, False)
    with pytest.raises(Exception, match="strategy must be one of thompson, epsilon_greedy"):
        RouteTable.from_dict({**old, "mode": "bandit", "strategy": "ucb"})


def test_reading_a_models_metadata_is_not_a_pull(versions, servers, numeric_data) -> None:
    """Deployment.predict reads the model's metadata (its limits) before it predicts: only the
    predictions count as the bandit's choices, and a GET goes to the champion."""
    X, _ = numeric_data
    with _client(_table(versions, servers)) as client:
        for _ in range(5):
            answer = client.get(f"/v2/models/{versions[0].name}")
            assert answer.status_code == 200 and answer.headers["x-workbench-variant"] == "champion"
        _predict(client, X.iloc[[0]])
        arms = client.get("/workbench/router").json()["bandit"]["arms"]
        assert sum(a["chosen"] for a in arms) == 1
