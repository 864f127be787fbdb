"""RetrainProgress: a retrain loop driven from the page, each step shown as it happens."""

from __future__ import annotations

import uuid

import numpy as np
from sklearn.tree import DecisionTreeClassifier

import workbench as wb
from workbench.widgets import RetrainProgress

from driving import errors_shown, press, shown_text


def test_the_steps_of_a_loop_appear_as_it_retrains_challenges_and_aborts(registered_model, numeric_data) -> None:
    """Truth that says the forest is right half the time fires the trigger; the retrained version
    challenges in shadow; the gate asks it to win by 50 points, which it cannot: aborted."""
    X, y = numeric_data
    name = f"retrain-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(registered_model.uri, name=name)
    try:
        loop = wb.retrain_on(name, train=lambda rows: DecisionTreeClassifier(max_depth=3).fit(
            rows.drop(columns="truth"), rows["truth"]),
            when=lambda report: report.performance is not None and report.performance.n >= 60,
            gate=wb.Gate(metric="accuracy", margin=0.5, min_rows=30), min_train_rows=60)
        view = RetrainProgress(loop=loop, live=False)
        assert "Watching: nothing has happened yet." in shown_text(view)

        def serve(rows, request_id):
            dep.predict(rows, request_id=request_id)
            dep.log_feedback(request_id, y.loc[rows.index].to_numpy())

        serve(X.iloc[:80], "first")
        press(view, "Check now")
        assert view.wait(120)
        assert [s.kind for s in loop.steps] == ["triggered", "trained", "challenging"]
        shown = shown_text(view)
        assert "challenging" in shown and f"challenger version {loop.challenger_version}" in shown
        assert "answers every request in the shadow of" in shown

        serve(X.iloc[80:120], "second")  # both versions answer these, and get their truth
        press(view, "Check now")
        assert view.wait(120)
        assert loop.steps[-1].kind == "aborted" and view.steps == 4
        assert "on 40 rows: aborted (needed a margin of 0.5)" in shown_text(view)
        assert errors_shown(view) == []
        assert [h.action for h in wb.deployment_history(name)] == ["deploy", "challenger", "abort"]
        gate = wb.audit_log(deployment=name, action="gate")["details"].iloc[0]
        assert gate["rows"] == 40 and not gate["promote"] and np.isfinite(gate["champion"])
        # The retrained version carries its story: the window it was trained on, the gate's scores.
        retrained = wb.get_version(registered_model.name, loop.steps[-1].version)
        run = wb.get_run(retrained.run_id)
        assert run.params["retrain.rows"] == "80" and run.params["retrain.deployment"] == name
        assert run.params["retrain.champion_version"] == registered_model.version
        assert run.params["retrain.window_start"].endswith(" UTC") and run.params["gate.margin"] == "0.5"
        assert run.metrics["gate.rows"] == 40 and run.metrics["gate.champion_accuracy"] == gate["champion"]
        assert run.metrics["gate.accuracy"] == gate["challenger"]
        assert retrained.tags["workbench.gate"].endswith("on 40 rows: aborted (needed a margin of 0.5)")
    finally:
        wb.stop(name)
