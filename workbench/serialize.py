"""Workbench values as JSON: what the CLI's ``--json`` prints and the JupyterLab routes answer."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["jsonable"]


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
