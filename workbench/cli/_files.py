"""How CLI commands read the tables users give them (``--data``, ``--file``, a reference file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: File suffixes :func:`read_table` reads.
TABLE_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")


def read_table(path: Path) -> Any:
    """A CSV (``.csv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file as a DataFrame; anything
    else, or a file pandas cannot read, is an :class:`~workbench.errors.InvalidInputError`."""
    import pandas as pd

    from workbench.errors import InvalidInputError

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InvalidInputError(f"{path} is neither CSV (.csv) nor Parquet (.parquet): convert it to one of those")
    try:
        return pd.read_parquet(path) if suffix in (".parquet", ".pq") else pd.read_csv(path)
    except (OSError, ValueError, ImportError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc
