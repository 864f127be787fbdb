"""The Workbench inside JupyterLab: server routes over the core, and the lab extension that uses them.

Installing the distribution enables both halves: the lab extension (``@workbench/jupyterlab``, built
from ``src/`` into ``labextension/``) and this server extension (through
``etc/jupyter/jupyter_server_config.d/workbench_jupyterlab.json``). Routes live under
``<base_url>/workbench/`` (see :mod:`workbench_jupyterlab.handlers`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the built front end of this distribution."""
    return [{"src": "labextension", "dest": "@workbench/jupyterlab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension this distribution provides (this module)."""
    return [{"module": "workbench_jupyterlab"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the Workbench routes on the Jupyter server (called once when the server starts)."""
    from workbench_jupyterlab.handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("workbench_jupyterlab: routes under %sworkbench/", server_app.web_app.settings["base_url"])
