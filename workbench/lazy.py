"""Names re-exported by a package and imported from their module only when first used (PEP 562).

The one lazy loader: the core's packages and :mod:`workbench.widgets` use it, so ``import workbench``
and ``import workbench.widgets`` stay instant and load what a name needs on first use."""

from __future__ import annotations

import importlib
import types
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
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        _unshadow()
        return value

    def _unshadow() -> None:
        # Importing package.x binds the module as the package's attribute x, which then hides an
        # exported name x that module defines (the function workbench.diff of workbench.diff): the
        # export wins, however the module came to be imported first.
        for other, where in exports.items():
            current = namespace.get(other)
            if isinstance(current, types.ModuleType) and current.__name__ == where == f"{package}.{other}":
                namespace[other] = getattr(current, other)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
