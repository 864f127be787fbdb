"""Parquet tables read a group of columns at a time, so profiling and drift never hold a whole table.

A :class:`ParquetTable` wraps a Parquet file, a folder of Parquet files or a ``pyarrow.dataset``
Dataset. Its columns come back as pandas exactly as ``pd.read_parquet`` makes them (nullable
integers, categories, time zones and strings survive), but only a few at a time::

    >>> table = ParquetTable.open("current.parquet")
    >>> for frame in table.column_groups(table.columns):   # about GROUP_BYTES of values each
    ...     summarise(frame)

:func:`parquet_source` says whether an argument names Parquet data at all; the profile
(:meth:`workbench.profile.ReferenceProfile.from_data`) and drift (:func:`workbench.monitor.detect_drift`)
take such sources wherever they take a DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError

__all__ = ["GROUP_BYTES", "PARQUET_SUFFIXES", "ParquetTable", "parquet_source", "sample_positions"]

#: File suffixes read as Parquet when a path is given as a string.
PARQUET_SUFFIXES = (".parquet", ".pq")

#: Columns are read in groups of about this many bytes of 8-byte values (at least one column a
#: group): large enough for pyarrow to decode several columns at once (8 of a million rows), small
#: enough that a group of a 10-million-row table is one column.
GROUP_BYTES = 64 * 2**20


def sample_positions(n_rows: int, size: int, seed: int) -> np.ndarray:
    """The row positions ``DataFrame.sample(n=size, random_state=seed)`` picks from ``n_rows`` rows,
    in its order, without the rows: a sample read from Parquet holds the rows an in-memory one would."""
    size = min(size, n_rows)
    return pd.Series(np.arange(n_rows)).sample(n=size, random_state=seed).to_numpy()


@dataclass(frozen=True)
class ParquetTable:
    """Parquet data read column group by column group; see the module docstring."""

    #: The ``pyarrow.dataset.Dataset`` read from.
    dataset: Any
    #: The path it was opened from (or ``"a pyarrow dataset"``), for messages.
    where: str
    #: Data columns in file order (a pandas index stored as columns is left out).
    columns: tuple[str, ...]
    n_rows: int

    @classmethod
    def open(cls, source: str | Path | Any) -> ParquetTable:
        """Open a Parquet file, a folder of Parquet files, or a ``pyarrow.dataset.Dataset``.

        A missing path, a file that is not Parquet, or a folder whose files disagree on their columns'
        types is an :class:`~workbench.errors.InvalidInputError`.
        """
        if isinstance(source, ParquetTable):
            return source
        import pyarrow as pa
        import pyarrow.dataset as ds

        if isinstance(source, ds.Dataset):
            dataset, where = source, "a pyarrow dataset"
        else:
            path = Path(source)
            where = str(path)
            if not path.exists():
                raise InvalidInputError(f"no Parquet file or folder at {path}: check the path")
            try:
                dataset = ds.dataset(path, format="parquet")
                n_rows = dataset.count_rows()
            except (pa.ArrowException, OSError) as exc:
                raise InvalidInputError(
                    f"cannot read {path} as Parquet ({exc}): give a Parquet file, or a folder of Parquet files "
                    "with the same columns and types"
                ) from exc
            return cls(dataset, where, _data_columns(dataset.schema), n_rows)
        try:
            n_rows = dataset.count_rows()
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(f"cannot read {where}: {exc}") from exc
        return cls(dataset, where, _data_columns(dataset.schema), n_rows)

    def read(self, columns: Sequence[str]) -> pd.DataFrame:
        """These columns, all rows, as ``pd.read_parquet(path, columns=columns)`` gives them."""
        import pyarrow as pa

        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise InvalidInputError(f"{self.where} has no column(s) {unknown[:10]}; it has {list(self.columns[:10])}")
        try:
            table = self.dataset.to_table(columns=list(columns))
            # Each Arrow buffer is freed as soon as its column is converted: a group is never held twice.
            return table.to_pandas(split_blocks=True, self_destruct=True)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInputError(
                f"cannot read columns {list(columns)[:10]} of {self.where} ({exc}): if it is a folder, its files "
                "must give each column the same type"
            ) from exc

    def column_groups(self, columns: Sequence[str], budget: int | None = None) -> Iterator[pd.DataFrame]:
        """DataFrames of consecutive ``columns``, about ``budget`` (default :data:`GROUP_BYTES`) bytes
        of 8-byte values each."""
        per_group = max(1, (budget or GROUP_BYTES) // max(8 * self.n_rows, 1))
        names = list(columns)
        for start in range(0, len(names), per_group):
            yield self.read(names[start:start + per_group])


def _data_columns(schema: Any) -> tuple[str, ...]:
    """The schema's columns but a pandas index written as columns (``__index_level_0__`` and the like)."""
    index = set()
    metadata = schema.pandas_metadata
    if metadata:
        index = {c for c in metadata.get("index_columns", []) if isinstance(c, str)}
    return tuple(name for name in schema.names if name not in index)


def parquet_source(value: Any) -> ParquetTable | None:
    """``value`` opened as a :class:`ParquetTable` when it names Parquet data (a ``Path``, a string
    ending in ``.parquet`` or ``.pq``, a ``pyarrow.dataset.Dataset`` or a ParquetTable), else ``None``.

    A string without the suffix is not taken for a path: elsewhere it is a model URI.
    """
    if isinstance(value, ParquetTable):
        return value
    if isinstance(value, Path) or (isinstance(value, str) and value.lower().endswith(PARQUET_SUFFIXES)):
        return ParquetTable.open(value)
    if type(value).__module__.startswith("pyarrow"):
        import pyarrow.dataset as ds

        if isinstance(value, ds.Dataset):
            return ParquetTable.open(value)
    return None
