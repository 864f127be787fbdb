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

import dataclasses
import json
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import pandas as pd

from workbench.config import get_settings
from workbench.deployment.base import (
    DeploymentSpec,
    OnEvent,
    Placement,
    SupportsChallenger,
    Target,
    TargetHandle,
    TargetStatus,
    TrafficPolicy,
    load_target,
)
from workbench.deployment.store import DeploymentRecord, DeploymentStore, RevisionRecord
from workbench.errors import (
    DeploymentChangedWarning,
    DeploymentError,
    DeploymentNotFoundError,
    InvalidInputError,
    NameTakenError,
    WorkbenchError,
)
from workbench.routing.bandit import BanditSnapshot
from workbench.routing.router import feedback_token_for
from workbench.predlog import (
    FeedbackReport,
    LogRows,
    PredictionPage,
    ServerSource,
    feedback_items,
    labelled_rows,
    recent_rows,
    send_feedback,
)
from workbench.tables import encode_split

__all__ = [
    "Deployment",
    "abort",
    "default_name",
    "deploy",
    "deployment_history",
    "deployments",
    "get_deployment",
    "log_feedback",
    "logs",
    "promote",
    "resolve_model",
    "rollback",
    "set_traffic",
    "start_challenger",
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
    #: The target's typed handle on the running servers (pids, container ids, ...); ``None`` while
    #: the deployment is being created or when its record cannot be read.
    handle: TargetHandle | None
    #: URLs that together return every prediction this deployment logged, each record once.
    log_sources: tuple[str, ...]
    #: The version served beside the champion, and how traffic is shared with it.
    challenger_uri: str | None = None
    challenger_version: str | None = None
    traffic: Mapping[str, Any] | None = None
    #: The router's bandit as read just now (shares, rewards), when traffic is shared by a bandit.
    bandit: BanditSnapshot | None = None
    #: What the call that returned this did, in words: ``created``, ``unchanged`` (the name already
    #: served that version), ``updated from version 1 to version 3``, ...; ``None`` for a look-up.
    change: str | None = None
    #: The alias it follows (``champion`` when deployed from ``models:/NAME@champion``): promoting its
    #: challenger moves that alias too. ``None`` when it was deployed from a version.
    alias: str | None = None

    @property
    def feedback_token(self) -> str | None:
        """The token feedback sent to this deployment carries (``Authorization: Bearer TOKEN``):
        issued by the deployment, required when its router is reached from other machines, and sent
        by :meth:`log_feedback` itself; ``None`` for a deployment without a router."""
        token = getattr(self.handle, "token", None)
        return feedback_token_for(token) if isinstance(token, str) and token else None

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """Direct URLs of the champion's servers (each keeps its own prediction log)."""
        urls = self.handle.replica_urls if self.handle is not None else ()
        return urls or ((self.url,) if self.url else ())

    @property
    def shares(self) -> dict[str, float]:
        """The share of answers each version gives now: ``{"champion": 0.8, "challenger": 0.2}``.
        A bandit's are live (read from the router); in shadow the challenger answers none."""
        if self.bandit is not None:
            return self.bandit.shares
        traffic = self.traffic or {}
        if self.challenger_uri is None or not traffic:
            return {"champion": 1.0}
        if traffic.get("mode") == "split":
            share = float(traffic.get("challenger_share", 0.0))
            return {"champion": 1.0 - share, "challenger": share}
        return {"champion": 1.0, "challenger": 0.0}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name, "target": self.target, "url": self.url, "model_uri": self.model_uri,
            "model_name": self.model_name, "model_version": self.model_version, "revision": self.revision,
            "state": self.state, "healthy": self.healthy, "detail": self.detail, "created": self.created,
            "updated": self.updated, "user": self.user, "challenger_uri": self.challenger_uri,
            "challenger_version": self.challenger_version, "traffic": dict(self.traffic) if self.traffic else None,
            "alias": self.alias,
            "shares": self.shares if self.challenger_uri else None,
            "bandit": ({k: v for k, v in self.bandit.to_dict().items() if k != "changes"}
                       if self.bandit is not None else None),
            "change": self.change,
        }

    def _repr_html_(self) -> str:
        from workbench.cards import Tone, card

        badges: list[tuple[str, Tone]] = [(self.state, "good" if self.state == "running" else "warn"),
                                          ("healthy" if self.healthy else "not healthy",
                                           "good" if self.healthy else "bad")]
        challenger = (f"v{self.challenger_version} ({TrafficPolicy.describe(self.traffic)})"
                      if self.challenger_uri else None)
        shares = (", ".join(f"{arm} {share:.0%}" for arm, share in self.shares.items())
                  if self.bandit is not None else None)
        return card("Deployment", self.name, badges=badges, rows=[
            ("URL", self.url), ("model", f"{self.model_name} v{self.model_version}" if self.model_version
                                else self.model_uri),
            ("challenger", challenger), ("shares now", shares), ("target", self.target),
            ("what changed", self.change),
            ("detail", None if self.healthy else self.detail), ("revision", self.revision),
            ("updated", f"{self.updated} by {self.user}"),
        ])

    def predict(self, data: pd.DataFrame, timeout: float = 60.0, *, request_id: str | None = None,
                output: str | None = None) -> Any:
        """Predictions for a DataFrame, through the deployment's MLflow ``/invocations`` route.

        ``output`` names another method of the model to answer with, as MLflow's
        ``params={"predict_method": ...}`` does: ``"predict_proba"``, ``"predict_log_proba"``,
        ``"decision_function"`` or ``"score_samples"``, where the model has it (scikit-learn
        estimators and Pipelines, XGBoost, LightGBM, CatBoost). The answer is then a DataFrame with
        ``data``'s index: one column per class, named by the class, for probabilities (and a
        multi-class ``decision_function``); else one column named ``output``. Without ``output``:
        the model's answer as ``/invocations`` gives it (a list, one entry per row).

        A frame larger than one request may hold (the limits the server gives in the model's
        metadata) goes in several requests, in order, and comes back as one answer. ``request_id``
        names the request in the prediction log (default: one the server makes up); the requests
        after the first of a split frame are logged as ``ID.2``, ``ID.3``, ... Send the rows' ground
        truth later with :meth:`log_feedback` under that id."""
        if not isinstance(data, pd.DataFrame):
            raise InvalidInputError("predict takes a pandas DataFrame of the model's input columns")
        if output is not None and not isinstance(output, str):
            raise InvalidInputError("output names one method of the model, e.g. output='predict_proba'")
        # A small frame goes at once (one request, so a router shares the requests among replicas as
        # they come); a large one, or one asking for another output (whose columns the metadata
        # names), first reads the server's limits, as does a small one the server refused as too large.
        metadata = self._metadata(timeout) if output is not None or len(data) > _DIRECT_ROWS else {}
        try:
            predictions = self._send(data, metadata, output, timeout, request_id, retry_too_large=not metadata)
        except _TooLarge:
            metadata = self._metadata(timeout)
            predictions = self._send(data, metadata, output, timeout, request_id, retry_too_large=False)
        if output is None:
            return predictions
        columns = next((o.get("parameters", {}).get("columns") for o in metadata.get("outputs", [])
                        if o.get("name") == output), None)
        frame = pd.DataFrame(predictions, index=data.index)
        if frame.shape[1] == 1 and not (columns and len(columns) == 1):
            frame.columns = [output]
        elif columns and len(columns) == frame.shape[1]:
            frame.columns = columns
        return frame

    def _send(self, data: pd.DataFrame, metadata: Mapping[str, Any], output: str | None, timeout: float,
              request_id: str | None, *, retry_too_large: bool) -> Any:
        """``data`` in requests within the limits ``metadata`` gives (one request without them), the
        answers joined; :class:`_TooLarge` when ``retry_too_large`` and the first is refused as too large."""
        answers: list[Any] = []
        for i, (body, _) in enumerate(_request_bodies(data, metadata.get("parameters") or {}, output)):
            chunk_id = request_id if request_id is None or i == 0 else f"{request_id}.{i + 1}"
            answers.append(self._invoke(body, timeout, chunk_id, too_large=retry_too_large and i == 0))
        return _joined(answers)

    def _metadata(self, timeout: float) -> dict[str, Any]:
        """The model's V2 metadata (outputs, request limits); empty when the server gives none."""
        try:
            response = httpx.get(f"{self.url}/v2/models/{self.model_name}", timeout=timeout)
            metadata = response.json() if response.status_code == 200 else {}
        except (httpx.TransportError, ValueError):
            return {}  # the request itself says what is wrong
        return metadata if isinstance(metadata, dict) else {}

    def _invoke(self, body: bytes, timeout: float, request_id: str | None, *, too_large: bool = False) -> Any:
        headers = {"content-type": "application/json"}
        if request_id is not None:
            headers["x-request-id"] = request_id
        try:
            response = httpx.post(f"{self.url}/invocations", content=body, headers=headers, timeout=timeout)
        except httpx.TransportError as exc:
            raise DeploymentError(f"deployment {self.name!r} does not answer at {self.url} ({exc}): see "
                                  f"`workbench deployments` and `workbench logs {self.name}`; deploying the same "
                                  "version again starts what stopped") from exc
        if response.status_code == 413 and too_large:
            raise _TooLarge(response.text)
        if response.status_code != 200:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            # A 4xx is about what was sent; a 5xx (a replica gone, the log store full) is the deployment's.
            error = InvalidInputError if response.status_code < 500 else DeploymentError
            raise error(f"deployment {self.name!r} answered {response.status_code}: {message}"
                        + ("" if error is InvalidInputError else "; see `workbench deployments` and "
                           f"`workbench logs {self.name}`"))
        return response.json()["predictions"]

    def predictions(self, since: int = 0, limit: int = 1000) -> PredictionPage:
        """A page of the deployment's prediction log after cursor ``since``, through its front door
        (a deployment with replicas has one log per replica: read them all with :meth:`recent_rows`)."""
        source = ServerSource(self.url)
        try:
            return source.fetch(since, limit)
        finally:
            source.close()

    def log_feedback(self, request_ids: str | Any, truth: Any = None, *, reward: Any = None,
                     rows: Any = None) -> FeedbackReport:
        """Send what really happened for answered rows: their ``truth`` and/or a ``reward``.

        ``request_ids``: one id (then ``truth``/``reward`` hold one value per row of that request,
        in order) or one id per value. ``rows``: each value's row in its request (default: 0, or the
        position within the one request). Recorded durably by the replica and version that answered;
        the report says, per row, ``recorded``, ``corrected``, ``duplicate``, ``unknown`` or
        ``out_of_range``.
        """
        return log_feedback(self.name, _feedback_frame(request_ids, truth, reward, rows), deployment=self)

    def recent_rows(self, rows: int = 1000) -> LogRows:
        """The newest ``rows`` predicted rows over every log of this deployment (each replica's, and
        the challenger's), oldest first: inputs in their training dtypes, outputs, and ``request_id``,
        ``ts``, ``model_version``, ``seq`` and ``source`` for each row."""
        return recent_rows(self.log_sources, rows)

    def labelled_rows(self, rows: int = 1000) -> LogRows:
        """:meth:`recent_rows` with each row's position in its request (``row``) and the feedback it
        got: ``truth`` and ``reward``, missing where none arrived yet."""
        return labelled_rows(self.log_sources, rows)


#: Rows ``Deployment.predict`` sends in one request without reading the server's limits first; a
#: server that takes fewer answers 413, and the limits are read then.
_DIRECT_ROWS = 1000


class _TooLarge(Exception):
    """A request refused as too large before the server's limits were read."""


def _request_bodies(data: pd.DataFrame, limits: Mapping[str, Any], output: str | None) -> Iterator[tuple[bytes, int]]:
    """``/invocations`` bodies for ``data``, in order, each within the server's ``max_rows`` and
    ``max_body_bytes`` (a part over the bytes is split again; a single row over them is sent as is,
    and the server says why it refuses it)."""
    max_rows = limits.get("max_rows")
    max_bytes = limits.get("max_body_bytes")
    step = max_rows if isinstance(max_rows, int) and max_rows > 0 else max(len(data), 1)
    params = {"params": {"predict_method": output}} if output is not None else {}
    start = 0
    while True:
        chunk = data.iloc[start:start + step]
        # Exact values: pandas' to_json keeps 10 significant digits and writes datetimes as epoch
        # milliseconds; encode_split writes every float to the last bit and datetimes in ISO 8601.
        body = json.dumps({"dataframe_split": encode_split(chunk), **params}).encode()
        if isinstance(max_bytes, int) and len(body) > max_bytes and len(chunk) > 1:
            step = max(1, min(len(chunk) - 1, int(len(chunk) * max_bytes / len(body) * 0.95)))
            continue
        yield body, len(chunk)
        start += len(chunk)
        if start >= len(data):
            return


def _joined(answers: list[Any]) -> Any:
    """The ``predictions`` of several requests as one: lists joined, columns (a dict) joined per key."""
    if len(answers) == 1:
        return answers[0]
    if all(isinstance(a, dict) for a in answers):
        return {key: [v for a in answers for v in a[key]] for key in answers[0]}
    return [v for a in answers for v in a]


def _feedback_frame(request_ids: Any, truth: Any, reward: Any, rows: Any) -> pd.DataFrame:
    """The table :func:`log_feedback` takes, from :meth:`Deployment.log_feedback`'s arguments."""
    if truth is None and reward is None:
        raise InvalidInputError("log_feedback needs truth (the true values), reward, or both")
    columns = {key: list(value) if _listlike(value) else [value]
               for key, value in (("truth", truth), ("reward", reward)) if value is not None}
    n = max(len(v) for v in columns.values())
    if any(len(v) != n for v in columns.values()):
        raise InvalidInputError("truth and reward must have one value per row, as many of each")
    if isinstance(request_ids, str):
        ids = [request_ids] * n
        positions = list(rows) if rows is not None else list(range(n))
    else:
        ids = list(request_ids)
        positions = list(rows) if rows is not None else [0] * len(ids)
    if len(ids) != n or len(positions) != n:
        raise InvalidInputError(f"{n} values but {len(ids)} request ids and {len(positions)} rows: give one "
                                "request id (the values are its rows, in order) or one per value")
    return pd.DataFrame({"request_id": ids, "row": positions, **columns})


def _listlike(value: Any) -> bool:
    return isinstance(value, (list, tuple, pd.Series, pd.Index)) or (
        hasattr(value, "__len__") and hasattr(value, "dtype") and getattr(value, "ndim", 0) == 1)


def log_feedback(name: str, feedback: pd.DataFrame, *, deployment: Deployment | None = None) -> FeedbackReport:
    """Send ground truth and/or rewards for rows deployment ``name`` answered.

    ``feedback`` has a ``request_id`` column (the id each answer carried, or the one given to
    :meth:`Deployment.predict`), an optional ``row`` column (the row's position in its request, 0
    when absent) and a ``truth`` and/or ``reward`` column. It goes through the deployment's front
    door, so with replicas or a challenger it reaches the server that answered. Returns the status
    of each row (see :class:`~workbench.predlog.FeedbackReport`).
    """
    dep = deployment or get_deployment(name)
    items = feedback_items(feedback)
    if not dep.url:
        raise DeploymentError(f"deployment {name!r} has no URL yet ({dep.state}): wait until it is running")
    return send_feedback(dep.url, dep.model_name, items, token=dep.feedback_token)


def _store() -> DeploymentStore:
    return DeploymentStore(get_settings().workspace_db)


def _workdir(name: str) -> Path:
    return get_settings().deployments_dir / name


def _placement(target: Target, record: DeploymentRecord) -> Placement:
    """Where ``record``'s deployment runs, its handle read by its target."""
    if record.placement is None:
        raise DeploymentError(f"deployment {record.name!r} is still being created: try again when it is running")
    return Placement.from_dict(record.placement, target.read_handle)


def _live(record: DeploymentRecord) -> Deployment:
    handle: TargetHandle | None = None
    url = ""
    sources: tuple[str, ...] = ()
    if record.placement is None:
        status = TargetStatus("starting", False, "being created")
    else:
        url = str(record.placement.get("url", ""))
        try:
            target = load_target(record.target)
            placement = _placement(target, record)
            handle, sources = placement.handle, placement.log_sources
            status = target.status(placement)
        except WorkbenchError as exc:
            status = TargetStatus("gone", False, str(exc))
    return Deployment(
        name=record.name, target=record.target, url=url, model_uri=record.model_uri,
        model_name=record.model_name, model_version=record.model_version, revision=record.revision,
        state=status.state, healthy=status.healthy, detail=status.detail, created=record.created,
        updated=record.updated, user=record.user, handle=handle, log_sources=sources or ((url,) if url else ()),
        challenger_uri=record.challenger_uri, challenger_version=record.challenger_version,
        traffic=record.traffic, bandit=_read_bandit(record, url) if status.state == "running" else None,
        alias=_alias_of(record.requested_uri, record.model_name),
    )


def _read_bandit(record: DeploymentRecord, url: str) -> BanditSnapshot | None:
    """The router's bandit, when ``record``'s traffic is shared by one, with every share move it saw
    written to the audit trail (once each: see :func:`workbench.audit.record_share_changes`).
    ``None`` when the router cannot be read now; its moves wait there for the next reader."""
    if not url or (record.traffic or {}).get("mode") != "bandit":
        return None
    try:
        response = httpx.get(f"{url}/workbench/router", timeout=5)
        snapshot = BanditSnapshot.from_dict(response.json()["bandit"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError, InvalidInputError):
        return None
    from workbench.audit import ShareMove, record_share_changes

    record_share_changes(
        [ShareMove(snapshot.run, c.seq, c.ts, c.shares, c.rewards) for c in snapshot.changes],
        deployment=record.name, model_name=record.model_name, from_version=record.model_version,
        to_version=record.challenger_version, target=record.target, strategy=snapshot.strategy)
    return snapshot


def resolve_model(model_uri: str) -> tuple[str, str, str | None]:
    """(exact URI to serve, model name, version) for any model URI; an alias is pinned to its version
    now. Checks the model exists and has a signature (a server could not check requests without)."""
    from mlflow.models import get_model_info

    from workbench import _mlflow
    from workbench.errors import ModelNotFoundError
    from workbench.registry import check_model_uri, registered_version

    check_model_uri(model_uri)
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


def default_name(model_name: str) -> str:
    """The deployment name used when none is given: the model name, made DNS-safe."""
    return re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")[:63] or "model"


def deploy(
    model_uri: str,
    *,
    target: str = "local",
    name: str | None = None,
    port: int | None = None,
    image: str | None = None,
    replace: bool = True,
    on_event: OnEvent | None = None,
    **options: Any,
) -> Deployment:
    """Serve ``model_uri`` on ``target`` under ``name`` and return once it is ready.

    ``target`` is ``local`` (a process), ``docker`` (a container; the model is packaged first
    unless ``image`` is given) or another registered target URI. ``port`` fixes the port (else a
    free one). An alias is resolved now: the deployment serves that exact version until updated.
    Nothing is left behind when it fails. ``on_event`` sees each image build event; without it a
    Docker build prints its steps as lines of text.

    Deploying converges, so a cell can be run again (deployments outlive the kernel): when ``name``
    already serves this exact version on ``target`` it is returned as it is (``change ==
    "unchanged"``); when it serves another version it is updated to this one behind the health gate
    (the old one serves until the new one is ready) and a :class:`DeploymentChangedWarning` says so.
    ``replace=False`` refuses an existing name instead (:class:`NameTakenError`).
    """
    from workbench.governance import enforce

    exact, model_name, version = resolve_model(model_uri)
    enforce(exact, "deploy")
    name = name or default_name(model_name)
    if not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a valid deployment name: use lowercase letters, digits and '-' "
            "(at most 63, starting and ending with a letter or digit)"
        )
    target_impl = load_target(target)  # an unknown target or option fails before a name is reserved
    settings = get_settings()
    stored_options = {k: v for k, v in {"port": port, "image": image, **options}.items() if v is not None}
    target_impl.check_options(stored_options)
    if on_event is None:
        on_event = _print_build_step
    store = _store()
    if replace:
        try:
            existing = store.get(name)
        except DeploymentNotFoundError:
            existing = None
        if existing is not None and existing.status != "creating":
            return _converge(existing, target, model_uri, exact, version, image, on_event)
    record = store.reserve(name, target, model_uri, exact, model_name, version, stored_options, settings.user)
    spec = DeploymentSpec(name=name, model_uri=exact, model_name=model_name, model_version=version,
                          revision=record.revision, workdir=_workdir(name), options=stored_options)
    try:
        placement = target_impl.deploy(spec, on_event=on_event)
    except BaseException:
        store.release(name)
        raise
    store.activate(name, placement.to_dict(), "deploy", settings.user)
    _audit("deploy", name, target, model_name, None, version, exact)
    return dataclasses.replace(get_deployment(name), change="created")


def _converge(record: DeploymentRecord, target: str, model_uri: str, exact: str, version: str | None,
              image: str | None, on_event: OnEvent) -> Deployment:
    """Make the existing deployment ``record`` serve ``exact``: as it is when it already does and
    answers, else updated behind the health gate (a warning says which versions). An ``image``
    given is used for the update; the running one is not compared with it."""
    if record.target.strip().lower().rstrip(":/") != target.strip().lower().rstrip(":/"):
        raise NameTakenError(
            f"a deployment named {record.name!r} already runs on {record.target}, not {target}: choose "
            f"another name, or stop it first with `workbench stop {record.name}`"
        )
    current = get_deployment(record.name)
    if record.model_uri == exact and current.healthy:
        return dataclasses.replace(current, change="unchanged")
    after = f"version {version}" if version else exact
    if record.model_uri == exact:  # the same model, but its servers stopped answering: start them again
        change = f"restarted {after} (it was {current.state})"
    else:
        before = f"version {record.model_version}" if record.model_version else record.model_uri
        change = f"updated from {before} to {after}"
    warnings.warn(f"deployment {record.name!r} already existed: {change}; pass replace=False to be refused "
                  "instead", DeploymentChangedWarning, stacklevel=3)
    updated = _replace(record.name, model_uri, "update", {"image": image}, on_event)
    return dataclasses.replace(updated, change=change)


def _print_build_step(event: Any) -> None:
    """The default ``on_event``: one line of text per image build step, on stdout (a notebook shows
    it in the cell as it comes; stderr would draw every line as an error)."""
    if event.kind == "step" and event.total_steps:
        done = int(20 * (event.step or 0) / event.total_steps)
        print(f"building [{'#' * done}{'.' * (20 - done)}] {event.step}/{event.total_steps} "
              f"{event.message[:60]}", file=sys.stdout, flush=True)
    elif event.kind == "done":
        print(event.message, file=sys.stdout, flush=True)


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
    target = load_target(record.target)
    return target.logs(_placement(target, record), tail)


def _replace(name: str, model_uri: str, action: str, options: Mapping[str, Any],
             on_event: OnEvent | None = None, *, move_alias: bool = False) -> Deployment:
    """Serve ``model_uri`` under ``name``. With ``move_alias``, a deployment made from
    ``models:/NAME@ALIAS`` keeps following that alias, which moves to the version now served (when
    it is a version of the same model)."""
    store = _store()
    record = store.get(name)
    target = load_target(record.target)
    current = _placement(target, record)
    from workbench.governance import enforce

    exact, model_name, version = resolve_model(model_uri)
    enforce(exact, "deploy")
    same_model = model_name == record.model_name and version is not None
    alias = _alias_of(record.requested_uri, record.model_name) if move_alias and same_model else None
    # An image given when deploying holds that model: never reuse it for another one.
    merged = {k: v for k, v in record.options.items() if k != "image"}
    merged.update({k: v for k, v in options.items() if v is not None})
    target.check_options(merged)
    spec = DeploymentSpec(name=name, model_uri=exact, model_name=model_name, model_version=version,
                          revision=record.revision + 1, workdir=_workdir(name), options=merged)
    _collect_share_moves(record)  # an update ends any challenger: its bandit's last moves first
    placement = target.update(current, spec, on_event=on_event)
    store.replace(name, requested_uri=record.requested_uri if alias else model_uri, model_uri=exact,
                  model_name=model_name, model_version=version, placement=placement.to_dict(), action=action,
                  user=get_settings().user)
    _audit(action, name, record.target, model_name, record.model_version, version, exact)
    if alias and version is not None:
        from workbench.registry import set_alias

        set_alias(model_name, alias, version)  # writes its own audit record
    return dataclasses.replace(get_deployment(name),
                               change=f"{action}: version {record.model_version} to version {version}")


def _audit(action: str, name: str, target: str, model_name: str, before: str | None, after: str | None,
           model_uri: str | None, *, traffic: Mapping[str, Any] | None = None) -> None:
    """One audit-trail record of a change to deployment ``name`` (with the traffic policy it set)."""
    from workbench.audit import record

    details: dict[str, Any] = {"model_uri": model_uri} if model_uri else {}
    if traffic is not None:
        details["traffic"] = dict(traffic)
    record(action, model_name=model_name, from_version=before, to_version=after, target=target,
           deployment=name, details=details or None)


def update(name: str, model_uri: str, *, on_event: OnEvent | None = None, **options: Any) -> Deployment:
    """Serve ``model_uri`` under ``name`` instead; if the new server never becomes ready, the old
    one keeps serving and a HealthCheckError says why. ``options`` (``image``, ...) apply to this
    version; the rest of the deployment's options carry over. ``on_event`` sees each image build
    event while the model is packaged."""
    return _replace(name, model_uri, "update", options, on_event)


def rollback(name: str) -> Deployment:
    """Serve again the model version that ``name`` served before its last update, promotion or rollback.

    A deployment made from ``models:/NAME@ALIAS`` keeps following that alias, and the alias moves
    back with it to the version served again, as :func:`promote` moved it forward: the registry's
    ``@champion`` and what the deployment serves stay the same version.
    """
    record = _store().get(name)
    served = [h for h in _store().history(name) if h.action != "stop"]
    current = record.model_uri
    previous = next((h for h in reversed(served) if h.model_uri != current), None)
    if previous is None:
        raise DeploymentError(f"deployment {name!r} has served only {current}: there is nothing to roll back to")
    return _replace(name, previous.model_uri, "rollback", {}, move_alias=True)


def stop(name: str) -> None:
    """Stop ``name`` and remove its record; its prediction log and history are kept."""
    store = _store()
    record = store.get(name)
    if record.placement is not None:
        _collect_share_moves(record)
        target = load_target(record.target)
        target.delete(_placement(target, record))
    store.remove(name, get_settings().user)
    _audit("stop", name, record.target, record.model_name, record.model_version, None, None)



# -- champion / challenger ----------------------------------------------------------------------


class _ChallengerTarget(Target, SupportsChallenger, Protocol):
    """A target that can also serve a challenger."""


def _challenger_target(record: DeploymentRecord) -> tuple[_ChallengerTarget, Placement]:
    """The deployment's target, checked to support challengers, and where the deployment runs."""
    target = load_target(record.target)
    if not isinstance(target, SupportsChallenger):
        raise DeploymentError(f"the {record.target!r} target cannot serve a challenger beside the champion")
    return target, _placement(target, record)


def _policy(share: float | None, shadow: bool | None, strategy: str | None, epsilon: float | None,
            current: Mapping[str, Any] | None) -> TrafficPolicy:
    """The policy asked for, starting from ``current`` (a stored :meth:`TrafficPolicy.to_dict`)."""
    now = TrafficPolicy.from_dict(current) if current else None
    if strategy is not None or epsilon is not None:
        if shadow:
            raise InvalidInputError("a challenger is in shadow or shared by a bandit, not both: drop shadow=True")
        if share is not None:
            raise InvalidInputError("a bandit sets the shares itself from the rewards fed back: give share or "
                                    "strategy, not both")
        if strategy is None:
            if now is None or now.mode != "bandit":
                raise InvalidInputError("epsilon goes with strategy='epsilon_greedy'")
            strategy = now.strategy
        return TrafficPolicy.bandit(str(strategy), epsilon)
    if share is None and shadow is None and now is not None:
        return now
    mode: Literal["split", "shadow"] = "split"
    if shadow or (shadow is None and now is not None and now.mode == "shadow"):
        mode = "shadow"
    default_share = now.challenger_share if now is not None else 0.1
    return TrafficPolicy(mode=mode, challenger_share=default_share if share is None else share)


def start_challenger(name: str, model_uri: str, *, share: float | None = None, shadow: bool = False,
                     strategy: Literal["thompson", "epsilon_greedy"] | None = None, epsilon: float | None = None,
                     on_event: OnEvent | None = None, replace: bool = True, **options: Any) -> Deployment:
    """Serve ``model_uri`` beside the champion of ``name``: ``share`` of requests go to it (0.1 by
    default), or with ``shadow=True`` every request is mirrored to it and only the champion answers,
    or with ``strategy`` (``"thompson"`` or ``"epsilon_greedy"``, with ``epsilon``) a bandit shares
    requests by the rewards fed back (:func:`log_feedback` with a ``reward`` from 0 to 1; see
    :mod:`workbench.routing.bandit`). ``options`` (``image``, ...) apply to the challenger;
    ``on_event`` sees each image build event while it is packaged.

    It converges like :func:`deploy`: the same challenger already running is kept (only its traffic
    is set to what is asked), another one is replaced with a :class:`DeploymentChangedWarning`, or
    refused with ``replace=False``."""
    store = _store()
    record = store.get(name)
    target, current = _challenger_target(record)
    from workbench.governance import enforce

    policy = _policy(share, shadow, strategy, epsilon, None)
    exact, model_name, version = resolve_model(model_uri)
    enforce(exact, "deploy")
    if record.challenger_uri is not None:
        if record.challenger_uri == exact and not options:
            if dict(record.traffic or {}) == policy.to_dict():
                return dataclasses.replace(get_deployment(name), change="unchanged")
            changed = _set_policy(name, policy)
            return dataclasses.replace(changed, change="traffic changed")
        if not replace:
            raise DeploymentError(
                f"deployment {name!r} already has a challenger ({record.challenger_uri}): abort it with "
                f"`workbench abort {name}` first, or pass replace=True to swap it"
            )
        warnings.warn(f"deployment {name!r} already had a challenger: replaced version "
                      f"{record.challenger_version} by version {version}", DeploymentChangedWarning, stacklevel=2)
        _collect_share_moves(record)
    merged = {k: v for k, v in record.options.items() if k != "image"}
    merged.update({k: v for k, v in options.items() if v is not None})
    target.check_options(merged)
    spec = DeploymentSpec(name=name, model_uri=exact, model_name=model_name, model_version=version,
                          revision=record.revision + 1, workdir=_workdir(name), options=merged)
    placement = target.start_challenger(current, spec, policy, on_event=on_event)
    store.set_challenger(name, placement=placement.to_dict(), challenger_uri=exact, challenger_version=version,
                         traffic=policy.to_dict(), action="challenger", user=get_settings().user)
    _audit("start_challenger", name, record.target, model_name, record.model_version, version, exact,
           traffic=policy.to_dict())
    before = f" (was version {record.challenger_version})" if record.challenger_uri else ""
    return dataclasses.replace(get_deployment(name), change=f"challenger version {version} started{before}")


def set_traffic(name: str, *, share: float | None = None, shadow: bool | None = None,
                strategy: Literal["thompson", "epsilon_greedy"] | None = None,
                epsilon: float | None = None) -> Deployment:
    """Change the challenger's share of traffic, switch between split and shadow, or let a bandit
    share it (``strategy``, ``epsilon``: see :func:`start_challenger`). A bandit that keeps its
    versions keeps the rewards it counted."""
    record = _store().get(name)
    if record.challenger_uri is None:
        raise DeploymentError(f"deployment {name!r} has no challenger: start one with start_challenger")
    return _set_policy(name, _policy(share, shadow, strategy, epsilon, record.traffic))


def _set_policy(name: str, policy: TrafficPolicy) -> Deployment:
    store = _store()
    record = store.get(name)
    target, current = _challenger_target(record)
    _collect_share_moves(record)
    placement = target.set_policy(current, policy)
    store.set_challenger(name, placement=placement.to_dict(), challenger_uri=record.challenger_uri,
                         challenger_version=record.challenger_version, traffic=policy.to_dict(),
                         action="traffic", user=get_settings().user)
    _audit("set_traffic", name, record.target, record.model_name, record.model_version,
           record.challenger_version, record.challenger_uri, traffic=policy.to_dict())
    return get_deployment(name)


def _collect_share_moves(record: DeploymentRecord) -> None:
    """Before the routes change, write to the audit trail the share moves the router still holds."""
    if record.placement is not None:
        _read_bandit(record, str(record.placement.get("url", "")))


def promote(name: str) -> Deployment:
    """Make the challenger the champion: it takes all traffic, the old champion is stopped."""
    store = _store()
    record = store.get(name)
    target, current = _challenger_target(record)
    if record.challenger_uri is None:
        raise DeploymentError(f"deployment {name!r} has no challenger to promote")
    _collect_share_moves(record)
    placement = target.promote(current)
    alias = _alias_of(record.requested_uri, record.model_name)
    store.replace(name, requested_uri=record.requested_uri if alias else record.challenger_uri,
                  model_uri=record.challenger_uri, model_name=record.model_name,
                  model_version=record.challenger_version, placement=placement.to_dict(), action="promote",
                  user=get_settings().user)
    _audit("promote", name, record.target, record.model_name, record.model_version, record.challenger_version,
           record.challenger_uri)
    if alias and record.challenger_version is not None:
        from workbench.registry import set_alias

        # The deployment was made from models:/NAME@ALIAS: that alias is what "champion" means to
        # its users, so it follows the promotion (set_alias writes its own audit record).
        set_alias(record.model_name, alias, record.challenger_version)
    return get_deployment(name)


def _alias_of(requested_uri: str, model_name: str) -> str | None:
    """The alias a deployment was made from (``models:/NAME@ALIAS`` of its own model), else ``None``."""
    prefix = f"models:/{model_name}@"
    return requested_uri.removeprefix(prefix).rstrip("/") or None if requested_uri.startswith(prefix) else None


def abort(name: str) -> Deployment:
    """Stop the challenger; the champion takes all traffic again."""
    store = _store()
    record = store.get(name)
    target, current = _challenger_target(record)
    if record.challenger_uri is None:
        raise DeploymentError(f"deployment {name!r} has no challenger to abort")
    _collect_share_moves(record)
    placement = target.abort(current)
    store.set_challenger(name, placement=placement.to_dict(), challenger_uri=None, challenger_version=None,
                         traffic=None, action="abort", user=get_settings().user)
    _audit("abort", name, record.target, record.model_name, record.challenger_version, record.model_version,
           record.challenger_uri)
    return get_deployment(name)
