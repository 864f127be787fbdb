"""Tables on the wire: the column types a model was trained on, and exact JSON for their values.

MLflow's signature says a column is ``long`` or ``string``, which is not enough to give a model back
the frame it was trained on: a nullable ``Int64`` with gaps, a ``category`` with its levels, a
``datetime64[us, Europe/Paris]`` and a string column whose gaps are ``NaN`` (not ``None``) all need
their exact pandas dtype. :class:`TableSchema` records it at ``log_model`` (``input_types.json``
beside the model) and restores it wherever values arrive as JSON: the inference server, the
prediction log read back, the explainers.

Values travel as plain JSON, exactly:

- floats as the shortest text that reads back to the same double (never rounded), ``null`` for a
  missing value;
- whole numbers as integers, booleans as ``true``/``false``;
- datetimes as ISO 8601 text with every digit of their unit and, when time-zone aware, an offset;
  a number sent for a datetime column is read as milliseconds since the epoch (what pandas'
  ``to_json`` and JavaScript's ``Date`` send);
- categories as their values.

Example::

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "when": pd.to_datetime(["2024-05-01", None])})
    >>> schema = TableSchema.from_frame(frame)
    >>> wire = encode_split(frame)
    >>> wire["data"]
    [[1, '2024-05-01T00:00:00'], [None, None]]
    >>> schema.restore_frame(dict(zip(wire["columns"], zip(*wire["data"])))).equals(frame)
    True
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, SchemaError

__all__ = [
    "TABLE_SCHEMA_FILE",
    "ColumnType",
    "TableSchema",
    "dtype_text",
    "encode_split",
    "json_values",
    "refuse_duplicate_columns",
    "restore_column",
]

#: File written beside a logged model (in its artifacts) with the training frame's column types.
TABLE_SCHEMA_FILE = "input_types.json"

_FORMAT = 1
#: Levels of a ``category`` column kept in the schema; beyond that the column is refused at log time.
MAX_CATEGORIES = 100_000


_PLAIN_NUMBERS = {float, int, type(None)}


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (np.floating, np.datetime64, np.timedelta64)):
        return bool(np.isnat(value)) if not isinstance(value, np.floating) else bool(np.isnan(value))
    return False


def _missing_marker(series: pd.Series) -> str | None:
    """How an object column writes a gap (``None`` or ``NaN``): a model may tell them apart."""
    gaps = series[series.isna()]
    if not len(gaps):
        return None
    first = gaps.iloc[0]
    if first is None:
        return "none"
    if first is pd.NA:
        return "na"
    return "nan"


@dataclass(frozen=True)
class ColumnType:
    """The exact pandas dtype of one input column (and what a category column's levels are)."""

    name: str
    #: ``str(series.dtype)``: ``float64``, ``int64``, ``Int64``, ``boolean``, ``bool``, ``string``,
    #: ``str``, ``object``, ``category``, ``datetime64[us]``, ``datetime64[ns, UTC]``, ...
    dtype: str
    #: A category column's levels, in order (``None`` for other columns, or levels not recorded).
    categories: tuple[Any, ...] | None = None
    ordered: bool = False
    #: How an object column writes a gap: ``"none"``, ``"nan"`` or ``"na"`` (``None``: no gaps seen).
    missing: str | None = None

    @classmethod
    def of(cls, name: str, series: pd.Series) -> ColumnType:
        """The type of a training column."""
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            levels = dtype.categories
            if len(levels) > MAX_CATEGORIES:
                raise InvalidInputError(
                    f"column {name!r} is a category with {len(levels)} levels (at most {MAX_CATEGORIES} "
                    "are kept): cast it to str before fitting, or group rare levels"
                )
            return cls(name, "category", tuple(json_values(pd.Series(levels))), bool(dtype.ordered))
        text = str(dtype)
        if text == "object":
            return cls(name, text, missing=_missing_marker(series))
        return cls(name, text)

    @functools.cached_property
    def kind(self) -> str:
        """``float``, ``int``, ``nullable-int``, ``bool``, ``nullable-bool``, ``string``, ``object``,
        ``category``, ``datetime`` or ``other``."""
        if self.dtype == "category":
            return "category"
        if self.dtype.startswith("datetime64"):
            return "datetime"
        if self.dtype in ("string", "str") or self.dtype.startswith("string["):
            return "string"
        if self.dtype == "object":
            return "object"
        if self.dtype == "boolean":
            return "nullable-bool"
        if self.dtype == "bool":
            return "bool"
        if self.dtype in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"):
            return "nullable-int"
        if self.dtype in ("Float32", "Float64"):
            return "float"
        try:
            np_kind = np.dtype(self.dtype).kind
        except TypeError:
            return "other"
        return {"f": "float", "i": "int", "u": "int"}.get(np_kind, "other")

    @functools.cached_property
    def _numpy_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.dtype)

    @functools.cached_property
    def timezone(self) -> str | None:
        """The time zone of an aware datetime column."""
        if self.kind != "datetime" or "," not in self.dtype:
            return None
        return self.dtype.split(",", 1)[1].rstrip("]").strip()

    @property
    def unit(self) -> str:
        """The unit of a datetime column (``ns``, ``us``, ``ms`` or ``s``)."""
        return self.dtype.split("[", 1)[1].split(",")[0].rstrip("]").strip() if "[" in self.dtype else "ns"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.categories is not None:
            out["categories"] = list(self.categories)
            out["ordered"] = self.ordered
        if self.missing is not None:
            out["missing"] = self.missing
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnType:
        """Inverse of :meth:`to_dict`."""
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            categories=tuple(categories) if categories is not None else None,
            ordered=bool(data.get("ordered", False)),
            missing=data.get("missing"),
        )

    # -- JSON values -> this dtype ----------------------------------------------------------------

    def restore(self, values: Sequence[Any] | np.ndarray | pd.Series | pd.api.extensions.ExtensionArray) -> Any:
        """The column's values in exactly this dtype: a numpy array, a pandas extension array, or
        (object columns) a Series, each ready to be a column of a frame.

        Accepts JSON values (``None`` for a gap) or arrays of any dtype; a value the dtype cannot
        hold raises :class:`~workbench.errors.SchemaError` naming the column and the value.
        """
        if isinstance(values, pd.Series):
            values = values.array
        dtype = getattr(values, "dtype", None)
        if dtype is not None and dtype_text(dtype) == self.dtype and self.kind not in ("category", "object"):
            return values if not isinstance(values, pd.arrays.NumpyExtensionArray) else values.to_numpy()
        kind = self.kind
        if kind == "category":
            return self._restore_category(values)
        items = values if isinstance(values, list) else values.tolist() if hasattr(values, "tolist") else list(values)
        if kind == "float":
            return self._restore_float(items)
        if kind in ("int", "nullable-int"):
            return self._restore_int(items, nullable=kind == "nullable-int")
        if kind in ("bool", "nullable-bool"):
            return self._restore_bool(items, nullable=kind == "nullable-bool")
        if kind == "string":
            self._check_all(items, (str,), "strings")
            return pd.array([None if _is_missing(v) else v for v in items], dtype=self.dtype)
        if kind == "datetime":
            return self._restore_datetime(items)
        if kind == "object":
            return self._restore_object(items)
        return np.array(items, dtype=object)

    @property
    def signature_type(self) -> str:
        """The MLflow signature type this column is written as (``double``, ``long``, ``string``, ...)."""
        if self.dtype in ("float32", "Float32"):
            return "float"
        if self.dtype in ("int32", "int16", "int8", "Int32", "Int16", "Int8"):
            return "integer"
        return {"float": "double", "int": "long", "nullable-int": "long", "bool": "boolean",
                "nullable-bool": "boolean", "datetime": "datetime"}.get(self.kind, "string")

    def _error(self, value: Any, expected: str) -> SchemaError:
        shown = self.signature_type if self.signature_type != "string" or self.kind == "string" else self.dtype
        return SchemaError(
            f"column {self.name!r} expects {expected} ({shown}); got {value!r} ({type(value).__name__})"
        )

    def _check_all(self, items: list[Any], types: tuple[type, ...], expected: str) -> None:
        for v in items:
            if not _is_missing(v) and (not isinstance(v, types) or isinstance(v, bool) and bool not in types):
                raise self._error(v, expected)

    def _restore_float(self, items: list[Any]) -> Any:
        if self.dtype in ("Float32", "Float64"):
            self._check_all(items, (int, float, np.integer, np.floating), "numbers")
            return pd.array([None if _is_missing(v) else float(v) for v in items], dtype=self.dtype)
        # The server's hot path (JSON numbers): one C-level pass over the types, the slow check only
        # if it finds something else.
        if not set(map(type, items)) <= _PLAIN_NUMBERS:
            self._check_all(items, (int, float, np.integer, np.floating), "numbers")
            items = [np.nan if _is_missing(v) else v for v in items]
        return np.array(items, dtype=self._numpy_dtype)

    def _restore_int(self, items: list[Any], *, nullable: bool) -> Any:
        whole: list[Any] = []
        for v in items:
            if _is_missing(v):
                whole.append(None)
            elif isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise self._error(v, "whole numbers")
            elif isinstance(v, (float, np.floating)):
                if not float(v).is_integer():
                    raise self._error(v, "whole numbers")
                whole.append(int(v))
            else:
                whole.append(int(v))
        try:
            if nullable:
                return pd.array(whole, dtype=self.dtype)
            if any(v is None for v in whole):
                # A gap in a column trained without gaps: the model sees floats with NaN, as pandas
                # would give it; models that take missing values answer, others say why.
                return np.array([np.nan if v is None else v for v in whole], dtype=np.float64)
            return np.array(whole, dtype=self.dtype)
        except (OverflowError, TypeError, ValueError) as exc:
            raise SchemaError(f"column {self.name!r} has values outside the range of {self.dtype}") from exc

    def _restore_bool(self, items: list[Any], *, nullable: bool) -> Any:
        # 1 and 0 are taken too: a V2 client whose BOOL tensor cannot hold a gap sends FP64 with NaN.
        for v in items:
            if not _is_missing(v) and not isinstance(v, (bool, np.bool_)) and not (
                    isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)):
                raise self._error(v, "true or false")
        if nullable or any(_is_missing(v) for v in items):
            return pd.array([None if _is_missing(v) else bool(v) for v in items], dtype="boolean")
        return np.array([bool(v) for v in items], dtype=np.bool_)

    def _restore_object(self, items: list[Any]) -> Any:
        gap: Any = {"none": None, "na": pd.NA}.get(self.missing or "", np.nan)
        out = np.empty(len(items), dtype=object)
        for i, v in enumerate(items):
            out[i] = gap if _is_missing(v) else v
        # A Series: a frame built from it stays object (pandas 3 reads object arrays of strings, bare
        # or wrapped in a pandas array, as its str dtype).
        return pd.Series(out, dtype=object, copy=False)

    def _restore_category(self, values: Any) -> Any:
        if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
            values = np.asarray(values, dtype=object)
        items = values.tolist() if hasattr(values, "tolist") else list(values)
        levels = self.categories
        if levels is None:  # a category read back from the log: its levels are the values seen
            return pd.Categorical([None if _is_missing(v) else v for v in items])
        dtype = pd.CategoricalDtype(list(levels), ordered=self.ordered)
        known = set(dtype.categories.tolist())
        if "" not in known:  # a V2 BYTES tensor (Triton's client) cannot hold a null: "" is the gap
            items = [None if isinstance(v, str) and v == "" else v for v in items]
        unknown = next((v for v in items if not _is_missing(v) and v not in known), None)
        if unknown is not None:
            shown = ", ".join(repr(c) for c in levels[:8])
            more = f" and {len(levels) - 8} more" if len(levels) > 8 else ""
            raise SchemaError(
                f"column {self.name!r} is a category column and {unknown!r} is not one of its levels "
                f"({shown}{more}): send one of them, or null for a missing value"
            )
        return pd.Categorical([None if _is_missing(v) else v for v in items], dtype=dtype)

    def _restore_datetime(self, items: list[Any]) -> Any:
        present = [v for v in items if not _is_missing(v)]
        tz = self.timezone
        try:
            if all(isinstance(v, str) for v in present):
                instants, _ = _parse_iso([None if _is_missing(v) else v for v in items], self.unit)
                index = pd.DatetimeIndex(instants)
                if tz is not None:  # naive texts for an aware column are read as UTC
                    index = index.tz_localize("UTC").tz_convert(tz)
                return index.as_unit(self.unit).array
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
                millis = pd.Series([None if _is_missing(v) else v for v in items], dtype="float64")
                parsed = pd.to_datetime(millis, unit="ms", utc=tz is not None)
            elif all(isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "isoformat") for v in present):
                parsed = pd.to_datetime(pd.Series([None if _is_missing(v) else v for v in items], dtype=object),
                                        utc=True)
                if tz is None:
                    parsed = parsed.dt.tz_localize(None)
            else:
                bad = next(v for v in present if not isinstance(v, str))
                raise self._error(bad, "ISO 8601 dates or times")
        except (ValueError, TypeError, OverflowError) as exc:
            raise SchemaError(
                f"column {self.name!r} expects ISO 8601 dates or times (trained as {self.dtype}); {exc}"
            ) from exc
        if tz is not None:
            parsed = parsed.dt.tz_convert(tz)
        return parsed.dt.as_unit(self.unit).array


_OFFSET = re.compile(r"(Z|[+-]\d\d(?::?\d\d)?)$")


def _parse_iso(texts: list[str | None], unit: str) -> tuple[np.ndarray, bool]:
    """ISO 8601 texts as ``datetime64[unit]`` at full precision; texts with an offset (``Z``,
    ``+02:00``) become UTC. Returns the instants and whether any text had an offset."""
    local: list[str | None] = []
    shifts = np.zeros(len(texts), dtype="timedelta64[m]")
    aware = False
    for i, text in enumerate(texts):
        if text is None:
            local.append(None)
            continue
        text = text.strip().replace(" ", "T", 1) if len(text) > 10 else text.strip()
        match = _OFFSET.search(text, 10) if len(text) > 10 else None
        if match:
            aware = True
            offset = match.group(1)
            text = text[: match.start()]
            if offset != "Z":
                sign = -1 if offset[0] == "-" else 1
                digits = offset[1:].replace(":", "")
                minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
                shifts[i] = np.timedelta64(sign * minutes, "m")
        local.append(text)
    instants = np.array(local, dtype=f"datetime64[{unit}]")
    if aware:
        instants = instants - shifts.astype(f"timedelta64[{unit}]")
    return instants, aware


def refuse_duplicate_columns(frame: pd.DataFrame, what: str) -> None:
    """Raise :class:`~workbench.errors.InvalidInputError` naming the columns ``frame`` has twice: one
    of them would silently stand for both."""
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InvalidInputError(f"{what} has duplicate column names {dupes}: rename them")


@functools.lru_cache(maxsize=256)
def dtype_text(dtype: Any) -> str:
    """``str(dtype)``, remembered: numpy computes it anew each time, and the server names the dtype
    of every column of every request it logs."""
    return str(dtype)


def restore_column(name: str, dtype: str, values: Sequence[Any]) -> Any:
    """JSON values back in a dtype named by its text (how the prediction log keeps types)."""
    return ColumnType(name, dtype).restore(values)


@dataclass(frozen=True)
class TableSchema:
    """The column types of a model's training frame, in order."""

    columns: tuple[ColumnType, ...]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> TableSchema:
        """The schema of a training frame."""
        refuse_duplicate_columns(frame, "the data")
        return cls(tuple(ColumnType.of(str(c), frame[c]) for c in frame.columns))

    @functools.cached_property
    def _by_name(self) -> dict[str, ColumnType]:
        return {c.name: c for c in self.columns}

    def __getitem__(self, name: str) -> ColumnType:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def restore_frame(self, columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
        """A frame in the training dtypes from JSON values per column (unknown columns are dropped)."""
        return pd.DataFrame({c.name: c.restore(columns[c.name]) for c in self.columns if c.name in columns})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"format": _FORMAT, "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(ColumnType.from_dict(c) for c in data["columns"]))

    def save(self, path: str | Path) -> Path:
        """Write the schema as JSON to ``path`` (a file, or a folder to hold :data:`TABLE_SCHEMA_FILE`)."""
        path = Path(path)
        if path.is_dir():
            path = path / TABLE_SCHEMA_FILE
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TableSchema | None:
        """The schema saved at ``path`` (a file or a model folder), or ``None`` where there is none."""
        path = Path(path)
        if path.is_dir():
            path = path / TABLE_SCHEMA_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if data.get("format") != _FORMAT:
            return None
        return cls.from_dict(data)


# -- exact JSON values ------------------------------------------------------------------------------


def json_values(values: pd.Series | np.ndarray | Any) -> list[Any]:
    """A column's values as JSON values, exactly (see the module's doc): ``None`` for every gap."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":  # the server's hot path: no Series
        out = values.tolist()
        if values.dtype.kind == "f":
            return [None if v != v else v for v in out]
        return out
    series = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return [_plain(v) for v in series.astype(object).tolist()]
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _iso_texts(series)
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f":
            array = series.to_numpy()
            out = array.tolist()
            if np.isnan(array).any():
                return [None if v != v else v for v in out]
            return out
        if dtype.kind in "iub":
            return series.to_numpy().tolist()
        if dtype.kind == "m":
            return [None if pd.isna(v) else str(v) for v in series.tolist()]
    out = series.to_numpy(dtype=object, na_value=None).tolist()
    return [_plain(v) for v in out]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _iso_texts(series: pd.Series) -> list[Any]:
    """ISO 8601 texts with every digit the unit holds, and an offset when time-zone aware."""
    if getattr(series.dtype, "tz", None) is not None:
        return [None if v is pd.NaT else v.isoformat() for v in series.tolist()]
    array = series.to_numpy()
    unit: Any = getattr(series.dtype, "unit", "ns")
    mask = np.isnat(array)
    out: list[Any] = np.datetime_as_string(array, unit=unit).tolist()
    if mask.any():
        return [None if m else t for t, m in zip(out, mask.tolist())]
    return out


def encode_split(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as MLflow's ``dataframe_split`` object (``columns`` and ``data``), exactly."""
    refuse_duplicate_columns(frame, "the frame")
    columns = [json_values(frame[c]) for c in frame.columns]
    return {"columns": [str(c) for c in frame.columns],
            "data": [list(row) for row in zip(*columns)] if columns else []}
