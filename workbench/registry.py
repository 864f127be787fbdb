"""Registered models, versions, aliases and lineage, on MLflow's model registry.

Example::

    import workbench as wb
    version = wb.register(logged.model_uri, "churn")        # ModelVersion(name='churn', version='1', ...)
    wb.set_alias("churn", "champion", version.version)
    model = wb.load_model("models:/churn@champion")
    wb.lineage("models:/churn@champion")                     # run, git commit, data hash, who, when
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from workbench import _mlflow
from workbench.config import get_settings
from workbench.errors import InvalidInputError, ModelNotFoundError, NotFoundError, WorkbenchError
from workbench.integrity import MANIFEST, TAG_DIGEST, verify_files, verify_folder
from workbench.profile import PROFILE_DIR, ReferenceProfile
from workbench.tracking import (
    TAG_DATA_HASH,
    TAG_GIT_COMMIT,
    TAG_RUN_ID,
    TAG_USER,
    LoggedModel,
    labels_series,
    record_hashes,
)

__all__ = [
    "Lineage",
    "ModelVersion",
    "RegisteredModel",
    "attach_profile",
    "check_model_uri",
    "delete_alias",
    "format_model_uri",
    "get_version",
    "lineage",
    "load_model",
    "load_profile",
    "model_size",
    "model_file",
    "models",
    "register",
    "registered_version",
    "resolve",
    "set_alias",
    "set_version_tag",
    "versions",
    "versions_of_run",
]

_ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,254}$")
_REGISTRY_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")


def format_model_uri(name: str, version: str | int | None = None, *, alias: str | None = None) -> str:
    """The registry URI of a version (``models:/churn/3``) or of an alias (``models:/churn@champion``):
    the one place these are written."""
    if not name or "/" in name or "@" in name:
        raise InvalidInputError(f"{name!r} is not a registered model name")
    if (version is None) == (alias is None):
        raise InvalidInputError(f"give either a version or an alias of {name!r}, not {'both' if alias else 'neither'}")
    if alias is not None:
        if not _ALIAS_RE.match(alias):
            raise InvalidInputError(f"{alias!r} is not an alias: a letter, then letters, digits, '_' or '-'")
        return f"models:/{name}@{alias}"
    if not str(version).isdigit():
        raise InvalidInputError(f"{version!r} is not a version number of {name!r}")
    return f"models:/{name}/{version}"


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model, with its lineage."""

    name: str
    version: str
    #: Where MLflow keeps the model's files (``models:/m-...`` for MLflow 3 logged models).
    source: str
    run_id: str | None
    status: str
    aliases: tuple[str, ...]
    created: pd.Timestamp
    user: str
    git_commit: str | None
    data_hash: str | None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``: the URI that loads exactly this version."""
        return format_model_uri(self.name, self.version)

    def _repr_html_(self) -> str:
        from workbench.cards import Tone, card

        badges: list[tuple[str, Tone]] = [(f"@{a}", "good" if a == "champion" else "plain") for a in self.aliases]
        badges.append((self.status.lower(), "good" if self.status == "READY" else "warn"))
        return card("Model version", f"{self.name} v{self.version}", badges=badges, rows=[
            ("URI", self.uri), ("run", self.run_id), ("registered", f"{self.created:%Y-%m-%d %H:%M} UTC by {self.user}"),
            ("git commit", (self.git_commit or "")[:12]), ("data hash", (self.data_hash or "")[:12]),
            ("description", self.description),
        ])


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: its versions' aliases and the newest version number."""

    name: str
    description: str
    latest_version: str | None
    #: alias -> version number
    aliases: Mapping[str, str]
    created: pd.Timestamp
    updated: pd.Timestamp
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from: run, experiment, code commit, training data, person."""

    name: str
    version: str
    source: str
    run_id: str | None
    experiment_id: str | None
    run_name: str | None
    git_commit: str | None
    data_hash: str | None
    registered_by: str
    registered_at: pd.Timestamp
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "run_name": self.run_name,
            "git_commit": self.git_commit,
            "data_hash": self.data_hash,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at.isoformat(),
            "metrics": dict(self.metrics),
            "params": dict(self.params),
        }

    def _repr_html_(self) -> str:
        from workbench.cards import card

        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(self.metrics.items()))
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return card("Lineage", f"{self.name} v{self.version}", rows=[
            ("run", f"{self.run_name or ''} ({self.run_id})" if self.run_id else None),
            ("experiment", self.experiment_id), ("git commit", (self.git_commit or "")[:12]),
            ("data hash", (self.data_hash or "")[:12]), ("metrics", metrics), ("params", params),
            ("registered", f"{self.registered_at:%Y-%m-%d %H:%M} UTC by {self.registered_by}"),
            ("source", self.source),
        ])


def _ts(ms: int | None) -> pd.Timestamp:
    return pd.Timestamp(ms or 0, unit="ms", tz="UTC")


def _to_version(mv: Any) -> ModelVersion:
    tags = dict(mv.tags or {})
    return ModelVersion(
        name=mv.name,
        version=str(mv.version),
        source=mv.source,
        run_id=mv.run_id or tags.get(TAG_RUN_ID),
        status=str(mv.status),
        aliases=tuple(sorted(mv.aliases or ())),
        created=_ts(mv.creation_timestamp),
        user=tags.get(TAG_USER) or mv.user_id or "",
        git_commit=tags.get(TAG_GIT_COMMIT),
        data_hash=tags.get(TAG_DATA_HASH),
        description=mv.description or "",
        tags=MappingProxyType(tags),
    )


def _find_logged_model(model_uri: str) -> Any:
    """MLflow's LoggedModel behind ``models:/m-<id>`` or ``runs:/<run_id>/<name>``, else ``None``."""
    client = _mlflow.client()
    logged = None
    with _mlflow.translated(ModelNotFoundError, f"logged model {model_uri!r}"):
        if match := re.match(r"^models:/(m-[0-9a-f]+)/?$", model_uri):
            logged = client.get_logged_model(match.group(1))
        elif match := re.match(r"^runs:/([^/]+)/([^/]+)/?$", model_uri):
            run_id, name = match.groups()
            run = client.get_run(run_id)
            found = client.search_logged_models(
                [run.info.experiment_id],
                filter_string=f"source_run_id = '{_quote(run_id)}' AND name = '{_quote(name)}'",
                max_results=1,
            )
            logged = found[0] if found else None
    return logged


def register(
    model: str | LoggedModel,
    name: str,
    *,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Register a logged model (its URI or :class:`LoggedModel`) as a new version of ``name``.

    The version records its lineage as tags: the run it came from, the git commit and the training
    data's hash (when the model was logged with :func:`workbench.log_model`), and who registered it.
    """
    model_uri = model.model_uri if isinstance(model, LoggedModel) else model
    if not isinstance(model_uri, str) or not model_uri:
        raise InvalidInputError("register needs a model URI such as 'models:/m-...' or 'runs:/<id>/model'")
    if not name or "/" in name or "@" in name:
        raise InvalidInputError(f"{name!r} is not a usable model name: avoid '/' and '@'")
    lineage_tags: dict[str, str] = {}
    logged = _find_logged_model(model_uri)
    if logged is not None:
        model_uri = logged.model_uri  # register the logged model itself, not a run-relative path
        lineage_tags = {
            k: v for k, v in (logged.tags or {}).items() if k in (TAG_GIT_COMMIT, TAG_DATA_HASH)
        }
        if logged.source_run_id:
            lineage_tags[TAG_RUN_ID] = logged.source_run_id
    lineage_tags[TAG_USER] = get_settings().user
    lineage_tags.update(tags or {})

    import mlflow

    from workbench.audit import record

    _mlflow.ensure_ready()
    with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
        with _mlflow.quiet_registry():
            mv = mlflow.register_model(model_uri, name, tags=lineage_tags)
        if description:
            _mlflow.client().update_model_version(name, mv.version, description=description)
    record("register", model_name=name, to_version=str(mv.version),
           details={"source": model_uri, "run_id": lineage_tags.get(TAG_RUN_ID)})
    return get_version(name, mv.version)


def models() -> list[RegisteredModel]:
    """Every registered model, by name."""
    client = _mlflow.client()
    out = []
    with _mlflow.translated(ModelNotFoundError, "registered models"):
        found = client.search_registered_models(order_by=["name ASC"])
        for rm in found:
            latest = max((int(v.version) for v in rm.latest_versions or []), default=None)
            out.append(
                RegisteredModel(
                    name=rm.name,
                    description=rm.description or "",
                    latest_version=str(latest) if latest is not None else None,
                    aliases=MappingProxyType({a: str(v) for a, v in (rm.aliases or {}).items()}),
                    created=_ts(rm.creation_timestamp),
                    updated=_ts(rm.last_updated_timestamp),
                    tags=MappingProxyType(dict(rm.tags or {})),
                )
            )
    return out


def _known_models_hint() -> str:
    names = [m.name for m in models()]
    return f"registered models: {', '.join(names)}" if names else "no model is registered yet"


def versions(name: str) -> list[ModelVersion]:
    """Every version of the registered model ``name``, newest first."""
    client = _mlflow.client()
    try:
        with _mlflow.translated(ModelNotFoundError, f"registered model {name!r}"):
            registered = client.get_registered_model(name)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"no registered model named {name!r} ({_known_models_hint()}): check the name, "
                                 f"or register one with workbench.register(model_uri, {name!r})") from exc
    with _mlflow.translated(ModelNotFoundError, f"registered model {name!r}"):
        found = client.search_model_versions(f"name = '{_quote(name)}'", order_by=["version_number DESC"])
    # Version search results do not carry aliases; the registered model has the map.
    by_version: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    return [
        dataclasses.replace(v, aliases=tuple(sorted(by_version.get(v.version, []))))
        for v in map(_to_version, found)
    ]


def versions_of_run(run_id: str) -> list[ModelVersion]:
    """The registered versions whose model run ``run_id`` logged (any registered model), newest first."""
    client = _mlflow.client()
    with _mlflow.translated(ModelNotFoundError, f"versions of run {run_id!r}"):
        found = client.search_model_versions(f"run_id = '{_quote(run_id)}'")
    return sorted(map(_to_version, found), key=lambda v: v.created, reverse=True)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def get_version(name: str, version: str | int | None = None, *, alias: str | None = None) -> ModelVersion:
    """One version of ``name``, by number or by alias (exactly one of the two)."""
    if (version is None) == (alias is None):
        raise InvalidInputError("give either a version number or an alias")
    client = _mlflow.client()
    try:
        with _mlflow.translated(ModelNotFoundError, f"model {name!r}"):
            if alias is not None:
                mv = client.get_model_version_by_alias(name, alias)
            else:
                mv = client.get_model_version(name, str(version))
    except (ModelNotFoundError, InvalidInputError) as exc:
        raise _no_such_version(name, version, alias) from exc
    return _to_version(mv)


def _no_such_version(name: str, version: str | int | None, alias: str | None) -> ModelNotFoundError:
    """What to do when ``name`` has no such version or alias: the versions and aliases there are."""
    try:
        known = versions(name)
    except ModelNotFoundError as missing:
        return missing  # no such model: the message names the registered ones
    numbers = ", ".join(v.version for v in known) or "none"
    aliases = ", ".join(f"@{a} -> {v.version}" for v in known for a in v.aliases) or "none"
    if alias is not None:
        latest = known[0].version if known else "VERSION"
        return ModelNotFoundError(
            f"model {name!r} has no alias @{alias} (versions: {numbers}; aliases: {aliases}): set it with "
            f"workbench.set_alias({name!r}, {alias!r}, {latest}) or give models:/{name}/{latest}"
        )
    return ModelNotFoundError(f"model {name!r} has no version {version} (versions: {numbers}; aliases: {aliases}): "
                              f"give one of those, or list them with `workbench models {name}`")


def resolve(model_uri: str) -> ModelVersion:
    """The registered version a ``models:/name/version`` or ``models:/name@alias`` URI points to."""
    match = _REGISTRY_URI_RE.match(model_uri or "")
    if not match:
        raise InvalidInputError(
            f"{model_uri!r} is not a registered model URI: use models:/<name>/<version> or "
            "models:/<name>@<alias>"
        )
    if match.group("alias"):
        return get_version(match.group("name"), alias=match.group("alias"))
    return get_version(match.group("name"), match.group("version"))


def registered_version(model_uri: str) -> ModelVersion | None:
    """The registered version behind a ``models:/name/version`` or ``models:/name@alias`` URI;
    ``None`` for any other kind of model URI (logged models, runs, folders)."""
    return resolve(model_uri) if _REGISTRY_URI_RE.match(model_uri or "") else None


def set_alias(name: str, alias: str, version: str | int) -> ModelVersion:
    """Point ``alias`` (e.g. ``champion``) of model ``name`` at ``version``; returns that version."""
    if not _ALIAS_RE.match(alias or ""):
        raise InvalidInputError(
            f"{alias!r} is not a valid alias: start with a letter, then letters, digits, '-' or '_'"
        )
    if alias.lower() == "latest" or re.fullmatch(r"v\d+", alias.lower()):
        raise InvalidInputError(f"{alias!r} is reserved by MLflow: choose another alias name")
    from workbench.audit import record

    get_version(name, version)
    try:
        before: str | None = get_version(name, alias=alias).version
    except ModelNotFoundError:
        before = None
    client = _mlflow.client()
    with _mlflow.translated(ModelNotFoundError, f"model {name!r}"):
        client.set_registered_model_alias(name, alias, str(version))
    record("set_alias", model_name=name, from_version=before, to_version=str(version), details={"alias": alias})
    return get_version(name, version)


def delete_alias(name: str, alias: str) -> None:
    """Remove ``alias`` from model ``name``."""
    from workbench.audit import record

    aliased = get_version(name, alias=alias).version
    client = _mlflow.client()
    with _mlflow.translated(ModelNotFoundError, f"model {name!r}"):
        client.delete_registered_model_alias(name, alias)
    record("delete_alias", model_name=name, from_version=aliased, details={"alias": alias})


def set_version_tag(name: str, version: str | int, key: str, value: str) -> None:
    """Set a tag on one model version."""
    get_version(name, version)
    client = _mlflow.client()
    with _mlflow.translated(ModelNotFoundError, f"model {name!r}"):
        client.set_model_version_tag(name, str(version), key, value)


_URI_FORMS = "models:/<name>/<version>, models:/<name>@<alias> or runs:/<run_id>/<path>"


def check_model_uri(model_uri: str) -> None:
    """Fail early, with advice, on a model URI or local path that cannot name a model: a missing
    model, version or alias, a misspelt scheme (``model:/``), a folder without an MLmodel file."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):/", model_uri)
    if _REGISTRY_URI_RE.match(model_uri):
        resolve(model_uri)  # a clear error naming the missing model, version or alias
    elif scheme and "://" not in model_uri and scheme.group(1) not in ("models", "runs", "file"):
        raise InvalidInputError(f"{model_uri!r} is not a model URI ({scheme.group(1)}:/ is no scheme MLflow "
                                f"knows): give {_URI_FORMS}, or a model folder")
    elif re.fullmatch(r"models:/[^/@]+/?", model_uri) and not model_uri.startswith("models:/m-"):
        raise InvalidInputError(f"{model_uri!r} is not a model URI: give {_URI_FORMS}")
    elif ":/" not in model_uri:
        path = Path(model_uri)
        if not path.exists():
            raise ModelNotFoundError(f"no model at {model_uri!r}: give a model folder, or a URI such as {_URI_FORMS}")
        if path.is_dir() and not (path / "MLmodel").is_file():
            raise ModelNotFoundError(
                f"{model_uri!r} is a folder without an MLmodel file, so not a saved model: give the folder "
                f"mlflow.<flavor>.save_model wrote, or a URI such as {_URI_FORMS}"
            )


def _artifact_root(model_uri: str) -> str:
    """Where the files of the model behind ``model_uri`` are stored (a URI or a local folder)."""
    if ":/" not in model_uri:
        return model_uri
    with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
        if model_uri.startswith("models:/"):
            from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

            return str(ModelsArtifactRepository.get_underlying_uri(model_uri))
        if model_uri.startswith("runs:/"):
            logged = _find_logged_model(model_uri)
            if logged is not None:
                return str(logged.artifact_location)
            from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

            return str(RunsArtifactRepository.get_underlying_uri(model_uri))
    return model_uri


def load_model(model_uri: str) -> Any:
    """Load any model URI MLflow understands as a pyfunc model (``models:/name@alias`` and others),
    its files checked first (:func:`verify_model`)."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
        folder = local_model_folder(model_uri, tmp)
        with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
            return mlflow.pyfunc.load_model(str(folder))


def logged_model_tags(model_uri: str) -> Mapping[str, str]:
    """The tags of the logged model behind any model URI (``{}`` for a folder, or a model MLflow
    logged without a logged-model record)."""
    version = registered_version(model_uri)
    uri = version.source if version is not None else model_uri
    logged = _find_logged_model(uri) if ":/" in uri else None
    return dict(logged.tags) if logged is not None else {}


def verify_model(model_uri: str, folder: Path, *, only: Sequence[str] | None = None) -> None:
    """Check the files of ``model_uri`` in ``folder`` (or just the ``only`` paths) against the
    hashes recorded at ``log_model``; :class:`~workbench.errors.IntegrityError` names a changed one
    (see :mod:`workbench.integrity`). A folder given as the URI is checked against its own manifest."""
    expected = logged_model_tags(model_uri).get(TAG_DIGEST) if ":/" in model_uri else None
    verify_folder(folder, expected, f"model {model_uri}", only=only)


def download_model(model_uri: str, dst: str | Path | None = None) -> Path:
    """Download the files of any model URI into ``dst`` (a new temporary folder by default),
    checked against the hashes recorded at ``log_model``."""
    local = Path(model_uri)
    if local.is_dir():  # no store needed: this is how the server inside an image loads its model
        verify_folder(local, None, f"model {model_uri}")
        return local
    import mlflow.artifacts

    _mlflow.ensure_ready()
    check_model_uri(model_uri)
    target = str(dst) if dst is not None else tempfile.mkdtemp(prefix="workbench-model-")
    with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=target))
    verify_model(model_uri, folder)
    return folder


def _local_folder(root: str) -> Path | None:
    """The folder behind an artifact location when it is on this machine."""
    if ":/" in root and not root.startswith("file:"):
        return None
    from urllib.parse import unquote, urlparse

    folder = Path(unquote(urlparse(root).path)) if root.startswith("file:") else Path(root)
    return folder if folder.is_dir() else None


def local_model_folder(model_uri: str, dst: str | Path) -> Path:
    """The files of any model URI as a folder on this machine: the store's own folder when its
    artifacts are here (nothing is copied), else a download into ``dst``."""
    local = Path(model_uri)
    if local.is_dir():
        verify_folder(local, None, f"model {model_uri}")
        return local
    _mlflow.ensure_ready()
    check_model_uri(model_uri)
    folder = _local_folder(_artifact_root(model_uri))
    if folder is None:
        return download_model(model_uri, dst)
    verify_model(model_uri, folder)
    return folder


def model_size(model_uri: str) -> int:
    """The size in bytes of the files of the model behind ``model_uri`` (any model URI, or a model
    folder), read from the artifact store's listing without downloading the model."""
    def folder_size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    local = Path(model_uri)
    if local.is_dir():
        return folder_size(local)
    _mlflow.ensure_ready()
    check_model_uri(model_uri)
    root = _artifact_root(model_uri)
    folder = _local_folder(root)
    if folder is not None:
        return folder_size(folder)
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
        repo = get_artifact_repository(root)
        total = 0
        pending: list[str | None] = [None]  # folders still to list; None is the model's root
        while pending:
            for entry in repo.list_artifacts(pending.pop()):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    total += int(entry.file_size or 0)
    return total


def model_file(model_uri: str, path: str) -> str | None:
    """The text of one file stored with a model (``requirements.txt``, ``MLmodel``, ...), read
    without downloading the rest of the model and checked against the hashes recorded at
    ``log_model``; ``None`` when the model has no such file."""
    text = _stored_file(model_uri, path)
    if text is None or path == MANIFEST:
        return text
    expected = logged_model_tags(model_uri).get(TAG_DIGEST)
    manifest = _stored_file(model_uri, MANIFEST)
    verify_files({path: text.encode()}, manifest.encode() if manifest is not None else None, expected,
                 f"model {model_uri}")
    return text


def _stored_file(model_uri: str, path: str) -> str | None:
    import mlflow.artifacts

    _mlflow.ensure_ready()
    check_model_uri(model_uri)
    root = _artifact_root(model_uri)
    if ":/" not in root or root.startswith("file:"):
        from urllib.parse import unquote, urlparse

        local = (Path(unquote(urlparse(root).path)) if root.startswith("file:") else Path(root)) / path
        return local.read_text() if local.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
                found = mlflow.artifacts.download_artifacts(artifact_uri=f"{root.rstrip('/')}/{path}", dst_path=tmp)
        except NotFoundError:
            return None
        return Path(found).read_text()


def load_profile(model_uri: str) -> ReferenceProfile:
    """The reference profile stored with a model (any model URI, or a local model folder)."""
    import mlflow.artifacts

    _mlflow.ensure_ready()
    check_model_uri(model_uri)
    root = _artifact_root(model_uri)
    if ":/" not in root:
        verify_model(model_uri, Path(root), only=[PROFILE_DIR])
        return ReferenceProfile.load(Path(root) / PROFILE_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{root.rstrip('/')}/{PROFILE_DIR}", dst_path=tmp
                )
        except WorkbenchError as exc:
            raise ModelNotFoundError(
                f"{model_uri!r} has no reference profile: log it with workbench.log_model(model, "
                "training_data=X), or give this version one with workbench.attach_profile(uri, X) "
                "(workbench profile URI --data FILE), so monitoring can compare live data against its "
                "training data"
            ) from exc
        files = {f"{PROFILE_DIR}/{p.relative_to(path).as_posix()}": p.read_bytes()
                 for p in Path(path).rglob("*") if p.is_file()}
        manifest = _stored_file(model_uri, MANIFEST)
        verify_files(files, manifest.encode() if manifest is not None else None,
                     logged_model_tags(model_uri).get(TAG_DIGEST), f"model {model_uri}")
        return ReferenceProfile.load(path)


def _signature_inputs(folder: Path) -> list[str] | None:
    """The input column names of the model's signature, ``None`` without a named signature."""
    from mlflow.models import Model

    try:
        signature = Model.load(str(folder / "MLmodel")).signature
    except Exception:  # an MLmodel MLflow cannot read says so when the model is loaded
        return None
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return None
    return [str(name) for name in signature.inputs.input_names()]


def attach_profile(
    model_uri: str,
    training_data: pd.DataFrame,
    training_labels: pd.Series | Sequence[Any] | None = None,
    *,
    sensitive_features: pd.DataFrame | None = None,
) -> ReferenceProfile:
    """Give a model logged without one (e.g. by ``mlflow.sklearn.log_model``) a reference profile of
    ``training_data``, without logging it again; return the profile.

    The profile is stored with the model's files (``reference_profile/``, where
    :func:`workbench.log_model` puts it), the model's files are hashed from then on
    (:mod:`workbench.integrity`: files already hashed are checked first), the data hash is recorded
    as lineage on the logged model and the version, and the audit trail gets an ``attach_profile``
    row. Drift, explanations and the model card of the version then work as for a model logged with
    :func:`workbench.log_model`. ``training_data`` must hold exactly the model's input columns (its
    signature's, when it has one). A model that already has a profile keeps it::

        mlflow.sklearn.log_model(model, name="model", registered_model_name="churn")
        wb.attach_profile("models:/churn/1", X_train, y_train)
        wb.detect_drift("models:/churn/1", recent_rows)
    """
    from workbench.audit import record

    if not isinstance(model_uri, str) or ":/" not in model_uri:
        raise InvalidInputError(f"attach_profile needs a model URI such as models:/name/1, got {model_uri!r}: "
                                "a model folder is changed with workbench.log_model(..., training_data=X)")
    _mlflow.ensure_ready()
    check_model_uri(model_uri)
    version = registered_version(model_uri)
    logged = _find_logged_model(version.source if version is not None else model_uri)
    if logged is None:
        raise InvalidInputError(
            f"{model_uri!r} has no MLflow logged-model record to store a profile with (it was logged by "
            "MLflow 2 or as plain run artifacts): log it again with workbench.log_model(model, training_data=X)"
        )
    labels = labels_series(training_labels)
    profile = ReferenceProfile.from_data(training_data, target=labels, sensitive=sensitive_features)
    with tempfile.TemporaryDirectory(prefix="workbench-attach-") as tmp:
        folder = local_model_folder(model_uri, Path(tmp) / "model")  # checks files already hashed
        if (folder / PROFILE_DIR).exists():
            raise InvalidInputError(
                f"{model_uri!r} already has a reference profile (of data {logged.tags.get(TAG_DATA_HASH, '?')[:12]}): "
                "a profile describes the data the model was trained on, so it is not replaced; log a new "
                "version with workbench.log_model(model, training_data=X) if the model was retrained"
            )
        inputs = _signature_inputs(folder)
        if inputs is not None and list(training_data.columns.map(str)) != inputs:
            missing = [c for c in inputs if c not in set(training_data.columns.map(str))]
            extra = [str(c) for c in training_data.columns if str(c) not in set(inputs)]
            raise InvalidInputError(
                f"training_data's columns are not the model's inputs (missing {missing}, extra {extra}): "
                f"pass the training features in the signature's order, e.g. X[{inputs[:3]}...]"
            )
        profile.save(Path(tmp) / "attach" / PROFILE_DIR)
        client = _mlflow.client()
        with _mlflow.translated(ModelNotFoundError, f"model {model_uri!r}"):
            client.log_model_artifacts(logged.model_id, str(Path(tmp) / "attach"))
            record_hashes(logged.model_id)
            client.set_logged_model_tags(logged.model_id, {TAG_DATA_HASH: profile.data_hash})
            if version is not None:
                client.set_model_version_tag(version.name, version.version, TAG_DATA_HASH, profile.data_hash)
    record("attach_profile", model_name=version.name if version is not None else None,
           to_version=version.version if version is not None else None,
           details={"source": logged.model_uri, "data_hash": profile.data_hash, "rows": profile.n_rows,
                    "features": len(profile.feature_names)})
    return profile


def lineage(model_uri: str) -> Lineage:
    """Where the version behind a registry URI came from: run, metrics, params, commit, data hash."""
    mv = resolve(model_uri)
    run = None
    if mv.run_id:
        from workbench.tracking import get_run

        try:
            run = get_run(mv.run_id)
        except NotFoundError:  # the run was deleted; the version keeps what it recorded
            run = None
    return Lineage(
        name=mv.name,
        version=mv.version,
        source=mv.source,
        run_id=mv.run_id,
        experiment_id=run.experiment_id if run else None,
        run_name=run.name if run else None,
        git_commit=mv.git_commit or (run.tags.get(TAG_GIT_COMMIT) if run else None),
        data_hash=mv.data_hash,
        registered_by=mv.user,
        registered_at=mv.created,
        metrics=run.metrics if run else MappingProxyType({}),
        params=run.params if run else MappingProxyType({}),
    )
