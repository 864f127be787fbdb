"""How every CLI command prints: a readable table by default, JSON with ``--json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from workbench.serialize import jsonable

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def emit(rows: Any, as_json: bool, *, columns: Sequence[str] | None = None, empty: str = "") -> None:
    """Print ``rows`` (a DataFrame, a list of dataclasses or dicts, or one of them)."""
    data = jsonable(rows, short_times=not as_json)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            click.echo(f"{key.ljust(width)}  {shown}")
        return
    if not data:
        if empty:
            click.echo(empty)
        return
    import pandas as pd

    frame = pd.DataFrame(data)
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]]
    for col in frame.columns:
        frame[col] = frame[col].map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v)
    click.echo(frame.to_string(index=False, na_rep="-"))
