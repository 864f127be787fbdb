"""Tables of any column types <-> float matrices, for SHAP's model-agnostic explainers.

SHAP's maskers build their perturbed samples in float arrays, which cannot hold strings, categories,
datetimes or booleans, and multiply values by masks, which turns a missing value into a missing
value everywhere. So every column is encoded as the position of each value in the column's table of
distinct values (the values of the background and of the explained rows): perturbed samples only
ever copy whole values from one row to another, so every code decodes back to a real value of its
column, in its own dtype. A missing value has a code of its own.

Decoding runs once per batch of model evaluations, so it avoids per-column pandas objects where it
can: columns of one numpy dtype decode into a single block, and tables of floats without missing
values are not encoded at all (SHAP gets the values themselves, as it would called directly).

SHAP's maskers compare values with ``np.isclose`` (relative tolerance 1e-5), so codes above about
100,000 would compare equal to their neighbours: encode at most :data:`MAX_ROWS` rows at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_ROWS", "FrameCodec"]

#: Rows (background and explained together) one codec may encode.
MAX_ROWS = 20_000


class FrameCodec:
    """Encodes the columns of some frames as codes into per-column tables of distinct values."""

    def __init__(self, columns: Sequence[str], frames: Sequence[pd.DataFrame]) -> None:
        self.columns = list(columns)
        self._frames = [f[self.columns] for f in frames]
        self._sizes = [len(f) for f in frames]
        if sum(self._sizes) > MAX_ROWS:
            raise ValueError(f"encode at most {MAX_ROWS} rows at a time")
        self._raw = all(f.dtypes.eq(np.float64).all() and not f.isna().to_numpy().any() for f in self._frames)
        self._index = pd.Index(self.columns)
        self._tables: list[Any] = []
        self._codes: list[np.ndarray] = []
        for name in [] if self._raw else self.columns:
            joined = pd.concat([f[name] for f in frames], ignore_index=True)
            codes, uniques = pd.factorize(joined, use_na_sentinel=False)
            table: Any
            if isinstance(joined.dtype, np.dtype):
                table = np.asarray(uniques, dtype=joined.dtype)  # plain numpy: fast to index
            else:  # strings, categories, nullable and timezone-aware types keep their pandas dtype
                table = pd.Series(uniques, dtype=joined.dtype).array
            self._tables.append(table)
            self._codes.append(codes)
        dtypes = {t.dtype for t in self._tables if isinstance(t, np.ndarray)}
        # Columns of one numpy dtype: one table with a column per feature, indexed all at once.
        self._block: np.ndarray | None = None
        numpy_only = all(isinstance(t, np.ndarray) and t.dtype != object for t in self._tables)
        if self._tables and numpy_only and len(dtypes) == 1:
            depth = max(len(t) for t in self._tables)
            self._block = np.zeros((depth, len(self._tables)), dtype=self._tables[0].dtype)
            for j, table in enumerate(self._tables):
                self._block[: len(table), j] = table
            self._block_flat = self._block.ravel(order="F")
            self._offsets = np.arange(len(self._tables)) * depth

    def encoded(self, index: int) -> np.ndarray:
        """The codes of the ``index``-th frame given at construction, as a float matrix."""
        if self._raw:
            return self._frames[index].to_numpy(dtype=np.float64)
        start = sum(self._sizes[:index])
        stop = start + self._sizes[index]
        if not self._codes:
            return np.zeros((stop - start, 0))
        return np.column_stack([c[start:stop] for c in self._codes]).astype(np.float64)

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        """A frame with the original columns and dtypes from a float matrix of codes."""
        if self._raw:
            return pd.DataFrame(codes, columns=self._index, copy=False)
        # Codes are small whole numbers, exact in floats, and maskers only ever copy them.
        positions = codes.astype(np.intp, copy=False)
        if self._block is not None:
            flat = positions + self._offsets  # one take from the column-major table: cheapest indexing
            return pd.DataFrame(np.take(self._block_flat, flat), columns=self._index, copy=False)
        columns: dict[str, Any] = {}
        for j, (name, table) in enumerate(zip(self.columns, self._tables)):
            values = table.take(positions[:, j])
            # pandas would read an object column of strings as its string dtype: say object.
            columns[name] = pd.Series(values, dtype=object, copy=False) if values.dtype == object else values
        return pd.DataFrame(columns, copy=False)
