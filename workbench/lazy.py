"""Names re-exported by a package and imported from their module only when first used (PEP 562).

The one lazy loader: the core's packages and :mod:`workbench.widgets` use it, so ``import workbench``
and ``import workbench.widgets`` stay instant and load what a name needs on first use.

A package lists its public names once, as the imports of its ``if TYPE_CHECKING:`` block (what type
checkers and IDEs read); :func:`attach_typed` reads that block and serves the same names lazily, as
scientific Python's ``lazy_loader.attach_stub`` does with a stub file."""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["attach", "attach_typed", "typed_exports"]


def typed_exports(init_file: str | Path) -> dict[str, str]:
    """``name -> module`` of every ``from MODULE import NAME`` in the ``if TYPE_CHECKING:`` block of
    ``init_file`` (a package's ``__init__.py``)."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    exports: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
                for alias in statement.names:
                    exports[alias.asname or alias.name] = statement.module
    if not exports:
        raise ImportError(f"{init_file} has no `if TYPE_CHECKING:` block of `from MODULE import NAME` lines")
    return exports


def attach_typed(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, whose public names are the imports
    of the ``if TYPE_CHECKING:`` block of its ``__init__.py`` (``init_file``: pass ``__file__``)."""
    exports = typed_exports(init_file)
    getattr_, dir_ = attach(package, exports)
    return getattr_, dir_, sorted(exports)


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
