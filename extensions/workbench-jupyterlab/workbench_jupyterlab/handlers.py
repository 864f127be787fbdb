"""Thin Jupyter server handlers over the workbench core, under ``<base_url>/workbench/``.

JSON API (``<base_url>/workbench/api/...``; shapes in ``src/tokens.ts``)::

    GET    experiments                         every experiment
    GET    runs?experiment=NAME[&max=50]       newest runs of one experiment
    GET    models                              registered models with aliases
    GET    models/NAME/versions                versions of one model, newest first
    PUT    models/NAME/aliases/ALIAS           {"version": "2"}: point the alias at a version
    GET    targets                             the deployment targets installed, with their options
    GET    deployments                         deployments with live state and health
    POST   deployments                         {"model_uri": ..., "target": "local", "name": ...}
    DELETE deployments/NAME                    stop
    POST   deployments/NAME/rollback           serve the previous version again
    GET    snippet?model=NAME&alias=A|&version=N, or ?deployment=NAME: code for a notebook cell

Pages (``<base_url>/workbench/apps/review?model=NAME&version=N``, ``.../apps/drift?deployment=NAME``)
are the review app's own pages (:mod:`workbench.widgets.apps`, the same Panel components as
``workbench review``): they redirect to Panel's Jupyter server extension, which runs the review app
file in a kernel behind this server's authentication. Besides ``review``, each page opens one review
tab: those registered with a ``lab_page`` in :mod:`workbench.widgets.tabs` (``drift``: a
deployment's live drift).

Every verb is ``@tornado.web.authenticated``; a :class:`~workbench.errors.WorkbenchError` answers
with its ``http_status`` and ``{"message": <the core's message>, "error": <class name>}``.

Panel's own server extension serves those pages under ``<base_url>/panel-preview/``; two of its
routes are answered here first (:func:`guard_panel_preview`): ``components/...`` (which imported any
module named in the URL, without sign-in) serves only Panel's and Bokeh's resources to signed-in
users, and ``render/<path>`` answers 404 for a file that does not exist instead of starting a kernel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import tornado.web
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from panel.io.jupyter_server_extension import PanelJupyterHandler
from panel.io.server import ComponentResourceHandler

from workbench.errors import InvalidInputError, WorkbenchError
from workbench.widgets import tabs
from workbench.widgets.app import APP_FILE
from workbench.widgets.app.resources import SafeComponentResources
from workbench_jupyterlab.service import WorkbenchService

__all__ = ["apps", "guard_panel_preview", "setup_handlers"]


def apps() -> dict[str, dict[str, str]]:
    """Page name -> query arguments it adds to the review app's (see :mod:`workbench.widgets.apps`):
    ``review`` (``?model=NAME&version=N``: the model's review) and one page per review tab registered
    with a ``lab_page`` (``drift``: ``?deployment=NAME``, the deployment's live drift first)."""
    return {"review": {}, **tabs.lab_pages()}


class WorkbenchAPIHandler(APIHandler):
    """Base of the JSON routes: runs one core call off the event loop and answers with its result."""

    @property
    def workbench(self) -> WorkbenchService:
        """The server's core object (``web_app.settings["workbench"]``)."""
        return self.settings["workbench"]

    def body(self) -> dict[str, Any]:
        """The request's JSON object body (``{}`` when empty)."""
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError as exc:
            raise InvalidInputError(f"the request body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInputError("the request body must be a JSON object")
        return data

    async def answer(self, call: Callable[..., Any], *args: Any, status: int = 200, **kwargs: Any) -> None:
        """Run ``call(*args, **kwargs)`` on the core's threads; finish with its JSON or its error."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.workbench.executor, lambda: call(*args, **kwargs))
        except WorkbenchError as exc:
            self.refuse(exc)
            return
        self.set_status(status)
        self.finish(json.dumps(result))

    def refuse(self, exc: WorkbenchError) -> None:
        """Answer with the error's HTTP status and the core's message."""
        self.set_status(exc.http_status)
        self.finish(json.dumps({"message": str(exc), "error": type(exc).__name__}))


class ExperimentsHandler(WorkbenchAPIHandler):
    """``GET experiments[?internal=1]`` (the internal snapshot experiment only when asked)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.workbench.experiments, self.get_query_argument("internal", "") in ("1", "true"))


class RunsHandler(WorkbenchAPIHandler):
    """``GET runs?experiment=NAME&max=50``."""

    @tornado.web.authenticated
    async def get(self) -> None:
        experiment = self.get_query_argument("experiment", "")
        max_results = self.get_query_argument("max", "50")
        if not experiment or not max_results.isdigit():
            self.refuse(InvalidInputError("give ?experiment=NAME and, optionally, &max=N (a number of runs)"))
            return
        await self.answer(self.workbench.runs, experiment, int(max_results))


class ModelsHandler(WorkbenchAPIHandler):
    """``GET models``."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.workbench.models)


class VersionsHandler(WorkbenchAPIHandler):
    """``GET models/NAME/versions``."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        await self.answer(self.workbench.versions, name)


class AliasHandler(WorkbenchAPIHandler):
    """``PUT models/NAME/aliases/ALIAS`` with ``{"version": "N"}``."""

    @tornado.web.authenticated
    async def put(self, name: str, alias: str) -> None:
        await self.answer(lambda: self.workbench.set_alias(name, alias, str(self.body().get("version") or "")))


class TargetsHandler(WorkbenchAPIHandler):
    """``GET targets``: the installed deployment targets, as the deploy dialog offers them."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.workbench.targets)


class DeploymentsHandler(WorkbenchAPIHandler):
    """``GET deployments`` (with live health) and ``POST deployments`` (deploy, 201 when ready)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.workbench.deployments)

    @tornado.web.authenticated
    async def post(self) -> None:
        def deploy() -> dict[str, Any]:
            body = self.body()
            return self.workbench.deploy(str(body.get("model_uri") or ""), str(body.get("target") or "local"),
                                         body.get("name") or None)

        await self.answer(deploy, status=201)


class DeploymentHandler(WorkbenchAPIHandler):
    """``DELETE deployments/NAME``: stop it."""

    @tornado.web.authenticated
    async def delete(self, name: str) -> None:
        await self.answer(self.workbench.stop, name)


class RollbackHandler(WorkbenchAPIHandler):
    """``POST deployments/NAME/rollback``."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.answer(self.workbench.rollback, name)


class SnippetHandler(WorkbenchAPIHandler):
    """``GET snippet?model=NAME&alias=A`` (or ``&version=N``), or ``GET snippet?deployment=NAME``."""

    @tornado.web.authenticated
    async def get(self) -> None:
        deployment = self.get_query_argument("deployment", "")
        if deployment:
            await self.answer(self.workbench.deployment_snippet, deployment)
            return
        await self.answer(
            self.workbench.model_snippet,
            self.get_query_argument("model", ""),
            version=self.get_query_argument("version", "") or None,
            alias=self.get_query_argument("alias", "") or None,
        )


class AppHandler(JupyterHandler):
    """``GET apps/NAME?...``: the review app's page, rendered by Panel's Jupyter server extension.

    The query string (``model``, ``version``, ``deployment``) reaches the page as
    ``pn.state.session_args``.
    """

    @tornado.web.authenticated
    def get(self, app: str) -> None:
        pages = apps()
        if app not in pages:
            raise tornado.web.HTTPError(404, f"no Workbench page {app!r}; pages: {', '.join(sorted(pages))}")
        # Panel's render route takes a path; an absolute one starts with "/" after "render/".
        target = url_path_join(self.base_url, "panel-preview", "render") + "/" + quote(str(APP_FILE))
        query = [(k, v.decode()) for k, values in self.request.query_arguments.items() for v in values]
        given = {k for k, _ in query}
        query += [(k, v) for k, v in pages[app].items() if k not in given]
        self.redirect(target + (f"?{urlencode(query)}" if query else ""))


class PanelComponentHandler(SafeComponentResources, JupyterHandler, ComponentResourceHandler):
    """``GET panel-preview/components/...``: Panel's and Bokeh's component resources, signed in."""

    @tornado.web.authenticated
    async def get(self, path: str, include_body: bool = True) -> None:
        await ComponentResourceHandler.get(self, path, include_body)

    @tornado.web.authenticated
    async def head(self, path: str) -> None:
        await ComponentResourceHandler.head(self, path)


class PanelRenderHandler(PanelJupyterHandler):
    """``GET panel-preview/render/<path>``: Panel's page of a file, 404 when there is no such file
    (Panel would start a kernel for it and wait on it for ever)."""

    @tornado.web.authenticated
    async def get(self, path: str | None = None) -> None:
        if not self.notebook_path and not self.nb_path(path).is_file():
            raise tornado.web.HTTPError(404, "no such file to render")
        await super().get(path)


def guard_panel_preview(web_app: tornado.web.Application) -> None:
    """Answer Panel's ``panel-preview/components`` and ``panel-preview/render`` routes here.

    Tornado tries host rule groups in the order they were added, and Panel's extension may load
    before this one, so these handlers go in a group moved to the front.
    """
    base = url_path_join(web_app.settings["base_url"], "panel-preview")
    web_app.add_handlers(".*$", [
        (url_path_join(base, "components", "(.*)"), PanelComponentHandler),
        (url_path_join(base, "render", r"(.*(?<!/ws))$"), PanelRenderHandler),
    ])
    rules = web_app.default_router.rules
    rules.insert(0, rules.pop(-2))  # add_handlers puts a group just before the last (catch-all) one


def setup_handlers(web_app: tornado.web.Application) -> None:
    """Put the core object in ``web_app.settings["workbench"]`` and add the routes under the base URL."""
    web_app.settings.setdefault("workbench", WorkbenchService())
    base = url_path_join(web_app.settings["base_url"], "workbench")
    api = url_path_join(base, "api")
    name = r"(?P<name>[^/]+)"
    web_app.add_handlers(".*$", [
        (url_path_join(api, "experiments"), ExperimentsHandler),
        (url_path_join(api, "runs"), RunsHandler),
        (url_path_join(api, "models"), ModelsHandler),
        (url_path_join(api, "models", name, "versions"), VersionsHandler),
        (url_path_join(api, "models", name, "aliases", r"(?P<alias>[^/]+)"), AliasHandler),
        (url_path_join(api, "targets"), TargetsHandler),
        (url_path_join(api, "deployments"), DeploymentsHandler),
        (url_path_join(api, "deployments", name), DeploymentHandler),
        (url_path_join(api, "deployments", name, "rollback"), RollbackHandler),
        (url_path_join(api, "snippet"), SnippetHandler),
        (url_path_join(base, "apps", "(?P<app>[^/]+)"), AppHandler),
    ])
    guard_panel_preview(web_app)
