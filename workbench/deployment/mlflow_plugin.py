"""The workbench's targets as an MLflow deployments plugin, for users of MLflow's own tools.

Each installed workbench target is an MLflow deployment target named ``workbench-<target>``
(``[project.entry-points."mlflow.deployments"]``), so what an MLflow user already knows works::

    mlflow deployments create -t workbench-local --name churn -m models:/churn/1 -C port=8000
    mlflow deployments predict -t workbench-local --name churn --input-path rows.json
    mlflow deployments help -t workbench-swarm

    from mlflow.deployments import get_deploy_client
    client = get_deploy_client("workbench-k8s://my-context/ml")
    client.create_deployment("churn", "models:/churn@champion", config={"registry": "reg.example/ml"})

The deployments are the workbench's own (``wb.deployments()``, the review app and the Lab show them);
``-C KEY=VALUE`` are the target's options (``workbench targets TARGET`` lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from workbench.deployment.catalog import deploy_targets, get_target_info
from workbench.deployment.manager import Deployment, deploy, deployments, get_deployment, stop, update
from workbench.errors import InvalidInputError, NotFoundError, WorkbenchError

__all__ = ["PREFIX", "PluginDeploymentClient", "run_local", "target_help"]

#: MLflow target names are the workbench's with this prefix (``workbench-local``, ``workbench-k8s://ctx/ns``).
PREFIX = "workbench-"


def _workbench_target(target_uri: str) -> str:
    """``k8s://ctx/ns`` for ``workbench-k8s://ctx/ns``."""
    if not target_uri.startswith(PREFIX):
        raise MlflowException(f"the workbench plugin serves targets named {PREFIX}<target>, not {target_uri!r}")
    return target_uri[len(PREFIX):]


def _mlflow_error(exc: WorkbenchError) -> MlflowException:
    """MLflow's tools print an MlflowException's message and its error code; ours says what to do."""
    code = (RESOURCE_DOES_NOT_EXIST if isinstance(exc, NotFoundError)
            else INVALID_PARAMETER_VALUE if isinstance(exc, InvalidInputError) else INTERNAL_ERROR)
    return MlflowException(str(exc), error_code=code)


def _described(dep: Deployment) -> dict[str, Any]:
    # MLflow's CLI prints a deployment's "flavor" and "name"; the workbench serves the model's pyfunc.
    return {**dep.to_dict(), "flavor": "python_function"}


def _options(config: Mapping[str, Any] | None, flavor: str | None) -> dict[str, Any]:
    if flavor not in (None, "python_function"):
        raise MlflowException(f"the workbench serves a model's python_function flavor, not {flavor!r}",
                              error_code=INVALID_PARAMETER_VALUE)
    return dict(config or {})


def target_help() -> str:
    """Help for every ``workbench-*`` target (``mlflow deployments help -t workbench-local``)."""
    parts = ["The workbench's deployment targets: a router in front of model servers that speak MLflow's "
             "/invocations and the Open Inference Protocol V2, with a prediction log, drift and feedback. "
             "Target names: " + ", ".join(PREFIX + t.uri for t in deploy_targets()) + "."]
    parts += [PREFIX + t.help for t in deploy_targets()]
    return "\n\n".join(parts)


def run_local(target: str, name: str, model_uri: str, flavor: str | None = None,
              config: Mapping[str, Any] | None = None) -> None:
    """Serve ``model_uri`` on this machine (the ``local`` target), whatever ``target`` names, and print
    where (``mlflow deployments run-local -t workbench-local``)."""
    dep = deploy(model_uri, target="local", name=name, **_options(config, flavor))
    print(f"deployment {dep.name} serves {dep.model_uri} at {dep.url} (stop it with `workbench stop {dep.name}`)")


class PluginDeploymentClient(BaseDeploymentClient):
    """MLflow's deployment client interface over one workbench target."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        self.workbench_target = _workbench_target(target_uri)
        try:
            get_target_info(self.workbench_target)
        except WorkbenchError as exc:
            raise _mlflow_error(exc) from exc

    def _mine(self, dep: Deployment) -> bool:
        return dep.target == self.workbench_target

    def create_deployment(self, name: str, model_uri: str, flavor: str | None = None,
                          config: Mapping[str, Any] | None = None, endpoint: str | None = None) -> dict[str, Any]:
        """Deploy ``model_uri`` as ``name``; a name already in use is refused (use update)."""
        try:
            dep = deploy(model_uri, target=self.workbench_target, name=name, replace=False,
                         **_options(config, flavor))
        except WorkbenchError as exc:
            raise _mlflow_error(exc) from exc
        return _described(dep)

    def update_deployment(self, name: str, model_uri: str | None = None, flavor: str | None = None,
                          config: Mapping[str, Any] | None = None, endpoint: str | None = None) -> dict[str, Any]:
        """Serve ``model_uri`` (default: the version served now) under ``name``, behind the health gate."""
        try:
            current = self.get_deployment(name)
            dep = update(name, model_uri or str(current["model_uri"]), **_options(config, flavor))
        except WorkbenchError as exc:
            raise _mlflow_error(exc) from exc
        return _described(dep)

    def delete_deployment(self, name: str, config: Mapping[str, Any] | None = None,
                          endpoint: str | None = None) -> None:
        """Stop ``name`` (its prediction log is kept)."""
        self.get_deployment(name)  # one of this target's, or a clear error
        try:
            stop(name)
        except WorkbenchError as exc:
            raise _mlflow_error(exc) from exc

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """This target's deployments with their live state."""
        return [_described(d) for d in deployments() if self._mine(d)]

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        """One deployment of this target, with its live state."""
        try:
            dep = get_deployment(name)
        except WorkbenchError as exc:
            raise _mlflow_error(exc) from exc
        if not self._mine(dep):
            raise MlflowException(f"deployment {name!r} runs on the {dep.target!r} target, not "
                                  f"{self.workbench_target!r}: use -t {PREFIX}{dep.target}",
                                  error_code=RESOURCE_DOES_NOT_EXIST)
        return _described(dep)

    def predict(self, deployment_name: str | None = None, inputs: Any = None,
                endpoint: str | None = None) -> PredictionsResponse:
        """The deployment's answers for ``inputs`` (a DataFrame, or what ``pd.DataFrame`` takes)."""
        if deployment_name is None:
            raise MlflowException("name the deployment to predict with", error_code=INVALID_PARAMETER_VALUE)
        self.get_deployment(deployment_name)
        frame = inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame(inputs)
        try:
            answers = get_deployment(deployment_name).predict(frame)
        except WorkbenchError as exc:
            raise _mlflow_error(exc) from exc
        return PredictionsResponse({"predictions": answers})
