"""Panel's component resource route (``/components/<module>/<class>/<attribute>/<file>``), narrowed
to what the review pages need.

Panel serves stylesheets and scripts that components list on themselves through that route, and
resolves ``<module>`` with ``importlib.import_module``: any module path on the server, imported by an
anonymous request. The pages only ever ask for resources of Panel's and Bokeh's own components, so
:class:`SafeComponentResources` answers 404 for every other module before anything is imported, and
404 (never 500) for any path Panel cannot resolve. Both hosts of the review pages use it: ``workbench
review`` (:mod:`workbench.widgets.app.server`) and JupyterLab's ``/panel-preview/components/``
(the ``workbench_jupyterlab`` server extension), each behind its own sign-in.
"""

from __future__ import annotations

import re
from typing import Any

from tornado.web import HTTPError

__all__ = ["COMPONENT_MODULES", "SafeComponentResources", "component_module_allowed"]

#: Packages whose components' resources the review pages load.
COMPONENT_MODULES = ("panel", "bokeh")

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Modules of those packages that run code when imported or hold no components.
_NEVER = {"__main__", "tests", "command", "conftest"}


def component_module_allowed(module: str) -> bool:
    """True for a dotted module name inside :data:`COMPONENT_MODULES` (and not a test or CLI module)."""
    if not _MODULE.fullmatch(module):
        return False
    parts = module.split(".")
    return parts[0] in COMPONENT_MODULES and not _NEVER & set(parts)


class SafeComponentResources:
    """Mix in before Panel's ``ComponentResourceHandler``: refuse modules outside Panel and Bokeh,
    and turn whatever else Panel fails on into a 404."""

    def parse_url_path(self, path: str) -> str:
        """The file of a listed component resource, or an HTTP error (never an import of another module)."""
        module = path.split("/", 1)[0]
        if not component_module_allowed(module):
            raise HTTPError(404, "No such component resource")
        try:
            return super().parse_url_path(path)  # type: ignore[misc]
        except HTTPError:
            raise
        except Exception as exc:  # a path Panel cannot resolve is not found, not a server error
            raise HTTPError(404, "No such component resource") from exc

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A short plain answer: no traceback, whatever the server's debug setting."""
        self.set_header("Content-Type", "text/plain; charset=UTF-8")  # type: ignore[attr-defined]
        self.finish(f"{status_code}: no such component resource\n")  # type: ignore[attr-defined]
