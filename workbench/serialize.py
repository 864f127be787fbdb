"""Workbench values as JSON: the one converter behind every ``to_dict()``/``to_json()`` of a report,
what the CLI's ``--json`` prints and what the JupyterLab routes answer.

(Two encoders are deliberately apart from it: :mod:`workbench.tables` writes model inputs exactly,
infinities included, for requests and the prediction log; a reference profile keeps infinite
histogram edges as ``"inf"`` so its file reads back the same.)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["jsonable"]


def jsonable(value: Any, *, short_times: bool = False) -> Any:
    """Turn dataclasses, DataFrames, timestamps, mappings and numpy scalars into JSON values.

    Missing values (``None``, NaN, NaT, ``pd.NA``) and infinities become ``None``; times become ISO
    8601 strings, or ``YYYY-MM-DD HH:MM:SS`` with ``short_times``; objects with a ``to_dict()`` are
    converted through it; anything else unknown becomes its ``str``.
    """
    def again(v: Any) -> Any:
        return jsonable(v, short_times=short_times)

    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): again(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [again(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return [again(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.strftime("%Y-%m-%d %H:%M:%S") if short_times else value.isoformat()
    if isinstance(value, np.generic):
        return again(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return again(value.to_dict())
        return {f.name: again(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return again(value.to_dict())
    return str(value)
