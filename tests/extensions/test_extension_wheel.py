"""The extension's distribution: the wheel carries the built front end, so installing it needs no Node."""

from __future__ import annotations

import json
import re
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


def test_the_lockfile_is_committed_and_pins_what_package_json_asks_for() -> None:
    """Every set-up builds the extension from the same Node packages (as jupyterlab-git commits its
    lockfile); the lockfile says which, by version and hash, and not where they were downloaded."""
    lock_path = EXTENSION / "package-lock.json"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(lock_path.relative_to(REPO))], cwd=REPO,
                             capture_output=True, text=True)
    assert tracked.returncode == 0, "extensions/workbench-jupyterlab/package-lock.json is not committed"
    lock = json.loads(lock_path.read_text())
    package = json.loads((EXTENSION / "package.json").read_text())
    root = lock["packages"][""]
    assert root.get("dependencies", {}) == package["dependencies"]
    assert root.get("devDependencies", {}) == package["devDependencies"]
    installed = {path: entry for path, entry in lock["packages"].items() if path}
    assert installed and all(entry.get("integrity") or entry.get("link") for entry in installed.values())
    assert not [path for path, entry in installed.items() if "resolved" in entry and not entry.get("link")]
    assert "package-lock=false" not in (EXTENSION / ".npmrc").read_text()


def test_the_settings_schema_that_package_json_names_is_shipped() -> None:
    """JupyterLab reads the plugin's settings from ``<schemaDir>/<plugin>.json``; the defaults there are
    the ones the extension applies before the setting registry answers."""
    package = json.loads((EXTENSION / "package.json").read_text())
    schema_dir = EXTENSION / package["jupyterlab"]["schemaDir"]
    assert f"{schema_dir.name}/*.json" in package["files"]
    plugin_ids = re.findall(r"PLUGIN_ID = '([^']+)'", (EXTENSION / "src" / "index.ts").read_text())
    assert plugin_ids == ["@workbench/jupyterlab:plugin"]
    schema = json.loads((schema_dir / "plugin.json").read_text())
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    defaults = {name: spec["default"] for name, spec in schema["properties"].items()}
    assert set(defaults) == {"refreshInterval", "defaultTarget"}
    tokens = (EXTENSION / "src" / "tokens.ts").read_text()
    in_code = re.search(r"DEFAULT_SETTINGS: ISettings = \{ refreshInterval: (\d+), defaultTarget: '([^']+)' \}", tokens)
    assert in_code and (int(in_code.group(1)), in_code.group(2)) == (defaults["refreshInterval"],
                                                                     defaults["defaultTarget"])
    assert all(spec.get("title") and spec.get("description") for spec in schema["properties"].values())


@pytest.mark.slow
def test_the_wheel_holds_the_lab_extension_and_the_server_config_and_no_lab_wide_settings(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(EXTENSION)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("workbench_jupyterlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"{wheel.name.split('-py3')[0]}.data/data/"
    lab = data + "share/jupyter/labextensions/@workbench/jupyterlab/"
    assert {lab + "package.json", lab + "install.json", lab + "static/style.js"} <= names
    assert lab + "schemas/@workbench/jupyterlab/plugin.json" in names  # the settings schema
    assert any(n.startswith(lab + "static/remoteEntry.") for n in names)
    assert data + "etc/jupyter/jupyter_server_config.d/workbench_jupyterlab.json" in names
    assert [n for n in names if n.startswith(data + "share/jupyter/lab/settings/")] == []  # no Lab-wide overrides
    assert {"workbench_jupyterlab/handlers.py", "workbench_jupyterlab/service.py"} <= names
