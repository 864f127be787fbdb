"""Fairness and ModelCard panels, and when the review app hides them (only for a missing package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import panel as pn
import pytest

import workbench as wb

from driving import control, errors_shown, shown_text

REPO = Path(__file__).resolve().parents[2]


def _governance_available(code: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` then ``governance_available()`` in a fresh interpreter (imports cannot be undone)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    script = (code + "\nimport workbench\nfrom workbench.widgets import governance_available\n"
              "print(workbench.__file__)\nprint('available:', governance_available())")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env)


def test_a_missing_package_hides_the_governance_panels_with_a_warning_naming_it(tmp_path: Path) -> None:
    # Setting a module to None in sys.modules is how Python marks a package as not installed.
    result = _governance_available("import sys; sys.modules['pandas'] = None", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "available: False" in result.stdout
    assert "governance panels are hidden" in result.stderr and "pandas" in result.stderr


def test_a_broken_import_of_our_own_code_raises_instead_of_hiding_the_panels(tmp_path: Path) -> None:
    # A copy of the installed packages in which governance imports a name workbench.errors lacks.
    copy = tmp_path / "workbench"
    shutil.copytree(REPO / "workbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "widgets", copy / "widgets", ignore=shutil.ignore_patterns("__pycache__"))
    checks = copy / "governance" / "checks.py"
    checks.write_text(checks.read_text() + "\nfrom workbench.errors import NoSuchError\n")
    result = _governance_available("", tmp_path, pythonpath=tmp_path)
    assert result.stdout.splitlines()[0] == str(copy / "__init__.py")  # the broken copy was the one imported
    assert result.returncode == 1 and "available:" not in result.stdout
    assert "ImportError: cannot import name 'NoSuchError' from 'workbench.errors'" in result.stderr
    assert "governance panels are hidden" not in result.stderr


@pytest.fixture(scope="module")
def logged_report(two_versions, numeric_data):
    first, _ = two_versions
    X, y = numeric_data
    predicted = wb.load_model(first.uri).predict(X)
    group = np.where(X["x0"] > 0, "over", "under")
    return wb.fairness_report(y, predicted, sensitive_features=group, attribute="band", model_uri=first.uri, log=True)


def test_fairness_shows_the_reports_logged_on_the_version(two_versions, logged_report) -> None:
    from workbench.widgets import Fairness

    first, _ = two_versions
    widget = Fairness(model_uri=first.uri)
    assert widget.wait(60)
    assert widget.attribute == "band"
    groups = control(widget, pn.widgets.Tabulator, "groups").value
    assert sorted(groups["band"]) == ["over", "under"]
    shown = shown_text(widget)
    assert f"{logged_report.demographic_parity_difference:.3f}" in shown
    bars = widget._rates.sources["bars"].data
    assert len(bars["value"]) == 2 * 4  # two groups, four rates each


def test_fairness_says_how_to_log_a_report_when_there_is_none(two_versions) -> None:
    from workbench.widgets import Fairness

    _, second = two_versions
    widget = Fairness(model_uri=second.uri)
    widget.wait(60)
    assert "No fairness report" in shown_text(widget) and "log=True" in shown_text(widget)


def test_reports_made_in_the_notebook_can_be_shown_directly(logged_report) -> None:
    from workbench.widgets import Fairness

    widget = Fairness(reports=[logged_report])
    widget.wait(60)
    assert widget.attribute == "band" and errors_shown(widget) == []


def test_the_model_card_is_shown_and_downloads_as_html(two_versions) -> None:
    from workbench.widgets import ModelCard

    first, _ = two_versions
    widget = ModelCard(model_uri=first.uri)
    assert widget.wait(120)
    assert errors_shown(widget) == []
    assert widget.card.title == f"Model card: {first.name} version {first.version}"
    assert widget.card.title in shown_text(widget)
    download = control(widget, pn.widgets.FileDownload, "Download HTML")
    assert download.filename == f"model-card-{first.name}-{first.version}.html"
    body = download.callback().read().decode()
    assert body.startswith("<!DOCTYPE html>") and widget.card.title in body
