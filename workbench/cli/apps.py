"""``workbench lab``: the front ends, started on the workspace in effect."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import click

from workbench.errors import MissingDependencyError


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
    in Lab at start.
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
    path = (path or Path.cwd()).resolve()
    root, notebook = (path.parent, path.name) if path.is_file() else (path, None)
    args = [jupyter, "lab", f"--ServerApp.root_dir={root}", f"--port={port}", f"--ip={ip}"]
    if notebook:
        args.append(str(path))
    if no_browser:
        args.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # JupyterLab refuses to start as root without it
    os.execve(jupyter, args, _front_end_env())


COMMANDS = [lab]
