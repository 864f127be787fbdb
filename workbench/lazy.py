"""Names re-exported by a package and imported from their module only when first used (PEP 562).

The one lazy loader: the core's packages and :mod:`workbench.widgets` use it, so ``import workbench``
and ``import workbench.widgets`` stay instant and load what a name needs on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, which exports ``name -> module`` lazily."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        value = getattr(loaded, name)
        namespace[name] = value  # later lookups skip this function
        # Importing a submodule binds its name in the package (``workbench.diff`` -> the module), which
        # would hide a name it exports under the same name (the function ``diff``): the export wins.
        parent, _, child = module.rpartition(".")
        if parent == package and exports.get(child) == module:
            namespace[child] = getattr(loaded, child)
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
