"""``skops.io``, imported without PyTorch (or CuPy, or Dask) coming along.

Importing ``skops.io`` lists every scikit-learn estimator (``sklearn.utils.all_estimators``), and that
package walk imports ``sklearn.externals.array_api_compat.torch``, which imports PyTorch itself when
it is installed: 0.8 s and 660 MB in every model server and notebook that loads a scikit-learn model,
for nothing (the walk skips ``externals`` once it has imported it). The walk meets a stand-in
without a ``__path__`` instead, removed right after, so that scikit-learn's array-API support still
imports the real shim when someone hands it a tensor.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["skops_io"]

#: The array libraries scikit-learn's vendored array-API shims import.
_SHIMS = ("torch", "cupy", "dask")


def skops_io() -> Any:
    """The ``skops.io`` module (imported now if it was not), without importing PyTorch, CuPy or Dask
    (raises ``ImportError`` when skops is not installed)."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    placed: dict[str, types.ModuleType] = {}
    for library in _SHIMS:
        name = f"sklearn.externals.array_api_compat.{library}"
        if name not in sys.modules and library not in sys.modules:
            placed[name] = sys.modules[name] = types.ModuleType(name)
    try:
        return importlib.import_module("skops.io")
    finally:
        for name, stand_in in placed.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
