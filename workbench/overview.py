"""Deployments at a glance, for the sidebars and dashboards: health, policy verdict, alert state.

One :class:`DeploymentGlance` per deployment says what a row in the Lab sidebar or the
``Deployments`` widget shows: whether the servers answer, whether the version they serve passes the
policy in effect (``passes``, ``advisory``: checks fail but the policy only advises, ``blocked``),
and whether its live window drifted or its estimated accuracy fell (``ok``, ``drift``,
``performance``: a classifier's label-free accuracy estimate fell, ``drift and performance``, ``no
data`` before the first prediction). :func:`where_deployed` answers the other
way round: which deployments serve each version of a model.

A :class:`Glances` keeps one live monitor per deployment (drift is measured on each deployment's
newest predictions against the version's reference profile) and caches policy verdicts briefly, so
an app can ask every few seconds. Example::

    import workbench as wb
    glances = wb.Glances()
    [g.to_dict() for g in glances.of(wb.deployments())]
    wb.where_deployed("churn")            # {"3": ("churn-api (docker, champion)",)}

This module sits at the top of the core: it reads deployments, monitors and governance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from workbench.deployment import Deployment, deployments as list_deployments
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.monitor.live import AlertState

__all__ = ["DeploymentGlance", "Glances", "where_deployed"]

Health = Literal["healthy", "starting", "unhealthy"]
PolicyVerdict = Literal["passes", "advisory", "blocked", "unknown"]

#: Rows of a deployment's newest predictions the sidebar's drift test looks at.
GLANCE_WINDOW = 500


@dataclass(frozen=True)
class DeploymentGlance:
    """What one deployment's row shows at a glance."""

    name: str
    health: Health
    #: The policy verdict of the version the deployment serves.
    policy: PolicyVerdict
    #: The verdict in a sentence (the policy report's summary, or why it could not be read).
    policy_detail: str
    alerts: AlertState
    #: The alert state in a sentence (which features drifted, the accuracy estimate, ...).
    alerts_detail: str
    #: The last day in a sentence, from the window summaries kept beside the logs
    #: (:meth:`workbench.monitor.DriftHistory.headline`): rows, when drift began, how accuracy moved, events.
    history: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "health": self.health, "policy": self.policy, "policy_detail": self.policy_detail,
                "alerts": self.alerts, "alerts_detail": self.alerts_detail, "history": self.history}


def _health(deployment: Deployment) -> Health:
    if deployment.healthy:
        return "healthy"
    return "starting" if deployment.state == "starting" else "unhealthy"


class Glances:
    """Glances at deployments, with one live monitor per deployment kept between calls.

    ``policy_ttl`` is how long (seconds) a policy verdict is reused before the checks run again (a
    waiver or a new policy shows within that time); ``window`` is how many of the newest predictions
    the drift test looks at.
    """

    def __init__(self, *, policy_ttl: float = 30.0, window: int = GLANCE_WINDOW) -> None:
        self.policy_ttl = policy_ttl
        self.window = window
        self._lock = threading.Lock()
        self._verdicts: dict[str, tuple[float, PolicyVerdict, str]] = {}
        self._monitors: dict[str, tuple[str, tuple[str, ...], Any]] = {}
        self._histories: dict[str, tuple[float, str]] = {}

    def of(self, deployments: Sequence[Deployment]) -> list[DeploymentGlance]:
        """A glance at each of ``deployments`` (as :func:`workbench.deployments` returns them)."""
        with self._lock:
            live = {d.name for d in deployments}
            for gone in set(self._monitors) - live:
                del self._monitors[gone]
            for gone in set(self._histories) - live:
                del self._histories[gone]
            return [self._glance(d) for d in deployments]

    def _glance(self, deployment: Deployment) -> DeploymentGlance:
        policy, policy_detail = self._policy(deployment.model_uri)
        alerts, alerts_detail = self._alerts(deployment)
        return DeploymentGlance(deployment.name, _health(deployment), policy, policy_detail, alerts, alerts_detail,
                                self._history(deployment))

    def _history(self, deployment: Deployment) -> str:
        """The last day of the deployment in a sentence (read again after ``policy_ttl`` seconds)."""
        cached = self._histories.get(deployment.name)
        if cached is not None and time.monotonic() - cached[0] < self.policy_ttl:
            return cached[1]
        from workbench.monitor import drift_history

        try:
            text = drift_history(deployment, since="1d", every="1h").headline()
        except WorkbenchError as exc:
            text = f"the history cannot be read: {exc}"
        self._histories[deployment.name] = (time.monotonic(), text)
        return text

    def _policy(self, model_uri: str) -> tuple[PolicyVerdict, str]:
        cached = self._verdicts.get(model_uri)
        if cached is not None and time.monotonic() - cached[0] < self.policy_ttl:
            return cached[1], cached[2]
        from workbench.governance import check_policies

        try:
            report = check_policies(model_uri, stage="deploy")
            verdict: PolicyVerdict = report.verdict  # type: ignore[assignment]
            detail = report.summary()
        except WorkbenchError as exc:
            verdict, detail = "unknown", f"the policy checks could not run: {exc}"
        self._verdicts[model_uri] = (time.monotonic(), verdict, detail)
        return verdict, detail

    def _alerts(self, deployment: Deployment) -> tuple[AlertState, str]:
        if not deployment.healthy:
            return "unknown", "the deployment does not answer, so its predictions cannot be read"
        from workbench.monitor import LiveMonitor

        key = (deployment.model_uri, tuple(deployment.log_sources))
        kept = self._monitors.get(deployment.name)
        try:
            if kept is None or (kept[0], kept[1]) != key:
                # A new version (or new replicas) starts a new window against its own reference.
                monitor = LiveMonitor.for_deployment(deployment, window=self.window, multivariate_every=0,
                                                     estimate_accuracy=True)
                self._monitors[deployment.name] = (key[0], key[1], monitor)
            else:
                monitor = kept[2]
            monitor.update()
            report = monitor.latest
        except WorkbenchError as exc:
            return "unknown", f"drift cannot be measured: {exc}"
        verdict = monitor.verdict(report)
        return verdict.state, verdict.message


def where_deployed(model_name: str, deployments: Sequence[Deployment] | None = None) -> dict[str, tuple[str, ...]]:
    """Version -> the deployments serving it, as ``"NAME (TARGET, ROLE)"`` (ROLE ``serving``: it answers
    the deployment's requests; ``challenger``: it runs beside it); versions not deployed are absent.
    A deployment's served version is not the registry's ``@champion`` alias unless the deployment was
    made from that alias, so it is not called "champion" here. ``deployments`` defaults to :func:`workbench.deployments`."""
    found: dict[str, list[str]] = {}
    for d in list_deployments() if deployments is None else deployments:
        if d.model_name == model_name and d.model_version is not None:
            found.setdefault(d.model_version, []).append(f"{d.name} ({d.target}, serving)")
        if d.challenger_uri and d.challenger_version is not None and d.challenger_uri.startswith(
                f"models:/{model_name}/"):
            found.setdefault(d.challenger_version, []).append(f"{d.name} ({d.target}, challenger)")
    return {version: tuple(names) for version, names in found.items()}
