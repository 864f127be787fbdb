"""The workbench's one exception tree.

Every error the workbench raises is a :class:`WorkbenchError`; third-party errors (MLflow, Docker,
Kubernetes, SHAP, SQLite) are translated at the border with ``raise ... from exc`` so the original stays
in ``__cause__``. Each message says what went wrong and what to do next::

    WorkbenchError
    ├── ConfigurationError        settings or environment cannot work as given
    │   ├── StoreUnavailableError the tracking store cannot be opened or reached
    │   └── MissingDependencyError an optional extra is not installed
    ├── NotFoundError             (also a LookupError) something named does not exist
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── ModelNotFoundError    registered model, version or alias
    │   └── DeploymentNotFoundError
    ├── InvalidInputError         (also a ValueError) data or a request the workbench cannot accept
    │   ├── SchemaError           input that does not match a model signature
    │   ├── PayloadTooLargeError  a request over the server's byte or row limit (413)
    │   ├── UnsupportedMediaTypeError a body in a content type the route does not read (415)
    │   ├── CrossSiteRequestError a request a web page on another origin sent (403)
    │   └── CredentialsError      a request without the credential the route needs (401)
    ├── PackagingError            an image could not be built
    ├── DeploymentError           a deployment could not be created or changed
    │   ├── EngineUnavailableError no container engine or cluster answers
    │   ├── PortInUseError
    │   ├── NameTakenError
    │   └── HealthCheckError      a new deployment never became ready
    ├── PolicyViolationError      a governance check blocks the action
    ├── MonitoringError           drift or outlier analysis cannot run on what was given
    ├── ExplanationError          a model or payload cannot be explained
    ├── ReproductionError         a model cannot be re-trained from what was logged with it
    └── IntegrityError            a file stored with a model changed since log_model (or is missing)

Beside the tree, three warnings (not errors):

- :class:`PolicyAdvisory`: checks failed under a policy that only advises, so the action went ahead;
  the CLI prints it as ``advice: <message>``.
- :class:`MlflowCompatibilityWarning`: said at ``log_model`` when the workbench serves a model that
  MLflow's own scoring would refuse (and how to make MLflow take it too).
- :class:`DeploymentChangedWarning`: said when ``deploy`` (or ``start_challenger``) found the name
  already serving another version and updated it to the one asked for, as re-running a cell does.

The CLI prints ``str(error)`` and exits non-zero; the inference server and the Jupyter server routes map
:attr:`WorkbenchError.http_status` to their status codes.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CredentialsError",
    "CrossSiteRequestError",
    "DeploymentChangedWarning",
    "DeploymentError",
    "DeploymentNotFoundError",
    "EngineUnavailableError",
    "ExperimentNotFoundError",
    "ExplanationError",
    "HealthCheckError",
    "IntegrityError",
    "InvalidInputError",
    "MissingDependencyError",
    "MlflowCompatibilityWarning",
    "ModelNotFoundError",
    "MonitoringError",
    "NameTakenError",
    "NotFoundError",
    "PackagingError",
    "PayloadTooLargeError",
    "PolicyAdvisory",
    "PolicyViolationError",
    "PortInUseError",
    "ReproductionError",
    "RunNotFoundError",
    "SchemaError",
    "StoreUnavailableError",
    "UnsupportedMediaTypeError",
    "WorkbenchError",
]


class WorkbenchError(Exception):
    """Base of every error the workbench raises.

    ``http_status`` is the status an HTTP front end should answer with for this error.
    """

    http_status: int = 500


class ConfigurationError(WorkbenchError):
    """The settings or the environment cannot work as given."""

    http_status = 500


class StoreUnavailableError(ConfigurationError):
    """The MLflow tracking store cannot be opened (embedded) or reached (tracking server)."""

    http_status = 503


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is not installed; the message names the package or extra to install."""

    # Over HTTP this is a capability the server lacks, not a crash: 501 Not Implemented.
    http_status = 501

    def __init__(self, feature: str, package: str, extra: str | None = None, *, hint: str | None = None) -> None:
        install = f"pip install 'workbench[{extra}]'" if extra else f"pip install {package}"
        message = f"{feature} needs the package {package!r}, which is not installed: {install}"
        super().__init__(message + (f" ({hint})" if hint else ""))
        self.package = package


class NotFoundError(WorkbenchError, LookupError):
    """Something named by the caller does not exist."""

    http_status = 404


class ExperimentNotFoundError(NotFoundError):
    """No experiment has the given name or id."""


class RunNotFoundError(NotFoundError):
    """No run has the given id."""


class ModelNotFoundError(NotFoundError):
    """No registered model, version or alias matches the given name or URI."""


class DeploymentNotFoundError(NotFoundError):
    """No deployment record has the given name."""


class InvalidInputError(WorkbenchError, ValueError):
    """Data or a request the workbench cannot accept as given."""

    http_status = 400


class SchemaError(InvalidInputError):
    """Input that does not match the model signature (missing column, wrong type or shape)."""

    http_status = 422


class PayloadTooLargeError(InvalidInputError):
    """A request over the server's limit of bytes (``WORKBENCH_MAX_BODY_BYTES``) or rows
    (``WORKBENCH_MAX_ROWS``)."""

    http_status = 413


class UnsupportedMediaTypeError(InvalidInputError):
    """A request body in a content type the route does not read (JSON is required)."""

    http_status = 415


class CrossSiteRequestError(InvalidInputError):
    """A request that a web page on another origin sent (refused unless that origin is allowed)."""

    http_status = 403


class CredentialsError(InvalidInputError):
    """A request without the credential the route needs (a feedback token), or a wrong one (401)."""

    http_status = 401


class PackagingError(WorkbenchError):
    """An image could not be built; ``step`` and ``log_tail`` say where and why when known."""

    def __init__(self, message: str, *, step: str | None = None, log_tail: str | None = None) -> None:
        detail = message
        if step:
            detail += f"\nFailing step: {step}"
        if log_tail:
            detail += f"\nLast lines of the build log:\n{log_tail}"
        super().__init__(detail)
        self.step = step
        self.log_tail = log_tail


class DeploymentError(WorkbenchError):
    """A deployment could not be created, changed or removed."""

    http_status = 409


class EngineUnavailableError(DeploymentError):
    """No container engine or cluster answers."""

    http_status = 503


class PortInUseError(DeploymentError):
    """The requested port is already bound by another process."""


class NameTakenError(DeploymentError):
    """A deployment with this name already exists."""


class HealthCheckError(DeploymentError):
    """A new deployment never became ready; the previous one, if any, keeps serving."""

    http_status = 502


class PolicyViolationError(WorkbenchError):
    """A governance check failed; ``failures`` lists the checks that block the action."""

    http_status = 403

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class PolicyAdvisory(UserWarning):
    """A warning, not an error: governance checks failed under a policy that only advises (the
    defaults), so packaging or deploying went ahead; the message lists the failures and what to do."""


class MlflowCompatibilityWarning(UserWarning):
    """The workbench serves this model exactly, but MLflow's own scoring would refuse some of its
    inputs; the message names the columns and the cast that makes MLflow take them too."""


class DeploymentChangedWarning(UserWarning):
    """A warning, not an error: a deployment of the requested name already served another model
    version, so it was updated (behind the health gate) to serve the one asked for. Pass
    ``replace=False`` to be refused instead."""


class MonitoringError(WorkbenchError):
    """Drift, outlier or performance analysis cannot run on what was given."""

    http_status = 422


class ExplanationError(WorkbenchError):
    """A model or payload cannot be explained."""

    http_status = 422


class ReproductionError(WorkbenchError):
    """A model cannot be reproduced: it was logged without its code or its training data snapshot, or
    the captured code failed or never logged a model; the message says what to log next time."""

    http_status = 422


class IntegrityError(WorkbenchError):
    """A file the workbench stored with a model (model files, captured code, snapshot manifest,
    reference profile) is not what ``log_model`` recorded: it changed, or is missing. Nothing of it
    was loaded or run; the message names the file."""

    http_status = 409
