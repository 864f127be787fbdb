"""Which original input column each column of a fitted preprocessing chain comes from.

A tree model at the end of a scikit-learn ``Pipeline`` is explained in the space its trees see (after
the ``ColumnTransformer``, one-hot encoding, scaling ...). To report contributions per original input
column, each transformed column is given an owner, and the contributions of the columns one input owns
are summed: the contribution of ``region`` is the sum of the contributions of ``region_north``,
``region_south``, ... SHAP values are additive, so the sums still add up to the prediction minus the
base value.

Owners are found from the fitted objects, never guessed from column names:

- ``ColumnTransformer``: its fitted ``transformers_`` (which inputs each part reads) and
  ``output_indices_`` (which output columns each part writes);
- ``OneHotEncoder``: the number of output columns of each input, from ``categories_``, ``drop_idx_``
  and infrequent-category pooling, checked against the real output width;
- a transformer reading a single column: every output column belongs to that column;
- a transformer whose ``get_feature_names_out`` returns (a subset of) its input names: one to one;
- a transformer without ``get_feature_names_out`` that keeps the width (e.g. a plain
  ``FunctionTransformer``): assumed to work column by column.

Anything that mixes several inputs into one output (PCA, polynomial features, ...) has no owner per
column: :class:`Unmappable` says which step, and the explainer falls back to a model-agnostic method
that works on the original columns directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Unmappable", "owners_through"]


class Unmappable(Exception):
    """A preprocessing step whose output columns cannot each be traced to one input column."""


def owners_through(steps: Sequence[Any], data: pd.DataFrame) -> tuple[list[str], Any]:
    """Push ``data`` through the fitted ``steps`` and trace each output column to an input column.

    Returns the owner (an original column name) of every output column, and the transformed data.
    Raises :class:`Unmappable` when some step mixes inputs.
    """
    owners: list[str] = [str(c) for c in data.columns]
    names: list[str] = list(owners)
    current: Any = data
    for step in steps:
        if step is None or step == "passthrough":
            continue
        output = step.transform(current)
        width = int(output.shape[1])
        owners = _owners(step, owners, names, width)
        names = _names_out(step, names, width)
        current = output
    return owners, current


def _names_out(step: Any, names_in: list[str], width: int) -> list[str]:
    """The step's output names, or positional names when it has none."""
    try:
        out = [str(n) for n in step.get_feature_names_out()]
    except Exception:  # not every transformer names its outputs
        return [f"x{i}" for i in range(width)]
    return out if len(out) == width else [f"x{i}" for i in range(width)]


def _owners(step: Any, owners_in: list[str], names_in: list[str], width: int) -> list[str]:
    if step is None or step == "passthrough":
        if width != len(owners_in):
            raise Unmappable(f"a passthrough step changed the width from {len(owners_in)} to {width}")
        return list(owners_in)
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if isinstance(step, ColumnTransformer):
        return _column_transformer(step, owners_in, names_in, width)
    if len(set(owners_in)) == 1 and owners_in:
        return [owners_in[0]] * width  # everything comes from the one input there is
    if isinstance(step, Pipeline):
        # Inner steps are traced only when they keep the width; the last one decides.
        inner = [s for _, s in step.steps if s is not None and s != "passthrough"]
        if not inner:
            return _owners("passthrough", owners_in, names_in, width)
        *before, last = inner
        n_last = getattr(last, "n_features_in_", len(owners_in))
        if n_last != len(owners_in):
            raise Unmappable(f"{_name(step)} changes the number of columns before its last step")
        for inner_step in before:
            if not _keeps_columns(inner_step, names_in):
                raise Unmappable(f"{_name(inner_step)} inside {_name(step)} mixes or reorders columns")
        return _owners(last, owners_in, names_in, width)
    if isinstance(step, OneHotEncoder):
        return _one_hot(step, owners_in, width)
    return _generic(step, owners_in, names_in, width)


def _keeps_columns(step: Any, names_in: list[str]) -> bool:
    try:
        out = [str(n) for n in step.get_feature_names_out(names_in)]
    except Exception:
        return getattr(step, "n_features_in_", None) == len(names_in)
    return out == list(names_in)


def _generic(step: Any, owners_in: list[str], names_in: list[str], width: int) -> list[str]:
    try:
        out = [str(n) for n in step.get_feature_names_out(names_in)]
    except AttributeError:
        out = None
    except Exception:  # input names the step refuses: try its own
        try:
            out = [str(n) for n in step.get_feature_names_out()]
        except Exception:
            out = None
    if out is None:
        if width == len(owners_in):
            return list(owners_in)  # no names to go by: assumed to work column by column
        raise Unmappable(f"{_name(step)} turns {len(owners_in)} columns into {width}")
    position = {name: i for i, name in enumerate(names_in)}
    if len(out) == width and all(name in position for name in out):
        return [owners_in[position[name]] for name in out]
    raise Unmappable(
        f"{_name(step)} turns {len(owners_in)} columns into {width} new ones "
        f"({', '.join(out[:3])}{', ...' if len(out) > 3 else ''}) that mix several inputs"
    )


def _one_hot(encoder: Any, owners_in: list[str], width: int) -> list[str]:
    try:
        infrequent = list(encoder.infrequent_categories_)
    except AttributeError:  # infrequent-category pooling not enabled
        infrequent = [None] * len(encoder.categories_)
    drop = encoder.drop_idx_
    counts = []
    for i, categories in enumerate(encoder.categories_):
        n = len(categories)
        if infrequent[i] is not None:
            n = n - len(infrequent[i]) + 1
        if drop is not None and drop[i] is not None:
            n -= 1
        counts.append(n)
    if sum(counts) != width or len(counts) != len(owners_in):
        raise Unmappable(f"{_name(encoder)} writes {width} columns, not the {sum(counts)} its categories imply")
    return [owner for owner, n in zip(owners_in, counts) for _ in range(n)]


def _column_transformer(ct: Any, owners_in: list[str], names_in: list[str], width: int) -> list[str]:
    out: list[str | None] = [None] * width
    for name, transformer, columns in ct.transformers_:
        positions = _positions(ct, columns, len(owners_in))
        span = ct.output_indices_.get(name, slice(0, 0))
        n_out = span.stop - span.start
        if transformer == "drop" or n_out == 0 or not positions:
            continue
        sub_owners = [owners_in[p] for p in positions]
        sub_names = [names_in[p] for p in positions]
        out[span] = _owners(transformer, sub_owners, sub_names, n_out)
    if any(o is None for o in out):
        raise Unmappable(f"{_name(ct)} writes columns that no part of it accounts for")
    return [str(o) for o in out]


def _positions(ct: Any, columns: Any, n_inputs: int) -> list[int]:
    """A ColumnTransformer column selection (names, positions, mask or slice) as positions."""
    names = [str(n) for n in getattr(ct, "feature_names_in_", [])]
    index = {n: i for i, n in enumerate(names)}

    def one(key: Any) -> int:
        if isinstance(key, (str, np.str_)):
            if key not in index:
                raise Unmappable(f"{_name(ct)} selects column {key!r}, which it was not fitted with")
            return index[str(key)]
        return int(key)

    if columns is None:
        return []
    if isinstance(columns, slice):
        start = one(columns.start) if columns.start is not None else 0
        if isinstance(columns.stop, str):  # label slices include their end
            stop = one(columns.stop) + 1
        else:
            stop = columns.stop if columns.stop is not None else n_inputs
        return list(range(start, stop, columns.step or 1))
    if isinstance(columns, (str, int, np.integer, np.str_)):
        return [one(columns)]
    items = list(columns)
    if items and all(isinstance(v, (bool, np.bool_)) for v in items):
        return [i for i, keep in enumerate(items) if keep]
    return [one(v) for v in items]


def _name(step: Any) -> str:
    return type(step).__name__
