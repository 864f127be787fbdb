"""Model URI -> a Docker build context the user can read, keep and build by hand.

The context holds the model, its serving requirements (the model's own MLflow environment, trimmed
to what serving needs), the workbench core as the inference server, a ``.dockerignore`` and a
multi-stage ``Dockerfile``:

- stage ``deps`` installs the requirements into a virtual environment (from a host-side wheelhouse
  with no network when ``offline``), so the wheels never reach the final image;
- stage ``startup`` starts the server once as the image will (see :mod:`workbench.packaging.warmup`),
  on a model of the same kind (``startup-model``, see :mod:`workbench.packaging.exemplar`): the
  bytecode of exactly the modules serving imports is kept, so a container starts from bytecode
  without MLflow in its way, and a retrained model finds this stage in the build cache;
- a skops model's *snapshot* (the loaded estimator pickled once, so the server starts without
  skops) is written on this machine when it has the image's Python, scikit-learn and NumPy
  (``snapshot/``), else by a ``snapshot`` stage;
- the final stage copies that environment, then the server and its bytecode, then the model and
  its snapshot: a retrained model with unchanged requirements rebuilds by copying the model;
- it runs as a non-root user, checks ``/v2/health/ready`` as its HEALTHCHECK and carries OCI labels
  (model name, version, run id, git commit, created, and how many training rows it holds: none by
  default, see :mod:`workbench.packaging.training_rows`).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping

import yaml

from workbench.errors import InvalidInputError, PackagingError
from workbench.capture import CODE_DIR
from workbench.integrity import MANIFEST, file_hashes, manifest_bytes
from workbench.packaging.training_rows import TRAINING_ROWS_LABEL, TrainingRows, limit_training_rows
from workbench.serving.command import PROGRAM, serve_args, serve_options
from workbench.packaging.exemplar import model_kind, startup_exemplar
from workbench.serving.flavors import loads_without_mlflow, needs_snapshot, snapshot_versions, write_snapshot

__all__ = ["BuildContext", "prepare_context", "serving_requirements"]

#: Where things live inside a model image.
MODEL_DIR = "/opt/model"
#: The model's start-up files made by the build: its snapshot and the bytecode serving imports.
SERVING_DIR = "/opt/serving"
_BUILD_PYCACHE = "/opt/build-pycache"
_STARTUP_MODEL_DIR = "/opt/startup-model"
LOG_DIR = "/var/lib/workbench/predictions"
SERVER_PORT = 8080
USER_ID = 10001

# Installed as dependencies of mlflow-skinny's dependencies but never imported when a model is
# loaded and served (measured by tracing the server's imports): removed to keep images small.
_INSTALLED_NOT_IMPORTED = {"cryptography", "gitpython", "gitdb", "smmap", "wcwidth", "pyasn1",
                           "pyasn1-modules", "rsa"}

_MLFLOW = {"mlflow", "mlflow-skinny"}

# Packages MLflow records because they were imported while the model was logged, which serving
# never needs (test runners, notebook and terminal tooling).
_NOT_FOR_SERVING = {"pytest", "rich", "ipython", "ipykernel", "jupyter", "jupyterlab", "notebook",
                    "psutil", "matplotlib", "panel", "bokeh", "ipywidgets"}


@dataclass(frozen=True)
class BuildContext:
    """A prepared build context: the folder and what went into it."""

    path: Path
    model_uri: str
    model_name: str
    model_version: str | None
    run_id: str | None
    git_commit: str | None
    python_version: str
    base_image: str
    requirements: tuple[str, ...]
    offline: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    #: What of the training data the image carries (none by default).
    training_rows: TrainingRows = TrainingRows(sample_rows=0, summary_rows=0)
    #: The model's kind (see :mod:`workbench.packaging.exemplar`), ``None`` when it is its own.
    kind: str | None = None
    #: Where a skops model's snapshot is made: ``context`` (already in ``snapshot/``), ``build``
    #: (a stage of the Dockerfile), or ``None`` when the model needs none.
    snapshot: Literal["context", "build"] | None = None

    @property
    def dockerfile(self) -> Path:
        """The generated Dockerfile."""
        return self.path / "Dockerfile"


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[ ;@]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def serving_requirements(model_requirements: list[str], *, with_mlflow: bool = True) -> list[str]:
    """The model's requirements trimmed for serving, plus what the inference server needs.

    ``mlflow`` becomes ``mlflow-skinny`` at the same version (no tracking server, UI or SQL store in
    the image); packages only used while developing are dropped. ``with_mlflow=False`` leaves MLflow
    out altogether, for a model the server loads without it (see :mod:`workbench.serving.flavors`).
    """
    from importlib.metadata import requires

    out: dict[str, str] = {}
    for line in model_requirements:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name = _requirement_name(line)
        if name in _NOT_FOR_SERVING or (not with_mlflow and name in _MLFLOW):
            continue
        if name == "mlflow":
            line = "mlflow-skinny" + line[len("mlflow"):]
            name = "mlflow-skinny"
        out[name] = line
    for req in requires("workbench") or []:
        if 'extra == "serve"' not in req:
            continue
        spec = req.split(";")[0].strip()
        name = _requirement_name(spec)
        if with_mlflow or name not in _MLFLOW:
            out.setdefault(name, spec)  # the model's own pin wins
    if "xgboost-cpu" in out:
        # MLflow lists the import name too; `xgboost` is the GPU build (with 470 MB of NVIDIA
        # libraries) of the same package, which the CPU build the model was made with replaces.
        out.pop("xgboost", None)
    return sorted(out.values(), key=_requirement_name)


def _seal_model_folder(model: Path) -> None:
    """The model folder as the image keeps it: MLmodel without the build machine's path (MLflow
    writes the store's location as ``artifact_path``), and a manifest of exactly these files, which
    the server checks when it loads them (the store's manifest listed the code left out here)."""
    mlmodel = model / "MLmodel"
    lines = mlmodel.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not (line.startswith("artifact_path:") and
                                           ("://" in line or line.split(":", 1)[1].strip().startswith("/")))]
    mlmodel.write_text("".join(kept))
    manifest = model / MANIFEST
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_bytes(manifest_bytes(file_hashes(model)))


def _snapshot_here(model: Path, mlmodel: Mapping[str, Any], requirements: list[str], python_version: str,
                   dest: Path) -> Literal["context", "build"] | None:
    """Where the model's snapshot is made: here, into ``dest``, when this machine has the Python
    (major.minor), scikit-learn and NumPy the requirements pin for the image; else by the build."""
    if not needs_snapshot(mlmodel):
        return None
    pins = {_requirement_name(line): line.split("==", 1)[1].split(";")[0].strip()
            for line in requirements if "==" in line}
    here = snapshot_versions()
    image = {"python": ".".join(python_version.split(".")[:2]), "scikit-learn": pins.get("scikit-learn"),
             "numpy": pins.get("numpy")}
    if image != here:
        return "build"
    try:
        return "context" if write_snapshot(model, dest) else None
    except Exception:  # noqa: BLE001 - the build's stage tries again, and reports what it finds
        shutil.rmtree(dest, ignore_errors=True)
        return "build"


def _copy_server(dest: Path) -> None:
    """The workbench core (the inference server's code), without the UI packages."""
    source = Path(__file__).resolve().parents[1]  # workbench/, this file being workbench/packaging/context.py
    shutil.copytree(
        source,
        dest / "workbench",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "widgets"),
    )


def _image_tag_part(value: str) -> str:
    part = re.sub(r"[^a-z0-9_.-]+", "-", value.lower()).strip("-.")
    return part or "model"


def default_tag(model_name: str, version: str | None) -> str:
    """``workbench/<model>:<version>`` (``latest`` when the model is not a registered version)."""
    return f"workbench/{_image_tag_part(model_name)}:{version or 'latest'}"


def _dockerfile(ctx: BuildContext, offline: bool) -> str:
    pip_source = "--no-index --find-links /tmp/wheels" if offline else ""
    not_at_runtime = " ".join(sorted(_INSTALLED_NOT_IMPORTED))
    copy_wheels = "COPY wheels/ /tmp/wheels/\n" if offline else ""
    labels = "\n".join(f'      {k}="{_escape(v)}" \\' for k, v in ctx.labels.items()).rstrip(" \\")
    snapshot_stage = "" if ctx.snapshot != "build" else f"""
# Stage 3: the model's snapshot (the skops model loaded once and pickled, so the server starts
# without skops), made here because the machine that wrote this context has other versions of
# Python, scikit-learn or NumPy than the image.
FROM deps AS snapshot
COPY workbench /opt/workbench/workbench
COPY model {MODEL_DIR}
RUN PYTHONPATH=/opt/workbench /opt/venv-model/bin/python /tmp/warmup.py snapshot {MODEL_DIR} {SERVING_DIR}
"""
    copy_snapshot = {"context": f"COPY snapshot/ {SERVING_DIR}/\n",
                     "build": f"COPY --from=snapshot {SERVING_DIR}/ {SERVING_DIR}/\n"}.get(ctx.snapshot or "", "")
    return f"""\
# Model image for {ctx.model_name} (version {ctx.model_version or '-'}), made by `workbench package`.
# Build it by hand with:  docker build -t IMAGE .   (add --network host if the base needs a proxy)
ARG BASE_IMAGE={ctx.base_image}

# Stage 1: the model's dependencies in a virtual environment. Only requirements.txt (and the
# warm-up script) are copied first, so this layer is reused from cache until the requirements change.
# Installed without bytecode; warmup.py imports them once so that their bytecode lands in a build-only
# cache ({_BUILD_PYCACHE}, never in the image) that makes stage 2 quick.
FROM ${{BASE_IMAGE}} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONPYCACHEPREFIX={_BUILD_PYCACHE}
{copy_wheels}COPY requirements.txt warmup.py /tmp/
RUN python -m venv /opt/venv-model \\
 && /opt/venv-model/bin/pip install --no-compile {pip_source} -r /tmp/requirements.txt \\
 && {{ /opt/venv-model/bin/pip uninstall -y -q {not_at_runtime} >/dev/null 2>&1 || true; }} \\
 && find /opt/venv-model -depth -type d -name tests -path '*/site-packages/*/*' -exec rm -rf {{}} + \\
 && find /opt/venv-model -type f \\( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.c' \\
      -o -name '*.cpp' -o -name '*.h' \\) -delete \\
 && {{ /opt/venv-model/bin/pip uninstall -y -q pip setuptools wheel >/dev/null 2>&1 || true; }} \\
 && find /opt/venv-model -type d -name __pycache__ -prune -exec rm -rf {{}} + \\
 && /opt/venv-model/bin/python /tmp/warmup.py deps

# Stage 2: start-up work done once per kind of model. The server starts here as the image will start
# it, on startup-model: the first model of this kind (same requirements, flavor, classes, signature)
# packaged on this machine, so a retrained model finds this stage in the build cache. What the server
# imported is kept as bytecode ({SERVING_DIR}/pycache): only that reaches the image, laid over the
# environment's own folders.
FROM deps AS startup
COPY workbench /opt/workbench/workbench
COPY startup-model {_STARTUP_MODEL_DIR}
RUN PYTHONPATH=/opt/workbench MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \\
    /opt/venv-model/bin/python /tmp/warmup.py startup {_STARTUP_MODEL_DIR} {SERVING_DIR}
{snapshot_stage}
# The runtime. Dependencies, then the server and its bytecode, then the model and its snapshot: a
# retrained model with the same requirements rebuilds only the last layers.
FROM ${{BASE_IMAGE}}
RUN useradd --uid {USER_ID} --create-home --shell /usr/sbin/nologin workbench \\
 && mkdir -p {LOG_DIR} && chown {USER_ID}:{USER_ID} {LOG_DIR}
COPY --from=deps /opt/venv-model /opt/venv-model
COPY workbench /opt/workbench/workbench
ENV PATH=/opt/venv-model/bin:$PATH \\
    PYTHONPATH=/opt/workbench \\
    WORKBENCH_HOST=0.0.0.0 \\
    WORKBENCH_PORT={SERVER_PORT} \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    WORKBENCH_HOME=/tmp/workbench \\
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
VOLUME {LOG_DIR}
USER {USER_ID}
EXPOSE {SERVER_PORT}
# The address comes from WORKBENCH_HOST/WORKBENCH_PORT, so orchestrators can give each replica its own.
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \\
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ['WORKBENCH_PORT'], timeout=2)"]
ENTRYPOINT {json.dumps([*PROGRAM, *serve_args(MODEL_DIR, log_dir=LOG_DIR, snapshot=SERVING_DIR)])}
COPY --from=startup {SERVING_DIR}/pycache/opt/ /opt/
# Everything from here on belongs to this model version.
COPY model {MODEL_DIR}
{copy_snapshot}CMD {json.dumps(serve_options(name=ctx.model_name, model_version=ctx.model_version))}
LABEL {labels.lstrip()}
"""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


_DOCKERIGNORE = """\
# Everything in this folder is meant for the image; editors and caches are not.
**/__pycache__
**/*.pyc
**/.ipynb_checkpoints
.git
"""


def _download_wheelhouse(requirements: Path, dest: Path, python_version: str) -> None:
    """Wheels for every requirement, for the image's Python and platform, into ``dest``."""
    major_minor = ".".join(python_version.split(".")[:2])
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
        "--python-version", major_minor, "--implementation", "cp",
        "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
        "--platform", "manylinux_2_17_x86_64", "--platform", "linux_x86_64",
        "-d", str(dest), "-r", str(requirements),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(
            "could not download the wheelhouse for an offline build: every requirement needs a wheel "
            "for this Python and platform; check the package index settings of pip on this machine",
            step="pip download",
            log_tail="\n".join(result.stderr.strip().splitlines()[-15:]),
        )


def prepare_context(
    model_uri: str,
    dest: str | Path,
    *,
    base_image: str | None = None,
    offline: bool = False,
    explain: bool = False,
    include_sample: bool = False,
    sample_rows: int = 1_000,
) -> BuildContext:
    """Write a build context for ``model_uri`` into ``dest`` (which must be empty or absent).

    The model folder carries no training rows unless ``include_sample`` (then a random sample of at
    most ``sample_rows``, up to 10,000): see :mod:`workbench.packaging.training_rows`.
    """
    from workbench.config import get_settings
    from workbench.registry import download_model, registered_version

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise InvalidInputError(f"the build context folder {dest} is not empty: choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)

    version = registered_version(model_uri)
    # Copied, never moved: a local model folder given by the user stays where it is.
    shutil.copytree(download_model(model_uri, dest / ".download"), dest / "model")
    shutil.rmtree(dest / ".download", ignore_errors=True)
    # The code that trained the model (notebook cells, an uncommitted diff) stays in the registry:
    # the server never reads it, and cells may hold what should not ship in an image.
    shutil.rmtree(dest / "model" / CODE_DIR, ignore_errors=True)
    mlmodel = yaml.safe_load((dest / "model" / "MLmodel").read_text())
    if not mlmodel.get("signature"):
        shutil.rmtree(dest)
        raise InvalidInputError(
            f"{model_uri} has no signature, so the server could not check its input: log it with "
            "workbench.log_model(model, training_data=X) (or give signature=)"
        )
    try:
        training_rows = limit_training_rows(dest / "model", include_sample=include_sample, sample_rows=sample_rows)
    except InvalidInputError:
        shutil.rmtree(dest)
        raise
    _seal_model_folder(dest / "model")
    python_version = str(mlmodel.get("flavors", {}).get("python_function", {}).get("python_version", ""))
    if not python_version:
        python_version = ".".join(map(str, sys.version_info[:3]))
    req_file = dest / "model" / "requirements.txt"
    model_requirements = req_file.read_text().splitlines() if req_file.exists() else ["mlflow"]
    # A model the server loads without MLflow gets an image without it: smaller, and the room
    # pays for the bytecode that makes it start fast.
    requirements = serving_requirements(model_requirements, with_mlflow=not loads_without_mlflow(mlmodel))
    if explain:  # the server's explain route needs SHAP (and numba): large, so only when asked
        from importlib.metadata import version as installed_version

        requirements.append(f"shap=={installed_version('shap')}")
    (dest / "requirements.txt").write_text("\n".join(requirements) + "\n")
    settings = get_settings()
    kind = model_kind(dest / "model", (dest / "requirements.txt").read_text())
    startup_exemplar(dest / "model", kind, dest / "startup-model", settings.home / "packaging" / "exemplars")
    snapshot = _snapshot_here(dest / "model", mlmodel, requirements, python_version, dest / "snapshot")
    _copy_server(dest)
    shutil.copy(Path(__file__).with_name("warmup.py"), dest / "warmup.py")
    (dest / ".dockerignore").write_text(_DOCKERIGNORE)
    if offline:
        _download_wheelhouse(dest / "requirements.txt", dest / "wheels", python_version)

    major_minor = ".".join(python_version.split(".")[:2])
    base = base_image or settings.base_image or f"python:{major_minor}-slim"
    name = version.name if version else Path(model_uri.rstrip("/")).name or "model"
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    run_id = (version.run_id if version else None) or mlmodel.get("run_id")
    commit = version.git_commit if version else None
    labels: dict[str, Any] = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": version.version if version else "",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.revision": commit or "",
        "org.opencontainers.image.description": f"MLflow model {model_uri} served by workbench",
        "org.opencontainers.image.base.name": base,
        "io.workbench.model.name": name,
        "io.workbench.model.version": version.version if version else "",
        "io.workbench.model.uri": model_uri,
        "io.workbench.model.run_id": run_id or "",
        "io.workbench.model.git_commit": commit or "",
        "io.workbench.model.data_hash": (version.data_hash if version else None) or "",
        TRAINING_ROWS_LABEL: str(training_rows.sample_rows),
    }
    ctx = BuildContext(
        path=dest,
        model_uri=model_uri,
        model_name=name,
        model_version=version.version if version else None,
        run_id=run_id,
        git_commit=commit,
        python_version=python_version,
        base_image=base,
        requirements=tuple(requirements),
        offline=offline,
        labels=MappingProxyType({k: str(v) for k, v in labels.items()}),
        training_rows=training_rows,
        kind=kind,
        snapshot=snapshot,
    )
    ctx.dockerfile.write_text(_dockerfile(ctx, offline))
    return ctx
