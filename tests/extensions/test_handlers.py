"""The server extension's routes, through a real Jupyter server (pytest-jupyter's ``jp_fetch``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import workbench as wb
from workbench.errors import DeploymentError, DeploymentNotFoundError, ModelNotFoundError
from workbench.widgets.app import APP_FILE

pytestmark = pytest.mark.usefixtures("jp_server_cleanup")


async def _json(jp_fetch, *parts: str, **kwargs: Any) -> Any:
    response = await jp_fetch("workbench", "api", *parts, **kwargs)
    return json.loads(response.body)


async def _refused(jp_fetch, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("workbench", "api", *parts, **kwargs)
    return caught.value.code, json.loads(caught.value.response.body)


UNAUTHENTICATED = {"Authorization": ""}  # jp_fetch keeps a header the test sets


@pytest.mark.parametrize(
    ("method", "parts", "body"),
    [
        ("GET", ("experiments",), None),
        ("GET", ("runs",), None),
        ("GET", ("models",), None),
        ("GET", ("models", "fixture-rf", "versions"), None),
        ("PUT", ("models", "fixture-rf", "aliases", "stolen"), '{"version": "1"}'),
        ("GET", ("targets",), None),
        ("GET", ("deployments",), None),
        ("POST", ("deployments",), '{"model_uri": "models:/fixture-rf@champion"}'),
        ("DELETE", ("deployments", "anything"), None),
        ("POST", ("deployments", "anything", "rollback"), "{}"),
        ("GET", ("snippet",), None),
    ],
)
async def test_an_unauthenticated_call_is_refused(jp_fetch, method: str, parts: tuple[str, ...],
                                                  body: str | None) -> None:
    code, _ = await _refused(jp_fetch, *parts, method=method, body=body, headers=dict(UNAUTHENTICATED),
                             allow_nonstandard_methods=True)
    assert code == 403


async def test_an_unauthenticated_page_request_goes_to_the_login_page(jp_fetch) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("workbench", "apps", "review", params={"model": "fixture-rf", "version": "1"},
                       headers=dict(UNAUTHENTICATED), follow_redirects=False)
    assert caught.value.code == 302
    assert "/login" in caught.value.response.headers["Location"]


async def test_models_and_versions_show_a_registered_model_with_its_aliases(jp_fetch, registered_model) -> None:
    models = {m["name"]: m for m in await _json(jp_fetch, "models")}
    assert models["fixture-rf"]["aliases"]["champion"] == registered_model.version

    versions = await _json(jp_fetch, "models", "fixture-rf", "versions")
    by_number = {v["version"]: v for v in versions}
    assert "champion" in by_number[registered_model.version]["aliases"]
    assert by_number[registered_model.version]["uri"] == f"models:/fixture-rf/{registered_model.version}"
    assert isinstance(by_number[registered_model.version]["deployments"], list)  # where it is deployed


async def test_an_unknown_model_is_404_with_the_core_message(jp_fetch, registered_model) -> None:
    with pytest.raises(ModelNotFoundError) as core:
        wb.versions("no-such-model")
    code, reply = await _refused(jp_fetch, "models", "no-such-model", "versions")
    assert code == 404
    assert reply == {"message": str(core.value), "error": "ModelNotFoundError"}
    assert "fixture-rf" in reply["message"]  # the message names the models there are


async def test_experiments_and_runs_list_the_tracked_run(jp_fetch, registered_model, numeric_data) -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y = numeric_data
    with wb.start_run(experiment="fixtures", run_name="snapshotted"):  # makes the internal snapshot experiment
        wb.log_model(DecisionTreeClassifier(max_depth=2).fit(X, y), training_data=X, training_labels=y,
                     snapshot_data=True)
    names = [e["name"] for e in await _json(jp_fetch, "experiments")]
    assert "fixtures" in names and "workbench-data-snapshots" not in names  # the sidebar lists users' experiments
    internal = [e["name"] for e in await _json(jp_fetch, "experiments", params={"internal": "1"})]
    assert "workbench-data-snapshots" in internal

    runs = await _json(jp_fetch, "runs", params={"experiment": "fixtures"})
    run = next(r for r in runs if r["name"] == "fixture-rf")
    assert run["run_id"] == registered_model.run_id
    assert run["status"] == "FINISHED"
    assert 0.5 < run["metrics"]["accuracy"] <= 1.0

    code, reply = await _refused(jp_fetch, "runs", params={"experiment": "no-such-experiment"})
    assert code == 404 and "no-such-experiment" in reply["message"]
    code, _ = await _refused(jp_fetch, "runs")
    assert code == 400


async def test_set_alias_points_an_alias_at_a_version(jp_fetch, registered_model) -> None:
    version = registered_model.version
    changed = await _json(jp_fetch, "models", "fixture-rf", "aliases", "lab-reviewed", method="PUT",
                          body=json.dumps({"version": version}))
    try:
        assert "lab-reviewed" in changed["aliases"]
        assert wb.get_version("fixture-rf", alias="lab-reviewed").version == version
    finally:  # the session's shared model keeps only the aliases other tests expect
        wb.delete_alias("fixture-rf", "lab-reviewed")

    code, reply = await _refused(jp_fetch, "models", "fixture-rf", "aliases", "latest", method="PUT",
                                 body=json.dumps({"version": version}))
    assert code == 400 and "reserved" in reply["message"]
    code, reply = await _refused(jp_fetch, "models", "fixture-rf", "aliases", "x", method="PUT", body="not json")
    assert code == 400 and "not JSON" in reply["message"]


async def test_snippets_load_the_model_or_the_deployment(jp_fetch, registered_model) -> None:
    snippet = await _json(jp_fetch, "snippet", params={"model": "fixture-rf", "alias": "champion"})
    assert 'wb.load_model("models:/fixture-rf@champion")' in snippet["code"]
    compile(snippet["code"], "<snippet>", "exec")

    pinned = await _json(jp_fetch, "snippet", params={"model": "fixture-rf", "version": registered_model.version})
    assert f'"models:/fixture-rf/{registered_model.version}"' in pinned["code"]

    code, reply = await _refused(jp_fetch, "snippet", params={"model": "fixture-rf", "alias": "nope"})
    assert code == 404 and "@nope" in reply["message"]
    with pytest.raises(DeploymentNotFoundError) as core:
        wb.get_deployment("no-such-deployment")
    code, reply = await _refused(jp_fetch, "snippet", params={"deployment": "no-such-deployment"})
    assert (code, reply["message"]) == (404, str(core.value))


async def test_deploy_lists_a_healthy_deployment_then_stop_removes_it(jp_fetch, registered_model) -> None:
    name = "lab-handler-test"
    deployed = await _json(jp_fetch, "deployments", method="POST", request_timeout=120,
                           body=json.dumps({"model_uri": "models:/fixture-rf@champion", "target": "local",
                                            "name": name}))
    try:
        assert deployed["name"] == name and deployed["healthy"] is True
        assert deployed["model_version"] == registered_model.version

        listed = {d["name"]: d for d in await _json(jp_fetch, "deployments")}
        assert listed[name]["healthy"] is True and listed[name]["target"] == "local"
        # at a glance: health, the served version's policy verdict, its alert state
        row = listed[name]
        assert (row["health"], row["policy"], row["alerts"]) == ("healthy", "passes", "no data")
        assert row["policy_detail"].endswith("passes (5 passed)") and row["alerts_detail"] == "no predictions yet"
        versions = {v["version"]: v for v in await _json(jp_fetch, "models", "fixture-rf", "versions")}
        assert f"{name} (local, serving)" in versions[registered_model.version]["deployments"]

        snippet = await _json(jp_fetch, "snippet", params={"deployment": name})
        assert f'wb.get_deployment("{name}")' in snippet["code"]

        # Only one version was ever served: the core refuses, and says why.
        with pytest.raises(DeploymentError) as core:
            wb.rollback(name)
        code, reply = await _refused(jp_fetch, "deployments", name, "rollback", method="POST", body="{}")
        assert (code, reply["message"]) == (409, str(core.value))

        # The deploy dialog creates: a name in use is refused, never replaced behind the user's back.
        code, reply = await _refused(jp_fetch, "deployments", method="POST", request_timeout=120,
                                     body=json.dumps({"model_uri": "models:/fixture-rf@champion",
                                                      "target": "local", "name": name}))
        assert code == 409 and reply["message"].startswith(f"a deployment named '{name}' already exists")
    finally:
        stopped = await _json(jp_fetch, "deployments", name, method="DELETE")
    assert stopped == {"name": name, "stopped": True}
    assert name not in {d["name"] for d in await _json(jp_fetch, "deployments")}
    code, _ = await _refused(jp_fetch, "deployments", name, method="DELETE")
    assert code == 404


async def test_deploy_without_a_model_is_400(jp_fetch) -> None:
    code, reply = await _refused(jp_fetch, "deployments", method="POST", body=json.dumps({"target": "local"}))
    assert code == 400 and "model_uri" in reply["message"]


async def test_pages_redirect_to_panel_apps_behind_the_server(jp_fetch, jp_base_url) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("workbench", "apps", "drift", params={"deployment": "churn"}, follow_redirects=False)
    assert caught.value.code == 302
    location = caught.value.response.headers["Location"]
    prefix = f"{jp_base_url}panel-preview/render/"
    assert location.startswith(prefix) and location.endswith("?deployment=churn&section=Drift")
    # The review app's own file, as `workbench review` serves it: the same Panel components.
    assert Path(location[len(prefix):].split("?")[0]) == APP_FILE


async def test_a_review_tab_registered_with_a_lab_page_is_a_page_and_unknown_pages_are_404(jp_fetch) -> None:
    import panel as pn

    from workbench.widgets import tabs

    tabs.register(tabs.ReviewTab("Latency", lambda ctx: pn.pane.Markdown("latency"), page="deployment",
                                 needs=frozenset({"deployment"}), lab_page="latency"))
    try:
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("workbench", "apps", "latency", params={"deployment": "churn"}, follow_redirects=False)
        assert caught.value.code == 302
        assert caught.value.response.headers["Location"].endswith("?deployment=churn&section=Latency")
    finally:
        tabs.unregister("deployment", "Latency")
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("workbench", "apps", "latency", params={"deployment": "churn"}, follow_redirects=False)
    assert caught.value.code == 404


@pytest.mark.parametrize("parts", [("api", "experiments"), ("api", "deployments"), ("apps", "review")])
async def test_a_rebound_host_name_is_refused_even_when_signed_in(jp_fetch, parts: tuple[str, ...]) -> None:
    """DNS rebinding: Jupyter's own Host check (on while Lab listens on loopback, as ``workbench lab``
    starts it) covers the Workbench routes, since every one is a ``JupyterHandler``."""
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("workbench", *parts, headers={"Host": "evil.example:8888"}, follow_redirects=False)
    assert caught.value.code == 403
