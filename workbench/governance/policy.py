"""The project's governance policy: which checks run, how strict they are, what counts as protected.

Defaults advise, policies enforce. Without a policy every check still runs and is shown (by
``workbench check``, ``package`` and ``deploy``, the widgets, the Lab sidebar and the model card), but
nothing is blocked: a first-time user is never stopped by a rule they did not choose (a species
classifier may well use ``sex``; a diabetes model, ``age``). A team turns the checks into a gate with a
policy, which enforces by default. The policy in effect is, first found:

1. the team's policy on the tracking server (``workbench policy --publish`` stores the workspace's
   file as the tag ``workbench.policy`` of the Default experiment), which enforces for everyone who
   uses that server;
2. the workspace's ``<WORKBENCH_HOME>/policy.yaml`` (``workbench policy --init`` writes
   :data:`POLICY_TEMPLATE`, the lending template of protected attributes and proxies, enforcing);
3. the advisory defaults, ``Policy()``.

Every key is optional; a key the workbench does not know is an error, so a typo cannot silently
weaken a policy. The format::

    mode: enforce                  # enforce: failing checks block package/deploy; advise: shown only
    checks:
      protected_inputs:            # protected attributes must not be model inputs
        severity: error            # error: a failure (blocks under mode enforce); warning: reported only;
                                   #   off: not run
      proxies:                     # inputs strongly associated with a protected attribute in the
        severity: warning          #   reference data (the profile sample) are flagged as proxies
        threshold: 0.5             # association (0..1) at or above which an input is a proxy
        min_rows: 30               # fewer complete rows than this: the pair is not measured
        max_levels: 50             # categorical columns with more levels are not measured
      required_metrics:            # metrics of the version's run that must reach thresholds
        severity: error
        metrics:
          accuracy: {min: 0.8}     # or just `accuracy: 0.8` (a minimum)
          rmse: {max: 12.5}
      signature:                   # the model's MLmodel file has a signature
        severity: error
        input_example: true        # ...and an input example
      lineage:                     # the version records where it came from
        severity: error
        run_id: true
        data_hash: true
        git_commit: false
    stages:                        # which checks `enforce` runs before each stage (default: all)
      package: [protected_inputs, proxies, required_metrics, signature, lineage]
      deploy: [protected_inputs, proxies, required_metrics, signature, lineage]
    protected_attributes:
      add:                         # new attributes, or more column names for a known one
        caste: [caste, jati]
        sex: [geschlecht]
      remove: [age]                # attributes this project may use (e.g. where the law allows age)

Protected attribute names are matched case-insensitively against the model's input names, after
normalising ``CamelCase``, spaces and punctuation to ``snake_case``: ``MaritalStatus``,
``marital-status`` and ``MARITAL_STATUS`` all match ``marital_status``. One-hot columns such as
``sex_male`` or ``race=white`` match too, except for ``age`` (``age_of_vehicle`` is not a person's age).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from workbench.config import get_settings, redact_uri
from workbench.errors import ConfigurationError

__all__ = [
    "CHECK_NAMES",
    "DEFAULT_PROTECTED_ATTRIBUTES",
    "POLICY_FILE",
    "POLICY_TEMPLATE",
    "STAGES",
    "MetricRule",
    "Policy",
    "Severity",
    "TEAM_POLICY_TAG",
    "init_policy",
    "load_policy",
    "normalize_name",
    "policy_path",
    "publish_policy",
    "unpublish_policy",
]

Severity = Literal["error", "warning", "off"]
_SEVERITIES = ("error", "warning", "off")

#: The checks, in the order they run and are reported.
CHECK_NAMES: tuple[str, ...] = ("protected_inputs", "proxies", "required_metrics", "signature", "lineage")
#: The stages :func:`workbench.governance.enforce` guards.
STAGES: tuple[str, ...] = ("package", "deploy")
POLICY_FILE = "policy.yaml"
#: The tag of the tracking server's Default experiment that holds the team's policy (YAML text).
TEAM_POLICY_TAG = "workbench.policy"
_MODES = ("enforce", "advise")

#: Protected attributes (grounds of discrimination in US, EU and UK law) and the column names that
#: commonly hold them, already normalised (see :func:`normalize_name`).
DEFAULT_PROTECTED_ATTRIBUTES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "race": ("race", "races", "racial_group", "race_ethnicity", "skin_color", "skin_colour", "colour_of_skin"),
    "ethnicity": ("ethnicity", "ethnic", "ethnic_group", "ethnic_origin", "ethnic_background", "hispanic",
                  "latino", "is_hispanic"),
    "sex": ("sex", "is_male", "is_female", "male", "female", "biological_sex"),
    "gender": ("gender", "gender_identity"),
    "age": ("age", "age_years", "age_in_years", "age_group", "age_band", "age_bracket", "age_bucket",
            "dob", "date_of_birth", "birth_date", "birthdate", "birthday", "birth_year", "year_of_birth"),
    "marital_status": ("marital_status", "marital", "married", "is_married", "marriage_status", "civil_status",
                       "relationship_status"),
    "national_origin": ("national_origin", "nationality", "citizenship", "country_of_birth", "birth_country",
                        "place_of_birth", "birthplace", "native_country", "country_of_origin",
                        "immigration_status"),
    "religion": ("religion", "religious_affiliation", "religious_belief", "faith"),
    # Not "disabled" / "is_disabled": too often an account or feature flag.
    "disability": ("disability", "disability_status", "has_disability", "handicap", "handicapped"),
    "pregnancy": ("pregnancy", "pregnant", "is_pregnant", "pregnancy_status", "maternity"),
    "sexual_orientation": ("sexual_orientation",),
    "genetic_information": ("genetic_information", "genetic_info"),
    "veteran_status": ("veteran", "veteran_status", "is_veteran", "military_status"),
    "familial_status": ("familial_status", "family_status"),
})

#: Attributes whose names are too common a prefix to match one-hot columns by (``age_of_vehicle``).
_NO_ONE_HOT = frozenset({"age"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize_name(name: str) -> str:
    """A column name in lower ``snake_case``: ``"MaritalStatus"`` and ``"marital status"`` ->
    ``"marital_status"``."""
    return _NON_WORD.sub("_", _CAMEL.sub("_", str(name)).lower()).strip("_")


@dataclass(frozen=True)
class MetricRule:
    """A required metric: the value must be at least ``min`` and at most ``max`` (either may be None)."""

    name: str
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        """``accuracy >= 0.8``, ``rmse <= 12.5`` or ``0.1 <= x <= 0.9``."""
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.name} <= {self.max:g}"
        if self.min is not None:
            return f"{self.name} >= {self.min:g}"
        return f"{self.name} <= {self.max:g}"

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the rule (NaN never does)."""
        if value != value:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class Policy:
    """A governance policy; :func:`load_policy` reads the one in effect, ``Policy()`` is the default.

    ``Policy()`` advises (``enforcing=False``): its checks run and failures are shown, nothing blocks.
    A policy read from a file or the team's tag enforces unless it says ``mode: advise``.
    """

    #: attribute -> the normalised column names that hold it.
    protected_attributes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_PROTECTED_ATTRIBUTES)
    #: check name -> severity (``error`` blocks, ``warning`` reports, ``off`` skips).
    severities: Mapping[str, Severity] = field(default_factory=lambda: MappingProxyType({
        "protected_inputs": "error", "proxies": "warning", "required_metrics": "error",
        "signature": "error", "lineage": "error",
    }))
    proxy_threshold: float = 0.5
    proxy_min_rows: int = 30
    proxy_max_levels: int = 50
    required_metrics: tuple[MetricRule, ...] = ()
    require_input_example: bool = True
    require_run_id: bool = True
    require_data_hash: bool = True
    require_git_commit: bool = False
    #: stage -> the checks enforced before it.
    stages: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType(
        {stage: CHECK_NAMES for stage in STAGES}))
    #: True: failing checks (severity ``error``, not waived) block packaging and deploying.
    enforcing: bool = False
    #: Where this policy was read from (a file, or ``tag workbench.policy on <tracking URI>``);
    #: ``None`` for the defaults.
    source: Path | str | None = None

    def severity(self, check: str) -> Severity:
        """The severity of ``check`` under this policy."""
        return self.severities.get(check, "error")

    def protected_attribute_of(self, column: str) -> str | None:
        """The protected attribute a column name stands for (``"MaritalStatus"`` -> ``marital_status``),
        or ``None``."""
        name = normalize_name(column)
        for attribute, synonyms in self.protected_attributes.items():
            if name in synonyms:
                return attribute
        for attribute, synonyms in self.protected_attributes.items():
            if attribute in _NO_ONE_HOT:
                continue
            if any(name.startswith(s + "_") for s in synonyms):  # one-hot: sex_male, race_white
                return attribute
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the effective policy, defaults filled in)."""
        return {
            "source": str(self.source) if self.source else None,
            "mode": "enforce" if self.enforcing else "advise",
            "checks": {
                "protected_inputs": {"severity": self.severity("protected_inputs")},
                "proxies": {"severity": self.severity("proxies"), "threshold": self.proxy_threshold,
                            "min_rows": self.proxy_min_rows, "max_levels": self.proxy_max_levels},
                "required_metrics": {
                    "severity": self.severity("required_metrics"),
                    "metrics": {r.name: {k: v for k, v in (("min", r.min), ("max", r.max)) if v is not None}
                                for r in self.required_metrics},
                },
                "signature": {"severity": self.severity("signature"), "input_example": self.require_input_example},
                "lineage": {"severity": self.severity("lineage"), "run_id": self.require_run_id,
                            "data_hash": self.require_data_hash, "git_commit": self.require_git_commit},
            },
            "stages": {k: list(v) for k, v in self.stages.items()},
            "protected_attributes": {k: list(v) for k, v in self.protected_attributes.items()},
        }


POLICY_TEMPLATE = """\
# Workbench governance policy: checked by `workbench check`, and before packaging and deploying.
# This is the lending template: the protected attributes of fair-lending law (US ECOA and Fair
# Housing Act, EU and UK equality law) must not be inputs, and inputs that stand in for them (proxies)
# are flagged. Adapt it to your domain: in biology or medicine `sex` and `age` are often the signal
# (list them under protected_attributes.remove). Every key is optional; unknown keys are errors.
mode: enforce              # enforce: failing checks block package/deploy; advise: they are only shown
checks:
  protected_inputs:        # protected attributes must not be model inputs
    severity: error        # error: a failure (blocks under mode enforce); warning: reported; off: not run
  proxies:                 # inputs strongly associated with a protected attribute in the reference data
    severity: warning
    threshold: 0.5         # Cramer's V / correlation ratio / |point-biserial| / |Spearman|, 0..1
    min_rows: 30
    max_levels: 50
  required_metrics:        # metrics of the version's run; e.g. accuracy: {min: 0.8}, rmse: {max: 12.5}
    severity: error
    metrics: {}
  signature:               # the model has a signature (and an input example)
    severity: error
    input_example: true
  lineage:                 # the version records its run, training data hash (and git commit)
    severity: error
    run_id: true
    data_hash: true
    git_commit: false
stages:                    # the checks enforced before each stage
  package: [protected_inputs, proxies, required_metrics, signature, lineage]
  deploy: [protected_inputs, proxies, required_metrics, signature, lineage]
protected_attributes:
  add: {}                  # e.g. {caste: [caste, jati], sex: [geschlecht]}
  remove: []               # e.g. [age]
"""


def policy_path() -> Path:
    """Where the workspace's policy file is (it may not exist)."""
    return get_settings().home / POLICY_FILE


def _fail(path: Path | str, where: str, problem: str) -> ConfigurationError:
    if isinstance(path, Path):
        fix = ("Fix the file (`workbench policy --init` writes a commented template to compare with), or move "
               "it away to use the advisory defaults")
    else:
        fix = "Fix the team's policy file and publish it again: `workbench policy --publish FILE`"
    return ConfigurationError(f"{path}: {where}: {problem}. {fix}")


def _mapping(value: Any, path: Path | str, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, where, f"expected a mapping, got {type(value).__name__}")
    return value


def _known(section: Mapping[str, Any], keys: Sequence[str], path: Path | str, where: str) -> None:
    unknown = sorted(set(map(str, section)) - set(keys))
    if unknown:
        raise _fail(path, where, f"unknown key(s) {unknown}; known: {sorted(keys)}")


def _number(value: Any, path: Path | str, where: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, where, f"expected a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(path, where, f"{value!r} is outside [{low}, {high}]")
    return float(value)


def _flag(value: Any, path: Path | str, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, where, f"expected true or false, got {value!r}")
    return value


def _names(value: Any, path: Path | str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, where, "expected a list of names")
    return tuple(value)


def _metric_rules(value: Any, path: Path | str) -> tuple[MetricRule, ...]:
    rules = []
    for name, spec in _mapping(value, path, "checks.required_metrics.metrics").items():
        where = f"checks.required_metrics.metrics.{name}"
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            rules.append(MetricRule(str(name), min=float(spec)))
            continue
        spec = _mapping(spec, path, where)
        _known(spec, ("min", "max"), path, where)
        low = _number(spec["min"], path, f"{where}.min") if spec.get("min") is not None else None
        high = _number(spec["max"], path, f"{where}.max") if spec.get("max") is not None else None
        if low is None and high is None:
            raise _fail(path, where, "give min, max or both")
        if low is not None and high is not None and low > high:
            raise _fail(path, where, f"min {low} is above max {high}")
        rules.append(MetricRule(str(name), min=low, max=high))
    return tuple(rules)


def _parse(raw: Any, path: Path | str) -> Policy:
    top = _mapping(raw, path, "top level")
    _known(top, ("mode", "checks", "stages", "protected_attributes"), path, "top level")
    mode = top.get("mode", "enforce")
    if mode not in _MODES:
        raise _fail(path, "mode", f"{mode!r} is not one of {_MODES}")
    default = Policy()
    severities = dict(default.severities)
    checks = _mapping(top.get("checks"), path, "checks")
    _known(checks, CHECK_NAMES, path, "checks")
    options: dict[str, Any] = {}
    extra_keys = {
        "protected_inputs": (), "proxies": ("threshold", "min_rows", "max_levels"), "required_metrics": ("metrics",),
        "signature": ("input_example",), "lineage": ("run_id", "data_hash", "git_commit"),
    }
    for check in CHECK_NAMES:
        section = _mapping(checks.get(check), path, f"checks.{check}")
        _known(section, ("severity", *extra_keys[check]), path, f"checks.{check}")
        if "severity" in section:
            if section["severity"] is False:  # YAML 1.1 reads a bare `off` as false
                section = {**section, "severity": "off"}
            if section["severity"] not in _SEVERITIES:
                raise _fail(path, f"checks.{check}.severity", f"{section['severity']!r} is not one of {_SEVERITIES}")
            severities[check] = section["severity"]
        where = f"checks.{check}"
        if check == "proxies":
            if "threshold" in section:
                options["proxy_threshold"] = _number(section["threshold"], path, f"{where}.threshold", low=0, high=1)
            if "min_rows" in section:
                options["proxy_min_rows"] = int(_number(section["min_rows"], path, f"{where}.min_rows", low=2))
            if "max_levels" in section:
                options["proxy_max_levels"] = int(_number(section["max_levels"], path, f"{where}.max_levels", low=2))
        elif check == "required_metrics":
            options["required_metrics"] = _metric_rules(section.get("metrics"), path)
        elif check == "signature" and "input_example" in section:
            options["require_input_example"] = _flag(section["input_example"], path, f"{where}.input_example")
        elif check == "lineage":
            for key in ("run_id", "data_hash", "git_commit"):
                if key in section:
                    options[f"require_{key}"] = _flag(section[key], path, f"{where}.{key}")

    stages = dict(default.stages)
    stage_section = _mapping(top.get("stages"), path, "stages")
    _known(stage_section, STAGES, path, "stages")
    for stage, names in stage_section.items():
        listed = _names(names or [], path, f"stages.{stage}")
        unknown = sorted(set(listed) - set(CHECK_NAMES))
        if unknown:
            raise _fail(path, f"stages.{stage}", f"unknown check(s) {unknown}; checks: {list(CHECK_NAMES)}")
        stages[stage] = tuple(c for c in CHECK_NAMES if c in listed)

    attributes = {k: tuple(v) for k, v in default.protected_attributes.items()}
    protected = _mapping(top.get("protected_attributes"), path, "protected_attributes")
    _known(protected, ("add", "remove"), path, "protected_attributes")
    for attribute, synonyms in _mapping(protected.get("add"), path, "protected_attributes.add").items():
        key = normalize_name(attribute)
        names = tuple(normalize_name(n) for n in _names(synonyms or [attribute], path,
                                                         f"protected_attributes.add.{attribute}"))
        attributes[key] = tuple(dict.fromkeys((*attributes.get(key, (key,)), *names)))
    for attribute in _names(protected.get("remove") or [], path, "protected_attributes.remove"):
        if attributes.pop(normalize_name(attribute), None) is None:
            raise _fail(path, "protected_attributes.remove",
                        f"{attribute!r} is not a protected attribute; known: {sorted(attributes)}")

    return Policy(
        protected_attributes=MappingProxyType(attributes),
        severities=MappingProxyType(severities),
        stages=MappingProxyType(stages),
        enforcing=mode == "enforce",
        source=path,
        **options,
    )


def _team_policy_text() -> tuple[str, str] | None:
    """The team's policy on the tracking server (text, where it was read), or ``None``."""
    from workbench import _mlflow
    from workbench.errors import NotFoundError

    client = _mlflow.client()
    try:
        with _mlflow.translated(NotFoundError, "the Default experiment"):
            experiment = client.get_experiment("0")
    except NotFoundError:
        return None
    text = experiment.tags.get(TEAM_POLICY_TAG)
    if not text:
        return None
    return text, f"tag {TEAM_POLICY_TAG} on {redact_uri(get_settings().store_uri)}"


def _read_yaml(text: str, where: Path | str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        fix = ("fix the YAML (`workbench policy --init` writes a commented template to compare with), or move it "
               "away to use the advisory defaults") if isinstance(where, Path) else (
               "fix the team's policy file and publish it again: `workbench policy --publish FILE`")
        raise ConfigurationError(f"cannot read the policy file {where} ({problem}): {fix}") from exc


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in effect: the file ``path`` if given; else the team's policy on the tracking server,
    the workspace's ``policy.yaml``, or the advisory defaults, first found (see the module docs)."""
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigurationError(f"no policy file at {file}: give an existing file, or omit it for the "
                                     "policy in effect")
        return _parse(_read_yaml(_read_text(file), file), file)
    team = _team_policy_text()
    if team is not None:
        text, where = team
        return _parse(_read_yaml(text, where), where)
    file = policy_path()
    if not file.exists():
        return Policy()
    return _parse(_read_yaml(_read_text(file), file), file)


def _read_text(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the policy file {file} ({exc}): check that it is a readable "
                                 "text file, or move it away to use the advisory defaults") from exc


def init_policy() -> Path:
    """Write :data:`POLICY_TEMPLATE` (the lending template, enforcing) to the workspace's
    ``policy.yaml`` and return its path; a file that already holds the template is left as it is.

    Raises :class:`~workbench.errors.InvalidInputError` if a different policy file is already there.
    """
    from workbench.errors import InvalidInputError

    path = policy_path()
    if path.exists():
        if path.read_text() == POLICY_TEMPLATE:
            return path
        raise InvalidInputError(f"{path} already exists: edit it, or move it away to start again")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(POLICY_TEMPLATE)
    return path


def publish_policy(path: str | Path | None = None) -> Policy:
    """Make a policy file (default: the workspace's ``policy.yaml``) the team's policy: stored on the
    tracking server, it is in effect for everyone who uses that server. Returns the policy as read back.

    The file is checked first, so a broken policy is never published.
    """
    from workbench import _mlflow
    from workbench.errors import NotFoundError

    file = Path(path) if path is not None else policy_path()
    if not file.is_file():
        raise ConfigurationError(f"no policy file at {file}: write one with `workbench policy --init`, then "
                                 "publish it")
    text = _read_text(file)
    _parse(_read_yaml(text, file), file)
    with _mlflow.translated(NotFoundError, "the Default experiment"):
        _mlflow.client().set_experiment_tag("0", TEAM_POLICY_TAG, text)
    return load_policy()


def unpublish_policy() -> None:
    """Remove the team's policy from the tracking server (each workspace's own file, if any, applies)."""
    from workbench import _mlflow
    from workbench.errors import NotFoundError

    if _team_policy_text() is None:
        return
    with _mlflow.translated(NotFoundError, "the Default experiment"):
        _mlflow.client().delete_experiment_tag("0", TEAM_POLICY_TAG)
