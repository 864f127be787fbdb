"""Workbench: from a trained model to a deployed, monitored, explained endpoint, in the notebook.

The public API is re-exported here and loaded lazily, so ``import workbench`` stays cheap (the
inference server inside a model image imports only what serving needs)::

    import workbench as wb

    with wb.start_run(experiment="churn"):
        model = RandomForestClassifier().fit(X, y)
        logged = wb.log_model(model, training_data=X, training_labels=y)
    version = wb.register(logged, "churn")
    wb.set_alias("churn", "champion", version.version)
    wb.load_model("models:/churn@champion").predict(X.head())

Settings: :func:`configure`, :func:`get_settings`. Errors: :mod:`workbench.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import attach

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # settings
    "Settings": "workbench.config",
    "configure": "workbench.config",
    "get_settings": "workbench.config",
    # tracking
    "Experiment": "workbench.tracking",
    "LoggedModel": "workbench.tracking",
    "RunSummary": "workbench.tracking",
    "autolog": "workbench.tracking",
    "best_run": "workbench.tracking",
    "compare_runs": "workbench.tracking",
    "experiments": "workbench.tracking",
    "get_experiment": "workbench.tracking",
    "get_run": "workbench.tracking",
    "log_model": "workbench.tracking",
    "metric_history": "workbench.tracking",
    "runs": "workbench.tracking",
    "start_run": "workbench.tracking",
    # registry
    "Lineage": "workbench.registry",
    "ModelVersion": "workbench.registry",
    "RegisteredModel": "workbench.registry",
    "delete_alias": "workbench.registry",
    "format_model_uri": "workbench.registry",
    "get_version": "workbench.registry",
    "lineage": "workbench.registry",
    "load_model": "workbench.registry",
    "load_profile": "workbench.registry",
    "models": "workbench.registry",
    "register": "workbench.registry",
    "resolve": "workbench.registry",
    "set_alias": "workbench.registry",
    "set_version_tag": "workbench.registry",
    "versions": "workbench.registry",
    "registered_version": "workbench.registry",
    # profiles
    "ReferenceProfile": "workbench.profile",
    # explaining
    "Explainer": "workbench.explain",
    "FeatureDependence": "workbench.explain",
    "GlobalExplanation": "workbench.explain",
    "ImportanceShift": "workbench.explain",
    "LocalExplanation": "workbench.explain",
    "explain_endpoint": "workbench.explain",
    "explain_global": "workbench.explain",
    "explain_live": "workbench.explain",
    "explain_local": "workbench.explain",
    "explain_shift": "workbench.explain",
    # monitoring
    "ConfidenceBasedEstimator": "workbench.monitor",
    "DriftReport": "workbench.monitor",
    "DriftSettings": "workbench.monitor",
    "LiveMonitor": "workbench.monitor",
    "MonitorReport": "workbench.monitor",
    "OutlierDetector": "workbench.monitor",
    "Window": "workbench.monitor",
    "check_quality": "workbench.monitor",
    "detect_drift": "workbench.monitor",
    "evaluate_performance": "workbench.monitor",
    "VersionComparison": "workbench.monitor",
    "compare_versions": "workbench.monitor",
    # the prediction log
    "FeedbackReport": "workbench.predlog",
    "LogRows": "workbench.predlog",
    "PredictionPage": "workbench.predlog",
    "recent_rows": "workbench.predlog",
    # the audit trail and the model card
    "AuditRecord": "workbench.audit",
    "audit_log": "workbench.audit",
    "ModelCard": "workbench.card",
    "model_card": "workbench.card",
    # governance
    "CheckResult": "workbench.governance",
    "FairnessReport": "workbench.governance",
    "Policy": "workbench.governance",
    "PolicyAdvisory": "workbench.governance",
    "PolicyReport": "workbench.governance",
    "Waiver": "workbench.governance",
    "check_policies": "workbench.governance",
    "enforce": "workbench.governance",
    "fairness_report": "workbench.governance",
    "init_policy": "workbench.governance",
    "list_waivers": "workbench.governance",
    "load_policy": "workbench.governance",
    "policy_path": "workbench.governance",
    "publish_policy": "workbench.governance",
    "waive": "workbench.governance",
    # what changed between two versions
    "DIFFERENCE_KINDS": "workbench.diff",
    "DIFF_COLUMNS": "workbench.diff",
    "Difference": "workbench.diff",
    "VersionDiff": "workbench.diff",
    "diff": "workbench.diff",
    # re-training a version from its captured code and data
    "ReproduceResult": "workbench.reproduction",
    "reproduce": "workbench.reproduction",
    "training_data": "workbench.reproduction",
    # at a glance
    "DeploymentGlance": "workbench.overview",
    "Glances": "workbench.overview",
    "where_deployed": "workbench.overview",
    # packaging
    "ImageRecord": "workbench.packaging",
    "package": "workbench.packaging",
    # closing the loop
    "Gate": "workbench.retrain",
    "RetrainLoop": "workbench.retrain",
    "retrain_on": "workbench.retrain",
    # deploying
    "Deployment": "workbench.deployment",
    "abort": "workbench.deployment",
    "deploy": "workbench.deployment",
    "deployment_history": "workbench.deployment",
    "deployments": "workbench.deployment",
    "get_deployment": "workbench.deployment",
    "log_feedback": "workbench.deployment",
    "logs": "workbench.deployment",
    "promote": "workbench.deployment",
    "rollback": "workbench.deployment",
    "set_traffic": "workbench.deployment",
    "start_challenger": "workbench.deployment",
    "stop": "workbench.deployment",
    "update": "workbench.deployment",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = attach(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from workbench.audit import AuditRecord, audit_log
    from workbench.card import ModelCard, model_card
    from workbench.config import Settings, configure, get_settings
    from workbench.deployment import (
        Deployment,
        abort,
        deploy,
        deployment_history,
        deployments,
        get_deployment,
        log_feedback,
        logs,
        promote,
        rollback,
        set_traffic,
        start_challenger,
        stop,
        update,
    )
    from workbench.diff import DIFF_COLUMNS, DIFFERENCE_KINDS, Difference, VersionDiff, diff
    from workbench.reproduction import ReproduceResult, reproduce, training_data
    from workbench.explain import (
        Explainer,
        FeatureDependence,
        GlobalExplanation,
        ImportanceShift,
        LocalExplanation,
        explain_endpoint,
        explain_global,
        explain_live,
        explain_local,
        explain_shift,
    )
    from workbench.governance import (
        CheckResult,
        FairnessReport,
        Policy,
        PolicyAdvisory,
        PolicyReport,
        Waiver,
        check_policies,
        enforce,
        fairness_report,
        init_policy,
        list_waivers,
        load_policy,
        policy_path,
        publish_policy,
        waive,
    )
    from workbench.monitor import (
        ConfidenceBasedEstimator,
        DriftReport,
        DriftSettings,
        LiveMonitor,
        MonitorReport,
        OutlierDetector,
        VersionComparison,
        Window,
        check_quality,
        compare_versions,
        detect_drift,
        evaluate_performance,
    )
    from workbench.overview import DeploymentGlance, Glances, where_deployed
    from workbench.packaging import ImageRecord, package
    from workbench.predlog import FeedbackReport, LogRows, PredictionPage, recent_rows
    from workbench.retrain import Gate, RetrainLoop, retrain_on
    from workbench.profile import ReferenceProfile
    from workbench.registry import (
        Lineage,
        ModelVersion,
        RegisteredModel,
        delete_alias,
        format_model_uri,
        get_version,
        lineage,
        load_model,
        load_profile,
        models,
        register,
        registered_version,
        resolve,
        set_alias,
        set_version_tag,
        versions,
    )
    from workbench.tracking import (
        Experiment,
        LoggedModel,
        RunSummary,
        autolog,
        best_run,
        compare_runs,
        experiments,
        get_experiment,
        get_run,
        log_model,
        metric_history,
        runs,
        start_run,
    )
