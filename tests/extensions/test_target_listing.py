"""The UIs offer the deployment targets that are installed, as the core lists them from the
``workbench.targets`` entry points: the Lab's deploy dialog (through ``GET targets``), the
Deployments widget's target picker, and no hard-coded list of target names anywhere in the UIs."""

from __future__ import annotations

import ast
import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import panel as pn
import pytest

import workbench as wb
from workbench.widgets import Deployments

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extensions" / "workbench-jupyterlab"


def installed_target_names() -> list[str]:
    """The targets installed, read straight from the entry points (not through the core's listing)."""
    return sorted(ep.name for ep in entry_points(group="workbench.targets"))


def test_the_entry_points_list_every_target_of_the_workbench() -> None:
    assert {"local", "docker", "swarm", "k8s"} <= set(installed_target_names())
    assert [t.name for t in wb.deploy_targets()] == installed_target_names()


@pytest.mark.usefixtures("jp_server_cleanup")
async def test_the_lab_route_answers_the_listing(jp_fetch) -> None:
    response = await jp_fetch("workbench", "api", "targets")
    answered = json.loads(response.body)
    assert [t["name"] for t in answered] == installed_target_names()
    assert answered == [wb.get_target_info(name).to_dict() for name in installed_target_names()]
    local = next(t for t in answered if t["name"] == "local")
    assert local["summary"] and local["help"].startswith("local: ")  # what the dialog shows beside each


def test_the_deployments_widget_offers_the_listing() -> None:
    widget = Deployments(live=False)
    assert widget.param.target.objects == installed_target_names()
    picker = next(w for w in widget.__panel__().select(pn.widgets.Select) if w.name == "Target")
    assert list(picker.options) == installed_target_names()
    summary = wb.get_target_info("local").summary
    assert summary in widget._target_summary.object
    widget.target = "swarm"
    assert wb.get_target_info("swarm").summary in widget._target_summary.object
    widget.target = "nowhere"
    assert "unknown deployment target 'nowhere'" in widget._target_summary.object


def _python_lists_of_targets(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            strings = {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
            if len(strings & names) >= 2:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _typescript_lists_of_targets(path: Path, names: set[str]) -> list[str]:
    found = []
    for match in re.finditer(r"[\[{(][^\[\]{}()]*[\]})]", path.read_text()):
        quoted = set(re.findall(r"""['"]([a-z0-9-]+)['"]""", match.group()))
        if len(quoted & names) >= 2:
            found.append(f"{path.relative_to(REPO)}: {match.group()[:60]}")
    return found


def test_no_ui_keeps_a_list_of_targets_of_its_own() -> None:
    names = set(installed_target_names())
    python = [*sorted((REPO / "widgets").rglob("*.py")), *sorted((EXTENSION / "workbench_jupyterlab").glob("*.py"))]
    typescript = sorted((EXTENSION / "src").glob("*.ts"))
    lists = [hit for path in python for hit in _python_lists_of_targets(path, names)]
    lists += [hit for path in typescript for hit in _typescript_lists_of_targets(path, names)]
    assert lists == []
    # ...and the Lab asks the server for them: the deploy dialog shows what the model fetched.
    assert "request<ITarget[]>('targets')" in (EXTENSION / "src" / "model.ts").read_text()
    assert "export interface ITarget " in (EXTENSION / "src" / "tokens.ts").read_text()
