"""What of the training data a model image carries.

A model folder as logged holds training rows in three files: the reference profile's sample
(``reference_profile/sample.parquet``, up to 10,000 rows, target included) and MLflow's input example
(``input_example.json``, ``serving_input_example.json``: the first rows). Images get pushed to
registries, so by default an image carries none of them:

- the sample is replaced by :data:`SUMMARY_ROWS` rows drawn from the profile's per-feature summaries
  (:meth:`~workbench.profile.ReferenceProfile.summary_rows`, in the training dtypes): what the server's
  explain route needs as a SHAP background, without any row of the training data. Drift and
  monitoring never use the image's copy: they read the profile from the registry;
- the input example is replaced by the first rows of that background (the server predicts it once
  at start to learn its outputs), or removed when the model has no profile to draw from.

``include_sample=True`` keeps a random sample of real training rows instead, at most
:data:`MAX_SAMPLE_ROWS`. The image's label ``io.workbench.model.training_rows`` and the model card
say which (:meth:`TrainingRows.describe`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from workbench.errors import InvalidInputError
from workbench.profile import PROFILE_DIR, ReferenceProfile
from workbench.tables import TableSchema, encode_split

__all__ = ["MAX_SAMPLE_ROWS", "SUMMARY_ROWS", "TRAINING_ROWS_LABEL", "TrainingRows", "limit_training_rows"]

#: Most training rows an image may carry (``include_sample=True``).
MAX_SAMPLE_ROWS = 10_000
#: Rows drawn from the profile's summaries in place of the sample.
SUMMARY_ROWS = 100
#: The OCI label that says how many training rows an image carries.
TRAINING_ROWS_LABEL = "io.workbench.model.training_rows"

_SAMPLE = "sample.parquet"
_EXAMPLES = ("input_example.json", "serving_input_example.json")


@dataclass(frozen=True)
class TrainingRows:
    """What of the training data went into a build context."""

    #: Real training rows kept (0 by default).
    sample_rows: int
    #: Rows drawn from the profile's summaries in their place (0 when there is no profile).
    summary_rows: int

    def describe(self) -> str:
        """One line for labels, build logs and the model card."""
        if self.sample_rows:
            return f"{self.sample_rows} training rows (a random sample, kept on request)"
        if self.summary_rows:
            return f"no training rows ({self.summary_rows} rows drawn from per-feature summaries)"
        return "no training rows"


def limit_training_rows(model_dir: Path, *, include_sample: bool = False, sample_rows: int = 1_000,
                        seed: int = 0) -> TrainingRows:
    """Rewrite the model folder ``model_dir`` (a copy, in a build context) as the module docstring says."""
    if not 0 < sample_rows <= MAX_SAMPLE_ROWS:
        raise InvalidInputError(
            f"sample_rows must be between 1 and {MAX_SAMPLE_ROWS}, got {sample_rows}: images carry a bounded sample"
        )
    profile_dir = model_dir / PROFILE_DIR
    has_profile = (profile_dir / "profile.json").exists()
    if include_sample and has_profile and (profile_dir / _SAMPLE).exists():
        sample = pd.read_parquet(profile_dir / _SAMPLE)
        kept = sample.sample(n=min(sample_rows, len(sample)), random_state=seed)
        kept.reset_index(drop=True).to_parquet(profile_dir / _SAMPLE, index=False)
        return TrainingRows(sample_rows=len(kept), summary_rows=0)
    if not has_profile:
        _drop_examples(model_dir)
        return TrainingRows(sample_rows=0, summary_rows=0)
    background = ReferenceProfile.load(profile_dir).summary_rows(SUMMARY_ROWS, seed=seed,
                                                                 schema=TableSchema.load(model_dir))
    background.to_parquet(profile_dir / _SAMPLE, index=False)
    _replace_examples(model_dir, background)
    return TrainingRows(sample_rows=0, summary_rows=len(background))


def _replace_examples(model_dir: Path, background: pd.DataFrame) -> None:
    """The input example files, with their rows taken from ``background`` (same columns, same count)."""
    for name in _EXAMPLES:
        path = model_dir / name
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = None
        split = data.get("dataframe_split", data) if isinstance(data, dict) else None
        columns = split.get("columns") if isinstance(split, dict) else None
        if not (isinstance(split, dict) and isinstance(columns, list) and set(columns) <= set(background.columns)
                and isinstance(split.get("data"), list)):
            _drop_examples(model_dir)  # an example we cannot rewrite goes: it may hold training rows
            return
        split["data"] = encode_split(background[columns].head(max(len(split["data"]), 1)))["data"]
        path.write_text(json.dumps(data))


def _drop_examples(model_dir: Path) -> None:
    for name in _EXAMPLES:
        (model_dir / name).unlink(missing_ok=True)
    mlmodel = model_dir / "MLmodel"
    if mlmodel.exists():
        spec = yaml.safe_load(mlmodel.read_text())
        if isinstance(spec, dict) and spec.pop("saved_input_example_info", None) is not None:
            mlmodel.write_text(yaml.safe_dump(spec, sort_keys=False))
