"""The extension's TypeScript unit tests (its sidebar model, ``src/model.ts``), run with the suite.

They are Node's own test runner over the compiled tests (``npm test`` in the extension), so the
model's fetching, expanding and selecting are checked without a browser.
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
    assert passed and int(passed.group(1)) >= 6, output  # every test of test/model.test.ts ran
    assert re.search(r"^# fail 0$", result.stdout, re.MULTILINE), output
