"""``workbench check | waive | audit | card | policy``: governance from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from workbench.cli._output import emit, json_option

_CHECKS = ("protected_inputs", "proxies", "required_metrics", "signature", "lineage")  # = CHECK_NAMES (tested)


@click.command()
@click.argument("model_uri")
@click.option("--stage", type=click.Choice(["package", "deploy"]),
              help="Run only the checks the policy enforces before this stage (default: every check).")
@json_option
def check(model_uri: str, stage: str | None, as_json: bool) -> None:
    """Run the policy checks in effect on MODEL_URI (e.g. models:/credit@champion).

    Exits with status 1 when a check fails with severity error and no waiver covers it, whether the
    policy enforces or only advises, so a CI step can gate on it; warnings and waived failures are
    printed but do not fail.
    """
    from workbench.governance import check_policies

    report = check_policies(model_uri, stage=stage)
    if as_json:
        emit(report.to_dict(), True)
    else:
        emit(report.to_frame(), False, columns=["check", "status", "severity", "message", "waiver"])
        click.echo("")
        click.echo(report.summary())
        if report.blocked:
            click.echo(f"Fix the model, or record a waiver: workbench waive {report.model_uri} CHECK "
                       "--by NAME --reason TEXT")
        elif not report.passed:
            click.echo("The policy only advises: package and deploy go ahead. `workbench policy --init` writes "
                       "an enforcing policy.")
    if not report.passed:
        sys.exit(1)


@click.command()
@click.argument("model_uri")
@click.argument("check_name", metavar="CHECK", type=click.Choice(_CHECKS))
@click.option("--by", "by", required=True, help="Who grants the waiver (a named, responsible person).")
@click.option("--reason", required=True, help="Why the failing check is acceptable for this version.")
@json_option
def waive(model_uri: str, check_name: str, by: str, reason: str, as_json: bool) -> None:
    """Accept the failing CHECK for the version MODEL_URI names; recorded and audited.

    An alias is resolved now: the waiver covers that version only.
    """
    from workbench.governance import waive as record_waiver

    waiver = record_waiver(model_uri, check_name, by=by, reason=reason)
    if as_json:
        emit(waiver.to_dict(), True)
        return
    version = f" version {waiver.model_version}" if waiver.model_version else ""
    click.echo(f"waiver {waiver.id}: {check_name} on {waiver.model_name}{version} {waiver.describe()}")


@click.command()
@click.option("--model", "model", metavar="NAME", help="Only actions on this registered model.")
@click.option("--action", "action", help="Only this action (register, set_alias, package, deploy, ...).")
@click.option("--deployment", "deployment", metavar="NAME", help="Only actions on this deployment.")
@click.option("--since", "since", metavar="WHEN", help="From this time (2026-11-02, 2026-11-02T09:30) or span back (30m, 12h, 7d).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N entries.")
@json_option
def audit(model: str | None, action: str | None, deployment: str | None, since: str | None, limit: int | None,
          as_json: bool) -> None:
    """Print the audit trail: who did what to which model version, and when (UTC), oldest first."""
    from workbench.audit import audit_log

    frame = audit_log(model=model, action=action, since=since, deployment=deployment, limit=limit)
    if as_json:
        emit(frame, True)
        return
    emit(frame, False, columns=["id", "ts", "user", "action", "model_name", "from_version", "to_version", "target",
                                "deployment", "details"],
         empty="no audit entries match" if any((model, action, deployment, since)) else "the audit trail is empty")


@click.command()
@click.argument("model_uri")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]),
              help="Output format (default: from the --output suffix, else Markdown).")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the card to FILE instead of printing it.")
def card(model_uri: str, fmt: str | None, output: Path | None) -> None:
    """Write the model card of MODEL_URI: intended use, data, metrics, fairness, policy, lineage, deployments.

    Fairness reports logged on the version's run (workbench.fairness_report(..., log=True)) are included.
    """
    from workbench.card import model_card

    result = model_card(model_uri)
    if output is not None:
        chosen = fmt or ("html" if output.suffix.lower() in (".html", ".htm") else "md")
        path = result.save(output, format=chosen)  # type: ignore[arg-type]
        click.echo(f"wrote {path}")
        return
    click.echo(result.to_html() if fmt == "html" else result.to_markdown(), nl=False)


@click.command()
@click.option("--init", "init", is_flag=True,
              help="Write an enforcing policy.yaml (the lending template) to the workspace.")
@click.option("--publish", "publish", type=str, is_flag=False, flag_value="", metavar="[FILE]",
              help="Make FILE (default: the workspace's policy.yaml) the team's policy on the tracking server.")
@click.option("--unpublish", is_flag=True, help="Remove the team's policy from the tracking server.")
@json_option
def policy(init: bool, publish: str | None, unpublish: bool, as_json: bool) -> None:
    """Show the governance policy in effect: the team's (on the tracking server), the workspace's
    policy.yaml, or the advisory defaults (every check shown, nothing blocked)."""
    from workbench.governance import init_policy, load_policy, publish_policy, unpublish_policy

    if init:
        click.echo(f"wrote {init_policy()}: it enforces from now on (edit `mode: advise` to only advise)")
        return
    if publish is not None:
        published = publish_policy(Path(publish) if publish else None)
        click.echo(f"published as the team's policy: {published.source}")
        return
    if unpublish:
        unpublish_policy()
        click.echo("the team's policy is removed; each workspace's own policy.yaml (or the defaults) applies")
        return
    effective = load_policy()
    if as_json:
        emit(effective.to_dict(), True)
        return
    import yaml

    source = effective.source or ("the advisory defaults: every check is shown, nothing blocks (no policy.yaml in "
                                  "the workspace; `workbench policy --init` writes an enforcing one)")
    click.echo(f"# policy: {source}")
    data = effective.to_dict()
    data.pop("source")
    click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


COMMANDS = [check, waive, audit, card, policy]
