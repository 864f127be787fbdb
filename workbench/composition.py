"""Whether a model's answers depend on which rows are predicted together.

The server's batcher predicts the rows of concurrent requests in one call. For most models a row's
answer is the same alone or among others; for some it is not: float32 networks (PyTorch, Keras, a
numpy float32 matmul) get a few last bits different, because the math library adds up a matrix
product in another order for another number of rows. Their answers would then depend on who else
was asking. :func:`depends_on_batch` finds out at ``log_model`` by predicting a sample whole, row by
row and in two parts; such a model, or one declared so (``log_model(..., batch_invariant=False)``),
is marked in its MLmodel metadata (:data:`METADATA_KEY`) and the server predicts each of its
requests on its own, so every answer equals ``model.predict`` on the request's rows bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["METADATA_KEY", "SAMPLE_ROWS", "depends_on_batch", "predicted_per_request"]

#: The MLmodel ``metadata`` entry that says the model's answers depend on batch composition.
METADATA_KEY = "workbench_batch_invariant"
#: Rows of the training data tried (the first few of them also one at a time).
SAMPLE_ROWS = 16


def _as_array(raw: Any) -> np.ndarray:
    if isinstance(raw, (pd.DataFrame, pd.Series)):
        return raw.to_numpy()
    if hasattr(raw, "detach"):  # a torch tensor
        return np.asarray(raw.detach().cpu().numpy())
    return np.asarray(raw)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(pd.DataFrame(a.reshape(len(a), -1)).equals(pd.DataFrame(b.reshape(len(b), -1))))


def depends_on_batch(predict: Callable[[pd.DataFrame], Any], sample: pd.DataFrame) -> bool:
    """Whether ``predict`` answers some row of ``sample`` (its first :data:`SAMPLE_ROWS` rows)
    differently when it is predicted alone or with other rows than all of them together. A model
    that cannot predict a part of the sample counts as independent (nothing shows otherwise)."""
    rows = sample.head(SAMPLE_ROWS)
    if len(rows) < 2:
        return False
    try:
        whole = _as_array(predict(rows))
        cut = len(rows) // 3 or 1
        parts = [rows.iloc[:cut], rows.iloc[cut:]]
        alone = [rows.iloc[i:i + 1] for i in range(min(len(rows), 8))]
        halves = np.concatenate([_as_array(predict(p)) for p in parts])
        singles = np.concatenate([_as_array(predict(r)) for r in alone])
    except Exception:  # a model that refuses some part: the server predicts as it always has
        return False
    return not (_same(whole, halves) and _same(whole[:len(singles)], singles))


def predicted_per_request(mlmodel: Mapping[str, Any]) -> bool:
    """Whether a model (its parsed MLmodel file) is marked to be predicted one request at a time."""
    metadata = mlmodel.get("metadata") or {}
    return isinstance(metadata, Mapping) and metadata.get(METADATA_KEY) is False
