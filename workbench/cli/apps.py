"""``workbench lab``: the front ends, started on the workspace in effect."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import click

from workbench.errors import MissingDependencyError


#: Lab settings `workbench lab` sets by default: no "Jupyter news" fetch and no update check (these
#: machines are often offline). Only the Lab that `workbench lab` starts gets them; any other Lab in
#: the environment keeps its own settings.
LAB_OVERRIDES: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
#: The settings files JupyterLab reads from its application settings folder.
_LAB_SETTINGS_FILES = ("page_config.json", "page_config.json5", "overrides.json", "overrides.json5", "overrides.d")


def _lab_settings_dir(home: Path) -> Path:
    """A Lab application settings folder for `workbench lab` in the workspace: the environment's own
    (page config, overrides), with :data:`LAB_OVERRIDES` as the first, lowest-priority overrides file,
    so an environment's own ``overrides.json`` still has the last word."""
    app_dir = Path(os.environ.get("JUPYTERLAB_DIR") or Path(sys.prefix) / "share" / "jupyter" / "lab")
    folder = home / "lab" / "settings"
    shutil.rmtree(folder, ignore_errors=True)  # rebuilt at each start: the environment's files may change
    folder.mkdir(parents=True)
    for name in _LAB_SETTINGS_FILES:
        source = app_dir / "settings" / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        elif source.is_file():
            shutil.copy2(source, folder / name)
    ours = folder / "overrides.d" / "00-workbench-lab.json"
    ours.parent.mkdir(exist_ok=True)
    ours.write_text(json.dumps(LAB_OVERRIDES, indent=2) + "\n")
    return folder


def _front_end_env() -> dict[str, str]:
    """The environment for a front-end process: the same workspace, and Panel working offline."""
    from workbench.config import get_settings

    env = dict(os.environ)
    env.update(get_settings().as_env())
    # Panel loads its JavaScript from a CDN in notebooks unless told to inline it; inline works offline.
    env.setdefault("PANEL_INLINE", "true")
    return env


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--port", type=int, default=8888, show_default=True)
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address to bind; loopback by default.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser window.")
def lab(path: Path | None, port: int, ip: str, no_browser: bool) -> None:
    """Start JupyterLab on PATH (a folder, or a notebook to open), sharing this workspace.

    Kernels, the Workbench sidebar and this CLI all use the same WORKBENCH_HOME. The Workbench
    extension (extensions/workbench-jupyterlab) is enabled by installing it; a notebook PATH opens
    in Lab at start. This Lab, and no other, does not fetch "Jupyter news" (see LAB_OVERRIDES).
    """
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or shutil.which("jupyter")
    if jupyter is None:
        raise MissingDependencyError("workbench lab", "jupyterlab", extra="ui")
    if importlib.util.find_spec("workbench_jupyterlab") is None:
        # Lab still opens the notebook; only the Workbench sidebar, commands and tabs are missing.
        click.echo(
            "warning: the Workbench JupyterLab extension is not installed, so Lab opens without its "
            "sidebar: run `make setup`, or pip install ./extensions/workbench-jupyterlab",
            err=True,
        )
    from workbench.config import get_settings

    path = (path or Path.cwd()).resolve()
    root, notebook = (path.parent, path.name) if path.is_file() else (path, None)
    settings_dir = _lab_settings_dir(get_settings().home)
    args = [jupyter, "lab", f"--ServerApp.root_dir={root}", f"--port={port}", f"--ip={ip}",
            f"--LabApp.app_settings_dir={settings_dir}"]
    if notebook:
        args.append(str(path))
    if no_browser:
        args.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # JupyterLab refuses to start as root without it
    os.execve(jupyter, args, _front_end_env())


COMMANDS = [lab]
