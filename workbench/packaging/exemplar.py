"""The model a build's start-up stage runs the server on: one of the same *kind*, so that a
retrained model rebuilds from the build cache.

A model image's start-up stage (see :mod:`workbench.packaging.warmup`) starts the server once and
keeps the bytecode of exactly the modules it imported. What it imports depends on the model's
*kind* (the image's requirements, the flavor and how the model is stored, the classes its file
names, the signature), never on the fitted numbers. So the stage runs on an *exemplar*: the first
model of that kind packaged on this machine, kept in the workspace (``packaging/exemplars``, private
to the user). A retrained model of the same kind brings the same exemplar into the build context,
the engine finds the stage in its cache, and the rebuild copies only the new model and its snapshot.

The kind is known for the models the server loads without MLflow (scikit-learn and XGBoost, see
:mod:`workbench.serving.flavors`), whose imports follow from the classes their file names: a skops
file lists them in its schema, a pickle in its ``GLOBAL`` opcodes (read with :mod:`pickletools`,
never unpickled). Other models are their own exemplar, and their start-up stage runs every build.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickletools
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench._private import private_folder
from workbench.integrity import file_hashes, manifest_bytes
from workbench.serving.flavors import loads_without_mlflow, read_mlmodel

__all__ = ["model_kind", "startup_exemplar"]

#: MLmodel keys that differ between two fits of the same kind of model.
_INSTANCE_KEYS = {"run_id", "model_uuid", "model_id", "utc_time_created", "artifact_path", "model_size_bytes",
                  "databricks_runtime", "saved_input_example_info"}
#: How many kinds the workspace keeps an exemplar of (the least recently used goes first).
KEPT_EXEMPLARS = 20


def _skops_classes(path: Path) -> set[str]:
    """``module.Class`` of every object a skops file holds, from its schema (nothing is loaded)."""
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__module__" in node:
                found.add(f"{node['__module__']}.{node.get('__class__', '')}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _pickle_globals(path: Path) -> set[str] | None:
    """``module.name`` of every global a pickle refers to, read from its opcodes without running
    them; ``None`` when a reference cannot be followed (then the kind is unknown)."""
    found: set[str] = set()
    recent: list[Any] = []  # what the last opcodes pushed: strings, or None for anything else
    memo: dict[int, Any] = {}
    with open(path, "rb") as f:
        for op, arg, _ in pickletools.genops(f):
            name = op.name
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                        "BINSTRING", "STRING"):
                recent.append(arg)
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                recent.append(memo.get(int(str(arg))))
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(str(arg))] = recent[-1] if recent else None
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name == "GLOBAL":
                found.add(str(arg).replace(" ", "."))
                recent.append(None)
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or not all(isinstance(part, str) for part in recent[-2:]):
                    return None
                found.add(f"{recent[-2]}.{recent[-1]}")
                recent.append(None)
            elif name not in ("FRAME", "PROTO", "STOP"):
                recent.append(None)
    return found


def _classes(model_dir: Path, mlmodel: Mapping[str, Any]) -> set[str] | None:
    flavors = mlmodel.get("flavors") or {}
    if "xgboost" in flavors:
        return {str(flavors["xgboost"].get("model_class", "xgboost.core.Booster"))}
    conf = flavors.get("sklearn") or {}
    path = model_dir / str((flavors.get("python_function") or {}).get("model_path", ""))
    if not path.is_file():
        return None
    try:
        if conf.get("serialization_format") == "skops":
            return _skops_classes(path)
        return _pickle_globals(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None  # an unreadable file is the server's to report, not the build's


def model_kind(model_dir: str | Path, requirements: str) -> str | None:
    """The kind of the model in ``model_dir`` served with ``requirements`` (the image's
    requirements.txt), as a hash; ``None`` when the model's imports cannot be told from its files."""
    model_dir = Path(model_dir)
    mlmodel = read_mlmodel(model_dir)
    if not loads_without_mlflow(mlmodel):
        return None
    classes = _classes(model_dir, mlmodel)
    if classes is None:
        return None
    shape = {key: value for key, value in mlmodel.items() if key not in _INSTANCE_KEYS}
    example = model_dir / "serving_input_example.json"
    has_example = example.is_file()
    described = json.dumps({"mlmodel": shape, "classes": sorted(classes), "requirements": requirements,
                            "example": has_example}, sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:32]


_HASHES = "hashes.json"


def _intact(kept: Path) -> bool:
    """Whether a kept exemplar (``kept/model``) still has exactly the files hashed when it was kept."""
    hashes = kept / _HASHES
    return hashes.is_file() and hashes.read_bytes() == manifest_bytes(file_hashes(kept / "model"))


def startup_exemplar(model_dir: str | Path, kind: str | None, dest: str | Path, store: str | Path) -> bool:
    """Copy the exemplar of ``kind`` into ``dest``: the one kept in ``store``, or else ``model_dir``,
    which then becomes the kept exemplar of its kind.

    Returns whether a kept exemplar was used (the start-up stage may then come from the cache).
    """
    model_dir, dest = Path(model_dir), Path(dest)
    if kind is None:
        shutil.copytree(model_dir, dest)
        return False
    kept = private_folder(Path(store)) / kind
    if kept.is_dir() and not kept.is_symlink() and _intact(kept):
        shutil.copytree(kept / "model", dest)
        os.utime(kept)  # the least recently used kind goes first
        return True
    if kept.is_symlink() or kept.is_file():
        kept.unlink()
    shutil.rmtree(kept, ignore_errors=True)
    staging = kept.with_name(f".{kind}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging / "model")
    (staging / _HASHES).write_bytes(manifest_bytes(file_hashes(staging / "model")))
    os.replace(staging, kept)
    _forget_old(kept.parent)
    shutil.copytree(kept / "model", dest)
    return False


def _forget_old(store: Path) -> None:
    kinds = sorted((p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kinds[KEPT_EXEMPLARS:]:
        shutil.rmtree(old, ignore_errors=True)
