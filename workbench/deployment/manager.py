"""Deployments: deploy, list, inspect, update, roll back and stop, on any target.

Example::

    import workbench as wb
    dep = wb.deploy("models:/churn@champion", target="docker", name="churn")
    dep.predict(X.head())                       # through the deployment's /invocations
    wb.update("churn", "models:/churn/4")       # blue/green: the old one serves until the new is ready
    wb.rollback("churn")                        # back to the version before
    wb.stop("churn")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from workbench.config import get_settings
from workbench.deployment.base import DeploymentSpec, Placement, TargetStatus, load_target
from workbench.deployment.store import DeploymentRecord, DeploymentStore, RevisionRecord
from workbench.errors import DeploymentError, InvalidInputError, WorkbenchError

__all__ = [
    "Deployment",
    "deploy",
    "deployment_history",
    "deployments",
    "get_deployment",
    "logs",
    "rollback",
    "stop",
    "update",
]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Deployment:
    """A deployment as it is now: what it serves, where, and whether it answers."""

    name: str
    target: str
    url: str
    model_uri: str
    model_name: str
    model_version: str | None
    revision: int
    state: str
    healthy: bool
    detail: str
    created: str
    updated: str
    user: str
    #: Where the target keeps its handle on the running server (pid, container id, ...).
    handle: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name, "target": self.target, "url": self.url, "model_uri": self.model_uri,
            "model_name": self.model_name, "model_version": self.model_version, "revision": self.revision,
            "state": self.state, "healthy": self.healthy, "detail": self.detail, "created": self.created,
            "updated": self.updated, "user": self.user,
        }

    def predict(self, data: pd.DataFrame, timeout: float = 60.0) -> Any:
        """Predictions for a DataFrame, through the deployment's MLflow ``/invocations`` route."""
        if not isinstance(data, pd.DataFrame):
            raise InvalidInputError("predict takes a pandas DataFrame of the model's input columns")
        body = '{"dataframe_split": ' + data.to_json(orient="split", index=False) + "}"
        response = httpx.post(f"{self.url}/invocations", content=body,
                              headers={"content-type": "application/json"}, timeout=timeout)
        if response.status_code != 200:
            raise InvalidInputError(f"deployment {self.name!r} answered {response.status_code}: "
                                    f"{response.json().get('message', response.text)}")
        return response.json()["predictions"]

    def predictions(self, since: int = 0, limit: int = 1000) -> Any:
        """A page of the deployment's prediction log (``PredictionPage``), after cursor ``since``."""
        from workbench.serving.predlog import PredictionPage

        response = httpx.get(f"{self.url}/workbench/predictions", params={"since": since, "limit": limit},
                             timeout=30)
        response.raise_for_status()
        return PredictionPage.from_json(response.json())


def _store() -> DeploymentStore:
    return DeploymentStore(get_settings().workspace_db)


def _workdir(name: str) -> Path:
    return get_settings().deployments_dir / name


def _live(record: DeploymentRecord) -> Deployment:
    if record.placement is None:
        status = TargetStatus("starting", False, "being created")
        placement = Placement(url="")
    else:
        placement = Placement.from_dict(record.placement)
        try:
            status = load_target(record.target).status(placement)
        except WorkbenchError as exc:
            status = TargetStatus("gone", False, str(exc))
    return Deployment(
        name=record.name, target=record.target, url=placement.url, model_uri=record.model_uri,
        model_name=record.model_name, model_version=record.model_version, revision=record.revision,
        state=status.state, healthy=status.healthy, detail=status.detail, created=record.created,
        updated=record.updated, user=record.user, handle=placement.handle,
    )


def _resolve(model_uri: str) -> tuple[str, str, str | None]:
    """(exact URI to serve, model name, version); checks the model exists and has a signature."""
    from mlflow.models import get_model_info

    from workbench import _mlflow
    from workbench.errors import ModelNotFoundError
    from workbench.registry import registered_version

    version = registered_version(model_uri)
    exact = version.uri if version else model_uri
    _mlflow.ensure_ready()
    with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
        info = get_model_info(exact)
    if info.signature is None:
        raise InvalidInputError(
            f"{model_uri} has no signature, so its server could not check requests: log it with "
            "workbench.log_model(model, training_data=X) (or give signature=)"
        )
    name = version.name if version else Path(model_uri.rstrip("/")).name or "model"
    return exact, name, version.version if version else None


def _default_name(model_name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")[:63] or "model"


def deploy(
    model_uri: str,
    *,
    target: str = "local",
    name: str | None = None,
    port: int | None = None,
    image: str | None = None,
    on_event: Callable[[Any], None] | None = None,
    **options: Any,
) -> Deployment:
    """Serve ``model_uri`` on ``target`` under ``name`` and return once it is ready.

    ``target`` is ``local`` (a process), ``docker`` (a container; the model is packaged first
    unless ``image`` is given) or another registered target URI. ``port`` fixes the port (else a
    free one). An alias is resolved now: the deployment serves that exact version until updated.
    Nothing is left behind when it fails.
    """
    exact, model_name, version = _resolve(model_uri)
    name = name or _default_name(model_name)
    if not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a valid deployment name: use lowercase letters, digits and '-' "
            "(at most 63, starting and ending with a letter or digit)"
        )
    target_impl = load_target(target)  # an unknown target fails before a name is reserved
    settings = get_settings()
    stored_options = {k: v for k, v in {"port": port, "image": image, **options}.items() if v is not None}
    store = _store()
    record = store.reserve(name, target, model_uri, exact, model_name, version, stored_options, settings.user)
    spec = DeploymentSpec(name=name, model_uri=exact, model_name=model_name, model_version=version,
                          revision=record.revision, workdir=_workdir(name),
                          options={**stored_options, "on_event": on_event})
    try:
        placement = target_impl.deploy(spec)
    except BaseException:
        store.release(name)
        raise
    store.activate(name, placement.to_dict(), "deploy", settings.user)
    return get_deployment(name)


def deployments() -> list[Deployment]:
    """Every deployment in the workspace, with its live state."""
    return [_live(r) for r in _store().all()]


def get_deployment(name: str) -> Deployment:
    """One deployment, with its live state."""
    return _live(_store().get(name))


def deployment_history(name: str) -> list[RevisionRecord]:
    """Every deploy, update, rollback and stop of ``name``, oldest first."""
    history = _store().history(name)
    if not history:
        _store().get(name)  # the usual error naming the deployments there are
    return history


def logs(name: str, tail: int = 100) -> str:
    """The last ``tail`` lines the deployment's server wrote."""
    record = _store().get(name)
    if record.placement is None:
        return ""
    return load_target(record.target).logs(Placement.from_dict(record.placement), tail)


def _replace(name: str, model_uri: str, action: str) -> Deployment:
    store = _store()
    record = store.get(name)
    if record.placement is None:
        raise DeploymentError(f"deployment {name!r} is still being created: try again when it is running")
    exact, model_name, version = _resolve(model_uri)
    spec = DeploymentSpec(name=name, model_uri=exact, model_name=model_name, model_version=version,
                          revision=record.revision + 1, workdir=_workdir(name), options=dict(record.options))
    target = load_target(record.target)
    placement = target.update(Placement.from_dict(record.placement), spec)
    store.replace(name, requested_uri=model_uri, model_uri=exact, model_name=model_name,
                  model_version=version, placement=placement.to_dict(), action=action,
                  user=get_settings().user)
    return get_deployment(name)


def update(name: str, model_uri: str) -> Deployment:
    """Serve ``model_uri`` under ``name`` instead; if the new server never becomes ready, the old
    one keeps serving and a HealthCheckError says why."""
    return _replace(name, model_uri, "update")


def rollback(name: str) -> Deployment:
    """Serve again the model version that ``name`` served before its last update or rollback."""
    record = _store().get(name)
    served = [h for h in _store().history(name) if h.action != "stop"]
    current = record.model_uri
    previous = next((h for h in reversed(served) if h.model_uri != current), None)
    if previous is None:
        raise DeploymentError(f"deployment {name!r} has served only {current}: there is nothing to roll back to")
    return _replace(name, previous.model_uri, "rollback")


def stop(name: str) -> None:
    """Stop ``name`` and remove its record; its prediction log and history are kept."""
    store = _store()
    record = store.get(name)
    if record.placement is not None:
        load_target(record.target).delete(Placement.from_dict(record.placement))
    store.remove(name, get_settings().user)

