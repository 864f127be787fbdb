"""Model cards: every section, with the actual numbers, in Markdown and HTML."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.audit import record

SECTIONS = ["Model details", "Intended use", "Training data", "Metrics and parameters", "Fairness", "Explanations",
            "Policy checks", "Lineage", "Provenance", "Deployment history", "Audit trail"]


@pytest.fixture(scope="module")
def credit() -> dict:
    """A registered credit model with an intended use, metrics, params, sex kept in its reference data,
    a logged fairness report, a waiver and audit entries."""
    rng = np.random.default_rng(4)
    n = 600
    sex = rng.choice(["female", "male"], n)
    X = pd.DataFrame({"income": rng.normal(50, 12, n), "debt_ratio": rng.random(n)})
    y = pd.Series((X["income"] + rng.normal(0, 6, n) > 50).astype(int), name="label")
    with wb.start_run(experiment="governance-tests", run_name="credit-card-run"):
        model = LogisticRegression(C=0.5).fit(X, y)
        accuracy = model.score(X, y)
        mlflow.log_params({"C": 0.5, "penalty": "l2"})
        mlflow.log_metrics({"accuracy": accuracy, "auc": 0.8731})
        logged = wb.log_model(model, training_data=X.assign(sex=sex), training_labels=y,
                              signature=infer_signature(X.head(20), model.predict(X.head(20))), input_example=X.head(2))
    name = f"card-{uuid.uuid4().hex[:6]}"
    version = wb.register(logged, name, description="Scores consumer credit applications")
    wb.set_version_tag(name, version.version, "intended_use",
                       "Rank retail credit applications for manual review; not for automated denial.")
    fairness = wb.fairness_report(y, model.predict(X), pd.Series(sex, name="sex"), model_uri=version.uri, log=True)
    waiver = wb.waive(version.uri, "proxies", by="Dana Reyes", reason="reviewed in MRM-7")
    record("register", model_name=name, to_version=version.version)
    record("set_alias", model_name=name, to_version=version.version, details={"alias": "champion"})
    return {"version": version, "accuracy": accuracy, "fairness": fairness, "waiver": waiver, "X": X}


def _section_text(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def test_the_card_has_every_section_in_order_in_both_formats(credit) -> None:
    card = wb.model_card(credit["version"].uri)
    assert [s.title for s in card.sections] == SECTIONS
    markdown, page = card.to_markdown(), card.to_html()
    assert markdown.startswith(f"# Model card: {credit['version'].name} version 1\n")
    assert re.findall(r"^## (.+)$", markdown, flags=re.M) == SECTIONS
    assert re.findall(r"<h2>(.+?)</h2>", page) == SECTIONS
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched from elsewhere
    assert card._repr_html_().startswith("<div class='workbench-model-card'>")


def test_the_card_states_the_models_facts_and_numbers(credit) -> None:
    version = credit["version"]
    markdown = wb.model_card(version.uri).to_markdown()

    assert f"- **URI:** models:/{version.name}/1" in _section_text(markdown, "Model details")
    intended = _section_text(markdown, "Intended use")
    assert "Rank retail credit applications for manual review; not for automated denial." in intended
    assert "(From the version tag 'intended_use'.)" in intended

    data = _section_text(markdown, "Training data")
    profile = wb.load_profile(version.uri)
    assert "- **Rows:** 600" in data and f"- **Data hash (SHA-256):** {profile.data_hash}" in data
    income = profile.features["income"]
    assert f"| income | numeric | float64 | 600 | 0 | {income.mean:.4g} | {income.std:.4g} |" in data
    assert "| sex | categorical |" in data
    # One date format on the whole card (it mixed ISO 8601 and "... UTC")
    assert "- **Profiled at:** " in data and not re.search(r"\d{4}-\d\d-\d\dT\d\d:", markdown)
    assert re.search(r"- \*\*Profiled at:\*\* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", data)

    metrics = _section_text(markdown, "Metrics and parameters")
    assert f"| accuracy | {credit['accuracy']:.4g} |" in metrics and "| auc | 0.8731 |" in metrics
    assert "| C | 0.5 |" in metrics and "| penalty | l2 |" in metrics
    assert "fairness." not in metrics  # those have their own section

    fairness = _section_text(markdown, "Fairness")
    report = credit["fairness"]
    assert "As logged on the version's run." in fairness
    assert f"- **Demographic parity difference:** {report.demographic_parity_difference:.4g}" in fairness
    assert f"- **Equalized odds ratio:** {report.equalized_odds_ratio:.4g}" in fairness
    female = report.to_frame().set_index("sex").loc["female"]
    assert (f"| female | {int(female['count'])} | {int(female['positives'])} | {female['selection_rate']:.4g} | "
            f"{female['true_positive_rate']:.4g} |") in fairness

    policy = _section_text(markdown, "Policy checks")
    assert f"{version.name} version 1 passes" in policy and "under the default policy" in policy
    assert "| proxies |" in policy and "| signature | passed | yes | error |" in policy
    assert "| proxies | Dana Reyes | reviewed in MRM-7 |" in policy  # the waiver

    lineage = _section_text(markdown, "Lineage")
    assert f"- **Run:** {version.run_id}" in lineage and "- **Run name:** credit-card-run" in lineage
    assert f"- **Training data hash:** {profile.data_hash}" in lineage

    trail = _section_text(markdown, "Audit trail")
    assert re.search(r"\| register \| - \| 1 \|", trail) and re.search(r"\| set_alias \| - \| 1 \|", trail)
    assert re.search(r"\| waive \| - \| 1 \|", trail)


def test_explanations_and_fairness_given_by_the_caller_are_shown(credit) -> None:
    importance = pd.DataFrame({"feature": ["income", "debt_ratio"], "mean_abs_contribution": [0.3127, 0.0412],
                               "share": [0.8836, 0.1164], "rank": [1, 2]})
    X = credit["X"]
    given = wb.fairness_report(X["income"] > 50, X["income"] > 55, pd.Series(np.where(X["debt_ratio"] > 0.5, "hi", "lo"),
                                                                         name="debt_band"), pos_label=True)
    card = wb.model_card(credit["version"].uri, fairness=given, explanations=importance)
    markdown = card.to_markdown()
    assert "| income | 0.3127 | 0.8836 | 1 |" in _section_text(markdown, "Explanations")
    fairness = _section_text(markdown, "Fairness")
    assert "debt_band: 2 groups over 600 rows" in fairness and "As logged" not in fairness
    page = card.to_html()
    assert "<td>income</td><td>0.3127</td><td>0.8836</td><td>1</td>" in page
    with pytest.raises(InvalidInputError, match="explanations must be a DataFrame with a 'feature' column"):
        wb.model_card(credit["version"].uri, explanations=pd.DataFrame({"x": [1]}))


def test_a_running_deployment_of_the_version_is_in_its_history(credit) -> None:
    version = credit["version"]
    name = f"card-{uuid.uuid4().hex[:6]}"
    wb.deploy(version.uri, target="local", name=name)
    try:
        history = _section_text(wb.model_card(version.uri).to_markdown(), "Deployment history")
    finally:
        wb.stop(name)
    assert "Version 1 was served by 1 deployment(s)." in history
    assert re.search(rf"\| {name} \| 1 \| deploy \| 1 \| \d{{4}}-\d\d-\d\d", history)


def test_a_model_the_workbench_knows_little_about_says_what_is_missing(numeric_data) -> None:
    X, y = numeric_data
    with wb.start_run(experiment="governance-tests"):
        logged = wb.log_model(LogisticRegression().fit(X, y))
    version = wb.register(logged, f"card-bare-{uuid.uuid4().hex[:6]}")
    markdown = wb.model_card(version.uri).to_markdown()
    assert "Not recorded. Record it with wb.set_version_tag(" in _section_text(markdown, "Intended use")
    assert "No reference profile was logged" in _section_text(markdown, "Training data")
    assert "No fairness evaluation was given or logged" in _section_text(markdown, "Fairness")
    assert "No explanation was given" in _section_text(markdown, "Explanations")
    policy = _section_text(markdown, "Policy checks")
    assert "has failing checks; the policy only advises, nothing is blocked" in policy
    assert "This policy only advises: failing checks are shown here" in policy
    assert "has been deployed" in _section_text(markdown, "Deployment history")

    path = wb.init_policy()  # the team's gate: the same card now says the version is blocked
    try:
        policy = _section_text(wb.model_card(version.uri).to_markdown(), "Policy checks")
    finally:
        path.unlink()
    assert "is blocked" in policy and f"under {path}" in policy
    assert "This policy enforces: a failing check blocks packaging and deploying" in policy


def test_saving_picks_the_format_from_the_suffix(credit, tmp_path: Path) -> None:
    card = wb.model_card(credit["version"].uri)
    assert card.save(tmp_path / "card.md").read_text() == card.to_markdown()
    assert card.save(tmp_path / "out" / "card.html").read_text().startswith("<!DOCTYPE html>")
    assert card.save(tmp_path / "card.txt", format="md").read_text().startswith("# Model card")
    with pytest.raises(InvalidInputError, match="name it .html or .md"):
        card.save(tmp_path / "card.pdf")
