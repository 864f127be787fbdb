"""Experiments and runs, on MLflow.

The workbench does not wrap MLflow's logging calls: inside :func:`start_run`, ``mlflow.log_param``,
``mlflow.log_metric``, autologging and the rest work as usual against the workspace's store. What
it adds: experiments created race-free with their artifacts in the workspace, :func:`log_model` that
stores a signature, an input example and the training data's reference profile with every model,
and run search and comparison as DataFrames.

Example::

    import workbench as wb
    with wb.start_run(experiment="churn") as run:
        mlflow.log_params({"n_estimators": 50})
        model = RandomForestClassifier(50).fit(X, y)
        mlflow.log_metric("accuracy", model.score(X_test, y_test))
        logged = wb.log_model(model, training_data=X, training_labels=y)
    wb.runs("churn")                       # DataFrame, one row per run
    wb.best_run("churn", "accuracy")       # RunSummary of the best run
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlparse
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from workbench import _mlflow
from workbench import replay as _replay
from workbench._skops import skops_io
from workbench.capture import capture_code as _capture_code
from workbench.capture import git_commit
from workbench.composition import METADATA_KEY as COMPOSITION_KEY
from workbench.composition import depends_on_batch
from workbench.config import get_settings
from workbench.errors import (
    ExperimentNotFoundError,
    InvalidInputError,
    MlflowCompatibilityWarning,
    RunNotFoundError,
)
from workbench.integrity import MANIFEST, TAG_DIGEST, digest, file_hashes, manifest_bytes
from workbench.profile import PROFILE_DIR, ReferenceProfile
from workbench.requirements import model_requirements
from workbench.snapshot import SNAPSHOT_EXPERIMENT, TAG_SNAPSHOT_KEY, SnapshotManifest, content_key, store_snapshot
from workbench.tables import TABLE_SCHEMA_FILE, TableSchema

if TYPE_CHECKING:
    import mlflow

__all__ = [
    "Experiment",
    "LoggedModel",
    "RunSummary",
    "autolog",
    "best_run",
    "compare_runs",
    "experiments",
    "get_experiment",
    "get_run",
    "iter_runs",
    "labels_series",
    "log_model",
    "log_values",
    "record_hashes",
    "RunArtifact",
    "run_artifacts",
    "run_models",
    "metric_history",
    "runs",
    "start_run",
]

#: Tags the workbench writes on runs, logged models and model versions.
TAG_USER = "workbench.user"
TAG_GIT_COMMIT = "workbench.git_commit"
TAG_DATA_HASH = "workbench.data_hash"
TAG_RUN_ID = "workbench.run_id"
TAG_FLAVOR = "workbench.flavor"


@dataclass(frozen=True)
class Experiment:
    """An MLflow experiment."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def internal(self) -> bool:
        """The workbench's own bookkeeping (the training data snapshots), not a user's experiment:
        the review app and the Lab sidebar leave it out unless asked."""
        return self.name == SNAPSHOT_EXPERIMENT


@dataclass(frozen=True)
class RunSummary:
    """One run: identity, state, and its latest params, metrics and tags."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: pd.Timestamp | None
    end_time: pd.Timestamp | None
    user: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to a run by :func:`log_model`."""

    #: ``models:/<model_id>``, loadable with :func:`workbench.load_model`.
    model_uri: str
    model_id: str
    run_id: str | None
    flavor: str
    #: The model signature as MLflow's JSON dict (``{"inputs": ..., "outputs": ...}``).
    signature: Mapping[str, Any] | None
    data_hash: str | None
    git_commit: str | None
    #: The training data snapshot, when one was asked for (``snapshot.stored`` says if it was kept).
    snapshot: SnapshotManifest | None = None


def _to_experiment(exp: Any) -> Experiment:
    return Experiment(
        experiment_id=exp.experiment_id,
        name=exp.name,
        artifact_location=exp.artifact_location,
        lifecycle_stage=exp.lifecycle_stage,
        tags=MappingProxyType(dict(exp.tags or {})),
    )


def get_experiment(name: str, *, create: bool = False) -> Experiment:
    """The experiment called ``name``; with ``create=True`` it is made when missing.

    Creation is safe when several processes ask at once: the loser of the race reads the winner's.
    Embedded experiments keep their artifacts under the workspace's ``artifacts/`` folder.
    """
    if not name or not isinstance(name, str):
        raise InvalidInputError("an experiment needs a non-empty name")
    client = _mlflow.client()
    with _mlflow.translated(ExperimentNotFoundError, f"experiment {name!r}"):
        exp = _mlflow.get_or_create_experiment(name, {TAG_USER: get_settings().user}) if create else (
            client.get_experiment_by_name(name))
    if exp is None:
        known = ", ".join(e.name for e in experiments()) or "none yet"
        raise ExperimentNotFoundError(
            f"no experiment named {name!r} (known: {known}); start a run in it with "
            f"workbench.start_run(experiment={name!r}) to create it"
        )
    return _to_experiment(exp)


def experiments() -> list[Experiment]:
    """All active experiments, most recently created first."""
    client = _mlflow.client()
    with _mlflow.translated(ExperimentNotFoundError, "experiments"):
        found = client.search_experiments(order_by=["creation_time DESC"])
    return [_to_experiment(e) for e in found]


def start_run(
    experiment: str | None = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    description: str | None = None,
) -> mlflow.ActiveRun:
    """Start an MLflow run in ``experiment`` (created when missing) and return MLflow's ActiveRun.

    Use it as a context manager; everything MLflow logs inside goes to the workspace's store. The
    acting user and the git commit (when in a repository) are recorded as tags.
    """
    import mlflow

    exp = get_experiment(experiment or "Default", create=True)
    settings = get_settings()
    run_tags = {TAG_USER: settings.user}
    commit = git_commit()
    if commit:
        run_tags[TAG_GIT_COMMIT] = commit
    run_tags.update(tags or {})
    with _mlflow.translated(ExperimentNotFoundError, f"experiment {exp.name!r}"):
        return mlflow.start_run(
            experiment_id=exp.experiment_id,
            run_name=run_name,
            tags=run_tags,
            nested=nested,
            description=description,
        )


def autolog(**kwargs: Any) -> None:
    """MLflow autologging for every supported library (arguments go to ``mlflow.autolog``).

    Models autologged this way carry no reference profile; log the final model with
    :func:`log_model` for monitoring.
    """
    import mlflow

    _mlflow.ensure_ready()
    mlflow.autolog(**kwargs)


#: What loading a model of each flavor needs besides what the model object refers to (see
#: :func:`workbench.requirements.model_requirements`); other flavors keep MLflow's own inference.
_FLAVOR_LIBRARIES: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "catboost": ("catboost",),
    "statsmodels": ("statsmodels",),
    "pyfunc": ("cloudpickle",),
    "pytorch": ("torch",),
}


def _flavor_of(model: Any) -> str:
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return "pyfunc"
    module = type(model).__module__.split(".", 1)[0]
    known = {
        "sklearn": "sklearn",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "catboost": "catboost",
        "statsmodels": "statsmodels",
        "torch": "pytorch",
        "keras": "keras",
        "tensorflow": "tensorflow",
    }
    if module in known:
        return known[module]
    if hasattr(model, "fit") and hasattr(model, "predict"):
        return "sklearn"  # a scikit-learn compatible estimator from another package
    raise InvalidInputError(
        f"cannot tell how to log a {type(model).__module__}.{type(model).__qualname__}: pass "
        "flavor='sklearn' (or another MLflow flavor name), or wrap it in an mlflow.pyfunc.PythonModel"
    )


def _sklearn_serialization(model: Any, kwargs: dict[str, Any]) -> None:
    """Choose how a scikit-learn model is saved so that it loads where it is served.

    skops (MLflow's default) refuses to load types it does not know are safe. The model was just
    trained in this process, so the types it contains are the caller's own: trust exactly those.
    But skops saves classes and functions by reference, so a custom estimator or a
    ``FunctionTransformer(my_fn)`` defined in a notebook (module ``__main__``) would fail to load in
    the server, and some fitted estimators it writes it cannot read back (a HistGradientBoosting model
    with native categories): loading it once here tells. Those models are saved with cloudpickle,
    which saves what ``__main__`` defines by value, unless skops was asked for by name, which is then
    refused here rather than at deploy.
    """
    if kwargs.get("serialization_format", "skops") != "skops" or "skops_trusted_types" in kwargs:
        return
    skops = skops_io()

    explicit = "serialization_format" in kwargs

    def cloudpickle_instead(why: str, exc: Exception | None = None) -> None:
        if explicit:
            raise InvalidInputError(
                f"{why}: leave serialization_format unset (the workbench then saves it with cloudpickle)"
            ) from exc
        kwargs["serialization_format"] = "cloudpickle"

    try:
        data = skops.dumps(model)
        trusted = list(skops.get_untrusted_types(data=data))
    except Exception as exc:
        return cloudpickle_instead(f"skops cannot save this model ({exc})", exc)
    from_notebook = sorted(t for t in trusted if t.startswith("__main__."))
    if from_notebook:
        return cloudpickle_instead(
            f"the model uses {', '.join(from_notebook)}, defined in this notebook or script, which skops "
            "cannot load in another process (or move those definitions into an importable module)"
        )
    try:
        skops.loads(data, trusted=trusted)
    except Exception as exc:
        return cloudpickle_instead(f"skops cannot read this model back ({exc})", exc)
    kwargs["skops_trusted_types"] = trusted


def _advise_mlflow_limits(schema: TableSchema) -> bool:
    """Say, at log time, which columns MLflow's own ``pyfunc`` scoring cannot take as trained.

    The workbench's server restores every column's exact dtype; MLflow's signature enforcement
    (``mlflow.pyfunc.load_model(...).predict``, ``mlflow models serve``) refuses some of them.
    """
    limited = {
        "nullable-int": "nullable integers with gaps",
        "nullable-bool": "nullable booleans with gaps",
        "category": "category columns",
    }
    notes = [f"{c.name!r} ({limited[c.kind]})" for c in schema.columns if c.kind in limited]
    notes += [f"{c.name!r} (time-zone aware datetimes)" for c in schema.columns if c.timezone]
    if notes:
        warnings.warn(
            "the workbench serves this model exactly, but MLflow's own pyfunc scoring (mlflow models "
            f"serve, mlflow.pyfunc.load_model(...).predict) refuses {', '.join(notes)}; to score it "
            "there too, cast those columns to float64/object/str before fitting",
            MlflowCompatibilityWarning,
            stacklevel=3,
        )
    return bool(notes)


def _example_for_mlflow(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Five training rows in dtypes MLflow's own signature checks take, the same values: rows
    without gaps in nullable columns, categories as their values, time-zone aware datetimes in UTC.

    MLflow validates the example against the signature (a ``PythonModel`` fails to log otherwise);
    the server reads the example back in the training dtypes (``input_types.json``).
    """
    nullable = [c.name for c in schema.columns if c.kind in ("nullable-int", "nullable-bool")]
    complete = frame.dropna(subset=nullable) if nullable else frame
    rows = (complete if len(complete) else frame).head(5).copy()
    for column in schema.columns:
        values = rows[column.name]
        if column.kind == "nullable-int" and not values.isna().any():
            rows[column.name] = values.astype("int64")
        elif column.kind == "nullable-bool" and not values.isna().any():
            rows[column.name] = values.astype(bool)
        elif column.kind == "category":
            rows[column.name] = values.astype(object)
        elif column.timezone is not None:
            rows[column.name] = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return rows


def _predictor(model: Any, flavor: str) -> Any:
    """How the model answers a DataFrame of inputs, as the server will call it once logged."""
    if flavor == "pyfunc":
        return lambda frame: model.predict(None, frame)
    if flavor == "pytorch" and not callable(getattr(model, "predict", None)):
        import numpy as np
        import torch

        def forward(frame: pd.DataFrame) -> Any:
            # What mlflow.pytorch's pyfunc does with a DataFrame: float32 rows through the module.
            with torch.no_grad():
                return model(torch.from_numpy(frame.to_numpy(dtype=np.float32, copy=True))).numpy()
        return forward
    return model.predict


def labels_series(labels: pd.Series | Sequence[Any] | None) -> pd.Series | None:
    """Training labels as the Series a profile stores (a list or array is named ``target``)."""
    if labels is None or isinstance(labels, pd.Series):
        return labels
    return pd.Series(list(labels), name="target")


def log_model(
    model: Any,
    *,
    name: str = "model",
    training_data: pd.DataFrame | None = None,
    training_labels: pd.Series | Sequence[Any] | None = None,
    sensitive_features: pd.DataFrame | None = None,
    input_example: Any = None,
    signature: Any = None,
    flavor: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    capture_code: bool | None = None,
    snapshot_data: bool | None = None,
    batch_invariant: bool | None = None,
    **flavor_kwargs: Any,
) -> LoggedModel:
    """Log a model to the active run with a signature, an input example and a reference profile.

    ``training_data`` (a DataFrame of the model's input features) is profiled and stored with the
    model, hashed for lineage, and used to infer the signature and an input example when those are
    not given. ``sensitive_features`` (e.g. ``people[["sex", "age"]]``, one row per training row)
    are profiled too, so governance can measure proxies and fairness, but never become inputs.
    ``flavor`` defaults to the one matching the model's library (``sklearn`` for
    scikit-learn compatible estimators, ``pyfunc`` for :class:`mlflow.pyfunc.PythonModel`).
    Starts a run in the Default experiment if none is active.

    The code that trained the model is stored with it (``training_code/``: the notebook's executed
    cells or the script, the git commit and the uncommitted diff; see :mod:`workbench.capture`) unless
    ``capture_code=False`` or the ``capture_code`` setting (``WORKBENCH_CAPTURE_CODE=0``) is off.

    With ``snapshot_data=True`` (or the setting ``WORKBENCH_SNAPSHOT_DATA=1``; off by default) the
    training data and labels themselves are stored, once per distinct content, as a Parquet snapshot
    (see :mod:`workbench.snapshot`), so :func:`workbench.reproduce` can re-run the captured code later.
    In a process :func:`workbench.reproduce` started, this call logs the reproduction and ends the
    process (see :mod:`workbench.replay`).

    ``batch_invariant``: whether the model answers a row the same whatever rows are predicted with
    it. Left ``None``, it is found out on a sample of ``training_data`` (see
    :mod:`workbench.composition`; a model given as a code file is not called here, so declare it); a
    model found or declared (``False``) not to be is served one
    request at a time, so its answers stay exactly ``model.predict``'s. A PyTorch ``nn.Module`` is
    logged like any model: ``training_data``'s rows as a float32 tensor ``[-1, n_columns]`` are its
    input example and signature (what MLflow's traced ``pt2`` format needs), its output tensor the
    output; the profile keeps the column names, and the server logs requests under them.
    """
    import mlflow
    from mlflow.models import infer_signature

    _mlflow.ensure_ready()
    flavor = flavor or _flavor_of(model)
    try:
        flavor_module = getattr(mlflow, flavor)
    except AttributeError as exc:
        raise InvalidInputError(f"MLflow has no flavor {flavor!r}: use e.g. 'sklearn' or 'pyfunc'") from exc

    call = _replay.count_call()
    replay = _replay.active_spec()
    if replay is not None and call != replay.call:
        replay = None  # an earlier model of the code: logged in the scratch workspace, as the code wants
    elif replay is not None:
        _replay.enter_real_store(replay)
    settings = get_settings()
    wants_snapshot = settings.snapshot_data if snapshot_data is None else snapshot_data
    if snapshot_data and not isinstance(training_data, pd.DataFrame):
        raise InvalidInputError("snapshot_data=True stores the training data with the model: pass "
                                "training_data=X (and training_labels=y)")
    profile = None
    labels = None
    typed = training_data if isinstance(training_data, pd.DataFrame) else input_example
    table_schema = TableSchema.from_frame(typed) if isinstance(typed, pd.DataFrame) else None
    mlflow_refuses = table_schema is not None and _advise_mlflow_limits(table_schema)
    if training_data is not None:
        labels = labels_series(training_labels)
        profile = ReferenceProfile.from_data(training_data, target=labels, sensitive=sensitive_features)
        if input_example is None:
            input_example = training_data.head(5)
            if mlflow_refuses and table_schema is not None:
                input_example = _example_for_mlflow(training_data, table_schema)
        if flavor == "pytorch" and not callable(getattr(model, "predict", None)):
            # MLflow saves a network as a traced graph (pt2), which needs a tensor example and a
            # tensor signature: the training rows as the float32 matrix its pyfunc feeds the network.
            import numpy as np

            if input_example is None or isinstance(input_example, pd.DataFrame):
                input_example = training_data.head(5).to_numpy(dtype=np.float32)
            if signature is None:
                signature = infer_signature(input_example, _predictor(model, flavor)(training_data.head(5)))
        if signature is None and flavor != "pyfunc":
            try:
                predictions = _predictor(model, flavor)(training_data.head(50))
            except Exception as exc:
                raise InvalidInputError(
                    f"the model could not predict on the first rows of training_data ({exc}); pass "
                    "the features the model was trained on, or give signature= explicitly"
                ) from exc
            signature = infer_signature(training_data.head(50), predictions)
        elif signature is None:
            # A PythonModel: its inputs are the training columns; its outputs are named when it
            # answers without the context MLflow gives it at load time (else the server learns them).
            try:
                predictions = model.predict(None, training_data.head(50))
            except Exception:
                predictions = None
            signature = infer_signature(training_data.head(50), predictions)

    kwargs: dict[str, Any] = dict(flavor_kwargs)
    if batch_invariant is None and isinstance(training_data, pd.DataFrame):
        batch_invariant = not depends_on_batch(_predictor(model, flavor), training_data)
    if batch_invariant is False:
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), COMPOSITION_KEY: False}
    if flavor == "sklearn":
        _sklearn_serialization(model, kwargs)
    if pip_requirements is None and flavor in _FLAVOR_LIBRARIES and not {"extra_pip_requirements", "conda_env"} & set(kwargs):
        # Found here in milliseconds; MLflow would load the model in a new process to find them.
        libraries = list(_FLAVOR_LIBRARIES[flavor])
        if flavor == "sklearn":
            libraries.append("skops" if kwargs.get("serialization_format", "skops") == "skops" else "cloudpickle")
        pip_requirements = model_requirements(model, libraries)
    model_arg = {"python_model": model} if flavor == "pyfunc" else {}
    commit = git_commit()
    wants_code = settings.capture_code if capture_code is None else capture_code
    # A reproduction gets the original's code and snapshot from wb.reproduce, not its own copies.
    code = _capture_code(settings.max_code_bytes, call) if wants_code and replay is None else None
    snapshot = None
    if wants_snapshot and replay is None and isinstance(training_data, pd.DataFrame):
        snapshot = store_snapshot(training_data, labels, settings.max_snapshot_bytes)
    tags = {TAG_USER: settings.user, TAG_FLAVOR: flavor}
    if commit:
        tags[TAG_GIT_COMMIT] = commit
    if profile is not None:
        tags[TAG_DATA_HASH] = profile.data_hash
    if snapshot is not None and snapshot.stored:
        tags[TAG_SNAPSHOT_KEY] = snapshot.key
    if replay is not None:
        tags[_replay.TAG_REPRODUCTION_OF] = replay.original_run_id or replay.original

    active = mlflow.active_run()
    with _mlflow.translated(RunNotFoundError, "run"):
        if active is None:
            with start_run():
                info = _log(flavor_module, flavor, model, model_arg, name, signature,
                            input_example, pip_requirements, tags, kwargs)
        else:
            info = _log(flavor_module, flavor, model, model_arg, name, signature,
                        input_example, pip_requirements, tags, kwargs)
        if profile is not None or table_schema is not None or code is not None or snapshot is not None:
            with tempfile.TemporaryDirectory() as tmp:
                if profile is not None:
                    profile.save(Path(tmp) / PROFILE_DIR)
                if table_schema is not None:
                    table_schema.save(Path(tmp) / TABLE_SCHEMA_FILE)
                if code is not None:
                    code.save(Path(tmp))
                if snapshot is not None:
                    snapshot.save(Path(tmp))
                _mlflow.client().log_model_artifacts(info.model_id, tmp)
        record_hashes(info.model_id)
    if replay is not None:
        key = content_key(training_data, labels) if isinstance(training_data, pd.DataFrame) else None
        _replay.finish(replay, _replay.ReplayOutcome(info.run_id, info.model_id, info.model_uri, key))
    sig = info.signature.to_dict() if info.signature is not None else None
    return LoggedModel(
        model_uri=info.model_uri,
        model_id=info.model_id,
        run_id=info.run_id,
        flavor=flavor,
        signature=MappingProxyType(sig) if sig else None,
        data_hash=profile.data_hash if profile else None,
        git_commit=commit,
        snapshot=snapshot,
    )


def record_hashes(model_id: str) -> None:
    """Hash every file of the logged model into ``workbench/hashes.json`` and tag the logged model
    with the manifest's hash (see :mod:`workbench.integrity`)."""
    import mlflow.artifacts

    client = _mlflow.client()
    root = str(client.get_logged_model(model_id).artifact_location)
    with tempfile.TemporaryDirectory(prefix="workbench-hashes-") as tmp:
        local = Path(unquote(urlparse(root).path)) if root.startswith("file:") else Path(root)
        if (":/" in root and not root.startswith("file:")) or not local.is_dir():
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=root, dst_path=str(Path(tmp) / "model")))
        manifest = manifest_bytes(file_hashes(local))
        out = Path(tmp) / "manifest" / MANIFEST
        out.parent.mkdir(parents=True)
        out.write_bytes(manifest)
        client.log_model_artifacts(model_id, str(Path(tmp) / "manifest"))
    client.set_logged_model_tags(model_id, {TAG_DIGEST: digest(manifest)})


def _log(flavor_module: Any, flavor: str, model: Any, model_arg: dict[str, Any], name: str,
         signature: Any, input_example: Any, pip_requirements: Sequence[str] | None,
         tags: dict[str, str], kwargs: dict[str, Any]) -> Any:
    call = dict(kwargs)
    if pip_requirements is not None:
        call["pip_requirements"] = list(pip_requirements)
    if model_arg:
        return flavor_module.log_model(name=name, signature=signature, input_example=input_example,
                                       tags=tags, **model_arg, **call)
    return flavor_module.log_model(model, name=name, signature=signature,
                                   input_example=input_example, tags=tags, **call)


def _summary(run: Any) -> RunSummary:
    info, data = run.info, run.data
    return RunSummary(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        name=info.run_name or "",
        status=info.status,
        start_time=pd.Timestamp(info.start_time, unit="ms", tz="UTC") if info.start_time else None,
        end_time=pd.Timestamp(info.end_time, unit="ms", tz="UTC") if info.end_time else None,
        user=data.tags.get(TAG_USER) or data.tags.get("mlflow.user") or "",
        params=MappingProxyType(dict(data.params)),
        metrics=MappingProxyType(dict(data.metrics)),
        tags=MappingProxyType({k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}),
    )


def log_values(run_id: str, *, params: Mapping[str, Any] | None = None,
               metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None) -> None:
    """Add params, metrics and tags to run ``run_id`` after it ended (what a later step learnt about
    the model it logged, e.g. a retrain gate's scores). A param already set keeps its value, as MLflow
    requires: logging another value for it raises."""
    client = _mlflow.client()
    with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
        for key, value in (params or {}).items():
            client.log_param(run_id, key, str(value))
        for key, number in (metrics or {}).items():
            client.log_metric(run_id, key, float(number))
        for key, text in (tags or {}).items():
            client.set_tag(run_id, key, str(text))


@dataclass(frozen=True)
class RunArtifact:
    """One file a run logged (a model's files are under its logged model, see :func:`run_models`)."""

    path: str
    size: int | None


def run_artifacts(run_id: str, *, limit: int = 500) -> list[RunArtifact]:
    """The files run ``run_id`` logged (folders walked), at most ``limit``."""
    client = _mlflow.client()
    found: list[RunArtifact] = []
    folders: list[str | None] = [None]
    with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
        while folders and len(found) < limit:
            for info in client.list_artifacts(run_id, folders.pop()):
                if info.is_dir:
                    folders.append(info.path)
                else:
                    found.append(RunArtifact(info.path, info.file_size))
    return sorted(found[:limit], key=lambda a: a.path)


def run_models(run_id: str) -> list[str]:
    """The URIs (``models:/m-...``) of the models run ``run_id`` logged, oldest first."""
    run = get_run(run_id)
    client = _mlflow.client()
    with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
        found = client.search_logged_models([run.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    return [f"models:/{m.model_id}" for m in sorted(found, key=lambda m: m.creation_timestamp or 0)]


def get_run(run_id: str) -> RunSummary:
    """The run with id ``run_id``."""
    client = _mlflow.client()
    with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
        return _summary(client.get_run(run_id))


def iter_runs(
    experiment: str,
    *,
    filter_string: str = "",
    order_by: Sequence[str] | None = None,
    page_size: int = 1000,
    first_page: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Pages of :func:`runs` (``page_size`` runs each), fetched from MLflow as they are consumed.

    A widget shows the first page while the rest loads; a smaller ``first_page`` (e.g. 100, what
    MLflow's own UI asks for) gets rows on screen sooner, and big pages after it keep the whole load
    fast (MLflow's time per run falls with the page size).
    """
    exp = get_experiment(experiment)
    client = _mlflow.client()
    token: str | None = None
    size = first_page or page_size
    while True:
        with _mlflow.translated(ExperimentNotFoundError, f"experiment {experiment!r}"):
            page = client.search_runs(
                [exp.experiment_id],
                filter_string=filter_string,
                order_by=list(order_by or ["attributes.start_time DESC"]),
                max_results=size,
                page_token=token,
            )
        yield _runs_frame(page)
        size = page_size
        token = page.token
        if not token:
            return


_RUN_COLUMNS = ["run_id", "name", "status", "user", "start_time", "end_time", "reproduction_of"]


def _runs_frame(found: Sequence[Any]) -> pd.DataFrame:
    rows = []
    for run in found:
        summary = _summary(run)
        row: dict[str, Any] = {
            "run_id": summary.run_id,
            "name": summary.name,
            "status": summary.status,
            "user": summary.user,
            "start_time": summary.start_time,
            "end_time": summary.end_time,
            # The run this one re-ran (workbench.reproduce), else None: a reproduction is not the original.
            "reproduction_of": summary.tags.get(_replay.TAG_REPRODUCTION_OF),
        }
        row.update({f"metrics.{k}": v for k, v in summary.metrics.items()})
        row.update({f"params.{k}": v for k, v in summary.params.items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else _RUN_COLUMNS)
    metric_cols = sorted(c for c in frame.columns if c.startswith("metrics."))
    param_cols = sorted(c for c in frame.columns if c.startswith("params."))
    return frame[_RUN_COLUMNS + metric_cols + param_cols]


def runs(
    experiment: str,
    *,
    filter_string: str = "",
    order_by: Sequence[str] | None = None,
    max_results: int | None = None,
) -> pd.DataFrame:
    """Runs of an experiment as a DataFrame: one row per run, ``metrics.*`` and ``params.*`` columns.

    ``filter_string`` and ``order_by`` use MLflow's search syntax (``"metrics.accuracy > 0.9"``,
    ``["metrics.accuracy DESC"]``). Newest runs first by default.
    """
    pages = []
    total = 0
    for page in iter_runs(experiment, filter_string=filter_string, order_by=order_by):
        pages.append(page)
        total += len(page)
        if max_results is not None and total >= max_results:
            break
    frame = pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]
    return frame.head(max_results) if max_results is not None else frame


def compare_runs(run_ids: Sequence[str]) -> pd.DataFrame:
    """Metrics and params of the given runs side by side: one column per run, one row per key.

    Rows are ``metrics.<key>`` then ``params.<key>``; a run without a key shows ``NaN``/``None``.
    """
    if not run_ids:
        raise InvalidInputError("give at least one run id to compare")
    summaries = [get_run(r) for r in run_ids]
    columns: dict[str, dict[str, Any]] = {}
    for s in summaries:
        label = f"{s.name} ({s.run_id[:8]})" if s.name else s.run_id
        col: dict[str, Any] = {f"metrics.{k}": v for k, v in s.metrics.items()}
        col.update({f"params.{k}": v for k, v in s.params.items()})
        columns[label] = col
    frame = pd.DataFrame(columns)
    order = sorted(frame.index, key=lambda k: (not k.startswith("metrics."), k))
    return frame.loc[order]


def best_run(
    experiment: str, metric: str, mode: Literal["max", "min"] = "max"
) -> RunSummary:
    """The finished run of ``experiment`` with the highest (``mode="max"``) or lowest ``metric``."""
    if mode not in ("max", "min"):
        raise InvalidInputError(f"mode must be 'max' or 'min', not {mode!r}")
    order = "DESC" if mode == "max" else "ASC"
    found = runs(
        experiment,
        filter_string=f"attributes.status = 'FINISHED' and metrics.`{metric}` > -1e308",
        order_by=[f"metrics.`{metric}` {order}"],
        max_results=1,
    )
    if found.empty:
        raise RunNotFoundError(
            f"no finished run of experiment {experiment!r} has the metric {metric!r}; "
            "log it with mlflow.log_metric inside workbench.start_run(...)"
        )
    return get_run(str(found.iloc[0]["run_id"]))


def metric_history(run_id: str, key: str) -> pd.DataFrame:
    """Every logged value of one metric of a run: columns ``step``, ``timestamp``, ``value``."""
    client = _mlflow.client()
    with _mlflow.translated(RunNotFoundError, f"run {run_id!r}"):
        history = client.get_metric_history(run_id, key)
    frame = pd.DataFrame(
        [(m.step, pd.Timestamp(m.timestamp, unit="ms", tz="UTC"), m.value) for m in history],
        columns=["step", "timestamp", "value"],
    )
    return frame.sort_values(["step", "timestamp"], ignore_index=True)
