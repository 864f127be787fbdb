"""Model cards: one page saying what a model version is for, what it was trained on, how well and how
fairly it does, why it was allowed out, and where it has run.

A card is built from what the workbench already knows (registry, lineage, reference profile, policy
checks, waivers, fairness reports logged on the run, deployment history, the audit trail) into one
structure, :class:`ModelCard`, which renders to Markdown and to a self-contained HTML page. It is a
report above every other layer (it reads governance, the registry and the deployments), so nothing
below imports it.

Example::

    import workbench as wb
    card = wb.model_card("models:/credit@champion", explanations=wb.explain_global(...).importance)
    card.save("credit-card.html")          # or .md; a notebook shows it inline
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from workbench.errors import InvalidInputError, NotFoundError, WorkbenchError

__all__ = ["CardSection", "Facts", "ModelCard", "Table", "Text", "model_card"]

#: The version (or registered model) tag read as the model's intended use.
INTENDED_USE_TAG = "intended_use"
#: Most rows of a table shown in a card (the rest are counted in a note).
MAX_TABLE_ROWS = 50


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str


@dataclass(frozen=True)
class Facts:
    """Labelled values (``label: value`` lines)."""

    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Table:
    """A table, with an optional caption."""

    frame: pd.DataFrame
    caption: str = ""


Block = Text | Facts | Table


@dataclass(frozen=True)
class CardSection:
    """One titled section of a card."""

    title: str
    blocks: tuple[Block, ...]


def format_value(value: Any) -> str:
    """How a card prints one value: floats to 4 significant digits, times in UTC, missing as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        number = float(value)
        return "-" if math.isnan(number) else f"{number:.4g}"
    if isinstance(value, pd.Timestamp):  # one format for every time on a card, in UTC
        if pd.isna(value):
            return "-"
        stamp = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, default=str)
    try:
        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):
        pass
    return str(value)


def _md_cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    frame = table.frame
    lines = [f"*{table.caption}*", ""] if table.caption else []
    if frame.empty:
        return [*lines, "_(none)_"]
    shown = frame.head(MAX_TABLE_ROWS)
    lines.append("| " + " | ".join(_md_cell(c) for c in shown.columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in shown.columns) + "|")
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if len(frame) > MAX_TABLE_ROWS:
        lines += ["", f"_{len(frame) - MAX_TABLE_ROWS} more rows not shown._"]
    return lines


def _html_table(table: Table) -> str:
    frame = table.frame
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    if frame.empty:
        return f"<p class='none'>{html.escape(table.caption + ': ' if table.caption else '')}(none)</p>"
    shown = frame.head(MAX_TABLE_ROWS)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(v))}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    more = (f"<p class='note'>{len(frame) - MAX_TABLE_ROWS} more rows not shown.</p>"
            if len(frame) > MAX_TABLE_ROWS else "")
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;margin:2rem auto;"
    "padding:0 1rem;color:#1f2328;line-height:1.45}h1{border-bottom:2px solid #d0d7de;padding-bottom:.3rem}"
    "h2{margin-top:2rem;border-bottom:1px solid #d0d7de}table{border-collapse:collapse;margin:.5rem 0 1rem;"
    "font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f6f8fa}caption{text-align:left;font-style:italic;padding:.25rem 0}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}"
    ".note,.none{color:#59636e}"
)


@dataclass(frozen=True)
class ModelCard:
    """A model card: sections of text, facts and tables, rendered by :meth:`to_markdown` and :meth:`to_html`."""

    model_name: str
    model_version: str | None
    model_uri: str
    generated_at: pd.Timestamp
    sections: tuple[CardSection, ...]

    @property
    def title(self) -> str:
        """``Model card: credit version 3``."""
        version = f" version {self.model_version}" if self.model_version else ""
        return f"Model card: {self.model_name}{version}"

    def section(self, title: str) -> CardSection:
        """The section called ``title``."""
        for section in self.sections:
            if section.title == title:
                return section
        raise KeyError(f"no section {title!r}; sections: {[s.title for s in self.sections]}")

    def to_markdown(self) -> str:
        """The card as Markdown (GitHub flavour: pipe tables)."""
        lines = [f"# {self.title}", "", f"_Generated {format_value(self.generated_at)} from {self.model_uri}._"]
        for section in self.sections:
            lines += ["", f"## {section.title}"]
            for block in section.blocks:
                lines.append("")
                if isinstance(block, Text):
                    lines.append(block.text)
                elif isinstance(block, Facts):
                    lines += [f"- **{label}:** {_md_cell(value)}" for label, value in block.items]
                else:
                    lines += _md_table(block)
        return "\n".join(lines) + "\n"

    def _html_body(self) -> str:
        parts = [f"<h1>{html.escape(self.title)}</h1>",
                 f"<p class='note'>Generated {html.escape(format_value(self.generated_at))} from "
                 f"<code>{html.escape(self.model_uri)}</code>.</p>"]
        for section in self.sections:
            slug = section.title.lower().replace(" ", "-")
            parts.append(f"<section id='{html.escape(slug)}'><h2>{html.escape(section.title)}</h2>")
            for block in section.blocks:
                if isinstance(block, Text):
                    parts.append(f"<p>{html.escape(block.text)}</p>")
                elif isinstance(block, Facts):
                    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(format_value(value))}</dd>"
                                    for label, value in block.items)
                    parts.append(f"<dl>{items}</dl>")
                else:
                    parts.append(_html_table(block))
            parts.append("</section>")
        return "".join(parts)

    def to_html(self) -> str:
        """The card as a self-contained HTML page (inline style, nothing fetched from elsewhere)."""
        return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                f"</title><style>{_CSS}</style></head><body>{self._html_body()}</body></html>\n")

    def _repr_html_(self) -> str:
        return f"<div class='workbench-model-card'>{self._html_body()}</div>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: sections of blocks (tables as lists of records)."""
        def block(b: Block) -> dict[str, Any]:
            if isinstance(b, Text):
                return {"text": b.text}
            if isinstance(b, Facts):
                return {"facts": {label: format_value(value) for label, value in b.items}}
            return {"caption": b.caption, "table": [{str(k): format_value(v) for k, v in r.items()}
                                                    for r in b.frame.to_dict(orient="records")]}
        return {"title": self.title, "model_uri": self.model_uri, "generated_at": self.generated_at.isoformat(),
                "sections": [{"title": s.title, "blocks": [block(b) for b in s.blocks]} for s in self.sections]}

    def save(self, path: str | Path, format: Literal["html", "md"] | None = None) -> Path:
        """Write the card to ``path``; the format follows the suffix (``.html``, ``.md``) unless given."""
        path = Path(path)
        if format is None:
            suffix = path.suffix.lower()
            if suffix in (".html", ".htm"):
                format = "html"
            elif suffix in (".md", ".markdown"):
                format = "md"
            else:
                raise InvalidInputError(f"cannot tell the format of {path.name}: name it .html or .md, or give format=")
        if format not in ("html", "md"):
            raise InvalidInputError(f"format {format!r} is not 'html' or 'md'")
        text = self.to_html() if format == "html" else self.to_markdown()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write the model card to {path}: {exc.strerror or exc}") from exc
        return path


# -- gathering what the workbench knows ------------------------------------------------------------


def _details_section(mv: Any, uri: str) -> CardSection:
    if mv is None:
        return CardSection("Model details", (
            Facts((("Model URI", uri),)),
            Text("This model is not registered: register it with workbench.register(model_uri, name) to "
                 "track versions, aliases and lineage."),
        ))
    facts = (("Name", mv.name), ("Version", mv.version), ("URI", mv.uri),
             ("Aliases", ", ".join(mv.aliases) or "-"), ("Status", mv.status), ("Registered by", mv.user or "-"),
             ("Registered at", mv.created), ("Source", mv.source))
    return CardSection("Model details", (Facts(facts),))


def _intended_use_section(mv: Any) -> CardSection:
    if mv is not None:
        found: list[tuple[str, str]] = []
        if mv.tags.get(INTENDED_USE_TAG):
            found.append(("version tag 'intended_use'", mv.tags[INTENDED_USE_TAG]))
        if mv.description:
            found.append(("version description", mv.description))
        if not found:
            from workbench.registry import models

            registered = next((m for m in models() if m.name == mv.name), None)
            if registered is not None and registered.tags.get(INTENDED_USE_TAG):
                found.append(("model tag 'intended_use'", registered.tags[INTENDED_USE_TAG]))
            elif registered is not None and registered.description:
                found.append(("model description", registered.description))
        if found:
            where, text = found[0]
            return CardSection("Intended use", (Text(text), Text(f"(From the {where}.)")))
        hint = (f"wb.set_version_tag({mv.name!r}, {mv.version!r}, 'intended_use', '...') or register the "
                "version with description='...'")
    else:
        hint = "wb.register(model_uri, name, description='...')"
    return CardSection("Intended use", (Text(f"Not recorded. Record it with {hint}."),))


def _images_fact(mv: Any, audit: pd.DataFrame) -> tuple[str, str]:
    """What of the training data each image of this version carries (from the packaging records)."""
    if mv is None or audit.empty:
        return ("Training rows in images", "no image built from this workspace")
    built = audit[(audit["action"] == "package") & (audit["to_version"] == mv.version)]
    described = [f"{row.target}: {(row.details or {}).get('training_rows', 'not recorded (built before it was)')}"
                 for row in built.itertuples()]
    return ("Training rows in images", "; ".join(described) or "no image built from this workspace")


def _data_section(uri: str, images: tuple[str, str]) -> CardSection:
    from workbench.registry import load_profile

    try:
        profile = load_profile(uri)
    except (NotFoundError, InvalidInputError):
        return CardSection("Training data", (Text(
            "No reference profile was logged with this model: log it with workbench.log_model(model, "
            "training_data=X), or give this version one with workbench.attach_profile(uri, X), so the card, "
            "drift monitoring and proxy checks can describe its training data."),))
    facts = (("Rows", profile.n_rows), ("Columns profiled", len(profile.feature_names)),
             ("Target", profile.target or "-"),
             ("Data hash (SHA-256)", profile.data_hash or "-"), ("Profiled at", pd.Timestamp(profile.created) if profile.created else "-"),
             ("Sample kept", f"{len(profile.sample)} rows"), images)
    return CardSection("Training data", (
        Facts(facts), Table(profile.to_frame(), "Reference profile: one row per column"),
    ))


def _metrics_section(lineage: Any) -> CardSection:
    if lineage is None:
        return CardSection("Metrics and parameters", (Text(
            "Not registered: register the model (workbench.register) to show its run's metrics and parameters."),))
    if lineage.run_id is None:
        return CardSection("Metrics and parameters", (Text(
            "No run is recorded for this model, so no metrics or parameters are known."),))
    # Fairness metrics logged on the run have their own section.
    metrics = pd.DataFrame(sorted((k, v) for k, v in lineage.metrics.items() if not k.startswith("fairness.")),
                           columns=["metric", "value"])
    params = pd.DataFrame(sorted(lineage.params.items()), columns=["parameter", "value"])
    return CardSection("Metrics and parameters", (
        Table(metrics, f"Metrics of run {lineage.run_id}"), Table(params, "Parameters"),
    ))


def _fairness_section(reports: Sequence[Any], logged: bool) -> CardSection:
    if not reports:
        return CardSection("Fairness", (Text(
            "No fairness evaluation was given or logged for this version: evaluate one with "
            "workbench.fairness_report(y_true, y_pred, sensitive_features, model_uri=..., log=True)."),))
    blocks: list[Block] = []
    if logged:
        blocks.append(Text("As logged on the version's run."))
    for report in reports:
        blocks.append(Text(report.summary()))
        blocks.append(Facts(tuple((name.replace("_", " ").capitalize(), value)
                                  for name, value in report.disparities().items())))
        blocks.append(Table(report.to_frame(), f"Per group of {report.attribute} (positive label: {report.pos_label})"))
    return CardSection("Fairness", tuple(blocks))


def _explanations_section(explanations: Any) -> CardSection:
    if explanations is None:
        return CardSection("Explanations", (Text(
            "No explanation was given: pass a global importance table (feature, importance) to model_card."),))
    frame = getattr(explanations, "importance", explanations)  # a global explanation, or its table
    if not isinstance(frame, pd.DataFrame) or "feature" not in frame.columns:
        raise InvalidInputError(
            "explanations must be a DataFrame with a 'feature' column and importance columns (e.g. "
            "mean_abs_contribution), or an object whose .importance is one"
        )
    return CardSection("Explanations", (Table(frame.reset_index(drop=True), "Global feature importance"),))


def _policy_section(uri: str) -> CardSection:
    from workbench.governance import check_policies, list_waivers

    report = check_policies(uri)
    waivers = list_waivers(uri)
    waiver_frame = pd.DataFrame(
        [{"check": w.check, "by": w.by, "reason": w.reason, "recorded": w.ts, "recorded_by": w.recorded_by}
         for w in waivers],
        columns=["check", "by", "reason", "recorded", "recorded_by"],
    )
    source = report.policy_source or "the default policy (no policy in the workspace or on the tracking server)"
    if report.enforced:
        mode = "This policy enforces: a failing check blocks packaging and deploying until fixed or waived."
    else:
        mode = ("This policy only advises: failing checks are shown here and when packaging or deploying, and "
                "block nothing. A team makes them a gate with `workbench policy --init`.")
    return CardSection("Policy checks", (
        Text(f"{report.summary()}, under {source}."),
        Text(mode),
        Table(report.to_frame(), "Checks"),
        Table(waiver_frame, "Waivers"),
    ))


def _lineage_section(lineage: Any) -> CardSection:
    if lineage is None:
        return CardSection("Lineage", (Text("Not registered, so no lineage is recorded."),))
    facts = (("Run", lineage.run_id or "-"), ("Run name", lineage.run_name or "-"),
             ("Experiment", lineage.experiment_id or "-"), ("Git commit", lineage.git_commit or "-"),
             ("Training data hash", lineage.data_hash or "-"), ("Registered by", lineage.registered_by or "-"),
             ("Registered at", lineage.registered_at))
    return CardSection("Lineage", (Facts(facts),))


def _model_json(uri: str, path: str) -> dict[str, Any] | None:
    from workbench.registry import model_file

    text = model_file(uri, path)
    return json.loads(text) if text else None


def _environment_fact(uri: str) -> str:
    import yaml

    from workbench.registry import model_file

    meta = yaml.safe_load(model_file(uri, "MLmodel") or "") or {}
    python = ((meta.get("flavors") or {}).get("python_function") or {}).get("python_version")
    requirements = model_file(uri, "requirements.txt")
    packages = None if requirements is None else sum(
        1 for line in requirements.splitlines() if line.split("#", 1)[0].strip() and not line.lstrip().startswith("-"))
    return (f"Python {python or 'not recorded'}, "
            + (f"{packages} pinned packages (requirements.txt)" if packages is not None else "no requirements.txt"))


def _provenance_section(uri: str, mv: Any, audit: pd.DataFrame) -> CardSection:
    """What was captured to rebuild this version (code, environment, data) and its reproductions."""
    from workbench.capture import CODE_DIR, CODE_MANIFEST, GIT_DIFF_FILE
    from workbench.snapshot import SNAPSHOT_DIR, SNAPSHOT_MANIFEST

    code = _model_json(uri, f"{CODE_DIR}/{CODE_MANIFEST}")
    snapshot = _model_json(uri, f"{SNAPSHOT_DIR}/{SNAPSHOT_MANIFEST}")
    facts: list[tuple[str, Any]] = []
    if code is None:
        facts.append(("Code", "not captured (log_model captures it unless capture_code=False or "
                              "WORKBENCH_CAPTURE_CODE=0)"))
    else:
        shown = f"{CODE_DIR}/{code.get('code_file')} ({code.get('source')}"
        shown += f" {code['path']})" if code.get("path") else ")"
        if code.get("cut"):
            shown += f"; cut at the size bound: {', '.join(code['cut'])}"
        facts.append(("Code", shown))
        commit = code.get("git_commit")
        dirty = GIT_DIFF_FILE in (code.get("bytes") or {})
        facts.append(("Git commit", f"{commit} ({'with uncommitted changes, stored' if dirty else 'clean'})"
                      if commit else "not in a git repository"))
    facts.append(("Environment", _environment_fact(uri)))
    if snapshot is None:
        facts.append(("Data snapshot", "none (log_model(..., snapshot_data=True) or WORKBENCH_SNAPSHOT_DATA=1 "
                                       "stores the training data so the version can be reproduced)"))
    elif snapshot.get("stored"):
        facts.append(("Data snapshot", f"{snapshot['key']}: {snapshot['rows']} rows, {snapshot['bytes']:,} bytes "
                                       "of Parquet, stored once for every version trained on these rows"))
    else:
        facts.append(("Data snapshot", f"not stored: {snapshot.get('reason')}"))
    blocks: list[Block] = [Facts(tuple(facts))]
    rows = []
    if mv is not None and not audit.empty:
        done = audit[(audit["action"] == "reproduce") & (audit["from_version"] == mv.version)]
        for row in done.itertuples():
            details = row.details or {}
            rows.append({"when": row.ts, "by": row.user, "matched": bool(details.get("matches")),
                         "answers differing": f"{details.get('rows_differing')} of {details.get('rows_compared')}",
                         "new run": details.get("new_run_id")})
    frame = pd.DataFrame(rows, columns=["when", "by", "matched", "answers differing", "new run"])
    if frame.empty:
        blocks.append(Text("Not reproduced yet: workbench.reproduce(uri) re-runs the captured code on the data "
                           "snapshot and compares the answers exactly."))
    else:
        blocks.append(Table(frame, "Reproductions (workbench.reproduce)"))
    return CardSection("Provenance", tuple(blocks))


def _deployment_names(model_name: str, audited: Iterable[Any]) -> list[str]:
    from workbench.deployment import deployments

    names = {d.name for d in deployments() if d.model_name == model_name}
    names |= {str(n) for n in audited if isinstance(n, str) and n}
    return sorted(names)


def _deployments_section(mv: Any, audit: pd.DataFrame) -> CardSection:
    if mv is None:
        return CardSection("Deployment history", (Text("Not registered: deployments are tracked per version."),))
    from workbench.deployment import deployment_history

    prefix = f"models:/{mv.name}/"
    rows = []
    for name in _deployment_names(mv.name, audit["deployment"].dropna().tolist()):
        try:
            history = deployment_history(name)
        except NotFoundError:
            continue
        for step in history:
            if step.model_uri.startswith(prefix):
                rows.append({"deployment": name, "revision": step.revision, "action": step.action,
                             "version": step.model_version, "when": step.ts, "by": step.user})
    frame = pd.DataFrame(rows, columns=["deployment", "revision", "action", "version", "when", "by"])
    if frame.empty:
        return CardSection("Deployment history", (Text(f"No version of {mv.name} has been deployed from this workspace."),))
    frame = frame.sort_values(["when", "deployment", "revision"], kind="stable").reset_index(drop=True)
    served = frame[frame["version"] == mv.version]
    lead = (f"Version {mv.version} was served by {served['deployment'].nunique()} deployment(s)."
            if len(served) else f"Version {mv.version} has not been deployed; other versions of {mv.name} have.")
    return CardSection("Deployment history", (Text(lead), Table(frame, f"Deployments of {mv.name}")))


def _audit_section(mv: Any, audit: pd.DataFrame) -> CardSection:
    if mv is None:
        return CardSection("Audit trail", (Text("Not registered: the audit trail is kept per registered model."),))
    mine = audit[(audit["to_version"] == mv.version) | (audit["from_version"] == mv.version)]
    frame = mine[["ts", "user", "action", "from_version", "to_version", "target", "deployment"]].rename(
        columns={"ts": "when", "from_version": "from", "to_version": "to"}).reset_index(drop=True)
    if frame.empty:
        return CardSection("Audit trail", (Text(f"No recorded action involves version {mv.version}."),))
    return CardSection("Audit trail", (Table(frame, f"Actions involving version {mv.version}"),))


def model_card(
    model_uri: str,
    *,
    fairness: Any = None,
    explanations: Any = None,
) -> ModelCard:
    """Build the model card of the version ``model_uri`` names (an alias is resolved now).

    ``fairness`` is a :class:`~workbench.governance.FairnessReport` or a list of them; without it the
    reports logged on the version's run (``fairness_report(..., log=True)``) are used.
    ``explanations`` is a global importance DataFrame (a ``feature`` column and importance columns,
    e.g. ``workbench.explain_global(...).importance``). The policy checks are run afresh.
    """
    from workbench.audit import AUDIT_COLUMNS, audit_log
    from workbench.governance import FairnessReport, logged_fairness, model_ref
    from workbench.registry import lineage as version_lineage
    from workbench.registry import registered_version

    ref = model_ref(model_uri)
    mv = registered_version(ref.uri) if ref.version is not None else None
    found_lineage = version_lineage(ref.uri) if mv is not None else None
    if fairness is None:
        reports: list[Any] = logged_fairness(ref.uri) if mv is not None else []
        from_run = bool(reports)
    else:
        reports = list(fairness) if isinstance(fairness, (list, tuple)) else [fairness]
        if not all(isinstance(r, FairnessReport) for r in reports):
            raise InvalidInputError("fairness must be a FairnessReport (from workbench.fairness_report) or a list of them")
        from_run = False
    audit = audit_log(model=ref.name) if mv is not None else pd.DataFrame(columns=list(AUDIT_COLUMNS))
    try:
        deployments_section = _deployments_section(mv, audit)
    except WorkbenchError as exc:  # a target that cannot be reached must not stop the card
        deployments_section = CardSection("Deployment history", (Text(f"Could not read deployments: {exc}"),))
    sections = (
        _details_section(mv, ref.uri),
        _intended_use_section(mv),
        _data_section(ref.uri, _images_fact(mv, audit)),
        _metrics_section(found_lineage),
        _fairness_section(reports, from_run),
        _explanations_section(explanations),
        _policy_section(ref.uri),
        _lineage_section(found_lineage),
        _provenance_section(ref.uri, mv, audit),
        deployments_section,
        _audit_section(mv, audit),
    )
    return ModelCard(model_name=ref.name, model_version=ref.version, model_uri=ref.uri,
                     generated_at=pd.Timestamp(_dt.datetime.now(_dt.UTC)), sections=sections)
