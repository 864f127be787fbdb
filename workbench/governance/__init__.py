"""Governance: policy checks before packaging and deploying, fairness and waivers.

The audit trail it writes to is :mod:`workbench.audit` (low, so everything may record to it); the
model card, a report that reads governance and the deployments, is :mod:`workbench.card`.

- Defaults advise, policies enforce: without a policy every check runs and is shown, nothing blocks;
  :func:`init_policy` writes an enforcing policy (the lending template) and :func:`publish_policy`
  makes a policy the team's, in effect for everyone on the tracking server.
- :func:`check_policies` / :func:`enforce`: the policy in effect (``<WORKBENCH_HOME>/policy.yaml``,
  format in :mod:`workbench.governance.policy`) checked on a model version: protected attributes as
  inputs, proxies of them, required metrics, signature and input example, lineage.
  :func:`enforce` raises :class:`~workbench.errors.PolicyViolationError` under an enforcing policy
  unless waivers cover the failures, and warns with a :class:`PolicyAdvisory` under an advisory one.
- :func:`waive`: a named person accepts one failing check for one version, with a reason.
- :func:`fairness_report`: group metrics and disparities across a sensitive attribute (fairlearn).

Example::

    import workbench as wb
    wb.check_policies("models:/credit@champion")
    wb.waive("models:/credit/3", "proxies", by="Dana Reyes (Model Risk)", reason="reviewed in MRM-114")
    wb.enforce("models:/credit/3", "deploy")
    wb.model_card("models:/credit/3").save("card.html")
    wb.audit_log(model="credit", since="7d")
"""

from __future__ import annotations

from workbench.governance.checks import CheckResult, PolicyAdvisory, PolicyReport, check_policies, enforce
from workbench.governance.fairness import FairnessReport, fairness_report, logged_fairness
from workbench.governance.policy import (
    CHECK_NAMES,
    DEFAULT_PROTECTED_ATTRIBUTES,
    POLICY_TEMPLATE,
    STAGES,
    TEAM_POLICY_TAG,
    MetricRule,
    Policy,
    init_policy,
    load_policy,
    policy_path,
    publish_policy,
    unpublish_policy,
)
from workbench.governance.proxies import Association, association, measure_proxies
from workbench.governance.waivers import ModelRef, Waiver, list_waivers, model_ref, waive

__all__ = [
    "CHECK_NAMES",
    "DEFAULT_PROTECTED_ATTRIBUTES",
    "POLICY_TEMPLATE",
    "STAGES",
    "TEAM_POLICY_TAG",
    "Association",
    "CheckResult",
    "FairnessReport",
    "MetricRule",
    "Policy",
    "PolicyAdvisory",
    "PolicyReport",
    "ModelRef",
    "Waiver",
    "association",
    "check_policies",
    "enforce",
    "fairness_report",
    "init_policy",
    "list_waivers",
    "load_policy",
    "logged_fairness",
    "measure_proxies",
    "model_ref",
    "policy_path",
    "publish_policy",
    "unpublish_policy",
    "waive",
]
