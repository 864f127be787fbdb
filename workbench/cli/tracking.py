"""``workbench info``, ``runs``, ``models``, ``diff`` and ``reproduce``: what the workspace holds, what
changed between two of its versions, and whether a version can be trained again alike."""

from __future__ import annotations

import platform

import click

from workbench.cli._output import emit, json_option


@click.command()
@json_option
def info(as_json: bool) -> None:
    """Show the workspace, the MLflow store in use and library versions."""
    from importlib.metadata import version

    from workbench import _mlflow

    settings = _mlflow.ensure_ready()
    emit(
        {
            "workspace": str(settings.home),
            "mode": "embedded" if settings.embedded else "tracking server",
            "tracking_uri": settings.store_uri,
            "registry_uri": settings.model_registry_uri,
            "user": settings.user,
            "workbench": version("workbench"),
            "mlflow": version("mlflow-skinny"),
            "python": platform.python_version(),
        },
        as_json,
    )


@click.command()
@click.argument("experiment", required=False)
@click.option("--filter", "filter_string", default="", help="MLflow search filter, e.g. \"metrics.acc > 0.9\".")
@click.option("--order-by", multiple=True, help="MLflow order clause, e.g. \"metrics.acc DESC\".")
@click.option("--max", "max_results", type=int, default=50, show_default=True, help="Most runs to show.")
@json_option
def runs(experiment: str | None, filter_string: str, order_by: tuple[str, ...], max_results: int,
         as_json: bool) -> None:
    """List runs of EXPERIMENT (newest first), or the experiments when none is given."""
    import workbench as wb

    if experiment is None:
        emit(
            [{"experiment_id": e.experiment_id, "name": e.name, "artifacts": e.artifact_location}
             for e in wb.experiments()],
            as_json,
            empty="no experiments yet: start one with workbench.start_run(experiment='name')",
        )
        return
    frame = wb.runs(experiment, filter_string=filter_string, order_by=order_by or None,
                    max_results=max_results)
    if not as_json:
        frame = frame.drop(columns=["end_time"]).assign(run_id=frame["run_id"].str[:12])
    emit(frame, as_json, empty=f"experiment {experiment!r} has no runs yet")


@click.command()
@click.argument("name", required=False)
@json_option
def models(name: str | None, as_json: bool) -> None:
    """List registered models, or the versions of model NAME."""
    import workbench as wb

    if name is None:
        emit(
            [{"name": m.name, "latest_version": m.latest_version,
              "aliases": [f"{a}={v}" for a, v in sorted(m.aliases.items())],
              "updated": m.updated} for m in wb.models()],
            as_json,
            empty="no registered models yet: register one with workbench.register(model_uri, name)",
        )
        return
    emit(
        [{"version": v.version, "aliases": list(v.aliases), "status": v.status,
          "run_id": v.run_id, "user": v.user, "created": v.created,
          "git_commit": (v.git_commit or "")[:12] if not as_json else v.git_commit,
          "data_hash": (v.data_hash or "")[:12] if not as_json else v.data_hash}
         for v in wb.versions(name)],
        as_json,
    )


@click.command()
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """Show what changed from version A to version B: params, metrics, signature, packages, training
    data (row counts, drifted features) and predictions on the same rows.

    A and B are models:/<name>/<version>, models:/<name>@<alias> or run ids.
    """
    import workbench as wb

    result = wb.diff(a, b)
    if as_json:
        emit(result.to_dict(), True)
        return
    click.echo(result.summary())
    emit(result.to_frame().astype(object).fillna("-"), False)  # "-" where a side has no value
    for note in result.notes:
        click.echo(f"not compared: {note}")
    if result.code_diff:
        click.echo(result.code_diff, nl=False)


@click.command()
@click.argument("uri")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Most seconds the captured code may take to train again.")
@click.option("--trust", is_flag=True,
              help="Run the captured code even though another user logged it (read it first).")
@json_option
def reproduce(uri: str, timeout: float, trust: bool, as_json: bool) -> None:
    """Re-run the code that trained URI on its training data snapshot and check that the new model
    answers the reference rows exactly alike; exits with status 1 when it does not.

    URI is models:/<name>/<version>, models:/<name>@<alias> or a run id.
    """
    import workbench as wb

    result = wb.reproduce(uri, timeout=timeout, trust=trust)
    if as_json:
        emit(result.to_dict(), True)
    else:
        click.echo(result.summary())
        if len(result.diff.to_frame()):
            emit(result.diff.to_frame().astype(object).fillna("-"), False)
        for note in result.diff.notes:
            click.echo(f"not compared: {note}")
    if not result.matches:
        raise SystemExit(1)


COMMANDS = [info, runs, models, diff, reproduce]
