"""Policy checks on real registered models: each check passing and failing, proxies, waivers, enforce."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.errors import InvalidInputError, PolicyViolationError
from workbench.governance import MetricRule, Policy, measure_proxies, policy_path
from workbench.governance.proxies import association, correlation_ratio, cramers_v

N = 1500


@pytest.fixture(scope="module")
def people() -> tuple[pd.DataFrame, pd.Series]:
    """Applicants: protected columns (sex, race, age), inputs, and a label that depends on income.

    ``height_index`` is a noisy copy of sex and ``postcode_zone`` a noisy copy of race; ``segment``,
    ``income`` and ``tenure`` are independent of every protected column.
    """
    rng = np.random.default_rng(11)
    sex = rng.choice(["female", "male"], N)
    race = rng.choice(["a", "b", "c"], N)
    age = rng.integers(18, 80, N)
    income = rng.normal(50, 12, N)
    frame = pd.DataFrame({
        "income": income,
        "tenure": rng.normal(5, 2, N),
        "segment": rng.choice(["retail", "premium", "business"], N),
        "height_index": (sex == "female") * 1.0 + rng.normal(0, 0.35, N),
        "postcode_zone": np.where(rng.random(N) < 0.85, np.char.add("zone-", race),
                                  np.char.add("zone-", rng.choice(["a", "b", "c"], N))),
        "sex": sex,
        "race": race,
        "age": age,
    })
    label = pd.Series((income + rng.normal(0, 6, N) > 50).astype(int), name="label")
    return frame, label


def _register(name: str, data: pd.DataFrame, label: pd.Series, inputs: list[str], *,
              reference: bool = True) -> wb.ModelVersion:
    """Train on ``inputs`` (numeric-coded), keep every column of ``data`` in the reference profile."""
    X = pd.get_dummies(data[inputs], dtype=float) if any(data[c].dtype == object for c in inputs) else data[inputs]
    model = LogisticRegression(max_iter=500).fit(X, label)
    with wb.start_run(experiment="governance-tests"):
        mlflow.log_metric("accuracy", model.score(X, label))
        if reference:
            # The profile keeps the protected columns for fairness; the signature names only the inputs.
            signature = infer_signature(X.head(50), model.predict(X.head(50)))
            logged = wb.log_model(model, training_data=X.join(data[["sex", "race", "age"]]), training_labels=label,
                                  signature=signature, input_example=X.head(3))
        else:
            logged = wb.log_model(model)
    return wb.register(logged, name)


@pytest.fixture(scope="module")
def models(people) -> dict[str, wb.ModelVersion]:
    data, label = people
    uid = uuid.uuid4().hex[:6]
    return {
        "proxy": _register(f"gov-proxy-{uid}", data, label, ["income", "tenure", "height_index"]),
        "independent": _register(f"gov-indep-{uid}", data, label, ["income", "tenure"]),
        "bare": _register(f"gov-bare-{uid}", data, label, ["income", "tenure"], reference=False),
    }


@pytest.fixture()
def policy_file(session_workspace) -> Iterator[Path]:
    """Write the workspace's policy.yaml for one test; removed afterwards so other tests see the defaults."""
    path = policy_path()
    yield path
    path.unlink(missing_ok=True)


# -- association measures ----------------------------------------------------------------------------


def test_each_kind_of_pair_uses_its_measure(people) -> None:
    data, _ = people
    assert association(data["postcode_zone"], data["race"])[0] == "cramers_v"
    assert association(data["height_index"], data["sex"])[0] == "point_biserial"
    assert association(data["income"], data["race"])[0] == "correlation_ratio"
    assert association(data["segment"], data["age"])[0] == "correlation_ratio"
    assert association(data["income"], data["age"])[0] == "spearman"
    # a 0/1-coded protected column is binary whatever its dtype
    assert association(data["height_index"], (data["sex"] == "male").astype(int))[0] == "point_biserial"


def test_the_measures_agree_with_their_definitions(people) -> None:
    from scipy.stats import pearsonr

    data, _ = people
    coded = (data["sex"] == "female").astype(float)
    # For two groups the correlation ratio equals |point-biserial| = |Pearson with 0/1 coding|.
    eta = correlation_ratio(data["sex"], data["height_index"])
    assert eta == pytest.approx(abs(pearsonr(coded, data["height_index"]).statistic), rel=1e-9)
    assert association(data["height_index"], data["sex"])[1] == pytest.approx(eta, rel=1e-9)
    # Perfect dependence is 1, a constant grouping 0.
    assert cramers_v(data["race"], "x-" + data["race"]) == pytest.approx(1.0)
    assert correlation_ratio(data["race"], data["race"].map({"a": 1.0, "b": 5.0, "c": 9.0})) == pytest.approx(1.0)
    assert correlation_ratio(pd.Series(["g"] * N), data["income"]) == pytest.approx(0.0, abs=1e-9)


def test_noisy_copies_of_protected_attributes_are_found_and_independent_inputs_are_not(people) -> None:
    data, _ = people
    data = data.assign(
        race_score=data["race"].map({"a": 0.0, "b": 1.0, "c": 2.0}) + np.random.default_rng(1).normal(0, 0.4, N),
        life_stage=pd.cut(data["age"] + np.random.default_rng(2).normal(0, 4, N), [0, 30, 45, 60, 200],
                          labels=["young", "early", "mid", "late"]).astype(str),
        years_since_school=data["age"] - 18 + np.random.default_rng(3).normal(0, 3, N),
    )
    features = ["income", "tenure", "segment", "height_index", "postcode_zone", "race_score", "life_stage",
                "years_since_school"]
    found = measure_proxies(data, features, [("sex", "sex"), ("race", "race"), ("age", "age")])
    strong = {(a.feature, a.protected, a.measure) for a in found if a.value is not None and a.value >= 0.5}
    assert strong == {
        ("height_index", "sex", "point_biserial"),
        ("postcode_zone", "race", "cramers_v"),
        ("race_score", "race", "correlation_ratio"),
        ("life_stage", "age", "correlation_ratio"),
        ("years_since_school", "age", "spearman"),
    }
    independent = [a for a in found if a.feature in ("income", "tenure", "segment")]
    assert len(independent) == 9 and max(a.value or 0.0 for a in independent) < 0.1


def test_pairs_that_cannot_be_measured_say_why(people) -> None:
    data, _ = people
    small = data.head(10)
    (few,) = measure_proxies(small, ["income"], [("sex", "sex")])
    assert few.value is None and few.note == "only 10 complete rows (min_rows=30)"
    ids = data.assign(customer_id=[f"c{i}" for i in range(N)])
    (wide,) = measure_proxies(ids, ["customer_id"], [("race", "race")])
    assert wide.value is None and wide.note == f"'customer_id' has {N} levels (max_levels=50)"


# -- each check on registered models -----------------------------------------------------------------


def test_a_clean_model_passes_every_check(models) -> None:
    report = wb.check_policies(models["independent"].uri)
    assert [c.name for c in report.checks] == ["protected_inputs", "proxies", "required_metrics", "signature", "lineage"]
    assert all(c.passed for c in report.checks), report.to_frame()
    assert report.passed and report.failures == [] and report.stage is None
    assert report["protected_inputs"].message == "none of the 2 inputs is a protected attribute"
    assert report["proxies"].details["protected_columns"] == {"sex": "sex", "race": "race", "age": "age"}
    assert report["signature"].message == "the model has a signature and an input example"
    assert report["lineage"].details["run_id"] == models["independent"].run_id
    assert report.summary() == f"{models['independent'].name} version 1 passes (5 passed)"


def test_protected_attributes_as_inputs_fail(people) -> None:
    data, label = people
    coded = data.assign(Gender=(data["sex"] == "male").astype(int),
                        MaritalStatus=np.random.default_rng(5).integers(0, 3, N))
    version = _register(f"gov-protected-{uuid.uuid4().hex[:6]}", coded, label, ["income", "Gender", "MaritalStatus"])
    result = wb.check_policies(version.uri)["protected_inputs"]
    assert not result.passed and result.status == "failed" and result.blocking
    assert result.details["protected_inputs"] == {"Gender": "gender", "MaritalStatus": "marital_status"}
    assert result.message.startswith(
        "protected attribute(s) used as model inputs: 'Gender' (gender), 'MaritalStatus' (marital_status)")


def test_the_protected_input_advice_leads_to_a_model_that_passes_and_serves(people) -> None:
    data, label = people
    coded = data.assign(Gender=(data["sex"] == "male").astype(int))
    advice = wb.check_policies(_register(f"gov-advice-{uuid.uuid4().hex[:6]}", coded, label,
                                         ["income", "Gender"]).uri)["protected_inputs"].message
    assert "training_data=X.drop(columns=[...]), sensitive_features=X[[...]]" in advice
    # Following it: fitted on the other columns, the protected one kept for fairness only.
    features = coded[["income", "tenure"]]
    model = LogisticRegression(max_iter=500).fit(features, label)
    with wb.start_run(experiment="governance-tests"):
        logged = wb.log_model(model, training_data=features, training_labels=label,
                              sensitive_features=coded[["Gender"]])
    version = wb.register(logged, f"gov-advised-{uuid.uuid4().hex[:6]}")
    report = wb.check_policies(version.uri)
    assert report["protected_inputs"].passed
    assert "Gender" in report["proxies"].details["protected_columns"]
    deployment = wb.deploy(version.uri, target="local", name=version.name)
    try:
        assert deployment.predict(features.head(20)) == model.predict(features.head(20)).tolist()
    finally:
        wb.stop(deployment.name)


def test_a_proxy_input_is_flagged_as_a_warning_by_default_and_blocks_when_the_policy_says_error(
        models, policy_file: Path) -> None:
    uri = models["proxy"].uri
    result = wb.check_policies(uri)["proxies"]
    assert not result.passed and result.status == "warning" and not result.blocking
    assert [(p["feature"], p["protected"], p["measure"]) for p in result.details["proxies"]] == [
        ("height_index", "sex", "point_biserial")]
    assert result.details["proxies"][0]["value"] > 0.8
    assert "'height_index' ~ 'sex' (point_biserial 0.8" in result.message
    assert wb.enforce(uri, "deploy").passed  # a warning does not block

    policy_file.write_text("checks:\n  proxies: {severity: error}\n")
    assert wb.check_policies(uri)["proxies"].status == "failed"
    with pytest.raises(PolicyViolationError) as caught:
        wb.enforce(uri, "deploy")
    assert caught.value.failures == ["proxies"]

    policy_file.write_text("checks:\n  proxies: {severity: error, threshold: 0.95}\n")
    assert wb.check_policies(uri)["proxies"].passed  # a looser threshold lets it through


def test_proxies_need_protected_columns_in_the_reference_data(models) -> None:
    result = wb.check_policies(models["bare"].uri)["proxies"]
    assert not result.passed and result.message.startswith("cannot measure proxies: the model has no reference profile")


def test_required_metrics_pass_and_fail_against_the_run_metrics(models) -> None:
    uri = models["independent"].uri
    accuracy = wb.get_run(models["independent"].run_id).metrics["accuracy"]
    passing = Policy(required_metrics=(MetricRule("accuracy", min=0.5), MetricRule("accuracy", max=1.0)))
    result = wb.check_policies(uri, policy=passing)["required_metrics"]
    assert result.passed and result.message == (
        f"all required metrics reach their thresholds (accuracy = {accuracy:.4g}, accuracy = {accuracy:.4g})")

    failing = Policy(required_metrics=(MetricRule("accuracy", min=0.999), MetricRule("auc", min=0.7)))
    result = wb.check_policies(uri, policy=failing)["required_metrics"]
    assert not result.passed and result.blocking
    assert result.message.startswith(f"accuracy = {accuracy:.4g} does not meet accuracy >= 0.999; auc was not "
                                     f"logged on run {models['independent'].run_id} (needed: auc >= 0.7)")
    assert [m["passed"] for m in result.details["metrics"]] == [False, False]
    assert wb.check_policies(uri)["required_metrics"].message.startswith("no metric thresholds are configured")


def test_a_model_without_signature_input_example_or_data_hash_fails_those_checks(models) -> None:
    report = wb.check_policies(models["bare"].uri)
    assert [c.name for c in report.failures] == ["protected_inputs", "signature", "lineage"]
    assert report["proxies"].status == "warning"  # not measurable without a profile; only a warning
    assert report["signature"].message.startswith("the model has no signature and no input example: log it with "
                                                  "workbench.log_model(model, training_data=X)")
    assert report["protected_inputs"].message.startswith("cannot tell the model's inputs")
    assert report["lineage"].details["missing"] == ["data_hash"]
    assert report["lineage"].message.startswith("lineage incomplete: no data_hash")
    # The defaults advise: the failures are shown, nothing is blocked.
    assert not report.passed and not report.enforced and not report.blocked and report.verdict == "advisory"
    assert report.summary().startswith(f"{models['bare'].name} version 1 has failing checks; the policy only "
                                       "advises, nothing is blocked")
    assert "`workbench policy --init` writes an enforcing policy" in report.advice()


def test_the_defaults_advise_and_an_enforcing_policy_blocks(models, policy_file: Path) -> None:
    uri = models["bare"].uri
    with pytest.warns(wb.PolicyAdvisory) as advised:
        report = wb.enforce(uri, "deploy")  # goes ahead
    assert report.failures and not report.blocked
    message = str(advised[0].message)
    assert message.startswith(f"policy advice for {uri} (3 failing check(s)):")
    assert "  - signature: the model has no signature" in message and "Nothing is blocked" in message
    # shown in full once per version: the next deploy (any process: it is kept in the workspace) reminds in a line
    with pytest.warns(wb.PolicyAdvisory) as again:
        wb.enforce(uri, "package")
    reminder = str(again[0].message)
    assert "\n" not in reminder
    assert reminder.startswith(f"{uri} still has 3 failing checks (protected_inputs, signature, lineage), shown "
                               "in full on ")
    assert reminder.endswith(f"UTC; `workbench check {uri}` shows them again")

    assert wb.init_policy() == policy_file  # the lending template: it enforces
    report = wb.check_policies(uri)
    assert report.enforced and report.blocked and "is blocked" in report.summary()
    with pytest.raises(PolicyViolationError, match=f"policy blocks deploy of {uri}") as caught:
        wb.enforce(uri, "deploy")
    assert caught.value.failures == ["protected_inputs", "signature", "lineage"]
    assert f"workbench waive {uri} CHECK --by NAME --reason TEXT" in str(caught.value)


def test_an_input_example_is_required_unless_the_policy_says_otherwise(people) -> None:
    data, label = people
    X = data[["income", "tenure"]]
    with wb.start_run(experiment="governance-tests"):
        model = LogisticRegression().fit(X, label)
        logged = wb.log_model(model, signature=infer_signature(X, model.predict(X)))  # no example
    version = wb.register(logged, f"gov-noexample-{uuid.uuid4().hex[:6]}")
    result = wb.check_policies(version.uri)["signature"]
    assert not result.passed and result.message.startswith("the model has no input example: log it with")
    assert dict(result.details) == {"signature": True, "input_example": False, "inputs": ["income", "tenure"]}
    relaxed = wb.check_policies(version.uri, policy=Policy(require_input_example=False))["signature"]
    assert relaxed.passed and relaxed.message == "the model has a signature"


def _git_repo(path: Path) -> Path:
    path.mkdir()
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    (path / "train.py").write_text("print('train')\n")
    subprocess.run([*git, "add", "."], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=path, check=True)
    return path


def test_lineage_requires_a_git_commit_only_when_the_policy_does(people, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data, label = people
    strict = Policy(require_git_commit=True)
    monkeypatch.chdir(_git_repo(tmp_path / "project"))
    committed = _register(f"gov-git-{uuid.uuid4().hex[:6]}", data, label, ["income"])
    monkeypatch.chdir(tmp_path)  # not a repository
    loose = _register(f"gov-nogit-{uuid.uuid4().hex[:6]}", data, label, ["income"])

    assert wb.check_policies(committed.uri, policy=strict)["lineage"].passed
    assert wb.check_policies(loose.uri)["lineage"].passed
    result = wb.check_policies(loose.uri, policy=strict)["lineage"]
    assert not result.passed and result.details["missing"] == ["git_commit"]
    assert "train from a committed git checkout" in result.message


def test_checks_set_off_are_not_run_and_stages_run_their_own_list(models, policy_file: Path) -> None:
    policy_file.write_text("checks:\n  proxies: {severity: off}\nstages:\n  package: [signature, lineage]\n")
    assert [c.name for c in wb.check_policies(models["bare"].uri).checks] == [
        "protected_inputs", "required_metrics", "signature", "lineage"]
    report = wb.check_policies(models["bare"].uri, stage="package")
    assert [c.name for c in report.checks] == ["signature", "lineage"] and report.stage == "package"
    with pytest.raises(InvalidInputError, match="stage 'train' is not one of"):
        wb.enforce(models["bare"].uri, "train")


def test_a_report_is_a_table_json_and_html(models) -> None:
    report = wb.check_policies(models["proxy"].uri)
    frame = report.to_frame()
    assert list(frame.columns) == ["check", "status", "passed", "severity", "message", "waiver"]
    assert frame.set_index("check").loc["proxies", "status"] == "warning"
    data = report.to_dict()
    assert data["passed"] is True and data["model_version"] == "1"
    assert data["checks"][1]["details"]["proxies"][0]["feature"] == "height_index"
    assert "<table" in report._repr_html_() and "height_index" in report._repr_html_()


# -- enforce and waivers -------------------------------------------------------------------------------


def test_the_waiver_path_blocked_waived_passes_and_audited(models, people, policy_file: Path) -> None:
    policy_file.write_text("checks:\n  proxies: {severity: error}\n")
    version = models["proxy"]
    name = version.name
    wb.set_alias(name, "candidate", version.version)
    alias_uri = f"models:/{name}@candidate"

    with pytest.raises(PolicyViolationError) as caught:
        wb.enforce(alias_uri, "package")
    message = str(caught.value)
    assert caught.value.failures == ["proxies"] and caught.value.http_status == 403
    assert message.startswith(f"policy blocks package of {version.uri} (1 failing check(s)):\n  - proxies: ")
    assert f"`workbench waive {version.uri} CHECK --by NAME --reason TEXT`" in message

    waiver = wb.waive(alias_uri, "proxies", by="Dana Reyes (Model Risk)",
                      reason="height_index validated as a risk driver, MRM-2026-114")
    assert (waiver.model_name, waiver.model_version, waiver.check) == (name, version.version, "proxies")
    assert waiver.recorded_by == wb.get_settings().user

    report = wb.enforce(alias_uri, "deploy")
    proxies = report["proxies"]
    assert report.passed and proxies.status == "waived" and not proxies.passed and proxies.waiver == waiver
    assert report.to_frame().set_index("check").loc["proxies", "waiver"] == (
        f"waived by Dana Reyes (Model Risk) on {waiver.ts:%Y-%m-%d}: height_index validated as a risk driver, "
        "MRM-2026-114")
    assert wb.list_waivers(version.uri) == [waiver]
    # The same cell run again records nothing twice.
    assert wb.waive(alias_uri, "proxies", by="Dana Reyes (Model Risk)",
                    reason="height_index validated as a risk driver, MRM-2026-114") == waiver
    assert wb.list_waivers(version.uri) == [waiver]

    log = wb.audit_log(model=name, action="waive")
    assert len(log) == 1
    row = log.iloc[0]
    assert (row["to_version"], row["user"]) == (version.version, wb.get_settings().user)
    assert row["details"]["check"] == "proxies" and row["details"]["by"] == "Dana Reyes (Model Risk)"
    assert row["details"]["reason"] == "height_index validated as a risk driver, MRM-2026-114"

    # The waiver covers that version only: a new version behind the same alias is blocked again.
    retrained = wb.register(version.source, name)
    wb.set_alias(name, "candidate", retrained.version)
    with pytest.raises(PolicyViolationError, match=f"policy blocks deploy of {retrained.uri}"):
        wb.enforce(alias_uri, "deploy")


def test_a_waiver_covers_only_its_check(models, policy_file: Path) -> None:
    policy_file.write_text("checks:\n  required_metrics: {metrics: {auc: 0.7}}\n")
    uri = models["bare"].uri
    wb.waive(uri, "signature", by="Sam Okafor", reason="legacy model, signature added in next release")
    with pytest.raises(PolicyViolationError) as caught:
        wb.enforce(uri, "deploy")
    assert caught.value.failures == ["protected_inputs", "required_metrics", "lineage"]
    assert wb.check_policies(uri)["signature"].status == "waived"


@pytest.mark.parametrize(("check", "by", "reason", "message"), [
    ("fairness", "Dana", "why", "'fairness' is not a policy check"),
    ("proxies", " ", "why", "needs the name of the person granting it"),
    ("proxies", "Dana", "", "needs a reason"),
])
def test_a_waiver_needs_a_known_check_a_person_and_a_reason(models, check: str, by: str, reason: str,
                                                            message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        wb.waive(models["proxy"].uri, check, by=by, reason=reason)
