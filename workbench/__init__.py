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

Settings: :func:`configure`, :func:`get_settings`. Errors: the tree of :mod:`workbench.errors`, also
on ``wb`` (``wb.WorkbenchError``, ``wb.ModelNotFoundError``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import attach_typed

__version__ = "0.1.0"

# The public names are listed once: the imports of the TYPE_CHECKING block below, which type checkers
# and IDEs read, and which attach_typed reads to serve the same names lazily.
__getattr__, __dir__, __all__ = attach_typed(__name__, __file__)

# In a notebook kernel: MLflow and the warm server process get ready while the user works (see
# workbench.warmup; nothing starts anywhere else).
from workbench import warmup as _warmup  # noqa: E402

_warmup.start()


if TYPE_CHECKING:  # the one list of public names (read by attach_typed at run time, by type checkers here)
    from workbench.audit import AuditRecord, audit_log
    from workbench.card import ModelCard, model_card
    from workbench.config import Settings, configure, get_settings
    from workbench.deployment import (
        Deployment,
        TargetInfo,
        TargetOption,
        deploy_targets,
        get_target_info,
        target_help,
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
    from workbench.errors import (
        ConfigurationError,
        CrossSiteRequestError,
        DeploymentChangedWarning,
        DeploymentError,
        DeploymentNotFoundError,
        EngineUnavailableError,
        ExperimentNotFoundError,
        ExplanationError,
        HealthCheckError,
        InvalidInputError,
        MissingDependencyError,
        MlflowCompatibilityWarning,
        ModelNotFoundError,
        MonitoringError,
        NameTakenError,
        NotFoundError,
        PackagingError,
        PayloadTooLargeError,
        PolicyAdvisory,
        PolicyViolationError,
        PortInUseError,
        ReproductionError,
        RunNotFoundError,
        SchemaError,
        StoreUnavailableError,
        UnsupportedMediaTypeError,
        WorkbenchError,
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
        DriftHistory,
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
        drift_history,
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
        attach_profile,
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
        versions_of_run,
    )
    from workbench.tracking import (
        Experiment,
        LoggedModel,
        RunArtifact,
        RunSummary,
        autolog,
        best_run,
        compare_runs,
        experiments,
        get_experiment,
        get_run,
        log_model,
        log_values,
        metric_history,
        run_artifacts,
        run_models,
        runs,
        start_run,
    )
