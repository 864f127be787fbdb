"""Panel's ``/panel-preview/`` routes in a real Jupyter server with both Panel's server extension and
the Workbench one: component resources only for signed-in users and only Panel's, 4xx for traversal
forms, and a 404 (with no kernel started) for a page of a file that does not exist."""

from __future__ import annotations

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

pytestmark = pytest.mark.usefixtures("jp_server_cleanup")

UNAUTHENTICATED = {"Authorization": ""}  # jp_fetch keeps a header the test sets


@pytest.fixture
def jp_server_config() -> Config:
    """Panel's server extension loads first (extensions load by name), then the Workbench one."""
    return Config({"ServerApp": {"jpserver_extensions": {"panel.io.jupyter_server_extension": True,
                                                         "workbench_jupyterlab": True}}})


async def _status(jp_fetch, *parts: str, **kwargs) -> int:
    try:
        response = await jp_fetch(*parts, follow_redirects=False, request_timeout=30, **kwargs)
    except HTTPClientError as exc:
        return exc.code
    return response.code


async def test_rendering_a_missing_file_is_404_and_starts_no_kernel(jp_fetch, jp_serverapp, tmp_path) -> None:
    missing = tmp_path / "no-such-app.py"
    for path in (str(missing), "no/such/notebook.ipynb"):
        assert await _status(jp_fetch, "panel-preview", "render", path) == 404
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
    # Without credentials: the login redirect, as before, and still no kernel.
    assert await _status(jp_fetch, "panel-preview", "render", str(missing), headers=dict(UNAUTHENTICATED)) == 302
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []


HOSTILE = [
    "this/Zen/__css__/a.css",
    "antigravity/X/__css__/a.css",
    "os/path/_css/passwd",
    "..%2F..%2Fetc/x/y/z",
    "%2E%2E/x/_css/y",
    "panel..x/A/_css/b",
    "panel.widgets/Button/_stylesheets/..%2F..%2F..%2Fsetup.py",
]


async def test_component_resources_need_sign_in_and_are_panels_only(jp_fetch, capfd) -> None:
    code = await _status(jp_fetch, "panel-preview", "components", "panel.widgets", "Button", "_stylesheets",
                         "button.css", headers=dict(UNAUTHENTICATED))
    assert code in (302, 403)
    for path in HOSTILE:
        code = await _status(jp_fetch, "panel-preview", "components", *path.split("/"))
        assert 400 <= code < 500, (path, code)
    assert "Beautiful is better than ugly" not in capfd.readouterr().out  # `this` was never imported
