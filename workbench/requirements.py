"""The pip requirements of a model, found in the notebook's own process, in milliseconds.

MLflow finds them by loading the saved model in a fresh Python process and listing what it imported:
several seconds of every ``log_model``. Here the model object is walked the way pickle walks it (every
object names the modules of its class and of the class's bases, every function it references names
its own, every module it holds is one), those modules are mapped to the installed distributions that provide them, and the
flavor's own needs are added (its library, the serialization format's, pandas and numpy, which the
pyfunc interface speaks). The dependencies of those distributions that this process has imported are
pinned too, as MLflow pins what the loading process imports, so an image resolves the same versions
the model was trained with. Every requirement is pinned to the installed version.
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata as metadata
import io
import re
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["model_requirements", "prepare"]

#: Never listed: MLflow adds its own pin, and packaging swaps it for mlflow-skinny.
_LEFT_TO_MLFLOW = {"mlflow", "mlflow-skinny", "mlflow-tracing"}


def _module_names(model: Any) -> set[str]:
    """Top-level module names of everything pickling ``model`` refers to (cloudpickle's walk, so
    notebook-defined functions and classes are followed into what they use)."""
    import cloudpickle

    found: set[str] = set()

    class _Recorder(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, types.ModuleType):
                found.add(obj.__name__)
            elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
                found.add(getattr(obj, "__module__", None) or "")
            else:  # a class, or an instance: its class and every base (loading imports them all)
                found.update(getattr(c, "__module__", None) or "" for c in (obj if isinstance(obj, type) else type(obj)).__mro__)
            return super().reducer_override(obj)

    _Recorder(io.BytesIO(), protocol=5).dump(model)
    return {name.split(".")[0] for name in found if name} - {"__main__", "builtins"} - set(sys.stdlib_module_names)


@functools.cache
def _distributions_of_modules() -> Mapping[str, list[str]]:
    """Top-level module name -> the installed distributions that provide it, as
    :func:`importlib.metadata.packages_distributions` gives it, read from each distribution's
    ``top_level.txt`` or its ``RECORD`` as text: that function makes a path object of every file
    every package installed (half a second of a first ``log_model``)."""
    found: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        declared = dist.read_text("top_level.txt")
        if declared:
            tops = declared.split()
        else:
            tops = [path.split("/", 1)[0] if "/" in path else path[:-3]
                    for path, *_ in csv.reader((dist.read_text("RECORD") or "").splitlines())
                    if path.endswith(".py")]
        for top in dict.fromkeys(tops):
            found.setdefault(top, []).append(name)
    return found


def prepare() -> None:
    """Build the module map of the installed distributions now (a notebook's warm-up does, so that
    its first ``log_model`` does not)."""
    _distributions_of_modules()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(distribution: str) -> list[str]:
    """Names of the distributions ``distribution`` needs at run time (its extras left out)."""
    try:
        wanted = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for spec in wanted:
        if ";" in spec and "extra" in spec.split(";", 1)[1]:
            continue
        if ";" in spec:  # an environment marker (python_version, platform): keep it only if it holds here
            from packaging.markers import Marker

            if not Marker(spec.split(";", 1)[1]).evaluate():
                continue
        names.append(re.split(r"[<>=!~\[ (;]", spec.strip(), maxsplit=1)[0])
    return names


def _imported_distributions() -> set[str]:
    """Canonical names of the distributions whose modules this process has imported."""
    provided = _distributions_of_modules()
    return {_canonical(d) for name in list(sys.modules) if "." not in name for d in provided.get(name, ())}


def model_requirements(model: Any, libraries: Iterable[str] = ()) -> list[str]:
    """Pinned pip requirements (``name==version``) for loading and serving ``model``.

    ``libraries`` names what the flavor and its serialization need besides what the model object
    refers to (``scikit-learn``, ``skops``, ``cloudpickle``); pandas and numpy are always in, for
    the pyfunc interface. A module no installed distribution provides (a local file) is left out:
    give it to MLflow with ``code_paths``.
    """
    provided = _distributions_of_modules()
    wanted = {_canonical(name) for name in ("pandas", "numpy", *libraries)}
    for module in _module_names(model):
        wanted.update(_canonical(d) for d in provided.get(module, ()))
    imported = _imported_distributions()
    pending = list(wanted)
    while pending:  # the imported part of the dependency closure
        for dependency in map(_canonical, _requires(pending.pop())):
            if dependency in imported and dependency not in wanted:
                wanted.add(dependency)
                pending.append(dependency)
    pins = []
    for name in sorted(wanted - _LEFT_TO_MLFLOW):
        try:
            pins.append(f"{metadata.metadata(name)['Name']}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue  # e.g. a flavor's optional library that is not installed
    return pins
