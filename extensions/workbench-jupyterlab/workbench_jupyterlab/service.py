"""The server extension's one core object: the workbench calls the routes make, as JSON-ready values.

It lives in ``web_app.settings["workbench"]`` (see :func:`workbench_jupyterlab.handlers.setup_handlers`).
Each method is one call into the core's public API (``import workbench as wb``) and returns plain
dicts and lists whose shapes are the TypeScript contracts in ``src/tokens.ts``. Errors are the core's
own :class:`workbench.errors.WorkbenchError` subclasses; the handlers map them to HTTP statuses.
The methods block (MLflow, health probes, deploys), so handlers run them on :attr:`executor`.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.serialize import jsonable

__all__ = ["WorkbenchService"]


def _model_uri(name: str, version: str | None, alias: str | None) -> str:
    if not name:
        raise InvalidInputError("name the registered model: ?model=NAME with &alias=ALIAS or &version=N")
    if alias:
        return wb.format_model_uri(name, alias=alias)
    if version:
        return wb.format_model_uri(name, version)
    raise InvalidInputError(f"say which version of {name!r} to use: add &alias=ALIAS or &version=N")


class WorkbenchService:
    """The workbench as the Jupyter server routes see it (one per server).

    ``workers`` threads run the blocking calls, so a long deploy never holds up the sidebar's polls.
    """

    def __init__(self, *, workers: int = 4) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workbench-lab")
        #: Each deployment's live monitor and its version's policy verdict, kept between polls.
        self.glances = wb.Glances()

    # -- tracking ------------------------------------------------------------------------------

    def experiments(self, internal: bool = False) -> list[dict[str, Any]]:
        """Every experiment: ``IExperiment``; the workbench's own bookkeeping (training data
        snapshots) only with ``internal``."""
        return [
            {"experiment_id": e.experiment_id, "name": e.name, "lifecycle_stage": e.lifecycle_stage}
            for e in wb.experiments() if internal or not e.internal
        ]

    def runs(self, experiment: str, max_results: int = 50) -> list[dict[str, Any]]:
        """The newest runs of ``experiment``: ``IRun`` (metrics and params as mappings)."""
        frame = wb.runs(experiment, max_results=max_results)
        out = []
        for row in frame.to_dict(orient="records"):
            run = {k: jsonable(v) for k, v in row.items() if "." not in k}
            run["metrics"] = {k[8:]: jsonable(v) for k, v in row.items()
                              if k.startswith("metrics.") and jsonable(v) is not None}
            run["params"] = {k[7:]: jsonable(v) for k, v in row.items()
                             if k.startswith("params.") and jsonable(v) is not None}
            out.append(run)
        return out

    # -- registry ------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Every registered model: ``IRegisteredModel``."""
        return [jsonable(m) for m in wb.models()]

    def versions(self, name: str) -> list[dict[str, Any]]:
        """The versions of ``name``, newest first, each with where it is deployed: ``IModelVersion``."""
        found = wb.versions(name)
        where = wb.where_deployed(name)
        return [{**jsonable(v), "uri": v.uri, "deployments": list(where.get(v.version, ()))} for v in found]

    def set_alias(self, name: str, alias: str, version: str) -> dict[str, Any]:
        """Point ``alias`` of ``name`` at ``version``; the version as it is now."""
        if not version:
            raise InvalidInputError(f"give the version the alias {alias!r} should point at: {{\"version\": \"1\"}}")
        changed = wb.set_alias(name, alias, version)
        return {**jsonable(changed), "uri": changed.uri}

    # -- deployments ---------------------------------------------------------------------------

    def deployments(self) -> list[dict[str, Any]]:
        """Every deployment with its live state, health, policy verdict and alert state: ``IDeployment``."""
        found = wb.deployments()
        return [{**d.to_dict(), **g.to_dict()} for d, g in zip(found, self.glances.of(found), strict=True)]

    def targets(self) -> list[dict[str, Any]]:
        """The deployment targets installed (``wb.deploy_targets()``), with their options: ``ITarget``."""
        return [t.to_dict() for t in wb.deploy_targets()]

    def deploy(self, model_uri: str, target: str = "local", name: str | None = None) -> dict[str, Any]:
        """Serve ``model_uri`` on ``target``; returns once it is ready (or raises why not). A name
        already in use is refused: the deploy dialog creates a deployment, it never replaces one."""
        if not model_uri:
            raise InvalidInputError('say what to deploy: {"model_uri": "models:/NAME@ALIAS", "target": "local"}')
        return wb.deploy(model_uri, target=target or "local", name=name or None, replace=False).to_dict()

    def stop(self, name: str) -> dict[str, Any]:
        """Stop deployment ``name``."""
        wb.stop(name)
        return {"name": name, "stopped": True}

    def rollback(self, name: str) -> dict[str, Any]:
        """Serve again what ``name`` served before its last change."""
        return wb.rollback(name).to_dict()

    # -- notebook snippets ---------------------------------------------------------------------

    def model_snippet(self, name: str, version: str | None = None, alias: str | None = None) -> dict[str, str]:
        """Code that loads a registered model version (checked to exist): ``ISnippet``."""
        uri = _model_uri(name, version, alias)
        wb.resolve(uri)
        return {"code": f"import workbench as wb\n\nmodel = wb.load_model({json.dumps(uri)})\nmodel"}

    def deployment_snippet(self, name: str) -> dict[str, str]:
        """Code that gets a deployment (checked to exist) to predict with: ``ISnippet``."""
        deployment = wb.get_deployment(name)
        return {
            "code": (
                f"import workbench as wb\n\ndeployment = wb.get_deployment({json.dumps(name)})\n"
                f"# deployment.predict(X) sends a DataFrame to {deployment.url or 'the deployment'}\n"
                "deployment"
            )
        }
