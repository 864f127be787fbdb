"""The extension's distribution: the wheel carries the built front end, so installing it needs no Node."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extensions" / "workbench-jupyterlab"


BUILD_OUTPUTS = [
    "node_modules/@jupyterlab/builder/package.json",
    "lib/index.js",
    "tsconfig.tsbuildinfo",
    "package-lock.json",
    "workbench_jupyterlab/labextension/static/style.js",
]


def test_build_outputs_stay_out_of_git() -> None:
    """The extension is built from source by the set-up: no built JavaScript is committed."""
    paths = [str((EXTENSION / p).relative_to(REPO)) for p in BUILD_OUTPUTS]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert ignored == paths
    tracked = subprocess.run(["git", "ls-files", *paths], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked == []


@pytest.mark.slow
def test_the_wheel_holds_the_lab_extension_and_the_server_config_and_no_lab_wide_settings(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(EXTENSION)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("workbench_jupyterlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"{wheel.name.split('-py3')[0]}.data/data/"
    lab = data + "share/jupyter/labextensions/@workbench/jupyterlab/"
    assert {lab + "package.json", lab + "install.json", lab + "static/style.js"} <= names
    assert any(n.startswith(lab + "static/remoteEntry.") for n in names)
    assert data + "etc/jupyter/jupyter_server_config.d/workbench_jupyterlab.json" in names
    assert [n for n in names if n.startswith(data + "share/jupyter/lab/settings/")] == []  # no Lab-wide overrides
    assert {"workbench_jupyterlab/handlers.py", "workbench_jupyterlab/service.py"} <= names
