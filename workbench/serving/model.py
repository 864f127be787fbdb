"""The model as the inference server sees it: loaded once, its signature turned into input checks.

:class:`ServedModel` validates request data against the model signature (every failure a 4xx-mapped
:class:`~workbench.errors.SchemaError` naming the column and the value), predicts a batch of many
requests at once, and splits the results back per request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.composition import predicted_per_request
from workbench.errors import InvalidInputError, MissingDependencyError, SchemaError
from workbench.predlog.schema import SKLEARN_EXTRA_OUTPUTS
from workbench.serving.codecs import InputBatch, Tensor, v2_datatype
from workbench.serving.ensembles import exact_methods
from workbench.serving.flavors import DirectModel, load_direct, read_mlmodel
from workbench.tables import TableSchema

__all__ = ["InputColumn", "Prediction", "ServedModel"]

#: Flavors whose pyfunc wraps the library's own model (``get_raw_model``), predicted as it is.
_RAW_MODEL_FLAVORS = ("sklearn", "xgboost", "lightgbm", "catboost")



@dataclass(frozen=True)
class InputColumn:
    """One column of a column-based signature."""

    name: str
    #: MLflow type name: double, float, long, integer, boolean, string, binary, datetime (or other).
    type: str
    required: bool = True

    @property
    def v2_datatype(self) -> str:
        """The Open Inference Protocol datatype clients should send."""
        return {
            "double": "FP64",
            "float": "FP32",
            "long": "INT64",
            "integer": "INT32",
            "boolean": "BOOL",
        }.get(self.type, "BYTES")


@dataclass(frozen=True)
class Prediction:
    """What one request gets back from a batch."""

    #: Named outputs, each with one entry (first dimension) per input row.
    outputs: Mapping[str, np.ndarray]
    #: The model's own result for these rows (ndarray, Series, DataFrame, list), for /invocations.
    raw: Any


def _column_error(column: InputColumn, value: Any, expected: str) -> SchemaError:
    return SchemaError(
        f"column {column.name!r} expects {expected} ({column.type}); got {value!r} "
        f"({type(value).__name__})"
    )


def convert_column(column: InputColumn, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """One column's values as the numpy dtype its signature type calls for, or a SchemaError."""
    array = values if isinstance(values, np.ndarray) else np.asarray(values)
    kind = array.dtype.kind
    if column.type in ("double", "float"):
        real: type[np.floating[Any]] = np.float64 if column.type == "double" else np.float32
        if kind in "iuf":
            return array.astype(real, copy=False)
        if kind == "O":
            for v in array:
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise _column_error(column, v, "numbers")
            return np.array([np.nan if v is None else v for v in array], dtype=real)
        raise _column_error(column, array.flat[0] if array.size else None, "numbers")
    if column.type in ("long", "integer"):
        target: type[np.signedinteger[Any]] = np.int64 if column.type == "long" else np.int32
        if kind in "iu":
            info = np.iinfo(target)
            if array.size and (array.min() < info.min or array.max() > info.max):
                raise SchemaError(f"column {column.name!r} has values outside the {column.type} range")
            return array.astype(target, copy=False)
        if kind == "f":
            bad = ~np.isfinite(array) | (array != np.round(array))
            if bad.any():
                raise _column_error(column, array[bad][0].item(), "whole numbers")
            return array.astype(target)
        if kind == "O":
            for v in array:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise _column_error(column, v, "whole numbers")
            return convert_column(column, np.array(list(array), dtype=np.int64))
        raise _column_error(column, array.flat[0] if array.size else None, "whole numbers")
    if column.type == "boolean":
        if kind == "b":
            return array
        bad = next((v for v in array.tolist() if not isinstance(v, bool)), None)
        raise _column_error(column, bad, "true or false")
    if column.type == "string":
        if kind == "U":
            return array.astype(object)
        if kind == "O":
            for v in array:
                if v is not None and not isinstance(v, str):
                    raise _column_error(column, v, "strings")
            return array
        raise _column_error(column, array.flat[0].item() if array.size else None, "strings")
    if column.type == "binary":
        out = []
        for v in array.tolist():
            if isinstance(v, bytes):
                out.append(v)
            elif isinstance(v, str):
                try:
                    out.append(base64.b64decode(v, validate=True))
                except ValueError as exc:
                    raise _column_error(column, v, "base64-encoded bytes") from exc
            else:
                raise _column_error(column, v, "base64-encoded bytes")
        return np.array(out, dtype=object)
    if column.type == "datetime":
        try:
            return pd.to_datetime(pd.Series(array), errors="raise").to_numpy()
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"column {column.name!r} expects dates or times (ISO 8601): {exc}") from exc
    return array.astype(object) if kind != "O" else array  # arrays, objects, maps: passed through


@dataclass
class ServedModel:
    """A model loaded for serving, with its name, version and input contract.

    scikit-learn and XGBoost models with a column signature load without MLflow (see
    :mod:`workbench.serving.flavors`); MLflow's pyfunc model is then loaded only if a request needs
    it (:attr:`pyfunc`). Every other model loads through ``mlflow.pyfunc`` at once.
    """

    name: str
    version: str | None
    uri: str
    flavor: str
    #: Column contract from a column-based signature; ``None`` for tensor signatures or none at all.
    columns: tuple[InputColumn, ...] | None
    #: The scikit-learn estimator behind an sklearn-flavored model (predicted directly, for speed).
    sklearn_model: Any = None
    predict_fn: str = "predict"
    #: MLflow's schema objects, when the model was loaded through MLflow (``None`` otherwise).
    input_schema: Any = None
    output_schema: Any = None
    params_schema: Any = None
    #: Names of the parameters the signature declares (a request's other parameters are dropped).
    param_names: frozenset[str] = frozenset()
    #: The name a single unnamed result gets (the signature's one output column, else ``predict``).
    output_name: str = "predict"
    run_id: str | None = None
    model_dir: Path | None = None
    #: Names and numpy dtypes of the outputs, learned from the input example at load time.
    output_spec: dict[str, np.dtype[Any]] = field(default_factory=dict)
    #: The training frame's exact column types (``input_types.json``), when the model was logged
    #: with the workbench: requests are restored to them and the model gets the frame it was fit on.
    table: TableSchema | None = None
    #: The model as loaded without MLflow, when it was (see :mod:`workbench.serving.flavors`).
    direct: DirectModel | None = None
    #: Each of :attr:`methods`' numpy dtype and shape past the rows, learned from the input example.
    method_shapes: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = field(default_factory=dict)
    #: The server's request limits, told to clients in the metadata (set by the server).
    limits: dict[str, int] = field(default_factory=dict)
    #: Its answers depend on which rows are predicted together (see :mod:`workbench.composition`):
    #: each request is predicted on its own, never batched with others.
    per_request: bool = False
    #: The reference profile's feature names: the names rows of a tensor model are logged under.
    feature_names: tuple[str, ...] | None = None
    #: Faster stand-ins for the estimator's methods, by name, checked at load to give its answers
    #: bit for bit on the input example (see :mod:`workbench.serving.ensembles`).
    exact: dict[str, Callable[[Any], Any]] = field(default_factory=dict, repr=False)
    _pyfunc: Any = field(default=None, repr=False)

    @property
    def pyfunc(self) -> Any:
        """MLflow's pyfunc model (``mlflow.pyfunc.load_model``), loaded on first use for a model
        the server loaded without MLflow."""
        if self._pyfunc is None:
            assert self.model_dir is not None
            self._pyfunc = _load_pyfunc(self.uri, self.model_dir)
        return self._pyfunc

    @classmethod
    def load(cls, model_uri: str, *, name: str | None = None, version: str | None = None,
             snapshot: str | Path | None = None, model_dir: str | Path | None = None) -> ServedModel:
        """Load any MLflow model URI (or folder); name and version default to the registry's.

        ``snapshot`` is the folder a model image's build wrote for this model
        (:func:`workbench.serving.flavors.write_snapshot`). ``model_dir``, when given, holds the
        model's files already (the local target passes the store's folder): with ``name`` and
        ``version`` also given, the store is not opened at all.
        """
        from workbench.registry import download_model, registered_version

        registry_version = None if (model_dir and name and version) else registered_version(model_uri)
        local = Path(model_dir) if model_dir else Path(download_model(model_uri))
        default_name = registry_version.name if registry_version else (name or "model")
        common: dict[str, Any] = {
            "name": name or default_name,
            "version": version or (registry_version.version if registry_version else None),
            "uri": model_uri,
            "model_dir": local,
        }
        mlmodel = read_mlmodel(local)
        try:
            direct = load_direct(local, mlmodel, snapshot=snapshot)
        except Exception as exc:
            raise InvalidInputError(f"cannot load the model at {model_uri!r} for serving: {exc}") from exc
        if direct is not None:
            columns = tuple(
                InputColumn(name=str(c["name"]), type=str(c.get("type")), required=bool(c.get("required", True)))
                for c in json.loads(mlmodel["signature"]["inputs"])
            )
            model = cls(
                **common,
                flavor=direct.flavor,
                columns=columns,
                sklearn_model=direct.raw if direct.flavor == "sklearn" else None,
                predict_fn=direct.predict_fn,
                output_name=direct.output_name,
                run_id=mlmodel.get("run_id"),
                table=TableSchema.load(local),
                direct=direct,
            )
        else:
            model = cls._load_with_mlflow(model_uri, local, common)
        model.per_request = predicted_per_request(mlmodel)
        model.feature_names = _profile_features(local)
        model._learn_outputs()
        return model

    @classmethod
    def _load_with_mlflow(cls, model_uri: str, local: Path, common: dict[str, Any]) -> ServedModel:
        pyfunc = _load_pyfunc(model_uri, local)
        meta = pyfunc.metadata
        flavors = meta.flavors
        flavor = "sklearn" if "sklearn" in flavors else next(
            (f for f in flavors if f != "python_function"), "python_function"
        )
        input_schema = meta.get_input_schema()
        columns = None
        if input_schema is not None and not input_schema.is_tensor_spec():
            columns = tuple(
                InputColumn(
                    name=str(spec.name),
                    type=getattr(spec.type, "name", str(spec.type)),
                    required=bool(getattr(spec, "required", True)),
                )
                for spec in input_schema.inputs
            )
            if any(c.name in (None, "None") for c in columns):
                columns = None  # unnamed columns: nothing to match request fields against
        sklearn_model = None
        if flavor == "sklearn":
            try:
                sklearn_model = pyfunc.get_raw_model()
            except Exception:
                sklearn_model = None
        output_schema = meta.get_output_schema()
        params_schema = meta.get_params_schema()
        return cls(
            **common,
            flavor=flavor,
            columns=columns,
            sklearn_model=sklearn_model,
            predict_fn=str(flavors.get("python_function", {}).get("predict_fn", "predict")),
            input_schema=input_schema,
            output_schema=output_schema,
            params_schema=params_schema,
            param_names=frozenset(p.name for p in params_schema.params) if params_schema is not None else frozenset(),
            output_name=_schema_output_name(output_schema),
            run_id=meta.run_id,
            table=TableSchema.load(local) if columns is not None else None,
            _pyfunc=pyfunc,
        )

    # -- contract -------------------------------------------------------------------------------

    @property
    def batchable(self) -> bool:
        """Whether requests can be predicted together (column signatures only)."""
        return self.columns is not None

    @property
    def output_names(self) -> list[str]:
        """Outputs a client can request by name: the model's answer, and the estimator's
        ``predict_proba``, ``predict_log_proba``, ``decision_function`` and ``score_samples`` where
        it has them (scikit-learn, XGBoost, LightGBM and CatBoost models)."""
        names = list(self.output_spec) or ["predict"]
        names += [m for m in self.methods if m not in names]
        return names

    @property
    def estimator(self) -> Any:
        """The library's own fitted model (scikit-learn estimator or Pipeline, XGBoost, LightGBM or
        CatBoost model), whose other methods are outputs too; ``None`` for other models."""
        if self.sklearn_model is not None:
            return self.sklearn_model
        if self.direct is not None:
            return self.direct.raw
        if self.flavor in _RAW_MODEL_FLAVORS and self.columns is not None:
            try:
                return self.pyfunc.get_raw_model()
            except Exception:  # a flavor without a raw model: its answer only
                return None
        return None

    @property
    def methods(self) -> list[str]:
        """The estimator's methods offered as outputs besides its answer (see :attr:`output_names`)."""
        estimator = self.estimator
        return [m for m in SKLEARN_EXTRA_OUTPUTS if estimator is not None and hasattr(estimator, m)]

    def output_columns(self, name: str) -> list[Any] | None:
        """What the columns of a two-dimensional output stand for: the classes, in order, for
        ``predict_proba``, ``predict_log_proba`` and a multi-class ``decision_function``."""
        classes = getattr(self.estimator, "classes_", None)
        if name in self.methods and name != "score_samples" and classes is not None:
            return [c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()]
        return None

    def _learn_outputs(self) -> None:
        """Predict the logged input example once: checks the model works and names its outputs."""
        if self.columns is None or self.model_dir is None:
            return
        example = self._input_example()
        if example is None:
            return
        try:
            batch = self.to_batch({c: example[c].tolist() for c in example.columns if c in self._column_names})
            (prediction,) = self.predict([batch], ())
        except Exception:  # a model whose example no longer predicts still serves; errors show per request
            return
        self.output_spec = {k: v.dtype for k, v in prediction.outputs.items()}
        self.exact = self._checked_stand_ins(self.frame([batch]))
        for method in self.methods:
            try:
                (extra,) = self.predict([batch], (method,))
            except Exception:  # offered all the same; a request that asks for it gets the model's error
                continue
            self.method_shapes[method] = (extra.outputs[method].dtype, extra.outputs[method].shape[1:])

    def _checked_stand_ins(self, frame: pd.DataFrame) -> dict[str, Callable[[Any], Any]]:
        """The stand-ins of :func:`exact_methods` that give the estimator's own answer on ``frame``,
        bit for bit (a scikit-learn model loaded without MLflow only)."""
        if self.sklearn_model is None:
            return {}
        checked = {}
        for name, method in exact_methods(self.sklearn_model).items():
            try:
                same = _identical(method(frame), getattr(self.sklearn_model, name)(frame))
            except Exception:  # the estimator's own method decides what a request gets
                same = False
            if same:
                checked[name] = method
        return checked

    def _method(self, name: str) -> Callable[[Any], Any]:
        """The estimator's method ``name``, or its checked stand-in."""
        return self.exact.get(name) or getattr(self.estimator, name)

    def _input_example(self) -> pd.DataFrame | None:
        assert self.model_dir is not None
        for name in ("input_example.json",):
            path = self.model_dir / name
            if path.exists():
                try:
                    data = json.loads(path.read_text())
                    if isinstance(data, dict) and "columns" in data and "data" in data:
                        return pd.DataFrame(data["data"], columns=data["columns"])
                except (ValueError, TypeError):
                    return None
        return None

    @property
    def width(self) -> int:
        """Values in one row of input: the signature's columns, or a tensor's elements past the rows."""
        if self.columns is not None:
            return len(self.columns)
        if self.input_schema is not None and self.input_schema.is_tensor_spec():
            return sum(int(np.prod([max(d, 1) for d in spec.shape[1:]])) for spec in self.input_schema.inputs)
        return 1

    @property
    def _column_names(self) -> set[str]:
        return {c.name for c in self.columns or ()}

    def metadata(self) -> dict[str, Any]:
        """Model metadata in the Open Inference Protocol's form."""
        inputs: list[dict[str, Any]]
        if self.columns is not None:
            inputs = [{"name": c.name, "datatype": c.v2_datatype, "shape": [-1]} for c in self.columns]
        elif self.input_schema is not None:
            inputs = [
                {
                    "name": str(spec.name or f"input-{i}"),
                    "datatype": v2_datatype(np.dtype(spec.type)),
                    "shape": list(spec.shape),
                }
                for i, spec in enumerate(self.input_schema.inputs)
            ]
        else:
            inputs = []
        outputs = [
            {"name": n, "datatype": v2_datatype(d), "shape": [-1]} for n, d in self.output_spec.items()
        ]
        if not outputs and self.output_schema is not None and self.output_schema.is_tensor_spec():
            # A tensor model (a network): its outputs as the signature declares them, so a client
            # that asks for outputs by name (Triton's with JSON tensors) knows what to ask for.
            specs = self.output_schema.inputs
            outputs = [{"name": str(spec.name or (self.output_name if len(specs) == 1 else f"output-{i}")),
                        "datatype": v2_datatype(np.dtype(spec.type)), "shape": list(spec.shape)}
                       for i, spec in enumerate(specs)]
        for method, (dtype, rest) in self.method_shapes.items():
            output: dict[str, Any] = {"name": method, "datatype": v2_datatype(dtype), "shape": [-1, *rest]}
            columns = self.output_columns(method) if rest else None
            if columns is not None and len(columns) == rest[0]:
                output["parameters"] = {"columns": columns}
            outputs.append(output)
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": f"mlflow_{self.flavor}",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {"run_id": self.run_id, "model_uri": self.uri, **self.limits},
        }

    # -- input ----------------------------------------------------------------------------------

    def to_batch(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> InputBatch:
        """Check named columns against the signature and convert them; extra columns are ignored."""
        assert self.columns is not None
        missing = [c.name for c in self.columns if c.required and c.name not in columns]
        if missing:
            raise SchemaError(
                f"missing input column(s) {missing}; the model expects {[c.name for c in self.columns]}"
            )
        known = self._column_names
        lengths = {len(v) for k, v in columns.items() if k in known}
        if len(lengths) > 1:
            raise SchemaError(f"input columns have different lengths {sorted(lengths)}: send one value per row")
        n_rows = lengths.pop() if lengths else 0
        if n_rows == 0:
            raise InvalidInputError("the request has no rows: send at least one")
        converted = {}
        table = self.table
        for column in self.columns:
            values = columns[column.name] if column.name in columns else [None] * n_rows  # optional: left out
            if table is not None and column.name in table:
                converted[column.name] = table[column.name].restore(values)
            elif column.name in columns:
                converted[column.name] = convert_column(column, values)
            else:
                converted[column.name] = np.full(n_rows, None, dtype=object)
        return InputBatch(converted, n_rows)

    def batch_from_tensors(self, tensors: Sequence[Tensor]) -> InputBatch:
        """V2 inputs -> a column batch: one tensor per column, or one [rows, columns] tensor."""
        assert self.columns is not None
        names = [c.name for c in self.columns]
        by_name = {t.name: t for t in tensors}
        if len(by_name) != len(tensors):
            raise InvalidInputError("two inputs have the same name")
        if len(tensors) == 1 and tensors[0].name not in self._column_names:
            tensor = tensors[0]
            if tensor.data.ndim != 2 or tensor.shape[1] != len(names):
                raise SchemaError(
                    f"input {tensor.name!r} with shape {list(tensor.shape)} matches no column; send one "
                    f"input per column ({names}) or one input of shape [rows, {len(names)}]"
                )
            return self.to_batch({n: tensor.data[:, i] for i, n in enumerate(names)})
        unknown = [t.name for t in tensors if t.name not in self._column_names]
        if unknown:
            raise SchemaError(f"unknown input(s) {unknown}; the model's inputs are {names}")
        columns = {}
        for t in tensors:
            if t.data.ndim > 2 or t.data.ndim == 2 and t.shape[1] != 1:
                raise SchemaError(
                    f"input {t.name!r} has shape {list(t.shape)}; a column input has shape [rows] or [rows, 1]"
                )
            columns[t.name] = t.data.reshape(-1)
        return self.to_batch(columns)

    # -- predicting -----------------------------------------------------------------------------

    def frame(self, batches: Sequence[InputBatch]) -> pd.DataFrame:
        """The batches stacked into one DataFrame with the signature's column order."""
        assert self.columns is not None
        block = _numeric_block(batches, [c.name for c in self.columns])
        if block is not None:
            return block
        if len(batches) == 1:
            return pd.DataFrame(dict(batches[0].columns), copy=False)
        return pd.DataFrame({c.name: _concat([b.columns[c.name] for b in batches]) for c in self.columns},
                            copy=False)

    def predict(
        self, batches: Sequence[InputBatch], outputs: Sequence[str], params: Mapping[str, Any] | None = None
    ) -> list[Prediction]:
        """Predict several requests' rows at once; one :class:`Prediction` per batch, in order."""
        frame = self.frame(batches)
        raw, named = self._predict_frame(frame, outputs, params)
        if len(batches) == 1:
            return [Prediction(named, raw)]
        results = []
        start = 0
        for b in batches:
            stop = start + b.n_rows
            results.append(Prediction({k: v[start:stop] for k, v in named.items()}, _slice(raw, start, stop)))
            start = stop
        return results

    def _predict_frame(
        self, frame: pd.DataFrame, outputs: Sequence[str], params: Mapping[str, Any] | None
    ) -> tuple[Any, dict[str, np.ndarray]]:
        n = len(frame)
        raw = self.predict_frame(frame, params)
        named = _named_outputs(raw, n, self.output_name)
        for name in outputs:
            if name in named:
                continue
            if name in self.methods:
                named[name] = np.asarray(self._method(name)(frame))
            else:
                raise InvalidInputError(f"unknown output {name!r}; this model offers {self.output_names}")
        if outputs:
            named = {k: v for k, v in named.items() if k in outputs}
        return raw, named

    def predict_frame(self, frame: pd.DataFrame, params: Mapping[str, Any] | None = None) -> Any:
        """The model's own answer for a frame of checked inputs (see :meth:`to_batch`)."""
        if self.sklearn_model is not None and not params:
            return self._method(self.predict_fn)(frame)
        if self.direct is not None and not params:
            return self.direct.predict(frame)
        if self.table is not None and not params:
            # The frame already has the training dtypes; MLflow's signature enforcement would undo
            # some of them (nullable integers, categories, time zones), so call the flavor directly.
            return getattr(self.pyfunc._model_impl, self.predict_fn)(frame)
        return self.pyfunc.predict(frame, params=dict(params) if params else None)

    def predict_unbatched(self, data: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Predict data the model takes as is (tensor signatures, no signature); MLflow checks it."""
        return self.pyfunc.predict(data, params=dict(params) if params else None)


def _identical(a: Any, b: Any) -> bool:
    """Whether two answers are the same arrays: shape, dtype and every value's bits."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype == object:
        return bool(a.tolist() == b.tolist())
    return a.tobytes() == b.tobytes()


def _profile_features(model_dir: Path) -> tuple[str, ...] | None:
    """The input feature names of the reference profile stored with the model (its JSON summary
    only: the server never needs the sample), ``None`` without one."""
    summary = model_dir / "reference_profile" / "profile.json"
    if not summary.is_file():
        return None
    try:
        data = json.loads(summary.read_text())
        excluded = {data.get("target"), *data.get("sensitive", ())}
        return tuple(str(f["name"]) for f in data["features"] if f["name"] not in excluded)
    except (ValueError, KeyError, TypeError):  # a damaged profile is refused where it is read
        return None


def _numeric_block(batches: Sequence[InputBatch], names: list[str]) -> pd.DataFrame | None:
    """The batches as one frame, when every column is a numpy array of one numeric dtype (a model
    of float features): the values are copied once into the single 2-D block pandas would
    consolidate them into anyway, instead of column by column and then again. ``None`` otherwise."""
    first = batches[0].columns
    dtype = getattr(first.get(names[0]) if names else None, "dtype", None)
    if dtype is None or not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
        return None
    for batch in batches:
        columns = batch.columns
        for name in names:
            values = columns[name]
            if type(values) is not np.ndarray or values.dtype != dtype:
                return None
    n_rows = sum(b.n_rows for b in batches)
    # pandas keeps a frame's values as (columns, rows): filled in that shape, the frame takes it as is.
    block = np.empty((len(names), n_rows), dtype=dtype)
    for row, name in zip(block, names):
        if len(batches) == 1:
            row[:] = first[name]
        else:
            np.concatenate([b.columns[name] for b in batches], out=row)
    return pd.DataFrame(block.T, columns=names, copy=False)


def _concat(parts: Sequence[Any]) -> Any:
    """Columns of several requests joined: numpy arrays, or pandas arrays of one dtype."""
    if all(isinstance(p, np.ndarray) and p.dtype != object for p in parts):
        return np.concatenate(parts)
    return pd.concat([pd.Series(p, copy=False) for p in parts], ignore_index=True)


def _slice(raw: Any, start: int, stop: int) -> Any:
    if isinstance(raw, (pd.DataFrame, pd.Series)):
        return raw.iloc[start:stop]
    if isinstance(raw, np.ndarray):
        return raw[start:stop]
    if isinstance(raw, list):
        return raw[start:stop]
    if isinstance(raw, dict):
        return {k: _slice(v, start, stop) for k, v in raw.items()}
    return raw


def _load_pyfunc(model_uri: str, local: Path) -> Any:
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading {model_uri!r} through MLflow", "mlflow-skinny",
            hint="a model image made by `workbench package` has MLflow when its model needs it; package again",
        ) from exc

    try:
        # The image holds serving requirements only: MLflow need not warn about dev packages missing.
        return mlflow.pyfunc.load_model(str(local), suppress_warnings=True)
    except Exception as exc:
        raise InvalidInputError(f"cannot load the model at {model_uri!r} for serving: {exc}") from exc


def _schema_output_name(output_schema: Any) -> str:
    """The name of an MLflow output schema's one named column, else ``predict``."""
    if output_schema is not None and not output_schema.is_tensor_spec():
        names = output_schema.input_names()
        if len(names) == 1 and names[0] not in (None, 0, "0"):
            return str(names[0])
    return "predict"


def _named_outputs(raw: Any, n_rows: int, output_name: str) -> dict[str, np.ndarray]:
    """Name a model's result by output, checking there is one entry per input row."""
    if isinstance(raw, pd.DataFrame):
        named = {str(c): raw[c].to_numpy() for c in raw.columns}
    elif isinstance(raw, pd.Series):
        named = {str(raw.name) if raw.name is not None else "predict": raw.to_numpy()}
    elif isinstance(raw, dict):
        named = {str(k): np.asarray(v) for k, v in raw.items()}
    else:
        named = {output_name: np.asarray(raw)}
    for key, value in named.items():
        if value.ndim == 0 or value.shape[0] != n_rows:
            raise ValueError(f"output {key!r} has {value.shape} for {n_rows} rows: not row-aligned")
    return named
