"""The ``workbench`` command.

Subcommands live in the modules of this package, grouped by what they work on; each imports heavy
libraries inside its function so ``workbench --help`` answers at once. Any :class:`WorkbenchError`
prints as ``error: <message>`` (which says what to do) and exits with status 1; a
:class:`~workbench.errors.PolicyAdvisory` (checks failed, the policy only advises) prints as
``advice: <message>`` on stderr and the command goes on.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from workbench.errors import PolicyAdvisory, WorkbenchError

__all__ = ["main"]


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    if issubclass(category, PolicyAdvisory):
        click.echo(f"advice: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line), err=True, nl=False)


class _WorkbenchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", PolicyAdvisory)
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except WorkbenchError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(1)


@click.group(cls=_WorkbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="workbench")
def main() -> None:
    """Workbench: track, register, package, deploy, monitor and explain models.

    State lives in the workspace folder (WORKBENCH_HOME, default ./.workbench); set
    WORKBENCH_TRACKING_URI to work against a shared MLflow tracking server.
    """


def _register_commands() -> None:
    from workbench.cli import apps, deploy, explain, governance, kubernetes, monitor, review, serving, tracking

    for module in (tracking, serving, deploy, kubernetes, monitor, explain, governance, apps, review):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
