"""Fixtures of the widget tests: a model with two versions, two versions trained by a script that differ
in one parameter, and a live local deployment.

Helpers that drive the widgets as a user would are in ``driving.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sklearn.linear_model import LogisticRegression

import workbench as wb


@pytest.fixture(scope="session")
def two_versions(register_versions) -> tuple[wb.ModelVersion, wb.ModelVersion]:
    """A model with two registered versions (a forest, then a logistic regression), @champion on v1."""
    from sklearn.ensemble import RandomForestClassifier

    first, second = register_versions(
        [RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), LogisticRegression(max_iter=300)],
        "widget-tests", "widgets")
    wb.set_alias(first.name, "champion", first.version)
    return first, second


@pytest.fixture(scope="session")
def live_deployment(registered_model) -> Iterator[wb.Deployment]:
    """A local deployment of fixture-rf shared by the explanation and review tests (stopped at the end)."""
    name = f"widgets-live-{uuid.uuid4().hex[:5]}"
    deployment = wb.deploy(registered_model.uri, target="local", name=name)
    yield deployment
    wb.stop(name)


#: The script that trains the breast-cancer tree of :func:`depth_versions` (run as a script, so that
#: ``log_model`` stores it with the model as the code that trained it).
TRAIN_SCRIPT = """\
import sys

import mlflow
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

import workbench as wb

data = load_breast_cancer(as_frame=True)
max_depth = 3
with wb.start_run(experiment="compare-versions", run_name=f"tree-depth-{max_depth}"):
    mlflow.log_param("max_depth", max_depth)
    model = DecisionTreeClassifier(max_depth=max_depth, random_state=0).fit(data.data, data.target)
    mlflow.log_metric("accuracy", model.score(data.data, data.target))
    logged = wb.log_model(model, training_data=data.data, training_labels=data.target)
print(wb.register(logged, sys.argv[1]).version)
"""

#: The line version 2 of the script has instead of ``max_depth = 3`` (with text that is HTML if not escaped).
DEEPER = "max_depth = 5  # deeper: <b>not bold</b> & <script>alert('x')</script>"


@dataclass(frozen=True)
class DepthVersions:
    """Versions 1 and 2 of ``name``: the same script and data, ``max_depth`` 3 then 5."""

    name: str
    first: str
    second: str
    #: The line of version 2's script that replaced ``max_depth = 3``.
    changed_line: str = DEEPER


@pytest.fixture(scope="session")
def depth_versions(session_workspace: wb.Settings, tmp_path_factory: pytest.TempPathFactory) -> DepthVersions:
    """Two versions of a breast-cancer decision tree, trained by a script edited in between (max_depth 3,
    then 5): they differ in that param, their accuracy, their code and some answers."""
    folder = tmp_path_factory.mktemp("compare-script")
    script = folder / "train_tree.py"
    name = f"compare-{uuid.uuid4().hex[:6]}"
    numbers = []
    for text in (TRAIN_SCRIPT, TRAIN_SCRIPT.replace("max_depth = 3", DEEPER)):
        script.write_text(text)
        done = subprocess.run([sys.executable, str(script), name], cwd=folder, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "WORKBENCH_HOME": str(session_workspace.home)})
        assert done.returncode == 0, done.stderr
        numbers.append(done.stdout.split()[-1])
    return DepthVersions(name, *numbers)


#: A package with one review tab, as a plugin would ship it: its module and its entry point.
TAB_PLUGIN = """\
import panel as pn

from workbench.widgets.tabs import ReviewTab


def _build(ctx):
    return pn.pane.Markdown(f"plugin tab of {ctx.model_uri}")


TAB = ReviewTab("Plugin tab", _build, page="model", order=95)
"""


@pytest.fixture
def tab_plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding an installed package (module and dist-info) whose entry point adds the tab
    "Plugin tab" to the model page; put it on the path to install it."""
    folder = tmp_path_factory.mktemp("tab-plugin")
    module = f"wb_tab_plugin_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(TAB_PLUGIN)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[workbench.review_tabs]\nplugin-tab = {module}:TAB\n")
    return str(folder)
