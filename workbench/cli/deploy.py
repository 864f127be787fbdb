"""``workbench package``, ``deploy``, ``deployments``, ``logs``, ``stop``, ``update``, ``rollback``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from workbench.cli._files import read_table
from workbench.cli._output import emit, json_option


def _build_progress(enabled: bool) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """A terminal progress bar over build steps (on stderr), and a function that closes it; when not
    enabled, a callback that shows nothing (the core's default would print steps on stdout)."""
    if not enabled:
        return lambda event: None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1, unit="step", file=sys.stderr, bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} steps")

    def on_event(event: Any) -> None:
        if event.kind == "step" and event.total_steps:
            bar.total = event.total_steps
            bar.n = event.step
            bar.set_description_str(f"building: {event.message[:40]}")
            bar.refresh()
        elif event.kind == "context":
            bar.set_description_str(event.message)

    return on_event, bar.close


@click.command()
@click.argument("model_uri")
@click.option("--tag", help="Image tag (default: workbench/<model>:<version>).")
@click.option("--base-image", help="Base image (default: python:<model's X.Y>-slim or WORKBENCH_BASE_IMAGE).")
@click.option("--offline", is_flag=True, help="Download wheels here and build with no network.")
@click.option("--context-dir", type=click.Path(path_type=Path), help="Where to write the build context.")
@click.option("--no-cache", is_flag=True, help="Rebuild every layer instead of reusing the build cache.")
@click.option("--explain", is_flag=True, help="Include SHAP so the server can explain its predictions.")
@click.option("--include-sample", "sample_rows", type=click.IntRange(1, 10_000), default=None, metavar="ROWS",
              help="Carry a random sample of ROWS training rows (at most 10,000) in the image; by default it "
                   "carries none, only summaries of the training data.")
@json_option
def package(model_uri: str, tag: str | None, base_image: str | None, offline: bool,
            context_dir: Path | None, no_cache: bool, explain: bool, sample_rows: int | None, as_json: bool) -> None:
    """Package MODEL_URI into a container image (Docker SDK), showing build progress."""
    import workbench as wb

    on_event, close = _build_progress(not as_json and sys.stderr.isatty())
    try:
        record = wb.package(model_uri, tag=tag, base_image=base_image, offline=offline,
                            context_dir=context_dir, on_event=on_event, no_cache=no_cache, explain=explain,
                            include_sample=sample_rows is not None, sample_rows=sample_rows or 1_000)
    finally:
        close()
    data = record.to_dict()
    if not as_json:
        data = {k: v for k, v in data.items() if k not in ("labels", "size_bytes")}
    emit(data, as_json)


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` target options; values are read as JSON when they parse (numbers, true, lists)."""
    import json

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


option_option = click.option(
    "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
    help="A target option, repeatable (e.g. registry=REG/PATH, kserve=true, namespace=ml).",
)


@click.command()
@click.argument("target", required=False)
@json_option
def targets(target: str | None, as_json: bool) -> None:
    """List the installed deployment targets, or show TARGET's help and options."""
    import workbench as wb

    if target is None:
        emit([{"target": t.uri, "summary": t.summary} for t in wb.deploy_targets()] if not as_json
             else [t.to_dict() for t in wb.deploy_targets()], as_json)
    elif as_json:
        emit(wb.get_target_info(target).to_dict(), as_json)
    else:
        click.echo(wb.target_help(target))


@click.command()
@click.argument("model_uri")
@click.option("--target", default="local", show_default=True,
              help="An installed target (`workbench targets` lists them): local, docker, swarm, "
                   "k8s://CONTEXT/NAMESPACE, ...")
@click.option("--name", help="Deployment name (default: from the model name).")
@click.option("--port", type=int, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--image", help="Run this image of the model instead of packaging it.")
@click.option("--replicas", type=int, help="swarm, k8s: model-server replicas.")
@option_option
@json_option
def deploy(model_uri: str, target: str, name: str | None, port: int | None, image: str | None,
           replicas: int | None, option_pairs: tuple[str, ...], as_json: bool) -> None:
    """Deploy MODEL_URI to TARGET and wait until it answers."""
    import workbench as wb

    on_event, close = _build_progress(not as_json and sys.stderr.isatty() and target != "local")
    try:
        dep = wb.deploy(model_uri, target=target, name=name, port=port, image=image, on_event=on_event,
                        replicas=replicas, **_options(option_pairs))
    finally:
        close()
    emit(dep.to_dict(), as_json)


@click.command()
@json_option
def deployments(as_json: bool) -> None:
    """List deployments with their live state and health."""
    import workbench as wb

    emit(
        [d.to_dict() for d in wb.deployments()],
        as_json,
        columns=["name", "target", "model_name", "model_version", "url", "state", "healthy", "revision"],
        empty="no deployments: start one with `workbench deploy MODEL_URI`",
    )


@click.command()
@click.argument("name")
@click.option("--tail", type=int, default=100, show_default=True, help="How many lines.")
def logs(name: str, tail: int) -> None:
    """Show the last lines the deployment's server wrote."""
    import workbench as wb

    click.echo(wb.logs(name, tail=tail))


@click.command()
@click.argument("name")
def stop(name: str) -> None:
    """Stop deployment NAME (its prediction log is kept)."""
    import workbench as wb

    wb.stop(name)
    click.echo(f"stopped {name}")


@click.command()
@click.argument("name")
@click.argument("model_uri")
@click.option("--image", help="Run this image of the new model instead of packaging it.")
@option_option
@json_option
def update(name: str, model_uri: str, image: str | None, option_pairs: tuple[str, ...], as_json: bool) -> None:
    """Serve MODEL_URI under deployment NAME; the old model serves until the new one is ready."""
    import workbench as wb

    emit(wb.update(name, model_uri, image=image, **_options(option_pairs)).to_dict(), as_json)


@click.command()
@click.argument("name")
@json_option
def rollback(name: str, as_json: bool) -> None:
    """Serve again the version deployment NAME served before."""
    import workbench as wb

    emit(wb.rollback(name).to_dict(), as_json)


strategy_option = click.option(
    "--strategy", type=click.Choice(["thompson", "epsilon_greedy"]),
    help="Share traffic by the rewards fed back (a bandit) instead of a fixed share.")
epsilon_option = click.option("--epsilon", type=float,
                              help="epsilon_greedy: share of requests that explore (default 0.1).")


@click.command()
@click.argument("name")
@click.argument("model_uri")
@click.option("--share", type=float, help="Share of requests for the challenger (default 0.1).")
@click.option("--shadow", is_flag=True, help="Mirror every request to the challenger; only the champion answers.")
@strategy_option
@epsilon_option
@json_option
def challenger(name: str, model_uri: str, share: float | None, shadow: bool, strategy: str | None,
               epsilon: float | None, as_json: bool) -> None:
    """Serve MODEL_URI as a challenger beside deployment NAME's champion."""
    import workbench as wb

    emit(wb.start_challenger(name, model_uri, share=share, shadow=shadow, strategy=strategy,  # type: ignore[arg-type]
                             epsilon=epsilon).to_dict(), as_json)


@click.command()
@click.argument("name")
@click.option("--share", type=float, help="New share of requests for the challenger.")
@click.option("--shadow/--split", default=None, help="Mirror to the challenger, or split traffic.")
@strategy_option
@epsilon_option
@json_option
def traffic(name: str, share: float | None, shadow: bool | None, strategy: str | None, epsilon: float | None,
            as_json: bool) -> None:
    """Show how deployment NAME shares traffic now (a bandit's shares read live from its router), or
    change it with --share, --shadow/--split or --strategy."""
    import workbench as wb
    from workbench.deployment import TrafficPolicy

    if share is None and shadow is None and strategy is None and epsilon is None:
        dep = wb.get_deployment(name)
    else:
        dep = wb.set_traffic(name, share=share, shadow=shadow, strategy=strategy,  # type: ignore[arg-type]
                             epsilon=epsilon)
    versions = {"champion": dep.model_version, "challenger": dep.challenger_version}
    data: dict[str, Any] = {
        "name": dep.name,
        "traffic": TrafficPolicy.describe(dep.traffic) or "champion only",
        "shares": {f"{arm} v{versions[arm]}": round(share, 4) for arm, share in dep.shares.items()},
    }
    if dep.bandit is not None:
        data["rewards"] = {f"{a.arm} v{a.version}": f"{a.rewards} (mean {a.reward_sum / a.rewards:.3f})"
                           if a.rewards else "0" for a in dep.bandit.arms}
        data["floor"] = round(dep.bandit.floor, 4)
    elif (dep.traffic or {}).get("mode") == "bandit":
        data["shares"] = "the router does not answer now: see `workbench deployments`"
    emit(dep.to_dict() if as_json else data, as_json)


@click.command()
@click.argument("name")
@json_option
def promote(name: str, as_json: bool) -> None:
    """Make deployment NAME's challenger its champion (the old champion stops)."""
    import workbench as wb

    emit(wb.promote(name).to_dict(), as_json)


@click.command()
@click.argument("name")
@json_option
def abort(name: str, as_json: bool) -> None:
    """Stop deployment NAME's challenger; the champion takes all traffic."""
    import workbench as wb

    emit(wb.abort(name).to_dict(), as_json)


@click.command()
@click.argument("name")
@click.option("--window", type=int, default=10_000, show_default=True, help="Logged requests per version.")
@json_option
def compare(name: str, window: int, as_json: bool) -> None:
    """Compare deployment NAME's champion and challenger: latency, errors, predictions, drift."""
    import workbench as wb

    result = wb.compare_versions(name, window=window)
    if as_json:
        emit(result.to_dict(), True)
    else:
        click.echo(result.to_frame().to_string())


@click.command()
@click.argument("name")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV or Parquet file: request_id, optional row, and truth and/or reward columns.")
@json_option
def feedback(name: str, path: Path, as_json: bool) -> None:
    """Send ground truth and/or rewards for rows deployment NAME answered.

    Each line names the answer by its request id (the id the answer carried, or the x-request-id
    the caller sent) and, for requests of several rows, the row's position (0, 1, ...). Prints how
    many rows were recorded, corrected, duplicates, unknown or out of range; exits with 1 when
    nothing was accepted.
    """
    import workbench as wb

    report = wb.log_feedback(name, read_table(path))
    if as_json:
        emit({"counts": report.counts, "results": report.to_frame()}, True)
    else:
        click.echo(f"{name}: {report.summary()}")
        refused = report.to_frame().query("status in ('unknown', 'out_of_range')")
        if len(refused):
            click.echo(refused.head(20).to_string(index=False))
    if not any(report.counts[s] for s in ("recorded", "corrected", "duplicate")):
        sys.exit(1)


COMMANDS = [package, targets, deploy, deployments, logs, stop, update, rollback, challenger, traffic, promote, abort,
            compare, feedback]
