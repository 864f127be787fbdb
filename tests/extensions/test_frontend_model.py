"""The extension's TypeScript unit tests (its sidebar model, ``src/model.ts``), run with the suite.

They are Node's own test runner over the compiled tests (``npm test`` in the extension), so the
model's fetching, expanding, selecting and actions (deploy, stop, roll back, set an alias) are
checked without a browser. The commands (``src/index.ts``) act only through that model.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "workbench-jupyterlab"


def test_the_sidebar_model_unit_tests_pass(npm: str) -> None:
    result = subprocess.run([npm, "test"], cwd=EXTENSION, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 11, output  # every test of test/model.test.ts ran
    assert re.search(r"^# fail 0$", result.stdout, re.MULTILINE), output


def test_the_commands_act_through_the_model_not_the_server() -> None:
    """As jupyterlab-git's commands do: the model makes every call, so its unit tests cover them."""
    views = {p.name: p.read_text() for p in (EXTENSION / "src").glob("*.ts") if p.name not in ("model.ts", "handler.ts")}
    callers = sorted(name for name, text in views.items() if re.search(r"\brequestAPI\b|\bjsonBody\b", text)
                     and name != "sidebar.ts")
    assert callers == []
    # the sidebar hands requestAPI to the model it creates, and calls nothing itself
    sidebar = views["sidebar.ts"]
    assert sidebar.count("requestAPI") == 2 and "new SidebarModel(requestAPI)" in sidebar
    index = views["index.ts"]
    for action in ("model.deploy(", "model.stop(", "model.rollback(", "model.setAlias(", "model.targets()"):
        assert action in index
    assert not re.search(r"'deployments|`deployments|'models/|`models/|'snippet|`snippet", index)
