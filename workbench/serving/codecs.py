"""Open Inference Protocol V2 tensors <-> numpy, and MLflow scoring payloads <-> columns.

Kept free of any web framework so the same decoding serves the HTTP routes, the explain route and
tests. Every decoding error is an :class:`~workbench.errors.InvalidInputError` (or its
:class:`~workbench.errors.SchemaError`) naming the input and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InvalidInputError, SchemaError
from workbench.tables import dtype_text, json_values

__all__ = [
    "V2_DATATYPES",
    "InputBatch",
    "Tensor",
    "decode_tensor",
    "encode_tensor",
    "v2_datatype",
]

#: Open Inference Protocol datatypes and the numpy dtype each decodes to.
V2_DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

_INTEGER_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name for a numpy dtype (strings, objects and datetimes are BYTES)."""
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind in "iuf":
        prefix = {"i": "INT", "u": "UINT", "f": "FP"}[dtype.kind]
        return f"{prefix}{dtype.itemsize * 8}"
    return "BYTES"


@dataclass(frozen=True)
class Tensor:
    """A decoded V2 tensor: its name, datatype, shape and values as a numpy array of that shape."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: Mapping[str, Any]


def _as_shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        raise InvalidInputError(f"input {name!r}: 'shape' must be a list of integers, got {raw!r}")
    if any(d < 0 for d in raw):
        raise InvalidInputError(f"input {name!r}: 'shape' {raw} has a negative dimension")
    return tuple(raw)


def _flatten(data: Any) -> list[Any]:
    """Row-major flattening of nested lists (the spec allows flat or nested tensor data)."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        if any(isinstance(x, list) for x in data):
            raise InvalidInputError("tensor data mixes nested lists and scalars")
        return data
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item))
    return out


def decode_tensor(raw: Any) -> Tensor:
    """Decode one element of a V2 request's ``inputs`` list."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"each element of 'inputs' must be an object, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError("every input needs a non-empty string 'name'")
    datatype = raw.get("datatype")
    if datatype not in V2_DATATYPES:
        raise InvalidInputError(
            f"input {name!r}: datatype {datatype!r} is not one of {', '.join(V2_DATATYPES)}"
        )
    if "shape" not in raw:
        raise InvalidInputError(f"input {name!r} has no 'shape'")
    shape = _as_shape(raw["shape"], name)
    if "data" not in raw:
        raise InvalidInputError(f"input {name!r} has no 'data'")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InvalidInputError(f"input {name!r}: 'parameters' must be an object")
    if isinstance(raw["data"], np.ndarray):  # decoded already, from binary data (workbench.serving.binary)
        return Tensor(name, datatype, shape, raw["data"], parameters)
    flat = _flatten(raw["data"])
    expected = int(np.prod(shape)) if shape else 1
    if len(flat) != expected:
        raise SchemaError(
            f"input {name!r} has shape {list(shape)} ({expected} values) but {len(flat)} data values"
        )
    array = _to_array(flat, datatype, name)
    return Tensor(name, datatype, shape, array.reshape(shape), parameters)


def _to_array(flat: list[Any], datatype: str, name: str) -> np.ndarray:
    dtype = V2_DATATYPES[datatype]
    if datatype == "BYTES":  # null: a missing value
        if not all(v is None or isinstance(v, (str, bytes)) for v in flat):
            bad = next(v for v in flat if not (v is None or isinstance(v, (str, bytes))))
            raise SchemaError(f"input {name!r} is BYTES but holds {bad!r} ({type(bad).__name__})")
        return np.array([v.decode() if isinstance(v, bytes) else v for v in flat], dtype=object)
    if datatype == "BOOL":
        if not all(v is None or isinstance(v, bool) for v in flat):
            bad = next(v for v in flat if not (v is None or isinstance(v, bool)))
            raise SchemaError(f"input {name!r} is BOOL but holds {bad!r}: use true or false")
        if any(v is None for v in flat):  # gaps: the column's own type decides what they become
            return np.array(flat, dtype=object)
        return np.array(flat, dtype=np.bool_)
    if any(isinstance(v, (bool, str, bytes)) for v in flat):
        bad = next(v for v in flat if isinstance(v, (bool, str, bytes)))
        raise SchemaError(f"input {name!r} is {datatype} but holds {bad!r}: send numbers")
    if datatype in _INTEGER_TYPES and any(v is None for v in flat):
        if not all(v is None or isinstance(v, int) or isinstance(v, float) and v.is_integer() for v in flat):
            bad = next(v for v in flat if not (v is None or isinstance(v, int) or isinstance(v, float)
                                                and v.is_integer()))
            raise SchemaError(f"input {name!r} is {datatype} but holds {bad!r}: send whole numbers")
        return np.array([None if v is None else int(v) for v in flat], dtype=object)
    try:
        array = np.array(flat, dtype=np.float64 if datatype not in _INTEGER_TYPES else object)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"input {name!r} is {datatype} but its data are not all numbers") from exc
    if datatype in _INTEGER_TYPES:
        if not all(isinstance(v, int) or isinstance(v, float) and v.is_integer() for v in flat):
            bad = next(v for v in flat if not (isinstance(v, int) or isinstance(v, float) and v.is_integer()))
            raise SchemaError(f"input {name!r} is {datatype} but holds {bad!r}: send whole numbers")
        info = np.iinfo(dtype)
        ints = np.array([int(v) for v in flat], dtype=object)
        if len(ints) and (ints.min() < info.min or ints.max() > info.max):
            raise SchemaError(f"input {name!r} has values outside the range of {datatype}")
        return ints.astype(dtype)
    with np.errstate(over="ignore"):
        return array.astype(dtype)


def encode_tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    """A V2 output tensor from a numpy array (first dimension = rows)."""
    array = np.asarray(values)
    if array.dtype.kind in "OUSM":
        data: Any = [v.isoformat() if hasattr(v, "isoformat") else str(v) if not isinstance(v, str) else v
                     for v in array.reshape(-1).tolist()]
        if array.dtype.kind == "M":
            data = [str(v) for v in array.reshape(-1)]
        return {"name": name, "datatype": "BYTES", "shape": list(array.shape), "data": data}
    # orjson serialises contiguous numpy arrays natively: no per-element Python objects.
    return {
        "name": name,
        "datatype": v2_datatype(array.dtype),
        "shape": list(array.shape),
        "data": np.ascontiguousarray(array.reshape(-1)),
    }


@dataclass(frozen=True)
class InputBatch:
    """Validated input rows, one array per column (numpy, or a pandas array for nullable,
    category and time-zone aware dtypes), ready to batch with others."""

    columns: Mapping[str, Any]
    n_rows: int

    def log_inputs(self) -> dict[str, Any]:
        """The prediction log's form: ``{"columns", "data", "dtypes"}``, values exact (floats to the
        last bit, datetimes to their unit) and each column's dtype, so readers restore it."""
        names = list(self.columns)
        cols = [json_values(self.columns[n]) for n in names]
        return {
            "columns": names,
            "data": [list(row) for row in zip(*cols)] if cols else [],
            "dtypes": [dtype_text(self.columns[n].dtype) for n in names],
        }


def columns_from_split(payload: Any, what: str) -> tuple[list[str], list[list[Any]]]:
    """``{"columns": [...], "data": [[...], ...]}`` -> column names and rows, checked for shape and
    for a column named twice."""
    if not isinstance(payload, Mapping) or "data" not in payload:
        raise InvalidInputError(f"{what} must be an object with 'columns' and 'data'")
    rows = payload["data"]
    names = payload.get("columns")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise InvalidInputError(f"{what}['data'] must be a list of rows (lists)")
    if names is None:
        raise InvalidInputError(f"{what} has no 'columns': name the columns of each row")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInputError(f"{what}['columns'] must be a list of column names")
    if len(set(names)) != len(names):  # else the last value of the column would silently win
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise InvalidInputError(f"{what}['columns'] names column {twice!r} more than once: name each column once")
    for i, row in enumerate(rows):
        if len(row) != len(names):
            raise SchemaError(f"{what} row {i} has {len(row)} values for {len(names)} columns")
    return names, rows


def columns_from_records(records: Any, what: str) -> dict[str, list[Any]]:
    """``[{"col": value, ...}, ...]`` -> one list per column (missing keys become None)."""
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise InvalidInputError(f"{what} must be a list of objects, one per row")
    names: dict[str, None] = {}
    for record in records:
        for key in record:
            names.setdefault(key, None)
    return {n: [r.get(n) for r in records] for n in names}


def rows_to_columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Row-major values -> one list per column."""
    if not rows:
        return {n: [] for n in names}
    return {n: list(col) for n, col in zip(names, zip(*rows))}
