"""The governance policy file: defaults, the documented format, mistakes caught, names matched."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench as wb
from workbench.errors import ConfigurationError, InvalidInputError
from workbench.governance import (
    CHECK_NAMES,
    POLICY_TEMPLATE,
    MetricRule,
    Policy,
    load_policy,
    policy_path,
    unpublish_policy,
)
from workbench.governance.policy import normalize_name


def test_without_a_policy_file_the_defaults_apply_and_only_advise(fresh_workspace) -> None:
    assert not policy_path().exists()
    policy = load_policy()
    assert policy.source is None and not policy.enforcing
    assert policy.to_dict() == Policy().to_dict() and policy.to_dict()["mode"] == "advise"
    assert policy.severity("protected_inputs") == "error" and policy.severity("proxies") == "warning"
    assert dict(policy.stages) == {"package": CHECK_NAMES, "deploy": CHECK_NAMES}
    assert policy.required_metrics == () and not policy.require_git_commit


def test_the_documented_template_is_the_defaults_enforcing(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_TEMPLATE)
    loaded = load_policy(path)
    assert loaded.source == path and loaded.enforcing
    assert {**loaded.to_dict(), "source": None} == {**Policy().to_dict(), "mode": "enforce"}
    assert "lending template" in POLICY_TEMPLATE


def test_a_policy_file_enforces_unless_it_says_advise(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("checks:\n  proxies: {severity: error}\n")
    assert load_policy(path).enforcing
    path.write_text("mode: advise\nchecks:\n  proxies: {severity: error}\n")
    advising = load_policy(path)
    assert not advising.enforcing and advising.severity("proxies") == "error"


def test_init_writes_the_template_once_and_never_overwrites_another_policy(fresh_workspace) -> None:
    path = wb.init_policy()
    assert path == policy_path() and path.read_text() == POLICY_TEMPLATE
    assert wb.init_policy() == path  # the same template again: nothing to do
    path.write_text("mode: advise\n")
    with pytest.raises(InvalidInputError, match="already exists: edit it, or move it away"):
        wb.init_policy()
    assert path.read_text() == "mode: advise\n"


def test_a_published_team_policy_is_in_effect_over_the_workspace_file(fresh_workspace, tmp_path: Path) -> None:
    team_file = tmp_path / "team-policy.yaml"
    team_file.write_text("checks:\n  proxies: {severity: error, threshold: 0.3}\n")
    policy_path().parent.mkdir(parents=True, exist_ok=True)
    policy_path().write_text("mode: advise\n")
    try:
        published = wb.publish_policy(team_file)
        assert published.enforcing and published.proxy_threshold == 0.3
        assert str(published.source).startswith("tag workbench.policy on ")
        assert load_policy().to_dict() == published.to_dict()  # the workspace's own file does not win
        broken = tmp_path / "broken.yaml"
        broken.write_text("checks:\n  proxys: {}\n")
        with pytest.raises(ConfigurationError, match="unknown key"):
            wb.publish_policy(broken)  # a broken policy is never published
        assert load_policy().proxy_threshold == 0.3
    finally:
        unpublish_policy()
    assert load_policy().source == policy_path() and not load_policy().enforcing


def test_a_project_policy_changes_severities_thresholds_stages_and_attributes(fresh_workspace) -> None:
    fresh_workspace.home.mkdir(parents=True, exist_ok=True)
    policy_path().write_text("""
checks:
  proxies: {severity: error, threshold: 0.3, min_rows: 10}
  required_metrics:
    metrics:
      accuracy: 0.8
      rmse: {max: 12.5}
      auc: {min: 0.6, max: 1}
  signature: {input_example: false}
  lineage: {git_commit: true, data_hash: false}
  protected_inputs: {severity: warning}
stages:
  package: [signature, lineage]
protected_attributes:
  add: {caste: [jati], sex: [Geschlecht]}
  remove: [age]
""")
    policy = wb.load_policy()
    assert policy.source == policy_path()
    assert policy.severity("proxies") == "error" and policy.proxy_threshold == 0.3 and policy.proxy_min_rows == 10
    assert policy.severity("protected_inputs") == "warning"
    assert policy.required_metrics == (
        MetricRule("accuracy", min=0.8), MetricRule("rmse", max=12.5), MetricRule("auc", min=0.6, max=1.0))
    assert [r.describe() for r in policy.required_metrics] == ["accuracy >= 0.8", "rmse <= 12.5", "0.6 <= auc <= 1"]
    assert not policy.require_input_example and policy.require_git_commit and not policy.require_data_hash
    assert policy.stages["package"] == ("signature", "lineage") and policy.stages["deploy"] == CHECK_NAMES
    assert policy.protected_attribute_of("caste") == "caste" and policy.protected_attribute_of("Jati") == "caste"
    assert policy.protected_attribute_of("geschlecht") == "sex" and policy.protected_attribute_of("sex") == "sex"
    assert policy.protected_attribute_of("age") is None  # removed by this project


@pytest.mark.parametrize(("text", "message"), [
    ("checks:\n  proxys: {severity: error}\n", r"checks: unknown key\(s\) \['proxys'\]"),
    ("checks:\n  proxies: {severity: fatal}\n", r"checks.proxies.severity: 'fatal' is not one of"),
    ("checks:\n  proxies: {threshold: 2}\n", r"checks.proxies.threshold: 2 is outside \[0, 1\]"),
    ("checks:\n  required_metrics: {metrics: {accuracy: {min: 0.9, max: 0.5}}}\n", "min 0.9 is above max 0.5"),
    ("checks:\n  required_metrics: {metrics: {accuracy: {}}}\n", "give min, max or both"),
    ("checks:\n  lineage: {git_commit: yes please}\n", "expected true or false"),
    ("stages:\n  deploy: [signature, lint]\n", r"unknown check\(s\) \['lint'\]"),
    ("stages:\n  train: [signature]\n", r"stages: unknown key\(s\) \['train'\]"),
    ("protected_attributes:\n  remove: [shoe_size]\n", "'shoe_size' is not a protected attribute"),
    ("- just\n- a list\n", "top level: expected a mapping"),
    ("mode: block\n", r"mode: 'block' is not one of \('enforce', 'advise'\)"),
    ("checks: {proxies: [unclosed\n", "cannot read the policy file"),
])
def test_mistakes_in_the_policy_file_are_errors_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_an_explicit_policy_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no policy file at"):
        load_policy(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("column", "attribute"), [
    ("race", "race"), ("RACE", "race"), ("Ethnicity", "ethnicity"), ("sex", "sex"), ("Gender", "gender"),
    ("age", "age"), ("DateOfBirth", "age"), ("date-of-birth", "age"), ("AGE_BAND", "age"),
    ("MaritalStatus", "marital_status"), ("marital status", "marital_status"), ("is_married", "marital_status"),
    ("nationality", "national_origin"), ("Country of Birth", "national_origin"), ("religion", "religion"),
    ("disability_status", "disability"), ("pregnant", "pregnancy"), ("sexual_orientation", "sexual_orientation"),
    # one-hot encoded columns
    ("sex_male", "sex"), ("race=white", "race"), ("Gender_F", "gender"), ("marital_status_single", "marital_status"),
])
def test_protected_attributes_match_common_column_names_case_insensitively(column: str, attribute: str) -> None:
    assert Policy().protected_attribute_of(column) == attribute


@pytest.mark.parametrize("column", ["income", "age_of_vehicle", "account_age_days", "usage", "page", "disabled",
                                    "tenure", "region", "essex_branch", "stage"])
def test_ordinary_columns_are_not_protected(column: str) -> None:
    assert Policy().protected_attribute_of(column) is None


def test_names_are_normalised_to_snake_case() -> None:
    assert normalize_name("MaritalStatus") == "marital_status"
    assert normalize_name("  Date of Birth ") == "date_of_birth"
    assert normalize_name("race=White") == "race_white"
