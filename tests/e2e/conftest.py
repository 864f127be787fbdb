"""End-to-end fixtures: the champion/challenger scenario every routed target must pass."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Callable

import httpx
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.errors import DeploymentError

N_REQUESTS = 600
SHARE = 0.3
# With 600 requests the observed share has a standard deviation of 0.019: 0.06 is over three of them.
TOLERANCE = 0.06


@pytest.fixture(scope="module")
def duel_versions(register_versions) -> tuple[wb.ModelVersion, wb.ModelVersion]:
    """Two versions of one registered model (a forest, then a logistic regression), the first @champion."""
    first, second = register_versions(
        [RandomForestClassifier(n_estimators=10, random_state=0), LogisticRegression(max_iter=300)],
        "e2e-tests", "duel")
    wb.set_alias(first.name, "champion", first.version)
    return first, second


@pytest.fixture(scope="session")
def answers() -> Callable[[str], bool]:
    """``answers(url)``: whether an inference server still answers at ``url`` (its liveness route)."""
    return _answers


def _send(url: str, rows: list[dict]) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        return httpx.post(f"{url}/invocations", json={"dataframe_records": [rows[i % len(rows)]]}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(N_REQUESTS)))


def _duel(target: str, versions, numeric_data, **options) -> None:
    champion, challenger = versions
    X, _ = numeric_data
    rows = X.to_dict(orient="records")
    champion_model = wb.load_model(champion.uri)
    name = f"{target}-duel-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(champion.uri, target=target, name=name, **options)
    try:
        with pytest.raises(DeploymentError, match="no challenger to promote"):
            wb.promote(name)

        # split: about SHARE of the requests reach the challenger
        split = wb.start_challenger(name, challenger.uri, share=SHARE)
        assert split.url == dep.url
        assert (split.challenger_version, dict(split.traffic)) == (challenger.version, {"mode": "split", "challenger_share": SHARE})
        responses = _send(dep.url, rows)
        assert all(r.status_code == 200 for r in responses)
        variants = [r.headers["x-workbench-variant"] for r in responses]
        observed = variants.count("challenger") / N_REQUESTS
        assert abs(observed - SHARE) <= TOLERANCE, observed
        versions_seen = {r.headers["x-workbench-variant"]: r.headers["x-model-version"] for r in responses}
        assert versions_seen == {"champion": champion.version, "challenger": challenger.version}

        # shadow: every answer is the champion's; the challenger still sees the traffic
        wb.set_traffic(name, shadow=True)
        before = _challenger_rows(name, challenger.version)
        responses = _send(dep.url, rows)
        for i, response in enumerate(responses):
            assert response.headers["x-workbench-variant"] == "champion"
            assert response.json()["predictions"] == champion_model.predict(X.iloc[[i % len(rows)]]).tolist()
        deadline = time.monotonic() + 30
        while _challenger_rows(name, challenger.version) < before + N_REQUESTS and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _challenger_rows(name, challenger.version) == before + N_REQUESTS

        # the truth of the shadowed requests reaches both versions' servers: each labels its own answer
        ids = [r.headers["x-request-id"] for r in responses]
        sent = wb.log_feedback(name, pd.DataFrame({"request_id": ids, "truth": 1}))
        assert sent.counts["recorded"] == N_REQUESTS, sent.to_frame()
        labelled = wb.get_deployment(name).labelled_rows(10_000).frame
        for version in (champion.version, challenger.version):
            mine = labelled[(labelled["model_version"].astype(str) == version) & labelled["request_id"].isin(ids)]
            assert len(mine) == N_REQUESTS and (mine["truth"] == 1).all(), version

        # side by side
        table = wb.compare_versions(name).to_frame()
        assert list(table.columns) == [f"champion v{champion.version}", f"challenger v{challenger.version}"]
        assert table.loc["requests logged"].tolist() == [2 * N_REQUESTS - variants.count("challenger"),
                                                          variants.count("challenger") + N_REQUESTS]
        assert table.loc["error rate"].tolist() == [0.0, 0.0]
        assert {"latency p50 ms", "prediction mean", "drifted feature share"} <= set(table.index)

        # abort: back to one version
        aborted = wb.abort(name)
        assert aborted.challenger_uri is None and aborted.model_version == champion.version
        assert {r.headers["x-model-version"] for r in _send(dep.url, rows[:5])} == {champion.version}

        # promote: the challenger becomes the only version
        wb.start_challenger(name, challenger.uri, share=0.5)
        promoted = wb.promote(name)
        assert (promoted.model_version, promoted.challenger_uri, promoted.url) == (challenger.version, None, dep.url)
        assert {r.headers["x-model-version"] for r in _send(dep.url, rows[:20])} == {challenger.version}
        # the old champion's servers are gone (a cluster's replicas are not reached from here: its status says)
        assert all(not _answers(url) for url in dep.handle.replica_urls)  # type: ignore[union-attr]
        assert wb.get_deployment(name).healthy
        actions = [h.action for h in wb.deployment_history(name)]
        assert actions == ["deploy", "challenger", "traffic", "abort", "challenger", "promote"]
    finally:
        wb.stop(name)


def _challenger_rows(name: str, version: str) -> int:
    """Requests the challenger version logged so far, over every log of the deployment."""
    from workbench.predlog import recent_records

    records = recent_records(wb.get_deployment(name).log_sources, 1_000_000)
    return int((records["model_version"].astype(str) == version).sum())


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/v2/health/live", timeout=2)
        return True
    except httpx.HTTPError:
        return False




@pytest.fixture()
def duel(duel_versions) -> Callable[..., None]:
    """``duel(target, numeric_data, **deploy_options)`` runs the whole champion/challenger scenario."""

    def run(target: str, numeric_data, **options) -> None:
        _duel(target, duel_versions, numeric_data, **options)

    return run
