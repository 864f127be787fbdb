"""What changed between two model versions (or runs): params, metrics, signature, environment,
training data and predictions, one row per difference.

Each side is a registry URI (``models:/churn/3``, ``models:/churn@champion``) or a run id. Params and
metrics come from the runs; the signature and the Python version from each model's ``MLmodel`` file;
packages from its ``requirements.txt``; row counts and per-feature drift from the two reference
profiles (the monitor's :class:`~workbench.monitor.DriftDetector` fitted on the first version's profile,
scored on the second's sample); and both models predict the first version's profile sample, so the
number of answers that differ is exact.

Example::

    import workbench as wb
    d = wb.diff("models:/churn/1", "models:/churn/2")
    d.summary()       # '4 differences: 1 param, 2 metric, 1 data; 37 of 455 answers differ (8.1%)'
    d.to_frame()      # kind, name, a, b, detail
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench import _mlflow
from workbench.capture import CODE_DIR, CODE_MANIFEST, GIT_DIFF_FILE
from workbench.errors import InvalidInputError, ModelNotFoundError, RunNotFoundError, WorkbenchError
from workbench.monitor import DriftDetector, DriftSettings
from workbench.profile import NumericProfile, ReferenceProfile
from workbench.registry import load_model, load_profile, model_file, registered_version
from workbench.tracking import RunSummary, get_run

__all__ = ["DIFFERENCE_KINDS", "DIFF_COLUMNS", "Difference", "DifferenceKind", "VersionDiff", "diff",
           "model_of"]

#: What a difference is about.
DifferenceKind = Literal["param", "metric", "code", "signature", "environment", "data", "predictions"]
#: Every kind, in the order the frame lists them.
DIFFERENCE_KINDS: tuple[DifferenceKind, ...] = ("param", "metric", "code", "signature", "environment", "data",
                                                "predictions")
#: The columns of :meth:`VersionDiff.to_frame`.
DIFF_COLUMNS = ("kind", "name", "a", "b", "detail")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Difference:
    """One thing that differs: its kind, its name, the value in ``a`` and in ``b``, and a note."""

    kind: DifferenceKind
    name: str
    a: Any
    b: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        from workbench.serialize import jsonable

        return {"kind": self.kind, "name": self.name, "a": jsonable(self.a), "b": jsonable(self.b),
                "detail": self.detail}


@dataclass(frozen=True)
class VersionDiff:
    """The differences between version (or run) ``a`` and ``b``; empty when they are alike."""

    #: The two sides as given.
    a: str
    b: str
    differences: tuple[Difference, ...]
    #: Rows both models predicted (the first version's profile sample), and how many answers differ.
    rows_compared: int = 0
    rows_differing: int = 0
    #: What could not be compared, and why (e.g. a model logged without training data).
    notes: tuple[str, ...] = ()
    #: A unified diff of the captured code (the notebook's cells or the script), when it changed.
    code_diff: str = ""

    def __bool__(self) -> bool:
        return bool(self.differences)

    def of_kind(self, kind: DifferenceKind) -> list[Difference]:
        """The differences of one kind (``"param"``, ``"data"``, ...)."""
        return [d for d in self.differences if d.kind == kind]

    def to_frame(self) -> pd.DataFrame:
        """One row per difference: ``kind``, ``name``, ``a``, ``b``, ``detail``."""
        return pd.DataFrame([(d.kind, d.name, d.a, d.b, d.detail) for d in self.differences],
                            columns=list(DIFF_COLUMNS))

    def summary(self) -> str:
        """One line: how many differences of each kind, and how many answers differ."""
        if not self.differences:
            text = f"no differences between {self.a} and {self.b}"
        else:
            counts = [f"{n} {kind}" for kind in DIFFERENCE_KINDS
                      if (n := len(self.of_kind(kind))) and kind != "predictions"]
            total = len(self.differences)
            text = f"{total} difference{'s' if total != 1 else ''}: " + ", ".join(counts or ["predictions"])
        if self.rows_differing:
            text += (f"; {self.rows_differing} of {self.rows_compared} answers differ "
                     f"({self.rows_differing / self.rows_compared:.1%})")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"a": self.a, "b": self.b, "summary": self.summary(),
                "differences": [d.to_dict() for d in self.differences],
                "rows_compared": self.rows_compared, "rows_differing": self.rows_differing,
                "notes": list(self.notes), "code_diff": self.code_diff}

    def _repr_html_(self) -> str:
        from workbench.cards import Tone, card

        import html

        table = self.to_frame().to_html(index=False, na_rep="-") if self.differences else ""
        if self.code_diff:
            table += f"<pre style='font-size:0.85em;max-height:30em;overflow:auto'>{html.escape(self.code_diff)}</pre>"
        badge: tuple[str, Tone] = ((f"{len(self.differences)} differences", "warn") if self.differences
                                   else ("no differences", "good"))
        return card("Version diff", f"{self.a} → {self.b}", badges=[badge], table=table, rows=[
            ("predictions", f"{self.rows_differing} of {self.rows_compared} answers differ"
             if self.rows_compared else ""),
            ("not compared", "; ".join(self.notes)),
        ])


@dataclass(frozen=True)
class _Side:
    given: str
    run_id: str | None
    #: A URI that loads the model; ``None`` for a run that logged none.
    model_uri: str | None


def _side(given: str) -> _Side:
    if not isinstance(given, str) or not given.strip():
        raise InvalidInputError("diff compares two versions: give models:/<name>/<version>, "
                                "models:/<name>@<alias> or a run id for each")
    given = given.strip()
    if given.startswith("models:/"):
        version = registered_version(given)
        if version is None:
            raise InvalidInputError(f"{given!r} is not a registered version: give models:/<name>/<version>, "
                                    "models:/<name>@<alias> or a run id")
        return _Side(given, version.run_id, version.uri)
    if not _RUN_ID.match(given):
        raise InvalidInputError(f"{given!r} is neither a model URI nor a run id: give models:/<name>/<version>, "
                                "models:/<name>@<alias> or a 32-character run id")
    run = get_run(given)  # a clear error when there is no such run
    client = _mlflow.client()
    with _mlflow.translated(ModelNotFoundError, f"the models of run {given!r}"):
        logged = client.search_logged_models([run.experiment_id], filter_string=f"source_run_id = '{given}'")
    if len(logged) > 1:
        names = sorted(m.name for m in logged)
        raise InvalidInputError(f"run {given!r} logged {len(logged)} models ({names}): register the one to "
                                "compare and give its models:/<name>/<version>")
    return _Side(given, given, logged[0].model_uri if logged else None)


def model_of(given: str) -> tuple[str | None, str | None]:
    """The run id and the loadable model URI behind a version URI or a run id, read as :func:`diff`
    reads each side (the model URI is ``None`` for a run that logged no model)."""
    side = _side(given)
    return side.run_id, side.model_uri


def _changed(kind: DifferenceKind, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            out.append(Difference(kind, key, a[key], None, "removed"))
        elif key not in a:
            out.append(Difference(kind, key, None, b[key], "added"))
        elif not _same(a[key], b[key]):
            detail = ""
            if kind == "metric" and isinstance(a[key], (int, float)) and isinstance(b[key], (int, float)):
                detail = f"{b[key] - a[key]:+.6g}"
            out.append(Difference(kind, key, a[key], b[key], detail))
    return out


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return bool(x == y)


def _kept_run(run_id: str) -> RunSummary | None:
    """The run, or ``None`` when it was deleted for good (``mlflow gc``): its model can still be compared."""
    try:
        return get_run(run_id)
    except RunNotFoundError:
        return None


def _runs(a: _Side, b: _Side, notes: list[str]) -> list[Difference]:
    if a.run_id is None or b.run_id is None:
        missing = a.given if a.run_id is None else b.given
        notes.append(f"params and metrics: {missing} records no run")
        return []
    run_a, run_b = _kept_run(a.run_id), _kept_run(b.run_id)
    if run_a is None or run_b is None:
        gone = [f"{side.given} (run {side.run_id})" for side, run in ((a, run_a), (b, run_b)) if run is None]
        notes.append(f"params and metrics: the run of {' and of '.join(gone)} was deleted")
        return []
    return _changed("param", run_a.params, run_b.params) + _changed("metric", run_a.metrics, run_b.metrics)


@dataclass(frozen=True)
class _Code:
    name: str
    text: str
    git_commit: str | None
    uncommitted: str


def _captured(uri: str) -> _Code | None:
    manifest = model_file(uri, f"{CODE_DIR}/{CODE_MANIFEST}")
    if manifest is None:
        return None
    meta = json.loads(manifest)
    name = meta.get("code_file") or ""
    text = (model_file(uri, f"{CODE_DIR}/{name}") or "") if name else ""
    return _Code(name, text, meta.get("git_commit"), model_file(uri, f"{CODE_DIR}/{GIT_DIFF_FILE}") or "")


def _unified(a: str, b: str, from_file: str, to_file: str) -> tuple[str, int, int]:
    """The unified diff of two texts, and how many lines it adds and removes."""
    import difflib

    lines = list(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                      fromfile=from_file, tofile=to_file))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return text, *_counts(text)


def _code(uri_a: str, uri_b: str, notes: list[str]) -> tuple[list[Difference], str]:
    code_a, code_b = _captured(uri_a), _captured(uri_b)
    if code_a is None or code_b is None:
        if code_a is not code_b:
            notes.append(f"code: only {'a' if code_a is not None else 'b'} stored the code that trained it")
        return [], ""
    out = []
    shown = ""
    if code_a.text != code_b.text:
        shown, added, removed = _unified(code_a.text, code_b.text, f"a/{code_a.name}", f"b/{code_b.name}")
        out.append(Difference("code", code_b.name or code_a.name, code_a.name, code_b.name,
                              f"+{added} -{removed} lines (code_diff)"))
    if code_a.git_commit != code_b.git_commit:
        out.append(Difference("code", "git commit", code_a.git_commit, code_b.git_commit, "another commit"))
    if code_a.uncommitted != code_b.uncommitted:
        out.append(Difference("code", "uncommitted changes", _size(code_a.uncommitted), _size(code_b.uncommitted),
                              f"git diff HEAD when each was logged (stored as {CODE_DIR}/{GIT_DIFF_FILE})"))
    return out, shown


def _size(patch: str) -> str:
    """``+3 -1 lines`` for a patch, ``none`` for an empty one."""
    if not patch:
        return "none"
    added, removed = _counts(patch)
    return f"+{added} -{removed} lines"


def _counts(patch: str) -> tuple[int, int]:
    """Lines a unified diff adds and removes (its file headers not counted)."""
    lines = patch.splitlines()
    return (sum(1 for line in lines if line.startswith("+") and not line.startswith("+++")),
            sum(1 for line in lines if line.startswith("-") and not line.startswith("---")))


def _mlmodel(uri: str) -> dict[str, Any]:
    import yaml

    text = model_file(uri, "MLmodel")
    return (yaml.safe_load(text) or {}) if text else {}


def _columns(signature: Mapping[str, Any], part: str) -> dict[str, str]:
    """name -> type of the signature's ``inputs`` or ``outputs`` (unnamed ones by position)."""
    raw = signature.get(part)
    specs = json.loads(raw) if isinstance(raw, str) else (raw or [])
    out = {}
    for i, spec in enumerate(specs):
        rest = {k: v for k, v in spec.items() if k not in ("name", "required")}
        if not spec.get("required", True):
            rest["optional"] = True
        if rest.get("type") == "tensor" and isinstance(rest.get("tensor-spec"), Mapping):
            tensor = rest["tensor-spec"]
            shown = f"tensor {tensor.get('dtype')} {tensor.get('shape')}"
        else:
            shown = str(rest["type"]) if set(rest) == {"type"} else json.dumps(rest, sort_keys=True)
        out[str(spec.get("name", f"#{i}"))] = shown
    return out


def _signature(meta_a: Mapping[str, Any], meta_b: Mapping[str, Any]) -> list[Difference]:
    out = []
    sig_a, sig_b = meta_a.get("signature") or {}, meta_b.get("signature") or {}
    for part, singular in (("inputs", "input"), ("outputs", "output")):
        cols_a, cols_b = _columns(sig_a, part), _columns(sig_b, part)
        for name in [*cols_a, *(c for c in cols_b if c not in cols_a)]:
            if name not in cols_b:
                out.append(Difference("signature", f"{singular} {name}", cols_a[name], None, f"{singular} removed"))
            elif name not in cols_a:
                out.append(Difference("signature", f"{singular} {name}", None, cols_b[name], f"{singular} added"))
            elif cols_a[name] != cols_b[name]:
                out.append(Difference("signature", f"{singular} {name}", cols_a[name], cols_b[name], "type changed"))
    return out


def _requirements(uri: str) -> dict[str, str] | None:
    """package (canonical name) -> its version pin (or the whole requirement when not ``==``)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    text = model_file(uri, "requirements.txt")
    if text is None:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            out[line] = line
            continue
        pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
        out[canonicalize_name(req.name)] = pins[0] if len(pins) == 1 else str(req.specifier) or "any"
    return out


def _environment(a: str, b: str, meta_a: Mapping[str, Any], meta_b: Mapping[str, Any],
                 notes: list[str]) -> list[Difference]:
    out = []
    python = [((m.get("flavors") or {}).get("python_function") or {}).get("python_version") for m in (meta_a, meta_b)]
    if all(python) and python[0] != python[1]:
        out.append(Difference("environment", "python", python[0], python[1], "Python version changed"))
    req_a, req_b = _requirements(a), _requirements(b)
    if req_a is None or req_b is None:
        notes.append("environment: a model has no requirements.txt")
        return out
    for change in _changed("environment", req_a, req_b):
        detail = {"removed": "package removed", "added": "package added"}.get(change.detail, "version changed")
        out.append(Difference("environment", change.name, change.a, change.b, detail))
    return out


def _profile(uri: str) -> ReferenceProfile | None:
    try:
        return load_profile(uri)
    except (ModelNotFoundError, InvalidInputError):
        return None


def _data(prof_a: ReferenceProfile, prof_b: ReferenceProfile) -> list[Difference]:
    out = []
    if prof_a.n_rows != prof_b.n_rows:
        out.append(Difference("data", "training rows", prof_a.n_rows, prof_b.n_rows,
                              f"{prof_b.n_rows - prof_a.n_rows:+d} rows"))
    shared = tuple(f for f in prof_a.feature_names if f in prof_b.feature_names and f in prof_b.sample.columns)
    if not shared or prof_b.sample.empty:
        return out
    report = DriftDetector(DriftSettings(multivariate=False, columns=shared)).fit(prof_a).score(prof_b.sample[list(shared)])
    for feature in report.features:
        if not feature.drifted:
            continue
        fa, fb = prof_a.features[feature.feature], prof_b.features[feature.feature]
        means = (fa.mean, fb.mean) if isinstance(fa, NumericProfile) and isinstance(fb, NumericProfile) else (None, None)
        p = feature.p_value_adjusted if feature.p_value_adjusted is not None else feature.p_value
        measure = f"p={p:.3g}" if p is not None else f"distance {feature.statistic:.4g} > {feature.threshold:.4g}"
        shown = "; a and b are the means" if means[0] is not None else ""
        out.append(Difference("data", feature.feature, means[0], means[1], f"drifted: {feature.test} {measure}{shown}"))
    return out


def _as_frame(predictions: Any, n_rows: int) -> pd.DataFrame:
    if isinstance(predictions, pd.DataFrame):
        return predictions.reset_index(drop=True)
    if isinstance(predictions, pd.Series):
        return predictions.reset_index(drop=True).to_frame()
    values = np.asarray(predictions)
    return pd.DataFrame(values.reshape(n_rows, -1) if values.size else np.empty((n_rows, 0)))


def _answers_differing(pred_a: Any, pred_b: Any, n_rows: int) -> int:
    """Rows whose answers are not exactly equal (a missing value equals a missing value)."""
    frame_a, frame_b = _as_frame(pred_a, n_rows), _as_frame(pred_b, n_rows)
    if list(frame_a.columns) != list(frame_b.columns) or len(frame_a) != len(frame_b):
        return n_rows
    equal = (frame_a == frame_b) | (frame_a.isna() & frame_b.isna())
    return int((~equal.all(axis=1)).sum())


def _predictions(a: str, b: str, rows: pd.DataFrame, notes: list[str]) -> tuple[int, int]:
    try:
        pred_a, pred_b = load_model(a).predict(rows), load_model(b).predict(rows)
    except WorkbenchError:
        raise
    except Exception as exc:  # a model that cannot answer the other's rows: say so, compare the rest
        notes.append(f"predictions: the models could not both predict the same rows ({exc})")
        return 0, 0
    return len(rows), _answers_differing(pred_a, pred_b, len(rows))


def diff(a: str, b: str) -> VersionDiff:
    """Every difference between version (or run) ``a`` and ``b``: params, metrics, signature,
    environment, training data (row counts and drifted features) and predictions on the same rows.

    ``a`` and ``b`` are ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or run ids. What
    cannot be compared (e.g. a model logged without ``training_data``) is listed in ``notes``.
    """
    side_a, side_b = _side(a), _side(b)
    notes: list[str] = []
    found = _runs(side_a, side_b, notes)
    rows_compared = rows_differing = 0
    if side_a.model_uri is None or side_b.model_uri is None:
        notes.append(f"model: {side_a.given if side_a.model_uri is None else side_b.given} logged no model")
        return VersionDiff(a, b, tuple(found), notes=tuple(notes))
    uri_a, uri_b = side_a.model_uri, side_b.model_uri
    code_found, code_diff = _code(uri_a, uri_b, notes)
    found += code_found
    meta_a, meta_b = _mlmodel(uri_a), _mlmodel(uri_b)
    found += _signature(meta_a, meta_b)
    found += _environment(uri_a, uri_b, meta_a, meta_b, notes)
    prof_a, prof_b = _profile(uri_a), _profile(uri_b)
    if prof_a is not None and prof_b is not None:
        found += _data(prof_a, prof_b)
    else:
        notes.append("data: log both models with workbench.log_model(model, training_data=X) to compare "
                     "their training data and predictions")
    rows_source = prof_a if prof_a is not None and not prof_a.sample.empty else prof_b
    if rows_source is not None and not rows_source.sample.empty:
        inputs = [c for c in rows_source.feature_names if c in rows_source.sample.columns]
        rows_compared, rows_differing = _predictions(uri_a, uri_b, rows_source.sample[inputs], notes)
        if rows_differing:
            found.append(Difference("predictions", "answers", None, None,
                                    f"{rows_differing} of {rows_compared} rows answered differently "
                                    f"({rows_differing / rows_compared:.1%})"))
    return VersionDiff(a, b, tuple(found), rows_compared=rows_compared, rows_differing=rows_differing,
                       notes=tuple(notes), code_diff=code_diff)

