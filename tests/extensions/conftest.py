"""Fixtures for the JupyterLab extension's tests.

pytest-jupyter has no plugin entry point and ``pytest_plugins`` is refused outside the top-level
conftest, so its fixtures (``jp_fetch`` and what it needs) and the hooks that run ``async def`` tests
are imported here; they apply to this folder only. Its two autouse fixtures (an event loop, and a
server clean-up that runs on it) are redefined without autouse: the browser tests here use
Playwright's sync API, whose own loop they would close. Server tests ask for ``jp_server_cleanup``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_core.utils import ensure_event_loop
from jupyter_server.serverapp import ServerApp
from pytest_jupyter.jupyter_server import *  # noqa: F403
from traitlets.config import Config


@pytest.fixture
def jp_asyncio_loop() -> Iterator[Any]:
    """The event loop a pytest-jupyter server runs on (only for the tests that start one)."""
    loop = ensure_event_loop(prefer_selector_loop=True)
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup(jp_asyncio_loop: Any) -> Iterator[None]:
    """Stop the test's Jupyter server and forget it, as pytest-jupyter's autouse fixture does."""
    yield
    app = ServerApp.instance()
    jp_asyncio_loop.run_until_complete(app._cleanup())
    if hasattr(app, "kernel_manager"):
        app.kernel_manager.context.destroy()
    ServerApp.clear_instance()


@pytest.fixture
def jp_server_config() -> Config:
    """A Jupyter server with the Workbench server extension enabled (and nothing else)."""
    return Config({"ServerApp": {"jpserver_extensions": {"workbench_jupyterlab": True}}})
