"""Policy checks on a model version, and :func:`enforce` before packaging or deploying.

The checks (names as used in ``policy.yaml``, waivers and ``workbench check``):

- ``protected_inputs``: no model input (signature input name) is a protected attribute.
- ``proxies``: no input is strongly associated with a protected attribute present in the model's
  reference data (the profile sample); see :mod:`workbench.governance.proxies`.
- ``required_metrics``: the metrics of the version's run reach the policy's thresholds.
- ``signature``: the model's MLmodel file has a signature and an input example.
- ``lineage``: the version records its run, its training data's hash and (if required) git commit.

Example::

    import workbench as wb
    report = wb.check_policies("models:/credit@champion")    # PolicyReport; a table in a notebook
    wb.enforce("models:/credit/3", "deploy")                   # raises PolicyViolationError if blocked

Defaults advise, policies enforce: under the default policy a failing check is reported (and
:func:`enforce` warns with a :class:`PolicyAdvisory`) but blocks nothing; under an enforcing policy
(a workspace ``policy.yaml`` or the team's) it blocks until fixed or waived.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from workbench.audit.database import now_utc, transaction
from workbench.errors import (
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    PolicyAdvisory,
    PolicyViolationError,
)
from workbench.governance.policy import CHECK_NAMES, STAGES, Policy, Severity, load_policy
from workbench.governance.proxies import measure_proxies
from workbench.governance.waivers import ModelRef, Waiver, model_ref, waivers_for
from workbench.profile import ReferenceProfile
from workbench.serialize import jsonable

__all__ = ["CheckResult", "PolicyAdvisory", "PolicyReport", "check_policies", "enforce"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one policy check."""

    name: str
    passed: bool
    #: ``error``: a failure (it blocks packaging and deploying under an enforcing policy);
    #: ``warning``: only reported.
    severity: Severity
    #: What was found, and on failure what to do.
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    #: The waiver that lets this failed check pass, if one was recorded for this version.
    waiver: Waiver | None = None

    @property
    def status(self) -> str:
        """``passed``, ``waived``, ``warning`` (failed, not blocking) or ``failed`` (blocking)."""
        if self.passed:
            return "passed"
        if self.waiver is not None:
            return "waived"
        return "failed" if self.severity == "error" else "warning"

    @property
    def blocking(self) -> bool:
        """True when this result is a failure: it stops packaging and deploying under an enforcing
        policy (under the advisory default it is shown, and ``workbench check`` exits non-zero)."""
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "passed": self.passed, "status": self.status, "severity": self.severity,
                "message": self.message, "details": jsonable(self.details),
                "waiver": self.waiver.to_dict() if self.waiver else None}


@dataclass(frozen=True)
class PolicyReport:
    """Every policy check run on one model version."""

    model_uri: str
    model_name: str
    model_version: str | None
    #: ``package``, ``deploy``, or ``None`` for every check (``workbench check``).
    stage: str | None
    checks: tuple[CheckResult, ...]
    #: The policy file the checks followed (``None``: the defaults).
    policy_source: str | None
    checked_at: pd.Timestamp
    #: True when the policy enforces (failures block); False under the advisory defaults.
    enforced: bool = False

    @property
    def passed(self) -> bool:
        """True when no check fails (failures are waived or only warnings), whether or not enforced."""
        return not self.failures

    @property
    def blocked(self) -> bool:
        """True when packaging and deploying are refused: checks fail and the policy enforces."""
        return self.enforced and not self.passed

    @property
    def failures(self) -> list[CheckResult]:
        """The failed checks: severity ``error``, not waived (they block under an enforcing policy)."""
        return [c for c in self.checks if c.blocking]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed checks that only warn."""
        return [c for c in self.checks if c.status == "warning"]

    def __getitem__(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r} in this report; checks run: {[c.name for c in self.checks]}")

    @property
    def verdict(self) -> str:
        """``passes``, ``advisory`` (checks fail, the policy only advises) or ``blocked``: what a badge
        shows."""
        if self.passed:
            return "passes"
        return "blocked" if self.enforced else "advisory"

    def summary(self) -> str:
        """One line: the verdict."""
        counts = Counter(c.status for c in self.checks)
        parts = ", ".join(f"{counts[s]} {s}" for s in ("passed", "waived", "warning", "failed") if s in counts)
        verdict = {"passes": "passes", "blocked": "is blocked",
                   "advisory": "has failing checks; the policy only advises, nothing is blocked"}[self.verdict]
        what = f"{self.model_name} version {self.model_version}" if self.model_version else self.model_uri
        return f"{what} {verdict} ({parts or 'no checks'})"

    def advice(self) -> str:
        """What the failures mean and what to do, one line per failed check (empty when it passes)."""
        if self.passed:
            return ""
        lines = "\n".join(f"  - {c.name}: {c.message}" for c in self.failures)
        if self.enforced:
            tail = (f"Fix the model and register a new version, or have a responsible person accept a failure: "
                    f"`workbench waive {self.model_uri} CHECK --by NAME --reason TEXT`.")
        else:
            tail = ("Nothing is blocked: no policy enforces in this workspace. If these checks matter to your team, "
                    "`workbench policy --init` writes an enforcing policy (lending template) to adapt.")
        return f"policy advice for {self.model_uri} ({len(self.failures)} failing check(s)):\n{lines}\n{tail}"

    def reminder(self, shown: str) -> str:
        """One line for failing checks already shown in full (on ``shown``, a UTC time): which they
        are, and how to see them again."""
        names = ", ".join(c.name for c in self.failures)
        count = len(self.failures)
        return (f"{self.model_uri} still has {count} failing check{'s' if count != 1 else ''} ({names}), "
                f"shown in full on {shown[:16].replace('T', ' ')} UTC; `workbench check {self.model_uri}` "
                f"shows them again")

    def to_frame(self) -> pd.DataFrame:
        """One row per check: check, status, passed, severity, message, waiver."""
        return pd.DataFrame(
            [{"check": c.name, "status": c.status, "passed": c.passed, "severity": c.severity,
              "message": c.message, "waiver": c.waiver.describe() if c.waiver else None} for c in self.checks],
            columns=["check", "status", "passed", "severity", "message", "waiver"],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"model_uri": self.model_uri, "model_name": self.model_name, "model_version": self.model_version,
                "stage": self.stage, "passed": self.passed, "enforced": self.enforced, "blocked": self.blocked,
                "verdict": self.verdict, "summary": self.summary(),
                "policy_source": self.policy_source, "checked_at": self.checked_at.isoformat(),
                "checks": [c.to_dict() for c in self.checks]}

    def _repr_html_(self) -> str:
        table = self.to_frame().to_html(index=False, na_rep="", escape=True)
        return f"<div><strong>PolicyReport</strong>: {html.escape(self.summary())}{table}</div>"


class _Facts:
    """What the checks read about a model, each fetched once and only when a check needs it."""

    def __init__(self, ref: ModelRef) -> None:
        self.ref = ref

    @functools.cached_property
    def model_info(self) -> Any:
        from mlflow.models import get_model_info

        from workbench import _mlflow

        _mlflow.ensure_ready()
        # Reads only the MLmodel file, not the model's weights.
        with _mlflow.translated(ModelNotFoundError, f"model {self.ref.uri!r}"):
            return get_model_info(self.ref.uri)

    @functools.cached_property
    def inputs(self) -> list[str] | None:
        signature = self.model_info.signature
        if signature is None or signature.inputs is None:
            return None
        names = signature.inputs.input_names()
        return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None

    @functools.cached_property
    def profile(self) -> ReferenceProfile | None:
        from workbench.registry import load_profile

        try:
            return load_profile(self.ref.uri)
        except (NotFoundError, InvalidInputError):
            return None

    @functools.cached_property
    def lineage(self) -> dict[str, Any]:
        """run_id, data_hash, git_commit and the run's metrics, for registered and logged models."""
        from workbench.tracking import TAG_DATA_HASH, TAG_GIT_COMMIT, get_run

        if self.ref.version is not None:
            from workbench.registry import lineage

            found = lineage(self.ref.uri)
            return {"run_id": found.run_id, "data_hash": found.data_hash, "git_commit": found.git_commit,
                    "metrics": dict(found.metrics)}
        from workbench.registry import _find_logged_model  # the registry's one way to find a logged model

        logged = None if ":/" not in self.ref.uri else _find_logged_model(self.ref.uri)
        if logged is None:
            return {"run_id": None, "data_hash": None, "git_commit": None, "metrics": {}}
        tags = dict(logged.tags or {})
        run_id = logged.source_run_id
        metrics: dict[str, float] = {}
        if run_id:
            try:
                metrics = dict(get_run(run_id).metrics)
            except NotFoundError:
                pass
        return {"run_id": run_id, "data_hash": tags.get(TAG_DATA_HASH), "git_commit": tags.get(TAG_GIT_COMMIT),
                "metrics": metrics}


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _check_protected_inputs(facts: _Facts, policy: Policy) -> tuple[bool, str, dict[str, Any]]:
    inputs = facts.inputs
    source = "signature"
    if inputs is None and facts.profile is not None:
        inputs, source = facts.profile.feature_names, "reference profile"
    if inputs is None:
        return False, ("cannot tell the model's inputs: it has no signature with named inputs and no reference "
                       "profile; log it with workbench.log_model(model, training_data=X)"), {}
    found = {name: attr for name in inputs if (attr := policy.protected_attribute_of(name)) is not None}
    details = {"inputs_checked": len(inputs), "inputs_from": source, "protected_inputs": found}
    if not found:
        return True, f"none of the {len(inputs)} inputs is a protected attribute", details
    listed = ", ".join(f"{name!r} ({attr})" for name, attr in found.items())
    return False, (
        f"protected attribute(s) used as model inputs: {listed}. Fit the model on the other columns and log "
        "it with workbench.log_model(model, training_data=X.drop(columns=[...]), sensitive_features="
        "X[[...]]): they are then profiled for fairness and proxy checks but never model inputs"
    ), details


def _check_proxies(facts: _Facts, policy: Policy) -> tuple[bool, str, dict[str, Any]]:
    profile = facts.profile
    threshold = policy.proxy_threshold
    if profile is None:
        return False, ("cannot measure proxies: the model has no reference profile; log it with "
                       "workbench.log_model(model, training_data=X) including the protected columns"), {}
    sample = profile.sample
    columns = [str(c) for c in sample.columns if c != profile.target]
    protected = [(c, a) for c in columns if (a := policy.protected_attribute_of(c)) is not None]
    protected_names = {c for c, _ in protected}
    inputs = facts.inputs if facts.inputs is not None else profile.feature_names
    features = [f for f in inputs if f in sample.columns and f not in protected_names]
    details: dict[str, Any] = {"threshold": threshold, "protected_columns": dict(protected), "proxies": [],
                               "measured": []}
    if not protected:
        return True, ("no protected attribute in the reference data, so there is nothing to measure proxies "
                      "against (keep protected columns in training_data to measure them)"), details
    measured = measure_proxies(sample, features, protected, min_rows=policy.proxy_min_rows,
                               max_levels=policy.proxy_max_levels)
    flagged = [m for m in measured if m.value is not None and m.value >= threshold]
    details["measured"] = [m.to_dict() for m in measured]
    details["proxies"] = [m.to_dict() for m in flagged]
    details["rows"] = len(sample)
    if not flagged:
        strongest = max((m for m in measured if m.value is not None), key=lambda m: m.value or 0.0, default=None)
        top = (f"; strongest: {strongest.feature!r} ~ {strongest.protected!r} {strongest.value:.2f}"
               if strongest else "")
        return True, (f"no input reaches association {threshold:g} with {_quoted(sorted(protected_names))} "
                      f"in {len(sample)} reference rows{top}"), details
    listed = ", ".join(f"{m.feature!r} ~ {m.protected!r} ({m.measure} {m.value:.2f})" for m in flagged)
    return False, (
        f"input(s) strongly associated with a protected attribute (>= {threshold:g}): {listed}. Drop or "
        "transform them, or have the association reviewed and record a waiver"
    ), details


def _check_required_metrics(facts: _Facts, policy: Policy) -> tuple[bool, str, dict[str, Any]]:
    rules = policy.required_metrics
    if not rules:
        return True, "no metric thresholds are configured (checks.required_metrics.metrics in policy.yaml)", {}
    lineage = facts.lineage
    metrics: Mapping[str, float] = lineage["metrics"]
    rows = []
    for rule in rules:
        value = metrics.get(rule.name)
        rows.append({"metric": rule.name, "rule": rule.describe(), "value": value,
                     "passed": value is not None and rule.holds(float(value))})
    details = {"run_id": lineage["run_id"], "metrics": rows}
    bad = [r for r in rows if not r["passed"]]
    if not bad:
        shown = ", ".join(f"{r['metric']} = {r['value']:.4g}" for r in rows)
        return True, f"all required metrics reach their thresholds ({shown})", details
    if lineage["run_id"] is None:
        return False, ("the model has no run, so its metrics cannot be read: log and register it from a run "
                       "(workbench.start_run, workbench.log_model, workbench.register)"), details
    problems = "; ".join(
        f"{r['metric']} = {r['value']:.4g} does not meet {r['rule']}" if r["value"] is not None
        else f"{r['metric']} was not logged on run {lineage['run_id']} (needed: {r['rule']})"
        for r in bad
    )
    return False, f"{problems}. Improve the model, or log the missing metrics with mlflow.log_metric", details


def _check_signature(facts: _Facts, policy: Policy) -> tuple[bool, str, dict[str, Any]]:
    info = facts.model_info
    has_signature = info.signature is not None
    has_example = info.saved_input_example_info is not None
    details = {"signature": has_signature, "input_example": has_example,
               "inputs": facts.inputs if has_signature else None}
    missing = [what for what, present, needed in (("signature", has_signature, True),
                                                   ("input example", has_example, policy.require_input_example))
               if needed and not present]
    if not missing:
        what = "a signature and an input example" if has_example else "a signature"
        return True, f"the model has {what}", details
    return False, (
        f"the model has no {' and no '.join(missing)}: log it with workbench.log_model(model, training_data=X), "
        "which infers both (or give signature= and input_example=)"
    ), details


def _check_lineage(facts: _Facts, policy: Policy) -> tuple[bool, str, dict[str, Any]]:
    found = facts.lineage
    required = [("run_id", policy.require_run_id), ("data_hash", policy.require_data_hash),
                ("git_commit", policy.require_git_commit)]
    details = {k: found[k] for k in ("run_id", "data_hash", "git_commit")}
    missing = [key for key, needed in required if needed and not found[key]]
    details["missing"] = missing
    if not missing:
        have = ", ".join(f"{k} {str(found[k])[:12]}" for k, needed in required if needed)
        return True, f"lineage is complete ({have})" if have else "no lineage is required", details
    advice = {
        "run_id": "log the model inside workbench.start_run(...) and register it from there",
        "data_hash": "log it with workbench.log_model(model, training_data=X) so the data is hashed",
        "git_commit": "train from a committed git checkout so the commit is recorded",
    }
    return False, "lineage incomplete: no " + "; no ".join(f"{k} ({advice[k]})" for k in missing), details


_CHECKS = {
    "protected_inputs": _check_protected_inputs,
    "proxies": _check_proxies,
    "required_metrics": _check_required_metrics,
    "signature": _check_signature,
    "lineage": _check_lineage,
}


def check_policies(model_uri: str, *, stage: str | None = None, policy: Policy | None = None) -> PolicyReport:
    """Run the policy's checks on the version ``model_uri`` names (an alias is resolved now).

    ``stage`` (``package`` or ``deploy``) runs the checks the policy enforces before that stage;
    without it every check runs. ``policy`` defaults to the workspace's (:func:`load_policy`).
    Recorded waivers for this version are applied: a waived failure no longer blocks.
    """
    if stage is not None and stage not in STAGES:
        raise InvalidInputError(f"stage {stage!r} is not one of {list(STAGES)}")
    policy = policy or load_policy()
    ref = model_ref(model_uri)
    facts = _Facts(ref)
    names = policy.stages[stage] if stage is not None else CHECK_NAMES
    waived = waivers_for(ref)
    results = []
    for name in names:
        severity = policy.severity(name)
        if severity == "off":
            continue
        passed, message, details = _CHECKS[name](facts, policy)
        waiver = waived.get(name) if not passed else None
        results.append(CheckResult(name, passed, severity, message, MappingProxyType(details), waiver))
    return PolicyReport(
        model_uri=ref.uri, model_name=ref.name, model_version=ref.version, stage=stage, checks=tuple(results),
        policy_source=str(policy.source) if policy.source else None,
        checked_at=pd.Timestamp(_dt.datetime.now(_dt.UTC)), enforced=policy.enforcing,
    )


def _advised_before(report: PolicyReport) -> str | None:
    """When these failing checks of this version were first shown in full (UTC, ISO 8601), or
    ``None`` when this is the first time (recorded now, so the next package or deploy only reminds)."""
    key = f"{report.model_name}/{report.model_version}" if report.model_version else report.model_uri
    checks = ",".join(sorted(c.name for c in report.failures))
    with transaction() as conn:
        row = conn.execute("SELECT ts FROM advice WHERE model_key = ? AND checks = ?", (key, checks)).fetchone()
        if row is not None:
            return str(row[0])
        conn.execute("INSERT INTO advice (model_key, checks, ts) VALUES (?, ?, ?)", (key, checks, now_utc()))
    return None


def enforce(model_uri: str, stage: str) -> PolicyReport:
    """Check ``model_uri`` before ``stage`` (``package`` or ``deploy``) and return the report.

    Under an enforcing policy, failing checks that no waiver covers raise
    :class:`~workbench.errors.PolicyViolationError` listing them and what to do. Under the advisory
    defaults they are shown as a :class:`PolicyAdvisory` warning and the model goes ahead: in full
    the first time for a version (and set of failing checks), as a one-line reminder afterwards.
    """
    if stage not in STAGES:
        raise InvalidInputError(f"stage {stage!r} is not one of {list(STAGES)}")
    report = check_policies(model_uri, stage=stage)
    failures = report.failures
    if failures and not report.enforced:
        shown = _advised_before(report)
        warnings.warn(report.advice() if shown is None else report.reminder(shown), PolicyAdvisory, stacklevel=2)
    elif failures:
        lines = "\n".join(f"  - {c.name}: {c.message}" for c in failures)
        uri = report.model_uri
        raise PolicyViolationError(
            f"policy blocks {stage} of {uri} ({len(failures)} failing check(s)):\n{lines}\n"
            f"Fix the model and register a new version, or have a responsible person accept a failure: "
            f"`workbench waive {uri} CHECK --by NAME --reason TEXT` (workbench.waive({uri!r}, CHECK, by=..., "
            f"reason=...)). See every check with `workbench check {uri}`.",
            failures=[c.name for c in failures],
        )
    return report
