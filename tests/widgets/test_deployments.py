"""Deployments: deploy from the widget, watch state and health, update, roll back, challenger, stop."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pandas as pd
import panel as pn
import pytest

import workbench as wb
from workbench.errors import DeploymentNotFoundError

from driving import control, errors_shown, press, shown_text
from workbench.widgets import Deployments


def _deploy(widget: Deployments, uri: str, name: str) -> None:
    control(widget, pn.widgets.Select, "Model").value = uri
    control(widget, pn.widgets.TextInput, "Deployment name").value = name
    press(widget, "Deploy")
    assert control(widget, pn.widgets.Button, "Deploy").disabled  # while it starts
    assert widget.wait(180)
    assert errors_shown(widget) == []


def test_deploy_update_roll_back_and_stop_from_the_widget(two_versions) -> None:
    first, second = two_versions
    name = f"wd-{uuid.uuid4().hex[:6]}"
    widget = Deployments(model_name=first.name, live=False)
    try:
        _deploy(widget, first.uri, name)
        live = wb.get_deployment(name)
        assert (live.state, live.healthy, live.model_version) == ("running", True, first.version)
        assert widget.selected == name
        shown = shown_text(widget)
        assert f"deployed {name}: {live.url}" in shown
        assert name in shown and "healthy" in shown and live.url in shown
        # at a glance: the version passes the policy, and nothing was predicted yet
        assert ">policy: passes</span>" in shown and ">no data</span>" in shown

        press(widget, "Logs")
        widget.wait(60)
        assert "workbench: serving" in shown_text(widget)

        control(widget, pn.widgets.Select, "Model").value = second.uri
        press(widget, "Update to model")
        widget.wait(180)
        assert wb.get_deployment(name).model_version == second.version
        assert f"{name} now serves {second.uri}" in shown_text(widget)

        press(widget, "Roll back")
        widget.wait(180)
        assert wb.get_deployment(name).model_version == first.version

        press(widget, "Stop")
        widget.wait(60)
        with pytest.raises(DeploymentNotFoundError):
            wb.get_deployment(name)
        assert name not in [d.name for d in widget.deployments]
    finally:
        if name in [d.name for d in wb.deployments()]:
            wb.stop(name)


def test_challenger_start_compare_and_promote(two_versions, numeric_data) -> None:
    first, second = two_versions
    name = f"wc-{uuid.uuid4().hex[:6]}"
    widget = Deployments(model_name=first.name, live=False)
    try:
        _deploy(widget, first.uri, name)
        control(widget, pn.widgets.Select, "Model").value = second.uri
        control(widget, pn.widgets.FloatSlider, "Challenger share").value = 0.5
        press(widget, "Start challenger")
        widget.wait(180)
        live = wb.get_deployment(name)
        assert live.challenger_version == second.version and dict(live.traffic)["challenger_share"] == 0.5
        assert f"v{second.version}" in shown_text(widget) and "split 50%" in shown_text(widget)

        X, _ = numeric_data
        for i in range(0, 200, 20):
            live.predict(X.iloc[i:i + 20])
        press(widget, "Compare versions")
        widget.wait(120)
        comparison = control(widget, pn.widgets.Tabulator, "comparison")
        assert comparison.visible
        assert list(comparison.value.columns) == [f"champion v{first.version}", f"challenger v{second.version}"]

        press(widget, "Promote")
        widget.wait(180)
        promoted = wb.get_deployment(name)
        assert (promoted.model_version, promoted.challenger_uri) == (second.version, None)
    finally:
        wb.stop(name)


def test_a_bandit_challenger_shows_its_live_shares(two_versions, numeric_data) -> None:
    first, second = two_versions
    name = f"wb-{uuid.uuid4().hex[:6]}"
    widget = Deployments(model_name=first.name, live=False)
    try:
        _deploy(widget, first.uri, name)
        control(widget, pn.widgets.Select, "Model").value = second.uri
        control(widget, pn.widgets.Select, "Routing").value = "epsilon_greedy"
        press(widget, "Start challenger")
        widget.wait(180)
        assert errors_shown(widget) == []
        assert f"epsilon_greedy: v{first.version} 50% / v{second.version} 50%" in shown_text(widget)

        # the challenger's answers earn rewards: the table follows the router on the next refresh
        X, _ = numeric_data
        url = wb.get_deployment(name).url
        answers = [httpx.post(f"{url}/invocations", json={"dataframe_split": X.iloc[[i]].to_dict("split")})
                   for i in range(20)]
        wb.log_feedback(name, pd.DataFrame({
            "request_id": [a.headers["x-request-id"] for a in answers],
            "reward": [1.0 if a.headers["x-workbench-variant"] == "challenger" else 0.0 for a in answers]}))
        widget.refresh()
        widget.wait(60)
        shares = wb.get_deployment(name).shares
        assert shares == pytest.approx({"champion": 0.05, "challenger": 0.95})  # epsilon 0.1: the leader's 95 %
        versions = {"champion": first.version, "challenger": second.version}
        shown = " / ".join(f"v{versions[arm]} {share:.0%}" for arm, share in shares.items())
        assert f"epsilon_greedy: {shown}" in shown_text(widget)
    finally:
        wb.stop(name)


def test_actions_without_a_deployment_say_what_to_pick(registered_model) -> None:
    never_deployed = wb.register(registered_model.source, f"undeployed-{uuid.uuid4().hex[:6]}")
    widget = Deployments(model_name=never_deployed.name, live=False)
    widget.wait(60)
    assert widget.selected is None
    assert "No deployments yet: pick a model and a target above and press Deploy" in shown_text(widget)
    press(widget, "Roll back")
    widget.wait(30)
    assert any("pick a deployment first" in e for e in errors_shown(widget))


def test_a_deployment_made_elsewhere_appears_by_itself(two_versions) -> None:
    """The periodic callback runs on the event loop (a notebook kernel's, or the server's)."""
    first, _ = two_versions
    name = f"wl-{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[str]:
        widget = Deployments(model_name=first.name, interval=0.5)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: wb.deploy(first.uri, target="local", name=name))
        for _ in range(120):
            if name in [d.name for d in widget.deployments]:
                break
            await asyncio.sleep(0.25)
        widget.live = False
        return [d.name for d in widget.deployments]

    try:
        assert name in asyncio.run(scenario())
    finally:
        wb.stop(name)


def test_the_policy_badge_advises_by_default_and_shows_blocked_under_an_enforcing_policy(numeric_data) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_data
    coded = X.assign(sex=np.where(X["x0"] > 0, 1.0, 0.0))  # in a species classifier, sex is the signal
    with wb.start_run(experiment="widget-glances"):
        logged = wb.log_model(LogisticRegression().fit(coded, y), training_data=coded, training_labels=y)
    version = wb.register(logged, f"wd-sex-{uuid.uuid4().hex[:6]}")
    name = f"wd-sex-{uuid.uuid4().hex[:6]}"
    widget = Deployments(model_name=version.name, live=False)
    try:
        _deploy(widget, version.uri, name)  # the defaults advise: it deploys
        shown = shown_text(widget)
        assert ">policy: advisory</span>" in shown
        assert "has failing checks; the policy only advises, nothing is blocked" in shown  # the badge's hover text
        path = wb.init_policy()
        try:
            enforced = Deployments(model_name=version.name, live=False)
            assert enforced.wait(120)
            assert ">policy: blocked</span>" in shown_text(enforced)
        finally:
            path.unlink()
    finally:
        wb.stop(name)
