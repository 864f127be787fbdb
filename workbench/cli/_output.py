"""How every CLI command prints: a readable table by default, JSON with ``--json``."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def jsonable(value: Any, *, short_times: bool = False) -> Any:
    """Turn dataclasses, DataFrames, timestamps, mappings and numpy scalars into JSON values.

    Times become ISO 8601 strings, or ``YYYY-MM-DD HH:MM:SS`` (UTC) with ``short_times``.
    """
    def again(v: Any) -> Any:
        return jsonable(v, short_times=short_times)

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return again(value.to_dict())
        return {f.name: again(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # DataFrame
        return [again(r) for r in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): again(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [again(v) for v in value]
    if isinstance(value, (_dt.datetime, _dt.date)):
        if value != value:  # NaT
            return None
        return value.strftime("%Y-%m-%d %H:%M:%S") if short_times else value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


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
