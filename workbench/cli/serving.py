"""``workbench serve``: the inference server in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workbench.serving.command import name_process


@click.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="WORKBENCH_HOST",
              help="Address to bind (or WORKBENCH_HOST).")
@click.option("--port", type=int, default=8080, show_default=True, envvar="WORKBENCH_PORT",
              help="Port, 0 for any free one (or WORKBENCH_PORT).")
@click.option("--name", help="Model name in V2 routes (default: the registered name).")
@click.option("--model-version", "version", help="Version reported in V2 routes (default: the registry's).")
@click.option("--log-dir", type=click.Path(path_type=Path), help="Prediction log folder (with --log-url: the spool).")
@click.option("--log-url", envvar="WORKBENCH_LOG_URL", metavar="postgresql://...",
              help="Write the prediction log to this shared PostgreSQL store (or WORKBENCH_LOG_URL), spooling "
                   "to --log-dir while it is away.")
@click.option("--deployment", envvar="WORKBENCH_DEPLOYMENT", metavar="NAME",
              help="The deployment this server's records belong to in the log store (or WORKBENCH_DEPLOYMENT; "
                   "default: the model's name).")
@click.option("--port-file", type=click.Path(path_type=Path), hidden=True)
@click.option("--snapshot", type=click.Path(path_type=Path), hidden=True,
              help="The model's snapshot folder, written by a model image's build.")
@click.option("--model-dir", type=click.Path(path_type=Path, file_okay=False), hidden=True,
              help="A folder that already holds MODEL_URI's files (with --name and --model-version, the "
                   "store is not opened).")
def serve(model_uri: str, host: str, port: int, name: str | None, version: str | None,
          log_dir: Path | None, log_url: str | None, deployment: str | None, port_file: Path | None,
          snapshot: Path | None, model_dir: Path | None) -> None:
    """Serve MODEL_URI (models:/name@alias, models:/name/3, runs:/..., or a folder) over HTTP.

    Open Inference Protocol V2 under /v2, MLflow's /invocations, Prometheus /metrics, the
    prediction log under /workbench/predictions. Stops cleanly on Ctrl-C or SIGTERM.
    """
    from workbench.serving import serve as run

    name_process("serve", deployment or name or model_uri, model_uri)
    run(model_uri, host=host, port=port, name=name, version=version, log_dir=log_dir, port_file=port_file,
        snapshot=snapshot, model_dir=model_dir, explainer=_explainer, log_url=log_url, deployment=deployment)


def _explainer(model: Any) -> Any:
    """The explain route's explainer, built on the first explain request (shap loads only then);
    SHAP's code is compiled by the first explanation that needs it, not by building the explainer."""
    from workbench.explain import Explainer

    return Explainer(warm_up=False).fit(model)


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, path_type=Path),
              help="Route table and admin token (JSON), written by the deployment targets.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="WORKBENCH_HOST",
              help="Address to bind (or WORKBENCH_HOST).")
@click.option("--port", type=int, default=8080, show_default=True, envvar="WORKBENCH_PORT",
              help="Port, 0 for any free one (or WORKBENCH_PORT).")
@click.option("--port-file", type=click.Path(path_type=Path), hidden=True)
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Writable folder for the bandit's state (default: the config's folder).")
@click.option("--deployment", envvar="WORKBENCH_DEPLOYMENT", metavar="NAME",
              help="The deployment this router fronts, for the process's name (or WORKBENCH_DEPLOYMENT).")
def route(config_file: Path, host: str, port: int, port_file: Path | None, state_dir: Path | None,
          deployment: str | None) -> None:
    """Run a deployment's traffic router: one address in front of its model servers.

    The admin token comes from the config file, else from WORKBENCH_ROUTER_TOKEN.
    """
    from workbench.routing.router import run_router

    name_process("route", deployment or config_file.parent.name)
    run_router(config_file, host=host, port=port, port_file=port_file, state_dir=state_dir)


COMMANDS = [serve, route]
