"""Deployments: deploy a version, watch status and health live, and change what is served.

::

    from workbench.widgets import Deployments
    Deployments()                                  # every deployment in the workspace
    Deployments(model_name="churn")                # only those serving churn, with churn's versions

Deploying, updating, rolling back, stopping and champion/challenger changes run on a background
thread with a progress bar (a Docker deploy shows its image build steps); the table's state and
health refresh every ``interval`` seconds through a periodic callback, off the event loop too.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn
import param

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.widgets import runs, ui
from workbench.widgets.background import BackgroundTask, Job

__all__ = ["Deployments"]

_COLUMNS = ["name", "target", "model", "version", "state", "health", "policy", "alerts", "url", "revision",
            "challenger", "traffic", "updated"]
# The badge colour of a policy verdict and of an alert state (workbench.Glances).
_POLICY_KINDS = {"passes": "ok", "advisory": "warn", "blocked": "drift", "unknown": "muted"}
_ALERT_KINDS = {"ok": "ok", "no data": "muted", "drift": "drift", "performance": "drift",
                "drift and performance": "drift", "unknown": "muted"}


def _titled(badge_html: str, title: str) -> str:
    """A badge whose hover text is the sentence behind it."""
    return f'<span title="{html.escape(title)}">{badge_html}</span>'


def _traffic(d: Any) -> str:
    """How a deployment shares traffic, in a table cell: ``split 10%``, ``shadow``, or a bandit's live
    shares (``thompson: v1 22% / v2 78%``)."""
    traffic = d.traffic or {}
    if not traffic:
        return "-"
    if traffic.get("mode") == "bandit":
        if d.bandit is None:
            return f"{traffic.get('strategy')}: shares not readable now"
        versions = {"champion": d.model_version, "challenger": d.challenger_version}
        shares = " / ".join(f"v{versions[arm]} {share:.0%}" for arm, share in d.shares.items())
        return f"{traffic.get('strategy')}: {shares}"
    if traffic.get("mode") == "shadow":
        return "shadow"
    return f"split {traffic.get('challenger_share', 0):.0%}"


class Deployments(ui.NotebookView, pn.viewable.Viewer):
    """Deploy a model version to a target; live state, health and URL of every deployment, the policy
    badge of the version each serves (advice under the default policy, blocked under an enforcing one)
    and its drift state; logs, update, rollback, stop; champion/challenger start, promote, abort and
    their comparison."""

    model_uri = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The model version to deploy, update to, or start as challenger (``models:/churn/3``,
        ``models:/churn@champion``).""")
    target = param.Selector(default="local", objects=[], check_on_set=False, doc="""
        Where a new deployment runs: one of the installed targets, as ``wb.deploy_targets()`` lists
        them (``local``, a process; ``docker``, a container, the model packaged first; ...), or
        another target URI (``k8s://CONTEXT/NAMESPACE``).""")
    deployment_name = param.String(default="", doc="Name of a new deployment (default: from the model's name).")
    selected = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True, doc="""
        The deployment that logs, update, rollback, stop and challenger actions apply to.""")
    share = param.Number(default=0.1, bounds=(0.0, 1.0), step=0.05, doc="""
        Share of requests a new challenger receives (split mode).""")
    shadow = param.Boolean(default=False, doc="""
        Start the challenger in shadow mode: it sees a copy of every request, only the champion answers.""")
    strategy = param.Selector(default="fixed share", objects=["fixed share", "thompson", "epsilon_greedy"], doc="""
        How a new challenger shares traffic: the fixed ``share``, or a bandit (``thompson`` or
        ``epsilon_greedy``) that follows the rewards fed back; the table shows a bandit's live shares.""")
    model_name = param.String(default=None, allow_None=True, doc="""
        Show only deployments of this registered model, and offer only its versions.""")
    live = param.Boolean(default=True, doc="Refresh state and health every ``interval`` seconds.")
    interval = param.Number(default=3.0, bounds=(0.5, None), doc="Seconds between status refreshes.")
    deployments = param.List(default=[], constant=True, doc="""
        The :class:`~workbench.Deployment` records shown, as last refreshed (read only).""")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ui.offer_models(self, self.model_name)
        # The targets installed (entry points), not a list of our own: a plugin's target shows too.
        self.param.target.objects = [t.name for t in wb.deploy_targets()]
        self._target_summary = ui.markdown()
        self._action = BackgroundTask()
        self._status = BackgroundTask()
        self._glances = wb.Glances()
        # A plain HTML table: it is redrawn on every refresh (see ui.html_table for why not Tabulator).
        self._table = pn.pane.HTML("", sizing_mode="stretch_width")
        self._rows = pd.DataFrame(columns=_COLUMNS)
        self._url = pn.pane.HTML("", sizing_mode="stretch_width")
        self._logs = pn.pane.Str("", sizing_mode="stretch_width", visible=False,
                                 styles={"font-size": "85%", "background": "#f6f8fa", "padding": "6px"})
        self._comparison = ui.table(pd.DataFrame(), label="comparison", show_index=True,
                                    selectable=False, visible=False)
        busy = self._action.param.running

        def button(label: str, action: Callable[[], Any], kind: str = "default") -> pn.widgets.Button:
            return ui.button(label, action, color=kind, disabled=busy)

        self._actions = self._build_actions(button)
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.model_uri, label="Model", width=280),
                pn.widgets.Select.from_param(self.param.target, label="Target", width=110),
                pn.widgets.TextInput.from_param(self.param.deployment_name, label="Deployment name", placeholder="from the model",
                                                width=200),
                button("Deploy", self.deploy, "primary"),
            ),
            self._target_summary,
            ui.progress_row(self._action, width=320),
            ui.error_alert(self._action),
            self._table,
            self._actions,
            self._url,
            self._comparison,
            self._logs,
            sizing_mode="stretch_width",
        )
        self._poller = pn.state.add_periodic_callback(self._poll, period=int(self.interval * 1000), start=self.live)
        self._show_target()
        self.refresh()

    def _build_actions(self, button: Callable[..., pn.widgets.Button]) -> pn.Column:
        """The rows of actions on the selected deployment (shown once there is one)."""
        return pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.selected, label="Deployment", width=200),
                button("Update to model", self.update),
                button("Roll back", self.rollback),
                button("Stop", self.stop, "danger"),
                button("Logs", self.show_logs),
            ),
            pn.Row(
                pn.widgets.FloatSlider.from_param(self.param.share, label="Challenger share", width=200),
                pn.widgets.Checkbox.from_param(self.param.shadow, label="shadow", align="end"),
                pn.widgets.Select.from_param(self.param.strategy, label="Routing", width=140),
                button("Start challenger", self.start_challenger),
                button("Promote", self.promote, "success"),
                button("Abort", self.abort, "warning"),
                button("Compare versions", self.compare),
            ),
            sizing_mode="stretch_width", visible=False,
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("target", watch=True)
    def _show_target(self) -> None:
        """Say what the chosen target runs, and where (its one-line summary in the listing)."""
        try:
            info = wb.get_target_info(self.target or "")
        except InvalidInputError as exc:  # a target no installed plugin knows: say so before a deploy fails
            self._target_summary.object = html.escape(str(exc), quote=False)
            return
        self._target_summary.object = f"*{html.escape(info.uri, quote=False)}*: {html.escape(info.summary, quote=False)}"

    # -- status ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every deployment's live state now (off the event loop)."""
        model_name = self.model_name

        glances = self._glances

        def work(job: Job[list[Any]]) -> list[Any]:
            found = [d for d in wb.deployments() if model_name is None or d.model_name == model_name]
            return list(zip(found, glances.of(found), strict=True))

        self._status.start(work, self._show)

    def _poll(self) -> None:
        if not self._status.running and not self._action.running:
            self.refresh()

    @param.depends("live", "interval", watch=True)
    def _restart_polling(self) -> None:
        ui.set_polling(self._poller, self.live, self.interval)

    def _show(self, glanced: list[Any]) -> None:
        found = [d for d, _ in glanced]
        with param.edit_constant(self):
            self.deployments = found
        rows = []
        for d, glance in glanced:
            state_kind = {"running": "ok", "starting": "info", "unhealthy": "warn"}.get(d.state, "drift")
            rows.append({
                "name": runs.deployment_link(d.name), "target": d.target, "model": d.model_name,
                "version": runs.version_link(d.model_name, d.model_version) if d.model_version else "-",
                "state": ui.badge(d.state, state_kind),
                "health": ui.badge("healthy" if d.healthy else "unhealthy", "ok" if d.healthy else "drift"),
                "policy": _titled(ui.badge(f"policy: {glance.policy}", _POLICY_KINDS[glance.policy]),
                                  glance.policy_detail),
                "alerts": _titled(ui.badge(glance.alerts, _ALERT_KINDS[glance.alerts]), glance.alerts_detail),
                "url": f'<a href="{html.escape(d.url)}" target="_blank">{html.escape(d.url)}</a>' if d.url else "-",
                "revision": d.revision,
                "challenger": f"v{d.challenger_version}" if d.challenger_uri else "-",
                "traffic": _traffic(d),
                "updated": ui.when(d.updated),
            })
        self._rows = pd.DataFrame(rows, columns=_COLUMNS)
        names = [d.name for d in found]
        self._actions.visible = bool(names)
        self.param.selected.objects = names
        if self.selected not in names:
            self.selected = names[0] if names else None  # redraws through the watcher when it changes
        self._show_selected()

    @param.depends("selected", watch=True)
    def _show_selected(self) -> None:
        found = next((d for d in self.deployments if d.name == self.selected), None)
        names = [d.name for d in self.deployments]
        self._table.object = ui.html_table(
            self._rows, html_columns=("name", "version", "state", "health", "policy", "alerts", "url"),
            empty="No deployments yet: pick a model and a target above and press Deploy",
            highlight=names.index(self.selected) if self.selected in names else None,
        )
        if found is None:
            self._url.object = ""
            return
        challenger = f", challenger v{found.challenger_version}" if found.challenger_uri else ""
        self._url.object = ui.facts({
            "deployment": ui.raw_html(f"<b>{html.escape(found.name)}</b> ({html.escape(found.target)}), "
                                      f"serving {html.escape(found.model_uri)}{html.escape(challenger)}"),
            "url": ui.raw_html(f'<a href="{html.escape(found.url)}" target="_blank">{html.escape(found.url)}</a>'
                               if found.url else "-"),
            "state": ui.raw_html(ui.badge(found.state, "ok" if found.state == "running" else "warn")
                                 + (f" {html.escape(found.detail)}" if found.detail else "")),
        })

    # -- actions ---------------------------------------------------------------------------------

    def deploy(self) -> bool:
        """Deploy ``model_uri`` to ``target`` as ``deployment_name``; returns ``False`` if an action is running."""
        uri, target, name = self.model_uri, self.target, self.deployment_name.strip() or None

        def work(job: Job[Any]) -> Any:
            if not uri:
                raise InvalidInputError("pick a model version to deploy first")

            def on_event(event: Any) -> None:  # image build steps of a docker deploy
                if event.kind == "step":
                    job.update(event.fraction, f"building image, step {event.step}/{event.total_steps}", force=True)

            job.update(None, f"starting {uri} on {target} and waiting until it is ready...", force=True)
            return wb.deploy(uri, target=target, name=name, on_event=on_event)

        return self._act(work, lambda d: f"deployed {d.name}: {d.url}", f"deploying {uri}...", select=True)

    def update(self) -> bool:
        """Serve ``model_uri`` in the ``selected`` deployment instead (the old version serves until the
        new one is ready)."""
        name, uri = self.selected, self.model_uri
        return self._act(lambda job: wb.update(self._need(name), self._need(uri, "a model version")),
                         lambda d: f"{d.name} now serves {d.model_uri}", f"updating {name} to {uri}...")

    def rollback(self) -> bool:
        """Serve again the version the ``selected`` deployment served before."""
        name = self.selected
        return self._act(lambda job: wb.rollback(self._need(name)),
                         lambda d: f"{d.name} rolled back to {d.model_uri}", f"rolling back {name}...")

    def stop(self) -> bool:
        """Stop the ``selected`` deployment and remove its record (its prediction log is kept)."""
        name = self.selected
        return self._act(lambda job: wb.stop(self._need(name)), lambda _: f"stopped {name}", f"stopping {name}...")

    def start_challenger(self) -> bool:
        """Serve ``model_uri`` beside the champion of ``selected`` (``share`` of traffic, ``shadow``, or
        shared by a bandit ``strategy``)."""
        name, uri, shadow = self.selected, self.model_uri, self.shadow
        bandit = self.strategy if self.strategy != "fixed share" else None
        share = None if bandit else self.share
        return self._act(
            lambda job: wb.start_challenger(self._need(name), self._need(uri, "a model version"), share=share,
                                            shadow=shadow, strategy=bandit),
            lambda d: f"{d.name}: challenger v{d.challenger_version} started", f"starting a challenger on {name}...")

    def promote(self) -> bool:
        """Make the challenger of ``selected`` its champion."""
        name = self.selected
        return self._act(lambda job: wb.promote(self._need(name)),
                         lambda d: f"{d.name}: v{d.model_version} promoted", f"promoting on {name}...")

    def abort(self) -> bool:
        """Stop the challenger of ``selected``; the champion takes all traffic again."""
        name = self.selected
        return self._act(lambda job: wb.abort(self._need(name)),
                         lambda d: f"{d.name}: challenger stopped", f"stopping the challenger of {name}...")

    def compare(self) -> bool:
        """Show champion and challenger of ``selected`` side by side (latency, errors, predictions, drift)."""
        name = self.selected

        def shown(comparison: Any) -> str:
            table = comparison.to_frame()
            self._comparison.value = table.astype(str).replace({"nan": "-", "None": "-"})
            self._comparison.visible = True
            return f"compared the versions of {name}"

        return self._act(lambda job: wb.compare_versions(self._need(name)), shown, f"comparing versions of {name}...",
                         refresh=False)

    def show_logs(self) -> bool:
        """Show the last lines the ``selected`` deployment's server wrote."""
        name = self.selected

        def shown(text: str) -> str:
            self._logs.object = text or "(no output yet)"
            self._logs.visible = True
            return f"last lines of {name}'s server log"

        return self._act(lambda job: wb.logs(self._need(name), tail=60), shown, f"reading the logs of {name}...",
                         refresh=False)

    def wait(self, timeout: float | None = 300) -> bool:
        """Block until the running action and status refresh are done (for scripts and tests)."""
        return self._action.wait(timeout) and self._status.wait(timeout)

    @staticmethod
    def _need(value: str | None, what: str = "a deployment") -> str:
        if not value:
            raise InvalidInputError(f"pick {what} first")
        return value

    def _act(self, work: Callable[[Job[Any]], Any], describe: Callable[[Any], str], message: str, *,
             select: bool = False, refresh: bool = True) -> bool:
        def done(result: Any) -> None:
            self._action.message = describe(result)
            if select and result is not None:
                self.selected = result.name
            if refresh:
                self.refresh()

        return self._action.start(work, done, message=message, exclusive=True)
