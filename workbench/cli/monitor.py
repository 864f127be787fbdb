"""``workbench drift``: data drift of a file or a running deployment's recent window; ``workbench
history``: a deployment's drift and measured performance over any period; ``workbench profile``: a
reference profile for a version logged without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workbench.cli._files import TABLE_SUFFIXES, read_table
from workbench.cli._output import emit, json_option


def _reference(spec: str) -> Any:
    from workbench.errors import InvalidInputError
    from workbench.parquet import PARQUET_SUFFIXES
    from workbench.profile import ReferenceProfile

    path = Path(spec)
    if path.suffix.lower() in TABLE_SUFFIXES:
        if not path.exists():
            raise InvalidInputError(f"no reference file {spec}: give a CSV or Parquet file, or a model URI")
        # Parquet is profiled a column group at a time, never read whole.
        return ReferenceProfile.from_data(path if path.suffix.lower() in PARQUET_SUFFIXES else read_table(path),
                                          hash_data=False)
    if path.is_dir():
        from workbench.registry import load_profile

        return load_profile(str(path))  # a local model folder
    if ":/" not in spec:
        raise InvalidInputError(
            f"{spec!r} is neither a data file (.csv, .parquet) nor a model URI such as models:/name@champion"
        )
    from workbench.registry import load_profile

    return load_profile(spec)


@click.command()
@click.option("--reference", "reference", required=True, metavar="REF",
              help="Reference: a CSV/Parquet file, or a model URI (models:/name@alias) whose logged profile is used.")
@click.option("--current", "current", type=click.Path(path_type=Path), metavar="CUR",
              help="Current data: a CSV or Parquet file, or a folder of Parquet files (Parquet is read a few "
                   "columns at a time, so it may be larger than memory).")
@click.option("--current-url", "current_url", metavar="URL",
              help="Current data: the recent window of a running server (its base URL).")
@click.option("--deployment", "deployment", metavar="NAME",
              help="A deployment's recent window, pulled from every replica's prediction log.")
@click.option("--log-dir", "log_dir", type=click.Path(path_type=Path, file_okay=False), metavar="FOLDER",
              help="Current data: the recent window of a prediction log folder.")
@click.option("--window", "window", type=int, default=1000, show_default=True,
              help="Rows of the recent window (with --current-url or --log-dir).")
@click.option("--numeric-test", type=click.Choice(["ks", "wasserstein", "psi", "jensenshannon"]),
              help="Test for numeric features (default: by sample size).")
@click.option("--categorical-test", type=click.Choice(["chisquare", "jensenshannon", "psi"]),
              help="Test for categorical features (default: by sample size).")
@click.option("--threshold", "thresholds", multiple=True, metavar="TEST=VALUE",
              help="Threshold of a test, e.g. psi=0.2 or ks=0.01 (repeatable).")
@click.option("--correction", type=click.Choice(["bh", "bonferroni", "none"]), default="bh", show_default=True,
              help="Multiple-testing correction of p-values.")
@click.option("--drift-share", type=float, default=0.5, show_default=True,
              help="Share of drifted features at which the dataset counts as drifted.")
@click.option("--multivariate/--no-multivariate", default=True, show_default=True,
              help="Also run the multivariate domain-classifier test.")
@json_option
def drift(reference: str, current: Path | None, current_url: str | None, deployment: str | None,
          log_dir: Path | None, window: int,
          numeric_test: str | None, categorical_test: str | None, thresholds: tuple[str, ...], correction: str,
          drift_share: float, multivariate: bool, as_json: bool) -> None:
    """Test current data for drift against a reference (a data file or a model's logged profile).

    Per feature: the test, its statistic, p-value or distance, threshold and drifted flag; then the
    dataset-level verdict (share of drifted features, multivariate test).
    """
    from workbench.errors import InvalidInputError
    from workbench.monitor.drift import DriftSettings, detect_drift
    from workbench.parquet import PARQUET_SUFFIXES

    given = [name for name, value in (("--current", current), ("--current-url", current_url),
                                      ("--deployment", deployment), ("--log-dir", log_dir)) if value is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --current, --deployment, --current-url and --log-dir")
    limits = _thresholds(thresholds, "TEST=VALUE, e.g. psi=0.2")
    settings = DriftSettings(numeric_test=numeric_test, categorical_test=categorical_test, thresholds=limits,
                             correction=correction, drift_share=drift_share,  # type: ignore[arg-type]
                             multivariate=multivariate)
    profile = _reference(reference)
    frame: Any
    if current is not None:
        if not current.exists():
            raise InvalidInputError(f"no current data file {current}")
        parquet = current.is_dir() or current.suffix.lower() in PARQUET_SUFFIXES
        frame = current if parquet else read_table(current)  # detect_drift streams Parquet
        where = str(current)
    else:
        if deployment is not None:
            from workbench.deployment import get_deployment

            frame = get_deployment(deployment).recent_rows(window).frame
            where_name = f"deployment {deployment}"
        else:
            from workbench.predlog import recent_rows

            where_name = current_url if current_url is not None else str(log_dir)
            frame = recent_rows(where_name, window).frame
        where = f"the last {len(frame)} rows of {where_name}"
        if not len(frame):
            raise InvalidInputError(f"{where_name} has logged no predictions yet: nothing to test")
    report = detect_drift(profile, frame, settings)
    if as_json:
        emit(report.to_dict(), True)
        return
    table = report.to_frame()
    table["statistic"] = table["statistic"].map(lambda v: f"{v:.4g}" if v == v else "-")
    for column in ("p_value", "p_value_adjusted"):
        table[column] = table[column].map(lambda v: f"{v:.3g}" if v is not None and v == v else "-")
    table["drifted"] = table["drifted"].map({True: "DRIFT", False: ""})
    emit(table, False, columns=["feature", "kind", "test", "statistic", "p_value", "p_value_adjusted", "threshold",
                                     "drifted", "note"])
    click.echo("")
    click.echo(f"current: {where}")
    click.echo(report.summary())


@click.command()
@click.argument("deployment")
@click.option("--since", default="7d", show_default=True,
              help="Start: a time (2026-12-01 09:00, UTC) or a span back from now (1h, 1d, 7d).")
@click.option("--until", default=None, help="End (default: now), as --since.")
@click.option("--every", default="1h", show_default=True, help="Length of each period (1min, 15min, 1h, 1d).")
@click.option("--threshold", "thresholds", multiple=True, metavar="METRIC=VALUE",
              help="Alert where a measured metric crosses it, e.g. accuracy=0.85 or rmse=4 (repeatable).")
@json_option
def history(deployment: str, since: str, until: str | None, every: str, thresholds: tuple[str, ...],
            as_json: bool) -> None:
    """A deployment's drift and measured performance per period, from the window summaries kept
    beside its logs, with the deploys, promotions and rollbacks of the period and the alerts."""
    from workbench.monitor import drift_history

    limits = _thresholds(thresholds, "METRIC=VALUE, e.g. accuracy=0.85")
    found = drift_history(deployment, since=since, until=until, every=every, thresholds=limits)
    if as_json:
        emit(found.to_dict(), True)
        return
    table = found.frame.copy()
    table["dataset"] = table["drifted"].map({True: "DRIFT", False: ""})
    table["drifted"] = table["drifted_features"]
    metrics = [m for m in ("accuracy", "f1", "mae", "rmse", "r2") if m in table.columns]
    for metric in metrics:
        table[metric] = table[metric].map(lambda v: f"{v:.3f}" if v == v else "-")
    emit(table, False, columns=["start", "version", "rows", "dataset", "drifted", "labelled", *metrics],
         empty="no predictions logged in the period")
    for kind, rows in (("events", [f"{t:%Y-%m-%d %H:%M} {name}" for t, name in zip(found.events["ts"],
                                                                                    found.event_names, strict=True)]),
                       ("alerts", [f"{a.time:%Y-%m-%d %H:%M} {a.message}" for a in found.alerts])):
        if rows:
            click.echo(f"\n{kind}:")
            for row in rows:
                click.echo(f"  {row}")
    click.echo("")
    click.echo(found.headline())


@click.command()
@click.argument("model_uri", metavar="URI")
@click.option("--data", "data", type=click.Path(path_type=Path, dir_okay=False), required=True, metavar="FILE",
              help="The training data: a CSV or Parquet file of the model's input columns.")
@click.option("--target", "target", metavar="COLUMN",
              help="A column of FILE holding the training labels (profiled as the target, not an input).")
@json_option
def profile(model_uri: str, data: Path, target: str | None, as_json: bool) -> None:
    """Give the model version URI, logged without one (e.g. by plain MLflow), a reference profile of
    its training data FILE, so drift, explanations and its card work. Stored with the model, hashed
    and audited; a profile the version already has is kept."""
    from workbench.errors import InvalidInputError
    from workbench.registry import attach_profile

    if not data.exists():
        raise InvalidInputError(f"no data file {data}: give the training data as CSV or Parquet")
    frame = read_table(data)
    labels = None
    if target is not None:
        if target not in frame.columns:
            raise InvalidInputError(f"{data} has no column {target!r} for --target; its columns: "
                                    f"{', '.join(map(str, frame.columns[:20]))}")
        labels = frame.pop(target)
    made = attach_profile(model_uri, frame, labels)
    if as_json:
        emit(made.to_dict(), True)
        return
    emit(made.to_frame(), False)
    click.echo("")
    click.echo(f"profile of {made.n_rows} rows attached to {model_uri} (data {made.data_hash[:12]})")


COMMANDS = [drift, history, profile]


def _thresholds(items: tuple[str, ...], form: str) -> dict[str, float]:
    """``--threshold NAME=VALUE`` options as a mapping; one that is not ``form`` is a usage error."""
    limits: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r} is not {form}", param_hint="--threshold") from None
    return limits
