"""Which deployment targets are installed, and what each one takes: the listing every UI asks for.

Targets describe themselves, as MLflow's deployment plugins do with ``target_help``: a target class
may define ``describe()`` returning a :class:`TargetInfo`; one that does not is still listed, with its
docstring as its help. The options come from the target's options dataclass, each documented by the
``#:`` comment above its field (the same comments the API reference shows)::

    >>> [t.name for t in wb.deploy_targets()]
    ['docker', 'k8s', 'local', 'swarm']
    >>> print(wb.target_help("swarm"))
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from workbench.deployment.base import TARGET_GROUP, target_scheme
from workbench.errors import ConfigurationError, InvalidInputError

__all__ = ["TargetInfo", "TargetOption", "deploy_targets", "describe_options", "get_target_info", "target_help"]


@dataclass(frozen=True)
class TargetOption:
    """One option a target takes (``wb.deploy(uri, target=..., NAME=value)``, ``--option NAME=value``)."""

    name: str
    #: The option's type as written in the options class (``int``, ``str | None``, ``bool``).
    type: str
    #: The default, JSON-ready (``None`` when the target decides).
    default: Any
    help: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TargetInfo:
    """An installed deployment target: how to name it, what it does, and the options it takes."""

    #: The URI scheme that chooses it (``local``, ``k8s``), the entry point's name.
    name: str
    #: How a user writes the target (``local``, ``k8s://CONTEXT/NAMESPACE``).
    uri: str
    #: One line: what the target runs, and where.
    summary: str
    #: Several lines: what it needs and how it behaves.
    description: str = ""
    options: tuple[TargetOption, ...] = ()
    #: ``True`` when the deployment can reach beyond this machine (the monitor and router then cannot
    #: rely on loopback addresses or this machine's disk).
    cluster: bool = False

    @property
    def help(self) -> str:
        """The whole help text, as ``workbench targets NAME`` and ``mlflow deployments help`` print it."""
        lines = [f"{self.uri}: {self.summary}"]
        if self.description:
            lines += ["", *textwrap.wrap(self.description, 100)]
        if self.options:
            lines += ["", "Options (wb.deploy(..., NAME=VALUE); workbench deploy --option NAME=VALUE):"]
            for option in self.options:
                default = "" if option.default is None else f" (default {option.default!r})"
                lines.append(f"  {option.name}: {option.type}{default}")
                lines += textwrap.wrap(option.help, 96, initial_indent="      ", subsequent_indent="      ")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the Lab's ``ITarget``)."""
        return {"name": self.name, "uri": self.uri, "summary": self.summary, "description": self.description,
                "options": [o.to_dict() for o in self.options], "cluster": self.cluster, "help": self.help}


def _field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of ``cls`` and its bases (Sphinx's attribute docs)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines, _ = inspect.getsourcelines(klass)
        except (OSError, TypeError):
            continue
        tree = ast.parse(textwrap.dedent("".join(lines)))
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            comment: list[str] = []
            row = node.lineno - 2  # the line above, 0-based
            while row >= 0 and lines[row].strip().startswith("#:"):
                comment.insert(0, lines[row].strip()[2:].strip())
                row -= 1
            if comment:
                found[node.target.id] = " ".join(comment)
    return found


def _jsonable_default(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    if isinstance(value, typing.Mapping):
        return dict(value)
    return value


def describe_options(*classes: type, skip: typing.Iterable[str] = ()) -> tuple[TargetOption, ...]:
    """The options of a target, read from its options dataclasses (fields, types, defaults, ``#:`` docs)."""
    skipped = set(skip)
    seen: dict[str, TargetOption] = {}
    for cls in classes:
        comments = _field_comments(cls)
        for field in dataclasses.fields(cls):
            if field.name in skipped or field.name in seen:
                continue
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                default = None
            kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
            seen[field.name] = TargetOption(field.name, str(kind), _jsonable_default(default),
                                            comments.get(field.name, ""))
    return tuple(sorted(seen.values(), key=lambda o: o.name))


def _info_of(name: str, target_cls: Any) -> TargetInfo:
    describe = getattr(target_cls, "describe", None)
    if callable(describe):
        info = describe()
        if not isinstance(info, TargetInfo):
            raise ConfigurationError(f"{target_cls.__module__}.{target_cls.__qualname__}.describe() must return "
                                     f"a TargetInfo, not {type(info).__name__}")
        return dataclasses.replace(info, name=name)
    doc = inspect.getdoc(target_cls) or ""
    summary, _, rest = doc.partition("\n")
    return TargetInfo(name=name, uri=name, summary=summary.strip() or f"the {name} target",
                      description=rest.strip())


@functools.cache
def _installed() -> tuple[TargetInfo, ...]:
    found = []
    for ep in entry_points(group=TARGET_GROUP):
        try:
            target_cls = ep.load()
        except ImportError as exc:
            # A target whose package is broken is listed as such, not hidden.
            found.append(TargetInfo(name=ep.name, uri=ep.name, summary=f"cannot be loaded: {exc}"))
            continue
        found.append(_info_of(ep.name, target_cls))
    return tuple(sorted(found, key=lambda t: t.name))


def deploy_targets() -> tuple[TargetInfo, ...]:
    """Every deployment target installed (the ``workbench.targets`` entry points), sorted by name."""
    return _installed()


def get_target_info(target: str) -> TargetInfo:
    """The installed target a URI (``swarm``, ``k8s://ctx/ns``) or name chooses."""
    scheme = target_scheme(target)
    for info in _installed():
        if info.name == scheme:
            return info
    names = ", ".join(t.name for t in _installed()) or "none"
    raise InvalidInputError(f"unknown deployment target {target!r}; installed: {names} "
                            "(`workbench targets` lists them with their options)")


def target_help(target: str) -> str:
    """The help text of a target: what it runs, where, and every option it takes."""
    return get_target_info(target).help
